#!/usr/bin/env python3
"""dns_server.py: a tiny authoritative DNS server for the tests (stdlib only).

Serves the records of a JSON zone on 127.0.0.1, UDP and TCP on one free
port, which it writes to --port-file once both sockets listen. It answers
every name with AA set; unknown names get NXDOMAIN, known names without the
asked type get an empty NOERROR answer. CNAMEs are followed inside the zone.
Answers that do not fit the client's UDP size are sent with TC set and an
empty answer section, so the client retries over TCP.

Zone JSON:
  {"records": {"host.example": [["A", "1.2.3.4"], ["AAAA", "::1"],
                                ["MX", 10, "mx.example"], ["PTR", "name"],
                                ["CNAME", "target"], ["NS", "ns.example"],
                                ["TXT", "text"], ["TLSA", 3, 1, 1, "abcd"],
                                ["RAW", 1, "0102030405"]]},
   "servfail": ["name", ...],   answered SERVFAIL
   "refused": ["name", ...],    answered REFUSED
   "drop": ["name", ...]}       never answered

Usage: dns_server.py --port-file FILE --zone JSON|@FILE [--lifetime SECS]
It exits on SIGTERM, after --lifetime seconds (default 120), or when its
standard input reaches EOF (the test that started it has gone).
"""
import argparse
import json
import os
import select
import socket
import struct
import sys
import threading
import time

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "PTR": 12, "MX": 15, "TXT": 16,
         "AAAA": 28, "TLSA": 52}
MAX_CNAME_CHAIN = 8


def encode_name(name):
    """Wire form of a presentation name (no escapes; "." is the root)."""
    out = b""
    for label in name.strip(".").split("."):
        if label:
            raw = label.encode("ascii")
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def decode_name(msg, off):
    """Read an uncompressed name at off; return (lowercase text, new offset)."""
    labels = []
    while True:
        n = msg[off]
        off += 1
        if n == 0:
            return ".".join(labels).lower(), off
        if n > 63:
            raise ValueError("compressed or bad label in query")
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n


def rdata(rr):
    """(type number, rdata bytes) of one zone record."""
    kind = rr[0]
    if kind == "A":
        return 1, socket.inet_pton(socket.AF_INET, rr[1])
    if kind == "AAAA":
        return 28, socket.inet_pton(socket.AF_INET6, rr[1])
    if kind in ("PTR", "CNAME", "NS"):
        return TYPES[kind], encode_name(rr[1])
    if kind == "MX":
        return 15, struct.pack("!H", rr[1]) + encode_name(rr[2])
    if kind == "TXT":
        raw = rr[1].encode()
        return 16, bytes([len(raw)]) + raw
    if kind == "TLSA":
        return 52, bytes(rr[1:4]) + bytes.fromhex(rr[4])
    if kind == "RAW":
        return rr[1], bytes.fromhex(rr[2])
    raise ValueError("unknown record kind %r" % kind)


def encode_rr(name, rtype, data, ttl=300):
    return encode_name(name) + struct.pack("!HHIH", rtype, 1, ttl, len(data)) + data


class Zone:
    def __init__(self, spec):
        self.records = {k.lower().strip("."): v for k, v in spec.get("records", {}).items()}
        self.servfail = {n.lower().strip(".") for n in spec.get("servfail", [])}
        self.refused = {n.lower().strip(".") for n in spec.get("refused", [])}
        self.drop = {n.lower().strip(".") for n in spec.get("drop", [])}

    def exists(self, name):
        if name in self.records:
            return True
        return any(k.endswith("." + name) for k in self.records)

    def answer(self, qname, qtype):
        """(rcode, [answer rr bytes]) or None to stay silent."""
        if qname in self.drop:
            return None
        if qname in self.servfail:
            return 2, []
        if qname in self.refused:
            return 5, []
        answers = []
        name = qname
        for _ in range(MAX_CNAME_CHAIN):
            rrs = self.records.get(name)
            if rrs is None:
                return (0 if answers or self.exists(name) else 3), answers
            cname = [rr for rr in rrs if rr[0] == "CNAME"]
            if cname and qtype != 5:
                answers.append(encode_rr(name, 5, rdata(cname[0])[1]))
                name = cname[0][1].lower().strip(".")
                continue
            for rr in rrs:
                rtype, data = rdata(rr)
                if rtype == qtype:
                    answers.append(encode_rr(name, rtype, data))
            return 0, answers
        return 2, []


def respond(zone, query, udp_limit):
    """The reply to one query message, or None."""
    if len(query) < 12:
        return None
    qid, flags, qdcount, _, _, arcount = struct.unpack("!6H", query[:12])
    if flags & 0x8000 or qdcount != 1:
        return None
    qname, off = decode_name(query, 12)
    qtype, qclass = struct.unpack("!HH", query[off:off + 4])
    question = query[12:off + 4]
    edns = arcount > 0
    limit = udp_limit
    if edns and udp_limit is not None:
        # The OPT record follows the question: root name, type 41, size.
        opt = query[off + 4:]
        if len(opt) >= 5 and opt[0] == 0 and struct.unpack("!H", opt[1:3])[0] == 41:
            limit = max(512, struct.unpack("!H", opt[3:5])[0])
    result = zone.answer(qname, qtype)
    if result is None:
        return None
    rcode, answers = result
    out_flags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
    opt_rr = b"\0" + struct.pack("!HHIH", 41, 1232, 0, 0) if edns else b""
    body = b"".join(answers)
    reply = struct.pack("!6H", qid, out_flags, 1, len(answers), 0, 1 if edns else 0)
    reply += question + body + opt_rr
    if limit is not None and len(reply) > limit:
        reply = struct.pack("!6H", qid, out_flags | 0x0200, 1, 0, 0, 1 if edns else 0)
        reply += question + opt_rr
    return reply


def serve_tcp_conn(zone, conn):
    conn.settimeout(5)
    try:
        while True:
            head = conn.recv(2)
            if len(head) < 2:
                return
            (n,) = struct.unpack("!H", head)
            msg = b""
            while len(msg) < n:
                chunk = conn.recv(n - len(msg))
                if not chunk:
                    return
                msg += chunk
            reply = respond(zone, msg, None)
            if reply is not None:
                conn.sendall(struct.pack("!H", len(reply)) + reply)
    except (OSError, ValueError, struct.error):
        pass
    finally:
        conn.close()


def listen():
    """A UDP and a TCP socket on the same free port of 127.0.0.1."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(("127.0.0.1", port))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(16)
        return udp, tcp, port
    sys.exit("dns_server: no free port")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--zone", required=True)
    ap.add_argument("--lifetime", type=float, default=120)
    args = ap.parse_args()
    text = args.zone
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as f:
            text = f.read()
    zone = Zone(json.loads(text))
    udp, tcp, port = listen()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write("%d\n" % port)
    os.rename(tmp, args.port_file)

    deadline = time.monotonic() + args.lifetime
    watch = [udp, tcp]
    try:
        if not os.isatty(0):
            watch.append(sys.stdin)
    except OSError:
        pass
    while time.monotonic() < deadline:
        ready, _, _ = select.select(watch, [], [], 0.5)
        for r in ready:
            if r is udp:
                msg, peer = udp.recvfrom(65535)
                try:
                    reply = respond(zone, msg, 512)
                except (ValueError, IndexError, struct.error):
                    reply = None
                if reply is not None:
                    udp.sendto(reply, peer)
            elif r is tcp:
                conn, _ = tcp.accept()
                threading.Thread(target=serve_tcp_conn, args=(zone, conn),
                                 daemon=True).start()
            elif not os.read(0, 4096):
                return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
