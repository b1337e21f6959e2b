# cli/pw.mk: build lines for petrel-pw, the program behind "petrel pw"
# (see cli/pw.c): password hashing with libcrypt (libxcrypt: crypt_r,
# crypt_gensalt_rn, yescrypt). Also the end-to-end test of the queue and
# admin commands (petrel pw, postalias/newaliases, postsuper, postqueue
# -f/-i/-s).
sbin_PROGRAMS += cli/petrel-pw
cli_petrel_pw_SOURCES = cli/pw.c
cli_petrel_pw_LDADD = $(PETREL_LIBS) $(CRYPT_LIBS)
dist_man_MANS += doc/petrel-pw.1

E2E_TESTS += t/e2e-cli.py
EXTRA_DIST += t/e2e-cli.py
