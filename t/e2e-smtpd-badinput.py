#!/usr/bin/env python3
"""e2e-smtpd-badinput.py: bad input to smtpd gets a clear protocol error and
nothing else: each case asserts the exact reply class of every step and
that nothing reached the queue. The smuggling cases assert that a bare LF
or CR never ends DATA: one message is queued, holding the would-be second
one as text."""

import os

import petrel_test as pt
from petrel_test import Instance
from smtp_raw import SMTPRaw, SMUGGLE_ENDINGS, smuggle

OK_FROM = "MAIL FROM:<sender@client.test>\r\n"
OK_RCPT = "RCPT TO:<alice@example.test>\r\n"
EHLO = "EHLO client.test\r\n"

# (name, [(bytes to send, expected reply code or None for no reply)], closes)
CASES = [
    ("HELO without name", [("HELO\r\n", 501)]),
    ("EHLO without name", [("EHLO\r\n", 501)]),
    ("EHLO with 8-bit name", [(b"EHLO h\xc3\xa9llo\r\n", 501)]),
    ("EHLO name too long", [("EHLO " + "a" * 300 + "\r\n", 501)]),
    ("MAIL without argument", [(EHLO, 250), ("MAIL\r\n", 501)]),
    ("MAIL FROM without colon", [(EHLO, 250), ("MAIL FROM <a@b.test>\r\n", 501)]),
    ("MAIL TO instead of FROM", [(EHLO, 250), ("MAIL TO:<a@b.test>\r\n", 501)]),
    ("MAIL unbalanced <", [(EHLO, 250), ("MAIL FROM:<a@b.test\r\n", 501)]),
    ("MAIL double @", [(EHLO, 250), ("MAIL FROM:<a@@b.test>\r\n", 501)]),
    ("MAIL double dot", [(EHLO, 250), ("MAIL FROM:<a..b@c.test>\r\n", 501)]),
    ("MAIL leading dot", [(EHLO, 250), ("MAIL FROM:<.a@c.test>\r\n", 501)]),
    ("MAIL hyphen label", [(EHLO, 250), ("MAIL FROM:<a@-b.test>\r\n", 501)]),
    ("MAIL space in path", [(EHLO, 250), ("MAIL FROM:<a b@c.test>\r\n", 501)]),
    ("MAIL trailing garbage", [(EHLO, 250), ("MAIL FROM:<a@b.test>garbage\r\n", 501)]),
    ("MAIL SIZE not a number", [(EHLO, 250), ("MAIL FROM:<a@b.test> SIZE=abc\r\n", 555)]),
    ("MAIL unknown parameter", [(EHLO, 250), ("MAIL FROM:<a@b.test> FOO=bar\r\n", 555)]),
    ("MAIL duplicate SIZE", [(EHLO, 250), ("MAIL FROM:<a@b.test> SIZE=1 SIZE=2\r\n", 555)]),
    ("MAIL SIZE over limit", [(EHLO, 250), ("MAIL FROM:<a@b.test> SIZE=999999999999\r\n", 552)]),
    ("MAIL BODY=BINARYMIME", [(EHLO, 250), ("MAIL FROM:<a@b.test> BODY=BINARYMIME\r\n", 555)]),
    ("MAIL bad RET", [(EHLO, 250), ("MAIL FROM:<a@b.test> RET=SOMETIMES\r\n", 555)]),
    ("MAIL ENVID too long", [(EHLO, 250), ("MAIL FROM:<a@b.test> ENVID=" + "x" * 200 + "\r\n", 555)]),
    ("MAIL parameter after HELO", [("HELO c.test\r\n", 250), ("MAIL FROM:<a@b.test> SIZE=10\r\n", 555)]),
    ("nested MAIL", [(EHLO, 250), (OK_FROM, 250), (OK_FROM, 503)]),
    ("RCPT before MAIL", [(EHLO, 250), (OK_RCPT, 503)]),
    ("RCPT relay attempt", [(EHLO, 250), (OK_FROM, 250), ("RCPT TO:<x@evil.test>\r\n", 554)]),
    ("RCPT percent hack", [(EHLO, 250), (OK_FROM, 250), ("RCPT TO:<x%evil.test@example.test>\r\n", 550)]),
    ("RCPT bang path", [(EHLO, 250), (OK_FROM, 250), ("RCPT TO:<evil.test!x@example.test>\r\n", 550)]),
    ("RCPT source route to foreign", [(EHLO, 250), (OK_FROM, 250), ("RCPT TO:<@relay.test:x@evil.test>\r\n", 553)]),
    ("RCPT source route to local", [(EHLO, 250), (OK_FROM, 250), ("RCPT TO:<@example.test:alice@example.test>\r\n", 553)]),
    ("RCPT quoted address local part", [(EHLO, 250), (OK_FROM, 250), ('RCPT TO:<"x@evil.test"@example.test>\r\n', 550)]),
    ("RCPT unknown user", [(EHLO, 250), (OK_FROM, 250), ("RCPT TO:<nobody@example.test>\r\n", 550)]),
    ("RCPT lookalike domain", [(EHLO, 250), (OK_FROM, 250), ("RCPT TO:<alice@example.test.evil.test>\r\n", 554)]),
    ("RCPT unknown domain", [(EHLO, 250), (OK_FROM, 250), ("RCPT TO:<alice@unknown.test>\r\n", 554)]),
    ("RCPT address literal", [(EHLO, 250), (OK_FROM, 250), ("RCPT TO:<alice@[192.0.2.1]>\r\n", 554)]),
    ("RCPT bad address literal", [(EHLO, 250), (OK_FROM, 250), ("RCPT TO:<alice@[999.1.1.1]>\r\n", 501)]),
    ("RCPT bad NOTIFY", [(EHLO, 250), (OK_FROM, 250), ("RCPT TO:<alice@example.test> NOTIFY=SOMETIMES\r\n", 555)]),
    ("RCPT NOTIFY NEVER with SUCCESS", [(EHLO, 250), (OK_FROM, 250), ("RCPT TO:<alice@example.test> NOTIFY=NEVER,SUCCESS\r\n", 555)]),
    ("RCPT bad ORCPT", [(EHLO, 250), (OK_FROM, 250), ("RCPT TO:<alice@example.test> ORCPT=bogus\r\n", 555)]),
    ("RCPT unicode without SMTPUTF8", [(EHLO, 250), (OK_FROM, 250), ("RCPT TO:<ålice@example.test>\r\n".encode(), 553)]),
    ("RCPT local part too long", [(EHLO, 250), (OK_FROM, 250), ("RCPT TO:<" + "a" * 65 + "@example.test>\r\n", 501)]),
    ("RCPT over the recipient limit", [(EHLO, 250), (OK_FROM, 250)] + [(OK_RCPT, 250)] * 5 + [(OK_RCPT, 452)]),
    ("DATA before MAIL", [(EHLO, 250), ("DATA\r\n", 503)]),
    ("DATA without recipients", [(EHLO, 250), (OK_FROM, 250), ("DATA\r\n", 554)]),
    ("DATA with argument", [(EHLO, 250), (OK_FROM, 250), (OK_RCPT, 250), ("DATA now\r\n", 501)]),
    ("DATA over size limit", [(EHLO, 250), (OK_FROM, 250), (OK_RCPT, 250), ("DATA\r\n", 354),
                               ("Subject: big\r\n\r\n" + ("x" * 998 + "\r\n") * 120 + ".\r\n", 552)]),
    ("DATA with too many hops", [(EHLO, 250), (OK_FROM, 250), (OK_RCPT, 250), ("DATA\r\n", 354),
                                  ("Received: from x by y; date\r\n" * 60 + "\r\nbody\r\n.\r\n", 554)]),
    ("BDAT before MAIL", [(EHLO, 250), ("BDAT 10\r\n0123456789", 503)]),
    ("BDAT without recipients", [(EHLO, 250), (OK_FROM, 250), ("BDAT 5 LAST\r\nhello", 554)]),
    ("BDAT size not a number", [(EHLO, 250), (OK_FROM, 250), (OK_RCPT, 250), ("BDAT abc\r\n", 501)]),
    ("BDAT negative size", [(EHLO, 250), (OK_FROM, 250), (OK_RCPT, 250), ("BDAT -1\r\n", 501)]),
    ("BDAT size overflow", [(EHLO, 250), (OK_FROM, 250), (OK_RCPT, 250), ("BDAT 99999999999999999999\r\n", 501)]),
    ("BDAT bad keyword", [(EHLO, 250), (OK_FROM, 250), (OK_RCPT, 250), ("BDAT 5 FIRST\r\n", 501)]),
    ("BDAT over size limit", [(EHLO, 250), (OK_FROM, 250), (OK_RCPT, 250),
                              ("BDAT 150000 LAST\r\n" + "x" * 150000, 552)]),
    ("DATA after BDAT", [(EHLO, 250), (OK_FROM, 250), (OK_RCPT, 250), ("BDAT 5\r\nhello", 250), ("DATA\r\n", 503)]),
    ("command line too long", [("NOOP " + "A" * 3000 + "\r\n", 500)]),
    ("long line then a good command", [("X" * 5000 + "\r\nNOOP\r\n", 500), (None, 250)]),
    ("NUL in command", [(b"NO\x00OP\r\n", 500)]),
    ("bare LF does not end a command", [("NOOP\nNOOP\r\n", 500)]),
    ("bare CR does not end a command", [("NOOP\rNOOP\r\n", 500)]),
    ("unknown command", [("FOO\r\n", 502)]),
    ("empty command", [("\r\n", 502)]),
    ("HTTP request", [("GET / HTTP/1.0\r\n", 521)], True),
    ("header as a command", [("Subject: hello\r\n", 521)], True),
    ("STARTTLS with argument", [(EHLO, 250), ("STARTTLS now\r\n", 501)]),
    ("AUTH on port 25", [(EHLO, 250), ("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", 503)]),
    ("VRFY without argument", [("VRFY\r\n", 501)]),
    ("VRFY does not probe", [("VRFY nobody@example.test\r\n", 252), ("VRFY alice@example.test\r\n", 252)]),
    ("RSET with argument", [("RSET now\r\n", 501)]),
    ("ETRN not offered", [(EHLO, 250), ("ETRN example.test\r\n", 502)]),
    ("hard error limit", [("FOO\r\n", 502)] * 8 + [(None, 421)], True),
]

def queued(inst):
    """Visible queue files (temp names start with a dot)."""
    n = 0
    for sub in ("incoming", "active", "deferred", "hold"):
        d = os.path.join(inst.queue, sub)
        if os.path.isdir(d):
            n += len([f for f in os.listdir(d) if not f.startswith(".")])
    return n


def run_case(inst, steps, closes):
    before = queued(inst)
    c = SMTPRaw("127.0.0.1", inst.port("smtp"))
    try:
        code, _ = c.reply()
        assert code == 220, "greeting %d" % code
        for i, (data, want) in enumerate(steps):
            if data is not None:
                c.send(data)
            code, text = c.reply()
            assert code == want, "step %d: want %d, got %d %s" % (i, want, code, text)
        if closes:
            assert c.closed(), "server did not close the connection"
        else:
            assert c.cmd("QUIT")[0] == 221
    finally:
        c.close()
    assert queued(inst) == before, "something was queued"


def make_case(steps, closes):
    return lambda inst: run_case(inst, steps, closes)


def pipelined_starttls(inst):
    """MAIL pipelined after STARTTLS in clear text is thrown away."""
    c = SMTPRaw("127.0.0.1", inst.port("smtp"))
    try:
        assert c.reply()[0] == 220
        assert c.cmd(EHLO)[0] == 250
        c.send("STARTTLS\r\n" + OK_FROM)
        code, _ = c.reply()
        assert code == 220, "STARTTLS got %d" % code
        c.starttls()
        assert c.cmd(EHLO)[0] == 250
        code, _ = c.cmd(OK_RCPT)
        assert code == 503, "RCPT after discarded MAIL got %d, want 503" % code
        assert c.cmd("QUIT")[0] == 221
    finally:
        c.close()


def bdat_size_lie(inst):
    """A BDAT that promises more than it sends: what follows is chunk data,
    not commands, and nothing is queued when the client goes away."""
    before = queued(inst)
    c = SMTPRaw("127.0.0.1", inst.port("smtp"))
    try:
        assert c.reply()[0] == 220
        assert c.cmd(EHLO)[0] == 250
        assert c.cmd(OK_FROM)[0] == 250
        assert c.cmd(OK_RCPT)[0] == 250
        c.send("BDAT 100 LAST\r\nshort\r\nQUIT\r\n")
        assert not c.closed(timeout=1.0), "QUIT inside a chunk was obeyed"
    finally:
        c.close()
    pt.wait_for(lambda: "lost connection after BDAT" in inst.log(), timeout=10)
    assert queued(inst) == before


def main():
    inst = Instance(services={"smtp": "smtpd"}, tls=True, main_cf=[
        "smtpd_recipient_limit = 5",
        "smtpd_hard_error_limit = 8",
        "smtpd_error_sleep_time = 0",
        "message_size_limit = 100000",
        "hopcount_limit = 50",
        "smtpd_tls_security_level = may",
        # The test client (127.0.0.1) is an outsider here.
        "mynetworks = 192.0.2.0/24",
    ])
    inst.add_virtual_mailbox("alice@example.test")
    inst.add_virtual_mailbox("bob@example.test")
    tests = []
    for case in CASES:
        name, steps = case[0], case[1]
        closes = len(case) > 2 and case[2]
        tests.append((name, make_case(steps, closes)))
    for name, ending in SMUGGLE_ENDINGS:
        tests.append(("smuggling: " + name, lambda i, e=ending: smuggle(i.port("smtp"), lambda: queued(i), e)))
    tests.append(("pipelining across STARTTLS is discarded", pipelined_starttls))
    tests.append(("BDAT size lie", bdat_size_lie))
    pt.main_shared(inst, tests)


if __name__ == "__main__":
    main()
