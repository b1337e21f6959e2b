# bench/local.mk: benchmark tools. smtp-load is built by `make` and never
# installed; smtp-accept (a script) drives it against Petrel and the peer
# (Debian's Postfix + Dovecot, see bench/README.md).
noinst_PROGRAMS += bench/smtp-load
bench_smtp_load_SOURCES = bench/smtp-load.c
bench_smtp_load_LDADD = $(LIBUTIL)
EXTRA_DIST += bench/README.md bench/smtp-accept

# The load generator needs a server, so its test runs it against a fake one.
E2E_TESTS += t/e2e-smtp-load.py
EXTRA_DIST += t/e2e-smtp-load.py
EXTRA_DIST += bench/crash-torture bench/smtp-deliver
