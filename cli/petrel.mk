# cli/petrel.mk: build lines for the petrel command (start, stop, reload,
# status, start-fg), see cli/petrel.c.
sbin_PROGRAMS += cli/petrel
cli_petrel_SOURCES = cli/petrel.c
cli_petrel_LDADD = $(PETREL_LIBS)

dist_man_MANS += doc/petrel.8
