#!/usr/bin/env python3
"""e2e-master.py: master, multi_server and the petrel command, end to end.

Every test runs a Petrel instance (t/petrel_test.py) whose services are
t/echo-daemon: per connection it sends "echo-daemon pid=PID
message_size_limit=VALUE" and then echoes lines, so a test sees which
process and which configuration served it. Covered: start-up, a killed
child is replaced (with Postfix's warning), maxproc, reload without losing
a connection, max_use, SIGTERM, the death of the master, the start-up
throttle, wakeup triggers, unix services, IPv6, privilege drop (as root),
master.cf errors, and petrel start/stop/reload/status with a stale pid
file. Prints TAP.
"""

import os
import pwd
import re
import signal
import socket
import subprocess
import time

import petrel_test as pt

ECHO = {"echo": "echo-daemon"}


class Conn:
    """A client connection: the socket, a line reader, the greeting."""

    def __init__(self, sock):
        self.sock = sock
        self.file = sock.makefile("rb")
        line = self.file.readline().decode()
        m = re.match(r"echo-daemon pid=(\d+) (\w+)=(\S*)\r\n$", line)
        assert m, "bad greeting %r" % line
        self.pid = int(m.group(1))
        self.value = m.group(3)

    def echo(self, text):
        """Send one line and read it back."""
        self.sock.sendall(text.encode() + b"\n")
        got = self.file.readline().decode()
        assert got == text + "\n", "echoed %r, want %r" % (got, text)

    def close(self):
        self.file.close()
        self.sock.close()


def session(inst, service="echo", family=socket.AF_INET):
    """Connect to an inet service and read the greeting."""
    return Conn(inst.connect(service, family))


@pt.instance(services=ECHO)
def test_start_and_answer(inst):
    """the service answers and echoes; start-up is logged"""
    c = session(inst)
    assert c.value == "10240000", c.value
    c.echo("hello world")
    c.close()
    assert c.pid in inst.child_pids("echo")
    assert re.search(r"postfix/master\[\d+\]: daemon started -- version \S+, "
                     r"configuration " + re.escape(os.path.realpath(inst.etc)), inst.log())
    assert os.path.exists(inst.pid_file)
    assert inst.master_pid() == inst.proc.pid


@pt.instance(services=ECHO)
def test_kill9_child_restarted(inst):
    """kill -9 of a child: warning logged, the port keeps answering"""
    c = session(inst)
    inst.kill9(c.pid)
    inst.wait_log(r"warning: process \S+/echo-daemon pid %d killed by signal 9" % c.pid)
    c.close()
    for _ in range(3):
        c2 = session(inst)
        assert c2.pid != c.pid
        c2.echo("still here")
        c2.close()
    # Killing every child that has started up, idle ones included, does not
    # throttle the service (a child killed during its start-up would).
    pids = inst.child_pids("echo")
    pt.wait_for(lambda: all("echo-daemon[%d]: echo-daemon ready" % p in inst.log()
                            for p in pids), what="children to be ready")
    time.sleep(0.2)
    for pid in pids:
        inst.kill9(pid)
    c3 = session(inst)
    c3.echo("after killing them all")
    c3.close()
    assert "throttling" not in inst.log()


@pt.instance(services={"echo": {"command": "echo-daemon", "maxproc": 2}})
def test_maxproc(inst):
    """more slow clients than maxproc: never more than maxproc children"""
    conns = []
    for i in range(8):
        conns.append(session(inst))
        assert len(inst.child_pids("echo")) <= 2, inst.child_pids("echo")
    time.sleep(0.3)
    assert len(inst.child_pids("echo")) <= 2, inst.child_pids("echo")
    pids = set(c.pid for c in conns)
    assert len(pids) <= 2, pids
    for i, c in enumerate(conns):
        c.echo("client %d" % i)
        c.close()


@pt.instance(services=ECHO)
def test_reload_keeps_connections(inst):
    """SIGHUP: an open connection keeps working, new ones see the new value"""
    c = session(inst)
    assert c.value == "10240000"
    inst.set_main_cf("message_size_limit = 4242")
    inst.reload()
    assert re.search(r"reload -- version \S+, configuration ", inst.log())

    def new_value():
        c2 = session(inst)
        c2.close()
        return c2.value == "4242" and c2.pid != c.pid
    pt.wait_for(new_value, what="a connection with the new configuration")
    c.echo("after reload")
    assert pt.pid_alive(c.pid), "old child exited with a connection open"
    c.close()
    pt.wait_for(lambda: not pt.pid_alive(c.pid), what="old child to exit")


@pt.instance(services=ECHO)
def test_reload_adds_and_removes(inst):
    """a service added by a reload starts, a removed one stops listening"""
    inst.services["second"] = "echo-daemon"
    inst.write_config()
    inst.reload()
    c = pt.wait_for(lambda: _try_session(inst, "second"), what="new service")
    c.close()
    del inst.services["second"]
    inst.write_config()
    inst.reload()
    pt.wait_for(lambda: _try_session(inst, "second") is None, what="removed service")
    pt.wait_for(lambda: not pt.pid_alive(c.pid), what="removed service's child to exit")
    session(inst, "echo").close()


def _try_session(inst, service):
    try:
        return session(inst, service)
    except (OSError, AssertionError):  # refused, or reset from a closing backlog
        return None


@pt.instance(services={"echo": {"command": "echo-daemon", "maxproc": 1}},
             main_cf=["max_use = 2"])
def test_max_use(inst):
    """a child exits after max_use clients and is replaced"""
    c = session(inst)
    c.close()
    c2 = session(inst)
    assert c2.pid == c.pid, "maxproc 1: the same child serves both"
    c2.echo("last client of this child")
    c2.close()
    pt.wait_for(lambda: not pt.pid_alive(c.pid), what="child to exit after max_use")
    c3 = session(inst)
    assert c3.pid != c.pid
    c3.close()
    assert "warning" not in inst.log(), inst.log()


def test_sigterm_stops_everything():
    """SIGTERM: every process exits, the pid file is removed"""
    inst = pt.Instance(services={"echo": "echo-daemon",
                                 "tick": {"type": "fifo", "command": "echo-daemon",
                                          "wakeup": 1, "maxproc": 1}})
    try:
        inst.start()
        c = session(inst)
        master = inst.master_pid()
        pids = inst.child_pids()
        assert c.pid in pids
        os.kill(master, signal.SIGTERM)
        inst.proc.wait(10)
        for p in pids + [master]:
            pt.wait_for(lambda: not pt.pid_alive(p), 5, what="pid %d to exit" % p)
        assert not os.path.exists(inst.pid_file), "pid file left behind"
        assert not os.path.exists(os.path.join(inst.queue, "public", "tick")), "fifo left"
        assert "terminating on signal 15" in inst.log()
        assert c.sock.recv(10) == b"", "connection still open"
        c.close()
        inst.check_sanitizers()
    finally:
        inst.stop(check=False)


@pt.instance(services=ECHO)
def test_master_death(inst):
    """kill -9 of the master: its children exit by themselves"""
    c = session(inst)
    pids = inst.child_pids()
    inst.kill9(inst.proc.pid)
    inst.proc.wait(5)
    for p in pids:
        pt.wait_for(lambda: not pt.pid_alive(p), 5, what="child %d to exit" % p)
    c.close()


@pt.instance(services={"broken": {"command": "no-such-daemon"}, "echo": "echo-daemon"})
def test_throttle(inst):
    """a command that cannot start: Postfix's warnings, then throttling"""
    inst.wait_log(r"warning: process \S+/no-such-daemon pid \d+ exit status 1")
    inst.wait_log(r"warning: \S+/no-such-daemon: bad command startup -- throttling")
    n = len(re.findall("bad command startup", inst.log()))
    time.sleep(0.5)
    assert len(re.findall("bad command startup", inst.log())) == n, "not throttled"
    session(inst, "echo").close()


@pt.instance(services={"tick": {"type": "fifo", "command": "echo-daemon", "wakeup": 1,
                                "maxproc": 1}})
def test_wakeup(inst):
    """a fifo service with wakeup 1 receives its triggers"""
    inst.wait_log(r"echo-daemon\[\d+\]: trigger: 1 bytes", timeout=10, count=2)


@pt.instance(services={"echo": {"type": "unix", "command": "echo-daemon"}})
def test_unix_service(inst):
    """a unix service: socket in private/, served by a child"""
    path = os.path.join(inst.queue, "private", "echo")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    c = Conn(s)
    c.echo("over a unix socket")
    c.close()
    assert c.pid in inst.child_pids("echo")


@pt.instance(services=ECHO)
def test_ipv6(inst):
    """inet services listen on ::1 too when the host has IPv6"""
    if not inst.ipv6:
        pt.skip("no IPv6 on this host")
    c = session(inst, family=socket.AF_INET6)
    c.echo("v6")
    c.close()


@pt.instance(services={"echo": {"command": "echo-daemon", "unpriv": "y", "chroot": "y"}})
def test_privilege_drop(inst):
    """as root: children become mail_owner and chroot to the queue"""
    if not pt.is_root():
        pt.skip("not running as root")
    c = session(inst)
    with open("/proc/%d/status" % c.pid) as f:
        uids = [line.split()[1:] for line in f if line.startswith("Uid:")][0]
    nobody = pwd.getpwnam("nobody").pw_uid
    assert uids == [str(nobody)] * 4, uids
    assert os.readlink("/proc/%d/root" % c.pid) == os.path.realpath(inst.queue)
    c.echo("unprivileged")
    c.close()


def test_bad_master_cf():
    """a master.cf error stops the master with the line number"""
    inst = pt.Instance(services=ECHO, master_cf=["", "x pass - - n - - echo-daemon"])
    try:
        master = os.path.join(inst.libexec, "master")
        r = subprocess.run([master, "-c", inst.etc, "-d"], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 1, r
        text = inst.log() + r.stderr
        assert re.search(r"master\.cf: line 4: service type \"pass\" is not supported", text), text
        assert not os.path.exists(inst.pid_file)
    finally:
        inst.stop(check=False)


def petrel(inst, *args):
    """Run the petrel command for the instance."""
    return subprocess.run([os.path.join(pt.BUILD, "cli", "petrel"), "-c", inst.etc] + list(args),
                          capture_output=True, text=True, timeout=60)


def test_petrel_commands():
    """petrel status/start/reload/stop, and start over a stale pid file"""
    inst = pt.Instance(services=ECHO)
    try:
        r = petrel(inst, "status")
        assert r.returncode == 1 and "the Petrel mail system is not running" in r.stderr, r
        r = petrel(inst, "stop")
        assert r.returncode == 1 and "not running" in r.stderr, r
        r = petrel(inst, "start")
        assert r.returncode == 0, r
        pid = inst.master_pid()
        assert pid and pt.pid_alive(pid)
        inst.seen_pids.add(pid)
        r = petrel(inst, "status")
        assert r.returncode == 0, r
        assert ("petrel/master: the Petrel mail system is running: PID: %d" % pid) in r.stderr, r
        r = petrel(inst, "start")
        assert r.returncode == 1 and "already running" in r.stderr, r
        session(inst).close()
        r = petrel(inst, "reload")
        assert r.returncode == 0, r
        inst.wait_log(r"reload -- version")
        # A master killed with -9 leaves a stale pid file behind.
        children = inst.child_pids()
        inst.kill9(pid)
        pt.wait_for(lambda: not pt.pid_alive(pid), what="master to die")
        for p in children:
            pt.wait_for(lambda: not pt.pid_alive(p), 5, what="child %d to exit" % p)
        assert os.path.exists(inst.pid_file)
        r = petrel(inst, "status")
        assert r.returncode == 1, r
        r = petrel(inst, "start")
        assert r.returncode == 0, r
        pid2 = inst.master_pid()
        assert pid2 != pid and pt.pid_alive(pid2)
        inst.seen_pids.add(pid2)
        session(inst).close()
        r = petrel(inst, "stop")
        assert r.returncode == 0, r
        assert not pt.pid_alive(pid2)
        assert not os.path.exists(inst.pid_file)
        r = petrel(inst, "status")
        assert r.returncode == 1, r
    finally:
        inst.stop(check=False)


def test_master_t_and_usage():
    """master -t says whether a master runs; petrel rejects bad usage"""
    inst = pt.Instance(services=ECHO)
    try:
        master = os.path.join(inst.libexec, "master")
        assert subprocess.run([master, "-c", inst.etc, "-t"]).returncode == 0
        inst.start()
        assert subprocess.run([master, "-c", inst.etc, "-t"]).returncode == 1
        r = subprocess.run([master, "-c", inst.etc, "-d"], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 1 and "already running" in inst.log() + r.stderr, r
        r = petrel(inst, "frobnicate")
        assert r.returncode == 1 and r.stderr.startswith("petrel: fatal: usage:"), r
        inst.stop()
    finally:
        inst.stop(check=False)


if __name__ == "__main__":
    pt.main()
