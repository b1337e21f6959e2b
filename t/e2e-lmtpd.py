#!/usr/bin/env python3
"""e2e-lmtpd.py: lmtpd end to end: LMTP on private/lmtpd (raw, to see one
reply per recipient) and on an inet listener (smtplib.LMTP); Maildir
files as Dovecot writes them (headers, LF line ends, S= and W=), +detail
folders, quota, 100 messages in one session and the UIDs in the index."""

import os
import re
import shutil
import smtplib
import subprocess

import petrel_test as pt
from lmtp_raw import LMTPRaw

SERVICES = {"lmtpd": {"type": "unix", "command": "lmtpd"},
            "lmtp-inet": {"type": "inet", "command": "lmtpd"}}
MAIN_CF = ["recipient_delimiter = +", "lmtp_save_to_detail_mailbox = yes",
           # Never the real /var/mail, even for a user without a home.
           "lmtpd_default_home = $queue_directory/../mail/%d/%n"]


def write_users(inst):
    """etc/users: alice and bob (with homes under mail/), carol with 1 KiB."""
    lines = [
        "# test users",
        "alice@example.test:{PLAIN}x::::%s/alice::" % inst.mail,
        "bob@example.test:{PLAIN}x::::%s/bob::userdb_quota_rule=*:storage=100M" % inst.mail,
        "carol@example.test:{PLAIN}x::::%s/carol::userdb_quota_rule=*:storage=1k" % inst.mail,
        "dave@example.test:{PLAIN}x::::::",
        "erin@example.test:{PLAIN}x:65534:65534::%s/erin::" % inst.mail,
    ]
    with open(os.path.join(inst.etc, "users"), "w") as f:
        f.write("\n".join(lines) + "\n")


def connect(inst):
    c = LMTPRaw(path=os.path.join(inst.queue, "private", "lmtpd"))
    assert c.cmd("LHLO client.example.test").startswith("250-")
    return c


def files(d):
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


MESSAGE = (b"From: sender@example.org\r\nTo: alice@example.test\r\n"
           b"Message-ID: <m1@example.org>\r\nSubject: hi\r\n\r\n"
           b"line one\r\n..dot-stuffed\r\nlast\r\n")


@pt.instance(services=SERVICES, main_cf=MAIN_CF)
def test_two_recipients(inst):
    """one known and one unknown recipient; the file is Dovecot's"""
    write_users(inst)
    c = connect(inst)
    rr, final = c.send_mail("sender@example.org",
                            ["alice@example.test", "nobody@example.test"], MESSAGE)
    c.close()
    assert rr[0].startswith("250 2.1.5"), rr
    assert rr[1] == ("550 5.1.1 <nobody@example.test> User doesn't exist: "
                     "nobody@example.test"), rr
    assert len(final) == 1 and re.match(r"250 2\.0\.0 <alice@example\.test> \S+ Saved$",
                                        final[0]), final
    new = os.path.join(inst.mail, "alice", "Maildir", "new")
    names = files(new)
    assert len(names) == 1, names
    assert files(os.path.join(inst.mail, "alice", "Maildir", "tmp")) == []
    with open(os.path.join(new, names[0]), "rb") as f:
        data = f.read()
    assert b"\r" not in data, data
    assert data.startswith(b"Return-Path: <sender@example.org>\nDelivered-To: "
                           b"alice@example.test\nReceived: from client.example.test\n"), data
    assert data.endswith(b"Subject: hi\n\nline one\n.dot-stuffed\nlast\n"), data
    m = re.match(r"^\d+\.M\d+P\d+\.mx\.example\.test,S=(\d+),W=(\d+)$", names[0])
    assert m, names[0]
    assert int(m.group(1)) == len(data) and int(m.group(2)) == len(data) + data.count(b"\n")
    inst.wait_log(r"lmtp\(alice@example\.test\)<\d+><\S+>: msgid=<m1@example\.org>: "
                  r"saved mail to INBOX")
    inst.wait_log(r"lmtp\(\d+\): Connect from local")
    inst.wait_log(r"lmtp\(\d+\): Disconnect from local: Logged out \(state=READY\)")


@pt.instance(services=SERVICES, main_cf=MAIN_CF)
def test_delivered_to_loop(inst):
    """a message that already has Delivered-To: for a recipient is a loop:
    554 5.4.6 for that one, the others are saved"""
    write_users(inst)
    c = connect(inst)
    looped = b"Delivered-To: Alice@Example.test\r\n" + MESSAGE
    rr, final = c.send_mail("sender@example.org", ["alice@example.test", "bob@example.test"],
                            looped)
    c.close()
    assert rr == [rr[0], rr[1]] and all(r.startswith("250") for r in rr), rr
    assert final[0] == ("554 5.4.6 <alice@example.test> mail forwarding loop for "
                        "alice@example.test"), final
    assert re.match(r"250 2\.0\.0 <bob@example\.test> \S+ Saved$", final[1]), final
    assert files(os.path.join(inst.mail, "alice", "Maildir", "new")) == []
    inst.wait_log(r"lmtp\(alice@example\.test\)<\d+><\S+>: msgid=<m1@example\.org>: "
                  r"save failed to INBOX: mail forwarding loop")


@pt.instance(services=SERVICES, main_cf=MAIN_CF)
def test_default_home(inst):
    """a user without a home gets lmtpd_default_home"""
    write_users(inst)
    c = connect(inst)
    _, final = c.send_mail("s@example.org", ["dave@example.test"], MESSAGE)
    c.close()
    assert final[0].startswith("250 2.0.0"), final
    new = os.path.join(inst.mail, "example.test", "dave", "Maildir", "new")
    assert len(files(new)) == 1


@pt.instance(services=SERVICES, main_cf=MAIN_CF)
def test_user_owns_files(inst):
    """as root, lmtpd writes as the user's uid and gid"""
    if not pt.is_root():
        pt.skip("needs root")
    write_users(inst)
    home = os.path.join(inst.mail, "erin")
    os.mkdir(home, 0o700)
    os.chown(home, 65534, 65534)
    c = connect(inst)
    _, final = c.send_mail("s@example.org", ["erin@example.test"], MESSAGE)
    c.close()
    assert final[0].startswith("250 2.0.0"), final
    root = os.path.join(home, "Maildir")
    name = files(os.path.join(root, "new"))[0]
    for path in (root, os.path.join(root, "new", name),
                 os.path.join(root, "petrel-index.lmdb"),
                 os.path.join(root, "dovecot-uidlist")):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (65534, 65534), (path, st.st_uid, st.st_gid)


@pt.instance(services=SERVICES, main_cf=MAIN_CF)
def test_detail(inst):
    """user+folder goes to the folder when it exists, else INBOX"""
    write_users(inst)
    root = os.path.join(inst.mail, "alice", "Maildir")
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, ".Work", d))
    c = connect(inst)
    _, final = c.send_mail("s@example.org", ["alice+Work@example.test"], MESSAGE)
    assert final[0].startswith("250 2.0.0 <alice+Work@example.test>"), final
    _, final = c.send_mail("s@example.org", ["alice+Nope@example.test"], MESSAGE)
    assert final[0].startswith("250 2.0.0"), final
    c.close()
    assert len(files(os.path.join(root, ".Work", "new"))) == 1
    assert len(files(os.path.join(root, "new"))) == 1
    inst.wait_log(r"saved mail to Work")


@pt.instance(services=SERVICES, main_cf=MAIN_CF)
def test_quota(inst):
    """over quota: 552 after DATA, then at RCPT once the box is full"""
    write_users(inst)
    c = connect(inst)
    big = MESSAGE + b"x" * 2000 + b"\r\n"
    rr, final = c.send_mail("s@example.org", ["carol@example.test", "alice@example.test"], big)
    assert rr[0].startswith("250"), rr
    assert final[0] == ("552 5.2.2 <carol@example.test> Quota exceeded (mailbox for user "
                        "is full)"), final
    assert final[1].startswith("250 2.0.0 <alice@example.test>"), final
    # A message that fits, then the box is over its limit.
    _, final = c.send_mail("s@example.org", ["carol@example.test"], MESSAGE)
    assert final[0].startswith("250 2.0.0"), final
    cur = os.path.join(inst.mail, "carol", "Maildir", "cur")
    with open(os.path.join(cur, "1.M1P1.x,S=5000,W=5000:2,S"), "w") as f:
        f.write("x")
    rr, final = c.send_mail("s@example.org", ["carol@example.test"], MESSAGE)
    assert rr[0].startswith("552 5.2.2 <carol@example.test> Quota exceeded"), rr
    assert c.cmd("RSET").startswith("250")
    c.close()


@pt.instance(services=SERVICES, main_cf=MAIN_CF)
def test_pipelined_bare_lf(inst):
    """pipelined commands; only CRLF.CRLF ends DATA; bare LF and CR kept"""
    write_users(inst)
    c = connect(inst)
    c.sock.sendall(b"MAIL FROM:<s@example.org> BODY=8BITMIME SIZE=100\r\n"
                   b"RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE "
                   b"ORCPT=rfc822;team@example.test\r\n"
                   b"RCPT TO:<bob@example.test>\r\n"
                   b"DATA\r\n")
    replies = [c.reply() for _ in range(4)]
    assert [r[:3] for r in replies] == ["250", "250", "250", "354"], replies
    c.sock.sendall(b"Subject: x\r\n\r\na\n.\nMAIL FROM:<evil@x>\r\nc\rd\r\n.\r\nNOOP\r\n")
    final = [c.reply() for _ in range(3)]
    assert final[0].startswith("250 2.0.0 <alice@example.test>"), final
    assert final[1].startswith("250 2.0.0 <bob@example.test>"), final
    assert final[2].startswith("250 2.0.0 OK"), final
    c.close()
    new = os.path.join(inst.mail, "bob", "Maildir", "new")
    with open(os.path.join(new, files(new)[0]), "rb") as f:
        data = f.read()
    assert data.endswith(b"\nSubject: x\n\na\n.\nMAIL FROM:<evil@x>\nc\rd\n"), data
    assert b"Delivered-To: bob@example.test\n" in data


@pt.instance(services=SERVICES, main_cf=MAIN_CF)
def test_hundred(inst):
    """100 messages in one session; the index has UIDs 1..100 in order"""
    write_users(inst)
    c = connect(inst)
    for i in range(100):
        _, final = c.send_mail("s@example.org", ["bob@example.test"],
                               b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i))
        assert final[0].startswith("250 2.0.0 <bob@example.test>"), final
    c.close()
    root = os.path.join(inst.mail, "bob", "Maildir")
    names = files(os.path.join(root, "new"))
    assert len(names) == 100

    def order(n):
        m = re.match(r"(\d+)\.M(\d+)P", n)
        return (int(m.group(1)), int(m.group(2)))
    names.sort(key=order)
    for i, n in enumerate(names):
        with open(os.path.join(root, "new", n), "rb") as f:
            assert b"Subject: %d\n" % i in f.read()
    with open(os.path.join(root, "dovecot-uidlist")) as f:
        lines = f.read().splitlines()
    assert re.match(r"^3 V\d+ N\d+ G[0-9a-f]{32}$", lines[0]), lines[0]
    assert lines[1:] == ["%d :%s" % (i + 1, n) for i, n in enumerate(names)], lines[:3]
    mdb_dump = shutil.which("mdb_dump")
    if mdb_dump:
        out = subprocess.run([mdb_dump, "-n", "-p", os.path.join(root, "petrel-index.lmdb")],
                             capture_output=True, text=True, check=True).stdout
        uids = [l for l in out.splitlines() if l.startswith(" UINBOX\\00")]
        assert len(uids) == 100, len(uids)
        assert uids[-1] == " UINBOX\\00\\00\\00\\00d", uids[-1]


@pt.instance(services=SERVICES, main_cf=MAIN_CF)
def test_inet_smtplib(inst):
    """smtplib.LMTP on the inet listener"""
    write_users(inst)
    s = smtplib.LMTP("127.0.0.1", inst.port("lmtp-inet"), timeout=20)
    code, _ = s.ehlo("client.example.test")
    assert code == 250 and s.has_extn("pipelining") and s.has_extn("enhancedstatuscodes")
    refused = s.sendmail("s@example.org", ["bob@example.test"], MESSAGE)
    assert refused == {}, refused
    s.quit()
    assert len(files(os.path.join(inst.mail, "bob", "Maildir", "new"))) == 1
    inst.wait_log(r"lmtp\(\d+\): Connect from 127\.0\.0\.1")


if __name__ == "__main__":
    pt.main()
