#!/usr/bin/env python3
"""e2e-smtp-load.py: bench/smtp-load against a fake SMTP server.

A small threaded SMTP server on 127.0.0.1 (a free port) answers EHLO, HELO,
MAIL, RCPT, DATA, RSET and QUIT, records what it receives, and misbehaves on
request: replies split byte by byte, 451 after some messages, 550 for one
recipient or to some MAIL commands, a connection closed in mid-transaction, no greeting at all, 421 at
the greeting, EHLO refused. Each case checks smtp-load's counts (from its -j line), its exit
status and what the server saw. Prints TAP.
"""

import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time

BUILD = os.environ.get("PETREL_BUILDDIR", os.path.join(os.path.dirname(__file__), ".."))
LOAD = os.path.join(BUILD, "bench", "smtp-load")

EHLO_REPLY = (b"250-fake.test greets you\r\n250-SIZE 100000000\r\n"
              b"250-PIPELINING\r\n250 8BITMIME\r\n")


class Recorder:
    """What the fake server saw, shared by its handler threads."""

    def __init__(self, mode):
        self.mode = mode
        self.lock = threading.Lock()
        self.connections = 0
        self.mails = 0
        self.rcpts = 0
        self.dots = 0
        self.tokens = []
        self.msgids = []
        self.body_sizes = []
        self.max_line = 0
        self.pipelined = False   # MAIL arrived with more commands behind it

    def count(self, attr):
        with self.lock:
            setattr(self, attr, getattr(self, attr) + 1)
            return getattr(self, attr)


class Handler(socketserver.BaseRequestHandler):
    """One SMTP session; the server's Recorder says how to misbehave."""

    def setup(self):
        self.rec = self.server.rec
        self.buf = b""
        self.no_mail = False      # the last MAIL was refused
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data):
        if self.rec.mode == "split":
            for i in range(len(data)):
                self.request.sendall(data[i:i + 1])
                time.sleep(0.0002)
        else:
            self.request.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.request.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def handle(self):
        rec = self.rec
        rec.count("connections")
        if rec.mode == "hang":
            while self.request.recv(4096):
                pass
            return
        if rec.mode == "greet421":
            self.send(b"421 4.3.2 fake.test busy\r\n")
            return
        self.send(b"220 fake.test ESMTP\r\n")
        while True:
            line = self.line()
            if line is None:
                return
            verb = line[:4].upper()
            if not self.command(verb, line):
                return

    def command(self, verb, line):
        """Answer one command; False ends the session."""
        rec = self.rec
        if verb == b"EHLO" and rec.mode == "noehlo":
            self.send(b"502 5.5.2 EHLO not implemented\r\n")
        elif verb == b"EHLO":
            self.send(EHLO_REPLY)
        elif verb == b"HELO":
            self.send(b"250 fake.test\r\n")
        elif verb == b"MAIL":
            n = rec.count("mails")
            if self.buf:
                rec.pipelined = True
            if rec.mode == "close" and n % 4 == 0:
                return False
            self.no_mail = rec.mode == "mailreject" and n % 5 == 0
            if self.no_mail:
                self.send(b"550 5.7.1 sender refused\r\n")
            else:
                self.send(b"250 2.1.0 Ok\r\n")
        elif verb in (b"RCPT", b"DATA") and self.no_mail:
            self.send(b"503 5.5.1 need MAIL first\r\n")
        elif verb == b"RCPT":
            rec.count("rcpts")
            if rec.mode == "reject" and b"<user13@" in line:
                self.send(b"550 5.1.1 no such user\r\n")
            else:
                self.send(b"250 2.1.5 Ok\r\n")
        elif verb == b"DATA":
            self.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            return self.data()
        elif verb == b"RSET":
            self.no_mail = False
            self.send(b"250 2.0.0 Ok\r\n")
        elif verb == b"QUIT":
            self.send(b"221 2.0.0 Bye\r\n")
            return False
        else:
            self.send(b"502 5.5.2 what?\r\n")
        return True

    def data(self):
        """Read a message up to the dot; record its headers and body size."""
        rec = self.rec
        lines = []
        while True:
            line = self.line()
            if line is None:
                return False
            if line == b".":
                break
            lines.append(line[1:] if line.startswith(b".") else line)
        blank = lines.index(b"") if b"" in lines else len(lines)
        body = lines[blank + 1:]
        with rec.lock:
            for h in lines[:blank]:
                if h.lower().startswith(b"x-bench-token:"):
                    rec.tokens.append(h.split(b":", 1)[1].strip().decode())
                if h.lower().startswith(b"message-id:"):
                    rec.msgids.append(h.split(b":", 1)[1].strip().decode())
            rec.body_sizes.append(sum(len(b) + 2 for b in body))
            rec.max_line = max([rec.max_line] + [len(b) + 2 for b in lines])
        n = rec.count("dots")
        if rec.mode == "tempfail" and n % 3 == 0:
            self.send(b"451 4.3.0 try again later\r\n")
        else:
            self.send(b"250 2.0.0 Ok: queued as FAKE%d\r\n" % n)
        return True


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128   # the default 5 drops connections under load

    def __init__(self, mode, family=socket.AF_INET, host="127.0.0.1"):
        self.address_family = family
        self.rec = Recorder(mode)
        super().__init__((host, 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def addr(self):
        host, port = self.server_address[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def stop(self):
        self.shutdown()
        self.server_close()


TESTS = 0
FAILED = 0


def ok(cond, desc, diag=None):
    global TESTS, FAILED
    TESTS += 1
    if not cond:
        FAILED += 1
    print(f"{'ok' if cond else 'not ok'} {TESTS} - {desc}", flush=True)
    if not cond and diag:
        for line in str(diag).splitlines():
            print(f"# {line}")
    return cond


def run_load(*args, timeout=60):
    """Run smtp-load; returns (exit status, JSON result or None, stderr, seconds)."""
    t = time.time()
    p = subprocess.run([LOAD, *args], capture_output=True, text=True, timeout=timeout)
    result = None
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
    return p.returncode, result, p.stdout + p.stderr, time.time() - t


def expect(res, want):
    """The fields of want that differ in res, as text ('' when all match)."""
    if res is None:
        return "no JSON line"
    return "; ".join(f"{k}={res.get(k)!r}, want {v!r}" for k, v in want.items()
                     if res.get(k) != v)


# Cases against a fake server: (name, server mode, smtp-load args, expected
# exit status, expected JSON fields).
CASES = [
    ("plain sessions", "normal", ["-m", "50", "-c", "5"], 0,
     {"sent": 50, "accepted": 50, "tempfail": 0, "rejected": 0, "errors": 0,
      "connections": 50}),
    ("pipelining, 3 rcpts, 5 msgs per connection", "normal",
     ["-m", "40", "-c", "4", "-r", "3", "-n", "5", "-z", "1000", "-P"], 0,
     {"accepted": 40, "errors": 0, "rcpt_refused": 0, "pipelining": True}),
    ("replies split byte by byte", "split", ["-m", "10", "-c", "2", "-n", "3", "-P"], 0,
     {"accepted": 10, "errors": 0}),
    ("451 after every third message", "tempfail", ["-m", "30", "-c", "3", "-n", "4"], 1,
     {"sent": 30, "accepted": 20, "tempfail": 10, "rejected": 0, "errors": 0}),
    ("550 for one recipient", "reject", ["-m", "30", "-c", "5"], 1,
     {"accepted": 29, "rejected": 1, "rcpt_refused": 1, "errors": 0}),
    ("550 to every fifth MAIL, pipelined", "mailreject",
     ["-m", "20", "-c", "2", "-n", "3", "-r", "2", "-P"], 1,
     {"sent": 20, "accepted": 16, "rejected": 4, "rcpt_refused": 0, "errors": 0}),
    ("550 to every fifth MAIL", "mailreject", ["-m", "20", "-c", "2", "-n", "3"], 1,
     {"sent": 20, "accepted": 16, "rejected": 4, "rcpt_refused": 0, "errors": 0}),
    ("server closes after every fourth MAIL", "close", ["-m", "20", "-c", "2", "-n", "3"], 1,
     {"sent": 20, "accepted": 15, "errors": 5, "not_started": 0}),
    ("EHLO refused: HELO, no pipelining", "noehlo", ["-m", "6", "-c", "2", "-n", "2", "-P"], 0,
     {"accepted": 6, "pipelined_connections": 0}),
    ("421 at the greeting", "greet421", ["-m", "4", "-c", "2"], 1,
     {"sent": 4, "accepted": 0, "tempfail": 4}),
    ("no greeting: the reply timeout", "hang", ["-m", "3", "-c", "3", "-w", "1"], 1,
     {"sent": 3, "errors": 3, "stopped": None}),
    ("no greeting: the global timeout", "hang", ["-m", "5", "-c", "2", "-T", "1"], 1,
     {"sent": 2, "errors": 2, "not_started": 3,
      "stopped": "global timeout (-T) reached"}),
]


def test_case(name, mode, args, status, want):
    srv = Server(mode)
    try:
        rc, res, out, secs = run_load("-s", srv.addr(), "-j", *args)
    finally:
        srv.stop()
    ok(rc == status and not expect(res, want), f"{name}: exit {status}, counts",
       f"exit {rc}; {expect(res, want)}\n{out}")
    rec = srv.rec
    if name == "plain sessions":
        ok(sorted(rec.tokens, key=int) == [str(i) for i in range(1, 51)],
           "one X-Bench-Token per message, 1..50", rec.tokens)
        ok(len(set(rec.msgids)) == 50, "unique Message-IDs", rec.msgids[:5])
        ok(set(rec.body_sizes) == {4096} and rec.max_line <= 78,
           "bodies of 4096 bytes in lines of at most 78 with CRLF",
           f"{set(rec.body_sizes)} {rec.max_line}")
        ok(not rec.pipelined, "no pipelining without -P")
    if name.startswith("pipelining"):
        ok(rec.rcpts == 120 and rec.pipelined and rec.connections >= 8,
           "120 RCPTs, MAIL pipelined, at least 8 connections",
           f"rcpts {rec.rcpts} pipelined {rec.pipelined} connections {rec.connections}")
        ok(res and res["pipelined_connections"] == res["connections"],
           "every connection pipelined", res)
        ok(set(rec.body_sizes) == {1000}, "-z 1000 gives 1000-byte bodies",
           set(rec.body_sizes))
    if mode == "hang" and "-T" in args:
        ok(secs < 10, "the global timeout ends the run", f"{secs:.1f} s")


def test_sizes():
    """Body sizes around the line length come out exact."""
    for size, got in ((0, 0), (1, 2), (2, 2), (77, 77), (78, 78), (79, 79), (157, 157)):
        srv = Server("normal")
        try:
            rc, res, out, _ = run_load("-s", srv.addr(), "-j", "-m", "1", "-z", str(size))
        finally:
            srv.stop()
        ok(rc == 0 and srv.rec.body_sizes == [got] and srv.rec.max_line <= 79,
           f"-z {size}: body of {got} bytes", f"{srv.rec.body_sizes} {srv.rec.max_line}\n{out}")


def test_refused_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                  # nothing listens there now
    rc, res, out, _ = run_load("-s", f"127.0.0.1:{port}", "-j", "-m", "5", "-c", "2")
    ok(rc == 1 and not expect(res, {"sent": 5, "errors": 5, "accepted": 0}),
       "connection refused: every message an error, exit 1", out)


def test_ipv6():
    try:
        srv = Server("normal", socket.AF_INET6, "::1")
    except OSError:
        print(f"ok {TESTS + 1} - # SKIP no ::1 on this host")
        globals()["TESTS"] += 1
        return
    try:
        rc, res, out, _ = run_load("-s", srv.addr(), "-j", "-m", "3")
    finally:
        srv.stop()
    ok(rc == 0 and not expect(res, {"accepted": 3}), "[::1]:port is accepted", out)


USAGE_CASES = [
    (["-s", "192.0.2.1:25"], "not a loopback address"),
    (["-s", "[2001:db8::1]:25"], "not a loopback address"),
    (["-s", "::ffff:127.0.0.1:25"], "not a loopback address"),
    (["-s", "mail.example.com:25"], "not a numeric address"),
    (["-s", "127.0.0.1"], "expected host:port"),
    (["-s", "127.0.0.1:0"], "expected a number"),
    (["-m", "0"], "expected a number"),
    (["-c", "99999999"], "expected a number"),
    (["-z", "-1"], "expected a number"),
    (["-t", "user%s@x"], "the only %"),
    (["-t", "u%d%d@x"], "the only %"),
    (["-f", "a b@x"], "printable ASCII"),
    (["extra"], "unexpected argument"),
]


def test_usage():
    for args, text in USAGE_CASES:
        rc, _, out, _ = run_load(*args)
        ok(rc == 2 and text in out, f"refused: {' '.join(args)}", out)


def main():
    if not os.access(LOAD, os.X_OK):
        print(f"1..0 # SKIP {LOAD} not built")
        return 0
    for case in CASES:
        test_case(*case)
    test_sizes()
    test_refused_port()
    test_ipv6()
    test_usage()
    print(f"1..{TESTS}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
