"""petrel_test.py: the end-to-end test harness: a TAP runner and Instance.

A test file defines functions named test_* and calls main():

    import petrel_test as pt

    @pt.instance(services={"smtp": "smtpd"}, main_cf=["message_size_limit = 1000"])
    def test_greeting(inst):
        s = inst.connect("smtp")
        assert s.recv(100).startswith(b"220 ")

    def test_without_instance():
        if not pt.have_ipv6():
            pt.skip("no IPv6 on this host")
        inst = pt.Instance(services={"echo": "echo-daemon"}, ipv6=True)
        try:
            inst.start()
            ...
        finally:
            inst.stop(check=False)

    if __name__ == "__main__":
        pt.main()

main() runs the tests in file order and prints "ok N - name" or "not ok N -
name" (with the traceback as "# " lines), then "1..N"; it exits 1 when one
failed. A test that takes an argument gets a started Instance, built from
its @instance(...) arguments, and stopped afterwards (failures print the
tail of the instance's log). pt.skip(reason) ends a test as "# SKIP".

Instance(services=..., main_cf=..., tls=..., unpriv=..., chroot=...) makes a
temporary directory (removed by stop() unless PETREL_KEEP=1) with:
    etc/main.cf etc/master.cf   generated; see Instance.write_config()
    libexec/                    symlinks to the programs in $PETREL_BUILDDIR
    queue/                      queue_directory (the master makes its layout)
    mail/                       for mailboxes
    maillog                     maillog_file
    master.stderr               the master's (and children's) stderr
services maps a name to a command ("smtpd") or to a dict with the master.cf
fields (type, private, unpriv, chroot, wakeup, maxproc, command, args,
options): inet services get a free loopback port each (inst.port(name)).
Everything runs on 127.0.0.1 (and ::1 when the host has it); processes are
only ever signalled by PID.
"""

import ctypes
import fcntl
import inspect
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BUILD = os.environ.get("PETREL_BUILDDIR",
                       os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

# Programs linked into an instance's daemon directory when they are built:
# name -> path relative to the build directory.
PROGRAMS = {
    "master": "master/master",
    "smtpd": "smtpd/smtpd",
    "anvil": "anvil/anvil",
    "qmgr": "qmgr/qmgr",
    "lmtpd": "lmtpd/lmtpd",
    "imapd": "imapd/imapd",
    "pop3d": "pop3d/pop3d",
    "smtp-client": "smtp-client/smtp-client",
    "submission": "submission/submission",
    "echo-daemon": "t/echo-daemon",
    "pickup": "pickup/pickup",
}


# ---------------------------------------------------------------- TAP runner

class Skip(Exception):
    """Raised by skip(): the test is reported as skipped, not failed."""


def skip(reason):
    """End the current test as "ok N - name # SKIP reason"."""
    raise Skip(reason)


def diag(text):
    """Print text as TAP diagnostics ("# " lines)."""
    for line in str(text).rstrip("\n").split("\n"):
        print("# " + line, flush=True)


def instance(**kwargs):
    """Decorator: the test gets a started Instance(**kwargs)."""
    def wrap(fn):
        fn.petrel_instance = kwargs
        return fn
    return wrap


def _tests_of(module_globals):
    """The test_* functions of a module, in file order."""
    fns = [f for n, f in module_globals.items()
           if n.startswith("test_") and inspect.isfunction(f)]
    return sorted(fns, key=lambda f: f.__code__.co_firstlineno)


def _run_one(fn):
    """Run one test; returns (status, detail): "ok", "skip" or "fail"."""
    inst = None
    try:
        if fn.__code__.co_argcount > 0:
            inst = Instance(**getattr(fn, "petrel_instance", {}))
            inst.start()
            fn(inst)
        else:
            fn()
        if inst is not None:
            inst.stop()
            inst = None
        return "ok", None
    except Skip as e:
        return "skip", str(e)
    except BaseException:  # report everything, including SystemExit from a helper
        detail = traceback.format_exc()
        if inst is not None:
            detail += inst.tail()
        return "fail", detail
    finally:
        if inst is not None:
            try:
                inst.stop(check=False)
            except Exception:
                diag("stop failed: " + traceback.format_exc())


def main(tests=None):
    """Run tests (default: the caller's test_* functions), print TAP, exit."""
    if tests is None:
        tests = _tests_of(inspect.stack()[1].frame.f_globals)
    _become_subreaper()
    failed = 0
    for n, fn in enumerate(tests, 1):
        name = fn.__name__[5:] if fn.__name__.startswith("test_") else fn.__name__
        doc = (fn.__doc__ or "").strip().split("\n")[0]
        label = name + (" (" + doc + ")" if doc else "")
        status, detail = _run_one(fn)
        if status == "ok":
            print("ok %d - %s" % (n, label), flush=True)
        elif status == "skip":
            print("ok %d - %s # SKIP %s" % (n, label, detail), flush=True)
        else:
            failed += 1
            print("not ok %d - %s" % (n, label), flush=True)
            diag(detail)
        _reap_orphans()
    print("1..%d" % len(tests), flush=True)
    sys.exit(1 if failed else 0)



def main_shared(inst, tests):
    """Run (name, fn(inst)) pairs against one Instance, started once and
    stopped at the end: for files of many small cases, where an instance
    per test would cost more than the tests."""
    def bind(name, fn):
        def run():
            fn(inst)
        run.__name__ = "test_" + name
        return run
    fns = [bind(name, fn) for name, fn in tests]
    inst.start()
    try:
        main(fns)
    finally:
        inst.stop(check=False)

def _become_subreaper():
    """Orphans of a killed master become our children, so they get reaped
    (and a test can wait for them) instead of lingering as zombies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _reap_orphans():
    """Collect whatever child has exited (subreaper orphans included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# ---------------------------------------------------------- process helpers

def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    _reap_orphans()
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def proc_ppid(pid):
    """The parent pid of pid, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def proc_cmdline(pid):
    """argv of pid as a list ([] when gone)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def wait_for(cond, timeout=20.0, interval=0.05, what="condition"):
    """Poll cond() until it returns a true value (returned); AssertionError
    after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def have_ipv6():
    """Whether this host can listen on ::1."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(ipv6=False):
    """A TCP port free on 127.0.0.1 (and on ::1 when ipv6)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not ipv6:
            return port
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s6.bind(("::1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port found")


def tcp_listening(port):
    """Whether some socket listens on TCP port (from /proc/net/tcp{,6})."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[1].endswith(":%04X" % port) and fields[3] == "0A":
                return True
    return False


def is_root():
    return os.geteuid() == 0


# ------------------------------------------------------------------ TLS

def tls_files(directory=None):
    """(cert.pem, key.pem): a self-signed certificate for mx.example.test,
    localhost and 127.0.0.1, made with certtool once per build directory."""
    directory = directory or os.path.join(BUILD, "t", "tls")
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (os.path.exists(cert) and os.path.exists(key)):
            _make_cert(directory, cert, key)
    return cert, key


def _make_cert(directory, cert, key):
    """certtool: key, then a self-signed certificate; renamed into place."""
    if shutil.which("certtool") is None:
        raise Skip("certtool (gnutls-bin) is not installed")
    tmpl = os.path.join(directory, "template.cfg")
    with open(tmpl, "w") as f:
        f.write('organization = "Petrel test"\ncn = "mx.example.test"\n'
                'dns_name = "mx.example.test"\ndns_name = "localhost"\n'
                'ip_address = "127.0.0.1"\nip_address = "::1"\n'
                'expiration_days = 3650\ntls_www_server\nsigning_key\nencryption_key\n')
    subprocess.run(["certtool", "--generate-privkey", "--key-type=rsa", "--bits=2048",
                    "--outfile", key + ".tmp"], check=True, capture_output=True)
    subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key + ".tmp",
                    "--template", tmpl, "--outfile", cert + ".tmp"],
                   check=True, capture_output=True)
    os.chmod(key + ".tmp", 0o600)
    os.rename(key + ".tmp", key)
    os.rename(cert + ".tmp", cert)


# ------------------------------------------------------------------ Instance

class Instance:
    """One Petrel instance in a temporary directory; see the module doc."""

    def __init__(self, services=None, main_cf=None, master_cf=None, tls=False,
                 unpriv=False, chroot=False, directory=None, ipv6=None,
                 log_file=True, tls_dir=None, env=None):
        # env: extra environment variables for the master (and so its
        # children), e.g. LD_PRELOAD for a fault-injection shim.
        self.env = dict(env or {})
        self.services = dict(services if services is not None
                             else {"echo": "echo-daemon"})
        self.extra_main_cf = list(main_cf or [])
        self.extra_master_cf = list(master_cf or [])
        self.tls = tls
        self.unpriv = unpriv
        self.chroot = chroot
        self.ipv6 = have_ipv6() if ipv6 is None else ipv6
        self.log_file = log_file
        self.keep = os.environ.get("PETREL_KEEP") == "1"
        self.owns_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="petrel-test-")
        # Unprivileged children must be able to reach queue/ and etc/.
        os.chmod(self.dir, 0o755)
        self.etc = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.mail = os.path.join(self.dir, "mail")
        self.libexec = os.path.join(self.dir, "libexec")
        self.maillog = os.path.join(self.dir, "maillog")
        self.stderr_path = os.path.join(self.dir, "master.stderr")
        self.pid_file = os.path.join(self.queue, "pid", "master.pid")
        for d in (self.etc, self.mail, self.libexec):
            os.makedirs(d, exist_ok=True)
        self.ports = {}
        self.mailboxes = []
        self.vmailbox_mapped = False
        self.proc = None
        self.seen_pids = set()
        self.cert_file = self.key_file = None
        if tls:
            self.cert_file, self.key_file = tls_files(tls_dir)
        self.link_programs()
        self.write_config()

    # -- set-up

    def link_programs(self):
        """libexec/NAME -> $PETREL_BUILDDIR/... for each built program
        (links from an earlier build directory are replaced)."""
        for name, rel in PROGRAMS.items():
            src = os.path.join(BUILD, rel)
            dst = os.path.join(self.libexec, name)
            if os.path.islink(dst) and os.readlink(dst) != src:
                os.unlink(dst)
            if os.path.exists(src) and not os.path.lexists(dst):
                os.symlink(src, dst)

    def port(self, name):
        """The TCP port of inet service name."""
        return self.ports[name]

    def _service_line(self, name, spec):
        """One master.cf line for services[name]."""
        if isinstance(spec, str):
            spec = {"command": spec}
        kind = spec.get("type", "inet")
        if kind == "inet":
            if name not in self.ports:
                self.ports[name] = spec.get("port") or free_port(self.ipv6)
            service = str(self.ports[name])
        else:
            service = name
        fields = [service, kind,
                  spec.get("private", "n" if kind == "inet" else "-"),
                  spec.get("unpriv", "-" if self.unpriv else "n"),
                  spec.get("chroot", "-" if self.chroot else "n"),
                  str(spec.get("wakeup", "-")), str(spec.get("maxproc", "-")),
                  spec["command"]]
        for k, v in spec.get("options", {}).items():
            fields += ["-o", "{ %s = %s }" % (k, v) if " " in str(v) else "%s=%s" % (k, v)]
        fields += [str(a) for a in spec.get("args", [])]
        return " ".join(fields)

    def main_cf_lines(self):
        """main.cf as the instance writes it (without extra lines)."""
        interfaces = "127.0.0.1, [::1]" if self.ipv6 else "127.0.0.1"
        lines = [
            "# Generated by t/petrel_test.py and rewritten at each start; for ./dev up,\n"
            "# put your own lines in etc/main.cf.local.",
            "queue_directory = " + self.queue,
            "daemon_directory = " + self.libexec,
            "inet_interfaces = " + interfaces,
            "inet_protocols = " + ("all" if self.ipv6 else "ipv4"),
            "myhostname = mx.example.test",
            "mydestination = localhost",
            "virtual_mailbox_domains = example.test",
            "smtpd_peername_lookup = no",
            "service_throttle_time = 2s",
        ]
        if self.log_file:
            lines.append("maillog_file = " + self.maillog)
        if is_root():
            # The instance does not depend on a "postfix" account existing.
            lines.append("mail_owner = nobody")
        if self.vmailbox_mapped:
            lines.append("virtual_mailbox_maps = lmdb:" + os.path.join(self.etc, "vmailbox"))
        if self.tls:
            lines += ["smtpd_tls_cert_file = " + self.cert_file,
                      "smtpd_tls_key_file = " + self.key_file,
                      "smtpd_tls_security_level = may"]
        # No aliases database until newaliases exists: local recipients are
        # then checked against the password file only.
        lines.append("alias_maps =")
        return lines

    def write_config(self):
        """(Re)write etc/main.cf and etc/master.cf from the settings."""
        lines = self.main_cf_lines() + self.extra_main_cf
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        master = ["# Written by t/petrel_test.py."]
        master += [self._service_line(n, s) for n, s in self.services.items()]
        master += self.extra_master_cf
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write("\n".join(master) + "\n")

    def set_main_cf(self, *lines):
        """Replace the extra main.cf lines and rewrite the files."""
        self.extra_main_cf = list(lines)
        self.write_config()

    def set_passwd_users(self, addresses):
        """etc/users: a Dovecot passwd-file line per address (password
        "secret", this process's uid and gid, home mail/DOMAIN/LOCAL), the
        addresses as virtual mailboxes; returns the main.cf lines lmtpd
        needs (lmtpd_user_database, mail_location) for set_main_cf()."""
        users = os.path.join(self.etc, "users")
        uid, gid = os.getuid(), os.getgid()
        with open(users, "w") as f:
            for address in addresses:
                local, _, domain = address.partition("@")
                home = os.path.join(self.mail, domain, local)
                f.write("%s:{PLAIN}secret:%d:%d::%s::\n" % (address, uid, gid, home))
        self.set_virtual_mailboxes([(a, None) for a in addresses])
        return ["lmtpd_user_database = " + users, "mail_location = maildir:~/Maildir"]

    def maildir_files(self, address, subs=("new", "cur")):
        """Paths of the files in the Maildir subdirectories subs of a user
        set up by set_passwd_users (home mail/DOMAIN/LOCAL), sorted."""
        local, _, domain = address.partition("@")
        out = []
        for sub in subs:
            d = os.path.join(self.mail, domain, local, "Maildir", sub)
            if os.path.isdir(d):
                out += sorted(os.path.join(d, f) for f in os.listdir(d))
        return out

    def with_token(self, address, token):
        """(path, bytes) of the user's messages (new/ and cur/) that hold
        the line "X-Token: token"."""
        rx = re.compile(rb"^X-Token: " + re.escape(token.encode()) + rb"$", re.M)
        out = []
        for path in self.maildir_files(address):
            with open(path, "rb") as f:
                data = f.read()
            if rx.search(data):
                out.append((path, data))
        return out

    def add_virtual_mailbox(self, address, mailbox=None):
        """Add address to etc/vmailbox (mailbox default: domain/local/)."""
        self.set_virtual_mailboxes(self.mailboxes + [(address, mailbox)])

    def set_virtual_mailboxes(self, entries):
        """Write etc/vmailbox from (address, mailbox or None) pairs and run
        postmap on it when postmap is built; main.cf then gets
        virtual_mailbox_maps = lmdb:etc/vmailbox. Rewrites the config
        (reload() to apply it to a running instance)."""
        self.mailboxes = list(entries)
        path = os.path.join(self.etc, "vmailbox")
        with open(path, "w") as f:
            for address, mailbox in self.mailboxes:
                if mailbox is None:
                    local, _, domain = address.partition("@")
                    mailbox = "%s/%s/" % (domain, local)
                f.write("%s %s\n" % (address, mailbox))
        postmap = os.path.join(BUILD, "cli", "postmap")
        if os.path.exists(postmap):
            subprocess.run([postmap, "-c", self.etc, "lmdb:" + path], check=True,
                           capture_output=True)
            self.vmailbox_mapped = True
        self.write_config()

    # -- running

    def start(self, timeout=30.0, prefix=None, foreground=True):
        """Run master -d (stderr to master.stderr) and wait until it has
        bound its listeners (it logs "daemon started"). prefix: argv run
        in front of the master, which it must exec (keeping the pid), e.g.
        a mount namespace; foreground=False: no -d, so that with
        log_file=False the master and its children log to syslog."""
        master = os.path.join(self.libexec, "master")
        if not os.path.exists(master):
            raise Skip("master is not built")
        before = self.log().count("daemon started")
        err = open(self.stderr_path, "ab")
        env = dict(os.environ, **self.env) if self.env else None
        argv = [master, "-c", self.etc] + (["-d"] if foreground else [])
        self.proc = subprocess.Popen(list(prefix or []) + argv,
                                     stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                     start_new_session=True, env=env)
        err.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("master exited with status %s:\n%s"
                                     % (self.proc.returncode, self.tail()))
            if self.log_file:
                return self.log().count("daemon started") > before
            # Logging to stderr: our pid file, then every inet port listening.
            return (self.master_pid() == self.proc.pid and
                    all(tcp_listening(p) for p in self.ports.values()))
        wait_for(up, timeout, what="master start-up")
        self.seen_pids.add(self.proc.pid)
        return self

    def master_pid(self):
        """The running master's pid (from the pid file), or None."""
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self, check=True, timeout=15.0):
        """SIGTERM the master, wait for it and every child seen, check the
        sanitizer output, remove the directory (unless PETREL_KEEP=1).
        With check=False nothing is raised: leftovers are killed (by PID,
        only processes running from this instance's directory)."""
        try:
            self._stop(timeout)
            if check:
                self.check_sanitizers()
        except Exception:
            self._kill_leftovers()
            if check:
                raise
        finally:
            if self.owns_dir and not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)
            elif self.keep:
                diag("kept instance directory " + self.dir)

    def restart(self, timeout=15.0):
        """Stop the master and its children (keeping the directory), check
        the sanitizer output, and start again."""
        self._stop(timeout)
        self.check_sanitizers()
        self.start()

    def _stop(self, timeout):
        """SIGTERM to the master; wait for it and for its children."""
        pids = set(self.seen_pids) | set(self.all_child_pids())
        pid = self.proc.pid if self.proc is not None else self.master_pid()
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError("master did not stop on SIGTERM")
            finally:
                self.proc = None
        elif pid is not None:
            wait_for(lambda: not pid_alive(pid), timeout, what="master exit")
        wait_for(lambda: not [p for p in pids if pid_alive(p)], timeout,
                 what="children to exit")

    def _kill_leftovers(self):
        """SIGKILL what still runs from this instance (checked by cmdline,
        so a reused pid is never hit)."""
        for p in set(self.seen_pids):
            argv = proc_cmdline(p)
            if pid_alive(p) and argv and (self.dir in " ".join(argv) or
                                          _arg_after(argv, "-c") == self.etc):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass

    def check_sanitizers(self):
        """Fail when a process reported ASan/UBSan/LSan errors on stderr."""
        text = self.stderr()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                       "runtime error:", "panic:"):
            if marker in text:
                raise AssertionError("sanitizer or panic report on stderr:\n" + text[-4000:])

    def kill9(self, pid):
        """SIGKILL one process of this instance."""
        self.seen_pids.add(pid)
        os.kill(pid, signal.SIGKILL)

    def signal_master(self, signo):
        os.kill(self.master_pid(), signo)

    def reload(self, wait=True):
        """SIGHUP the master; wait until it logged the reload."""
        before = self.log().count("reload -- version")
        self.signal_master(signal.SIGHUP)
        if wait:
            wait_for(lambda: self.log().count("reload -- version") > before,
                     what="reload to be logged")

    def all_child_pids(self):
        """Live children of the master."""
        master = self.master_pid() or (self.proc.pid if self.proc else None)
        if master is None:
            return []
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and proc_ppid(int(entry)) == master and pid_alive(int(entry)):
                pids.append(int(entry))
        self.seen_pids.update(pids)
        return sorted(pids)

    def child_pids(self, service=None):
        """Live children of service: a key of services ("smtp"), a
        master.cf service name ("2525", "qmgr") or a command ("smtpd");
        None: all children."""
        pids = self.all_child_pids()
        if service is None:
            return pids
        name = str(self.ports.get(service, service))

        def match(argv):
            return bool(argv) and (_arg_after(argv, "-n") == name or
                                   os.path.basename(argv[0]) == service)
        return [p for p in pids if match(proc_cmdline(p))]

    def connect(self, service, family=socket.AF_INET, timeout=10.0):
        """A socket connected to inet service on 127.0.0.1 (or ::1)."""
        host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((host, self.port(service)))
        return s

    # -- logs

    def log(self):
        """The maillog text so far ("" before the first line)."""
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=20.0, count=1):
        """Wait until the log matches regex pattern count times."""
        rx = re.compile(pattern)
        return wait_for(lambda: len(rx.findall(self.log())) >= count, timeout,
                        what="log line /%s/" % pattern)

    def tail(self, lines=40):
        """The end of the log and stderr, for failure reports."""
        out = "---- maillog (tail) ----\n" + "\n".join(self.log().splitlines()[-lines:])
        err = self.stderr().strip()
        if err:
            out += "\n---- master.stderr (tail) ----\n" + "\n".join(err.splitlines()[-lines:])
        return out + "\n"


def _arg_after(argv, flag):
    """The argument following flag in argv, or None."""
    for i, a in enumerate(argv[:-1]):
        if a == flag:
            return argv[i + 1]
    return None


def user_name():
    """The current user's name."""
    return pwd.getpwuid(os.geteuid()).pw_name
