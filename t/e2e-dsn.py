#!/usr/bin/env python3
"""e2e-dsn.py: delivery status notifications built by lib/mail/dsn (through
t/dsn-make) and parsed with Python's email package: the multipart/report
structure, the delivery-status fields, the returned original (full or
headers only), the human part, the envelope of the queued notice, NOTIFY
and null-sender rules, hostile input (CR/LF in diagnostics, 8-bit headers,
no header at all, an original that is itself MIME) and the limits."""

import email
import email.policy
import os
import shutil
import subprocess
import sys
import tempfile

BUILDDIR = os.environ.get("PETREL_BUILDDIR", ".")
DSN_MAKE = os.path.join(BUILDDIR, "t", "dsn-make")
HOST = "mx.example.test"
POSTMASTER = "postmaster@example.test"

results = []


def ok(cond, name, diag=None):
    results.append(bool(cond))
    print("%sok %d - %s" % ("" if cond else "not ", len(results), name))
    if not cond and diag is not None:
        for line in str(diag).splitlines():
            print("# " + line)
    sys.stdout.flush()


def read_queue_file(path):
    """Parse a queue file (doc/queue-format.md): envelope and content."""
    data = open(path, "rb").read()
    pos, env = 0, {"attrs": {}, "rcpts": [], "content": b""}
    while pos < len(data):
        rtype = chr(data[pos])
        colon = data.index(b":", pos)
        length = int(data[pos + 1:colon])
        value = data[colon + 1:colon + 1 + length]
        if data[colon + 1 + length] != 0x0A:
            raise ValueError("record without LF")
        pos = colon + 2 + length
        if rtype == "S":
            env["sender"] = value.decode("utf-8", "surrogateescape")
        elif rtype == "A":
            name, _, val = value.decode("utf-8", "surrogateescape").partition("=")
            env["attrs"][name] = val
        elif rtype == "R":
            env["rcpts"].append(value[2:].decode("utf-8", "surrogateescape"))
        elif rtype == "C":
            env["content"] += value
        elif rtype == "E":
            env["complete"] = pos == len(data)
    return env


def make(qdir, kind, content, sender, rcpts, opts=()):
    """Run dsn-make; returns (notice envelope or None, the message)."""
    msgfile = os.path.join(qdir, "original.eml")
    os.makedirs(qdir, exist_ok=True)
    with open(msgfile, "wb") as f:
        f.write(content)
    argv = [DSN_MAKE, "-o", "myhostname=" + HOST,
            "-o", "2bounce_notice_recipient=" + POSTMASTER] + list(opts)
    argv += [os.path.join(qdir, "q"), kind, msgfile, sender] + rcpts
    p = subprocess.run(argv, capture_output=True)
    if p.returncode != 0:
        raise RuntimeError("dsn-make failed: %r" % p.stderr)
    out = p.stdout.decode().split()
    if out == ["none"]:
        return None, None
    env = read_queue_file(os.path.join(qdir, "q", "incoming", out[1]))
    msg = email.message_from_bytes(env["content"], policy=email.policy.default)
    return env, msg


def parts(msg):
    """The three parts of a report, or Nones."""
    p = msg.get_payload() if msg.is_multipart() else []
    return (p + [None, None, None])[:3]


def status_blocks(part):
    """The delivery-status part as a list of field blocks."""
    return part.get_payload()


def no_defects(msg):
    bad = []
    for p in msg.walk():
        bad += [type(d).__name__ for d in p.defects]
    return bad


ORIG = (b"Received: from client.example.org\r\n"
        b"From: Alice <a@example.org>\r\nSubject: lunch\r\n"
        b"Message-Id: <1@example.org>\r\n\r\nSee you at noon.\r\n")


def test_failed(tmp):
    env, msg = make(os.path.join(tmp, "failed"), "failed", ORIG, "a@example.org",
                    ["bob@example.net|5.1.1|smtp; 550 5.1.1 <bob@example.net>: "
                     "User unknown|dns; mx.example.net",
                     "carol@example.net|5.4.4|x-unix; Host not found|"],
                    ["-e", "ENV-42"])
    ok(env is not None and env["complete"], "failed: notice queued, complete file")
    ok(env["sender"] == "", "failed: envelope sender is null")
    ok(env["rcpts"] == ["a@example.org"], "failed: envelope recipient is the sender",
       env["rcpts"])
    ok(msg.is_multipart(), "failed: is_multipart")
    ok(msg.get_content_type() == "multipart/report", "failed: multipart/report")
    ok(msg.get_param("report-type") == "delivery-status", "failed: report-type")
    ok(msg["Subject"] == "Undelivered Mail Returned to Sender", "failed: subject")
    ok(msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@" + HOST, "failed: From",
       msg["From"])
    ok(msg["To"] == "a@example.org", "failed: To")
    ok(msg["Auto-Submitted"] == "auto-replied", "failed: Auto-Submitted")
    ok(no_defects(msg) == [], "failed: no parser defects", no_defects(msg))
    text, status, orig = parts(msg)
    ok(text.get_content_type() == "text/plain", "failed: human part is text/plain")
    body = text.get_content()
    ok("mail system at host " + HOST in body, "failed: human part names the mail system")
    ok("<bob@example.net>: 550 5.1.1 <bob@example.net>: User unknown" in body,
       "failed: human part lists the diagnostic", body)
    ok(status.get_content_type() == "message/delivery-status",
       "failed: message/delivery-status part")
    blocks = status_blocks(status)
    ok(len(blocks) == 3, "failed: per-message block + two recipients", len(blocks))
    ok(blocks[0]["Reporting-MTA"] == "dns; " + HOST, "failed: Reporting-MTA")
    ok(blocks[0]["Original-Envelope-Id"] == "ENV-42", "failed: Original-Envelope-Id")
    ok(blocks[0]["Arrival-Date"] is not None and blocks[0]["X-Petrel-Queue-ID"],
       "failed: Arrival-Date and X-Petrel-Queue-ID")
    b = blocks[1]
    ok(b["Final-Recipient"] == "rfc822; bob@example.net", "failed: Final-Recipient")
    ok(b["Action"] == "failed" and b["Status"] == "5.1.1", "failed: Action and Status")
    ok(b["Remote-MTA"] == "dns; mx.example.net", "failed: Remote-MTA")
    ok(b["Diagnostic-Code"] ==
       "smtp; 550 5.1.1 <bob@example.net>: User unknown", "failed: Diagnostic-Code",
       b["Diagnostic-Code"])
    ok(blocks[2]["Diagnostic-Code"] == "x-unix; Host not found" and
       blocks[2]["Remote-MTA"] is None, "failed: second recipient")
    ok(orig.get_content_type() == "message/rfc822", "failed: original is message/rfc822")
    inner = orig.get_content()
    ok(inner["Subject"] == "lunch" and "See you at noon." in inner.get_content(),
       "failed: the whole original is returned")


def test_hdrs(tmp):
    _, msg = make(os.path.join(tmp, "hdrs"), "failed", ORIG, "a@example.org",
                  ["bob@example.net|5.1.1|smtp; 550 no|"], ["-r", "HDRS"])
    orig = parts(msg)[2]
    ok(orig.get_content_type() == "text/rfc822-headers", "RET=HDRS: headers only")
    ok("Subject: lunch" in orig.get_content() and
       "noon" not in orig.get_content(), "RET=HDRS: no body")
    big = ORIG + b"x" * 2000 + b"\r\n"
    _, msg = make(os.path.join(tmp, "big"), "failed", big, "a@example.org",
                  ["bob@example.net|5.1.1|smtp; 550 no|"],
                  ["-o", "bounce_size_limit=1000"])
    orig = parts(msg)[2]
    ok(orig.get_content_type() == "text/rfc822-headers" and
       "xxxx" not in orig.get_content(), "over bounce_size_limit: headers only")


def test_delay_success(tmp):
    _, msg = make(os.path.join(tmp, "delay"), "delayed", ORIG, "a@example.org",
                  ["bob@example.net|4.4.1|x-unix; connect timed out|"])
    ok(msg["Subject"] == "Delayed Mail (still being retried)", "delayed: subject")
    b = status_blocks(parts(msg)[1])[1]
    ok(b["Action"] == "delayed" and b["Status"] == "4.4.1" and
       b["Will-Retry-Until"] is not None, "delayed: Action, Status, Will-Retry-Until")
    ok("no need to send" in parts(msg)[0].get_content(), "delayed: says it is a warning")
    env, _ = make(os.path.join(tmp, "delay-f"), "delayed", ORIG, "a@example.org",
                  ["bob@example.net|4.4.1|x-unix; timed out|"], ["-n", "4"])
    ok(env is None, "delayed with NOTIFY=FAILURE: no notice")
    env, _ = make(os.path.join(tmp, "succ-0"), "delivered", ORIG, "a@example.org",
                  ["bob@example.net|2.0.0|smtp; 250 ok|"])
    ok(env is None, "delivered without NOTIFY=SUCCESS: no notice")
    env, msg = make(os.path.join(tmp, "succ"), "delivered", ORIG, "a@example.org",
                    ["bob@example.net|2.0.0|smtp; 250 2.0.0 ok|"], ["-n", "2"])
    ok(env is not None and msg["Subject"] == "Successful Mail Delivery Report",
       "NOTIFY=SUCCESS: success report")
    b = status_blocks(parts(msg)[1])[1]
    ok(b["Action"] == "delivered" and b["Status"] == "2.0.0", "delivered: Action, Status")
    env, _ = make(os.path.join(tmp, "never"), "failed", ORIG, "a@example.org",
                  ["bob@example.net|5.1.1|smtp; 550 no|"], ["-n", "1"])
    ok(env is None, "NOTIFY=NEVER: no notice")


def test_null_sender(tmp):
    env, msg = make(os.path.join(tmp, "null"), "failed", ORIG, "",
                    ["bob@example.net|5.1.1|smtp; 550 no|"], ["-a", "bounce"])
    ok(env is not None and env["rcpts"] == [POSTMASTER] and env["sender"] == "",
       "null sender: double bounce to 2bounce_notice_recipient")
    ok(msg["To"] == POSTMASTER, "double bounce: To")
    env, _ = make(os.path.join(tmp, "null2"), "failed", ORIG, "",
                  ["bob@example.net|5.1.1|smtp; 550 no|"], ["-a", "2bounce"])
    ok(env is None, "failed double bounce: nothing")
    env, _ = make(os.path.join(tmp, "null3"), "delayed", ORIG, "",
                  ["bob@example.net|4.4.1|x-unix; no|"])
    ok(env is None, "null sender, delayed: nothing")


def test_hostile(tmp):
    _, msg = make(os.path.join(tmp, "inject"), "failed", ORIG, "a@example.org",
                  ["bob@example.net|5.1.1|smtp; 550 bad\r\nX-Evil: yes\r\n\r\nmore|"
                   "dns; mx\r\nX-Evil2: 1"])
    b = status_blocks(parts(msg)[1])[1]
    ok(b["X-Evil"] is None and b["X-Evil2"] is None and
       "X-Evil: yes" in b["Diagnostic-Code"], "CR/LF in diagnostic: no injected field",
       b.items())
    ok(b"\nX-Evil" not in msg.as_bytes(), "CR/LF in diagnostic: no injected line")
    env, msg = make(os.path.join(tmp, "nohdr"), "failed", b"just a body\r\nline 2\r\n",
                    "a@example.org", ["bob@example.net|5.1.1|smtp; 550 no|"])
    inner = parts(msg)[2].get_content()
    ok(len(inner.keys()) == 0 and "just a body" in inner.get_content(),
       "original without header: returned as body", inner.as_string())
    ok(no_defects(msg) == [], "original without header: no defects", no_defects(msg))
    eight = ("Subject: caf\u00e9\r\nFrom: \u00e9l\u00e8ve@example.fr\r\n\r\n"
             "cr\u00e8me\r\n").encode()
    env, msg = make(os.path.join(tmp, "8bit"), "failed", eight,
                    "\u00e9l\u00e8ve@example.fr",
                    ["bob@example.net|5.1.1|smtp; 550 no|"], ["-u"])
    ok(env["attrs"].get("body") == "8BITMIME" and env["attrs"].get("smtputf8") == "yes",
       "8-bit original: notice marked 8BITMIME and SMTPUTF8", env["attrs"])
    ok(msg["Content-Transfer-Encoding"] == "8bit", "8-bit original: 8bit encoding")
    inner = parts(msg)[2].get_content()
    ok(inner["Subject"] == "caf\u00e9", "8-bit original: header returned intact",
       inner["Subject"])
    _, msg = make(os.path.join(tmp, "nohdr-h"), "failed", b"no header here\r\n",
                  "a@example.org", ["bob@example.net|5.1.1|smtp; 550 no|"], ["-r", "HDRS"])
    orig = parts(msg)[2]
    ok(orig.get_content_type() == "text/rfc822-headers" and
       orig.get_content().strip() == "", "no header, RET=HDRS: empty header part")
    env, msg = make(os.path.join(tmp, "barelf"), "failed",
                  b"Subject: lf\nX-A: 1\n\nline 1\nline 2\n", "a@example.org",
                  ["bob@example.net|5.1.1|smtp; 550 no|"])
    inner = parts(msg)[2].get_content()
    ok(b"\r\nline 1\r\nline 2\r\n" in env["content"] and
       b"\n" not in env["content"].replace(b"\r\n", b"") and
       inner["X-A"] == "1", "bare LF original: returned with CRLF")
    mime = (b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n"
            b"\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1--\r\n")
    _, msg = make(os.path.join(tmp, "mime"), "failed", mime, "a@example.org",
                  ["bob@example.net|5.1.1|smtp; 550 no|"])
    inner = parts(msg)[2].get_content()
    ok(inner.is_multipart() and len(parts(msg)) == 3 and
       len(msg.get_payload()) == 3, "MIME original nests cleanly")


def test_random(tmp):
    """Arbitrary bytes as the original never break the report structure."""
    import random
    rnd = random.Random(3464)
    for i in range(20):
        n = rnd.choice([0, 1, 50, 2000, 60000])
        junk = bytes(rnd.choice(b"ab:\r\n \t\x00\xff-") for _ in range(n))
        env, msg = make(os.path.join(tmp, "rnd%d" % i), "failed", junk, "a@example.org",
                        ["bob@example.net|5.1.1|smtp; 550 no|"])
        good = (env is not None and msg.get_content_type() == "multipart/report" and
                len(msg.get_payload()) == 3 and
                len(status_blocks(parts(msg)[1])) == 2)
        if not good:
            ok(False, "random original %d (%d bytes)" % (i, n), repr(junk[:200]))
            return
    ok(True, "20 random originals: report structure intact")


def test_limits(tmp):
    rcpts = ["u%d@example.net|5.1.1|smtp; 550 no|" % i for i in range(1100)]
    _, msg = make(os.path.join(tmp, "many"), "failed", ORIG, "a@example.org", rcpts)
    blocks = status_blocks(parts(msg)[1])
    ok(len(blocks) == 1001, "1100 recipients: 1000 blocks", len(blocks))
    ok("100 more recipients" in parts(msg)[0].get_content(),
       "1100 recipients: the rest counted")
    long_diag = "smtp; 550 " + "word " * 400
    _, msg = make(os.path.join(tmp, "long"), "failed", ORIG, "a@example.org",
                  ["bob@example.net|5.1.1|%s|" % long_diag])
    raw = msg.as_bytes()
    ok(max(len(line) for line in raw.split(b"\n")) <= 998, "no line over 998 bytes")
    ok(len(status_blocks(parts(msg)[1])[1]["Diagnostic-Code"]) < 900,
       "long diagnostic capped")


def main():
    tmp = tempfile.mkdtemp(prefix="e2e-dsn.")
    try:
        for test in (test_failed, test_hdrs, test_delay_success, test_null_sender,
                     test_hostile, test_random, test_limits):
            try:
                test(tmp)
            except Exception as e:  # report, do not stop the other tests
                ok(False, "%s raised %s: %s" % (test.__name__, type(e).__name__, e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % len(results))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
