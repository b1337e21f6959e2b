#!/usr/bin/env python3
"""e2e-fulldisk.py: the queue file system full. The queue directory is a
small tmpfs the test mounts (as root; skipped where mounting is refused):
below queue_minfree MAIL gets 452 4.3.1; a message that fills the disk
during DATA gets 452 4.3.1 and leaves no file, visible or temporary; and
acceptance resumes by itself once there is room."""

import os
import shutil
import subprocess

import petrel_test as pt
from smtp_raw import SMTPRaw

SIZE_KB = 2048


def mounted_instance(main_cf):
    """An instance whose queue directory is a SIZE_KB tmpfs, or skip."""
    if not pt.is_root():
        pt.skip("needs root to mount a tmpfs")
    inst = pt.Instance(services={"smtp": "smtpd"}, ipv6=False, main_cf=main_cf)
    inst.add_virtual_mailbox("alice@example.test")
    os.makedirs(inst.queue, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk,mode=0755" % SIZE_KB, "tmpfs",
                        inst.queue], capture_output=True, text=True)
    if r.returncode != 0:
        pt.skip("mount refused: " + r.stderr.strip()[:200])
    return inst


def finish(inst):
    """Stop, unmount, then remove the directory (in that order)."""
    inst.keep = True  # stop() must not remove files under the mount
    try:
        inst.stop(check=False)
    finally:
        subprocess.run(["umount", inst.queue], capture_output=True)
        shutil.rmtree(inst.dir, ignore_errors=True)


def queue_names(inst):
    d = os.path.join(inst.queue, "incoming")
    return sorted(os.listdir(d))


def session(inst):
    c = SMTPRaw("127.0.0.1", inst.port("smtp"))
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.test")[0] == 250
    return c


def test_queue_minfree():
    """below queue_minfree, MAIL FROM gets 452 4.3.1"""
    inst = mounted_instance(["queue_minfree = %d" % (SIZE_KB * 2 * 1024)])
    try:
        inst.start()
        c = session(inst)
        code, text = c.cmd("MAIL FROM:<a@client.test>")
        assert code == 452 and text.startswith("4.3.1 Insufficient system storage"), (code, text)
        c.cmd("QUIT")
        c.close()
        assert queue_names(inst) == []
    finally:
        finish(inst)


def test_disk_fills_during_data():
    """a message larger than the free space: 452 4.3.1, no file left;
    the next message is accepted"""
    inst = mounted_instance([])
    try:
        inst.start()
        c = session(inst)
        assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        line = "x" * 998 + "\r\n"
        c.send("Subject: big\r\n\r\n" + line * (SIZE_KB * 2) + ".\r\n")
        code, text = c.reply(timeout=30)
        assert code == 452 and text.startswith("4.3.1 Insufficient system storage"), (code, text)
        assert queue_names(inst) == [], queue_names(inst)
        # Room again (the failed file is gone): mail flows by itself.
        assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        code, text = c.cmd("Subject: small\r\n\r\nhello\r\n.")
        assert code == 250 and "queued as" in text, (code, text)
        c.cmd("QUIT")
        c.close()
        assert len(queue_names(inst)) == 1, queue_names(inst)
        inst.wait_log(r"warning: \S+: queue file write error: ")
    finally:
        finish(inst)


if __name__ == "__main__":
    pt.main()
