#!/usr/bin/env python3
"""e2e-fulldisk.py: the queue file system full. The queue directory is a
small tmpfs the test mounts (as root; skipped where mounting is refused):
below queue_minfree MAIL gets 452 4.3.1; a message that fills the disk
during DATA gets 452 4.3.1 and leaves no file, visible or temporary;
acceptance resumes by itself once there is room; and with the disk full
to the last byte, qmgr and delivery still drain the queue (every message
delivered once), after which acceptance resumes."""

import os
import shutil
import subprocess

import petrel_test as pt
from smtp_raw import SMTPRaw

SIZE_KB = 2048


def mounted_instance(main_cf, services=None):
    """An instance whose queue directory is a SIZE_KB tmpfs, or skip."""
    if not pt.is_root():
        pt.skip("needs root to mount a tmpfs")
    inst = pt.Instance(services=services or {"smtp": "smtpd"}, ipv6=False, main_cf=main_cf)
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


LMTPD = {"type": "unix", "command": "lmtpd"}
DELIVERY = {
    "smtp": "smtpd",
    "qmgr": {"type": "fifo", "private": "n", "command": "qmgr", "maxproc": 1, "wakeup": 300},
    "lmtp": {"type": "unix", "command": "smtp-client"},
}


def fill(path):
    """Write path until the file system is full (then single bytes for
    the last partial block)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (b"f" * 65536, b"f" * 4096, b"f"):
            try:
                while os.write(fd, chunk) > 0:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)


def test_drain_while_full():
    """the queue file system full to the last byte: MAIL gets 452 4.3.1,
    yet qmgr and delivery drain the queue; with room again mail flows"""
    inst = mounted_instance([], services=dict(DELIVERY))
    users = os.path.join(inst.dir, "users")
    with open(users, "w") as f:
        f.write("alice@example.test:{PLAIN}x:%d:%d::%s/alice::\n"
                % (os.getuid(), os.getgid(), inst.mail))
    inst.set_main_cf("lmtpd_user_database = " + users, "mail_location = maildir:~/Maildir",
                     "queue_run_delay = 3600s", "minimal_backoff_time = 3600s",
                     "maximal_backoff_time = 3600s", "queue_minfree = 65536")
    new = os.path.join(inst.mail, "alice", "Maildir", "new")
    try:
        inst.start()
        # No lmtpd yet: five messages wait in deferred/.
        for n in range(5):
            c = session(inst)
            assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
            assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
            assert c.cmd("DATA")[0] == 354
            code, text = c.cmd("Subject: wait %d\r\n\r\nX-Token: full%d\r\n." % (n, n))
            assert code == 250, (code, text)
            c.cmd("QUIT")
            c.close()
        deferred = os.path.join(inst.queue, "deferred")
        pt.wait_for(lambda: len(os.listdir(deferred)) == 5, timeout=30,
                    what="five deferred messages")
        filler = os.path.join(inst.queue, "filler")
        fill(filler)
        c = session(inst)
        code, text = c.cmd("MAIL FROM:<a@client.test>")
        assert code == 452 and text.startswith("4.3.1"), (code, text)
        c.cmd("QUIT")
        c.close()
        # Delivery comes back while the disk is still full.
        inst.services["lmtpd"] = LMTPD
        inst.write_config()
        inst.reload()
        subprocess.run([os.path.join(pt.BUILD, "cli", "postqueue"), "-c", inst.etc, "-f"],
                       capture_output=True, timeout=30)
        pt.wait_for(lambda: os.path.isdir(new) and len(os.listdir(new)) == 5 and
                    not os.listdir(deferred) and not os.listdir(os.path.join(inst.queue,
                                                                             "active")),
                    timeout=60, what="the queue drained into alice's Maildir")
        tokens = sorted(open(os.path.join(new, f), "rb").read().split(b"X-Token: ")[1][:5]
                        for f in os.listdir(new))
        assert tokens == [b"full%d" % n for n in range(5)], tokens
        # Room again: accepted at once.
        os.unlink(filler)
        c = session(inst)
        assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
        c.cmd("QUIT")
        c.close()
    finally:
        finish(inst)


if __name__ == "__main__":
    pt.main()
