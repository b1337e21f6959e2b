"""smtp_raw.py: a byte-exact SMTP client for tests that must send what no
library would (bare LFs, NULs, pipelined bursts, BDAT size lies) and read
each reply as the server wrote it."""

import socket
import ssl
import time


class SMTPRaw:
    """One connection; send() writes bytes as given, reply() reads one
    (possibly multi-line) reply and returns (code, text)."""

    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.timeout = timeout

    @classmethod
    def bind_from(cls, source, host, port, timeout=10.0):
        """Connect from a chosen local address (e.g. 127.0.0.2)."""
        self = cls.__new__(cls)
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0))
        self.buf = b""
        self.timeout = timeout
        return self

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self, deadline):
        while b"\r\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no reply line")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed; pending %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        lines = []
        while True:
            line = self._line(deadline)
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                break
        code = int(lines[-1][:3]) if lines[-1][:3].isdigit() else 0
        text = b"\n".join(l[4:] for l in lines).decode("utf-8", "replace")
        return code, text

    def cmd(self, data, timeout=None):
        if isinstance(data, str):
            data = data.encode()
        self.send(data if data.endswith(b"\r\n") else data + b"\r\n")
        return self.reply(timeout)

    def closed(self, timeout=3.0):
        """True when the server closes the connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionError:
            return True

    def starttls(self, cafile=None):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# SMTP smuggling: line endings that must not end DATA (only CRLF.CRLF does).
SMUGGLE_ENDINGS = [
    ("bare LF dot bare LF", b"\n.\n"),
    ("bare CR dot bare CR", b"\r.\r"),
    ("bare LF dot CRLF", b"\n.\r\n"),
    ("CRLF dot bare LF", b"\r\n.\n"),
    ("bare CR dot CRLF", b"\r.\r\n"),
    ("CRLF dot bare CR", b"\r\n.\r"),
    ("bare LF dot bare CR LF", b"\n.\r\r\n"),
]


def smuggle(port, count_queued, ending):
    """A bare line ending before "." never ends DATA: the text after it is
    content, and exactly one message is queued."""
    before = count_queued()
    c = SMTPRaw("127.0.0.1", port)
    try:
        assert c.reply()[0] == 220
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd("MAIL FROM:<sender@client.test>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA\r\n")[0] == 354
        c.send(b"Subject: first\r\n\r\nfirst body" + ending +
               b"MAIL FROM:<evil@evil.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
               b"Subject: smuggled\r\n\r\nsmuggled body\r\n.\r\n")
        code, text = c.reply()
        assert code == 250 and "queued as" in text, "%d %s" % (code, text)
        # Nothing else may come back: the smuggled commands were content.
        c.send("NOOP\r\n")
        code, _ = c.reply()
        assert code == 250, "NOOP got %d: a smuggled command was answered" % code
        assert c.cmd("QUIT")[0] == 221
    finally:
        c.close()
    assert count_queued() == before + 1, "want exactly one message queued"
