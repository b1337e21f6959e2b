#!/usr/bin/env python3
"""e2e-strace.py: the durability order, proved from the system calls. For
one SMTP acceptance (smtpd) and one LMTP delivery (lmtpd), strace shows:
the file is written and fsync'd and closed, then renamed (or linked) into
place, then its directory is fsync'd, and only then is the 250 written to
the client. Skips when strace is not installed or may not attach."""

import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time

import petrel_test as pt

TRACE = "trace=openat,write,fsync,fdatasync,close,rename,renameat,renameat2,link,linkat,sendto,sendmsg"

SERVICES = {
    "smtp": {"command": "smtpd", "maxproc": 1},
    "qmgr": {"type": "fifo", "private": "n", "command": "qmgr", "maxproc": 1, "wakeup": 300},
    "lmtp": {"type": "unix", "command": "smtp-client"},
    "lmtpd": {"type": "unix", "command": "lmtpd", "maxproc": 1},
}


def make_instance():
    inst = pt.Instance(services=SERVICES, ipv6=False)
    inst.set_main_cf(*inst.set_passwd_users(["alice@example.test"]))
    return inst


def send(inst, subject):
    with smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=20) as s:
        s.sendmail("a@client.test", ["alice@example.test"], "Subject: %s\r\n\r\nhi\r\n" % subject)


def maildir_count(inst):
    new = os.path.join(inst.mail, "example.test", "alice", "Maildir", "new")
    return len(os.listdir(new)) if os.path.isdir(new) else 0


def traced(inst, service, action):
    """Run action() with strace attached to the service's process; the
    trace lines."""
    if shutil.which("strace") is None:
        pt.skip("strace is not installed")
    # The master starts the child just after it reports itself started.
    pt.wait_for(lambda: len(inst.child_pids(service)) == 1, timeout=10,
                what="one %s process" % service)
    pids = inst.child_pids(service)
    out = tempfile.NamedTemporaryFile(prefix="petrel-strace-", delete=False).name
    st = subprocess.Popen(["strace", "-f", "-e", TRACE, "-s", "80", "-o", out, "-p", str(pids[0])],
                          stderr=subprocess.PIPE)
    time.sleep(0.5)
    if st.poll() is not None:
        pt.skip("strace cannot attach: " + st.stderr.read().decode(errors="replace")[:200])
    try:
        action()
        time.sleep(0.5)
    finally:
        st.terminate()
        st.wait()
    with open(out) as f:
        lines = f.read().splitlines()
    os.unlink(out)
    return lines


def first(lines, pattern, after=-1):
    """Index of the first line after `after` matching pattern, and the match."""
    rx = re.compile(pattern)
    for i in range(after + 1, len(lines)):
        m = rx.search(lines[i])
        if m:
            return i, m
    raise AssertionError("no %r after line %d in:\n%s" % (pattern, after, "\n".join(lines[-40:])))


def check_order(lines, tmp_pattern, final_dir, reply):
    """open(tmp) < write < fsync(fd) < close(fd) < rename/link into
    final_dir < fsync(final_dir) < the reply."""
    i_open, m = first(lines, r'openat\(AT_FDCWD, "([^"]*%s[^"]*)", [^)]*O_CREAT[^)]*\) = (\d+)' % tmp_pattern)
    tmp, fd = m.group(1), m.group(2)
    i_write, _ = first(lines, r"write\(%s, " % fd, i_open)
    i_fsync, _ = first(lines, r"f(data)?sync\(%s\)\s+= 0" % fd, i_write)
    i_close, _ = first(lines, r"close\(%s\)\s+= 0" % fd, i_fsync)
    i_move, _ = first(lines, r'(rename|renameat|renameat2|link|linkat)\(.*"%s".*"%s/[^"]+".*= 0'
                      % (re.escape(tmp), re.escape(final_dir)), i_close)
    i_dopen, m = first(lines, r'openat\(AT_FDCWD, "%s/?", [^)]*O_DIRECTORY[^)]*\) = (\d+)'
                       % re.escape(final_dir), i_move)
    i_dsync, _ = first(lines, r"fsync\(%s\)\s+= 0" % m.group(1), i_dopen)
    i_reply, _ = first(lines, r"(sendto|sendmsg|write)\(\d+, \"%s" % reply)
    assert i_dsync < i_reply, "the 250 was sent before the directory fsync:\n" + "\n".join(
        lines[i_open:i_reply + 1])


def test_smtp_acceptance_order():
    """smtpd: queue file written, fsync'd, renamed, incoming/ fsync'd, then 250"""
    inst = make_instance()
    inst.start()
    try:
        lines = traced(inst, "smtp", lambda: send(inst, "traced"))
        check_order(lines, r"/incoming/\.", os.path.join(inst.queue, "incoming"),
                    r"250 2\.0\.0 Ok: queued as ")
    finally:
        inst.stop(check=False)


def test_lmtp_delivery_order():
    """lmtpd: Maildir file written, fsync'd, put into new/, new/ fsync'd, then 250"""
    inst = make_instance()
    inst.start()
    try:
        send(inst, "first")  # starts lmtpd
        pt.wait_for(lambda: maildir_count(inst) == 1, timeout=20, what="first delivery")

        def second():
            send(inst, "second")
            pt.wait_for(lambda: maildir_count(inst) == 2, timeout=20, what="second delivery")
        lines = traced(inst, "lmtpd", second)
        new = os.path.join(inst.mail, "example.test", "alice", "Maildir", "new")
        check_order(lines, r"/Maildir/tmp/", new, r"250 2\.0\.0 <alice@example\.test> ")
    finally:
        inst.stop(check=False)


if __name__ == "__main__":
    pt.main()
