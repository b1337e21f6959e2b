# anvil/local.mk: anvil(8), the connection count and rate service.
pkglibexec_PROGRAMS += anvil/anvil
anvil_anvil_SOURCES = anvil/anvil.h anvil/anvil.c anvil/anvil_table.c
anvil_anvil_LDADD = $(PETREL_LIBS)
dist_man_MANS += doc/anvil.8

E2E_TESTS += t/e2e-anvil.py
EXTRA_DIST += t/e2e-anvil.py
