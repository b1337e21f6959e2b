# pickup/local.mk: the pickup daemon (see pickup/pickup.c): maildrop/ ->
# pickup/ -> incoming/, exactly once. Its end-to-end tests are
# t/e2e-sendmail.py (cli/sendmail.mk) and, for kills at every step,
# t/e2e-pickup-crash.py (strace fault injection; skips without strace).
pkglibexec_PROGRAMS += pickup/pickup
pickup_pickup_SOURCES = pickup/pickup.c
pickup_pickup_LDADD = $(PETREL_LIBS)
dist_man_MANS += doc/pickup.8

E2E_TESTS += t/e2e-pickup-crash.py
EXTRA_DIST += t/e2e-pickup-crash.py

# queue_writer_commit_replace(), the library half of pickup's atomic step.
UNIT_TESTS += t/test-queue-replace
check_PROGRAMS += t/test-queue-replace
t_test_queue_replace_LDADD = $(UNIT_LDADD)
