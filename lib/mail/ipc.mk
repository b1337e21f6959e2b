# lib/mail/ipc.mk: build lines for the internal IPC record codec
# (lib/mail/ipc.h) and its first client library, anvil_client (the
# event-driven client of anvil(8) that smtpd uses).
lib_mail_libmail_a_SOURCES += \
	lib/mail/ipc.c lib/mail/ipc.h \
	lib/mail/anvil_client.c lib/mail/anvil_client.h

UNIT_TESTS += t/test-ipc
check_PROGRAMS += t/test-ipc
t_test_ipc_LDADD = $(UNIT_LDADD)
