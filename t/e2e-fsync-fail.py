#!/usr/bin/env python3
"""e2e-fsync-fail.py: a failed fsync is never followed by a 250 (issue #9).
An LD_PRELOAD shim (t/fsync_fail_shim.c, compiled here) makes fsync() and
fdatasync() fail with EIO for the descriptors whose path contains a chosen
text, while a trigger file exists. Services: smtpd, qmgr, smtp-client (as
lmtp) and lmtpd.

- smtpd (QUEUE_CASES: the queue file, incoming/): the end of DATA gets
  451 4.3.0, no file is left in incoming/ (visible or temporary), smtpd
  logs the error; without the trigger the next message gets 250 and is
  delivered once.
- the Maildir delivery (MAILDIR_CASES: the whole Maildir, the message
  file, tmp/, new/, the index's commit and its second sync; a "skip N"
  line in the trigger lets the first N matching calls pass): lmtpd answers
  451 4.3.0 for each recipient, the message is deferred (postqueue -p
  shows why), tmp/ and new/ hold nothing new (but the one file a
  delivery record may name); without the trigger, postqueue -f delivers
  it exactly once to each, and tmp/ ends empty.
- the queue file while qmgr marks a recipient done ("/active/"): the
  message is never lost (deferred, then removed or delivered again).

Skips when cc is missing."""

import os
import re
import shutil
import smtplib
import subprocess
import time

import petrel_test as pt
from smtp_raw import SMTPRaw

USERS = ["alice", "bob", "carol"]
DOMAIN = "example.test"
SRCDIR = os.environ.get("PETREL_SRCDIR",
                        os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

SERVICES = {
    "smtp": "smtpd",
    "qmgr": {"type": "fifo", "private": "n", "command": "qmgr", "maxproc": 1, "wakeup": 300},
    "lmtp": {"type": "unix", "command": "smtp-client"},
    "lmtpd": {"type": "unix", "command": "lmtpd"},
}

# Retries only when the test asks (postqueue -f), so a deferred message
# stays put while it is inspected.
SLOW_RETRY = ["queue_run_delay = 3600s", "minimal_backoff_time = 3600s",
              "maximal_backoff_time = 3600s"]


def build_shim(directory):
    """Compile the shim into directory; its path (or skip)."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("cc")
    if cc is None:
        pt.skip("no C compiler (cc) to build the fsync shim")
    out = os.path.join(directory, "fsync_fail_shim.so")
    src = os.path.join(SRCDIR, "t", "fsync_fail_shim.c")
    r = subprocess.run([cc, "-shared", "-fPIC", "-o", out, src, "-ldl"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("building the shim failed:\n" + r.stderr)
    return out


class Case:
    """An instance whose processes run with the shim preloaded; fail(text)
    arms it for paths containing text, clear() disarms it."""

    def __init__(self, main_cf=()):
        self.inst = pt.Instance(services=dict(SERVICES), ipv6=False)
        inst = self.inst
        self.trigger = os.path.join(inst.dir, "fsync-fail")
        shim = build_shim(inst.dir)
        asan = os.environ.get("ASAN_OPTIONS", "")
        inst.env = {
            "LD_PRELOAD": shim,
            "PETREL_FSYNC_FAIL": self.trigger,
            # The shim comes before the ASan runtime in the library list.
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0",
        }
        lmtpd_cf = inst.set_passwd_users(["%s@%s" % (u, DOMAIN) for u in USERS])
        inst.set_main_cf(*lmtpd_cf, *main_cf)

    def fail(self, text):
        with open(self.trigger + ".tmp", "w") as f:
            f.write(text + "\n")
        os.chmod(self.trigger + ".tmp", 0o644)
        os.rename(self.trigger + ".tmp", self.trigger)

    def clear(self):
        os.unlink(self.trigger)

    def maildir(self, user, subs=("new", "cur")):
        """Paths of the files in user's Maildir subdirectories subs."""
        return self.inst.maildir_files("%s@%s" % (user, DOMAIN), subs)

    def with_token(self, user, token):
        """The files of user (new/ and cur/) holding X-Token: token."""
        return [path for path, _ in self.inst.with_token("%s@%s" % (user, DOMAIN), token)]

    def queue_files(self, q, hidden=False):
        d = os.path.join(self.inst.queue, q)
        if not os.path.isdir(d):
            return []
        return sorted(f for f in os.listdir(d) if hidden or not f.startswith("."))

    def queue_empty(self):
        return not any(self.queue_files(q) for q in ("incoming", "active", "deferred"))

    def send(self, rcpt, token):
        """One message over SMTP; the exception of a refusal propagates."""
        msg = ("From: <sender@client.test>\r\nTo: %s\r\nSubject: %s\r\n"
               "Message-ID: <%s@client.test>\r\nX-Token: %s\r\n\r\nbody of %s\r\n"
               % (rcpt, token, token, token, token))
        with smtplib.SMTP("127.0.0.1", self.inst.port("smtp"), timeout=30) as s:
            s.sendmail("sender@client.test", [rcpt], msg)

    def send_many(self, rcpts, token):
        """One message to several recipients."""
        msg = ("From: <sender@client.test>\r\nTo: %s\r\nSubject: %s\r\n"
               "Message-ID: <%s@client.test>\r\nX-Token: %s\r\n\r\nbody of %s\r\n"
               % (", ".join(rcpts), token, token, token, token))
        with smtplib.SMTP("127.0.0.1", self.inst.port("smtp"), timeout=30) as s:
            s.sendmail("sender@client.test", rcpts, msg)

    def postqueue(self, *args):
        path = os.path.join(pt.BUILD, "cli", "postqueue")
        if not os.path.exists(path):
            pt.skip("postqueue is not built")
        r = subprocess.run([path, "-c", self.inst.etc] + list(args), capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, (args, r.stderr)
        return r.stdout


def run(case, body):
    """Start case's instance, run body(case), stop (checking the
    sanitizers only when body passed)."""
    case.inst.start()
    ok = False
    try:
        body(case)
        ok = True
    finally:
        case.inst.stop(check=ok)


# Where smtpd's fsync fails: (name, trigger text, the path logged (regex),
# description).
QUEUE_CASES = [
    ("file", "/incoming/", r"/queue/incoming/\.tmp\.[0-9a-f]+\.[0-9a-f]+", "the queue file"),
    ("dir", "/queue/incoming\nskip 1", r"/queue/incoming", "incoming/ after the rename"),
]


def check_queue_fsync(case, trigger, path_rx):
    inst = case.inst
    case.fail(trigger)
    c = SMTPRaw("127.0.0.1", inst.port("smtp"), timeout=30)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<sender@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    code, text = c.cmd("Subject: lost\r\nX-Token: f1\r\n\r\nbody of f1\r\n.")
    assert code == 451 and text == "4.3.0 Error: queue file write error", (code, text)
    assert case.queue_files("incoming", hidden=True) == [], case.queue_files("incoming", True)
    inst.wait_log(r"postfix/smtpd\[\d+\]: warning: \w+: queue file write error: "
                  r"fsync\(\S+%s\) failed: Input/output error" % path_rx)
    # The session goes on; without the trigger the next message is taken.
    case.clear()
    assert c.cmd("MAIL FROM:<sender@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    code, text = c.cmd("Subject: kept\r\nX-Token: f2\r\n\r\nbody of f2\r\n.")
    assert code == 250 and "queued as" in text, (code, text)
    c.cmd("QUIT")
    c.close()
    pt.wait_for(lambda: case.with_token("alice", "f2") and case.queue_empty(), timeout=30,
                what="delivery of the second message")
    time.sleep(0.5)
    assert len(case.with_token("alice", "f2")) == 1, case.maildir("alice")
    assert case.with_token("alice", "f1") == []
    assert len(case.maildir("alice")) == 1, case.maildir("alice")


def queue_test(name, trigger, path_rx, what):
    """A test function for one row of QUEUE_CASES."""
    def test():
        run(Case(), lambda case: check_queue_fsync(case, trigger, path_rx))
    test.__name__ = "test_queue_" + name
    test.__doc__ = "fsync fails for %s: 451 4.3.0, no file left, then 250" % what
    return test


for _row in QUEUE_CASES:
    globals()["test_queue_" + _row[0]] = queue_test(*_row)


# Where the Maildir delivery's fsync fails: (name, trigger text, where a
# file may stay until the retry (None, "new" or "tmp"), description). A
# file left behind is one that a delivery record may already name: lmtpd
# answers 451, and the retry finds the record and finishes that file.
MAILDIR_CASES = [
    ("maildir", "/Maildir/", None,
     "every fsync in the Maildir (file, directories, index)"),
    ("message_file", "/Maildir/tmp/", None, "the message file in tmp/"),
    ("tmp_dir", "/Maildir/tmp\nskip 1", None, "tmp/ after the file's"),
    ("new_dir", "/Maildir/new", "new", "new/ after the rename"),
    ("index_commit", "petrel-index.lmdb", None, "the index's commit"),
    ("index_sync", "petrel-index.lmdb\nskip 1", "tmp",
     "the index's second sync (its commit's data sync passed)"),
]
RCPTS = ["bob@example.test", "carol@example.test"]


def user_of(rcpt):
    return rcpt.split("@")[0]


def check_maildir_fsync(case, trigger, may_hold):
    """Each recipient gets 451 4.3.0 while fsync fails under trigger; the
    message is deferred; without the trigger postqueue -f delivers it
    once to each."""
    inst = case.inst
    # The Maildirs and their indexes exist before the fault.
    for n, rcpt in enumerate(RCPTS):
        case.send(rcpt, "pre%d" % n)
    pt.wait_for(lambda: all(case.with_token(user_of(r), "pre%d" % n)
                            for n, r in enumerate(RCPTS)) and case.queue_empty(),
                timeout=30, what="the first deliveries")
    before = {r: case.maildir(user_of(r)) for r in RCPTS}
    case.fail(trigger)
    case.send_many(RCPTS, "m1")
    [qid] = pt.wait_for(lambda: case.queue_files("deferred"), timeout=30,
                        what="the message to be deferred")
    log = inst.log()
    out = case.postqueue("-p")
    assert qid in out, out
    for rcpt in RCPTS:
        rx = re.escape(rcpt)
        assert re.search(r"lmtp\(%s\)<\d+><\S+>: msgid=<m1@client\.test>: save failed to "
                         r"INBOX: .*Input/output error" % rx, log), inst.tail()
        assert re.search(r"postfix/lmtp\[\d+\]: %s: to=<%s>, .*dsn=4\.3\.0, "
                         r"status=deferred \(.*451 4\.3\.0 <%s> Temporary internal error"
                         % (qid, rx, rx), log), inst.tail()
        assert rcpt in out, out
        tmp = case.maildir(user_of(rcpt), ("tmp",))
        assert len(tmp) <= (1 if may_hold == "tmp" else 0), tmp
        new = case.maildir(user_of(rcpt))
        assert len(new) - len(before[rcpt]) <= (1 if may_hold == "new" else 0), new
    assert re.search(r"^ *\(.*451 4\.3\.0 <\S+@example\.test> Temporary internal error.*\)$",
                     out, re.M), out
    assert "status=bounced" not in log, inst.tail()
    assert not re.search(r"%s: to=<[^>]*>, .*status=sent" % qid, log), inst.tail()
    case.clear()
    case.postqueue("-f")
    pt.wait_for(lambda: case.queue_empty() and
                all(case.with_token(user_of(r), "m1") for r in RCPTS), timeout=30,
                what="delivery after postqueue -f")
    time.sleep(0.5)
    for rcpt in RCPTS:
        copies = case.with_token(user_of(rcpt), "m1")
        assert len(copies) == 1, case.maildir(user_of(rcpt))
        tmp = case.maildir(user_of(rcpt), ("tmp",))
        assert tmp == [], tmp
    sent = re.findall(r"%s: to=<[^>]*>, .*status=sent" % qid, inst.log())
    assert len(sent) == len(RCPTS), inst.tail()


def maildir_test(name, trigger, may_hold, what):
    """A test function for one row of MAILDIR_CASES."""
    def test():
        run(Case(main_cf=SLOW_RETRY),
            lambda case: check_maildir_fsync(case, trigger, may_hold))
    test.__name__ = "test_maildir_" + name
    test.__doc__ = "fsync fails for %s: 451 per recipient, deferred, then once" % what
    return test


for _row in MAILDIR_CASES:
    globals()["test_maildir_" + _row[0]] = maildir_test(*_row)


def check_active_fsync(case):
    inst = case.inst
    case.fail("/active/")
    case.send("alice@example.test", "a1")
    pt.wait_for(lambda: case.with_token("alice", "a1"), timeout=30, what="the delivery")
    inst.wait_log(r"postfix/qmgr\[\d+\]: warning: \w+: fsync\(\S+/active/\w+\) failed: "
                  r"Input/output error")
    qid = re.search(r"postfix/qmgr\[\d+\]: warning: (\w+): fsync", inst.log()).group(1)
    # The delivery is not forgotten: the message is kept (deferred) ...
    pt.wait_for(lambda: qid in case.queue_files("deferred") or case.queue_empty(),
                timeout=30, what="the message to be deferred")
    assert qid in case.queue_files("deferred"), (qid, case.queue_files("deferred"),
                                                 inst.tail())
    pt.diag("qmgr: " + "; ".join(l.split(": ", 1)[1] for l in inst.log().splitlines()
                                 if qid in l and "qmgr" in l)[:600])
    # ... until a run without the fault, which removes it: delivered at
    # least once (a repeat is tolerated here; delivery identities make it
    # harmless), never bounced.
    case.clear()
    case.postqueue("-f")
    pt.wait_for(case.queue_empty, timeout=30, what="the queue to drain after postqueue -f")
    copies = len(case.with_token("alice", "a1"))
    pt.diag("copies delivered after the failed mark: %d" % copies)
    assert 1 <= copies <= 2, case.maildir("alice")
    assert "status=bounced" not in inst.log(), inst.tail()


def test_mark_done_fsync_fails():
    """fsync fails while qmgr marks a recipient done: never lost"""
    run(Case(main_cf=SLOW_RETRY), check_active_fsync)


if __name__ == "__main__":
    pt.main()
