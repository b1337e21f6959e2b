#!/usr/bin/env python3
"""e2e-smtpd-dns.py: smtpd_peername_lookup = yes, with libunbound pointed at
a DNS server of the test's own on loopback (so no query leaves the
machine). 127.0.0.1 reverse-resolves to localhost and back, so it is
"localhost"; 127.0.0.2 has no PTR, so it is "unknown", as in Postfix."""

import json
import os
import re
import subprocess
import sys
import tempfile

import petrel_test as pt
from smtp_raw import SMTPRaw

HERE = os.path.dirname(os.path.abspath(__file__))


def start_dns():
    """The test DNS server (answers NXDOMAIN for everything not listed)."""
    tmp = tempfile.mkdtemp(prefix="petrel-dns-")
    port_file = os.path.join(tmp, "port")
    zone = {"records": {"mx.example.test": [["A", "127.0.0.1"]]}}
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "dns_server.py"),
                             "--port-file", port_file, "--zone", json.dumps(zone),
                             "--lifetime", "300"], stdin=subprocess.PIPE)
    pt.wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(),
                timeout=10, what="DNS server port")
    return proc, int(open(port_file).read().strip()), tmp


def greet_from(inst, source):
    c = SMTPRaw.bind_from(source, "127.0.0.1", inst.port("smtp"))
    try:
        code, text = c.reply()
        assert code == 220, text
        assert c.cmd("QUIT")[0] == 221
    finally:
        c.close()


def main():
    proc, port, tmp = start_dns()
    inst = pt.Instance(services={"smtp": "smtpd"}, ipv6=False, main_cf=[
        "smtpd_peername_lookup = yes",
        "resolver_forwarders = 127.0.0.1@%d" % port,
        "resolver_timeout = 5s",
    ])

    def test_localhost():
        greet_from(inst, "127.0.0.1")
        inst.wait_log(r"connect from localhost\[127\.0\.0\.1\]")

    def test_no_ptr_is_unknown():
        greet_from(inst, "127.0.0.2")
        inst.wait_log(r"connect from unknown\[127\.0\.0\.2\]")

    test_localhost.__name__ = "test_127.0.0.1 is localhost"
    test_no_ptr_is_unknown.__name__ = "test_127.0.0.2 without PTR is unknown"
    try:
        inst.start()
        pt.main([test_localhost, test_no_ptr_is_unknown])
    finally:
        inst.stop(check=False)
        proc.terminate()
        proc.wait()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
