# cli/sendmail.mk: build lines for sendmail (see cli/sendmail.c): the
# local submission command, also run as mailq (postqueue -p) and
# newaliases; its man page and its end-to-end test (with pickup(8)).
sbin_PROGRAMS += cli/sendmail
cli_sendmail_SOURCES = cli/sendmail.c
cli_sendmail_LDADD = $(PETREL_LIBS)
dist_man_MANS += doc/sendmail.1

E2E_TESTS += t/e2e-sendmail.py
EXTRA_DIST += t/e2e-sendmail.py
