# cli/postconf.mk: build lines for postconf (see the module's header):
# the program, its man page and its end-to-end test.
sbin_PROGRAMS += cli/postconf
cli_postconf_SOURCES = cli/postconf.c
cli_postconf_LDADD = $(LIBMAIL) $(LIBUTIL)
dist_man_MANS += doc/postconf.1

E2E_TESTS += t/e2e-postconf.py
EXTRA_DIST += t/e2e-postconf.py
