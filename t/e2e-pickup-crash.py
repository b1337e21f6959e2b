#!/usr/bin/env python3
"""e2e-pickup-crash.py: pickup(8) queues a locally submitted message
exactly once, whatever moment it is killed at. For each step of pickup
(claim maildrop/M -> pickup/M, write and fsync the converted file, rename
it over pickup/M, fsync pickup/, rename pickup/M -> incoming/ID, fsync
incoming/), strace's fault injection SIGKILLs pickup on entry to that
system call while it handles one sendmail(1) message; the master starts a
new pickup, which finishes the job, and qmgr, smtp-client and lmtpd
deliver it: the token is in exactly one Maildir file, with the submitter's
uid in the Received: header, the sender in Return-Path:, and at most one
"ID: uid=UID from=<sender>" line. pickup runs unprivileged (mail_owner),
as in production. Also: a maildrop file that forges the converted-file
marker is treated as raw; a symlink, fifo or hard link in maildrop/ is
still refused; one pickup may not read goes to corrupt/; a restart removes
the temp files a kill left. Skips when strace is missing or may not
attach."""

import os
import pwd
import re
import select
import shutil
import subprocess
import tempfile
import time
import uuid

import petrel_test as pt

SENDMAIL = os.path.join(pt.BUILD, "cli", "sendmail")
ENV = dict(os.environ, TZ="UTC")
ENV.pop("MAIL_CONFIG", None)

SERVICES = {
    "pickup": {"type": "fifo", "private": "n", "command": "pickup", "maxproc": 1,
               "wakeup": 60, "unpriv": "y"},
    "qmgr": {"type": "fifo", "private": "n", "command": "qmgr", "maxproc": 1, "wakeup": 300},
    "lmtp": {"type": "unix", "command": "smtp-client"},
    "lmtpd": {"type": "unix", "command": "lmtpd", "maxproc": 1},
}

# (name, system call, its N-th call since attach, whether the log line
# "ID: uid= from=" is written by the pickup that finishes the job). The
# syscalls of one message, in order (see pickup.c): renameat2 #1 claims,
# fsync #1 syncs the converted temp file, rename #1 puts it over pickup/M,
# fsync #2 syncs pickup/, renameat2 #2 queues it, fsync #3 syncs incoming/.
CRASH_POINTS = [
    ("before_claim", "renameat2", 1, True),
    ("before_file_fsync", "fsync", 1, True),
    ("before_replace", "rename", 1, True),
    ("before_pickup_dir_fsync", "fsync", 2, True),
    ("before_queue", "renameat2", 2, True),
    ("before_incoming_fsync", "fsync", 3, False),
]

delivered_tokens = []


def make_instance():
    inst = pt.Instance(services=SERVICES, ipv6=False)
    inst.set_main_cf(*inst.set_passwd_users(["alice@example.test"]))
    return inst


def have_setpriv():
    return pt.is_root() and shutil.which("setpriv") is not None


def submitter(n):
    """Alternate between root and nobody (when we may switch users)."""
    if n % 2 == 1 and have_setpriv():
        return "nobody"
    return None


def sendmail(inst, sender, token, user=None):
    argv = [SENDMAIL, "-c", inst.etc, "-f", sender, "alice@example.test"]
    if user is not None:
        pw = pwd.getpwnam(user)
        argv = ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
                "--clear-groups"] + argv
    data = ("Subject: %s\n\nbody %s\n" % (token, token)).encode()
    p = subprocess.run(argv, input=data, env=ENV, capture_output=True, cwd="/")
    assert p.returncode == 0, "sendmail exit %d: %s" % (p.returncode, p.stderr)


def wake_pickup(inst):
    try:
        fd = os.open(os.path.join(inst.queue, "public", "pickup"),
                     os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(fd, b"W")
    except OSError:
        pass
    os.close(fd)


def pickup_pid(inst):
    """The one live pickup process (woken until there is one)."""
    def one():
        pids = inst.child_pids("pickup")
        if not pids:
            wake_pickup(inst)
        return len(pids) == 1 and pids[0]
    return pt.wait_for(one, timeout=20, interval=0.2, what="one pickup process")


def maildir_files(inst):
    return inst.maildir_files("alice@example.test")


def copies(inst, token):
    """The delivered files whose content holds token."""
    found = []
    for path in maildir_files(inst):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        if token.encode() in data:
            found.append(data)
    return found


def queue_names(inst, queue):
    d = os.path.join(inst.queue, queue)
    return [n for n in os.listdir(d) if not n.startswith(".")] if os.path.isdir(d) else []


def settled(inst):
    """Nothing waits in maildrop/, pickup/ or the message queues."""
    return not any(queue_names(inst, q) for q in
                   ("maildrop", "pickup", "incoming", "active", "deferred"))


def check_once(inst, token, sender, uid, logged=True):
    """token delivered exactly once, from uid and sender; the pickup log
    line at most once (exactly once when logged)."""
    got = pt.wait_for(lambda: copies(inst, token), timeout=30, interval=0.1,
                      what="delivery of " + token)
    pt.wait_for(lambda: settled(inst), timeout=30, interval=0.1, what="an empty queue")
    # Give a wrongly kept copy every chance to show up.
    wake_pickup(inst)
    time.sleep(1.0)
    got = copies(inst, token)
    assert len(got) == 1, "%s delivered %d times" % (token, len(got))
    data = got[0]
    assert re.search(rb"Received: by mx\.example\.test \(Petrel, from userid %d\)" % uid, data), \
        data[:400]
    assert data.count(b"(Petrel, from userid") == 1, data[:400]
    assert b"Return-Path: <" + sender.encode() + b">" in data, data[:400]
    lines = re.findall(r"pickup\[\d+\]: ([0-9A-F]+): uid=(\d+) from=<%s>" % re.escape(sender),
                       inst.log())
    assert len(lines) <= 1, "pickup logged it %d times: %s" % (len(lines), lines)
    if logged:
        assert len(lines) == 1 and lines[0][1] == str(uid), lines
    delivered_tokens.append(token)


def strace_kill(inst, syscall, when, action):
    """Attach strace to pickup with SIGKILL injected on entry to the
    when-th call of syscall, run action(), wait for pickup to die."""
    if shutil.which("strace") is None:
        pt.skip("strace is not installed")
    pid = pickup_pid(inst)
    out = tempfile.NamedTemporaryFile(prefix="petrel-strace-", delete=False).name
    st = subprocess.Popen(["strace", "-f", "-o", out, "-p", str(pid),
                           "-e", "trace=" + syscall,
                           "-e", "inject=%s:signal=SIGKILL:when=%d" % (syscall, when)],
                          stderr=subprocess.PIPE)
    try:
        # strace says "Process N attached" on stderr once the injection is armed.
        ready, _, _ = select.select([st.stderr], [], [], 10)
        line = st.stderr.readline().decode(errors="replace") if ready else ""
        if "attached" not in line:
            pt.skip("strace cannot attach: " + line[:200])
        action()
        try:
            st.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError("pickup was not killed at %s #%d" % (syscall, when))
        with open(out) as f:
            trace = f.read()
        assert "+++ killed by SIGKILL +++" in trace, trace[-2000:]
        assert not pt.pid_alive(pid), "pickup %d still alive" % pid
    finally:
        if st.poll() is None:
            st.terminate()
            st.wait()
        os.unlink(out)


def crash_case(name, syscall, when, logged, n):
    def run(inst):
        user = submitter(n)
        uid = pwd.getpwnam(user).pw_uid if user else os.getuid()
        token = "tok-%s-%s" % (name, uuid.uuid4().hex[:12])
        sender = "%s@client.example.test" % name.replace("_", "-")
        strace_kill(inst, syscall, when, lambda: sendmail(inst, sender, token, user))
        wake_pickup(inst)  # the master starts a new pickup, which recovers
        check_once(inst, token, sender, uid, logged)
    run.__doc__ = "kill -9 at %s #%d: delivered once" % (syscall, when)
    return run


def case_no_crash(inst):
    """no crash: delivered once, logged once"""
    token = "tok-plain-" + uuid.uuid4().hex[:12]
    sendmail(inst, "plain@client.example.test", token)
    check_once(inst, token, "plain@client.example.test", os.getuid())


def queue_id(sec, usec, ino):
    return "%08X%05X%X" % (sec & 0xffffffff, usec, ino)


def rec(t, data):
    return t.encode() + str(len(data)).encode() + b":" + data + b"\n"


def case_forged_marker(inst):
    """a maildrop file forging pickup_id and uid is raw: uid is its owner"""
    pickup_user = pwd.getpwnam("nobody").pw_uid if pt.is_root() else os.getuid()
    if os.getuid() == pickup_user:
        pt.skip("the submitter is pickup's own user (needs root)")
    token = "tok-forged-" + uuid.uuid4().hex[:12]
    path = os.path.join(inst.queue, "maildrop", ".forge")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    now = time.time()
    sec, usec = int(now), int((now % 1) * 1e6)
    qid = queue_id(sec, usec, os.fstat(fd).st_ino)
    content = b"Subject: " + token.encode() + b"\r\n\r\nforged\r\n"
    data = (rec("V", b"petrel-queue 1") + rec("T", b"%d.%06d" % (sec, usec)) +
            rec("S", b"forger@client.example.test") +
            rec("A", b"uid=4242") + rec("A", b"pickup_id=" + qid.encode()) +
            rec("A", b"rewrite_context=local") + rec("N", b"1") +
            rec("R", b"P0alice@example.test") + rec("C", content) +
            rec("Z", str(len(content)).encode()) + rec("E", b""))
    os.write(fd, data)
    os.close(fd)
    os.rename(path, os.path.join(inst.queue, "maildrop", qid + ".0123456789ABCDEF"))
    wake_pickup(inst)
    check_once(inst, token, "forger@client.example.test", os.getuid())
    assert re.search(r"uid=%d from=<forger@client\.example\.test>" % os.getuid(), inst.log())


def case_not_files(inst):
    """a symlink, a fifo and a hard link in maildrop/ are removed, unread"""
    target = os.path.join(inst.dir, "secret")
    with open(target, "w") as f:
        f.write("secret\n")
    drop = os.path.join(inst.queue, "maildrop")
    os.symlink(target, os.path.join(drop, "symlink1"))
    os.mkfifo(os.path.join(drop, "fifo1"))
    os.link(target, os.path.join(drop, "linked1"))
    wake_pickup(inst)
    pt.wait_for(lambda: not os.listdir(drop), what="maildrop/ emptied")
    inst.wait_log(r"maildrop/symlink1: uid=\d+: not a regular file -- removed")
    inst.wait_log(r"maildrop/fifo1: uid=\d+: not a regular file -- removed")
    inst.wait_log(r"maildrop/linked1: uid=\d+: file has more than one link -- removed")
    assert open(target).read() == "secret\n"
    assert not queue_names(inst, "pickup") and not queue_names(inst, "corrupt")


def case_unreadable(inst):
    """a maildrop file pickup may not read goes to corrupt/, not back and forth"""
    if not pt.is_root():
        pt.skip("pickup runs as the submitter (needs root)")
    path = os.path.join(inst.queue, "maildrop", "unreadable1")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o000)
    os.write(fd, b"V14:petrel-queue 1\n")
    os.close(fd)
    wake_pickup(inst)
    pt.wait_for(lambda: os.path.exists(os.path.join(inst.queue, "corrupt", "unreadable1")),
                what="unreadable file moved to corrupt/")
    inst.wait_log(r"maildrop/unreadable1: .*Permission denied -- moved to corrupt/")
    assert not queue_names(inst, "maildrop") and not queue_names(inst, "pickup")


def case_restart(inst):
    """a restart removes the temp files kills left; nothing comes twice"""
    inst.restart()
    incoming = os.path.join(inst.queue, "incoming")
    assert not [n for n in os.listdir(incoming) if n.startswith(".tmp.")], os.listdir(incoming)
    wake_pickup(inst)
    time.sleep(1.0)
    for token in delivered_tokens:
        assert len(copies(inst, token)) == 1, token


def case_sanitizers(inst):
    """no sanitizer report or panic"""
    inst.check_sanitizers()


if __name__ == "__main__":
    missing = [p for p in ("pickup/pickup", "qmgr/qmgr", "lmtpd/lmtpd")
               if not os.path.exists(os.path.join(pt.BUILD, p))]
    if missing:
        print("1..0 # SKIP not built: " + " ".join(missing))
    else:
        cases = [("no_crash", case_no_crash)]
        cases += [("crash_" + c[0], crash_case(*c, n)) for n, c in enumerate(CRASH_POINTS)]
        cases += [("forged_marker", case_forged_marker), ("not_files", case_not_files),
                  ("unreadable", case_unreadable), ("restart", case_restart),
                  ("sanitizers", case_sanitizers)]
        pt.main_shared(make_instance(), cases)
