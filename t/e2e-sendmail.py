#!/usr/bin/env python3
"""e2e-sendmail.py: local submission end to end: sendmail(1) writes
maildrop/, pickup(8) (a fifo service) moves the file into incoming/ (there
is no qmgr in the instance, so it stays there) with a Received: header.
Recipients from the command line and from -t (To/Cc/Bcc, Bcc removed),
-f and -F, the added From/Date/Message-Id headers, "." with and without
-i, CRLF storage, the pickup log line, -bs (SMTP on stdin), an
unprivileged submitter, garbage
and hard links in maildrop/, and the exit status 75 without a queue."""

import os
import pwd
import re
import shutil
import subprocess
import tempfile

import petrel_test as pt

SENDMAIL = os.path.join(pt.BUILD, "cli", "sendmail")
ENV = dict(os.environ, TZ="UTC")
ENV.pop("MAIL_CONFIG", None)
ENV.pop("NAME", None)
PICKUP = {"pickup": {"type": "fifo", "private": "n", "command": "pickup", "maxproc": 1,
                      "wakeup": 60}}


def parse_queue_file(data):
    """[(type, bytes)] of a queue file; asserts the framing."""
    recs, pos = [], 0
    while pos < len(data):
        colon = data.index(b":", pos)
        rtype, length = chr(data[pos]), int(data[pos + 1:colon])
        value = data[colon + 1:colon + 1 + length]
        assert data[colon + 1 + length] == 0x0A, "record not closed by LF"
        recs.append((rtype, value))
        pos = colon + 2 + length
    assert recs[-1][0] == "E", "no END record"
    return recs


class Message:
    """A parsed queue file: sender, recipients, attributes, content."""

    def __init__(self, path):
        with open(path, "rb") as f:
            recs = parse_queue_file(f.read())
        self.sender = [v for t, v in recs if t == "S"][0].decode()
        self.rcpts = [v[2:].decode() for t, v in recs if t == "R"]
        self.attrs = dict(v.decode().split("=", 1) for t, v in recs if t == "A")
        self.content = b"".join(v for t, v in recs if t == "C")
        self.header, _, self.body = self.content.partition(b"\r\n\r\n")


def incoming(inst):
    return set(n for n in os.listdir(os.path.join(inst.queue, "incoming"))
               if not n.startswith("."))


def sendmail(inst, args, data, user=None, check=True):
    """Run sendmail -c etc args with data on stdin (as user when given)."""
    argv = [SENDMAIL, "-c", inst.etc] + list(args)
    if user is not None:
        argv = ["setpriv", "--reuid=" + user, "--regid=" + user_group(user),
                "--clear-groups"] + argv
    p = subprocess.run(argv, input=data, env=ENV, capture_output=True)
    if check:
        assert p.returncode == 0, "sendmail exit %d: %s" % (p.returncode, p.stderr)
    return p


def user_group(user):
    return str(pwd.getpwnam(user).pw_gid)


def submit(inst, args, data, user=None):
    """sendmail, then wait for pickup to queue it: the new Message and ID."""
    before = incoming(inst)
    sendmail(inst, args, data, user)
    new = pt.wait_for(lambda: incoming(inst) - before, what="a new file in incoming/")
    assert len(new) == 1, new
    qid = new.pop()
    inst.wait_log(r"pickup\[\d+\]: %s: uid=\d+ from=<" % qid)
    return Message(os.path.join(inst.queue, "incoming", qid)), qid


def header(msg, name):
    """The values of header name (case-insensitive, unfolded)."""
    text = msg.header.decode(errors="replace").replace("\r\n\t", " ").replace("\r\n ", " ")
    return [line.split(":", 1)[1].strip() for line in text.split("\r\n")
            if line.lower().startswith(name.lower() + ":")]


def me():
    return pwd.getpwuid(os.getuid()).pw_name


def case_command_line(inst):
    msg, qid = submit(inst, ["alice@example.test", "bob"], b"Subject: hi\n\nhello\n")
    assert msg.rcpts == ["alice@example.test", "bob@mx.example.test"], msg.rcpts
    assert msg.sender == me() + "@mx.example.test", msg.sender
    recv = header(msg, "Received")
    assert len(recv) == 1 and re.fullmatch(
        r"by mx\.example\.test \(Petrel, from userid %d\) id %s; .+" % (os.getuid(), qid),
        recv[0]), recv
    assert msg.content.startswith(b"Received: by mx.example.test (Petrel, from userid ")
    assert re.fullmatch(r"<\d{14}\.[0-9A-F]+@mx\.example\.test>", header(msg, "Message-Id")[0])
    assert len(header(msg, "Date")) == 1
    frm = header(msg, "From")
    assert len(frm) == 1 and re.search(r"(^|<)%s@mx\.example\.test>?$" % re.escape(me()),
                                       frm[0]), frm
    assert msg.body == b"hello\r\n", msg.body
    assert msg.attrs.get("uid") == str(os.getuid()), msg.attrs
    assert b"\n" not in msg.content.replace(b"\r\n", b""), "bare LF stored"
    inst.wait_log(r"%s: uid=%d from=<%s@mx\.example\.test>" % (qid, os.getuid(), me()))
    assert not [n for n in os.listdir(os.path.join(inst.queue, "maildrop"))], "maildrop not empty"


def case_extract(inst):
    data = (b"From: Me <me@example.test>\r\nTo: Alice <alice@example.test>, bob@example.test\r\n"
            b"Cc: \"Carol C.\" <carol@example.test> (comment)\r\n"
            b"Bcc: dave@example.test,\r\n\terin@example.test\r\nSubject: t\r\n\r\nbody\r\n")
    msg, _ = submit(inst, ["-t", "-i", "extra@example.test"], data)
    assert sorted(msg.rcpts) == sorted([
        "extra@example.test", "alice@example.test", "bob@example.test", "carol@example.test",
        "dave@example.test", "erin@example.test"]), msg.rcpts
    assert not header(msg, "Bcc"), "Bcc: not removed"
    assert header(msg, "From") == ["Me <me@example.test>"], "From: replaced"
    assert b"dave@" not in msg.content


def case_no_recipients(inst):
    p = sendmail(inst, ["-t"], b"Subject: nobody\n\nx\n", check=False)
    assert p.returncode == 64, p
    assert b"No recipient addresses found in message header" in p.stderr, p.stderr
    p = sendmail(inst, [], b"Subject: nobody\n\nx\n", check=False)
    assert p.returncode == 64, p


def case_sender_fullname(inst):
    msg, qid = submit(inst, ["-f", "owner@example.test", "-F", "Jane Q. Doe",
                             "alice@example.test"], b"Subject: s\n\nx\n")
    assert msg.sender == "owner@example.test"
    assert header(msg, "From") == ['"Jane Q. Doe" <owner@example.test>'], header(msg, "From")
    inst.wait_log(r"%s: uid=\d+ from=<owner@example\.test>" % qid)
    msg, _ = submit(inst, ["-r", "<>", "-F", "Plain Name", "a@example.test"], b"x\n")
    assert msg.sender == "" and header(msg, "From") == ["MAILER-DAEMON"]
    msg, _ = submit(inst, ["-F", "Plain Name", "a@example.test"], b"x\n")
    assert header(msg, "From") == ["Plain Name <%s@mx.example.test>" % me()]


def case_dot(inst):
    data = b"Subject: dots\n\nline1\n..two\n.\nafter\n"
    msg, _ = submit(inst, ["a@example.test"], data)
    assert msg.body == b"line1\r\n..two\r\n", msg.body
    msg, _ = submit(inst, ["-i", "a@example.test"], data)
    assert msg.body == b"line1\r\n..two\r\n.\r\nafter\r\n", msg.body
    msg, _ = submit(inst, ["-oi", "a@example.test"], data + b"last")
    assert msg.body.endswith(b".\r\nafter\r\nlast\r\n"), msg.body


def case_crlf(inst):
    msg, _ = submit(inst, ["a@example.test"], b"Subject: c\r\n\r\nx\r\ny\nz\r")
    assert msg.body == b"x\r\ny\r\nz\r\r\n", msg.body


def case_no_headers(inst):
    msg, _ = submit(inst, ["a@example.test"], b"just a body line\n")
    assert msg.body == b"just a body line\r\n", msg.body
    assert header(msg, "From") and header(msg, "Date") and header(msg, "Message-Id")


def case_dsn_options(inst):
    msg, _ = submit(inst, ["-N", "success,failure", "-R", "hdrs", "-V", "env-1",
                           "a@example.test"], b"x\n")
    assert msg.attrs.get("envid") == "env-1" and msg.attrs.get("ret") == "HDRS", msg.attrs


def case_unprivileged(inst):
    if not pt.is_root() or shutil.which("setpriv") is None:
        pt.skip("needs root and setpriv")
    mode = os.stat(os.path.join(inst.queue, "maildrop")).st_mode & 0o7777
    assert mode == 0o1733, "maildrop/ mode %o" % mode
    nobody = pwd.getpwnam("nobody")
    msg, qid = submit(inst, ["alice@example.test"], b"Subject: u\n\nfrom nobody\n",
                      user="nobody")
    assert msg.sender == "nobody@mx.example.test", msg.sender
    assert "from userid %d)" % nobody.pw_uid in header(msg, "Received")[0]
    inst.wait_log(r"%s: uid=%d from=<nobody@mx\.example\.test>" % (qid, nobody.pw_uid))


def wake_pickup(inst):
    fd = os.open(os.path.join(inst.queue, "public", "pickup"), os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, b"W")
    os.close(fd)


def case_garbage(inst):
    path = os.path.join(inst.queue, "maildrop", "garbage1")
    with open(path, "wb") as f:
        f.write(b"V14:petrel-queue 1\nthis is not a queue file\n")
    wake_pickup(inst)
    pt.wait_for(lambda: os.path.exists(os.path.join(inst.queue, "corrupt", "garbage1")),
                what="garbage moved to corrupt/")
    assert not os.path.exists(path)
    inst.wait_log(r"pickup\[\d+\]: warning: maildrop/garbage1: .* -- moved to corrupt/")


def case_hard_link(inst):
    target = os.path.join(inst.dir, "secret")
    with open(target, "w") as f:
        f.write("secret\n")
    link = os.path.join(inst.queue, "maildrop", "linked1")
    os.link(target, link)
    wake_pickup(inst)
    pt.wait_for(lambda: not os.path.exists(link), what="hard link removed")
    inst.wait_log(r"maildrop/linked1: uid=\d+: file has more than one link -- removed")
    assert os.path.exists(target)
    os.mkfifo(os.path.join(inst.queue, "maildrop", "fifo1"))
    wake_pickup(inst)
    pt.wait_for(lambda: not os.path.exists(os.path.join(inst.queue, "maildrop", "fifo1")),
                what="fifo removed")
    inst.wait_log(r"maildrop/fifo1: uid=\d+: not a regular file -- removed")


def case_mailq(inst):
    postqueue = os.path.join(pt.BUILD, "cli", "postqueue")
    if not os.path.exists(postqueue):
        pt.skip("postqueue is not built")
    with open(os.path.join(inst.etc, "main.cf"), "a") as f:
        f.write("command_directory = %s\n" % os.path.dirname(postqueue))
    p = subprocess.run([SENDMAIL, "-bp", "-c", inst.etc], env=ENV, capture_output=True)
    assert p.returncode == 0 and b"Requests." in p.stdout, p


def case_smtp(inst):
    """-bs: SMTP on stdin/stdout, one queue file per message"""
    before = incoming(inst)
    session = (b"EHLO client\r\nMAIL FROM:<s@example.test>\r\nRCPT TO:<a@example.test>\r\n"
               b"RCPT TO:<b@example.test>\r\nDATA\r\nSubject: one\r\n\r\n..dot\r\n.\r\n"
               b"RCPT TO:<c@example.test>\r\nMAIL FROM:<>\r\nRCPT TO:<c@example.test>\r\n"
               b"DATA\r\nSubject: two\r\n\r\nx\r\n.\r\nBOGUS\r\nQUIT\r\n")
    p = sendmail(inst, ["-bs"], session)
    codes = [line[:3] for line in p.stdout.decode().split("\r\n") if line]
    assert codes == ["220", "250", "250", "250", "250", "250", "250", "354", "250", "503",
                     "250", "250", "354", "250", "502", "221"], p.stdout
    assert "Ok: queued as " in p.stdout.decode()
    new = pt.wait_for(lambda: len(incoming(inst) - before) == 2 and incoming(inst) - before,
                      what="two new files in incoming/")
    msgs = sorted((Message(os.path.join(inst.queue, "incoming", q)) for q in new),
                  key=lambda m: m.sender, reverse=True)
    assert msgs[0].sender == "s@example.test" and msgs[0].rcpts == ["a@example.test",
                                                                     "b@example.test"]
    assert msgs[0].body == b".dot\r\n", msgs[0].body
    assert msgs[1].sender == "" and msgs[1].rcpts == ["c@example.test"]


def case_sanitizers(inst):
    """no sanitizer report or panic from pickup"""
    inst.check_sanitizers()


def test_no_queue():
    """exit status 75 when the queue directory is missing"""
    tmp = tempfile.mkdtemp(prefix="petrel-sendmail-")
    try:
        with open(os.path.join(tmp, "main.cf"), "w") as f:
            f.write("queue_directory = %s/missing\nmyhostname = mx.example.test\n" % tmp)
        p = subprocess.run([SENDMAIL, "-c", tmp, "a@example.test"], input=b"x\n", env=ENV,
                           capture_output=True)
        assert p.returncode == 75, p
        assert p.stderr.startswith(b"sendmail: fatal: "), p.stderr
        p = subprocess.run([SENDMAIL, "-c", tmp, "-bs"], env=ENV, capture_output=True,
                           input=b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
                           b"DATA\r\nx\r\n.\r\n")
        assert p.returncode == 75 and p.stdout.endswith(b"\r\n421 4.3.0 Error: local problem, "
                                                        b"closing connection\r\n"), p
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


CASES = [(n[5:], f) for n, f in list(globals().items()) if n.startswith("case_")]

if __name__ == "__main__":
    if not os.path.exists(os.path.join(pt.BUILD, "pickup", "pickup")):
        print("1..0 # SKIP pickup is not built")
    else:
        inst = pt.Instance(services=PICKUP)
        fns = [(name, fn) for name, fn in CASES]
        fns.append(("no_queue", lambda _inst: test_no_queue()))
        pt.main_shared(inst, fns)
