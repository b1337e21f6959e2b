# qmgr/local.mk: the queue manager (qmgr) and recipient resolution.
lib_mail_libmail_a_SOURCES += lib/mail/resolve.c lib/mail/resolve.h

pkglibexec_PROGRAMS += qmgr/qmgr
qmgr_qmgr_SOURCES = \
	qmgr/qmgr.h \
	qmgr/qmgr.c \
	qmgr/qmgr_scan.c \
	qmgr/qmgr_message.c \
	qmgr/qmgr_deliver.c \
	qmgr/qmgr_notice.c
qmgr_qmgr_LDADD = $(PETREL_LIBS)
dist_man_MANS += doc/qmgr.8

UNIT_TESTS += t/test-resolve
check_PROGRAMS += t/test-resolve
t_test_resolve_LDADD = $(UNIT_LDADD)

E2E_TESTS += t/e2e-qmgr.py
EXTRA_DIST += t/e2e-qmgr.py
E2E_TESTS += t/e2e-qmgr-delay.py
EXTRA_DIST += t/e2e-qmgr-delay.py
