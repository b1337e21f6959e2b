#!/usr/bin/env python3
"""e2e-mailstore-full.py: the mail store full (issue #9). The users' mail
root is a small tmpfs the test mounts (as root; skipped where mounting is
refused), with smtpd, qmgr, smtp-client (as lmtp) and lmtpd:

- a message bigger than the space left, to a user with a Maildir and one
  without: lmtpd answers 452 4.3.1 for each recipient, the message is
  deferred (postqueue -p shows why), nothing bounces, and no Maildir
  holds a partial file in new/, cur/ or tmp/; with room again,
  postqueue -f delivers it once to each, whole.
- a recipient over its quota (quota_rule in the userdb) gets 552 5.2.2 and
  that recipient bounces, as with Dovecot and Postfix."""

import email
import email.policy
import os
import re
import shutil
import smtplib
import subprocess
import time

import petrel_test as pt

SIZE_KB = 1024
DOMAIN = "example.test"
SERVICES = {
    "smtp": "smtpd",
    "qmgr": {"type": "fifo", "private": "n", "command": "qmgr", "maxproc": 1, "wakeup": 300},
    "lmtp": {"type": "unix", "command": "smtp-client"},
    "lmtpd": {"type": "unix", "command": "lmtpd"},
}
# Retries only when the test asks (postqueue -f).
SLOW_RETRY = ["queue_run_delay = 3600s", "minimal_backoff_time = 3600s",
              "maximal_backoff_time = 3600s"]
# name -> extra userdb field
USERS = {"alice": "", "bob": "", "carol": "userdb_quota_rule=*:storage=1k", "dave": ""}


class Case:
    """An instance whose mail root (inst.mail) is a SIZE_KB tmpfs."""

    def __init__(self):
        if not pt.is_root():
            pt.skip("needs root to mount a tmpfs for the mail store")
        self.inst = pt.Instance(services=dict(SERVICES), ipv6=False)
        inst = self.inst
        users = os.path.join(inst.etc, "users")
        uid, gid = os.getuid(), os.getgid()
        with open(users, "w") as f:
            for u, extra in USERS.items():
                home = os.path.join(inst.mail, DOMAIN, u)
                f.write("%s@%s:{PLAIN}secret:%d:%d::%s::%s\n" % (u, DOMAIN, uid, gid, home,
                                                                 extra))
        inst.set_virtual_mailboxes([("%s@%s" % (u, DOMAIN), None) for u in USERS])
        inst.set_main_cf("lmtpd_user_database = " + users,
                         "mail_location = maildir:~/Maildir", *SLOW_RETRY)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk,mode=0755" % SIZE_KB,
                            "tmpfs", inst.mail], capture_output=True, text=True)
        if r.returncode != 0:
            shutil.rmtree(inst.dir, ignore_errors=True)
            pt.skip("mount refused: " + r.stderr.strip()[:200])
        self.filler = os.path.join(inst.mail, "filler")

    def finish(self, check):
        """Stop, unmount, then remove the directory (in that order)."""
        self.inst.owns_dir = False  # stop() must not remove files under the mount
        try:
            self.inst.stop(check=check)
        finally:
            r = subprocess.run(["umount", self.inst.mail], capture_output=True, text=True)
            if r.returncode != 0:
                pt.diag("umount: " + r.stderr.strip())
                subprocess.run(["umount", "-l", self.inst.mail], capture_output=True)
            shutil.rmtree(self.inst.dir, ignore_errors=True)

    def free_bytes(self):
        st = os.statvfs(self.inst.mail)
        return st.f_bavail * st.f_frsize

    def fill(self, leave):
        """Grow the filler file until only about leave bytes are free."""
        with open(self.filler, "ab") as f:
            want = self.free_bytes() - leave
            if want > 0:
                f.write(b"\0" * want)
                f.flush()
                os.fsync(f.fileno())

    def maildir(self, user, subs=("new", "cur")):
        return self.inst.maildir_files("%s@%s" % (user, DOMAIN), subs)

    def with_token(self, user, token):
        """(path, bytes) of user's files holding X-Token: token."""
        return self.inst.with_token("%s@%s" % (user, DOMAIN), token)

    def queue_files(self, q):
        d = os.path.join(self.inst.queue, q)
        return sorted(f for f in os.listdir(d) if not f.startswith(".")) \
            if os.path.isdir(d) else []

    def queue_empty(self):
        return not any(self.queue_files(q) for q in ("incoming", "active", "deferred"))

    def send(self, sender, rcpts, msg):
        """One message to rcpts (an address or a list)."""
        rcpts = [rcpts] if isinstance(rcpts, str) else rcpts
        with smtplib.SMTP("127.0.0.1", self.inst.port("smtp"), timeout=30) as s:
            s.sendmail(sender, rcpts, msg)

    def postqueue(self, *args):
        path = os.path.join(pt.BUILD, "cli", "postqueue")
        if not os.path.exists(path):
            pt.skip("postqueue is not built")
        r = subprocess.run([path, "-c", self.inst.etc] + list(args), capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, (args, r.stderr)
        return r.stdout


def message(rcpt, token, body_lines=1):
    """A message (CRLF) with a numbered body, so truncation shows."""
    body = "".join("line %06d of %s %s\r\n" % (i, token, "x" * 40) for i in range(body_lines))
    return ("From: <bob@example.test>\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s@client.test>\r\nX-Token: %s\r\n\r\n%s"
            % (rcpt, token, token, token, body))


def dsns(case, user):
    """The DSNs (multipart/report) in user's Maildir."""
    out = []
    for path in case.maildir(user):
        with open(path, "rb") as f:
            m = email.message_from_bytes(f.read(), policy=email.policy.compat32)
        if m.get_content_type() == "multipart/report":
            out.append(m)
    return out


def check_store_full(case):
    inst = case.inst
    # A first message makes alice's Maildir (and its index); dave has
    # none when the store fills.
    case.send("bob@example.test", "alice@example.test", message("alice", "s1"))
    pt.wait_for(lambda: case.with_token("alice", "s1") and case.queue_empty(), timeout=30,
                what="the first delivery")
    first = case.maildir("alice")
    case.fill(64 * 1024)
    rcpts = ["alice@example.test", "dave@example.test"]
    big = message(", ".join(rcpts), "s2", body_lines=4000)  # about 290 KB
    assert len(big) > 2 * case.free_bytes(), (len(big), case.free_bytes())
    case.send("bob@example.test", rcpts, big)
    [qid] = pt.wait_for(lambda: case.queue_files("deferred"), timeout=30,
                        what="the big message to be deferred")
    log = inst.log()
    out = case.postqueue("-p")
    assert qid in out, out
    for rcpt in rcpts:
        rx = re.escape(rcpt)
        assert re.search(r"lmtp\(%s\)<\d+><\S+>: msgid=<s2@client\.test>: save failed to "
                         r"INBOX: .*No space left on device" % rx, log), inst.tail()
        assert re.search(r"postfix/lmtp\[\d+\]: %s: to=<%s>, .*dsn=4\.3\.1, "
                         r"status=deferred \(.*452 4\.3\.1 <%s> Insufficient system storage"
                         % (qid, rx, rx), log), inst.tail()
        assert rcpt in out, out
    assert re.search(r"^ *\(.*452 4\.3\.1 <\S+> Insufficient system storage.*\)$", out,
                     re.M), out
    assert "status=bounced" not in log, inst.tail()
    assert not dsns(case, "bob"), "a DSN was generated"
    # Nothing partial: alice's new/ has the first message only; cur/ and
    # tmp/ are empty; dave has no message file.
    assert case.maildir("alice") == first, case.maildir("alice")
    for user in ("alice", "dave"):
        left = case.maildir(user, ("new", "cur", "tmp")) if user == "dave" else \
            case.maildir(user, ("cur", "tmp"))
        assert left == [], left
    # Room again: delivered once to each, whole.
    os.unlink(case.filler)
    case.postqueue("-f")
    pt.wait_for(lambda: case.queue_empty() and case.with_token("alice", "s2") and
                case.with_token("dave", "s2"), timeout=30,
                what="the big message after postqueue -f")
    time.sleep(0.5)
    want = big.replace("\r\n", "\n").encode()
    for user in ("alice", "dave"):
        [(path, data)] = case.with_token(user, "s2")
        assert data.endswith(want), "%s: the stored message differs from the one sent" % user
        assert re.search(r",S=%d(,|:|$)" % len(data), os.path.basename(path)), (path, len(data))
        assert case.maildir(user, ("tmp",)) == [], case.maildir(user, ("tmp",))
    assert len(re.findall(r"%s: to=<[^>]*>, .*status=sent" % qid, inst.log())) == 2, \
        inst.tail()
    assert "status=bounced" not in inst.log() and not dsns(case, "bob"), inst.tail()


def check_over_quota(case):
    inst = case.inst
    case.send("bob@example.test", "carol@example.test", message("carol", "q1", body_lines=60))
    pt.wait_for(lambda: dsns(case, "bob") and case.queue_empty(), timeout=30,
                what="the bounce for carol")
    log = inst.log()
    assert re.search(r"postfix/lmtp\[\d+\]: \w+: to=<carol@example\.test>, .*dsn=5\.2\.2, "
                     r"status=bounced \(.*552 5\.2\.2 <carol@example\.test> Quota exceeded",
                     log), inst.tail()
    assert case.maildir("carol", ("new", "cur", "tmp")) == []


def run(check):
    case = Case()
    ok = False
    try:
        case.inst.start()
        check(case)
        ok = True
    finally:
        case.finish(ok)


def test_mailstore_full():
    """mail store full: 452 4.3.1, deferred, no partial file; then once, whole"""
    run(check_store_full)


def test_over_quota():
    """a recipient over quota: 552 5.2.2, that recipient bounces"""
    run(check_over_quota)


if __name__ == "__main__":
    pt.main()
