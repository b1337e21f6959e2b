# cli/postsuper.mk: build lines for postsuper (see cli/postsuper.c): the
# program and its man page. Its end-to-end test is t/e2e-cli.py
# (cli/pw.mk).
sbin_PROGRAMS += cli/postsuper
cli_postsuper_SOURCES = cli/postsuper.c
cli_postsuper_LDADD = $(PETREL_LIBS)
dist_man_MANS += doc/postsuper.1
