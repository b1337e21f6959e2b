# smtpd/local.mk: the inbound ESMTP server.
pkglibexec_PROGRAMS += smtpd/smtpd
smtpd_smtpd_SOURCES = \
	smtpd/smtpd.h \
	smtpd/smtpd.c \
	smtpd/smtpd_session.c \
	smtpd/smtpd_cmd.c \
	smtpd/smtpd_data.c \
	smtpd/smtpd_check.c \
	smtpd/smtpd_log.c
smtpd_smtpd_LDADD = $(PETREL_LIBS)
dist_man_MANS += doc/smtpd.8

E2E_TESTS += t/e2e-smtpd.py t/e2e-smtpd-badinput.py t/e2e-smtpd-dns.py t/e2e-smtpd-limits.py \
	t/e2e-logformat.py
EXTRA_DIST += t/e2e-smtpd.py t/e2e-smtpd-badinput.py t/e2e-smtpd-dns.py t/e2e-smtpd-limits.py \
	t/e2e-logformat.py \
	t/smtp_raw.py
