#!/usr/bin/env python3
"""e2e-agent.py: smtp-client(8) in its LMTP role under a running master.
The test plays qmgr (the delivery request over queue/private/lmtp, as
doc/delivery.md specifies) and the LMTP server (a fake in Python threads,
on a UNIX socket in queue/private/ and on a loopback TCP port), and checks
the per-recipient results for 250/450/550 mixes, what the server received
(LHLO, MAIL/RCPT parameters, dot-stuffed CRLF content), connection refused,
a server that dies in DATA, the delivery log lines (Postfix's format), and
that a malformed request only closes that connection."""

import os
import re
import socket
import threading
import time

import petrel_test as pt

LMTP = {"lmtp": {"type": "unix", "command": "smtp-client"}}
MAIN_CF = ["lmtp_lhlo_timeout = 5s", "lmtp_data_done_timeout = 5s"]

CONTENT = (b"From: a@example.test\r\nSubject: agent test\r\n\r\n"
           b".leading dot\r\n..two dots\r\nmiddle\r\n.\r\nlast line without CRLF")
STUFFED = (b"From: a@example.test\r\nSubject: agent test\r\n\r\n"
           b"..leading dot\r\n...two dots\r\nmiddle\r\n..\r\nlast line without CRLF\r\n")

_serial = [0]


# ---------------------------------------------------------------- queue file

def rec(kind, data):
    return kind + str(len(data)).encode() + b":" + data + b"\n"


def write_queue_file(inst, sender, rcpts, content=CONTENT, attrs=None, arrival=None):
    """A queue file in queue/active/ (doc/queue-format.md); returns the
    queue ID and {address: status byte offset}."""
    arrival = arrival or time.time() - 1.5
    _serial[0] += 1
    sec = int(arrival)
    usec = int((arrival - sec) * 1e6)
    qid = "%08X%05X%X" % (sec, usec, 0xABC00 + _serial[0])
    out = bytearray()
    out += rec(b"V", b"petrel-queue 1")
    out += rec(b"T", ("%d.%06d" % (sec, usec)).encode())
    out += rec(b"S", sender.encode())
    for k, v in (attrs or {}).items():
        out += rec(b"A", ("%s=%s" % (k, v)).encode())
    out += rec(b"N", str(len(rcpts)).encode())
    offsets = {}
    for r in rcpts:
        addr, notify, orcpt = r if isinstance(r, tuple) else (r, 0, None)
        if orcpt:
            out += rec(b"O", orcpt.encode())
        data = b"P" + b"0123456789ABCDEF"[notify:notify + 1] + addr.encode()
        offsets[addr] = len(out) + 1 + len(str(len(data))) + 1
        out += rec(b"R", data)
    for i in range(0, len(content), 65536):
        out += rec(b"C", content[i:i + 65536])
    out += rec(b"Z", str(len(content)).encode())
    out += b"E0:\n"
    path = os.path.join(inst.queue, "active", qid)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(out)
    return qid, offsets


# ---------------------------------------------------------------- IPC records

def escape(value):
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\0", "\\0")


def unescape(value):
    return re.sub(r"\\(.)", lambda m: {"\\": "\\", "n": "\n", "0": "\0"}[m.group(1)], value)


def record(fields):
    return "".join("%s=%s\n" % (k, escape(str(v))) for k, v in fields) + "\n"


class Agent:
    """qmgr's side of one connection to private/lmtp."""

    def __init__(self, inst):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(os.path.join(inst.queue, "private", "lmtp"))
        self.buf = b""
        greeting = self.read_record()
        assert greeting == {"protocol": "delivery", "version": "1"}, greeting

    def read_record(self):
        while b"\n\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        raw, self.buf = self.buf.split(b"\n\n", 1)
        fields = {}
        for line in raw.decode().split("\n"):
            k, v = line.split("=", 1)
            fields[k] = unescape(v)
        return fields

    def send(self, qid, nexthop, rcpts):
        """Send one request; rcpts: [(address, orig, offset, notify, orcpt)]."""
        out = record([("request", "deliver"), ("queue_id", qid),
                      ("queue_file", "active/" + qid), ("nexthop", nexthop),
                      ("rcpt_count", len(rcpts))])
        for addr, orig, offset, notify, orcpt in rcpts:
            fields = [("address", addr), ("orig_rcpt", orig), ("offset", offset),
                      ("notify", notify)]
            if orcpt:
                fields.append(("orcpt", orcpt))
            out += record(fields)
        self.sock.sendall(out.encode())

    def results(self):
        """Read result records up to done."""
        results = []
        while True:
            r = self.read_record()
            assert r is not None, "agent closed the connection before done"
            if "done" in r:
                assert r == {"done": "1"}, r
                return results
            results.append(r)

    def deliver(self, qid, nexthop, rcpts):
        """Send one request, return its result records (done checked)."""
        self.send(qid, nexthop, rcpts)
        return self.results()

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------- fake LMTP

class FakeLmtp:
    """An LMTP server on a UNIX path or loopback TCP, scripted per test."""

    def __init__(self, path=None, pipelining=True, rcpt=None, final=None,
                 die_in_data=False, greeting="220 fake.example.test LMTP ready",
                 size_limit=None):
        self.pipelining = pipelining
        self.size_limit = size_limit
        self.rcpt = rcpt or {}
        self.final = final or {}
        self.die_in_data = die_in_data
        self.greeting = greeting
        self.commands = []
        self.data = []
        self.sessions = 0
        if path:
            if os.path.exists(path):
                os.unlink(path)
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(path)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        self.path = path
        self.sock.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.sessions += 1
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        f = conn.makefile("rb")

        def send(text):
            conn.sendall(text.encode() + b"\r\n")
        try:
            if self.greeting is None:
                # a server that never speaks: wait for the client to go
                while f.readline():
                    pass
                return
            send(self.greeting)
            accepted = []
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.decode().rstrip("\r\n")
                self.commands.append(cmd)
                u = cmd.upper()
                if u.startswith("LHLO "):
                    caps = ["fake.example.test",
                            "SIZE %d" % self.size_limit if self.size_limit else "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES",
                            "DSN", "SMTPUTF8"] + (["PIPELINING"] if self.pipelining else [])
                    for c in caps[:-1]:
                        send("250-" + c)
                    send("250 " + caps[-1])
                elif u.startswith("MAIL FROM:"):
                    accepted = []
                    send("250 2.1.0 Ok")
                elif u.startswith("RCPT TO:"):
                    addr = cmd[cmd.index("<") + 1:cmd.index(">")]
                    reply = self.rcpt.get(addr, "250 2.1.5 Ok")
                    if reply.startswith("2"):
                        accepted.append(addr)
                    send(reply)
                elif u == "DATA":
                    if not accepted:
                        send("554 5.5.1 Error: no valid recipients")
                        continue
                    send("354 End data with <CR><LF>.<CR><LF>")
                    body = b""
                    while True:
                        chunk = f.readline()
                        if not chunk:
                            return
                        if self.die_in_data:
                            return
                        if chunk == b".\r\n":
                            break
                        body += chunk
                    self.data.append(body)
                    for a in accepted:
                        send(self.final.get(a, "250 2.0.0 <%s> abc123 Saved" % a))
                elif u == "RSET":
                    send("250 2.0.0 Ok")
                elif u == "QUIT":
                    send("221 2.0.0 Bye")
                    return
                else:
                    send("502 5.5.2 Error: command not recognized")
        except OSError:
            pass
        finally:
            f.close()
            conn.close()

    def close(self):
        self.sock.close()
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)


def by_address(results):
    return {r["address"]: r for r in results}


LOG_RX = (r"(?P<id>[0-9A-F]+): to=<(?P<to>[^>]*)>(?:, orig_to=<(?P<orig>[^>]*)>)?, "
          r"relay=(?P<relay>\S+), delay=(?P<delay>[0-9.]+), "
          r"delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, dsn=(?P<dsn>\d\.\d+\.\d+), "
          r"status=(?P<status>sent|deferred|bounced) \((?P<reason>.*)\)$")


def log_lines(inst, qid):
    out = {}
    for line in inst.log().splitlines():
        m = re.search(LOG_RX, line)
        if m and m.group("id") == qid:
            out[m.group("to")] = m
    return out


# ---------------------------------------------------------------- tests

@pt.instance(services=LMTP, main_cf=MAIN_CF)
def test_mixed_results_unix(inst):
    """250/450/550 at RCPT and after the dot, over a UNIX socket, pipelined"""
    server = FakeLmtp(path=os.path.join(inst.queue, "private", "lmtpd"),
                      rcpt={"b@example.test": "450 4.2.1 Try later",
                            "c@example.test": "550 5.1.1 No such user"},
                      final={"d@example.test": "452 4.2.2 Mailbox full",
                             "e@example.test": "554 5.7.1 Rejected by filter"})
    try:
        rcpts = [("a@example.test", 6, "rfc822;team@example.test"), "b@example.test",
                 "c@example.test", "d@example.test", "e@example.test"]
        qid, offs = write_queue_file(inst, "sender@example.org", rcpts,
                                     attrs={"body": "8BITMIME", "ret": "HDRS",
                                            "envid": "env id+1"})
        agent = Agent(inst)
        req = [("a@example.test", "team@example.test", offs["a@example.test"], 6,
                "rfc822;team@example.test")]
        req += [(a, "", offs[a], 0, None) for a in rcpts[1:]]
        res = by_address(agent.deliver(qid, "unix:private/lmtpd", req))
        agent.close()
        want = {"a@example.test": ("delivered", "2.0.0"),
                "b@example.test": ("deferred", "4.2.1"),
                "c@example.test": ("bounced", "5.1.1"),
                "d@example.test": ("deferred", "4.2.2"),
                "e@example.test": ("bounced", "5.7.1")}
        for a, (action, status) in want.items():
            assert res[a]["action"] == action and res[a]["status"] == status, (a, res[a])
            assert res[a]["offset"] == str(offs[a]), res[a]
            assert res[a]["relay"] == "mx.example.test[private/lmtpd]", res[a]
        assert res["a@example.test"]["reply"].startswith("250 2.0.0 <a@example.test>"), res
        assert res["c@example.test"]["reply"] == (
            "host mx.example.test[private/lmtpd] said: 550 5.1.1 No such user "
            "(in reply to RCPT TO command)"), res["c@example.test"]
        assert res["d@example.test"]["reply"].endswith(
            "452 4.2.2 Mailbox full (in reply to end of DATA command)"), res
        cmds = server.commands
        assert cmds[0] == "LHLO mx.example.test", cmds
        assert cmds[1] == ("MAIL FROM:<sender@example.org> SIZE=%d BODY=8BITMIME RET=HDRS "
                           "ENVID=env+20id+2B1" % len(CONTENT)), cmds[1]
        assert cmds[2] == ("RCPT TO:<a@example.test> NOTIFY=FAILURE,SUCCESS "
                           "ORCPT=rfc822;team@example.test") or cmds[2] == (
            "RCPT TO:<a@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;team@example.test"
        ), cmds[2]
        assert server.data == [STUFFED], server.data
        pt.wait_for(lambda: len(log_lines(inst, qid)) == 5, what="5 log lines")
        logs = log_lines(inst, qid)
        assert logs["a@example.test"].group("orig") == "team@example.test"
        assert logs["a@example.test"].group("status") == "sent"
        assert logs["a@example.test"].group("relay") == "mx.example.test[private/lmtpd]"
        assert logs["c@example.test"].group("status") == "bounced"
        assert logs["b@example.test"].group("dsn") == "4.2.1"
        assert float(logs["a@example.test"].group("delay")) >= 1
        # logged under the role's name, as Postfix's lmtp(8)
        assert re.search(r" postfix/lmtp\[\d+\]: %s: to=<a@example\.test>, "
                         r"orig_to=<team@example\.test>, relay=" % qid, inst.log()), inst.log()
    finally:
        server.close()


@pt.instance(services=LMTP, main_cf=MAIN_CF)
def test_tcp_without_pipelining(inst):
    """inet nexthop, one command at a time, two requests on one connection"""
    server = FakeLmtp(pipelining=False, rcpt={"x@example.test": "550 5.1.1 Unknown"})
    try:
        agent = Agent(inst)
        for round_ in range(2):
            qid, offs = write_queue_file(inst, "", ["x@example.test", "y@example.test"])
            req = [(a, a, offs[a], 0, None) for a in ("x@example.test", "y@example.test")]
            res = by_address(agent.deliver(qid, "inet:127.0.0.1:%d" % server.port, req))
            relay = "127.0.0.1[127.0.0.1]:%d" % server.port
            assert res["x@example.test"]["action"] == "bounced", res
            assert res["y@example.test"]["action"] == "delivered", res
            assert res["y@example.test"]["relay"] == relay, res
        agent.close()
        assert "MAIL FROM:<> SIZE=%d" % len(CONTENT) in server.commands, server.commands
        assert server.data[-1] == STUFFED
        pt.wait_for(lambda: len(log_lines(inst, qid)) == 2, what="log lines")
        assert log_lines(inst, qid)["y@example.test"].group("orig") is None
    finally:
        server.close()


@pt.instance(services=LMTP, main_cf=MAIN_CF)
def test_connection_refused(inst):
    """no server: every recipient deferred with Postfix's connect reason"""
    qid, offs = write_queue_file(inst, "s@example.org", ["a@example.test", "b@example.test"])
    agent = Agent(inst)
    req = [(a, "", offs[a], 0, None) for a in ("a@example.test", "b@example.test")]
    res = agent.deliver(qid, "unix:private/nosuch", req)
    assert len(res) == 2
    for r in res:
        assert r["action"] == "deferred" and r["status"] == "4.4.1", r
        assert r["reply"] == "connect to private/nosuch: No such file or directory", r
        assert r["relay"] == "none", r
    port = pt.free_port(False)
    res = agent.deliver(qid, "inet:127.0.0.1:%d" % port, req)
    for r in res:
        assert r["reply"] == "connect to 127.0.0.1[127.0.0.1]:%d: Connection refused" % port, r
    agent.close()
    pt.wait_for(lambda: "connect to private/nosuch: No such file or directory" in inst.log())
    logs = log_lines(inst, qid)
    assert logs["a@example.test"].group("relay") == "none"
    assert logs["a@example.test"].group("dsn") == "4.4.1"


@pt.instance(services=LMTP, main_cf=MAIN_CF)
def test_server_dies_in_data(inst):
    """the server closes during the content: deferred, lost connection"""
    server = FakeLmtp(path=os.path.join(inst.queue, "private", "lmtpd"), die_in_data=True)
    try:
        qid, offs = write_queue_file(inst, "s@example.org", ["a@example.test"],
                                     content=b"Subject: x\r\n\r\n" + b"y" * 300000)
        agent = Agent(inst)
        res = agent.deliver(qid, "unix:private/lmtpd",
                            [("a@example.test", "", offs["a@example.test"], 0, None)])
        agent.close()
        assert res[0]["action"] == "deferred" and res[0]["status"] == "4.4.2", res
        assert re.match(r"lost connection with mx\.example\.test\[private/lmtpd\] while "
                        r"sending (message body|end of data)", res[0]["reply"]), res
    finally:
        server.close()


@pt.instance(services=LMTP, main_cf=MAIN_CF)
def test_size_limit(inst):
    """a message over the server's SIZE bounces before MAIL FROM"""
    server = FakeLmtp(path=os.path.join(inst.queue, "private", "lmtpd"), size_limit=50)
    try:
        qid, offs = write_queue_file(inst, "s@example.org", ["a@example.test"])
        agent = Agent(inst)
        res = agent.deliver(qid, "unix:private/lmtpd",
                            [("a@example.test", "", offs["a@example.test"], 0, None)])
        agent.close()
        assert res[0]["action"] == "bounced" and res[0]["status"] == "5.3.4", res
        assert res[0]["reply"] == ("message size %d exceeds size limit 50 of server "
                                   "mx.example.test[private/lmtpd]" % len(CONTENT)), res
        assert not any(c.startswith("MAIL") for c in server.commands), server.commands
    finally:
        server.close()


@pt.instance(services=LMTP, main_cf=MAIN_CF)
def test_bad_request(inst):
    """a malformed request closes that connection; the agent serves on"""
    agent = Agent(inst)
    agent.sock.sendall(b"request=deliver\nqueue_id=../etc\nqueue_file=/etc/passwd\n"
                       b"nexthop=unix:x\nrcpt_count=1\n\n")
    assert agent.read_record() is None
    agent.close()
    agent = Agent(inst)
    qid, offs = write_queue_file(inst, "s@example.org", ["a@example.test"])
    res = agent.deliver(qid, "unix:private/nosuch",
                        [("a@example.test", "", offs["a@example.test"], 0, None)])
    assert res[0]["action"] == "deferred", res
    # a queue file that is not there: deferred, not a crash
    res = agent.deliver("69222BD00000AFFFFF", "unix:private/nosuch",
                        [("a@example.test", "", 10, 0, None)])
    assert res[0]["action"] == "deferred" and res[0]["status"] == "4.3.0", res
    agent.close()


@pt.instance(services={"lmtp": {"type": "unix", "command": "smtp-client", "maxproc": 1}},
             main_cf=["lmtp_lhlo_timeout = 1s"])
def test_timeout_and_concurrency(inst):
    """a silent server times out; two requests in one process run at once"""
    server = FakeLmtp(path=os.path.join(inst.queue, "private", "lmtpd"), greeting=None)
    try:
        agents, qids = [], []
        for _ in range(2):
            qid, offs = write_queue_file(inst, "s@example.org", ["a@example.test"])
            qids.append((qid, offs))
        start = time.time()
        for qid, offs in qids:
            agent = Agent(inst)
            agent.send(qid, "unix:private/lmtpd",
                       [("a@example.test", "", offs["a@example.test"], 0, None)])
            agents.append(agent)
        for agent in agents:
            res = agent.results()
            agent.close()
            assert res[0]["action"] == "deferred" and res[0]["status"] == "4.4.2", res
            assert res[0]["reply"] == ("conversation with mx.example.test[private/lmtpd] "
                                       "timed out while receiving the initial server "
                                       "greeting"), res
        elapsed = time.time() - start
        # one process (maxproc 1) waited for both at the same time
        assert elapsed < 1.9, elapsed
        # a delivery still in flight when the instance stops is freed
        # cleanly (LeakSanitizer checks pre_exit)
        inst.set_main_cf("lmtp_lhlo_timeout = 60s")
        inst.reload()
        qid, offs = qids[0]
        inflight = Agent(inst)
        inflight.send(qid, "unix:private/lmtpd",
                      [("a@example.test", "", offs["a@example.test"], 0, None)])
        pt.wait_for(lambda: server.sessions >= 3, what="agent connected to the server")
        # the harness stops the instance with this delivery in flight
    finally:
        server.close()


@pt.instance(services={"smtp": {"type": "unix", "command": "smtp-client"}})
def test_smtp_role_refused(inst):
    """the SMTP role is not implemented: deferred with a clear reason"""
    qid, offs = write_queue_file(inst, "s@example.org", ["a@example.test"])
    sock_path = os.path.join(inst.queue, "private", "smtp")
    agent = Agent.__new__(Agent)
    agent.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    agent.sock.settimeout(30)
    agent.sock.connect(sock_path)
    agent.buf = b""
    assert agent.read_record() == {"protocol": "delivery", "version": "1"}
    res = agent.deliver(qid, "example.test", [("a@example.test", "", offs["a@example.test"],
                                               0, None)])
    agent.close()
    assert res[0]["action"] == "deferred" and res[0]["status"] == "4.3.0", res
    assert "not implemented" in res[0]["reply"], res


if __name__ == "__main__":
    pt.main()
