/* master.c: the Petrel master daemon.
 *
 * SYNOPSIS
 *	master [-c config_dir] [-d] [-t] [-w] [-v]
 *
 * DESCRIPTION
 *	Reads main.cf and master.cf, creates the queue directory layout,
 *	takes queue_directory/pid/master.pid (a lock held for life; a stale
 *	file from a killed master is taken over), binds every listener
 *	itself and runs the service programs, fork+exec'd with the listeners
 *	and a status pipe (server/master_proto.h). It keeps at most maxproc
 *	children per service, starts one ahead when all are busy, restarts
 *	what dies (throttling a service whose children die at start-up),
 *	sends wakeup triggers, re-reads its configuration on SIGHUP (children
 *	finish their connections and are replaced) and stops everything on
 *	SIGTERM.
 *
 *	kill -9 of the master: the kernel kills every child with it
 *	(PR_SET_PDEATHSIG SIGKILL, set in the child before exec and again
 *	after the privilege drop; the closed status pipe is the backstop),
 *	so no orphan works on the queue beside the next master. The next
 *	start takes over the stale pid file (its lock is free), replaces the
 *	stale sockets and fifos, and drops the unfinished incoming/.tmp.*
 *	files; qmgr resumes the queue where it stopped.
 *
 *	-c dir	configuration directory (default: the compiled-in one)
 *	-d	stay in the foreground; log to stderr unless maillog_file
 *	-t	test: exit 0 when no master is running, 1 when one is
 *	-w	wait: a foreground process exits 0 once the daemon is up (its
 *		errors are copied to stderr until then), 1 if it failed
 *	-v	verbose logging (also passed to the children)
 *
 * SECURITY
 *	Started as root in production: listeners and the pid file are
 *	made as root, and children drop to mail_owner and chroot to
 *	queue_directory as master.cf says (server/privs.c). Started as
 *	another user (tests, ./dev up), children keep that user and do not
 *	chroot. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/mail_log.h"
#include "master/master.h"
#include "util/alloc.h"
#include "util/events.h"
#include "util/msg.h"
#include "util/str.h"

#ifndef PETREL_SYSCONFDIR
#define PETREL_SYSCONFDIR "/etc/petrel"
#endif

/* -w gives up on a daemon that is not up in this many seconds. */
#define MASTER_INIT_TIMEOUT 100
/* SIGTERM: children get this long to exit before SIGKILL. */
#define MASTER_STOP_TIMEOUT_MS 5000

struct event_loop *master_loop;
struct master_service *master_services;
struct master_proc *master_procs;
char *master_config_dir;
bool master_foreground;
bool master_is_root;
bool master_stopping;

static int master_pid_fd = -1;

/* master_usage: a bad command line is fatal. */
static void master_usage(void)
{
	msg_fatal("usage: master [-c config_dir] [-d] [-t] [-w] [-v]");
}

/* master_stdio: descriptors 0-2 must be open, or a listener could get one
 * of those numbers and be clobbered; with detach, point them at /dev/null. */
static void master_stdio(bool detach)
{
	for (int fd = 0; fd < 3; fd++) {
		if (!detach && fcntl(fd, F_GETFD) >= 0)
			continue;
		int nul = open("/dev/null", O_RDWR);
		if (nul < 0)
			msg_fatal("open(/dev/null) failed: %m");
		if (nul != fd) {
			if (dup2(nul, fd) < 0)
				msg_fatal("dup2(/dev/null) failed: %m");
			close(nul);
		}
	}
}


/* master_pid_path: the pid file, absolute, for messages. */
static const char *master_pid_path(void)
{
	static char path[PATH_MAX];
	if (!str_format(path, sizeof(path), "%s/%s", config_str("queue_directory"), MASTER_PID_FILE))
		msg_fatal("queue_directory is too long");
	return path;
}

/* master_test: -t: 0 when no master holds the pid file lock. */
static int master_test(void)
{
	int fd = open(master_pid_path(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int running = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
	close(fd);
	return running;
}

/* master_pid_lock: take the pid file for life; a file whose lock is free
 * is stale (its master died) and is simply taken over. */
static void master_pid_lock(void)
{
	int fd = open(MASTER_PID_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		msg_fatal("open(%s) failed: %m", master_pid_path());
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	if (fcntl(fd, F_SETLK, &fl) < 0) {
		if (errno != EAGAIN && errno != EACCES)
			msg_fatal("lock %s failed: %m", master_pid_path());
		fl.l_type = F_WRLCK;
		long holder = fcntl(fd, F_GETLK, &fl) == 0 ? (long)fl.l_pid : 0;
		msg_fatal("the Petrel mail system is already running (master pid %ld)", holder);
	}
	/* Postfix's format: the pid right-aligned in a fixed-width field. */
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%*lu\n", (int)sizeof(unsigned long) * 4,
			 (unsigned long)getpid());
	if (ftruncate(fd, 0) < 0 || n <= 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		msg_fatal("cannot update lock file %s: %m", master_pid_path());
	master_pid_fd = fd;
}

/* master_pid_unlock: remove the pid file (still holding the lock, so no
 * new master can be confused by it), then let go. */
static void master_pid_unlock(void)
{
	if (master_pid_fd < 0)
		return;
	if (unlink(MASTER_PID_FILE) < 0 && errno != ENOENT)
		msg_warn("unlink(%s) failed: %m", master_pid_path());
	close(master_pid_fd);
	master_pid_fd = -1;
}

/* master_fatal_cleanup: msg_fatal's hook: the pid file goes with us; the
 * children notice the closed status pipes by themselves. */
static void master_fatal_cleanup(void)
{
	master_pid_unlock();
}

/* master_monitor: -w: the caller's process waits here for the daemon (a
 * child) to report that it is up; returns the daemon's end of the pipe. */
static int master_monitor(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		msg_fatal("pipe2() failed: %m");
	pid_t pid = fork();
	if (pid < 0)
		msg_fatal("fork() failed: %m");
	if (pid == 0) {
		close(p[0]);
		return p[1];
	}
	close(p[1]);
	struct pollfd pfd = { .fd = p[0], .events = POLLIN };
	char c;
	int ready = 0;
	if (poll(&pfd, 1, MASTER_INIT_TIMEOUT * 1000) > 0 && read(p[0], &c, 1) == 1)
		ready = 1;
	if (!ready)
		msg_warn("mail system startup failed");
	exit(ready ? 0 : 1);
}

/* master_load_cf: master.cf in the configuration directory. */
static struct master_cf *master_load_cf(const char **error_r)
{
	struct str path = STR_INIT;
	struct master_cf *cf = NULL;
	str_printf(&path, "%s/master.cf", master_config_dir);
	long long limit = config_int("default_process_limit");
	unsigned def = limit > MASTER_CF_MAXPROC_MAX ? MASTER_CF_MAXPROC_MAX : (unsigned)limit;
	if (master_cf_load(str_c(&path), def, &cf, error_r) < 0)
		cf = NULL;
	str_deinit(&path);
	return cf;
}

/* master_reload: SIGHUP: re-read main.cf and master.cf and apply them;
 * a configuration that does not load leaves the services as they are. */
static void master_reload(void)
{
	const char *error;
	msg_info("reload -- version %s, configuration %s", config_str("mail_version"),
		 master_config_dir);
	if (!config_load(master_config_dir, false, &error)) {
		msg_error("%s -- configuration not reloaded", error);
		return;
	}
	mail_log_init(master_foreground);
	struct master_cf *cf = master_load_cf(&error);
	if (cf == NULL) {
		msg_error("%s -- services not reloaded", error);
		return;
	}
	if (master_services_apply(cf, true, &error) < 0)
		msg_error("%s -- services not reloaded", error);
	master_cf_free(&cf);
}

/* master_signal: SIGHUP reloads, SIGCHLD reaps, SIGTERM/SIGINT stop. */
static void master_signal(void *ctx, int signo)
{
	switch (signo) {
	case SIGHUP:
		master_reload();
		break;
	case SIGCHLD:
		master_reap();
		break;
	default:
		msg_info("terminating on signal %d", signo);
		master_stopping = true;
		event_loop_stop(master_loop);
		break;
	}
}

/* master_options: the command line; returns -t and -w. */
static void master_options(int argc, char **argv, const char **dir, bool *test, bool *wait)
{
	int ch;
	while ((ch = getopt(argc, argv, "c:dtvw")) != -1) {
		switch (ch) {
		case 'c':
			*dir = optarg;
			break;
		case 'd':
			master_foreground = true;
			break;
		case 't':
			*test = true;
			break;
		case 'v':
			msg_verbose++;
			break;
		case 'w':
			*wait = true;
			break;
		default:
			master_usage();
		}
	}
	if (optind != argc)
		master_usage();
	if (*test && *wait)
		msg_fatal("the -t and -w options cannot be used together");
}

/* master_init: configuration, queue directory, pid file, event loop. */
static void master_init(const char *dir)
{
	const char *error;
	char real[PATH_MAX];
	if (realpath(dir, real) == NULL)
		msg_fatal("configuration directory %s: %m", dir);
	master_config_dir = xstrdup(real);
	const char *queue_dir = config_str("queue_directory");
	if (queue_dir[0] != '/')
		msg_fatal("queue_directory must be an absolute path: %s", queue_dir);
	master_dirs_create(queue_dir);
	if (chdir(queue_dir) < 0)
		msg_fatal("chdir(%s) failed: %m", queue_dir);
	master_pid_lock();
	master_dirs_clean_temp(queue_dir);
	msg_set_cleanup(master_fatal_cleanup);
	master_loop = event_loop_create();
	signal(SIGPIPE, SIG_IGN);
	event_signal_add(master_loop, SIGHUP, master_signal, NULL);
	event_signal_add(master_loop, SIGCHLD, master_signal, NULL);
	event_signal_add(master_loop, SIGTERM, master_signal, NULL);
	event_signal_add(master_loop, SIGINT, master_signal, NULL);
	struct master_cf *cf = master_load_cf(&error);
	if (cf == NULL)
		msg_fatal("%s", error);
	if (master_services_apply(cf, false, &error) < 0)
		msg_fatal("%s", error);
	master_cf_free(&cf);
}

/* master_shutdown: after SIGTERM: children, listeners, pid file. */
static void master_shutdown(void)
{
	master_stop_children(MASTER_STOP_TIMEOUT_MS);
	master_services_free();
	event_loop_free(&master_loop);
	free(master_config_dir);
	master_config_dir = NULL;
	/* Last: once the lock is free, "petrel start" may run a new master. */
	master_pid_unlock();
	config_deinit();
}

/* main: set up, start the services, run until SIGTERM. */
int main(int argc, char **argv)
{
	const char *dir = PETREL_SYSCONFDIR, *error;
	bool test = false, wait = false;
	int monitor_fd = -1;

	msg_init("master");
	umask(022);
	if (getenv("MAIL_CONFIG") != NULL)
		dir = getenv("MAIL_CONFIG");
	master_options(argc, argv, &dir, &test, &wait);
	master_is_root = geteuid() == 0;
	if (!config_load(dir, false, &error))
		msg_fatal("%s", error);
	if (test)
		return master_test();
	master_stdio(false);
	mail_log_init(master_foreground);
	if (!master_foreground) {
		/* Until the daemon is up, its errors also reach the terminal. */
		msg_also_stderr(true);
		if (wait)
			monitor_fd = master_monitor();
		/* A new session, away from the terminal; a process group
		 * leader (started by a job-control shell) cannot, and stays. */
		if (setsid() < 0 && getsid(0) != getpid())
			msg_debug("setsid() failed: %m -- staying in the caller's session");
	}
	master_init(dir);
	msg_also_stderr(false);
	msg_info("daemon started -- version %s, configuration %s", config_str("mail_version"),
		 master_config_dir);
	if (!master_is_root)
		msg_debug("not running as root: children keep uid %ld and do not chroot",
			  (long)getuid());
	if (monitor_fd >= 0) {
		if (write(monitor_fd, "", 1) != 1)
			msg_warn("cannot notify the waiting process: %m");
		close(monitor_fd);
	}
	if (!master_foreground)
		master_stdio(true);
	master_services_start();
	event_loop_run(master_loop);
	master_shutdown();
	return 0;
}
