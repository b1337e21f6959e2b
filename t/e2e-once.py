#!/usr/bin/env python3
"""e2e-once.py: exactly-once delivery (doc/delivery.md, "Exactly once").

lmtpd offers XDELIVERYID on its UNIX socket only; a delivery that carries
one is stored at most once per mailbox: a repeat gets 250 and no second
file, two recipients that land in one mailbox get one file, a repeat is
not refused by a quota the first copy filled. Crashes at the two points
that matter, made with strace's fault injection: lmtpd killed when it
moves the recorded file from tmp/ into new/ (the retry moves it), and
killed just after the move, before its 250 (the retry stores nothing).
End to end, smtp-client passes the queue ID: a message to two addresses
that resolve to one mailbox is stored once, and an alias whose expansion
is retried (one member deferred) stores nothing again for the members
already delivered."""

import os
import re
import shutil
import smtplib
import subprocess
import time

import petrel_test as pt
from lmtp_raw import LMTPRaw

SERVICES = {"lmtpd": {"type": "unix", "command": "lmtpd"},
            "lmtp-inet": {"type": "inet", "command": "lmtpd"}}
MAIN_CF = ["recipient_delimiter = +", "lmtp_save_to_detail_mailbox = yes",
           "lmtpd_default_home = $queue_directory/../mail/%d/%n"]

MESSAGE = (b"From: sender@example.org\r\nTo: alice@example.test\r\n"
           b"Message-ID: <once@example.org>\r\nSubject: once\r\n\r\nbody\r\n")


def write_users(inst):
    """alice, and carol with a 1 KiB quota."""
    with open(os.path.join(inst.etc, "users"), "w") as f:
        f.write("alice@example.test:{PLAIN}x::::%s/alice::\n" % inst.mail)
        f.write("carol@example.test:{PLAIN}x::::%s/carol::userdb_quota_rule=*:storage=1k\n"
                % inst.mail)
    inst.set_main_cf(*(MAIN_CF + ["lmtpd_user_database = " + os.path.join(inst.etc, "users")]))


class Lmtp(LMTPRaw):
    """LMTPRaw after LHLO (its reply in .lhlo), with XDELIVERYID."""

    def __init__(self, path=None, port=None):
        super().__init__(path=path, port=port)
        self.lhlo = self.cmd("LHLO client.example.test")

    def deliver(self, rcpts, delivery_id=None, data=MESSAGE):
        """A message every recipient accepts; the final replies."""
        params = "XDELIVERYID=" + delivery_id if delivery_id is not None else ""
        rr, final = self.send_mail("sender@example.org", rcpts, data, params)
        assert all(r.startswith("250") for r in rr), rr
        return final


def unix(inst):
    return Lmtp(path=os.path.join(inst.queue, "private", "lmtpd"))


def files(inst, user, sub="new"):
    d = os.path.join(inst.mail, user, "Maildir", sub)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


SAVED = r"250 2\.0\.0 <%s> \S+ Saved$"
SAVED_BEFORE = r"250 2\.0\.0 <%s> \S+ Saved before$"


@pt.instance(services=SERVICES, main_cf=MAIN_CF)
def test_repeat(inst):
    """the same delivery id twice: 250 both times, one file, a log line"""
    write_users(inst)
    inst.reload()
    c = unix(inst)
    assert "250-XDELIVERYID" in c.lhlo.split("\n"), c.lhlo
    first = c.deliver(["alice@example.test"], "5F0A1B2C3D4E5A1")
    second = c.deliver(["alice@example.test"], "5F0A1B2C3D4E5A1")
    c.close()
    assert re.match(SAVED % "alice@example.test", first[0]), first
    assert re.match(SAVED_BEFORE % "alice@example.test", second[0]), second
    assert len(files(inst, "alice")) == 1, files(inst, "alice")
    assert files(inst, "alice", "tmp") == []
    inst.wait_log(r"lmtp\(alice@example\.test\)<\d+><\S+>: msgid=<once@example\.org>: "
                  r"delivery 5F0A1B2C3D4E5A1 was saved to INBOX before: not saved again")
    # Another id is another delivery; no id at all is never deduplicated.
    c = unix(inst)
    assert re.match(SAVED % "alice@example.test", c.deliver(["alice@example.test"], "OTHER1")[0])
    assert re.match(SAVED % "alice@example.test", c.deliver(["alice@example.test"])[0])
    assert re.match(SAVED % "alice@example.test", c.deliver(["alice@example.test"])[0])
    c.close()
    assert len(files(inst, "alice")) == 4


@pt.instance(services=SERVICES, main_cf=MAIN_CF)
def test_one_mailbox(inst):
    """two recipients that land in one mailbox (alice, alice+nofolder:
    no such folder, so INBOX) get one file, both 250"""
    write_users(inst)
    inst.reload()
    c = unix(inst)
    final = c.deliver(["alice@example.test", "alice+nofolder@example.test"], "AB12")
    c.close()
    assert re.match(SAVED % "alice@example.test", final[0]), final
    assert re.match(SAVED_BEFORE % "alice\\+nofolder@example.test", final[1]), final
    assert len(files(inst, "alice")) == 1


@pt.instance(services=SERVICES, main_cf=MAIN_CF)
def test_not_outside(inst):
    """the inet listener neither offers nor takes XDELIVERYID; bad values
    are refused on the UNIX socket"""
    write_users(inst)
    inst.reload()
    c = Lmtp(port=inst.port("lmtp-inet"))
    assert "XDELIVERYID" not in c.lhlo, c.lhlo
    r = c.cmd("MAIL FROM:<s@example.org> XDELIVERYID=AB12")
    assert r.startswith("555 5.5.4"), r
    c.close()
    c = unix(inst)
    for bad in ["XDELIVERYID=", "XDELIVERYID=AB-12", "XDELIVERYID=" + "A" * 41,
                "XDELIVERYID=A XDELIVERYID=B"]:
        r = c.cmd("MAIL FROM:<s@example.org> " + bad)
        assert r.startswith("501 5.5.4"), (bad, r)
    c.close()


@pt.instance(services=SERVICES, main_cf=MAIN_CF)
def test_quota_repeat(inst):
    """a repeat is not refused by the quota its first copy filled; a new
    delivery is (552)"""
    write_users(inst)
    inst.reload()
    big = MESSAGE + b"x" * 700 + b"\r\n"
    c = unix(inst)
    assert re.match(SAVED % "carol@example.test", c.deliver(["carol@example.test"], "Q1", big)[0])
    assert re.match(SAVED_BEFORE % "carol@example.test",
                    c.deliver(["carol@example.test"], "Q1", big)[0])
    r = c.deliver(["carol@example.test"], "Q2", big)
    c.close()
    assert r[0].startswith("552 5.2.2"), r
    assert len(files(inst, "carol")) == 1


def strace(pids, inject):
    """strace attached to pids with a fault injection; the Popen."""
    if shutil.which("strace") is None:
        pt.skip("strace is not installed")
    argv = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=renameat2",
            "-e", "inject=renameat2:" + inject]
    for pid in pids:
        argv += ["-p", str(pid)]
    st = subprocess.Popen(argv, stderr=subprocess.PIPE)
    time.sleep(0.5)
    if st.poll() is not None:
        pt.skip("strace cannot attach: " + st.stderr.read().decode(errors="replace")[:200])
    return st


def crash_then_retry(inst, inject, kill_after=None):
    """One delivery whose lmtpd dies at inject (or is killed kill_after
    seconds into a delayed syscall); then the same delivery again. The
    replies of the retry."""
    write_users(inst)
    inst.reload()
    c = unix(inst)
    assert re.match(SAVED % "alice@example.test", c.deliver(["alice@example.test"], "W1")[0])
    # The connection's process and any idle one the master keeps ready.
    pids = inst.child_pids("lmtpd")
    st = strace(pids, inject)
    try:
        if kill_after is not None:
            def killer():
                time.sleep(kill_after)
                for pid in pids:
                    os.kill(pid, 9)
            import threading
            threading.Thread(target=killer, daemon=True).start()
        try:
            r = c.deliver(["alice@example.test"], "CRASH1")
            raise AssertionError("lmtpd answered although it was killed: %r" % r)
        except (ConnectionError, OSError):
            pass
    finally:
        st.terminate()
        st.wait(timeout=20)
    c.sock.close()
    pt.wait_for(lambda: pids[0] not in inst.child_pids("lmtpd") or
                pids[-1] not in inst.child_pids("lmtpd"), timeout=10, what="lmtpd killed")
    c = unix(inst)
    r = c.deliver(["alice@example.test"], "CRASH1")
    c.close()
    return r


UNIX_ONLY = {"lmtpd": {"type": "unix", "command": "lmtpd"}}


@pt.instance(services=UNIX_ONLY, main_cf=MAIN_CF)
def test_crash_before_move(inst):
    """lmtpd killed as it moves the recorded file into new/: no 250; the
    file is still in tmp/; the retry moves it: one copy"""
    r = crash_then_retry(inst, "signal=SIGKILL")
    assert re.match(SAVED_BEFORE % "alice@example.test", r[0]), r
    assert len(files(inst, "alice")) == 2, files(inst, "alice")
    assert files(inst, "alice", "tmp") == []
    with open(os.path.join(inst.mail, "alice", "Maildir", "new",
                           files(inst, "alice")[-1]), "rb") as f:
        assert f.read().endswith(b"\nbody\n")


@pt.instance(services=UNIX_ONLY, main_cf=MAIN_CF)
def test_crash_after_move(inst):
    """lmtpd killed after the move into new/, before its 250: the retry
    stores nothing"""
    r = crash_then_retry(inst, "delay_exit=3000000", kill_after=1.5)
    assert re.match(SAVED_BEFORE % "alice@example.test", r[0]), r
    assert len(files(inst, "alice")) == 2, files(inst, "alice")
    assert files(inst, "alice", "tmp") == []


FULL = {
    "smtp": "smtpd",
    "qmgr": {"type": "fifo", "private": "n", "command": "qmgr", "maxproc": 1, "wakeup": 300},
    "lmtp": {"type": "unix", "command": "smtp-client"},
    "lmtpd": {"type": "unix", "command": "lmtpd"},
}


def test_end_to_end_one_mailbox():
    """over SMTP to alice and to sales (a virtual alias of alice): one
    file in alice's Maildir, both recipients logged as sent"""
    inst = pt.Instance(services=FULL, ipv6=False)
    users = os.path.join(inst.etc, "users")
    with open(users, "w") as f:
        f.write("alice@example.test:{PLAIN}x:%d:%d::%s/alice::\n"
                % (os.getuid(), os.getgid(), inst.mail))
    virtual = os.path.join(inst.etc, "virtual")
    with open(virtual, "w") as f:
        f.write("sales@example.test alice@example.test\n")
    inst.set_virtual_mailboxes([("alice@example.test", None)])
    inst.set_main_cf("lmtpd_user_database = " + users, "mail_location = maildir:~/Maildir",
                     "virtual_alias_maps = texthash:" + virtual)
    inst.start()
    try:
        with smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=20) as s:
            s.sendmail("a@client.test", ["alice@example.test", "sales@example.test"],
                       "Subject: one copy\r\n\r\nhi\r\n")
        inst.wait_log(r"to=<alice@example\.test>.*status=sent", count=1)
        time.sleep(1)
        assert len(files(inst, "alice")) == 1, files(inst, "alice")
    finally:
        inst.stop(check=False)


def postqueue_flush(inst):
    subprocess.run([os.path.join(pt.BUILD, "cli", "postqueue"), "-c", inst.etc, "-f"],
                   capture_output=True, timeout=30, check=True)


def test_alias_retry():
    """team -> alice, bob; bob defers twice: each retry of the expansion
    redelivers to alice, who gets 'saved before', not a second copy"""
    inst = pt.Instance(services=FULL, ipv6=False)
    lmtpd_cf = inst.set_passwd_users(["alice@example.test", "bob@example.test"])
    virtual = os.path.join(inst.etc, "virtual")
    with open(virtual, "w") as f:
        f.write("team@example.test alice@example.test, bob@example.test\n")
    transport = os.path.join(inst.etc, "transport")
    with open(transport, "w") as f:
        f.write("bob@example.test lmtp:unix:private/nosuch\n")
    inst.set_main_cf(*lmtpd_cf, "virtual_alias_maps = texthash:" + virtual,
                     "transport_maps = texthash:" + transport, "queue_run_delay = 3600s",
                     "minimal_backoff_time = 3600s", "maximal_backoff_time = 3600s")
    mail = os.path.join(inst.mail, "example.test")
    inst.start()
    try:
        with smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=20) as s:
            s.sendmail("a@client.test", ["team@example.test"], "Subject: team\r\n\r\nhi\r\n")
        inst.wait_log(r"to=<alice@example\.test>, orig_to=<team@example\.test>.*status=sent")
        inst.wait_log(r"to=<bob@example\.test>, orig_to=<team@example\.test>.*status=deferred")
        postqueue_flush(inst)
        inst.wait_log(r"to=<bob@example\.test>, orig_to=<team@example\.test>.*status=deferred",
                      count=2)
        inst.wait_log(r"lmtp\(alice@example\.test\)<\d+><\S+>: msgid=\S+: delivery \w+ "
                      r"was saved to INBOX before: not saved again")
        with open(transport, "w") as f:
            f.write("")
        inst.reload()
        time.sleep(1)
        postqueue_flush(inst)
        inst.wait_log(r"to=<bob@example\.test>, orig_to=<team@example\.test>.*status=sent")
        pt.wait_for(lambda: not os.listdir(os.path.join(inst.queue, "deferred")) and
                    not os.listdir(os.path.join(inst.queue, "active")), timeout=30,
                    what="the queue empty")
        assert len(os.listdir(os.path.join(mail, "alice", "Maildir", "new"))) == 1
        assert len(os.listdir(os.path.join(mail, "bob", "Maildir", "new"))) == 1
    finally:
        inst.stop(check=False)


if __name__ == "__main__":
    pt.main()
