# smtp-client/local.mk: the delivery agent smtp-client(8) (LMTP role; the
# SMTP role will share its protocol engine), its man page and its
# end-to-end test.
pkglibexec_PROGRAMS += smtp-client/smtp-client
smtp_client_smtp_client_SOURCES = \
	smtp-client/smtp_client.h \
	smtp-client/smtp_client.c \
	smtp-client/smtp_proto.c
smtp_client_smtp_client_LDADD = $(PETREL_LIBS)
dist_man_MANS += doc/smtp-client.8

E2E_TESTS += t/e2e-agent.py
EXTRA_DIST += t/e2e-agent.py
