"""crash_load.py: what the crash tests share (t/e2e-crash.py,
t/e2e-killtree.py, bench/crash-torture): an instance with the whole
delivery path, an SMTP load whose every send attempt carries its own
token, the instance's processes found from /proc, kill -9 of the whole
tree, `petrel start`/`stop` (the real CLI, daemon mode), draining the
queue, and counting tokens in the Maildirs.

Counting rule: a message is retried by its sender until it gets a 250;
each attempt has its own token ("t<message>.<attempt>"), and a token
counts as acked only when its attempt got a 250. An attempt whose 250
was lost (connection cut by a kill) may or may not be delivered: it is
not counted as acked. lost = acked tokens found in no Maildir;
duplicates = extra copies of acked tokens (the issue's figure);
dup_unacked = extra copies of the other tokens (a message the system
stored twice all the same; reported and asserted too)."""

import os
import re
import signal
import smtplib
import subprocess
import threading
import time

import petrel_test as pt

USERS = ["user%d" % i for i in range(1, 21)]
DOMAIN = "example.test"

# The whole suite as the delivery tests run it: smtpd (with anvil for its
# limits), qmgr, pickup, smtp-client as the lmtp service, lmtpd.
SERVICES = {
    "smtp": "smtpd",
    "anvil": {"type": "unix", "command": "anvil", "maxproc": 1},
    "qmgr": {"type": "fifo", "private": "n", "command": "qmgr", "maxproc": 1, "wakeup": 300},
    "pickup": {"type": "fifo", "private": "n", "command": "pickup", "maxproc": 1,
               "wakeup": 60},
    "lmtp": {"type": "unix", "command": "smtp-client"},
    "lmtpd": {"type": "unix", "command": "lmtpd"},
}

# The process names (basename of argv[0]) of an instance's children.
CHILD_NAMES = ("smtpd", "anvil", "qmgr", "pickup", "smtp-client", "lmtpd")

TOKEN_RX = re.compile(rb"^X-Token: (\S+)$", re.M)
QUEUE_ID_RX = re.compile(rb"\(Petrel\) with E?SMTP id (\w+)")


def make_instance(services=None, main_cf=()):
    """The delivery path, 20 users with a passwd-file, fast retries, and
    anvil limits generous enough never to refuse the load."""
    inst = pt.Instance(services=services or SERVICES, ipv6=False)
    lmtpd_cf = inst.set_passwd_users(["%s@%s" % (u, DOMAIN) for u in USERS])
    inst.set_main_cf(*lmtpd_cf,
                     "minimal_backoff_time = 1s",
                     "maximal_backoff_time = 2s",
                     "queue_run_delay = 1s",
                     "smtpd_client_connection_count_limit = 10000",
                     "smtpd_client_event_limit_exceptions =",
                     *main_cf)
    return inst


def user_of(token):
    """The recipient of a token's message: "t<n>.<attempt>" -> USERS[n % 20]."""
    return USERS[int(token[1:].split(".")[0]) % len(USERS)]


def body_line(token):
    return "body %s" % token


# ------------------------------------------------------------------ load

class Load:
    """count messages over SMTP from workers threads (each pausing pace
    seconds between messages). A message is retried (after retry_pause)
    with a new token until an attempt gets a 250, for at most give_up
    seconds; then it is counted in gave_up."""

    live = []  # every Load made, for stop_all()

    def __init__(self, port, count, workers=10, pace=0.05, give_up=120.0,
                 retry_pause=0.2):
        self.port, self.count, self.workers = port, count, workers
        self.pace, self.give_up, self.retry_pause = pace, give_up, retry_pause
        self.lock = threading.Lock()
        self.acked = set()        # tokens that got 250
        self.unacked = set()      # tokens whose attempt did not
        self.done = set()         # message numbers with an acked token
        self.gave_up = []         # (message number, last error)
        self.errors = {}          # error kind -> count
        self.threads = []
        self.quit = threading.Event()
        Load.live.append(self)

    def attempt(self, n, token):
        """One SMTP session for token; True when DATA got 250."""
        rcpt = "%s@%s" % (user_of(token), DOMAIN)
        msg = ("From: sender@client.test\r\nTo: %s\r\nSubject: m%d\r\n"
               "X-Token: %s\r\n\r\n%s\r\n" % (rcpt, n, token, body_line(token)))
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        try:
            s.sendmail("sender@client.test", [rcpt], msg)
            return True
        finally:
            try:
                s.quit()
            except Exception:  # the 250 is what counts, not the QUIT
                s.close()

    def send(self, n):
        """Message n until it is acked or give_up passes."""
        deadline = time.monotonic() + self.give_up
        for a in range(1, 1000000):
            token = "t%d.%d" % (n, a)
            try:
                ok = self.attempt(n, token)
            except Exception as e:  # counted by kind; the message is retried
                ok, err = False, e
            with self.lock:
                if ok:
                    self.acked.add(token)
                    self.done.add(n)
                    return
                self.unacked.add(token)
                kind = type(err).__name__
                self.errors[kind] = self.errors.get(kind, 0) + 1
            if time.monotonic() > deadline or self.quit.is_set():
                with self.lock:
                    self.gave_up.append((n, repr(err)))
                return
            time.sleep(self.retry_pause)

    def work(self, first):
        for n in range(first, self.count, self.workers):
            if self.quit.is_set():
                return
            self.send(n)
            time.sleep(self.pace)

    @classmethod
    def stop_all(cls):
        """After a failure: no sender may go on into the next test (whose
        instance could get the same port)."""
        for load in cls.live:
            load.quit.set()
        for load in cls.live:
            for t in load.threads:
                t.join(40)
        cls.live = []

    def start(self):
        self.threads = [threading.Thread(target=self.work, args=(i,), daemon=True)
                        for i in range(self.workers)]
        for t in self.threads:
            t.start()
        return self

    def running(self):
        return any(t.is_alive() for t in self.threads)

    def join(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self.threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        assert not self.running(), "senders still running after %ss" % timeout

    def acked_count(self):
        with self.lock:
            return len(self.done)


# -------------------------------------------------------------- processes

def instance_pids(inst):
    """{pid: name} of every live process of the instance: the master and
    its children (and orphans of a dead master), found in /proc by their
    command line ("-c" and the instance's configuration directory). The
    petrel command itself is left out."""
    etc = {inst.etc, os.path.realpath(inst.etc)}
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        argv = pt.proc_cmdline(pid)
        if not argv or pt._arg_after(argv, "-c") not in etc:
            continue
        name = os.path.basename(argv[0])
        if name == "petrel" or not pt.pid_alive(pid):
            continue
        out[pid] = name
    inst.seen_pids.update(out)
    return out


def pids_named(inst, name):
    return sorted(p for p, n in instance_pids(inst).items() if n == name)


def wait_gone(inst, timeout, what="the instance's processes to exit"):
    """Wait until no process of the instance is left; returns the seconds
    it took. AssertionError naming the survivors after timeout."""
    t0 = time.monotonic()
    while True:
        left = instance_pids(inst)
        if not left:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError("%s: still running after %.1fs: %s"
                                 % (what, timeout, sorted(left.items())))
        time.sleep(0.02)


def kill_tree(inst):
    """kill -9 of the whole tree in one instant: SIGSTOP to the master and
    every child (nothing runs, nothing is spawned), then SIGKILL to each.
    Returns {pid: name} of what was killed."""
    victims = {}
    for _ in range(3):  # a child forked just before the master stopped
        found = {p: n for p, n in instance_pids(inst).items() if p not in victims}
        if not found:
            break
        for pid in sorted(found, key=lambda p: found[p] != "master"):
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        victims.update(found)
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if inst.proc is not None:  # started with master -d: reap it
        inst.proc.wait(10)
        inst.proc = None
    return victims


def asan_env(inst):
    """The environment for a detached master: sanitizer reports go to
    files in the instance directory (its stderr is /dev/null)."""
    env = dict(os.environ)
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        prefix = var.split("_")[0].lower()
        old = env.get(var, "")
        env[var] = (old + ":" if old else "") + "log_path=" + os.path.join(inst.dir, prefix)
    return env


def check_asan(inst):
    """Fail on a sanitizer report of a detached master or its children."""
    for name in sorted(os.listdir(inst.dir)):
        if name.split(".")[0] in ("asan", "ubsan", "lsan"):
            with open(os.path.join(inst.dir, name), errors="replace") as f:
                text = f.read()
            if "ERROR:" in text or "runtime error" in text:
                raise AssertionError("sanitizer report %s:\n%s" % (name, text[-4000:]))


def petrel(inst, *args, timeout=120):
    """Run cli/petrel -c etc ARGS (with asan_env)."""
    return subprocess.run([os.path.join(pt.BUILD, "cli", "petrel"), "-c", inst.etc] +
                          list(args), capture_output=True, text=True, timeout=timeout,
                          env=asan_env(inst))


def petrel_start(inst):
    """`petrel start` (master -w, detached); returns the new master's pid."""
    r = petrel(inst, "start")
    assert r.returncode == 0, ("petrel start failed", r.returncode, r.stderr, inst.tail())
    inst.proc = None
    pid = inst.master_pid()
    assert pid and pt.pid_alive(pid), ("no master after petrel start", pid)
    inst.seen_pids.add(pid)
    return pid


def petrel_stop(inst, timeout=30):
    """`petrel stop`; then no process of the instance may be left."""
    r = petrel(inst, "stop")
    assert r.returncode == 0, ("petrel stop failed", r.returncode, r.stderr, inst.tail())
    wait_gone(inst, timeout, "processes after petrel stop")
    assert not os.path.exists(inst.pid_file), "pid file left after petrel stop"


# ------------------------------------------------------------- the queue

def queue_files(inst):
    """Files left in incoming/, active/ and deferred/ (dir/id)."""
    out = []
    for q in ("incoming", "active", "deferred"):
        d = os.path.join(inst.queue, q)
        for root, _, files in os.walk(d):
            out += [os.path.relpath(os.path.join(root, f), inst.queue)
                    for f in files if not f.startswith(".")]
    return out


def poke_qmgr(inst, byte=b"F"):
    """Write byte to public/qmgr as the writers do (non-blocking; no
    reader is fine)."""
    try:
        fd = os.open(os.path.join(inst.queue, "public", "qmgr"), os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(fd, byte)
    except OSError:
        pass
    finally:
        os.close(fd)


def drain(inst, timeout):
    """Wait until the queue is empty, writing F to public/qmgr now and
    then; returns the seconds it took (AssertionError after timeout)."""
    start = time.monotonic()
    last_poke = 0.0
    while queue_files(inst):
        now = time.monotonic()
        if now - start > timeout:
            raise AssertionError("queue not drained after %.0fs: %s"
                                 % (timeout, queue_files(inst)[:10]))
        if now - last_poke > 2.0:
            poke_qmgr(inst)
            last_poke = now
        time.sleep(0.2)
    return time.monotonic() - start


def scan_maildirs(inst):
    """(token -> list of (user, queue id) it was stored for, list of
    damaged files) over new/ and cur/ of every user's Maildir."""
    seen, damaged = {}, []
    for u in USERS:
        for sub in ("new", "cur"):
            d = os.path.join(inst.mail, DOMAIN, u, "Maildir", sub)
            if not os.path.isdir(d):
                continue
            for name in os.listdir(d):
                path = os.path.join(d, name)
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except FileNotFoundError:
                    continue
                m = TOKEN_RX.search(data)
                if m is None:
                    damaged.append(path)
                    continue
                token = m.group(1).decode()
                if not data.endswith(("\n%s\n" % body_line(token)).encode()):
                    damaged.append(path)
                qid = QUEUE_ID_RX.search(data)
                seen.setdefault(token, []).append((u, qid.group(1).decode() if qid else "?"))
    return seen, damaged


def count(inst, load):
    """The figures after the queue drained: a dict (see the module doc)."""
    seen, damaged = scan_maildirs(inst)
    acked = set(load.acked)
    return {
        "sent": load.count, "attempts": len(load.acked) + len(load.unacked),
        "acked": len(acked), "gave_up": list(load.gave_up), "errors": dict(load.errors),
        "delivered": sum(len(us) for us in seen.values()), "unique": len(seen),
        "unacked_delivered": len([t for t in seen if t not in acked]),
        "lost": sorted(acked - set(seen)),
        "duplicates": sum(len(seen[t]) - 1 for t in acked if t in seen),
        "dup_tokens": sorted(t for t in acked if len(seen.get(t, ())) > 1),
        "dup_unacked": sum(len(us) - 1 for t, us in seen.items() if t not in acked),
        "dup_unacked_tokens": sorted(t for t, us in seen.items()
                                     if t not in acked and len(us) > 1),
        "damaged": damaged,
        "wrong_user": sorted(t for t, us in seen.items()
                             if any(u != user_of(t) for u, _ in us)),
        "strays": sorted(t for t in seen if t not in acked and t not in load.unacked),
    }


def figures(r):
    """count()'s figures as one line."""
    return ("sent=%d attempts=%d acked=%d gave_up=%d delivered=%d (unacked attempts "
            "delivered %d) lost=%d duplicates=%d dup_unacked=%d damaged=%d"
            % (r["sent"], r["attempts"], r["acked"], len(r["gave_up"]), r["delivered"],
               r["unacked_delivered"], len(r["lost"]), r["duplicates"], r["dup_unacked"],
               len(r["damaged"])))


def check_counts(inst, r):
    """The assertions every crash test makes on count()'s figures. The
    duplicate checks come last, so that a loss is never hidden by them."""
    assert not r["gave_up"], ("messages never acked (the suite did not come back)",
                              r["gave_up"][:5], inst.tail())
    assert not r["lost"], ("acked but never delivered", r["lost"][:20], inst.tail())
    assert not r["damaged"], ("incomplete files in new/ or cur/", r["damaged"][:5])
    assert not r["wrong_user"], ("delivered to the wrong user", r["wrong_user"][:5])
    assert not r["strays"], ("tokens nobody sent", r["strays"][:5])
    assert r["duplicates"] == 0, ("acked messages stored twice", r["duplicates"],
                                  r["dup_tokens"][:20])
    assert r["dup_unacked"] == 0, ("unacked attempts stored twice", r["dup_unacked"],
                                   r["dup_unacked_tokens"][:20])


def finish(inst, ok):
    """The end of a load test: on failure stop the senders, show the log
    and kill -9 whatever of the instance still runs; then stop it."""
    if not ok:
        Load.stop_all()
        pt.diag(inst.tail())
        for pid in instance_pids(inst):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    inst.stop(check=ok)
