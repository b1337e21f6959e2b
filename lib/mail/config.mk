# lib/mail/config.mk: build lines for config (see the module's header):
# main.cf parsing and the parameter table (params.def), its unit test, and
# the check that every parameter is documented in doc/parameters.md.
lib_mail_libmail_a_SOURCES += lib/mail/config.c lib/mail/config.h lib/mail/params.def \
	lib/mail/config_edit.c lib/mail/config_private.h
# Compiled-in defaults of command_directory and data_directory.
AM_CPPFLAGS += -DPETREL_SBINDIR='"$(sbindir)"' \
	-DPETREL_DATA_DIR='"$(localstatedir)/lib/petrel"'

UNIT_TESTS += t/test-config
check_PROGRAMS += t/test-config
t_test_config_LDADD = $(UNIT_LDADD)

E2E_TESTS += t/check-params-documented.py
EXTRA_DIST += t/check-params-documented.py
