#!/usr/bin/env python3
"""e2e-damaged.py: damaged queue files while mail flows. A real queue file
(written by smtpd) is damaged three ways: truncated, a garbage record in
the middle, the END record missing. Each, dropped into incoming/ under a
valid queue ID, goes to corrupt/ with qmgr's warning; a good message sent
at the same time is delivered; postsuper -s lists the three."""

import os
import smtplib
import subprocess
import time

import petrel_test as pt

SERVICES = {
    "smtp": "smtpd",
    "qmgr": {"type": "fifo", "private": "n", "command": "qmgr", "maxproc": 1, "wakeup": 300},
    "lmtp": {"type": "unix", "command": "smtp-client"},
    "lmtpd": {"type": "unix", "command": "lmtpd"},
}


def real_queue_file():
    """The bytes of a queue file smtpd wrote (an instance without qmgr)."""
    inst = pt.Instance(services={"smtp": "smtpd"}, ipv6=False)
    inst.add_virtual_mailbox("alice@example.test")
    inst.start()
    try:
        with smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=20) as s:
            s.sendmail("a@client.test", ["alice@example.test"], "Subject: x\r\n\r\nhi\r\n")
        incoming = os.path.join(inst.queue, "incoming")
        [name] = os.listdir(incoming)
        with open(os.path.join(incoming, name), "rb") as f:
            return f.read()
    finally:
        inst.stop(check=False)


def damaged_versions(data):
    """name -> damaged bytes."""
    assert data.endswith(b"\nE0:\n"), data[-20:]
    recipient = data.index(b"\nR")
    return {
        "truncated": data[:len(data) // 2],
        "garbage": data[:recipient + 1] + b"Q9:\x00\x01\x02garbage\n" + data[recipient + 1:],
        "no-end": data[:-len(b"E0:\n")],
    }


def drop(queue, data):
    """Write data into incoming/ under a valid queue ID (time + inode); the ID."""
    incoming = os.path.join(queue, "incoming")
    tmp = os.path.join(incoming, ".tmp.damaged")
    with open(tmp, "wb") as f:
        f.write(data)
    now = time.time()
    qid = "%08X%05X%X" % (int(now) & 0xFFFFFFFF, int((now % 1) * 1e6), os.stat(tmp).st_ino)
    os.rename(tmp, os.path.join(incoming, qid))
    return qid


def test_damaged_files_and_flow():
    """three damaged files go to corrupt/ with a warning; good mail flows;
    postsuper -s lists them"""
    data = real_queue_file()
    inst = pt.Instance(services=SERVICES, ipv6=False)
    inst.set_main_cf(*inst.set_passwd_users(["alice@example.test"]))
    inst.start()
    try:
        ids = {kind: drop(inst.queue, bad) for kind, bad in damaged_versions(data).items()}
        with smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=20) as s:
            s.sendmail("a@client.test", ["alice@example.test"],
                       "Subject: good\r\n\r\nX-Token: good1\r\n")
        for kind, qid in ids.items():
            inst.wait_log(r"warning: %s: corrupt queue file -- moved to corrupt" % qid)
        corrupt = os.listdir(os.path.join(inst.queue, "corrupt"))
        assert sorted(corrupt) == sorted(ids.values()), (corrupt, ids)
        new = os.path.join(inst.mail, "example.test", "alice", "Maildir", "new")
        pt.wait_for(lambda: os.path.isdir(new) and len(os.listdir(new)) == 1, timeout=30,
                    what="the good message delivered")
        inst.wait_log(r"to=<alice@example\.test>.*status=sent")
        pt.wait_for(lambda: not any(os.listdir(os.path.join(inst.queue, d))
                                    for d in ("incoming", "active", "deferred")),
                    timeout=30, what="the queue empty but for corrupt/")
        p = subprocess.run([os.path.join(pt.BUILD, "cli", "postsuper"), "-c", inst.etc, "-s"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        for qid in ids.values():
            assert "corrupt/%s: damaged queue file kept for inspection" % qid in p.stderr, \
                p.stderr
    finally:
        inst.stop(check=False)


if __name__ == "__main__":
    pt.main()
