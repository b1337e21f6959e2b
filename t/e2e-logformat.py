#!/usr/bin/env python3
"""e2e-logformat.py: Petrel's log lines are read by the tools admins run on
Postfix logs, unchanged: Debian's pflogsumm counts what smtpd received and
rejected, and fail2ban's stock postfix filter (fail2ban-regex) finds the
rejected clients. Skips when a tool is not installed."""

import os
import re
import shutil
import smtplib
import subprocess
import tempfile

import petrel_test as pt
from smtp_raw import SMTPRaw

F2B_FILTER = "/etc/fail2ban/filter.d/postfix.conf"


def make_log():
    """3 messages accepted, a relay attempt and an unknown user refused;
    returns the path of a copy of the log."""
    inst = pt.Instance(services={"smtp": "smtpd"}, ipv6=False,
                       main_cf=["mynetworks = 192.0.2.0/24"])
    inst.add_virtual_mailbox("alice@example.test")
    inst.start()
    try:
        return run_clients(inst)
    finally:
        inst.stop()


def run_clients(inst):
    for i in range(3):
        with smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=10) as s:
            s.sendmail("a@client.test", ["alice@example.test"],
                       "Subject: x\r\nMessage-ID: <m%d@client.test>\r\n\r\nhi\r\n" % i)
    for rcpt, want in (("x@evil.test", 554), ("nobody@example.test", 550)):
        c = SMTPRaw("127.0.0.1", inst.port("smtp"))
        c.reply()
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<a@client.test>")
        assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == want
        c.cmd("QUIT")
        c.close()
    pt.wait_for(lambda: inst.log().count("disconnect from") >= 5, timeout=10)
    f = tempfile.NamedTemporaryFile("w", prefix="petrel-maillog-", delete=False)
    f.write(inst.log())
    f.close()
    return f.name


def test_pflogsumm():
    """pflogsumm counts 3 received and 2 rejected"""
    tool = shutil.which("pflogsumm")
    if tool is None:
        pt.skip("pflogsumm is not installed")
    path = make_log()
    try:
        out = subprocess.run([tool, path], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(path)
    assert re.search(r"^\s+3\s+received$", out, re.M), out[:800]
    assert re.search(r"^\s+2\s+rejected", out, re.M), out[:800]
    assert "Relay access denied" in out, out


def test_fail2ban():
    """fail2ban's postfix filter matches both rejections"""
    tool = shutil.which("fail2ban-regex")
    if tool is None or not os.path.exists(F2B_FILTER):
        pt.skip("fail2ban is not installed")
    path = make_log()
    try:
        out = subprocess.run([tool, path, F2B_FILTER], capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    m = re.search(r"Lines: \d+ lines, \d+ ignored, (\d+) matched", out)
    assert m and int(m.group(1)) == 2, out[-1500:]


if __name__ == "__main__":
    pt.main()
