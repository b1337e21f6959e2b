#!/usr/bin/env python3
"""e2e-delivery.py: the whole local path: SMTP -> smtpd -> queue -> qmgr ->
smtp-client (LMTP) -> lmtpd -> Maildir. 1000 messages over SMTP to 20
users land once each in the right Maildir with Return-Path and
Delivered-To; a multi-recipient message reaches every recipient; the queue
ends empty and the log has Postfix's delivery lines."""

import email
import os
import re
import smtplib
import threading

import petrel_test as pt

USERS = ["user%d" % i for i in range(1, 21)]
DOMAIN = "example.test"

SERVICES = {
    "smtp": "smtpd",
    "qmgr": {"type": "fifo", "private": "n", "command": "qmgr", "maxproc": 1, "wakeup": 300},
    "lmtp": {"type": "unix", "command": "smtp-client"},
    "lmtpd": {"type": "unix", "command": "lmtpd"},
}


def make_instance():
    inst = pt.Instance(services=SERVICES, ipv6=False)
    inst.set_main_cf(*inst.set_passwd_users(["%s@%s" % (u, DOMAIN) for u in USERS]))
    return inst


def maildir_files(inst, user):
    new = os.path.join(inst.mail, DOMAIN, user, "Maildir", "new")
    cur = os.path.join(inst.mail, DOMAIN, user, "Maildir", "cur")
    out = []
    for d in (new, cur):
        if os.path.isdir(d):
            out += [os.path.join(d, f) for f in os.listdir(d)]
    return out


def tokens(inst):
    """token -> list of (user, path) over every Maildir."""
    seen = {}
    for u in USERS:
        for path in maildir_files(inst, u):
            with open(path, "rb") as f:
                m = re.search(rb"^X-Token: (\S+)$", f.read(), re.M)
            if m:
                seen.setdefault(m.group(1).decode(), []).append((u, path))
    return seen


def queue_empty(inst):
    for q in ("incoming", "active", "deferred"):
        d = os.path.join(inst.queue, q)
        if [f for f in os.listdir(d) if not f.startswith(".")]:
            return False
    return True


def send_many(port, count, workers=10):
    """count messages, one per SMTP session, over workers threads."""
    errors = []

    def work(start):
        try:
            for n in range(start, count, workers):
                rcpt = "%s@%s" % (USERS[n % len(USERS)], DOMAIN)
                msg = ("From: sender@client.test\r\nTo: %s\r\nSubject: m%d\r\n"
                       "X-Token: t%d\r\n\r\nbody %d\r\n" % (rcpt, n, n, n))
                with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                    s.sendmail("sender@client.test", [rcpt], msg)
        except Exception as e:  # reported by the caller
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def test_thousand_messages():
    """1000 messages to 20 users: each delivered once, to the right user"""
    inst = make_instance()
    inst.start()
    try:
        send_many(inst.port("smtp"), 1000)
        pt.wait_for(lambda: queue_empty(inst) and len(tokens(inst)) == 1000, timeout=180,
                    interval=0.5, what="1000 deliveries")
        seen = tokens(inst)
        dups = {t: v for t, v in seen.items() if len(v) > 1}
        assert not dups, list(dups.items())[:3]
        for t, [(user, path)] in seen.items():
            n = int(t[1:])
            assert user == USERS[n % len(USERS)], (t, user)
        with open(seen["t7"][0][1], "rb") as f:
            msg = email.message_from_bytes(f.read())
        assert msg["Return-Path"] == "<sender@client.test>", msg["Return-Path"]
        assert msg["Delivered-To"] == "%s@%s" % (USERS[7], DOMAIN), msg["Delivered-To"]
        assert b"\r\n" not in open(seen["t7"][0][1], "rb").read(), "Maildir files use LF"
        log = inst.log()
        assert re.search(r"postfix/qmgr\[\d+\]: \w+: from=<sender@client\.test>, size=\d+, nrcpt=1 \(queue active\)", log)
        assert re.search(r": to=<user\d+@example\.test>, relay=\S+, delay=[\d.]+, "
                         r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent \(250 ", log)
        assert re.search(r"postfix/qmgr\[\d+\]: \w+: removed", log)
    finally:
        inst.stop()


def test_multi_recipient():
    """one message to three users reaches all three, stored once each"""
    inst = make_instance()
    inst.start()
    try:
        rcpts = ["%s@%s" % (u, DOMAIN) for u in USERS[:3]]
        with smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=30) as s:
            s.sendmail("sender@client.test", rcpts,
                       "Subject: multi\r\nX-Token: multi\r\n\r\nhello all\r\n")
        pt.wait_for(lambda: len(tokens(inst).get("multi", [])) == 3 and queue_empty(inst),
                    timeout=60, what="three deliveries")
        assert sorted(u for u, _ in tokens(inst)["multi"]) == sorted(USERS[:3])
    finally:
        inst.stop()


if __name__ == "__main__":
    pt.main()
