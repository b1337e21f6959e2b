#!/usr/bin/env python3
"""instance.py: the demo instance behind "./dev up".

    python3 t/instance.py up --build BUILDDIR --dir RUNDIR

Creates RUNDIR (or reuses it: the queue, the certificate and the demo
passwords are kept) with etc/main.cf and etc/master.cf generated from what
is built (smtp on 2525 and the delivery path: qmgr, pickup, the LMTP agent
and lmtpd; submission 2587 and 2465, imap 2143/2993, pop3 2110/2995 once
their programs exist; lmtpd also on 2024), a self-signed
certificate in etc/, the domain example.test with the users alice and bob
(passwords in RUNDIR/demo-users, "user password" per line; SHA512-CRYPT
hashes in etc/users, Dovecot's passwd-file; their addresses in
etc/vmailbox; their Maildirs in RUNDIR/mail/example.test/USER), then runs the master in the foreground with its log on
the terminal. Ctrl-C stops everything. Lines in etc/main.cf.local are
appended to the generated main.cf.
"""

import argparse
import os
import secrets
import socket
import subprocess
import sys

import petrel_test as pt

DOMAIN = "example.test"
USERS = ("alice", "bob")

# (name, program, master.cf fields): included when program is built. Inet
# services have a fixed "port"; the others are the internal services of the
# delivery path (doc/delivery.md). Implicit-TLS services will need their
# program's option once it exists.
SERVICES = [
    ("smtp", "smtpd", {"port": 2525}),
    ("submission", "submission", {"port": 2587}),
    ("submissions", "submission", {"port": 2465, "options": {"smtpd_tls_wrappermode": "yes"}}),
    ("imap", "imapd", {"port": 2143}),
    ("imaps", "imapd", {"port": 2993}),
    ("pop3", "pop3d", {"port": 2110}),
    ("pop3s", "pop3d", {"port": 2995}),
    ("lmtp-inet", "lmtpd", {"port": 2024}),
    ("anvil", "anvil", {"type": "unix", "maxproc": 1}),
    ("qmgr", "qmgr", {"type": "fifo", "private": "n", "maxproc": 1, "wakeup": 300}),
    ("pickup", "pickup", {"type": "fifo", "private": "n", "maxproc": 1, "wakeup": 60}),
    ("lmtp", "smtp-client", {"type": "unix"}),
    # lmtpd switches to each user's uid to write the Maildir: not unpriv.
    ("lmtpd", "lmtpd", {"type": "unix", "unpriv": "n", "chroot": "n"}),
]


def demo_users(path):
    """The demo users' passwords: read from path, or made and saved."""
    users = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    users[parts[0]] = parts[1]
    if all(u in users for u in USERS):
        return users
    for u in USERS:
        users.setdefault(u, secrets.token_urlsafe(12))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for u in USERS:
            f.write("%s %s\n" % (u, users[u]))
    return users


def port_free(port):
    """True when 127.0.0.1:port can be bound (the demo's fixed ports)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def services(build):
    """The master.cf services whose programs exist in build; a service
    whose fixed port another program holds is left out, with a word."""
    out = {}
    for name, program, spec in SERVICES:
        if not os.path.exists(os.path.join(build, pt.PROGRAMS[program])):
            continue
        if "port" in spec and not port_free(spec["port"]):
            print("instance.py: port %d is in use: %s (%s) not started"
                  % (spec["port"], name, program), file=sys.stderr)
            continue
        out[name] = dict(spec, command=program)
    return out


def write_users(inst, users):
    """etc/users, Dovecot's passwd-file: the demo users with SHA512-CRYPT
    hashes (petrel pw), their Maildirs under mail/DOMAIN/USER. As root
    the mail belongs to nobody, else to the invoking user."""
    pw = os.path.join(pt.BUILD, "cli", "petrel-pw")
    if pt.is_root():
        import pwd
        ent = pwd.getpwnam("nobody")
        uid, gid = ent.pw_uid, ent.pw_gid
    else:
        uid, gid = os.getuid(), os.getgid()
    lines = []
    for u, password in users.items():
        if os.path.exists(pw):
            hashed = subprocess.run([pw, "-s", "SHA512-CRYPT", "-p", password], check=True,
                                    capture_output=True, text=True).stdout.strip()
        else:
            hashed = "{SHA512-CRYPT}*"  # no petrel-pw built: no login possible
        home = os.path.join(inst.mail, DOMAIN, u)
        os.makedirs(home, exist_ok=True)
        os.chown(home, uid, gid)  # lmtpd writes the Maildir as the user
        lines.append("%s@%s:%s:%d:%d::%s::" % (u, DOMAIN, hashed, uid, gid, home))
    path = os.path.join(inst.etc, "users")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    for d in (inst.mail, os.path.join(inst.mail, DOMAIN)):
        os.chmod(d, 0o755)
    return path


def local_main_cf(etc):
    """Extra main.cf lines the user keeps in etc/main.cf.local."""
    path = os.path.join(etc, "main.cf.local")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n") for line in f]


def up(build, rundir):
    """Set up rundir and exec the master in the foreground."""
    pt.BUILD = os.path.abspath(build)
    rundir = os.path.abspath(rundir)
    os.makedirs(os.path.join(rundir, "etc"), exist_ok=True)
    svc = services(pt.BUILD)
    if not os.path.exists(os.path.join(pt.BUILD, "master", "master")):
        sys.exit("instance.py: %s/master/master is not built" % pt.BUILD)
    if not svc:
        sys.exit("instance.py: no service program is built yet (smtpd/smtpd)")
    # As root (the README's way), programs drop to mail_owner and chroot to
    # the queue directory, as on a real server.
    privsep = pt.is_root()
    etc = os.path.join(rundir, "etc")
    inst = pt.Instance(services=svc, directory=rundir, tls=True, log_file=False,
                       unpriv=privsep, chroot=privsep, tls_dir=etc,
                       main_cf=["lmtpd_user_database = " + os.path.join(etc, "users"),
                                "mail_location = maildir:~/Maildir"]
                       + local_main_cf(etc))
    users = demo_users(os.path.join(rundir, "demo-users"))
    write_users(inst, users)
    inst.set_virtual_mailboxes([("%s@%s" % (u, DOMAIN), None) for u in USERS])
    banner(inst, svc, users)
    master = os.path.join(inst.libexec, "master")
    os.execv(master, [master, "-c", inst.etc, "-d"])


def banner(inst, svc, users):
    """How to use the demo."""
    print("Petrel demo instance in %s" % inst.dir)
    for name, spec in svc.items():
        if "port" in spec:
            print("  %-12s 127.0.0.1:%d (%s)" % (name, spec["port"], spec["command"]))
    print("Users (also in %s/demo-users):" % inst.dir)
    for u, p in users.items():
        print("  %s@%s  password %s" % (u, DOMAIN, p))
    if "smtp" in svc:
        print("Try: swaks --server 127.0.0.1:%d --to alice@%s" % (svc["smtp"]["port"], DOMAIN))
    if "lmtpd" in svc:
        print("Mail for alice lands in %s/Maildir/new/"
              % os.path.join(inst.mail, DOMAIN, "alice"))
    print("Logs follow; Ctrl-C stops everything.", flush=True)


def main():
    ap = argparse.ArgumentParser(description="Petrel demo instance")
    ap.add_argument("command", choices=["up"])
    ap.add_argument("--build", required=True, help="the build directory")
    ap.add_argument("--dir", required=True, help="the instance directory")
    args = ap.parse_args()
    up(args.build, args.dir)


if __name__ == "__main__":
    main()
