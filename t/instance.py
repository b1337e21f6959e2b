#!/usr/bin/env python3
"""instance.py: the demo instance behind "./dev up".

    python3 t/instance.py up --build BUILDDIR --dir RUNDIR

Creates RUNDIR (or reuses it: the queue, the certificate and the demo
passwords are kept) with etc/main.cf and etc/master.cf generated from what
is built (smtp on 2525; submission 2587 and 2465, imap 2143/2993, pop3
2110/2995 and lmtp 2024 once their programs exist), a self-signed
certificate in etc/, the domain example.test with the users alice and bob
(passwords in RUNDIR/demo-users, "user password" per line; their mailboxes
in etc/vmailbox), then runs the master in the foreground with its log on
the terminal. Ctrl-C stops everything. Lines in etc/main.cf.local are
appended to the generated main.cf.
"""

import argparse
import os
import secrets
import sys

import petrel_test as pt

DOMAIN = "example.test"
USERS = ("alice", "bob")

# (name, port, program, master.cf options): included when program is built.
# Implicit-TLS services will need their program's option once it exists.
SERVICES = [
    ("smtp", 2525, "smtpd", {}),
    ("submission", 2587, "submission", {}),
    ("submissions", 2465, "submission", {"smtpd_tls_wrappermode": "yes"}),
    ("imap", 2143, "imapd", {}),
    ("imaps", 2993, "imapd", {}),
    ("pop3", 2110, "pop3d", {}),
    ("pop3s", 2995, "pop3d", {}),
    ("lmtp", 2024, "lmtpd", {}),
    ("anvil", None, "anvil", {}),  # a unix service: per-client limits
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


def services(build):
    """The master.cf services whose programs exist in build."""
    out = {}
    for name, port, program, options in SERVICES:
        if not os.path.exists(os.path.join(build, pt.PROGRAMS[program])):
            continue
        if port is None:
            out[name] = {"command": program, "type": "unix", "maxproc": 1}
        else:
            out[name] = {"command": program, "port": port, "options": options}
    return out


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
    inst = pt.Instance(services=svc, directory=rundir, tls=True, log_file=False,
                       unpriv=privsep, chroot=privsep,
                       tls_dir=os.path.join(rundir, "etc"),
                       main_cf=local_main_cf(os.path.join(rundir, "etc")))
    users = demo_users(os.path.join(rundir, "demo-users"))
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
