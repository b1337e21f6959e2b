#!/usr/bin/env python3
"""e2e-smtpd-limits.py: per-client connection limits, counted across smtpd
processes by anvil(8): smtpd_client_connection_count_limit and
smtpd_client_connection_rate_limit answer 421 with Postfix's log line;
clients in smtpd_client_event_limit_exceptions are exempt; smtpd lets
clients in when anvil is down."""

import os
import signal

import petrel_test as pt
from smtp_raw import SMTPRaw

ANVIL = {"type": "unix", "command": "anvil", "maxproc": 1}


def greet(inst, source="127.0.0.1"):
    c = SMTPRaw.bind_from(source, "127.0.0.1", inst.port("smtp"))
    return c, c.reply()


@pt.instance(services={"smtp": "smtpd", "anvil": ANVIL}, ipv6=False, main_cf=[
    "smtpd_client_connection_count_limit = 3",
    "smtpd_client_event_limit_exceptions = 127.0.0.9",
])
def test_count_limit(inst):
    """the 4th simultaneous connection from one address gets 421"""
    open_ = []
    for _ in range(3):
        c, (code, text) = greet(inst)
        assert code == 220, text
        open_.append(c)
    c, (code, text) = greet(inst)
    assert code == 421 and "too many connections from 127.0.0.1" in text, (code, text)
    assert c.closed()
    inst.wait_log(r"warning: Connection concurrency limit exceeded: 4 from unknown\[127\.0\.0\.1\] for service \S+")
    # Another address has its own count; an exempt one has none.
    c2, (code, _) = greet(inst, "127.0.0.2")
    assert code == 220
    exempt = [greet(inst, "127.0.0.9") for _ in range(5)]
    assert all(r[1][0] == 220 for r in exempt)
    # A closed connection frees its place.
    assert open_[0].cmd("QUIT")[0] == 221
    open_[0].close()
    pt.wait_for(lambda: greet_ok(inst), timeout=5, what="a free place after QUIT")
    for x in open_[1:] + [c2] + [e[0] for e in exempt]:
        x.close()


def greet_ok(inst):
    c, (code, _) = greet(inst)
    c.close()
    return code == 220


@pt.instance(services={"smtp": "smtpd", "anvil": ANVIL}, ipv6=False, main_cf=[
    "smtpd_client_connection_count_limit = 0",
    "smtpd_client_connection_rate_limit = 4",
    "anvil_rate_time_unit = 60s",
    "smtpd_client_event_limit_exceptions =",
])
def test_rate_limit(inst):
    """the 5th connection in a time unit gets 421"""
    for i in range(4):
        c, (code, text) = greet(inst)
        assert code == 220, (i, text)
        c.cmd("QUIT")
        c.close()
    c, (code, text) = greet(inst)
    assert code == 421, (code, text)
    c.close()
    inst.wait_log(r"warning: Connection rate limit exceeded: 5 from unknown\[127\.0\.0\.1\] for service \S+")


@pt.instance(services={"smtp": "smtpd", "anvil": ANVIL}, ipv6=False, main_cf=[
    "smtpd_client_message_rate_limit = 2",
    "smtpd_client_recipient_rate_limit = 3",
    "anvil_rate_time_unit = 60s",
    "smtpd_client_event_limit_exceptions =",
])
def test_message_and_recipient_rates(inst):
    """MAIL past the message rate and RCPT past the recipient rate get 450,
    also when pipelined"""
    c, (code, _) = greet(inst)
    assert code == 220
    assert c.cmd("EHLO client.test")[0] == 250
    # Pipelined: the replies come back in order while smtpd asks anvil.
    c.send("MAIL FROM:<a@client.test>\r\nRCPT TO:<postmaster>\r\nRCPT TO:<postmaster>\r\n"
           "RCPT TO:<postmaster>\r\nRCPT TO:<postmaster>\r\nRSET\r\n")
    codes = [c.reply()[0] for _ in range(6)]
    assert codes == [250, 250, 250, 250, 450, 250], codes
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    assert c.cmd("RSET")[0] == 250
    code, text = c.cmd("MAIL FROM:<a@client.test>")
    assert code == 450 and "too much mail from 127.0.0.1" in text, (code, text)
    assert c.cmd("QUIT")[0] == 221
    c.close()
    inst.wait_log(r"warning: Message delivery request rate limit exceeded: 3 from unknown\[127\.0\.0\.1\]")
    inst.wait_log(r"warning: Recipient address rate limit exceeded: 4 from unknown\[127\.0\.0\.1\]")


@pt.instance(services={"smtp": "smtpd"}, ipv6=False, main_cf=[
    "smtpd_client_connection_count_limit = 1",
    "smtpd_client_event_limit_exceptions =",
])
def test_no_anvil(inst):
    """without anvil, clients are let in and the log says limits are off"""
    conns = []
    for _ in range(3):
        c, (code, _) = greet(inst)
        assert code == 220
        conns.append(c)
    inst.wait_log(r"anvil \S+: .* -- connection limits not enforced")
    for c in conns:
        c.close()


if __name__ == "__main__":
    pt.main()
