"""lmtp_raw.py: a raw LMTP client for the tests (one reply per accepted
recipient after DATA, which smtplib.LMTP hides), on lmtpd's UNIX socket
or a TCP port."""

import socket


class LMTPRaw:
    """An LMTP connection; the 220 greeting is read at once."""

    def __init__(self, path=None, port=None, timeout=20):
        if path is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(path)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        greeting = self.reply()
        assert greeting.startswith("220 "), greeting

    def line(self):
        """One reply line without CRLF; ConnectionError when the server
        closed the connection."""
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line.decode()

    def reply(self):
        """A whole (multi-line) reply, lines joined by "\\n"."""
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return "\n".join(lines)

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()

    def send_mail(self, sender, rcpts, data, mail_params=""):
        """MAIL (with mail_params), RCPTs, DATA (data ends in CRLF): (the
        RCPT replies, one final reply per accepted recipient)."""
        r = self.cmd("MAIL FROM:<%s>%s" % (sender, " " + mail_params if mail_params else ""))
        assert r.startswith("250"), r
        rr = [self.cmd("RCPT TO:<%s>" % r) for r in rcpts]
        ok = sum(1 for r in rr if r.startswith("250"))
        if ok == 0:
            return rr, []
        r = self.cmd("DATA")
        assert r.startswith("354"), r
        self.sock.sendall(data + b".\r\n")
        return rr, [self.reply() for _ in range(ok)]

    def close(self):
        """QUIT (when the connection still works) and close."""
        try:
            self.cmd("QUIT")
        except OSError:
            pass
        self.sock.close()
