#!/usr/bin/env python3
"""e2e-crash.py: the crash torture of issue #9. The whole suite runs in
daemon mode (`petrel start`) with smtpd, anvil, qmgr, pickup,
smtp-client (lmtp) and lmtpd. N messages flow over SMTP from senders
that retry a message until it gets a 250, each attempt with its own
token (t/crash_load.py: only a token that got 250 counts as acked).
Meanwhile:

  - every 0.3 s a killer SIGKILLs one random child of the master (smtpd,
    qmgr, smtp-client, lmtpd, anvil or pickup; seeded, the seed is
    printed); the master replaces it;
  - three times during the load, when a quarter, a half and three
    quarters of the messages are acked, the whole tree is killed in one
    instant (master and every child) and started again with
    `petrel start`.

Then the queue must drain by itself, and every token is counted in the
Maildirs: lost (an acked token in no Maildir) = 0 and duplicates (an
acked token stored more than once) = 0; a token without its 250 may or
may not be there, but never twice. No stored file is incomplete. The
figures are printed: acked, delivered, lost, duplicates, kills by
process name, tree kills. bench/crash-torture runs the same with a large
N.

Environment: CRASH_SEED (default: random), CRASH_N (default 500)."""

import os
import random
import threading
import time

import petrel_test as pt
import crash_load as cl

# What the random killer picks from: every child of the master.
VICTIMS = ("smtpd", "qmgr", "smtp-client", "lmtpd", "anvil", "pickup")
KILL_PERIOD = 0.3
TREE_KILLS = 3
# At least this many children are killed, however fast the load went.
MIN_KILLS = 20


class Torture:
    """The killers and their counts; see the module doc."""

    def __init__(self, inst, rng, tree_kills=TREE_KILLS, period=KILL_PERIOD):
        self.inst, self.rng, self.period = inst, rng, period
        self.tree_kills_wanted = tree_kills
        self.lock = threading.Lock()  # one tree kill or one child kill at a time
        self.stop = threading.Event()
        self.kills = {name: 0 for name in VICTIMS}
        self.tree_kills = []          # (processes killed, seconds to start again)
        self.errors = []

    def kill_one(self):
        """SIGKILL one random child of the running master (by PID)."""
        with self.lock:
            master = self.inst.master_pid()
            victims = sorted((p, n) for p, n in cl.instance_pids(self.inst).items()
                             if n in VICTIMS and pt.proc_ppid(p) == master)
            if not victims:
                return
            pid, name = self.rng.choice(victims)
            try:
                self.inst.kill9(pid)
            except ProcessLookupError:
                return
            self.kills[name] += 1

    def kill_tree(self):
        """kill -9 of the whole tree, then petrel start."""
        with self.lock:
            killed = cl.kill_tree(self.inst)
            cl.wait_gone(self.inst, 10, "processes after kill -9 of the tree")
            t0 = time.monotonic()
            cl.petrel_start(self.inst)
            self.tree_kills.append((len(killed), time.monotonic() - t0))

    def killer(self):
        """A child every period until stopped."""
        try:
            while not self.stop.wait(self.period):
                self.kill_one()
        except Exception as e:  # reported by check()
            self.errors.append("killer: %r" % e)

    def tree_killer(self, load):
        """The tree at 1/4, 2/4 and 3/4 of the messages acked."""
        try:
            n = self.tree_kills_wanted
            for k in range(1, n + 1):
                mark = load.count * k // (n + 1)
                while load.acked_count() < mark and not self.stop.is_set():
                    time.sleep(0.02)
                if self.stop.is_set():
                    return
                self.kill_tree()
        except Exception as e:  # reported by check()
            self.errors.append("tree killer: %r" % e)

    def run(self, load, min_kills=MIN_KILLS):
        """Kill while load runs; returns when the senders are done and at
        least min_kills children were killed (a fast run keeps the
        killer going a little longer, with the queue still full)."""
        threads = [threading.Thread(target=self.killer),
                   threading.Thread(target=self.tree_killer, args=(load,))]
        for t in threads:
            t.start()
        try:
            load.join(timeout=1800)
            deadline = time.monotonic() + 30
            while sum(self.kills.values()) < min_kills and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            self.stop.set()
            for t in threads:
                t.join()


def torture(inst, count, seed, workers=10, pace=0.05, tree_kills=TREE_KILLS,
            drain_timeout=180.0):
    """Start the suite, send count messages while killing, drain, stop the
    suite and count. Returns a dict of figures (see report())."""
    rng = random.Random(seed)
    t0 = time.monotonic()
    cl.petrel_start(inst)
    load = cl.Load(inst.port("smtp"), count, workers=workers, pace=pace).start()
    tt = Torture(inst, rng, tree_kills=tree_kills)
    tt.run(load)
    t_sent = time.monotonic()
    # The killers are done; the suite must now drain the queue by itself.
    drain_secs = cl.drain(inst, drain_timeout)
    r = cl.count(inst, load)
    r.update(seed=seed, kills=dict(tt.kills), tree_kills=list(tt.tree_kills),
             killer_errors=list(tt.errors), send_secs=t_sent - t0, drain_secs=drain_secs)
    # Still alive after all that: qmgr runs, and petrel stop works.
    r["qmgr_back"] = bool(pt.wait_for(lambda: cl.pids_named(inst, "qmgr"), 30,
                                      what="qmgr running"))
    cl.petrel_stop(inst)
    r["wall_secs"] = time.monotonic() - t0
    return r


def report(r):
    """The figures as lines."""
    kills = ", ".join("%s=%d" % kv for kv in sorted(r["kills"].items()))
    return "\n".join([
        "seed %d: %s" % (r["seed"], cl.figures(r)),
        "kills: %s (total %d); tree kills: %d (processes %s, restart %s s)"
        % (kills, sum(r["kills"].values()), len(r["tree_kills"]),
           "/".join(str(n) for n, _ in r["tree_kills"]),
           "/".join("%.1f" % s for _, s in r["tree_kills"])),
        "send errors %s; send %.1fs, drain %.1fs, wall %.1fs"
        % (r["errors"], r["send_secs"], r["drain_secs"], r["wall_secs"]),
    ])


def check(inst, r, tree_kills=TREE_KILLS):
    """The assertions on torture()'s figures."""
    assert not r["killer_errors"], r["killer_errors"]
    assert len(r["tree_kills"]) == tree_kills, ("tree kills", r["tree_kills"])
    assert sum(r["kills"].values()) > 0, "nothing was killed"
    cl.check_counts(inst, r)
    cl.check_asan(inst)


def seed_from_env():
    value = os.environ.get("CRASH_SEED")
    return int(value) if value else random.SystemRandom().randrange(1 << 31)


def test_torture():
    """N messages; a random process killed every 0.3 s, the tree 3 times: none lost, none twice"""
    count = int(os.environ.get("CRASH_N", "500"))
    seed = seed_from_env()
    pt.diag("seed %d (CRASH_SEED=%d to repeat)" % (seed, seed))
    inst = cl.make_instance()
    ok = False
    try:
        r = torture(inst, count, seed)
        pt.diag(report(r))
        if r["dup_tokens"] or r["dup_unacked_tokens"]:
            pt.diag("stored twice: " + " ".join((r["dup_tokens"] + r["dup_unacked_tokens"])[:30]))
        check(inst, r)
        ok = True
    finally:
        cl.finish(inst, ok)


if __name__ == "__main__":
    pt.main()
