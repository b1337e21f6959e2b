#!/usr/bin/env python3
"""e2e-delivery-cases.py: delivery cases beyond the happy path, each on its
own instance (smtpd + qmgr + smtp-client + lmtpd + a passwd-file):
local aliases (postalias), virtual aliases and an alias loop, a user that
lmtpd does not know, lmtpd down then back (postqueue -f), expiry after
maximal_queue_lifetime, postsuper -h/-H/-d with qmgr running, and
pflogsumm over the log.

Local users (mydestination = localhost) are Dovecot passwd-file entries
named user@localhost, as lmtpd looks recipients up by the full address;
local_recipient_maps lists them (texthash:etc/localusers $alias_maps),
since they are not Unix accounts."""

import email
import email.policy
import json
import os
import re
import shutil
import smtplib
import subprocess
import time

import petrel_test as pt

VUSERS = ["alice", "bob", "carol"]
LUSERS = ["alice", "bob", "carol"]
VDOMAIN = "example.test"
LDOMAIN = "localhost"

LMTPD = {"type": "unix", "command": "lmtpd"}
SERVICES = {
    "smtp": "smtpd",
    "qmgr": {"type": "fifo", "private": "n", "command": "qmgr", "maxproc": 1, "wakeup": 300},
    "lmtp": {"type": "unix", "command": "smtp-client"},
    "lmtpd": LMTPD,
}

FAST = ["queue_run_delay = 1s", "minimal_backoff_time = 1s", "maximal_backoff_time = 1s"]


def tool(name):
    """The built cli/NAME, or skip."""
    path = os.path.join(pt.BUILD, "cli", name)
    if not os.path.exists(path):
        pt.skip(name + " is not built")
    return path


def run_tool(inst, name, *args, check=True):
    """Run cli/NAME -c etc ARGS; the CompletedProcess."""
    r = subprocess.run([tool(name), "-c", inst.etc] + list(args), capture_output=True,
                       text=True, timeout=30)
    if check and r.returncode != 0:
        raise AssertionError("%s %s failed (%d): %s" % (name, args, r.returncode, r.stderr))
    return r


class Case:
    """An instance with virtual users in example.test and local users in
    localhost, plus the extra main.cf lines a test needs."""

    def __init__(self, main_cf=(), vmailbox_extra=()):
        self.inst = pt.Instance(services=dict(SERVICES), ipv6=False)
        inst = self.inst
        users = os.path.join(inst.etc, "users")
        uid, gid = os.getuid(), os.getgid()
        with open(users, "w") as f:
            for u in VUSERS:
                home = os.path.join(inst.mail, VDOMAIN, u)
                f.write("%s@%s:{PLAIN}secret:%d:%d::%s::\n" % (u, VDOMAIN, uid, gid, home))
            for u in LUSERS:
                home = os.path.join(inst.mail, LDOMAIN, u)
                f.write("%s@%s:{PLAIN}secret:%d:%d::%s::\n" % (u, LDOMAIN, uid, gid, home))
        with open(os.path.join(inst.etc, "localusers"), "w") as f:
            for u in LUSERS + ["postmaster"]:
                f.write("%s ok\n" % u)
        inst.set_virtual_mailboxes([("%s@%s" % (u, VDOMAIN), None)
                                    for u in VUSERS + list(vmailbox_extra)])
        self.base = ["lmtpd_user_database = " + users,
                     "mail_location = maildir:~/Maildir",
                     "local_recipient_maps = texthash:%s $alias_maps"
                     % os.path.join(inst.etc, "localusers")] + FAST
        self.extra = list(main_cf)
        self.write()

    def write(self):
        """Rewrite main.cf (the alias_maps line of the instance is
        overridden by a later one in self.extra)."""
        self.inst.set_main_cf(*(self.base + self.extra))

    def etc_file(self, name, text):
        path = os.path.join(self.inst.etc, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def maildir(self, user, domain):
        """The message files of user@domain."""
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.inst.mail, domain, user, "Maildir", sub)
            if os.path.isdir(d):
                out += sorted(os.path.join(d, f) for f in os.listdir(d))
        return out

    def messages(self, user, domain):
        """The parsed messages of user@domain."""
        out = []
        for path in self.maildir(user, domain):
            with open(path, "rb") as f:
                out.append(email.message_from_bytes(f.read(), policy=email.policy.compat32))
        return out

    def with_token(self, user, domain, token):
        return [m for m in self.messages(user, domain) if m["X-Token"] == token]

    def queue_files(self, q):
        d = os.path.join(self.inst.queue, q)
        if not os.path.isdir(d):
            return []
        return [f for f in os.listdir(d) if not f.startswith(".")]

    def queue_empty(self):
        return not any(self.queue_files(q) for q in ("incoming", "active", "deferred"))

    def send(self, sender, rcpts, token, subject="test"):
        msg = ("From: <%s>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@client.test>\r\n"
               "X-Token: %s\r\n\r\nbody of %s\r\n"
               % (sender or "mailer-daemon@client.test", ", ".join(rcpts), subject, token,
                  token, token))
        with smtplib.SMTP("127.0.0.1", self.inst.port("smtp"), timeout=30) as s:
            s.sendmail(sender, rcpts, msg)

    def set_lmtpd(self, on):
        """Put the lmtpd service in or out of master.cf and reload."""
        if on:
            self.inst.services["lmtpd"] = LMTPD
        else:
            self.inst.services.pop("lmtpd", None)
        self.inst.write_config()
        self.inst.reload()
        if not on:
            pt.wait_for(lambda: not self.inst.child_pids("lmtpd"), what="lmtpd to exit")


def dsn_parts(msg):
    """(per-message fields, [per-recipient fields], returned message or
    headers) of a multipart/report DSN."""
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status", msg["Content-Type"]
    parts = msg.get_payload()
    status = [p for p in parts if p.get_content_type() == "message/delivery-status"]
    assert status, [p.get_content_type() for p in parts]
    blocks = status[0].get_payload()
    returned = [p for p in parts if p.get_content_type() in
                ("message/rfc822", "text/rfc822-headers")]
    return blocks[0], blocks[1:], returned


def bounces(case, user, domain):
    """The DSNs in user@domain's Maildir."""
    return [m for m in case.messages(user, domain)
            if m.get_content_type() == "multipart/report"]


def check_failed_dsn(dsn, rcpt, status_rx, token):
    """A failed DSN for rcpt with a Status matching status_rx that
    returns (at least the headers of) the message with token."""
    assert dsn["Return-Path"] in (None, "<>"), dsn["Return-Path"]
    _, rcpts, returned = dsn_parts(dsn)
    mine = [r for r in rcpts if rcpt.lower() in (r["Final-Recipient"] or "").lower()
            or rcpt.lower() in (r["Original-Recipient"] or "").lower()]
    assert mine, [str(r) for r in rcpts]
    assert mine[0]["Action"] == "failed", mine[0]["Action"]
    assert re.match(status_rx, mine[0]["Status"]), mine[0]["Status"]
    assert returned, "original not returned"
    text = returned[0].as_string()
    assert token in text, text[:500]


# ---------------------------------------------------------------- tests

def test_local_alias():
    """alias_maps (postalias): team reaches alice and bob; a loop bounces"""
    case = Case()
    path = case.etc_file("aliases", "# local aliases\npostmaster: alice\nteam: alice, bob\n"
                         "loopa: loopb\nloopb: loopa\n")
    run_tool(case.inst, "postalias", "lmdb:" + path)
    virtual = case.etc_file("virtual", "staff@example.test team@localhost\n")
    case.extra = ["alias_maps = lmdb:" + path, "virtual_alias_maps = texthash:" + virtual]
    case.write()
    case.inst.start()
    try:
        case.send("carol@localhost", ["team@localhost"], "team1")
        pt.wait_for(lambda: case.with_token("alice", LDOMAIN, "team1") and
                    case.with_token("bob", LDOMAIN, "team1") and case.queue_empty(),
                    timeout=30, what="delivery to alice and bob")
        m = case.with_token("alice", LDOMAIN, "team1")[0]
        assert m["Delivered-To"] == "alice@localhost", m["Delivered-To"]
        assert m["Return-Path"] == "<carol@localhost>", m["Return-Path"]
        assert not case.with_token("carol", LDOMAIN, "team1")
        assert re.search(r"to=<alice@localhost>, orig_to=<team@localhost>, .*status=sent",
                         case.inst.log())
        # A virtual alias to a local alias.
        case.send("carol@localhost", ["staff@example.test"], "staff1")
        pt.wait_for(lambda: case.with_token("alice", LDOMAIN, "staff1") and
                    case.with_token("bob", LDOMAIN, "staff1") and case.queue_empty(),
                    timeout=30, what="staff -> team -> alice and bob")
        # A local alias loop bounces to the (local) sender.
        case.send("carol@localhost", ["loopa@localhost"], "lloop1")
        pt.wait_for(lambda: bounces(case, "carol", LDOMAIN) and case.queue_empty(),
                    timeout=30, what="bounce of the local alias loop")
        [dsn] = bounces(case, "carol", LDOMAIN)
        check_failed_dsn(dsn, "loopa@localhost", r"5\.\d+\.\d+$", "lloop1")
    finally:
        case.inst.stop()


def test_virtual_alias_and_loop():
    """virtual_alias_maps: sales -> alice; an a <-> b loop bounces 5.x.x"""
    case = Case()
    path = case.etc_file("virtual", "sales@example.test alice@example.test\n"
                         "a@example.test b@example.test\nb@example.test a@example.test\n")
    case.extra = ["virtual_alias_maps = texthash:" + path]
    case.write()
    case.inst.start()
    try:
        case.send("carol@localhost", ["sales@example.test"], "sales1")
        pt.wait_for(lambda: case.with_token("alice", VDOMAIN, "sales1"), timeout=30,
                    what="sales -> alice")
        case.send("carol@localhost", ["a@example.test"], "loop1")
        pt.wait_for(lambda: bounces(case, "carol", LDOMAIN) and case.queue_empty(),
                    timeout=30, what="bounce of the loop")
        [dsn] = bounces(case, "carol", LDOMAIN)
        check_failed_dsn(dsn, "a@example.test", r"5\.\d+\.\d+$", "loop1")
        for u in VUSERS:
            assert not case.with_token(u, VDOMAIN, "loop1"), u
    finally:
        case.inst.stop()


def test_unknown_user_at_lmtpd():
    """a recipient lmtpd does not know bounces with 5.1.1"""
    case = Case(vmailbox_extra=["ghost"])
    case.inst.start()
    try:
        case.send("carol@localhost", ["ghost@example.test", "alice@example.test"], "ghost1")
        pt.wait_for(lambda: bounces(case, "carol", LDOMAIN) and case.queue_empty(),
                    timeout=30, what="bounce for ghost")
        assert case.with_token("alice", VDOMAIN, "ghost1")
        [dsn] = bounces(case, "carol", LDOMAIN)
        check_failed_dsn(dsn, "ghost@example.test", r"5\.1\.1$", "ghost1")
        _, rcpts, _ = dsn_parts(dsn)
        assert all("alice" not in (r["Final-Recipient"] or "") for r in rcpts), \
            [str(r) for r in rcpts]
        assert re.search(r"to=<ghost@example\.test>, .*dsn=5\.1\.1, status=bounced",
                         case.inst.log())
    finally:
        case.inst.stop()


def deferred_ids(case):
    return sorted(case.queue_files("deferred"))


def test_lmtpd_down_then_flush():
    """lmtpd down: mail defers (postqueue -p shows why); back + postqueue -f"""
    case = Case(main_cf=["queue_run_delay = 3600s", "minimal_backoff_time = 3600s",
                         "maximal_backoff_time = 3600s"])
    case.inst.start()
    try:
        case.set_lmtpd(False)
        case.send("carol@localhost", ["alice@example.test"], "down1")
        [qid] = pt.wait_for(lambda: deferred_ids(case), timeout=30, what="a deferred message")
        assert os.path.exists(os.path.join(case.inst.queue, "defer", qid))
        out = run_tool(case.inst, "postqueue", "-p").stdout
        assert qid in out, out
        assert "alice@example.test" in out, out
        assert re.search(r"^ *\(.*private/lmtpd.*\)$", out, re.M), "no delay reason:\n" + out
        [js] = [json.loads(line) for line in
                run_tool(case.inst, "postqueue", "-j").stdout.splitlines()]
        assert js["queue_name"] == "deferred" and js["queue_id"] == qid, js
        assert "private/lmtpd" in js["recipients"][0].get("delay_reason", ""), js
        time.sleep(1)
        assert not case.with_token("alice", VDOMAIN, "down1")
        case.set_lmtpd(True)
        run_tool(case.inst, "postqueue", "-f")
        pt.wait_for(lambda: case.with_token("alice", VDOMAIN, "down1") and
                    case.queue_empty(), timeout=30, what="delivery after the flush")
        assert "Mail queue is empty" in run_tool(case.inst, "postqueue", "-p").stdout
        assert not os.path.exists(os.path.join(case.inst.queue, "defer", qid))
    finally:
        case.inst.stop()


def test_expiry_bounce():
    """maximal_queue_lifetime = 1s: an always-deferring destination bounces"""
    case = Case()
    path = case.etc_file("transport", "example.test lmtp:unix:private/nosuch\n")
    case.extra = ["transport_maps = texthash:" + path, "maximal_queue_lifetime = 1s",
                  "bounce_queue_lifetime = 1s"]
    case.write()
    case.inst.start()
    try:
        case.send("carol@localhost", ["alice@example.test"], "expire1")
        pt.wait_for(lambda: bounces(case, "carol", LDOMAIN) and case.queue_empty(),
                    timeout=40, what="the expiry bounce")
        [dsn] = bounces(case, "carol", LDOMAIN)
        check_failed_dsn(dsn, "alice@example.test", r"[45]\.\d+\.\d+$", "expire1")
        assert "status=expired, returned to sender" in case.inst.log()
        assert not case.with_token("alice", VDOMAIN, "expire1")
    finally:
        case.inst.stop()


def test_postsuper_hold_release_delete():
    """postsuper -h keeps mail from delivery, -H releases it, -d deletes"""
    case = Case(main_cf=["queue_run_delay = 3600s", "minimal_backoff_time = 3600s",
                         "maximal_backoff_time = 3600s"])
    case.inst.start()
    try:
        case.set_lmtpd(False)
        case.send("carol@localhost", ["alice@example.test"], "held1")
        [held] = pt.wait_for(lambda: deferred_ids(case), timeout=30, what="deferred 1")
        case.send("carol@localhost", ["bob@example.test"], "gone1")
        ids = pt.wait_for(lambda: len(deferred_ids(case)) == 2 and deferred_ids(case),
                          timeout=30, what="deferred 2")
        [gone] = [i for i in ids if i != held]
        r = run_tool(case.inst, "postsuper", "-h", held)
        assert "Placed on hold: 1 message" in r.stderr + r.stdout, r.stderr
        assert case.queue_files("hold") == [held]
        r = run_tool(case.inst, "postsuper", "-d", gone)
        assert "Deleted: 1 message" in r.stderr + r.stdout, r.stderr
        assert deferred_ids(case) == []
        assert not os.path.exists(os.path.join(case.inst.queue, "defer", gone))
        case.set_lmtpd(True)
        run_tool(case.inst, "postqueue", "-f")
        time.sleep(2)
        assert not case.with_token("alice", VDOMAIN, "held1"), "held mail was delivered"
        assert not case.with_token("bob", VDOMAIN, "gone1"), "deleted mail was delivered"
        assert case.queue_files("hold") == [held]
        r = run_tool(case.inst, "postsuper", "-H", held)
        assert "Released from hold: 1 message" in r.stderr + r.stdout, r.stderr
        pt.wait_for(lambda: case.with_token("alice", VDOMAIN, "held1") and
                    case.queue_empty() and not case.queue_files("hold"),
                    timeout=30, what="delivery of the released message")
        assert not case.with_token("bob", VDOMAIN, "gone1")
    finally:
        case.inst.stop()


def grand_totals(report):
    """{"received": n, ...} from pflogsumm's Grand Totals section."""
    section = report.split("Grand Totals", 1)[1].split("Per-Day", 1)[0]
    totals = {}
    for m in re.finditer(r"^\s*(\d+)\s+(received|delivered|forwarded|deferred|bounced|"
                         r"rejected)\b", section, re.M):
        totals[m.group(2)] = int(m.group(1))
    return totals


def test_pflogsumm():
    """pflogsumm's Grand Totals: 3 delivered, 1 deferred, 1 bounced"""
    prog = shutil.which("pflogsumm") or shutil.which("pflogsumm.pl")
    if prog is None:
        pt.skip("pflogsumm is not installed")
    case = Case(vmailbox_extra=["ghost", "dave"])
    path = case.etc_file("transport", "dave@example.test lmtp:unix:private/nosuch\n")
    case.extra = ["transport_maps = texthash:" + path, "2bounce_notice_recipient =",
                  "queue_run_delay = 3600s",
                  "minimal_backoff_time = 3600s", "maximal_backoff_time = 3600s"]
    case.write()
    case.inst.start()
    try:
        for n, u in enumerate(VUSERS):
            case.send("sender@client.test", ["%s@%s" % (u, VDOMAIN)], "ok%d" % n)
        # From the null sender: no DSN to count (2bounce_notice_recipient is
        # empty, so the double bounce is dropped as Postfix does by default).
        case.send("", ["ghost@example.test"], "bounce1")
        case.send("sender@client.test", ["dave@example.test"], "defer1")
        log_rx = re.compile(r"status=(sent|bounced|deferred)")
        pt.wait_for(lambda: len(log_rx.findall(case.inst.log())) >= 5 and
                    len(deferred_ids(case)) == 1 and not case.queue_files("incoming")
                    and not case.queue_files("active"),
                    timeout=30, what="five results")
        r = subprocess.run([prog, case.inst.maillog], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        totals = grand_totals(r.stdout)
        want = {"received": 5, "delivered": 3, "deferred": 1, "bounced": 1}
        got = {k: totals.get(k) for k in want}
        assert got == want, "%s\n%s" % (got, r.stdout[:3000])
    finally:
        case.inst.stop()


if __name__ == "__main__":
    pt.main()
