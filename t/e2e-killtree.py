#!/usr/bin/env python3
"""e2e-killtree.py: the process tree survives any kill (issue #9). The
suite runs in daemon mode (`petrel start`, the real CLI) with smtpd,
anvil, qmgr, pickup, smtp-client (lmtp) and lmtpd, under an SMTP load
whose senders retry until they get a 250 (t/crash_load.py: one token per
attempt; only a token that got 250 counts as acked).

  - kill -9 of the master: every child notices and exits within a few
    seconds (no process of the instance is left, found in /proc by its
    command line); `petrel start` then works over the stale pid file,
    sockets and fifos, the queue resumes, and every acked message is
    delivered exactly once; `petrel stop` stops everything.
  - `petrel start` at once after kill -9 of the master, while its
    orphans may still be on their way out.
  - kill -9 of the whole tree in one instant: the same.
  - kill -9 of qmgr again and again under load: the master restarts it
    and the work goes on; an idle qmgr killed is replaced too (qmgr's
    wakeup period is 300 s: the master does not wait for it).

Sanitizer reports of the detached processes go to files in the instance
directory (ASAN_OPTIONS log_path) and fail the test."""

import os
import signal
import stat
import time

import petrel_test as pt
import crash_load as cl

# Messages per test, and how many must be acked before the kill.
COUNT = int(os.environ.get("KILLTREE_N", "120"))
BEFORE_KILL = COUNT // 3
# A child must notice the master's death and exit within this (ASan's
# leak check at exit included).
EXIT_LIMIT = 5.0


def stale_state(inst):
    """What a killed tree leaves behind: the pid file, the unix sockets and
    the fifos. Returns a list of what is missing (the test wants them
    there, to show that petrel start copes with them)."""
    want = [("pid/master.pid", stat.S_ISREG), ("private/lmtpd", stat.S_ISSOCK),
            ("private/lmtp", stat.S_ISSOCK), ("private/anvil", stat.S_ISSOCK),
            ("public/qmgr", stat.S_ISFIFO), ("public/pickup", stat.S_ISFIFO)]
    missing = []
    for rel, is_kind in want:
        try:
            if not is_kind(os.lstat(os.path.join(inst.queue, rel)).st_mode):
                missing.append(rel + " (wrong type)")
        except FileNotFoundError:
            missing.append(rel)
    return missing


def start_loaded(inst):
    """petrel start, then a load that has had BEFORE_KILL messages acked
    and every delivery process running."""
    cl.petrel_start(inst)
    load = cl.Load(inst.port("smtp"), COUNT, workers=6, pace=0.05).start()
    pt.wait_for(lambda: load.acked_count() >= BEFORE_KILL, 90, interval=0.05,
                what="%d messages acked" % BEFORE_KILL)
    return load


def finish(inst, load, label):
    """Let the senders finish, drain the queue, count, stop."""
    load.join(240)
    secs = cl.drain(inst, 120)
    r = cl.count(inst, load)
    pt.diag("%s: %s; drained in %.1fs; send errors %s"
            % (label, cl.figures(r), secs, r["errors"]))
    cl.check_counts(inst, r)
    cl.petrel_stop(inst)
    cl.check_asan(inst)


def run(body):
    """An instance for body(inst); stopped and removed whatever happens."""
    inst = cl.make_instance()
    ok = False
    try:
        body(inst)
        ok = True
    finally:
        cl.finish(inst, ok)


def test_master_kill9():
    """kill -9 of the master under load: children exit, petrel start resumes, none lost"""
    def body(inst):
        load = start_loaded(inst)
        procs = cl.instance_pids(inst)
        names = set(procs.values())
        assert names >= set(cl.CHILD_NAMES) | {"master"}, ("not all running", procs)
        master = inst.master_pid()
        os.kill(master, signal.SIGKILL)
        secs = cl.wait_gone(inst, 20, "children after kill -9 of the master")
        pt.diag("%d children (%s) gone %.2fs after the master"
                % (len(procs) - 1, ", ".join(sorted(names - {"master"})), secs))
        assert secs < EXIT_LIMIT, "children took %.1fs to exit" % secs
        missing = stale_state(inst)
        assert not missing, ("the kill should have left these behind", missing)
        r = cl.petrel(inst, "status")
        assert r.returncode == 1, ("a stale pid file is not a running master", r.stderr)
        assert cl.petrel_start(inst) != master
        finish(inst, load, "master killed")
    run(body)


def test_start_at_once_after_master_kill9():
    """petrel start right after kill -9 of the master, orphans still exiting"""
    def body(inst):
        load = start_loaded(inst)
        master = inst.master_pid()
        orphans = [p for p, n in cl.instance_pids(inst).items() if n != "master"]
        os.kill(master, signal.SIGKILL)
        pt.wait_for(lambda: not pt.pid_alive(master), 5, interval=0.005, what="master exit")
        cl.petrel_start(inst)
        left = [p for p in orphans if pt.pid_alive(p)]
        assert not left, ("orphans of the killed master run beside the new one", left)
        finish(inst, load, "master killed, restarted at once")
    run(body)


def test_whole_tree_kill9():
    """kill -9 of master and children in one instant: petrel start resumes, none lost"""
    def body(inst):
        load = start_loaded(inst)
        killed = cl.kill_tree(inst)
        cl.wait_gone(inst, 10, "processes after kill -9 of the tree")
        pt.diag("killed %d processes: %s" % (len(killed), ", ".join(
            "%s=%d" % (n, sum(1 for v in killed.values() if v == n))
            for n in sorted(set(killed.values())))))
        missing = stale_state(inst)
        assert not missing, ("the kill should have left these behind", missing)
        cl.petrel_start(inst)
        # A second time, at once: the restarted tree, still loaded.
        pt.wait_for(lambda: load.acked_count() >= 2 * BEFORE_KILL or not load.running(),
                    90, what="more messages acked")
        cl.kill_tree(inst)
        cl.wait_gone(inst, 10, "processes after the second kill -9 of the tree")
        cl.petrel_start(inst)
        finish(inst, load, "tree killed twice")
    run(body)


def test_qmgr_kill9_repeatedly():
    """kill -9 of qmgr every 0.3 s under load: restarted each time, none lost"""
    def body(inst):
        load = start_loaded(inst)
        kills, pids = 0, set()
        deadline = time.monotonic() + 60
        while (load.running() or kills < 10) and time.monotonic() < deadline:
            qmgr = pt.wait_for(lambda: cl.pids_named(inst, "qmgr"), 15, interval=0.02,
                               what="qmgr restarted by the master")
            if qmgr[0] not in pids:
                pids.add(qmgr[0])
                inst.kill9(qmgr[0])
                kills += 1
            time.sleep(0.3)
        assert kills >= 10, kills
        pt.diag("qmgr killed %d times" % kills)
        pt.wait_for(lambda: cl.pids_named(inst, "qmgr"), 15, what="qmgr after the last kill")
        assert "bad command startup" not in inst.log(), "qmgr throttled by its kills"
        finish(inst, load, "qmgr killed %d times" % kills)
    run(body)


def test_qmgr_kill9_idle():
    """kill -9 of an idle qmgr: the master starts a new one without traffic"""
    def body(inst):
        cl.petrel_start(inst)
        for _ in range(3):
            old = pt.wait_for(lambda: cl.pids_named(inst, "qmgr"), 15, what="qmgr")
            # Long enough to have read its start-up trigger: the fifo is
            # empty, so only the master can bring a new one.
            time.sleep(1.5)
            inst.kill9(old[0])
            t0 = time.monotonic()
            new = pt.wait_for(lambda: [p for p in cl.pids_named(inst, "qmgr")
                                       if p != old[0]], 10, interval=0.02,
                              what="a new qmgr (qmgr has a 300 s wakeup)")
            pt.diag("qmgr %d replaced by %d in %.2fs" % (old[0], new[0],
                                                          time.monotonic() - t0))
        cl.petrel_stop(inst)
        cl.check_asan(inst)
    run(body)


if __name__ == "__main__":
    pt.main()
