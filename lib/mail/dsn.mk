# lib/mail/dsn.mk: build lines for delivery status notifications (see
# lib/mail/dsn.h): bounces, delay warnings and success reports.
lib_mail_libmail_a_SOURCES += lib/mail/dsn.c lib/mail/dsn.h

UNIT_TESTS += t/test-dsn
check_PROGRAMS += t/test-dsn
t_test_dsn_LDADD = $(UNIT_LDADD)

# t/dsn-make writes an original and its notice for t/e2e-dsn.py.
check_PROGRAMS += t/dsn-make
t_dsn_make_LDADD = $(UNIT_LDADD)
E2E_TESTS += t/e2e-dsn.py
EXTRA_DIST += t/e2e-dsn.py doc/bounce.md
