# lmtpd/local.mk: the LMTP server that delivers into Maildirs.
pkglibexec_PROGRAMS += lmtpd/lmtpd
lmtpd_lmtpd_SOURCES = \
	lmtpd/lmtpd.h \
	lmtpd/lmtpd.c \
	lmtpd/lmtpd_session.c \
	lmtpd/lmtpd_deliver.c
lmtpd_lmtpd_LDADD = $(PETREL_LIBS)
dist_man_MANS += doc/lmtpd.8

E2E_TESTS += t/e2e-lmtpd.py
EXTRA_DIST += t/e2e-lmtpd.py
