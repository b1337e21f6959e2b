#!/usr/bin/env python3
"""e2e-qmgr.py: qmgr between smtpd and a FAKE delivery agent (a Python
thread on queue/private/lmtp speaking doc/delivery.md): the request after
virtual alias expansion (a duplicate final address asked for once), removal
after delivery, a deferred recipient (deferred/, the other recipient's
status byte D, mtime in the future, defer/ID) retried by "F" on
public/qmgr, an agent dying mid-request, qmgr killed with SIGKILL while a
request is in flight (the master restarts it; the recipient already done
is not asked for again), a corrupt file in incoming/ moved to corrupt/,
and the pflogsumm-style lines in the log."""

import os
import queue
import re
import smtplib
import socket
import threading
import time

import petrel_test as pt

SERVICES = {
    "smtp": "smtpd",
    "qmgr": {"type": "fifo", "private": "n", "command": "qmgr", "maxproc": 1, "wakeup": "-",
             "options": {"max_idle": "2s"}},  # resident: max_idle must not stop it
}


def unescape(value):
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append({"n": "\n", "\\": "\\", "0": "\0"}.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def read_record(f):
    """One IPC record as a dict, or None at EOF."""
    rec = {}
    while True:
        line = f.readline()
        if not line:
            return None
        line = line.decode("utf-8", "surrogateescape").rstrip("\n")
        if line == "":
            return rec
        name, _, value = line.partition("=")
        rec[name] = unescape(value)


def record(fields):
    return "".join("%s=%s\n" % (k, v) for k, v in fields).encode() + b"\n"


class FakeAgent:
    """Listens on path; per request calls self.policy(req) which returns a
    list of actions, one per recipient: "delivered", "deferred",
    "bounced", then optionally "die" (close now) or "hang" (wait for
    self.release, then close)."""

    def __init__(self, path):
        self.path = path
        self.requests = queue.Queue()
        self.policy = lambda req: ["delivered"] * len(req["rcpts"])
        self.release = threading.Event()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.listen(16)
        self.stopping = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        try:
            conn.sendall(record([("protocol", "delivery"), ("version", "1")]))
            f = conn.makefile("rb")
            while True:
                hdr = read_record(f)
                if hdr is None:
                    return
                rcpts = [read_record(f) for _ in range(int(hdr["rcpt_count"]))]
                req = {"header": hdr, "rcpts": rcpts}
                self.requests.put(req)
                for i, action in enumerate(self.policy(req)):
                    if action == "die":
                        return
                    if action == "hang":
                        self.release.wait(30)
                        return
                    r = rcpts[i]
                    status = {"delivered": "2.0.0", "deferred": "4.2.0",
                              "bounced": "5.1.1"}[action]
                    conn.sendall(record([("offset", r["offset"]),
                                         ("address", r["address"]),
                                         ("status", status), ("action", action),
                                         ("reply", "%s fake %s" % (status[0] + "50", action)),
                                         ("relay", "fake[private/lmtp]")]))
                else:
                    conn.sendall(record([("done", "1")]))
        except OSError:
            pass
        finally:
            conn.close()

    def next_request(self, timeout=20):
        return self.requests.get(timeout=timeout)

    def stop(self):
        self.stopping = True
        self.release.set()
        self.sock.close()


def send(inst, rcpts, sender="sender@example.org", body="hello"):
    with smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=10) as s:
        s.sendmail(sender, rcpts, "Subject: t\r\n\r\n%s\r\n" % body)
    poke(inst, "A")


def poke(inst, byte):
    """printf BYTE > queue/public/qmgr (non-blocking, as the writers do)."""
    fd = os.open(os.path.join(inst.queue, "public", "qmgr"), os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, byte.encode())
    finally:
        os.close(fd)


def status_byte(path, offset):
    with open(path, "rb") as f:
        f.seek(int(offset))
        return f.read(1)


def queue_files(inst, name):
    d = os.path.join(inst.queue, name)
    return sorted(f for f in os.listdir(d) if not f.startswith(".")) if os.path.isdir(d) else []


def make_instance():
    inst = pt.Instance(services=SERVICES, ipv6=False)
    vmailbox = os.path.join(inst.etc, "vmailbox")
    with open(vmailbox, "w") as f:
        for u in ("alice", "bob", "carol", "dave"):
            f.write("%s@example.test %s/\n" % (u, u))
    virtual = os.path.join(inst.etc, "virtual")
    with open(virtual, "w") as f:
        f.write("team@example.test alice@example.test, bob@example.test\n")
    inst.set_main_cf("virtual_mailbox_maps = texthash:" + vmailbox,
                     "virtual_alias_maps = texthash:" + virtual,
                     "queue_run_delay = 3600s", "bounce_queue_lifetime = 0")
    return inst


def test_delivered(inst):
    """aliases expanded, duplicate asked once, removed after delivery"""
    agent = inst.agent
    agent.policy = lambda req: ["delivered"] * len(req["rcpts"])
    send(inst, ["alice@example.test", "team@example.test"])
    req = agent.next_request()
    hdr = req["header"]
    qid = hdr["queue_id"]
    assert hdr["request"] == "deliver", hdr
    assert hdr["queue_file"] == "active/" + qid, hdr
    assert hdr["nexthop"] == "unix:private/lmtpd", hdr
    got = sorted((r["address"], r["orig_rcpt"]) for r in req["rcpts"])
    assert got == [("alice@example.test", "alice@example.test"),
                   ("bob@example.test", "team@example.test")], got
    inst.wait_log(r"%s: removed" % qid)
    assert not os.path.exists(os.path.join(inst.queue, "active", qid))
    assert qid not in queue_files(inst, "deferred")
    log = inst.log()
    assert "%s: from=<sender@example.org>, size=" % qid in log, log
    assert "nrcpt=2 (queue active)" in log, log


def test_deferred_then_flush(inst):
    """one recipient deferred: deferred/, D byte, future mtime; F retries"""
    agent = inst.agent
    agent.policy = lambda req: ["delivered" if r["address"].startswith("alice") else "deferred"
                                for r in req["rcpts"]]
    send(inst, ["alice@example.test", "bob@example.test"])
    req = agent.next_request()
    qid = req["header"]["queue_id"]
    offsets = {r["address"]: r["offset"] for r in req["rcpts"]}
    path = os.path.join(inst.queue, "deferred", qid)
    pt.wait_for(lambda: os.path.exists(path), what="file in deferred/")
    assert status_byte(path, offsets["alice@example.test"]) == b"D"
    assert status_byte(path, offsets["bob@example.test"]) == b"P"
    assert os.stat(path).st_mtime > time.time() + 60, os.stat(path).st_mtime
    with open(os.path.join(inst.queue, "defer", qid)) as f:
        text = f.read()
    assert text.startswith(offsets["bob@example.test"] + "\t4.2.0\t"), text
    assert "fake deferred" in text, text
    agent.policy = lambda req: ["delivered"] * len(req["rcpts"])
    poke(inst, "F")
    req = agent.next_request()
    assert req["header"]["queue_id"] == qid
    assert [r["address"] for r in req["rcpts"]] == ["bob@example.test"], req
    inst.wait_log(r"%s: removed" % qid)
    assert not os.path.exists(os.path.join(inst.queue, "defer", qid))


def test_agent_dies(inst):
    """the agent closes mid-request: deferred (delivery agent died)"""
    agent = inst.agent
    agent.policy = lambda req: ["delivered", "die"]
    send(inst, ["carol@example.test", "dave@example.test"])
    req = agent.next_request()
    qid = req["header"]["queue_id"]
    offsets = [r["offset"] for r in req["rcpts"]]
    path = os.path.join(inst.queue, "deferred", qid)
    pt.wait_for(lambda: os.path.exists(path), what="file in deferred/")
    inst.wait_log(r"%s: to=<dave@example.test>.*status=deferred \(delivery agent died\)" % qid)
    assert status_byte(path, offsets[0]) == b"D"
    assert status_byte(path, offsets[1]) == b"P"
    agent.policy = lambda req: ["delivered"] * len(req["rcpts"])
    poke(inst, "F")
    req = agent.next_request()
    assert [r["address"] for r in req["rcpts"]] == ["dave@example.test"], req
    inst.wait_log(r"%s: removed" % qid)


def test_qmgr_killed(inst):
    """qmgr SIGKILLed with a request in flight: restarted, no re-delivery"""
    agent = inst.agent
    agent.release.clear()
    agent.policy = lambda req: ["delivered", "hang"]
    send(inst, ["alice@example.test", "carol@example.test"])
    req = agent.next_request()
    qid = req["header"]["queue_id"]
    offsets = [r["offset"] for r in req["rcpts"]]
    path = os.path.join(inst.queue, "active", qid)
    pt.wait_for(lambda: status_byte(path, offsets[0]) == b"D", what="first recipient done")
    pids = inst.child_pids("qmgr")
    assert len(pids) == 1, pids
    agent.policy = lambda req: ["delivered"] * len(req["rcpts"])
    inst.kill9(pids[0])
    agent.release.set()

    def restarted():
        now = inst.child_pids("qmgr")
        if now and now != pids:
            return True
        try:
            poke(inst, "I")
        except OSError:
            pass
        return False
    pt.wait_for(restarted, timeout=30, interval=0.5, what="qmgr restart")
    req = agent.next_request(timeout=30)
    assert req["header"]["queue_id"] == qid
    assert [r["address"] for r in req["rcpts"]] == [req["rcpts"][0]["address"]]
    assert req["rcpts"][0]["offset"] == offsets[1], req
    inst.wait_log(r"%s: removed" % qid)


def test_corrupt(inst):
    """a damaged file in incoming/ goes to corrupt/"""
    qid = "6B036E842727DA76006"
    with open(os.path.join(inst.queue, "incoming", qid), "wb") as f:
        f.write(b"this is not a queue file\n")
    poke(inst, "A")
    inst.wait_log(r"warning: %s: corrupt queue file -- moved to corrupt" % qid)
    assert qid in queue_files(inst, "corrupt")
    assert qid not in queue_files(inst, "incoming") + queue_files(inst, "active")


def test_unknown_bounced(inst):
    """a recipient the agent bounces is done; the file is removed"""
    agent = inst.agent
    agent.policy = lambda req: ["bounced"] * len(req["rcpts"])
    send(inst, ["bob@example.test"])
    req = agent.next_request()
    qid = req["header"]["queue_id"]
    inst.wait_log(r"%s: removed" % qid)
    m = inst.wait_log(r"%s: sender non-delivery notification: [0-9A-F]+" % qid)
    bounce = re.search(r"%s: sender non-delivery notification: ([0-9A-F]+)" % qid,
                       inst.log()).group(1)
    # The bounce goes to sender@example.org over smtp, which this instance
    # does not run: deferred with the connect error, and (being null-sender
    # mail past bounce_queue_lifetime = 0) expired at once.
    inst.wait_log(r"%s: from=<>, size=\d+, nrcpt=1 \(queue active\)" % bounce)
    inst.wait_log(r"%s: to=<sender@example.org>, relay=none, .*dsn=4.3.0, "
                  r"status=deferred \(connect to private/smtp: " % bounce)
    inst.wait_log(r"%s: from=<>, status=expired, returned to sender" % bounce)
    inst.wait_log(r"%s: removed" % bounce)


def test_expired(inst):
    """null-sender mail past bounce_queue_lifetime (0) expires at once"""
    agent = inst.agent
    agent.policy = lambda req: ["deferred"] * len(req["rcpts"])
    send(inst, ["carol@example.test"], sender="")
    req = agent.next_request()
    qid = req["header"]["queue_id"]
    inst.wait_log(r"%s: from=<>, status=expired, returned to sender" % qid)
    inst.wait_log(r"%s: removed" % qid)
    assert qid not in queue_files(inst, "deferred")


def test_restart_in_flight(inst):
    """master restart with a request in flight: clean exit, then delivered"""
    agent = inst.agent
    agent.release.clear()
    agent.policy = lambda req: ["hang"]
    send(inst, ["dave@example.test"])
    req = agent.next_request()
    qid = req["header"]["queue_id"]
    inst.restart()  # also fails on sanitizer reports from the exits
    # A fifo service is started when its fifo is first written to (or at
    # its first wakeup): the scan of active/ then finds the message.
    poke(inst, "I")
    inst.wait_log(r"%s: removed" % qid)
    assert qid in [r["header"]["queue_id"] for r in [inst.agent.next_request()]]
    inst.check_sanitizers()


def main():
    inst = make_instance()
    if not os.path.exists(os.path.join(pt.BUILD, "qmgr", "qmgr")):
        print("1..0 # SKIP qmgr is not built")
        return
    tests = [("delivered", test_delivered), ("deferred_then_flush", test_deferred_then_flush),
             ("agent_dies", test_agent_dies), ("qmgr_killed", test_qmgr_killed),
             ("corrupt", test_corrupt), ("unknown_bounced", test_unknown_bounced),
             ("expired", test_expired), ("restart_in_flight", test_restart_in_flight)]

    def start_agent(i):
        if getattr(i, "agent", None) is not None:
            i.agent.stop()
        i.agent = FakeAgent(os.path.join(i.queue, "private", "lmtp"))
    orig_start = inst.start

    def start(*a, **kw):
        r = orig_start(*a, **kw)
        start_agent(inst)
        return r
    inst.start = start
    try:
        pt.main_shared(inst, tests)
    finally:
        if getattr(inst, "agent", None) is not None:
            inst.agent.stop()


if __name__ == "__main__":
    main()
