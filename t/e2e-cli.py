#!/usr/bin/env python3
"""e2e-cli.py: the queue and admin commands end to end: petrel pw (every
scheme, checked with Python's crypt module when it has one, -t, -V, -r,
standard input, errors), postalias and newaliases (building a database
that postalias -q, postalias -s and postmap -q read, duplicates, bad lines,
the "@" mark), postsuper (-d, -h, -H, -r by ID, ALL and "-", the counts
as Postfix prints them, defer/ID removed with its message, bad IDs
refused, -s structure check) and postqueue -f, -i and -s (the byte on the
queue manager's fifo, the deferred file's mtime, qmgr not running)."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import warnings

BUILDDIR = os.environ.get("PETREL_BUILDDIR", ".")
PW = os.path.join(BUILDDIR, "cli", "petrel-pw")
POSTALIAS = os.path.join(BUILDDIR, "cli", "postalias")
POSTMAP = os.path.join(BUILDDIR, "cli", "postmap")
POSTSUPER = os.path.join(BUILDDIR, "cli", "postsuper")
POSTQUEUE = os.path.join(BUILDDIR, "cli", "postqueue")
QUEUE_FILL = os.path.join(BUILDDIR, "t", "queue-fill")
ENV = dict(os.environ, TZ="UTC")
ENV.pop("MAIL_CONFIG", None)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        import crypt  # deprecated, gone in Python 3.13
    except ImportError:
        crypt = None

results = []


def ok(cond, name, diag=None):
    results.append(bool(cond))
    print("%sok %d - %s" % ("" if cond else "not ", len(results), name))
    if not cond and diag is not None:
        for line in str(diag).splitlines():
            print("# " + line)
    sys.stdout.flush()


def run(argv, stdin=None, argv0=None):
    return subprocess.run(argv, env=ENV, capture_output=True, text=True,
                          input=stdin if stdin is not None else "",
                          executable=argv0)


# ---- petrel pw ----

SCHEMES = [("SHA512-CRYPT", "$6$"), ("SHA256-CRYPT", "$5$"),
           ("BLF-CRYPT", "$2y$"), ("CRYPT", "$y$")]


def crypt_check(password, hashed):
    """True when password matches hashed, by Python's crypt or by -t."""
    if crypt is not None:
        return crypt.crypt(password, hashed) == hashed
    scheme = [s for s, p in SCHEMES if hashed.startswith(p)][0]
    return run([PW, "-t", "{%s}%s" % (scheme, hashed), "-p", password]).returncode == 0


def test_pw():
    p = run([PW, "-l"])
    ok(p.returncode == 0 and p.stdout.split() == [s for s, _ in SCHEMES],
       "pw -l lists the schemes", p.stdout + p.stderr)
    p = run([PW, "-p", "s3cret pass"])
    ok(p.returncode == 0 and p.stdout.startswith("{SHA512-CRYPT}$6$"),
       "pw: SHA512-CRYPT is the default", p.stdout + p.stderr)
    for scheme, prefix in SCHEMES:
        p = run([PW, "-s", scheme.lower(), "-p", "s3cret pass"])
        out = p.stdout.strip()
        want = "{%s}%s" % (scheme, prefix)
        ok(p.returncode == 0 and out.startswith(want) and p.stderr == "",
           "pw -s %s prints %s..." % (scheme.lower(), want), p.stdout + p.stderr)
        hashed = out[len(scheme) + 2:]
        ok(crypt_check("s3cret pass", hashed) and not crypt_check("wrong", hashed),
           "%s hash checks (%s)" % (scheme, "crypt module" if crypt else "pw -t"))
        again = run([PW, "-s", scheme, "-p", "s3cret pass"]).stdout.strip()
        ok(again != out, "%s: a fresh random salt each time" % scheme)
        t = run([PW, "-t", out, "-p", "s3cret pass"])
        ok(t.returncode == 0 and t.stdout == out + " (verified)\n",
           "pw -t %s: match, exit 0" % scheme, t.stdout + t.stderr)
        t = run([PW, "-t", out, "-p", "wrong"])
        ok(t.returncode == 1 and "Password mismatch" in t.stderr and t.stdout == "",
           "pw -t %s: mismatch, exit 1" % scheme, t.stdout + t.stderr)
    hashed = run([PW, "-p", "piped"]).stdout.strip()
    p = run([PW, "-t", hashed], stdin="piped\n")
    ok(p.returncode == 0 and "(verified)" in p.stdout, "pw -t reads the password from stdin",
       p.stdout + p.stderr)
    p = run([PW, "-s", "SHA256-CRYPT"], stdin="from stdin\nsecond line\n")
    ok(p.returncode == 0 and crypt_check("from stdin", p.stdout.strip()[len("{SHA256-CRYPT}"):]),
       "pw hashes one line of stdin when it is not a terminal", p.stdout + p.stderr)
    p = run([PW, "-p", "x", "-V"])
    ok(p.returncode == 0 and p.stdout.endswith(" (verified)\n"), "pw -V verifies",
       p.stdout + p.stderr)
    p = run([PW, "-p", "x", "-r", "6000"])
    ok(p.stdout.startswith("{SHA512-CRYPT}$6$rounds=6000$"), "pw -r sets SHA rounds", p.stdout)
    p = run([PW, "-s", "BLF-CRYPT", "-p", "x", "-r", "7"])
    ok(p.stdout.startswith("{BLF-CRYPT}$2y$07$"), "pw -r sets the bcrypt cost", p.stdout)
    for args, err in ((["-s", "NOPE", "-p", "x"], "Unknown scheme: NOPE"),
                      (["-s", "BLF-CRYPT", "-r", "40", "-p", "x"], "Invalid number of rounds: 40"),
                      (["-r", "x", "-p", "x"], "Invalid number of rounds: x"),
                      (["-t", "nobrace", "-p", "x"], "Missing {scheme} prefix from hash"),
                      (["-t", "{MD4}abc", "-p", "x"], "Unknown scheme: MD4"),
                      (["-p", ""], "empty password"),
                      ([], "no password given"),
                      (["extra"], "usage:")):
        p = run([PW] + args)
        ok(p.returncode == 1 and err in p.stderr and p.stdout == "",
           "pw %s: exit 1, '%s'" % (" ".join(args), err), p.stdout + p.stderr)


# ---- postalias / newaliases ----

ALIASES = """# test aliases
postmaster: root
Root: Alice@Example.COM,
  bob
"the team": alice, "|/usr/bin/prog -x, y"
list: :include:/etc/petrel/list
copy: /var/log/mail.copy
bad line
root: second
x@y: z
"""


def test_postalias(tmp, cfg):
    src = os.path.join(tmp, "aliases")
    with open(src, "w") as f:
        f.write(ALIASES)
    p = run([POSTALIAS, "-c", cfg, src])
    ok(p.returncode == 0 and os.path.exists(src + ".lmdb"), "postalias builds aliases.lmdb",
       p.stderr)
    ok("postalias: warning: %s, line 8: need name:value pair" % src in p.stderr,
       "bad line warned with file and line", p.stderr)
    ok('postalias: warning: %s, line 9: duplicate entry: "root"' % src in p.stderr,
       "duplicate name warned", p.stderr)
    ok("line 10: name must be local" in p.stderr, "non-local name warned", p.stderr)
    ok(not os.path.exists(src + ".lmdb.tmp"), "no temp file left")
    for key, value in (("root", "Alice@Example.COM, bob"), ("ROOT", "Alice@Example.COM, bob"),
                       ("the team", 'alice, "|/usr/bin/prog -x, y"'),
                       ("list", ":include:/etc/petrel/list"), ("copy", "/var/log/mail.copy"),
                       ("@", "@")):
        p = run([POSTALIAS, "-c", cfg, "-q", key, src])
        ok(p.returncode == 0 and p.stdout == value + "\n", "postalias -q '%s'" % key,
           p.stdout + p.stderr)
    p = run([POSTALIAS, "-c", cfg, "-q", "nobody", src])
    ok(p.returncode == 1 and p.stdout == "", "postalias -q of a missing name exits 1")
    p = run([POSTALIAS, "-c", cfg, "-q", "-", src], stdin="postmaster\nnobody\nlist\n")
    ok(p.returncode == 0 and p.stdout == "postmaster:\troot\nlist:\t:include:/etc/petrel/list\n",
       "postalias -q - prints 'key:<TAB>value'", p.stdout + p.stderr)
    p = run([POSTALIAS, "-c", cfg, "-s", src])
    lines = sorted(p.stdout.splitlines())
    ok(p.returncode == 0 and "@:\t@" in lines and "postmaster:\troot" in lines
       and len(lines) == 6, "postalias -s lists every entry and the @ mark", p.stdout)
    if os.path.exists(POSTMAP):
        p = run([POSTMAP, "-c", cfg, "-q", "the team", "hash:" + src])
        ok(p.returncode == 0 and p.stdout == 'alice, "|/usr/bin/prog -x, y"\n',
           "postmap -q reads the alias database", p.stdout + p.stderr)
    else:
        ok(True, "postmap not built # SKIP")
    p = run([POSTALIAS, "-c", cfg, "-r", src])
    q = run([POSTALIAS, "-c", cfg, "-q", "root", src])
    ok("duplicate" not in p.stderr and q.stdout == "second\n", "-r: the last duplicate wins",
       p.stderr + q.stdout)
    p = run([POSTALIAS, "-c", cfg, "-f", src])
    q = run([POSTALIAS, "-c", cfg, "-f", "-q", "Root", src])
    ok(q.stdout == "Alice@Example.COM, bob\n", "-f keeps the case of names", q.stdout + p.stderr)
    p = run([POSTALIAS, "-c", cfg, os.path.join(tmp, "missing")])
    ok(p.returncode == 1 and "postalias: fatal: open" in p.stderr, "missing file is fatal",
       p.stderr)
    p = run([POSTALIAS, "-c", cfg, "-q", "x"])
    ok(p.returncode == 1 and "usage:" in p.stderr, "no file: usage", p.stderr)


def test_newaliases(tmp):
    cfg = os.path.join(tmp, "etc-na")
    os.makedirs(cfg)
    a1, a2 = os.path.join(tmp, "na1"), os.path.join(tmp, "na2")
    for path, text in ((a1, "one: 1\n"), (a2, "two: 2\n")):
        with open(path, "w") as f:
            f.write(text)
    with open(os.path.join(cfg, "main.cf"), "w") as f:
        f.write("alias_database = hash:%s, lmdb:%s, texthash:/nonexistent\n" % (a1, a2))
    link = os.path.join(tmp, "newaliases")
    os.symlink(os.path.abspath(POSTALIAS), link)
    p = run([link, "-c", cfg])
    ok(p.returncode == 0 and os.path.exists(a1 + ".lmdb") and os.path.exists(a2 + ".lmdb"),
       "newaliases builds every lmdb-family alias_database", p.stderr)
    ok("newaliases: warning: alias_database: skipping texthash:/nonexistent" in p.stderr,
       "newaliases skips other table types with a warning", p.stderr)
    q = run([POSTALIAS, "-c", cfg, "-q", "two", a2])
    ok(q.stdout == "2\n", "newaliases' database answers", q.stdout + q.stderr)
    p = run([link, "-c", cfg, "extra"])
    ok(p.returncode == 1 and "usage: newaliases" in p.stderr, "newaliases takes no files",
       p.stderr)


# ---- postsuper ----

def fill(qdir, queue, rcpts=("x@example.net",), arrival=1763847120):
    p = subprocess.run([QUEUE_FILL, qdir, queue, str(arrival), "s@example.com", "100"]
                       + list(rcpts), env=ENV, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("queue-fill: " + p.stderr)
    return p.stdout.strip()


def where(qdir, qid):
    """The queues that hold qid."""
    return [q for q in ("incoming", "active", "deferred", "hold", "corrupt", "maildrop")
            if os.path.exists(os.path.join(qdir, q, qid))]


class Fifo:
    """public/qmgr as a reader the test controls (non-blocking)."""

    def __init__(self, qdir):
        self.path = os.path.join(qdir, "public", "qmgr")
        if not os.path.exists(self.path):
            os.mkfifo(self.path, 0o600)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)

    def read(self):
        try:
            return os.read(self.fd, 64)
        except BlockingIOError:
            return b""

    def close(self):
        os.close(self.fd)


def ps(cfg, *args, stdin=None):
    return run([POSTSUPER, "-c", cfg] + list(args), stdin=stdin)


def test_postsuper_ids(cfg, qdir):
    fifo = Fifo(qdir)
    a = fill(qdir, "deferred")
    b = fill(qdir, "incoming")
    os.makedirs(os.path.join(qdir, "defer"), exist_ok=True)
    with open(os.path.join(qdir, "defer", a), "w") as f:
        f.write("0\t4.4.1\tconnection refused\n")
    p = ps(cfg, "-d", a)
    ok(p.returncode == 0 and p.stderr == "postsuper: %s: removed\npostsuper: Deleted: 1 message\n"
       % a, "postsuper -d ID: Postfix's lines", p.stderr)
    ok(where(qdir, a) == [] and not os.path.exists(os.path.join(qdir, "defer", a)),
       "-d removed the message and defer/ID")
    p = ps(cfg, "-d", a)
    ok(p.returncode == 0 and p.stderr == "", "-d of a message no longer there: silent", p.stderr)
    for bad in ("../etc/passwd", "deferred/" + b, ".tmp.1.2", "abc", b.lower()):
        p = ps(cfg, "-d", bad)
        ok(p.returncode == 0 and "postsuper: warning: invalid mail queue id: %s" % bad in p.stderr
           and "Deleted" not in p.stderr, "-d '%s' refused" % bad, p.stderr)
    ok(where(qdir, b) == ["incoming"], "bad IDs touched nothing")

    p = ps(cfg, "-h", b)
    ok(p.stderr == "postsuper: %s: placed on hold\npostsuper: Placed on hold: 1 message\n" % b
       and where(qdir, b) == ["hold"], "postsuper -h ID", p.stderr)
    os.utime(os.path.join(qdir, "hold", b), (1000, 1000))
    fifo.read()
    p = ps(cfg, "-H", b)
    ok(p.stderr == "postsuper: %s: released from hold\npostsuper: Released from hold: 1 message\n"
       % b and where(qdir, b) == ["deferred"], "postsuper -H ID: to deferred/", p.stderr)
    mtime = os.stat(os.path.join(qdir, "deferred", b)).st_mtime
    ok(abs(mtime - time.time()) < 60, "-H sets the mtime to now (due at once)")
    ok(fifo.read() == b"I", "-H wakes qmgr with 'I'")
    p = ps(cfg, "-r", b)
    ok(p.stderr == "postsuper: %s: requeued\npostsuper: Requeued: 1 message\n" % b
       and where(qdir, b) == ["incoming"], "postsuper -r ID: to incoming/", p.stderr)
    ok(fifo.read() == b"I", "-r wakes qmgr with 'I'")
    p = ps(cfg, "-H", b)
    ok(p.stderr == "" and where(qdir, b) == ["incoming"], "-H only takes from hold/", p.stderr)
    fifo.close()
    os.unlink(fifo.path)
    p = ps(cfg, "-d", b)
    ok(p.returncode == 0 and "Deleted: 1 message" in p.stderr, "-d without a fifo reader works",
       p.stderr)


def test_postsuper_all(cfg, qdir):
    ids = [fill(qdir, q) for q in ("incoming", "deferred", "deferred", "hold")]
    p = ps(cfg, "-h", "ALL")
    ok(p.stderr == "postsuper: Placed on hold: 3 messages\n"
       and all(where(qdir, i) == ["hold"] for i in ids), "-h ALL: every message to hold/",
       p.stderr)
    p = ps(cfg, "-H", "ALL")
    ok(p.stderr == "postsuper: Released from hold: 4 messages\n"
       and all(where(qdir, i) == ["deferred"] for i in ids), "-H ALL", p.stderr)
    p = ps(cfg, "-r", "ALL", "deferred")
    ok(p.stderr == "postsuper: Requeued: 4 messages\n"
       and all(where(qdir, i) == ["incoming"] for i in ids), "-r ALL deferred", p.stderr)
    p = ps(cfg, "-d", "-", stdin="%s\n%s\nnot-an-id\n" % (ids[0], ids[1]))
    ok(p.stderr == "postsuper: %s: removed\npostsuper: %s: removed\n"
       "postsuper: warning: invalid mail queue id: not-an-id\npostsuper: Deleted: 2 messages\n"
       % (ids[0], ids[1]), "-d - reads IDs from stdin", p.stderr)
    p = ps(cfg, "-d", "ALL", "hold")
    ok(p.stderr == "" and where(qdir, ids[2]) == ["incoming"], "-d ALL hold: only hold/",
       p.stderr)
    p = ps(cfg, "-d", "ALL")
    ok(p.stderr == "postsuper: Deleted: 2 messages\n" and where(qdir, ids[3]) == [],
       "-d ALL", p.stderr)
    p = ps(cfg, "-d", "ALL", "nosuchqueue")
    ok(p.returncode == 1 and "invalid directory name: nosuchqueue" in p.stderr,
       "unknown queue name is fatal", p.stderr)


def test_postsuper_struct(cfg, qdir):
    good = fill(qdir, "deferred")
    old_tmp = os.path.join(qdir, "incoming", ".tmp.1.1")
    new_tmp = os.path.join(qdir, "incoming", ".tmp.1.2")
    for path in (old_tmp, new_tmp):
        with open(path, "w") as f:
            f.write("V14:petrel-queue 1\n")
    os.utime(old_tmp, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    bogus = os.path.join(qdir, "hold", "not-a-queue-id")
    with open(bogus, "w") as f:
        f.write("x")
    bad_id = "69222BD000000FFFF"
    with open(os.path.join(qdir, "deferred", bad_id), "w") as f:
        f.write("V14:petrel-queue 1\nT3:1.0\n")
    drop = os.path.join(qdir, "maildrop", "sendmail-name")
    with open(drop, "w") as f:
        f.write("not a queue file")
    p = ps(cfg, "-s")
    ok(p.returncode == 0, "postsuper -s exits 0", p.stderr)
    ok(os.path.exists(drop) and "sendmail-name" not in p.stderr,
       "-s leaves maildrop/ files alone", p.stderr)
    ok(not os.path.exists(old_tmp) and os.path.exists(new_tmp),
       "-s removes temp files older than a day, keeps fresh ones")
    ok(where(qdir, "not-a-queue-id") == ["corrupt"] and "bogus file name" in p.stderr,
       "-s moves a bogus file name to corrupt/", p.stderr)
    ok(where(qdir, bad_id) == ["corrupt"], "-s moves a damaged queue file to corrupt/")
    ok(where(qdir, good) == ["deferred"], "-s keeps good messages")
    ok("corrupt/%s: damaged queue file kept for inspection" % bad_id in p.stderr,
       "-s lists corrupt/", p.stderr)


def test_postsuper(tmp):
    cfg = os.path.join(tmp, "etc-ps")
    qdir = os.path.join(tmp, "queue-ps")
    os.makedirs(cfg)
    with open(os.path.join(cfg, "main.cf"), "w") as f:
        f.write("queue_directory = %s\n" % qdir)
    subprocess.run([QUEUE_FILL, qdir, "incoming", "1", "", "1", "x@y"], check=True,
                   capture_output=True)
    for q in ("incoming",):
        for name in os.listdir(os.path.join(qdir, q)):
            os.unlink(os.path.join(qdir, q, name))
    test_postsuper_ids(cfg, qdir)
    test_postsuper_all(cfg, qdir)
    test_postsuper_struct(cfg, qdir)


# ---- postqueue -f / -i / -s ----

def pq(cfg, *args):
    return run([POSTQUEUE, "-c", cfg] + list(args))


def future(qdir, qid):
    path = os.path.join(qdir, "deferred", qid)
    later = time.time() + 3600
    os.utime(path, (later, later))
    return path


def is_due(path):
    return abs(os.stat(path).st_mtime - time.time()) < 60


def test_postqueue(tmp):
    cfg = os.path.join(tmp, "etc-pq")
    qdir = os.path.join(tmp, "queue-pq")
    os.makedirs(cfg)
    with open(os.path.join(cfg, "main.cf"), "w") as f:
        f.write("queue_directory = %s\n" % qdir)
    a = fill(qdir, "deferred", ["u@Example.ORG", "v@other.test"])
    b = fill(qdir, "deferred", ["w@other.test"])
    c = fill(qdir, "deferred", ["done:z@example.org", "y@third.test"])
    fifo = Fifo(qdir)
    p = pq(cfg, "-f")
    ok(p.returncode == 0 and p.stderr == "" and fifo.read() == b"F", "postqueue -f writes 'F'",
       p.stderr)
    pa, pb, pc = future(qdir, a), future(qdir, b), future(qdir, c)
    p = pq(cfg, "-i", b)
    ok(p.returncode == 0 and p.stderr == "" and fifo.read() == b"I",
       "postqueue -i writes 'I'", p.stderr)
    ok(is_due(pb) and not is_due(pa), "-i makes only that message due")
    p = pq(cfg, "-s", "example.org")
    ok(p.returncode == 0 and fifo.read() == b"I", "postqueue -s writes 'I'", p.stderr)
    ok(is_due(pa) and not is_due(pc),
       "-s makes due the messages with a pending recipient there (case-insensitive)")
    for args in (["-i", "../x"], ["-i", "nonsense"], ["-s", "a/b"], ["-s", ""]):
        p = pq(cfg, *args)
        ok(p.returncode == 64 and "postqueue: fatal: Invalid request:" in p.stderr,
           "postqueue %s: Invalid request, exit 64" % " ".join(args), p.stderr)
    p = pq(cfg, "-i", "69222BD00000AA1B2C3")
    ok(p.returncode == 0, "-i of an ID not in deferred/: exit 0", p.stderr)
    fifo.read()
    fifo.close()
    down = "postqueue: warning: Mail system is down -- accessing queue directly\n"
    future(qdir, a)
    p = pq(cfg, "-i", a)
    ok(p.returncode == 0 and p.stderr == down and is_due(pa),
       "qmgr not running: warning, and -i still makes the message due", p.stderr)
    future(qdir, a), future(qdir, b)
    p = pq(cfg, "-f")
    ok(p.returncode == 0 and p.stderr == down and is_due(pa) and is_due(pb),
       "qmgr not running: -f makes every deferred message due", p.stderr)
    os.unlink(fifo.path)
    future(qdir, c)
    p = pq(cfg, "-s", "third.test")
    ok(p.returncode == 0 and p.stderr == down and is_due(pc), "no fifo at all: same as down",
       p.stderr)
    p = pq(cfg, "-f", "-i", a)
    ok(p.returncode == 1 and "only one of" in p.stderr, "-f with -i refused", p.stderr)


def main():
    tmp = tempfile.mkdtemp(prefix="e2e-cli.")
    try:
        cfg = os.path.join(tmp, "etc")
        os.makedirs(cfg)
        with open(os.path.join(cfg, "main.cf"), "w") as f:
            f.write("queue_directory = %s\n" % os.path.join(tmp, "queue"))
        test_pw()
        test_postalias(tmp, cfg)
        test_newaliases(tmp)
        test_postsuper(tmp)
        test_postqueue(tmp)
    except Exception as e:  # report, don't die without a plan
        import traceback
        ok(False, "unexpected exception", traceback.format_exc())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % len(results))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
