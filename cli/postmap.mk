# cli/postmap.mk: build lines for postmap (see cli/postmap.c): the program,
# its man page and its end-to-end test.
sbin_PROGRAMS += cli/postmap
cli_postmap_SOURCES = cli/postmap.c
cli_postmap_LDADD = $(PETREL_LIBS)
dist_man_MANS += doc/postmap.1

E2E_TESTS += t/e2e-postmap.py
EXTRA_DIST += t/e2e-postmap.py
