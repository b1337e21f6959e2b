#!/usr/bin/env python3
"""e2e-smtpd.py: smtpd against real clients (Python smtplib, swaks,
gnutls-cli) on a running instance: plain, STARTTLS, pipelining, BDAT, DSN
parameters, the Received: header, Postfix-format log lines, mailq, a kill -9
during DATA, the master replacing a killed smtpd, and a reload that changes
message_size_limit for new connections only."""

import glob
import json
import os
import re
import shutil
import signal
import smtplib
import ssl
import subprocess
import time

import petrel_test as pt
from petrel_test import BUILD, Instance, skip
from smtp_raw import SMTPRaw, SMUGGLE_ENDINGS, smuggle

MSG = "From: sender@client.test\r\nTo: alice@example.test\r\nSubject: %s\r\nMessage-ID: <%s@client.test>\r\n\r\n%s\r\n"


def queue_files(inst, sub="incoming"):
    d = os.path.join(inst.queue, sub)
    return sorted(f for f in os.listdir(d) if not f.startswith("."))


def temp_files(inst):
    d = os.path.join(inst.queue, "incoming")
    return sorted(f for f in os.listdir(d) if f.startswith("."))


def queue_json(inst):
    out = subprocess.run([os.path.join(BUILD, "cli", "postqueue"), "-c", inst.etc, "-j"],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def find_queued(inst, qid):
    for m in queue_json(inst):
        if m["queue_id"] == qid:
            return m
    raise AssertionError("%s not in the queue" % qid)


def queue_content(inst, qid):
    with open(os.path.join(inst.queue, "incoming", qid), "rb") as f:
        return f.read()


def send_smtplib(inst, subject, rcpts=("alice@example.test",), tls=False):
    with smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=10) as s:
        s.ehlo("client.test")
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s.starttls(context=ctx)
            s.ehlo("client.test")
        refused = s.sendmail("sender@client.test", list(rcpts),
                             MSG % (subject, subject, "body of " + subject))
        assert refused == {}, refused
        code, text = s.noop()
        assert code == 250
    return last_queue_id(inst, subject)


def last_queue_id(inst, subject):
    for qid in queue_files(inst):
        if ("Subject: %s\r\n" % subject).encode() in queue_content(inst, qid):
            return qid
    raise AssertionError("no queue file with subject %s" % subject)


def test_plain(inst):
    qid = send_smtplib(inst, "plain-1")
    m = find_queued(inst, qid)
    assert m["sender"] == "sender@client.test", m
    assert [r["address"] for r in m["recipients"]] == ["alice@example.test"], m
    data = queue_content(inst, qid)
    assert b"body of plain-1\r\n" in data
    assert re.search(rb"Received: from client\.test \(unknown \[127\.0\.0\.1\]\)\r\n"
                     rb"\tby mx\.example\.test \(Petrel\) with ESMTP id " + qid.encode() +
                     rb"\r\n\tfor <alice@example\.test>; ", data), data[:400]
    log = inst.log()
    assert re.search(r"postfix/smtpd\[\d+\]: connect from unknown\[127\.0\.0\.1\]", log)
    assert re.search(r"postfix/smtpd\[\d+\]: %s: client=unknown\[127\.0\.0\.1\]" % qid, log)
    assert re.search(r"postfix/smtpd\[\d+\]: %s: message-id=<plain-1@client\.test>" % qid, log)
    pt.wait_for(lambda: re.search(
        r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 data=1 noop=1 quit=1 commands=6",
        inst.log()), timeout=5)


def test_multi_recipient(inst):
    qid = send_smtplib(inst, "multi-1", rcpts=("alice@example.test", "bob@example.test",
                                               "postmaster"))
    m = find_queued(inst, qid)
    got = sorted(r["address"] for r in m["recipients"])
    assert got == ["alice@example.test", "bob@example.test", "postmaster"], got
    # Content is stored once whatever the number of recipients.
    assert queue_content(inst, qid).count(b"body of multi-1") == 1


def test_starttls_smtplib(inst):
    qid = send_smtplib(inst, "tls-1", tls=True)
    data = queue_content(inst, qid)
    assert b"with ESMTPS id " + qid.encode() in data
    assert re.search(rb"\t\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)\r\n", data), data[:500]
    assert re.search(r"Anonymous TLS connection established from unknown\[127\.0\.0\.1\]: TLSv1\.[23] with cipher",
                     inst.log())


def test_pipelining(inst):
    c = SMTPRaw("127.0.0.1", inst.port("smtp"))
    assert c.reply()[0] == 220
    code, text = c.cmd("EHLO client.test")
    for kw in ("PIPELINING", "SIZE 10240000", "8BITMIME", "SMTPUTF8", "CHUNKING",
               "ENHANCEDSTATUSCODES", "DSN", "STARTTLS"):
        assert kw in text.split("\n"), (kw, text)
    c.send("MAIL FROM:<sender@client.test>\r\nRCPT TO:<alice@example.test>\r\n"
           "RCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
    codes = [c.reply()[0] for _ in range(5)]
    assert codes == [250, 250, 550, 250, 354], codes
    c.send("Subject: pipelined-1\r\n\r\nhello\r\n.\r\nQUIT\r\n")
    code, text = c.reply()
    assert code == 250 and text.startswith("2.0.0 Ok: queued as "), text
    assert c.reply()[0] == 221
    c.close()
    qid = text.split()[-1]
    got = sorted(r["address"] for r in find_queued(inst, qid)["recipients"])
    assert got == ["alice@example.test", "bob@example.test"], got
    assert re.search(r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 550 5\.1\.1 <nobody@example\.test>: "
                     r"Recipient address rejected: User unknown in virtual mailbox table; "
                     r"from=<sender@client\.test> to=<nobody@example\.test> proto=ESMTP helo=<client\.test>",
                     inst.log()) or (qid + ": reject: RCPT") in inst.log()


def test_bdat(inst):
    c = SMTPRaw("127.0.0.1", inst.port("smtp"))
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<sender@client.test> BODY=8BITMIME")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    part1 = b"Subject: bdat-1\r\n\r\nline one\r\n.leading dot kept\r\n"
    part2 = "caf\u00e9 8-bit\r\n".encode()
    c.send(b"BDAT %d\r\n" % len(part1) + part1)
    code, text = c.reply()
    assert code == 250, text
    c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    code, text = c.reply()
    assert code == 250 and "queued as" in text, text
    assert c.cmd("QUIT")[0] == 221
    qid = text.split()[-1]
    data = queue_content(inst, qid)
    assert part1 + part2 in data, data


def test_dsn_params(inst):
    c = SMTPRaw("127.0.0.1", inst.port("smtp"))
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<sender@client.test> RET=HDRS ENVID=env+2Bid-1")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice+2Bx@example.test")[0] == 250
    assert c.cmd("DATA")[0] == 354
    code, text = c.cmd("Subject: dsn-1\r\n\r\nx\r\n.\r\n")
    assert code == 250, text
    c.close()
    qid = text.split()[-1]
    data = queue_content(inst, qid)
    for want in (b"env+id-1", b"HDRS", b"rfc822;alice+x@example.test"):
        assert want in data, (want, data[:600])


def test_smtputf8(inst):
    c = SMTPRaw("127.0.0.1", inst.port("smtp"))
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<s\u00e9nder@client.test> SMTPUTF8".encode())[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    code, text = c.cmd("Subject: utf8-1\r\n\r\n\u00e9\r\n.\r\n".encode())
    assert code == 250, text
    c.close()
    assert b"with UTF8SMTP id" in queue_content(inst, text.split()[-1])


def test_swaks(inst):
    if not shutil.which("swaks"):
        skip("swaks is not installed")
    for extra, subject in (([], "swaks-1"), (["--tls"], "swaks-tls-1")):
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(inst.port("smtp")),
                            "--from", "sender@client.test", "--to", "bob@example.test",
                            "--helo", "client.test", "--header", "Subject: " + subject,
                            "--timeout", "10"] + extra,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "queued as" in r.stdout, r.stdout
        last_queue_id(inst, subject)


def test_gnutls_cli(inst):
    if not shutil.which("gnutls-cli"):
        skip("gnutls-cli is not installed")
    script = ("EHLO client.test\r\nMAIL FROM:<sender@client.test>\r\nRCPT TO:<alice@example.test>\r\n"
              "DATA\r\nSubject: gnutls-1\r\n\r\nover gnutls-cli\r\n.\r\nQUIT\r\n")
    r = subprocess.run(["gnutls-cli", "--insecure", "--starttls-proto=smtp",
                        "--port", str(inst.port("smtp")), "127.0.0.1"],
                       input=script, capture_output=True, text=True, timeout=60)
    assert "250 2.0.0 Ok: queued as" in r.stdout, r.stdout + r.stderr
    assert b"with ESMTPS" in queue_content(inst, last_queue_id(inst, "gnutls-1"))


def test_mailq(inst):
    out = subprocess.run([os.path.join(BUILD, "cli", "postqueue"), "-c", inst.etc, "-p"],
                         check=True, capture_output=True, text=True).stdout
    assert out.startswith("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"), out
    assert "alice@example.test" in out and re.search(r"-- \d+ Kbytes in \d+ Requests?\.", out), out


def test_queue_ids_unique(inst):
    ids = queue_files(inst)
    assert len(ids) == len(set(ids)) and len(ids) >= 5, ids


def test_kill_during_data(inst):
    """kill -9 of smtpd in the middle of DATA leaves no visible file."""
    before = queue_files(inst)
    c = SMTPRaw("127.0.0.1", inst.port("smtp"))
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<sender@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: killed-1\r\n\r\n" + "partial line\r\n" * 1000)
    time.sleep(0.3)
    pids = inst.child_pids("smtp")
    assert pids, "no smtpd process"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert c.closed(timeout=5)
    c.close()
    assert queue_files(inst) == before, "a killed DATA left a visible queue file"
    assert temp_files(inst), "expected the unfinished temp file of the killed smtpd"
    # The master replaces the killed smtpd and mail flows again.
    pt.wait_for(lambda: re.search(r"process \S+smtpd pid \d+ killed by signal 9", inst.log()),
                  timeout=10)
    send_smtplib(inst, "after-kill-1")


def test_restart_cleans_temp(inst):
    """A master restart removes the unfinished files of killed writers."""
    assert temp_files(inst), "no temp file left by the kill test"
    inst.restart()
    assert temp_files(inst) == [], temp_files(inst)
    assert re.search(r"removed \d+ unfinished queue files? from ", inst.log())


def test_reload_size_limit(inst):
    """SIGHUP with a new message_size_limit: new sessions see it, a session
    that was open before the reload keeps working."""
    old = SMTPRaw("127.0.0.1", inst.port("smtp"))
    assert old.reply()[0] == 220
    assert "SIZE 10240000" in old.cmd("EHLO client.test")[1]
    inst.set_main_cf("smtpd_tls_security_level = may", "message_size_limit = 20480000")
    inst.reload()

    def new_size():
        c = SMTPRaw("127.0.0.1", inst.port("smtp"))
        try:
            c.reply()
            return "SIZE 20480000" in c.cmd("EHLO client.test")[1]
        finally:
            c.close()
    pt.wait_for(new_size, timeout=10)
    assert old.cmd("MAIL FROM:<sender@client.test>")[0] == 250
    assert old.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert old.cmd("DATA")[0] == 354
    code, text = old.cmd("Subject: reload-1\r\n\r\nx\r\n.\r\n")
    assert code == 250, text
    assert old.cmd("QUIT")[0] == 221
    old.close()


def test_privsep(inst_unused):
    """As root: smtpd as mail_owner, chrooted to the queue directory, still
    queues mail (paths inside the chroot) and checks recipients (tables
    opened before the chroot)."""
    if not pt.is_root():
        skip("needs root to drop privileges and chroot")
    inst = Instance(services={"smtp": "smtpd"}, tls=True, unpriv=True, chroot=True)
    inst.add_virtual_mailbox("alice@example.test")
    inst.start()
    try:
        qid = send_smtplib(inst, "privsep-1", tls=True)
        def dropped():
            """every smtpd chrooted and unprivileged (a child the master
            has just started may not have dropped yet: wait for it)"""
            pids = inst.child_pids("smtp")
            for pid in pids:
                try:
                    root = os.readlink("/proc/%d/root" % pid)
                    uid = [l for l in open("/proc/%d/status" % pid)
                           if l.startswith("Uid:")][0].split()
                except OSError:
                    continue  # exited meanwhile
                if root != inst.queue or uid[1] == "0" or uid[2] == "0":
                    return False
            return bool(pids)
        pt.wait_for(dropped, timeout=10, what="smtpd chrooted and unprivileged")
        c = SMTPRaw("127.0.0.1", inst.port("smtp"))
        c.reply()
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<s@client.test>")
        assert c.cmd("RCPT TO:<nobody@example.test>")[0] == 550
        c.close()
        assert qid
        # postmap replaces the table behind the chroot: the process that
        # notices makes way for a fresh one, which knows the new user.
        inst.add_virtual_mailbox("nobody@example.test")

        def known():
            c = SMTPRaw("127.0.0.1", inst.port("smtp"))
            try:
                c.reply()
                c.cmd("EHLO client.test")
                c.cmd("MAIL FROM:<s@client.test>")
                return c.cmd("RCPT TO:<nobody@example.test>")[0] == 250
            finally:
                c.close()
        pt.wait_for(known, timeout=15, interval=0.5, what="new table in use")
        inst.wait_log(r"table \S+vmailbox\.lmdb has changed -- restarting")
    finally:
        inst.stop(check=False)


def main():
    inst = Instance(services={"smtp": "smtpd"}, tls=True,
                    main_cf=["smtpd_tls_security_level = may"])
    inst.add_virtual_mailbox("alice@example.test")
    inst.add_virtual_mailbox("bob@example.test")
    pt.main_shared(inst, [
        ("plain message with smtplib", test_plain),
        ("multi-recipient message stored once", test_multi_recipient),
        ("STARTTLS with smtplib", test_starttls_smtplib),
        ("pipelined transaction", test_pipelining),
        ("BDAT chunks", test_bdat),
        ("DSN parameters kept in the queue file", test_dsn_params),
        ("SMTPUTF8 sender", test_smtputf8),
        ("swaks plain and STARTTLS", test_swaks),
        ("gnutls-cli STARTTLS", test_gnutls_cli),
        ("mailq lists the queue", test_mailq),
        ("queue IDs are unique", test_queue_ids_unique),
        ("kill -9 during DATA leaves nothing visible", test_kill_during_data),
        ("master restart removes unfinished queue files", test_restart_cleans_temp),
        ("reload changes message_size_limit for new sessions", test_reload_size_limit),
        ("unprivileged and chrooted smtpd", test_privsep),
    ] + [("smuggling from mynetworks: " + name,
          lambda i, e=ending: smuggle(i.port("smtp"), lambda: len(queue_files(i)), e))
         for name, ending in SMUGGLE_ENDINGS])


if __name__ == "__main__":
    main()
