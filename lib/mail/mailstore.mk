# lib/mail/mailstore.mk: the mail store: Maildir delivery (maildir), the
# per-user LMDB index (mbox_index) and the passwd-file user database
# (userdb). See doc/mailstore.md.
lib_mail_libmail_a_SOURCES += \
	lib/mail/maildir.c lib/mail/maildir.h \
	lib/mail/mbox_index.c lib/mail/mbox_index.h \
	lib/mail/userdb.c lib/mail/userdb.h

UNIT_TESTS += t/test-maildir t/test-mbox-index t/test-userdb
check_PROGRAMS += t/test-maildir t/test-mbox-index t/test-userdb
t_test_maildir_LDADD = $(UNIT_LDADD)
t_test_mbox_index_LDADD = $(UNIT_LDADD)
t_test_userdb_LDADD = $(UNIT_LDADD)
# doc/mailstore.md ships with doc/ (EXTRA_DIST in Makefile.am).
