#!/usr/bin/env python3
"""e2e-qmgr-delay.py: qmgr's delay warnings and unavailable lookup tables,
between smtpd and the FAKE delivery agent of e2e-qmgr.py.

- delay_warning_time = 2s and an agent that defers the message: after the
  second attempt exactly one delay notice (multipart/report, Action:
  delayed, Will-Retry-Until, the deferral reason) goes to the sender, the
  queue file gets the "warned" mode bit (0010), and a qmgr killed with
  SIGKILL and restarted does not send another on the next attempt.
- alias_maps = hash:etc/aliases whose .lmdb does not exist: qmgr starts
  anyway, warns "hash:... is unavailable.", defers the local recipient
  with 4.3.0 and the reason while the virtual one is delivered; after
  postalias builds the table, "postqueue -f" delivers the local one
  through the alias."""

import importlib.util
import os
import re
import subprocess
import time

import petrel_test as pt

_spec = importlib.util.spec_from_file_location(
    "e2e_qmgr", os.path.join(os.path.dirname(os.path.abspath(__file__)), "e2e-qmgr.py"))
eq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eq)

POSTALIAS = os.path.join(pt.BUILD, "cli", "postalias")
POSTQUEUE = os.path.join(pt.BUILD, "cli", "postqueue")
WARNED = 0o010


def make_instance():
    inst = pt.Instance(services=eq.SERVICES, ipv6=False)
    vmailbox = os.path.join(inst.etc, "vmailbox")
    with open(vmailbox, "w") as f:
        for u in ("alice", "bob", "carol", "dave", "sender"):
            f.write("%s@example.test %s/\n" % (u, u))
    inst.aliases = os.path.join(inst.etc, "aliases")  # no aliases.lmdb yet
    inst.set_main_cf("virtual_mailbox_maps = texthash:" + vmailbox,
                     "mydestination = localhost",
                     "alias_maps = hash:" + inst.aliases,
                     # smtpd would answer 451 at RCPT time otherwise (its
                     # default local_recipient_maps has $alias_maps).
                     "local_recipient_maps =",
                     "local_transport = lmtp:unix:private/lmtpd",
                     "delay_warning_time = 2s",
                     "queue_run_delay = 3600s")
    return inst


def queue_content(inst, rel):
    with open(os.path.join(inst.queue, rel), "rb") as f:
        return f.read()


def wait_request(agent, qid, timeout=20):
    """The next request for queue ID qid (others are dropped)."""
    deadline = time.time() + timeout
    while True:
        req = agent.next_request(timeout=max(0.1, deadline - time.time()))
        if req["header"]["queue_id"] == qid:
            return req


def restart_qmgr(inst):
    pids = inst.child_pids("qmgr")
    assert len(pids) == 1, pids
    inst.kill9(pids[0])

    def restarted():
        now = inst.child_pids("qmgr")
        if now and now != pids:
            return True
        try:
            eq.poke(inst, "I")
        except OSError:
            pass
        return False
    pt.wait_for(restarted, timeout=30, interval=0.5, what="qmgr restart")


def test_delay_warning(inst):
    """one delay notice per message, also across a qmgr SIGKILL"""
    agent = inst.agent
    notices = []

    def policy(req):
        content = queue_content(inst, req["header"]["queue_file"])
        if b"report-type=delivery-status" in content:
            notices.append(content)
            return ["delivered"] * len(req["rcpts"])
        return ["deferred"] * len(req["rcpts"])
    agent.policy = policy
    eq.send(inst, ["carol@example.test"], sender="sender@example.test")
    req = agent.next_request()
    qid = req["header"]["queue_id"]
    path = os.path.join(inst.queue, "deferred", qid)
    pt.wait_for(lambda: os.path.exists(path), what="file in deferred/")
    assert "%s: sender delay notification" % qid not in inst.log()
    time.sleep(2.2)
    eq.poke(inst, "F")
    inst.wait_log(r"%s: sender delay notification: [0-9A-F]+" % qid)
    notice = re.search(r"%s: sender delay notification: ([0-9A-F]+)" % qid,
                       inst.log()).group(1)
    inst.wait_log(r"%s: removed" % notice)
    pt.wait_for(lambda: os.path.exists(path), what="file in deferred/ again")
    assert os.stat(path).st_mode & WARNED, oct(os.stat(path).st_mode)
    assert len(notices) == 1, len(notices)
    text = notices[0].decode("utf-8", "replace")
    for want in ("Action: delayed", "Status: 4.2.0", "Will-Retry-Until:",
                 "Final-Recipient: rfc822; carol@example.test", "fake deferred"):
        assert want in text, (want, text)
    assert re.search(r"Diagnostic-Code: smtp; 450 fake deferred", text), text

    restart_qmgr(inst)
    eq.poke(inst, "F")
    wait_request(agent, qid, timeout=30)
    pt.wait_for(lambda: os.path.exists(path), what="file in deferred/ after restart")
    time.sleep(0.5)
    log = inst.log()
    assert len(re.findall(r"%s: sender delay notification" % qid, log)) == 1, log
    assert len(notices) == 1, len(notices)
    subprocess.run([os.path.join(pt.BUILD, "cli", "postsuper"), "-c", inst.etc, "-d", qid],
                   capture_output=True, check=False)


def test_alias_maps_unavailable(inst):
    """missing alias table: local deferred, virtual delivered, then both"""
    agent = inst.agent
    inst.wait_log(r"warning: hash:%s is unavailable\. " % re.escape(inst.aliases))
    agent.policy = lambda req: ["delivered"] * len(req["rcpts"])
    while not agent.requests.empty():  # the earlier test's notice
        agent.requests.get_nowait()
    eq.send(inst, ["bob@localhost", "alice@example.test"])
    req = agent.next_request()
    qid = req["header"]["queue_id"]
    assert [r["address"] for r in req["rcpts"]] == ["alice@example.test"], req
    inst.wait_log(r"%s: to=<bob@localhost>, relay=none, .*dsn=4\.3\.0, status=deferred "
                  r"\(alias_maps lookup table unavailable: " % qid)
    path = os.path.join(inst.queue, "deferred", qid)
    pt.wait_for(lambda: os.path.exists(path), what="file in deferred/")
    with open(os.path.join(inst.queue, "defer", qid)) as f:
        assert "\t4.3.0\talias_maps lookup table unavailable" in f.read()

    with open(inst.aliases, "w") as f:
        f.write("bob: dave@example.test\n")
    p = subprocess.run([POSTALIAS, "-c", inst.etc, inst.aliases], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([POSTQUEUE, "-c", inst.etc, "-f"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    req = wait_request(agent, qid)
    got = [(r["address"], r["orig_rcpt"]) for r in req["rcpts"]]
    assert got == [("dave@example.test", "bob@localhost")], got
    inst.wait_log(r"%s: removed" % qid)
    inst.wait_log(r"alias_maps: lookup tables are available now")


def test_clean_exit(inst):
    """qmgr exits cleanly (no sanitizer report) after all that"""
    inst.restart()
    eq.poke(inst, "I")
    pt.wait_for(lambda: inst.child_pids("qmgr"), what="qmgr started")
    inst.restart()
    inst.check_sanitizers()


def main():
    if not os.path.exists(os.path.join(pt.BUILD, "qmgr", "qmgr")):
        print("1..0 # SKIP qmgr is not built")
        return
    inst = make_instance()
    tests = [("delay_warning", test_delay_warning),
             ("alias_maps_unavailable", test_alias_maps_unavailable),
             ("clean_exit", test_clean_exit)]
    orig_start = inst.start

    def start(*a, **kw):
        r = orig_start(*a, **kw)
        if getattr(inst, "agent", None) is not None:
            inst.agent.stop()
        inst.agent = eq.FakeAgent(os.path.join(inst.queue, "private", "lmtp"))
        return r
    inst.start = start
    try:
        pt.main_shared(inst, tests)
    finally:
        if getattr(inst, "agent", None) is not None:
            inst.agent.stop()


if __name__ == "__main__":
    main()
