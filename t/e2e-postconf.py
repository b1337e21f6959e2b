#!/usr/bin/env python3
"""e2e-postconf.py: drive the built postconf binary ($PETREL_BUILDDIR/cli/postconf)
with -c on a temporary configuration directory: -n, -d, -h, -x, -e, -X, -m,
unknown names, unused parameters, bad values and exit statuses. TAP output."""
import os
import socket
import subprocess
import sys
import tempfile

BUILDDIR = os.environ.get("PETREL_BUILDDIR",
                          os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
POSTCONF = os.path.join(BUILDDIR, "cli", "postconf")

MAIN_CF = """\
# Petrel test configuration
myhostname = mx.example.com
mydestination = $myhostname, localhost.$mydomain,
    localhost
  # a comment inside a continued value
relayhost =
smtpd_banner = $myhostname ESMTP $mail_name
my_rbl = zen.example.org
smtpd_client_restrictions = reject_rbl_client $my_rbl
"""

count = 0
failed = 0


def ok(cond, text, diag=None):
    """One TAP line; diag is printed as comments on failure."""
    global count, failed
    count += 1
    if not cond:
        failed += 1
    print("%sok %d - %s" % ("" if cond else "not ", count, text))
    if not cond and diag:
        for line in str(diag).splitlines():
            print("#   " + line)
    sys.stdout.flush()
    return cond


def postconf(confdir, *args, env=None):
    """Run postconf -c confdir args...; returns (status, stdout, stderr)."""
    e = dict(os.environ)
    e.pop("MAIL_CONFIG", None)
    if env:
        e.update(env)
    argv = [POSTCONF] + (["-c", confdir] if confdir else []) + list(args)
    p = subprocess.run(argv, capture_output=True, text=True, env=e, timeout=30)
    return p.returncode, p.stdout, p.stderr


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_show(d):
    rc, out, err = postconf(d, "-n")
    want = ("my_rbl = zen.example.org\n"
            "mydestination = $myhostname, localhost.$mydomain,    localhost\n"
            "myhostname = mx.example.com\n"
            "relayhost =\n"
            "smtpd_banner = $myhostname ESMTP $mail_name\n"
            "smtpd_client_restrictions = reject_rbl_client $my_rbl\n")
    ok(rc == 0 and out == want, "-n: main.cf settings, sorted, unexpanded", out + err)
    ok(err == "", "-n: a referenced parameter of our own is not warned about", err)

    rc, out, err = postconf(d, "-nx")
    ok(rc == 0 and "mydestination = mx.example.com, localhost.example.com,    localhost\n" in out
       and "smtpd_banner = mx.example.com ESMTP Petrel\n" in out,
       "-n -x: values expanded", out + err)

    rc, out, err = postconf(d, "-h", "myhostname", "relayhost", "smtpd_banner")
    ok(rc == 0 and out == "mx.example.com\n\n$myhostname ESMTP $mail_name\n",
       "-h: values only, in argument order", out + err)

    rc, out, err = postconf(d, "-hx", "smtpd_banner", "mydomain")
    ok(rc == 0 and out == "mx.example.com ESMTP Petrel\nexample.com\n",
       "-h -x: expanded values; mydomain derived from myhostname", out + err)

    rc, out, err = postconf(d)
    lines = out.splitlines()
    names = [line.split(" =")[0] for line in lines]
    ok(rc == 0 and len(lines) > 100 and names == sorted(names),
       "no arguments: every parameter, sorted by name (%d)" % len(lines), err)
    ok("message_size_limit = 10240000" in lines and "myhostname = mx.example.com" in lines
       and "relay_domains =" in lines,
       "no arguments: defaults and main.cf values as name = value", out)
    ok("my_rbl = zen.example.org" not in lines, "no arguments: only table parameters")


def test_defaults(d):
    rc, out, err = postconf(d, "-d", "mail_name", "smtpd_timeout", "mynetworks",
                            "smtpd_forbid_bare_newline", "syslog_name", "myhostname")
    want = ("mail_name = Petrel\n"
            "smtpd_timeout = 300s\n"
            "mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128\n"
            "smtpd_forbid_bare_newline = normalize\n"
            "syslog_name = postfix\n"
            "myhostname = %s\n" % socket.gethostname())
    ok(rc == 0 and out == want, "-d name: built-in defaults, myhostname computed", out + err)
    rc, out, err = postconf(d, "-dhx", "smtpd_banner")
    ok(rc == 0 and out == "%s ESMTP Petrel\n" % socket.gethostname(),
       "-d -h -x: default expanded against defaults only", out + err)
    rc, out, err = postconf(d, "-d", "config_directory")
    ok(rc == 0 and out == "config_directory = %s\n" % d, "-d: config_directory is -c", out + err)


def test_unknown(d):
    rc, out, err = postconf(d, "foo_no_such", "mail_name")
    ok(rc == 0, "unknown name: exit status 0", err)
    ok(err == "postconf: warning: foo_no_such: unknown parameter\n",
       "unknown name: one warning line", err)
    ok(out == "mail_name = Petrel\n", "unknown name: known names still shown", out)
    rc, out, err = postconf(d, "my_rbl")
    ok(rc == 0 and out == "my_rbl = zen.example.org\n" and err == "",
       "a name of our own set in main.cf is shown", out + err)


def test_edit(d):
    path = os.path.join(d, "main.cf")
    rc, out, err = postconf(d, "-e", "relayhost=[smtp.example.net]:587",
                            "smtpd_timeout = 60s", "mydestination=$myhostname")
    ok(rc == 0 and out == "" and err == "", "-e: exit 0, silent", out + err)
    text = read(path)
    ok(text.startswith("# Petrel test configuration\nmyhostname = mx.example.com\n"),
       "-e: leading comment and other lines kept", text)
    ok("mydestination = $myhostname\n  # a comment inside a continued value\n"
       "relayhost = [smtp.example.net]:587\n" in text and "    localhost" not in text,
       "-e: continued definition replaced, its comment kept", text)
    ok(text.endswith("smtpd_timeout = 60s\n"), "-e: new parameter appended", text)
    ok(not os.path.exists(path + ".tmp"), "-e: no temp file left")
    rc, out, err = postconf(d, "-h", "smtpd_timeout", "relayhost")
    ok(rc == 0 and out == "60s\n[smtp.example.net]:587\n", "-e: values read back", out + err)

    before = read(path)
    rc, out, err = postconf(d, "-e", "smtpd_timeout=soon")
    ok(rc == 1, "-e with a bad value: exit 1", err)
    ok(err.startswith("postconf: fatal: ") and "smtpd_timeout" in err and "soon" in err
       and err.count("\n") == 1, "-e with a bad value: one fatal line naming it", err)
    ok(read(path) == before, "-e with a bad value: main.cf unchanged")

    rc, out, err = postconf(d, "-e", "novalue")
    ok(rc == 1 and "missing '='" in err, "-e without '=': exit 1", err)

    rc, out, err = postconf(d, "-X", "smtpd_timeout", "relayhost")
    text = read(path)
    ok(rc == 0 and "smtpd_timeout" not in text and "relayhost" not in text
       and "myhostname = mx.example.com" in text, "-X: definitions removed", text + err)


def test_errors(d):
    path = os.path.join(d, "main.cf")
    write(path, "myhostname = mx.example.com\nsmtpd_recipient_limit = lots\n")
    rc, out, err = postconf(d, "-n")
    ok(rc == 1, "bad value in main.cf: exit 1", err)
    ok(err.startswith("postconf: fatal: %s/main.cf, line 2: " % d)
       and "smtpd_recipient_limit" in err and '"lots"' in err and err.count("\n") == 1,
       "bad value in main.cf: one line naming file, line, parameter and value", err)
    rc, out, err = postconf(d, "-d", "smtpd_recipient_limit")
    ok(rc == 0 and out == "smtpd_recipient_limit = 1000\n", "-d does not read main.cf", out + err)

    write(path, "a_loop = $b_loop\nb_loop = $a_loop\nsmtpd_banner = $a_loop\n")
    rc, out, err = postconf(d, "-n")
    ok(rc == 1 and "smtpd_banner" in err and "levels deep" in err,
       "expansion loop: an error, not a crash", err)

    write(path, "foo = bar\nmail_name = Test\n")
    rc, out, err = postconf(d, "-h", "mail_name")
    ok(rc == 0 and out == "Test\n", "unused parameter: still exit 0", err)
    ok(err == "postconf: warning: %s/main.cf, line 1: unused parameter: foo=bar\n" % d,
       "unused parameter: warned with file, line, name and value", err)

    os.unlink(path)
    rc, out, err = postconf(d, "-n")
    ok(rc == 1 and err.startswith("postconf: fatal: open(%s/main.cf) failed" % d),
       "missing main.cf: exit 1", err)
    rc, out, err = postconf(d, "-e", "mail_name=Created")
    ok(rc == 0 and read(path) == "mail_name = Created\n", "-e creates a missing main.cf", err)

    rc, out, err = postconf(d, "-q")
    ok(rc == 1 and err.startswith("postconf: fatal: invalid option -q") and err.count("\n") == 1,
       "bad option: one fatal line, exit 1", err)


def test_misc(d):
    rc, out, err = postconf(None, "-h", "mail_name", env={"MAIL_CONFIG": d})
    ok(rc == 0 and out == "Created\n", "MAIL_CONFIG selects the directory", out + err)
    rc, out, err = postconf(d, "-m")
    types = out.split()
    ok(rc == 0 and "lmdb" in types and "hash" in types and types == sorted(types),
       "-m: map types listed", out + err)


def main():
    if not os.access(POSTCONF, os.X_OK):
        print("1..0 # SKIP %s not built" % POSTCONF)
        return 0
    with tempfile.TemporaryDirectory(prefix="e2e-postconf.") as d:
        write(os.path.join(d, "main.cf"), MAIN_CF)
        test_show(d)
        test_defaults(d)
        test_unknown(d)
        test_edit(d)
        test_errors(d)
        test_misc(d)
    print("1..%d" % count)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
