# t/local.mk: unit tests (C, TAP) and end-to-end tests (Python, TAP).
noinst_LIBRARIES += t/libtap.a
t_libtap_a_SOURCES = t/tap.c t/tap.h

# C unit tests: one program per module, named t/test-MODULE.
UNIT_LDADD = $(LIBTAP) $(PETREL_LIBS)
UNIT_TESTS += t/test-str
check_PROGRAMS += t/test-str
t_test_str_LDADD = $(UNIT_LDADD)

E2E_TESTS += t/check-banned.py
EXTRA_DIST += t/check-banned.py

TESTS += $(UNIT_TESTS) $(E2E_TESTS)
EXTRA_DIST += t/petrel_test.py t/lmtp_raw.py

# The harness caches a test certificate in the build tree (t/tls/).
clean-local:
	rm -rf t/tls

# The whole local delivery path (smtpd, qmgr, smtp-client, lmtpd).
E2E_TESTS += t/e2e-delivery.py
EXTRA_DIST += t/e2e-delivery.py

# Delivery cases: aliases, loops, unknown users, deferral, expiry, postsuper.
E2E_TESTS += t/e2e-delivery-cases.py
EXTRA_DIST += t/e2e-delivery-cases.py

# Crash safety: SIGKILL qmgr, lmtpd and smtp-client while mail flows.
E2E_TESTS += t/e2e-crash.py
EXTRA_DIST += t/e2e-crash.py

# The durability order of one SMTP acceptance and one LMTP delivery, from
# strace (issue #9's proof; skips without strace).
E2E_TESTS += t/e2e-strace.py
EXTRA_DIST += t/e2e-strace.py

# The queue file system full (a tmpfs the test mounts; skips when refused).
E2E_TESTS += t/e2e-fulldisk.py
EXTRA_DIST += t/e2e-fulldisk.py

# msg.c's own syslog client: format, drops counted when the log writer is
# slow or gone, the "were dropped" warning, reconnect; and a real instance
# logging through a writer that stalls and dies (root, mount namespace).
UNIT_TESTS += t/test-msg-syslog
check_PROGRAMS += t/test-msg-syslog
t_test_msg_syslog_LDADD = $(UNIT_LDADD)
E2E_TESTS += t/e2e-syslog.py
EXTRA_DIST += t/e2e-syslog.py

# fsync failing (an LD_PRELOAD shim the test compiles; skips without cc):
# never a 250, nothing left behind, nothing lost.
E2E_TESTS += t/e2e-fsync-fail.py
EXTRA_DIST += t/e2e-fsync-fail.py t/fsync_fail_shim.c

# The mail store full (a tmpfs the test mounts on the mail root; skips
# when refused): 452 4.3.1 and deferral, no partial file; quota bounces.
E2E_TESTS += t/e2e-mailstore-full.py
EXTRA_DIST += t/e2e-mailstore-full.py

# The process tree survives any kill (issue #9): kill -9 of the master
# (children exit), of the whole tree, of qmgr again and again; petrel
# start over the stale pid file and sockets. crash_load.py is shared with
# e2e-crash.py (the torture) and bench/crash-torture.
E2E_TESTS += t/e2e-killtree.py
EXTRA_DIST += t/e2e-killtree.py t/crash_load.py

# Exactly-once delivery (XDELIVERYID): repeats, one mailbox twice, quota,
# lmtpd killed before and after the move into new/ (strace injection).
E2E_TESTS += t/e2e-once.py
EXTRA_DIST += t/e2e-once.py

# Damaged queue files (truncated, a garbage record, no END) while mail
# flows: corrupt/ with qmgr's warning, the good message delivered,
# postsuper -s lists them.
E2E_TESTS += t/e2e-damaged.py
EXTRA_DIST += t/e2e-damaged.py
