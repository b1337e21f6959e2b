# lib/mail/delivery.mk: build lines for the qmgr <-> delivery agent codec
# (lib/mail/delivery.h) and the Postfix delivery log line
# (lib/mail/log_delivery.h), with their unit tests.
lib_mail_libmail_a_SOURCES += \
	lib/mail/delivery.c lib/mail/delivery.h \
	lib/mail/log_delivery.c lib/mail/log_delivery.h

UNIT_TESTS += t/test-delivery t/test-log-delivery
check_PROGRAMS += t/test-delivery t/test-log-delivery
t_test_delivery_LDADD = $(UNIT_LDADD)
t_test_log_delivery_LDADD = $(UNIT_LDADD)
