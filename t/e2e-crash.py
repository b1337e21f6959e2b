#!/usr/bin/env python3
"""e2e-crash.py: crash safety of the local delivery path. While N messages
flow over SMTP (smtpd -> qmgr -> smtp-client (LMTP) -> lmtpd -> Maildir),
a killer thread SIGKILLs a random qmgr, lmtpd or smtp-client (the lmtp
service) every 0.3-0.7 s (seeded; the seed is printed); the master restarts
them. Then the queue must drain, every message that got a 250 must be in
its user's Maildir (none lost), every stored file must be whole, and
duplicates are bounded by what was in flight at the kills (reported;
issue #9 makes them 0). bench/crash-torture runs the same with a large N.

Environment: CRASH_SEED (default: random), CRASH_N (default 300)."""

import os
import random
import re
import smtplib
import threading
import time

import petrel_test as pt

USERS = ["user%d" % i for i in range(1, 21)]
DOMAIN = "example.test"

SERVICES = {
    "smtp": "smtpd",
    "qmgr": {"type": "fifo", "private": "n", "command": "qmgr", "maxproc": 1, "wakeup": 300},
    "lmtp": {"type": "unix", "command": "smtp-client"},
    "lmtpd": {"type": "unix", "command": "lmtpd"},
}

# Process name (as reported) -> the service whose children are its victims.
VICTIMS = {"qmgr": "qmgr", "lmtpd": "lmtpd", "smtp-client": "lmtp"}

TOKEN_RX = re.compile(rb"^X-Token: (\S+)$", re.M)
QUEUE_ID_RX = re.compile(rb"\(Petrel\) with E?SMTP id (\w+)")


def make_instance():
    """smtpd, qmgr, smtp-client and lmtpd, 20 users, fast retries."""
    inst = pt.Instance(services=SERVICES, ipv6=False)
    users = os.path.join(inst.etc, "users")
    uid, gid = os.getuid(), os.getgid()
    with open(users, "w") as f:
        for u in USERS:
            home = os.path.join(inst.mail, DOMAIN, u)
            f.write("%s@%s:{PLAIN}secret:%d:%d::%s::\n" % (u, DOMAIN, uid, gid, home))
    inst.set_virtual_mailboxes([("%s@%s" % (u, DOMAIN), None) for u in USERS])
    inst.set_main_cf("lmtpd_user_database = " + users,
                     "mail_location = maildir:~/Maildir",
                     "minimal_backoff_time = 1s",
                     "maximal_backoff_time = 2s",
                     "queue_run_delay = 1s")
    return inst


def body_line(n):
    return "body %d" % n


def scan_maildirs(inst):
    """(token -> list of (user, queue id) it was stored for, list of
    damaged files) over new/ and cur/ of every user's Maildir."""
    seen, damaged = {}, []
    for u in USERS:
        for sub in ("new", "cur"):
            d = os.path.join(inst.mail, DOMAIN, u, "Maildir", sub)
            if not os.path.isdir(d):
                continue
            for name in os.listdir(d):
                path = os.path.join(d, name)
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except FileNotFoundError:
                    continue
                m = TOKEN_RX.search(data)
                if m is None:
                    damaged.append(path)
                    continue
                token = m.group(1).decode()
                if not data.endswith(("\n%s\n" % body_line(int(token[1:]))).encode()):
                    damaged.append(path)
                qid = QUEUE_ID_RX.search(data)
                seen.setdefault(token, []).append((u, qid.group(1).decode() if qid else "?"))
    return seen, damaged


def queue_files(inst):
    """Files left in incoming/, active/ and deferred/ (dir/id)."""
    out = []
    for q in ("incoming", "active", "deferred"):
        d = os.path.join(inst.queue, q)
        for root, _, files in os.walk(d):
            out += [os.path.relpath(os.path.join(root, f), inst.queue)
                    for f in files if not f.startswith(".")]
    return out


def poke_qmgr(inst, byte=b"F"):
    """Write byte to public/qmgr as the writers do (non-blocking; no
    reader is fine)."""
    try:
        fd = os.open(os.path.join(inst.queue, "public", "qmgr"), os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(fd, byte)
    except OSError:
        pass
    finally:
        os.close(fd)


def send_all(port, count, workers, pace, acked, refused):
    """count messages, one per SMTP session, over workers threads, each
    pausing pace seconds between messages (so the flow lasts long enough
    for several kills); the numbers that got 250 go to acked, the others
    (with the reason) to refused."""
    lock = threading.Lock()

    def work(start):
        for n in range(start, count, workers):
            rcpt = "%s@%s" % (USERS[n % len(USERS)], DOMAIN)
            msg = ("From: sender@client.test\r\nTo: %s\r\nSubject: m%d\r\n"
                   "X-Token: t%d\r\n\r\n%s\r\n" % (rcpt, n, n, body_line(n)))
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
                    s.sendmail("sender@client.test", [rcpt], msg)
                with lock:
                    acked.add(n)
            except Exception as e:  # counted and reported, not fatal here
                with lock:
                    refused.append((n, repr(e)))
            time.sleep(pace)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def killer(inst, rng, stop, min_kills, kills, log):
    """Until stop is set (and, after that, until min_kills kills were made
    or the queue is empty): sleep 0.3-0.7 s, SIGKILL one random child
    among the victims' services (by PID, checked against its command
    line)."""
    while True:
        stopped = stop.wait(rng.uniform(0.3, 0.7))
        if stopped and (sum(kills.values()) >= min_kills or not queue_files(inst)):
            return
        live = {name: inst.child_pids(svc) for name, svc in VICTIMS.items()}
        names = sorted(n for n, pids in live.items() if pids)
        if not names:
            continue
        name = rng.choice(names)
        pid = rng.choice(live[name])
        argv = pt.proc_cmdline(pid)
        if not argv or pt._arg_after(argv, "-n") != VICTIMS[name]:
            continue  # gone (or not ours any more) since the listing
        try:
            inst.kill9(pid)
        except ProcessLookupError:
            continue
        kills[name] += 1
        log.append((time.monotonic(), name, pid))


AGENT_DIED_RX = re.compile(r"postfix/qmgr\[\d+\]: (\w+): to=<[^>]*>.*status=deferred "
                           r"\(delivery agent died\)")
MAYBE_SENT_RX = re.compile(r"postfix/lmtp\[\d+\]: (\w+): to=<[^>]*>.*status=deferred "
                           r"\(.*message may be sent more than once\)")
ACTIVE_RX = re.compile(r"postfix/qmgr\[(\d+)\]: (\w+): from=<[^>]*>, size=\d+, "
                       r"nrcpt=\d+ \(queue active\)")
ABANDONED_RX = re.compile(r"postfix/lmtp\[\d+\]: warning: (\w+): queue manager connection "
                          r"closed \(.*\) during delivery")
SENT_RX = re.compile(r"postfix/lmtp\[\d+\]: (\w+): to=<[^>]*>.*status=sent ")
QMGR_KILLED_RX = re.compile(r"process \S*/qmgr pid (\d+) killed by signal 9")


def in_flight(log):
    """queue id -> how many times one of its deliveries was in flight at
    a kill, from the log: a request cut by a dead agent (qmgr: "delivery
    agent died"), an LMTP session cut after the dot (the agent: "message
    may be sent more than once"), a delivery the agent abandoned when
    qmgr died ("queue manager connection closed during delivery": lmtpd
    may have had the whole message), or a delivery the agent reported sent
    to a qmgr that was then killed before it could mark the recipient
    done, so that the next qmgr loaded the message again."""
    exposed = {}

    def add(qid):
        exposed[qid] = exposed.get(qid, 0) + 1
    for rx in (AGENT_DIED_RX, MAYBE_SENT_RX, ABANDONED_RX):
        for m in rx.finditer(log):
            add(m.group(1))
    killed = set(QMGR_KILLED_RX.findall(log))
    active_under, sent_under = {}, {}
    for line in log.splitlines():
        m = SENT_RX.search(line)
        if m and m.group(1) in active_under:
            sent_under[m.group(1)] = active_under[m.group(1)]
            continue
        m = ACTIVE_RX.search(line)
        if m:
            pid, qid = m.groups()
            if sent_under.get(qid, pid) != pid and sent_under[qid] in killed:
                add(qid)
            active_under[qid] = pid
            sent_under.pop(qid, None)
    return exposed


def drain(inst, timeout):
    """Wait until the queue is empty, writing F to public/qmgr now and
    then; returns the seconds it took (AssertionError after timeout)."""
    start = time.monotonic()
    deadline = start + timeout
    last_poke = 0.0
    while queue_files(inst):
        now = time.monotonic()
        if now > deadline:
            raise AssertionError("queue not drained after %.0fs: %s"
                                 % (timeout, queue_files(inst)[:10]))
        if now - last_poke > 2.0:
            poke_qmgr(inst)
            last_poke = now
        time.sleep(0.2)
    return time.monotonic() - start


def torture(inst, count, seed, workers=10, pace=0.1, min_kills=5, drain_timeout=120.0):
    """Send count messages while killing; drain; count. Returns a dict of
    figures (see report())."""
    rng = random.Random(seed)
    acked, refused = set(), []
    kills = {name: 0 for name in VICTIMS}
    kill_log = []
    stop = threading.Event()
    t0 = time.monotonic()
    k = threading.Thread(target=killer, args=(inst, rng, stop, min_kills, kills, kill_log))
    k.start()
    try:
        send_all(inst.port("smtp"), count, workers, pace, acked, refused)
    finally:
        stop.set()
        k.join()
    t_sent = time.monotonic()
    drain_secs = drain(inst, drain_timeout)
    # The queue is empty: every delivery has been made and fsync'd.
    seen, damaged = scan_maildirs(inst)
    wrong_user = sorted(t for t, us in seen.items()
                        if any(u != USERS[int(t[1:]) % len(USERS)] for u, _ in us))
    exposed = in_flight(inst.log())
    # A token stored k times: k - 1 repeats, each of which must be one of
    # its deliveries that was in flight at a kill.
    unexplained = sorted(t for t, us in seen.items()
                         if len(us) - 1 > exposed.get(us[0][1], 0))
    lost = sorted(n for n in acked if "t%d" % n not in seen)
    dups = sum(len(us) - 1 for us in seen.values())
    return {
        "seed": seed, "count": count, "acked": len(acked), "refused": refused,
        "delivered": sum(len(us) for us in seen.values()), "unique": len(seen),
        "lost": lost, "duplicates": dups,
        "dup_tokens": sorted(t for t, us in seen.items() if len(us) > 1),
        "in_flight": sum(exposed.values()), "unexplained": unexplained,
        "damaged": damaged, "wrong_user": wrong_user,
        "kills": kills, "kill_log": kill_log,
        "send_secs": t_sent - t0, "drain_secs": drain_secs,
        "wall_secs": time.monotonic() - t0,
    }


def report(r):
    """The figures as one line."""
    kills = ", ".join("%s=%d" % (n, c) for n, c in sorted(r["kills"].items()))
    return ("seed=%d sent=%d acked=%d refused=%d delivered=%d unique=%d lost=%d "
            "duplicates=%d (in flight at kills %d, unexplained %d) damaged=%d "
            "kills: %s (total %d); send %.1fs, drain %.1fs, "
            "wall %.1fs" % (r["seed"], r["count"], r["acked"], len(r["refused"]),
                            r["delivered"], r["unique"], len(r["lost"]),
                            r["duplicates"], r["in_flight"], len(r["unexplained"]),
                            len(r["damaged"]), kills,
                            sum(r["kills"].values()), r["send_secs"], r["drain_secs"],
                            r["wall_secs"]))


def check(inst, r):
    """The assertions on torture()'s figures."""
    assert not r["refused"], ("smtpd is never killed, yet refused", r["refused"][:5])
    assert not r["lost"], ("acked but never delivered", r["lost"][:20], inst.tail())
    assert not r["damaged"], ("incomplete files in new/ or cur/", r["damaged"][:5])
    assert not r["wrong_user"], ("delivered to the wrong user", r["wrong_user"][:5])
    assert sum(r["kills"].values()) > 0, "nothing was killed"
    # Until issue #9, a kill may repeat the deliveries in flight at that
    # moment, and only those. One smtp-client or lmtpd process serves many
    # sessions and qmgr has many requests out, so one kill may cut several.
    assert not r["unexplained"], ("duplicates that were not in flight at a kill",
                                  r["unexplained"][:20], r["kills"])
    assert r["duplicates"] <= r["in_flight"], (r["duplicates"], r["in_flight"])
    # qmgr came back after its last kill (no crash loop, no lasting
    # throttle); the agents are started on demand, and the drained queue
    # shows they were.
    poke_qmgr(inst, b"I")
    pt.wait_for(lambda: inst.child_pids("qmgr"), timeout=30, interval=0.2,
                what="qmgr running again")


def seed_from_env():
    value = os.environ.get("CRASH_SEED")
    return int(value) if value else random.SystemRandom().randrange(1 << 31)


def test_kill_during_delivery():
    """N messages while qmgr, lmtpd and smtp-client are SIGKILLed: none lost"""
    count = int(os.environ.get("CRASH_N", "300"))
    seed = seed_from_env()
    pt.diag("seed %d (CRASH_SEED=%d to repeat)" % (seed, seed))
    inst = make_instance()
    inst.start()
    ok = False
    try:
        r = torture(inst, count, seed)
        pt.diag(report(r))
        if r["dup_tokens"]:
            pt.diag("duplicated: " + " ".join(r["dup_tokens"][:30]))
        check(inst, r)
        ok = True
    finally:
        inst.stop(check=ok)


if __name__ == "__main__":
    pt.main()
