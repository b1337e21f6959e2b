#!/usr/bin/env python3
"""e2e-postqueue.py: postqueue -p, postqueue -j and mailq against a queue
written by the real queue writer (t/queue-fill): the exact mailq layout,
the empty-queue message, the active '*' and hold '!' markers, delivered
recipients left out, a corrupt file skipped with a warning, temp files
ignored, and bad command lines."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

BUILDDIR = os.environ.get("PETREL_BUILDDIR", ".")
POSTQUEUE = os.path.join(BUILDDIR, "cli", "postqueue")
QUEUE_FILL = os.path.join(BUILDDIR, "t", "queue-fill")
ENV = dict(os.environ, TZ="UTC")
ENV.pop("MAIL_CONFIG", None)

STRING_FORMAT = "%-11s %7s %-20s %s\n"
SENDER_FORMAT = "%-11s %7d %20.20s %s\n"
HEADER = STRING_FORMAT % ("-Queue ID-", "--Size--", "----Arrival Time----",
                          "-Sender/Recipient-------")

# (queue, arrival, sender, size, recipients); "done:" = already delivered.
MESSAGES = [
    ("incoming", 1763847120, "alice@example.com", 1234,
     ["bob@example.org", '"john doe"@example.org']),
    ("active", 1763850000, "", 300,
     ["done:carol@example.org", "dave@example.org"]),
    ("deferred", 1700000000, "evil\x01\x1b@example.com", 70000,
     ["\u00e9l\u00e8ve@example.fr"]),
    ("hold", 1763900000, "held@example.com", 2048, ["x@example.net"]),
    ("incoming", 1763847200, "second@example.com", 1, ["y@example.net"]),
]

results = []


def ok(cond, name, diag=None):
    results.append(bool(cond))
    print("%sok %d - %s" % ("" if cond else "not ", len(results), name))
    if not cond and diag:
        for line in str(diag).splitlines():
            print("# " + line)
    sys.stdout.flush()


def run(argv, argv0=None):
    return subprocess.run(argv, env=ENV, capture_output=True, text=True,
                          executable=argv0, errors="surrogateescape")


def fill(qdir, queue, arrival, sender, size, rcpts):
    p = subprocess.run([QUEUE_FILL, qdir, queue, str(arrival), sender,
                        str(size)] + rcpts, env=ENV, capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise RuntimeError("queue-fill: " + p.stderr)
    return p.stdout.strip()


def printable(text):
    """What postqueue -p shows: controls become '?'."""
    return "".join("?" if ord(c) < 0x20 or ord(c) == 0x7f else c for c in text)


def expected_text(entries):
    """The mailq listing for (queue, id, message) entries, in order."""
    if not entries:
        return "Mail queue is empty\n"
    out = [HEADER]
    total = 0
    for n, (queue, qid, (_, arrival, sender, size, rcpts)) in enumerate(entries):
        if n > 0:
            out.append("\n")
        mark = {"active": "*", "hold": "!"}.get(queue, "")
        out.append(SENDER_FORMAT % (qid + mark, size,
                                    time.asctime(time.gmtime(arrival)),
                                    printable(sender or "MAILER-DAEMON")))
        for r in rcpts:
            if not r.startswith("done:"):
                out.append(STRING_FORMAT % ("", "", "", printable(r)))
        total += size
    out.append("\n-- %d Kbytes in %d Request%s.\n" % (
        total // 1024, len(entries), "" if len(entries) == 1 else "s"))
    return "".join(out)


def expected_json(queue, qid, msg):
    _, arrival, sender, size, rcpts = msg
    return {
        "queue_name": queue, "queue_id": qid, "arrival_time": arrival,
        "message_size": size, "forced_expire": False,
        "sender": sender or "MAILER-DAEMON",
        "recipients": [{"orig_address": r, "address": r}
                       for r in rcpts if not r.startswith("done:")],
    }


def check_json(out, entries):
    lines = out.splitlines()
    ok(len(lines) == len(entries), "-j prints one line per message",
       out)
    for line, (queue, qid, msg) in zip(lines, entries):
        obj = json.loads(line)
        want = expected_json(queue, qid, msg)
        ok(obj == want and list(obj) == list(want),
           "-j object for %s/%s" % (queue, qid), "%r\n%r" % (obj, want))
        if "\x01" not in msg[2]:
            ok(line == json.dumps(want, ensure_ascii=False),
               "-j line layout is Postfix's for %s" % qid, line)
        else:
            ok("evil\\u0001\\u001B@example.com" in line,
               "-j escapes control characters as \\u00XX", line)


def test_empty(cfg, qdir):
    for d in ("incoming", "active", "deferred", "hold", "corrupt"):
        os.makedirs(os.path.join(qdir, d), exist_ok=True)
    p = run([POSTQUEUE, "-c", cfg, "-p"])
    ok(p.returncode == 0 and p.stdout == "Mail queue is empty\n"
       and p.stderr == "", "empty queue: 'Mail queue is empty'",
       p.stdout + p.stderr)
    p = run([POSTQUEUE, "-c", cfg, "-j"])
    ok(p.returncode == 0 and p.stdout == "", "empty queue: -j prints nothing")


def test_listing(cfg, qdir, tmp):
    entries = []
    for msg in MESSAGES:
        entries.append((msg[0], fill(qdir, *msg), msg))
    order = ["incoming", "active", "deferred", "hold"]
    entries.sort(key=lambda e: (order.index(e[0]), e[1]))
    # A temp file and a damaged file: the first is invisible, the second
    # is skipped with a warning.
    with open(os.path.join(qdir, "incoming", ".tmp.1.2"), "wb") as f:
        f.write(b"V14:petrel-queue 1\n")
    bad_id = "69222BD000000FFFF"
    with open(os.path.join(qdir, "deferred", bad_id), "wb") as f:
        f.write(b"V14:petrel-queue 1\nT3:1.0\n")

    p = run([POSTQUEUE, "-c", cfg, "-p"])
    want = expected_text(entries)
    ok(p.returncode == 0, "postqueue -p exits 0", p.stderr)
    ok(p.stdout == want, "postqueue -p output is the mailq format",
       "got:\n%s\nwant:\n%s" % (p.stdout, want))
    ok("postqueue: warning: " in p.stderr and bad_id in p.stderr
       and "corrupt" in p.stderr, "corrupt file skipped with a warning",
       p.stderr)
    ok(".tmp" not in p.stdout and ".tmp" not in p.stderr,
       "temp file neither listed nor warned about")
    lines = p.stdout.splitlines()
    ok(any(l.split()[0].endswith("*") for l in lines[1:] if l[:1] not in ("", " ", "-")),
       "active message marked with '*'")
    ok(any(l.split()[0].endswith("!") for l in lines[1:] if l[:1] not in ("", " ", "-")),
       "held message marked with '!'")
    ok("carol@example.org" not in p.stdout, "delivered recipient not listed")

    mailq = os.path.join(tmp, "mailq")
    os.symlink(os.path.abspath(POSTQUEUE), mailq)
    m = run([mailq, "-c", cfg])
    ok(m.returncode == 0 and m.stdout == want, "mailq (by argv[0]) lists like -p",
       m.stdout + m.stderr)
    m = run(["mailq", "-c", cfg], argv0=os.path.abspath(POSTQUEUE))
    ok(m.returncode == 0 and m.stdout == want, "argv[0] 'mailq' alone selects the mode",
       m.stdout + m.stderr)

    j = run([POSTQUEUE, "-c", cfg, "-j"])
    ok(j.returncode == 0, "postqueue -j exits 0", j.stderr)
    check_json(j.stdout, entries)


def test_options(cfg, tmp):
    # -f, -i and -s are tested in t/e2e-cli.py.
    p = run([POSTQUEUE, "-c", cfg])
    ok(p.returncode == 1 and "usage:" in p.stderr, "no mode: usage", p.stderr)
    p = run([POSTQUEUE, "-c", cfg, "-p", "-j"])
    ok(p.returncode == 1 and "only one of" in p.stderr, "two modes refused", p.stderr)
    p = run([POSTQUEUE, "-c", cfg, "-p", "extra"])
    ok(p.returncode == 1 and "usage:" in p.stderr, "stray argument: usage", p.stderr)
    gone = os.path.join(tmp, "cfg-gone")
    os.makedirs(gone)
    with open(os.path.join(gone, "main.cf"), "w") as f:
        f.write("queue_directory = %s\n" % os.path.join(tmp, "no-such-queue"))
    p = run([POSTQUEUE, "-c", gone, "-p"])
    ok(p.returncode == 1 and "postqueue: fatal:" in p.stderr, "missing queue directory is fatal",
       p.stderr)
    env_cfg = dict(ENV, MAIL_CONFIG=cfg)
    p = subprocess.run([POSTQUEUE, "-p"], env=env_cfg, capture_output=True, text=True)
    ok(p.returncode == 0 and p.stdout.startswith(HEADER), "MAIL_CONFIG names the config dir",
       p.stdout + p.stderr)


def main():
    tmp = tempfile.mkdtemp(prefix="e2e-postqueue.")
    try:
        cfg = os.path.join(tmp, "etc")
        qdir = os.path.join(tmp, "queue")
        os.makedirs(cfg)
        with open(os.path.join(cfg, "main.cf"), "w") as f:
            f.write("queue_directory = %s\n" % qdir)
        test_empty(cfg, qdir)
        test_listing(cfg, qdir, tmp)
        test_options(cfg, tmp)
    except Exception as e:  # report, don't die without a plan
        ok(False, "unexpected exception", repr(e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % len(results))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
