#!/usr/bin/env python3
"""e2e-syslog.py: logging never blocks the master or a daemon (issue #9).

A detached master (no -d, no maillog_file) and its smtpd log to syslog, at
/dev/log inside a private mount namespace: /dev there is a tmpfs holding
symlinks to the real devices and /dev/log -> a datagram socket this test
binds (the host's /dev is not touched). The test is the log writer:
  1. it reads: Postfix-format lines arrive;
  2. it stops reading and its queue is full (slow writer), then
  3. it closes its socket (dead writer): in both, SMTP sessions still get
     250 promptly and the master still replaces a killed smtpd;
  4. it comes back at the same path: a "warning: N log lines were
     dropped" line with N > 0 arrives, and normal lines again.
Needs root and unshare(1); skips otherwise."""

import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import threading
import time

import petrel_test as pt

# What glibc's syslog() sends to a local socket, facility mail.
LINE_RX = re.compile(r"^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d "
                     r"postfix/([\w-]+)\[(\d+)\]: (.*)$", re.S)
DROPPED_RX = re.compile(r"^warning: (\d+) log lines were dropped: "
                        r"the log writer was slow or unavailable$")
# A session over this many seconds counts as blocked.
SESSION_MAX = 3.0

# Run in the new mount namespace, then exec the master: $1 is the test's
# directory (the old /dev is bound at $1/olddev), $2 the log socket. A
# detached master's stderr is /dev/null, so sanitizer reports go to
# $1/san.PID files (checked at the end).
NS_SCRIPT = r'''set -e
mount --make-rprivate /
mkdir -p "$1/olddev"
chmod 1777 "$1"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$1/san"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$1/san"
mount --rbind /dev "$1/olddev"
mount -t tmpfs -o mode=755,size=1m petrel-dev /dev
for f in "$1"/olddev/* "$1"/olddev/.[!.]*; do
	[ -e "$f" ] || [ -L "$f" ] || continue
	ln -s "$f" "/dev/${f##*/}"
done
rm -f /dev/log
ln -s "$2" /dev/log
shift 2
exec "$@"
'''

SERVICES = {
    "smtp": "smtpd",
    "smtpc": {"command": "smtpd", "unpriv": "y", "chroot": "y"},
}

MSG = "From: <s@client.test>\r\nTo: <alice@example.test>\r\nSubject: %s\r\n\r\nbody\r\n"


class Writer:
    """The fake log writer: a datagram socket at path, read by a thread
    while reading is on."""

    def __init__(self, path):
        self.path = path
        self.lines = []
        self.lock = threading.Lock()
        self.reading = threading.Event()
        self.stop = threading.Event()
        self.sock = None
        self.thread = None

    def bind(self):
        """(Re)bind at path, world-writable like /dev/log, and read."""
        if os.path.lexists(self.path):
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.sock.settimeout(0.1)
        self.stop.clear()
        self.reading.set()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        sock = self.sock
        while not self.stop.is_set():
            if not self.reading.is_set():
                time.sleep(0.05)
                continue
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.lines.append(data.decode(errors="replace"))

    def pause_and_fill(self):
        """Stop reading and fill the queue from another socket, so that
        every sender now gets EAGAIN (a writer that fell behind)."""
        self.reading.clear()
        time.sleep(0.2)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.setblocking(False)
        n = 0
        try:
            while n < 100000:
                s.sendto(b"filler", self.path)
                n += 1
        except BlockingIOError:
            pass
        s.close()
        return n

    def close(self):
        """The writer dies: its socket is closed (the file stays)."""
        self.stop.set()
        self.thread.join()
        self.sock.close()

    def parsed(self):
        """(program, pid, text) of the Postfix lines received so far."""
        with self.lock:
            lines = list(self.lines)
        out = []
        for line in lines:
            m = LINE_RX.match(line)
            if m:
                out.append((m.group(2), int(m.group(3)), m.group(4)))
        return out

    def wait(self, pred, what, timeout=15.0):
        """Wait until a received line satisfies pred(program, pid, text)."""
        return pt.wait_for(lambda: [x for x in self.parsed() if pred(*x)], timeout,
                           what=what)


def session(inst, n, service="smtp"):
    """One SMTP transaction; returns its duration (asserting a 250)."""
    start = time.monotonic()
    with smtplib.SMTP("127.0.0.1", inst.port(service), timeout=10) as s:
        s.ehlo("client.test")
        refused = s.sendmail("s@client.test", ["alice@example.test"], MSG % ("syslog-%d" % n))
        assert refused == {}, refused
    took = time.monotonic() - start
    assert took < SESSION_MAX, "%s session %d took %.2f s" % (service, n, took)
    return took


def chrooted(inst, service):
    """Every child of service is chrooted to the queue directory (one just
    started may not be yet: callers wait)."""
    roots = []
    for pid in inst.child_pids(service):
        try:
            roots.append(os.readlink("/proc/%d/root" % pid))
        except OSError:
            pass  # exited meanwhile
    return bool(roots) and all(r == inst.queue for r in roots)


def count_connects(parsed):
    """The smtpd "connect from" lines among parsed lines."""
    return len([x for x in parsed if x[0] == "smtpd" and
                x[2] == "connect from unknown[127.0.0.1]"])


def sessions_and_kill(inst, first, count=5):
    """count sessions, then kill -9 an smtpd: the master replaces it and
    a new session works; returns the slowest session."""
    slowest = max(session(inst, first + i) for i in range(count))
    # The chrooted smtpd: it cannot reach /dev/log again once it lost it.
    slowest = max(slowest, session(inst, first + 50, "smtpc"))
    victims = inst.child_pids("smtp")
    assert victims, "no smtpd running"
    inst.kill9(victims[0])
    pt.wait_for(lambda: not pt.pid_alive(victims[0]), 5, what="smtpd to die")
    slowest = max(slowest, session(inst, first + count))
    pt.wait_for(lambda: [p for p in inst.child_pids("smtp") if p != victims[0]], 10,
                what="a new smtpd")
    return slowest


def ns_probe(work):
    """None when this host lets us build the namespace, else the reason."""
    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    probe = os.path.join(work, "probe")
    os.makedirs(probe)
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        NS_SCRIPT, "sh", probe, os.path.join(work, "log"),
                        "test", "-c", "/dev/null"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return "cannot make a mount namespace with its own /dev: " + \
            (r.stderr.strip() or "status %d" % r.returncode)
    return None


def test_log_writer_slow_and_dead():
    if not pt.is_root():
        pt.skip("needs root (a mount namespace with its own /dev/log)")
    work = tempfile.mkdtemp(prefix="petrel-syslog-")
    os.chmod(work, 0o755)
    inst = None
    writer = None
    try:
        reason = ns_probe(work)
        if reason:
            pt.skip(reason)
        writer = Writer(os.path.join(work, "log"))
        writer.bind()
        inst = pt.Instance(services=SERVICES, log_file=False, ipv6=False)
        inst.add_virtual_mailbox("alice@example.test")
        prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", NS_SCRIPT,
                  "sh", os.path.join(work, "ns"), writer.path]
        inst.start(prefix=prefix, foreground=False)

        # 1. The writer reads: the lines are glibc's format.
        writer.wait(lambda prog, pid, text: prog == "master" and
                    text.startswith("daemon started"), "master: daemon started")
        session(inst, 0)
        writer.wait(lambda prog, pid, text: prog == "smtpd" and
                    text == "connect from unknown[127.0.0.1]", "smtpd: connect from")
        # A chrooted smtpd logs through the socket it connected before the
        # chroot.
        session(inst, 1, "smtpc")
        writer.wait(lambda prog, pid, text: prog == "smtpd" and
                    pid in inst.child_pids("smtpc") and
                    text == "connect from unknown[127.0.0.1]",
                    "chrooted smtpd: connect from")
        pt.wait_for(lambda: chrooted(inst, "smtpc"), 10, what="smtpc chrooted")

        # 2. Slow writer: its queue is full and it reads nothing.
        filled = writer.pause_and_fill()
        assert filled > 0, "could not fill the writer's queue"
        slow = sessions_and_kill(inst, 100)

        # 3. Dead writer: the socket is closed.
        writer.close()
        dead = sessions_and_kill(inst, 200)
        pt.diag("slowest session: %.2f s with a full log queue, %.2f s with no "
                "log writer" % (slow, dead))
        assert pt.pid_alive(inst.master_pid()), "the master died"

        # 4. The writer is back at the same path: the next lines (after the
        # once-a-second reconnect) start with the count of dropped lines.
        before = len(writer.parsed())
        writer.bind()
        time.sleep(1.2)
        sessions_and_kill(inst, 300, count=2)

        def dropped(prog, pid, text):
            m = DROPPED_RX.match(text)
            return m is not None and int(m.group(1)) > 0
        got = writer.wait(dropped, "a 'log lines were dropped' warning")
        pt.diag("after the outage: " + "; ".join(
            "%s[%d]: %s" % x for x in got))
        pt.wait_for(lambda: count_connects(writer.parsed()[before:]) > 0, 10,
                    what="smtpd lines again")
        inst.stop()
        inst = None
        ns = os.path.join(work, "ns")
        reports = [f for f in os.listdir(ns) if f.startswith("san.")]
        assert not reports, "sanitizer reports: %s\n%s" % (
            reports, open(os.path.join(ns, reports[0]), errors="replace").read()[-4000:])
    finally:
        # The writer goes first: a process blocked on a full log queue
        # (the bug this test is for) then wakes up and can be stopped.
        if writer is not None and writer.thread is not None and not writer.stop.is_set():
            writer.close()
        if inst is not None:
            inst.stop(check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    pt.main()
