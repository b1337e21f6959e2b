# lib/mail/addr.mk: build lines for addr (RFC 5321 paths and ESMTP
# parameters; see lib/mail/addr.h).
lib_mail_libmail_a_SOURCES += lib/mail/addr.c lib/mail/addr.h

UNIT_TESTS += t/test-addr
check_PROGRAMS += t/test-addr
t_test_addr_LDADD = $(UNIT_LDADD)

# libFuzzer target, built by hand (see its header); doc/addresses.md ships
# with the doc directory.
EXTRA_DIST += fuzz/fuzz-addr.c
