#!/usr/bin/env python3
"""e2e-postmap.py: the postmap binary end to end: compile a table (with
duplicate and malformed-line warnings), -q key, -q -, -s, -d key, -d -,
-i, -r, -w, -f, -n, hash:/btree:/lmdb: names and bare names, other table
types for -q, file modes, atomic replacement, concurrent builds, -c, and
the exit status and "postmap: fatal:" messages of failures."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile

BUILDDIR = os.environ.get("PETREL_BUILDDIR", ".")
POSTMAP = os.path.join(BUILDDIR, "cli", "postmap")
ENV = dict(os.environ)
ENV.pop("MAIL_CONFIG", None)

results = []


def ok(cond, name, diag=None):
    results.append(bool(cond))
    print("%sok %d - %s" % ("" if cond else "not ", len(results), name))
    if not cond and diag:
        for line in str(diag).splitlines():
            print("# " + line)
    sys.stdout.flush()


def postmap(*args, stdin=None, cfg=True, env=None):
    argv = [POSTMAP] + (["-c", CFG] if cfg else []) + list(args)
    return subprocess.run(argv, env=env or ENV, input=stdin,
                          capture_output=True, text=True)


def write(path, text, mode=None):
    with open(path, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)


def diag(p):
    return "rc=%d\nstdout=%s\nstderr=%s" % (p.returncode, p.stdout, p.stderr)


TMP = tempfile.mkdtemp(prefix="e2e-postmap.")
CFG = os.path.join(TMP, "etc")
os.mkdir(CFG)
write(os.path.join(CFG, "main.cf"), "# empty\n")

VIRTUAL = """# virtual mailboxes
User@Example.COM    mailbox1
joe@example.com     joe-box
@example.com        catchall
multi   first part
    continued
novalue
joe@example.com     second-joe
"""


def test_compile_and_query():
    src = os.path.join(TMP, "virtual")
    write(src, VIRTUAL, 0o644)
    p = postmap(src)
    ok(p.returncode == 0, "compile exits 0", diag(p))
    ok(os.path.exists(src + ".lmdb"), "virtual.lmdb created")
    ok(not os.path.exists(src + ".lmdb.tmp"), "no temp file left")
    ok("postmap: warning:" in p.stderr and "duplicate entry" in p.stderr
       and '"joe@example.com"' in p.stderr and "line 8" in p.stderr,
       "duplicate key warned about, with its line", p.stderr)
    ok("line 7: expected format: key whitespace value" in p.stderr,
       "line without a value warned about", p.stderr)

    cases = [("user@example.com", 0, "mailbox1\n"),
             ("USER@EXAMPLE.COM", 0, "mailbox1\n"),
             ("joe@example.com", 0, "joe-box\n"),
             ("multi", 0, "first part    continued\n"),
             ("nobody@example.com", 1, ""),
             ("novalue", 1, "")]
    for key, rc, out in cases:
        p = postmap("-q", key, src)
        ok(p.returncode == rc and p.stdout == out,
           "-q %s -> exit %d %r" % (key, rc, out), diag(p))
    for name in ("lmdb:" + src, "hash:" + src, "btree:" + src,
                 "proxy:hash:" + src):
        p = postmap("-q", "joe@example.com", name)
        ok(p.returncode == 0 and p.stdout == "joe-box\n",
           "-q through %s" % name.split("/")[0], diag(p))

    p = postmap("-q", "-", src,
                stdin="joe@example.com\nnobody@x\nUSER@example.com\n")
    ok(p.returncode == 0 and p.stdout ==
       "joe@example.com\tjoe-box\nUSER@example.com\tmailbox1\n",
       "-q - prints key<TAB>value for the keys found", diag(p))
    p = postmap("-q", "-", src, stdin="a\nb\n")
    ok(p.returncode == 1 and p.stdout == "", "-q - with no hit exits 1",
       diag(p))

    p = postmap("-s", src)
    ok(p.returncode == 0 and p.stdout ==
       "@example.com\tcatchall\njoe@example.com\tjoe-box\n"
       "multi\tfirst part    continued\nuser@example.com\tmailbox1\n",
       "-s lists every entry in key order", diag(p))

    p = postmap("-q", "x", os.path.join(TMP, "missing"))
    ok(p.returncode == 1 and "postmap: fatal:" in p.stderr
       and "missing.lmdb" in p.stderr, "-q on a missing table is fatal",
       diag(p))


def test_query_types():
    text = os.path.join(TMP, "text")
    write(text, "alpha one\nbeta two\n")
    cases = [(["-q", "anything", "static:fixed"], 0, "fixed\n"),
             (["-q", "B", "inline:{ a=1, { b = two words } }"], 0,
              "two words\n"),
             (["-q", "c", "inline:{a=1}", "static:fallback"], 0,
              "fallback\n"),
             (["-q", "beta", "texthash:" + text], 0, "two\n"),
             (["-q", "root", "unix:passwd.byname"], 0, None),
             (["-s", "texthash:" + text], 0, "alpha\tone\nbeta\ttwo\n")]
    for args, rc, out in cases:
        p = postmap(*args)
        ok(p.returncode == rc and (out is None or p.stdout == out),
           "postmap %s" % " ".join(args), diag(p))
    p = postmap("-q", "x", "foo:bar")
    ok(p.returncode == 1 and p.stderr.startswith("postmap: fatal:")
       and '"foo"' in p.stderr, "unknown table type is fatal, named",
       diag(p))
    p = postmap(os.path.join(TMP, "nosource"))
    ok(p.returncode == 1 and "postmap: fatal: open" in p.stderr,
       "compiling a missing source file is fatal", diag(p))
    p = postmap("texthash:" + text)
    ok(p.returncode == 1 and "cannot build" in p.stderr,
       "compiling texthash: is refused", diag(p))


def test_delete_and_incremental():
    src = os.path.join(TMP, "access")
    write(src, "a.example OK\nb.example REJECT\nc.example DUNNO\n")
    p = postmap(src)
    ok(p.returncode == 0, "access table compiled", diag(p))
    ino = os.stat(src + ".lmdb").st_ino
    p = postmap("-d", "B.EXAMPLE", src)
    ok(p.returncode == 0, "-d existing key exits 0", diag(p))
    ok(postmap("-q", "b.example", src).returncode == 1, "deleted key gone")
    ok(postmap("-q", "a.example", src).returncode == 0, "other keys kept")
    ok(os.stat(src + ".lmdb").st_ino != ino,
       "the table was replaced, not changed in place")
    p = postmap("-d", "b.example", src)
    ok(p.returncode == 1 and p.stderr == "", "-d absent key exits 1",
       diag(p))
    p = postmap("-d", "-", src, stdin="a.example\nnone.example\n")
    ok(p.returncode == 0 and postmap("-q", "a.example", src).returncode == 1,
       "-d - deletes keys read from stdin", diag(p))
    p = postmap("-d", "x", os.path.join(TMP, "nosuch"))
    ok(p.returncode == 1 and "postmap: fatal:" in p.stderr,
       "-d on a missing table is fatal", diag(p))

    p = postmap("-i", src, stdin="new.example  OK\nC.example REPLACED\n")
    ok(p.returncode == 0 and "duplicate entry" in p.stderr,
       "-i adds from stdin, warns about an existing key", diag(p))
    p = postmap("-s", src)
    ok(p.stdout == "c.example\tDUNNO\nnew.example\tOK\n",
       "-i kept the old value and added the new one", diag(p))
    p = postmap("-i", "-r", src, stdin="c.example REPLACED\n")
    ok(p.returncode == 0 and p.stderr == "" and
       postmap("-q", "c.example", src).stdout == "REPLACED\n",
       "-i -r replaces silently", diag(p))
    fresh = os.path.join(TMP, "fresh")
    p = postmap("-i", fresh, stdin="k v\n")
    ok(p.returncode == 0 and postmap("-q", "k", fresh).stdout == "v\n",
       "-i creates a missing table", diag(p))


def test_flags():
    src = os.path.join(TMP, "flags")
    write(src, "Key first\nkey second\n")
    p = postmap("-w", src)
    ok(p.returncode == 0 and p.stderr == "" and
       postmap("-q", "key", src).stdout == "first\n",
       "-w: first wins, no warning", diag(p))
    p = postmap("-r", src)
    ok(p.returncode == 0 and p.stderr == "" and
       postmap("-q", "KEY", src).stdout == "second\n",
       "-r: last wins, no warning", diag(p))
    p = postmap("-f", src)
    ok(p.returncode == 0 and p.stderr == "", "-f: no duplicates", diag(p))
    ok(postmap("-f", "-q", "Key", src).stdout == "first\n" and
       postmap("-f", "-q", "key", src).stdout == "second\n" and
       postmap("-f", "-q", "KEY", src).returncode == 1,
       "-f: keys keep their case")
    p = postmap("-n", src)
    ok(p.returncode == 0 and postmap("-q", "key", src).stdout == "first\n",
       "-n: table without NULs is read the same", diag(p))
    with open(src + ".lmdb", "rb") as f:
        data = f.read()
    ok(b"key\0first\0" not in data and b"first" in data,
       "-n: no terminating NUL stored")
    postmap(src)
    with open(src + ".lmdb", "rb") as f:
        ok(b"first\0" in f.read(), "-N (default): terminating NUL stored")


def test_modes():
    src = os.path.join(TMP, "secret")
    write(src, "k v\n", 0o600)
    postmap(src)
    ok(stat.S_IMODE(os.stat(src + ".lmdb").st_mode) == 0o600,
       "database mode follows a private source (0600)")
    postmap("-p", src)
    ok(stat.S_IMODE(os.stat(src + ".lmdb").st_mode) == 0o644,
       "-p: mode 0644")
    os.chmod(src + ".lmdb", 0o640)
    postmap("-i", src, stdin="k2 v2\n")
    ok(stat.S_IMODE(os.stat(src + ".lmdb").st_mode) == 0o640,
       "-i keeps the mode of the existing database")


def test_owner():
    """As root: build as the source file's owner, then as root again."""
    if os.geteuid() != 0:
        ok(True, "# SKIP not root")
        return
    import pwd
    nobody = pwd.getpwnam("nobody")
    # LeakSanitizer cannot inspect a process whose effective uid changed.
    env = dict(ENV, ASAN_OPTIONS=(ENV.get("ASAN_OPTIONS", "") +
                                  ":detect_leaks=0").lstrip(":"))
    os.chmod(TMP, 0o755)
    d = os.path.join(TMP, "owned")
    os.mkdir(d)
    os.chown(d, nobody.pw_uid, nobody.pw_gid)
    user_src = os.path.join(d, "user")
    root_src = os.path.join(TMP, "rootowned")
    write(user_src, "k user\n")
    os.chown(user_src, nobody.pw_uid, nobody.pw_gid)
    write(root_src, "k root\n")
    def owner(path):
        return os.stat(path).st_uid if os.path.exists(path) else None

    p = postmap(user_src, root_src, env=env)
    ok(p.returncode == 0, "build a nobody-owned and a root-owned table",
       diag(p))
    ok(owner(user_src + ".lmdb") == nobody.pw_uid,
       "nobody's table is owned by nobody")
    ok(owner(root_src + ".lmdb") == 0,
       "the next table is built as root again")
    p = postmap("-o", user_src, env=env)
    ok(p.returncode == 0 and owner(user_src + ".lmdb") == 0,
       "-o: built as root", diag(p))
    os.chmod(TMP, 0o700)


def test_concurrent():
    src = os.path.join(TMP, "big")
    write(src, "".join("key%05d value%05d\n" % (i, i) for i in range(20000)))
    procs = [subprocess.Popen([POSTMAP, "-c", CFG, src], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(4)]
    rcs = [p.wait() for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    ok(rcs == [0, 0, 0, 0], "four concurrent builds succeed", rcs)
    p = postmap("-q", "key19999", src)
    ok(p.stdout == "value19999\n", "the result is complete", diag(p))
    ok(not os.path.exists(src + ".lmdb.tmp"), "no temp file left")


def test_config_and_usage():
    cfg2 = os.path.join(TMP, "etc2")
    os.mkdir(cfg2)
    write(os.path.join(cfg2, "main.cf"), "default_database_type = hash\n")
    src = os.path.join(TMP, "bare")
    write(src, "k v\n")
    p = subprocess.run([POSTMAP, "-c", cfg2, src], env=ENV,
                       capture_output=True, text=True)
    ok(p.returncode == 0 and os.path.exists(src + ".lmdb"),
       "default_database_type = hash builds .lmdb", diag(p))
    p = subprocess.run([POSTMAP, "-q", "k", src], env=ENV,
                       capture_output=True, text=True)
    ok(p.returncode == 0 and p.stdout == "v\n",
       "without -c and without an installed main.cf: defaults", diag(p))
    p = subprocess.run([POSTMAP, "-c", os.path.join(TMP, "nodir"), "-q", "k",
                        src], env=ENV, capture_output=True, text=True)
    ok(p.returncode == 1 and "postmap: fatal:" in p.stderr,
       "-c with no main.cf there is fatal", diag(p))
    for args, want in ((["-q", "a", "-s", src], "specify only one"),
                       ([], "usage"), (["-b", src], "not supported"),
                       (["-x", src], "usage")):
        p = postmap(*args)
        ok(p.returncode == 1 and "postmap: fatal:" in p.stderr
           and want in p.stderr, "postmap %s: %s" % (" ".join(args), want),
           diag(p))


try:
    test_compile_and_query()
    test_query_types()
    test_delete_and_incremental()
    test_flags()
    test_modes()
    test_owner()
    test_concurrent()
    test_config_and_usage()
finally:
    shutil.rmtree(TMP, ignore_errors=True)

print("1..%d" % len(results))
sys.exit(0 if all(results) else 1)
