/* multi_server.c: the daemon skeleton; see multi_server.h for the life of
 * a process and server/master_proto.h for what the master hands over. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/mail_log.h"
#include "server/master_proto.h"
#include "server/multi_server.h"
#include "server/privs.h"
#include "util/alloc.h"
#include "util/events.h"
#include "util/msg.h"

#ifndef PETREL_SYSCONFDIR
#define PETREL_SYSCONFDIR "/etc/petrel"
#endif

/* Connections taken per readiness event; the rest wait for the next round
 * (the listener is level-triggered), so one busy port cannot starve io. */
#define MULTI_SERVER_ACCEPT_BATCH 64
/* After EMFILE and friends, stop accepting for this long. */
#define MULTI_SERVER_ACCEPT_PAUSE_MS 1000
#define MULTI_SERVER_OVERRIDES_MAX 256

struct multi_server_args {
	const char *config_dir;
	const char *service_name;
	const char *service_type;
	const char *overrides[MULTI_SERVER_OVERRIDES_MAX];
	unsigned override_count;
	bool unpriv;
	bool chroot;
	char *const *rest;
};

static struct multi_server {
	const struct multi_server_ops *ops;
	void *ctx;
	struct event_loop *loop;
	struct multi_server_args args;
	struct multi_server_listener listeners[MASTER_LISTEN_MAX];
	struct event_io *listen_io[MASTER_LISTEN_MAX];
	unsigned listen_count;
	int status_fd;
	struct event_io *status_io;
	enum master_stat reported; /* 0 until the first record */
	struct event_timer *idle_timer;
	struct event_timer *pause_timer;
	unsigned clients;
	unsigned long long use_count;
	long long max_use;
	long long max_idle;
	bool draining;  /* no more accepts; exit when the clients are done */
	bool exit_now;  /* leave the loop at once */
} ms = { .status_fd = -1 };

/* multi_server_loop: the loop the services add their io to. */
struct event_loop *multi_server_loop(void)
{
	return ms.loop;
}

/* multi_server_service_name: -n as the master passed it. */
const char *multi_server_service_name(void)
{
	return ms.args.service_name;
}

/* multi_server_service_type: -t as the master passed it. */
const char *multi_server_service_type(void)
{
	return ms.args.service_type;
}

/* multi_server_args: master.cf arguments after the options. */
char *const *multi_server_args(void)
{
	return ms.args.rest;
}

/* multi_server_clients: connections the service owns now. */
unsigned multi_server_clients(void)
{
	return ms.clients;
}

/* multi_server_draining: no more accepts in this process. */
bool multi_server_draining(void)
{
	return ms.draining;
}

/* multi_server_queue_dir: the queue directory as this process sees it:
 * "/" inside the chroot (which is queue_directory), else the configured
 * path. Valid after pre_init. */
const char *multi_server_queue_dir(void)
{
	return ms.args.chroot ? "/" : config_str("queue_directory");
}

/* multi_server_usage: a bad command line is fatal: only the master runs us. */
static void multi_server_usage(const char *program)
{
	msg_fatal("usage: %s -c config_dir -n service -t type [-o name=value]... [-u] [-r] [-v]",
		  program);
}

/* multi_server_parse_args: the command line of master_proto.h. */
static void multi_server_parse_args(int argc, char **argv, const char *program)
{
	struct multi_server_args *a = &ms.args;
	int ch;
	a->config_dir = PETREL_SYSCONFDIR;
	a->service_name = program;
	a->service_type = MASTER_TYPE_UNIX;
	/* '+': stop at the first non-option; the rest are master.cf args. */
	while ((ch = getopt(argc, argv, "+c:n:t:o:urv")) != -1) {
		switch (ch) {
		case 'c':
			a->config_dir = optarg;
			break;
		case 'n':
			a->service_name = optarg;
			break;
		case 't':
			a->service_type = optarg;
			break;
		case 'o':
			if (a->override_count >= MULTI_SERVER_OVERRIDES_MAX)
				msg_fatal("more than %d -o options", MULTI_SERVER_OVERRIDES_MAX);
			a->overrides[a->override_count++] = optarg;
			break;
		case 'u':
			a->unpriv = true;
			break;
		case 'r':
			a->chroot = true;
			break;
		case 'v':
			msg_verbose++;
			break;
		default:
			multi_server_usage(program);
		}
	}
	a->rest = argv + optind;
}

/* multi_server_config: main.cf, then every -o on top of it. */
static void multi_server_config(void)
{
	const char *error;
	if (!config_load(ms.args.config_dir, false, &error))
		msg_fatal("%s", error);
	for (unsigned i = 0; i < ms.args.override_count; i++) {
		const char *o = ms.args.overrides[i];
		const char *eq = strchr(o, '=');
		if (eq == NULL || eq == o)
			msg_fatal("-o %s: want name=value", o);
		char *name = xstrndup(o, (size_t)(eq - o));
		bool ok = config_override(name, eq + 1, &error);
		free(name);
		if (!ok)
			msg_fatal("-o %s: %s", o, error);
	}
	ms.max_use = ms.ops->resident ? 0 : config_int("max_use");
	ms.max_idle = ms.ops->resident ? 0 : config_time("max_idle");
}


/* multi_server_listeners: look at what the master passed, fail closed on
 * anything unexpected. */
static void multi_server_listeners(void)
{
	const char *env = getenv(MASTER_ENV_LISTEN_FDS);
	if (env == NULL)
		msg_fatal("%s is not set: this program is started by master(8)",
			  MASTER_ENV_LISTEN_FDS);
	char *end;
	errno = 0;
	long n = strtol(env, &end, 10);
	if (*env == '\0' || *end != '\0' || errno != 0 || n < 0 || n > MASTER_LISTEN_MAX)
		msg_fatal("bad %s value: \"%s\"", MASTER_ENV_LISTEN_FDS, env);
	ms.listen_count = (unsigned)n;
	for (unsigned i = 0; i < ms.listen_count; i++) {
		struct multi_server_listener *l = &ms.listeners[i];
		struct stat st;
		l->fd = MASTER_LISTEN_FD + (int)i;
		l->index = i;
		if (fstat(l->fd, &st) < 0)
			msg_fatal("listener %u (fd %d): fstat failed: %m", i, l->fd);
		if (S_ISFIFO(st.st_mode)) {
			l->family = -1;
			l->socktype = 0;
		} else if (S_ISSOCK(st.st_mode)) {
			socklen_t len = sizeof(l->socktype);
			if (getsockopt(l->fd, SOL_SOCKET, SO_TYPE, &l->socktype, &len) < 0)
				msg_fatal("getsockopt(fd %d, SO_TYPE) failed: %m", l->fd);
			l->addrlen = sizeof(l->addr);
			if (getsockname(l->fd, (struct sockaddr *)&l->addr, &l->addrlen) < 0)
				msg_fatal("getsockname(fd %d) failed: %m", l->fd);
			l->family = l->addr.ss_family;
		} else {
			msg_fatal("listener %u (fd %d) is neither a socket nor a fifo", i, l->fd);
		}
		/* Our own children, if any, must not inherit it. */
		if (fcntl(l->fd, F_SETFD, FD_CLOEXEC) < 0)
			msg_fatal("fcntl(fd %d, FD_CLOEXEC) failed: %m", l->fd);
	}
	struct stat st;
	if (fstat(MASTER_STATUS_FD, &st) == 0 && S_ISFIFO(st.st_mode)) {
		ms.status_fd = MASTER_STATUS_FD;
		if (fcntl(ms.status_fd, F_SETFD, FD_CLOEXEC) < 0)
			msg_fatal("fcntl(fd %d, FD_CLOEXEC) failed: %m", ms.status_fd);
	} else {
		msg_fatal("no status pipe on fd %d: this program is started by master(8)",
			  MASTER_STATUS_FD);
	}
}

/* multi_server_stop: leave the loop at the end of this round. */
static void multi_server_stop(void)
{
	ms.exit_now = true;
	event_loop_stop(ms.loop);
}

/* multi_server_status: tell the master our state, once per change. A
 * failed write means the master is gone. */
static void multi_server_status(enum master_stat st)
{
	if (ms.status_fd < 0 || ms.reported == st)
		return;
	struct master_status rec = { MASTER_STATUS_MAGIC, (int32_t)getpid(), (int32_t)st };
	ssize_t n;
	do {
		n = write(ms.status_fd, &rec, sizeof(rec));
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(rec)) {
		msg_debug("master status write failed: %m -- exiting");
		multi_server_stop();
		return;
	}
	ms.reported = st;
}

/* multi_server_check_exit: draining and no clients left: done. */
static void multi_server_check_exit(void)
{
	if (ms.draining && ms.clients == 0)
		event_loop_stop(ms.loop);
}

/* multi_server_drain: stop accepting for good; the master can start a
 * replacement at once. */
void multi_server_drain(const char *why)
{
	if (ms.draining)
		return;
	ms.draining = true;
	msg_debug("%s: no more clients, %u in progress", why, ms.clients);
	for (unsigned i = 0; i < ms.listen_count; i++) {
		if (ms.listeners[i].fd < 0)
			continue;
		event_io_remove(&ms.listen_io[i]);
		close(ms.listeners[i].fd);
		ms.listeners[i].fd = -1;
	}
	event_timer_remove(&ms.idle_timer);
	event_timer_remove(&ms.pause_timer);
	multi_server_status(MASTER_STAT_EXITING);
	multi_server_check_exit();
}

static void multi_server_accept_event(void *ctx, int fd, unsigned events);

/* multi_server_listen: (re)start watching the stream listeners. */
static void multi_server_listen(bool on)
{
	for (unsigned i = 0; i < ms.listen_count; i++) {
		struct multi_server_listener *l = &ms.listeners[i];
		if (l->fd < 0 || (l->socktype != SOCK_STREAM && ms.ops->trigger == NULL))
			continue;
		if (on && ms.listen_io[i] == NULL)
			ms.listen_io[i] = event_io_add(ms.loop, l->fd, EVENT_READ,
						       multi_server_accept_event, l);
		else if (!on)
			event_io_remove(&ms.listen_io[i]);
	}
}

/* multi_server_unpause: accept again after a resource error. */
static void multi_server_unpause(void *ctx)
{
	event_timer_remove(&ms.pause_timer);
	if (!ms.draining)
		multi_server_listen(true);
}

/* multi_server_idle: max_idle seconds without a client. */
static void multi_server_idle(void *ctx)
{
	if (ms.clients == 0)
		multi_server_drain("idle timeout");
}

/* multi_server_idle_arm: start (or restart) the idle clock. */
static void multi_server_idle_arm(void)
{
	if (ms.max_idle <= 0 || ms.draining)
		return;
	unsigned ms_wait = ms.max_idle > UINT_MAX / 1000 ? UINT_MAX : (unsigned)ms.max_idle * 1000;
	if (ms.idle_timer == NULL)
		ms.idle_timer = event_timer_add(ms.loop, ms_wait, multi_server_idle, NULL);
	else
		event_timer_reset(ms.idle_timer, ms_wait);
}

/* multi_server_accept_error: false when accepting should stop for now. */
static bool multi_server_accept_error(const struct multi_server_listener *l)
{
	switch (errno) {
	case EINTR:
	case ECONNABORTED:
	case EPROTO:
	case EPERM:
		return true;
	case EAGAIN:
		return false;
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		msg_warn("accept() on listener %u failed: %m -- pausing", l->index);
		multi_server_listen(false);
		if (ms.pause_timer == NULL)
			ms.pause_timer = event_timer_add(ms.loop, MULTI_SERVER_ACCEPT_PAUSE_MS,
							 multi_server_unpause, NULL);
		return false;
	default:
		msg_warn("accept() on listener %u failed: %m", l->index);
		return false;
	}
}

/* multi_server_accept_event: take what is pending on one listener. */
static void multi_server_accept_event(void *ctx, int fd, unsigned events)
{
	struct multi_server_listener *l = ctx;
	if (l->socktype != SOCK_STREAM) {
		ms.ops->trigger(ms.ctx, l);
		return;
	}
	for (int i = 0; i < MULTI_SERVER_ACCEPT_BATCH && !ms.draining && !ms.exit_now; i++) {
		struct sockaddr_storage peer;
		socklen_t peerlen = sizeof(peer);
		int cfd = accept4(fd, (struct sockaddr *)&peer, &peerlen,
				  SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (multi_server_accept_error(l))
				continue;
			break;
		}
		ms.clients++;
		ms.use_count++;
		multi_server_status(MASTER_STAT_BUSY);
		if (ms.idle_timer != NULL)
			event_timer_remove(&ms.idle_timer);
		if (ms.max_use > 0 && ms.use_count >= (unsigned long long)ms.max_use)
			multi_server_drain("max_use reached");
		ms.ops->accept(ms.ctx, cfd, (struct sockaddr *)&peer, peerlen, l);
	}
}

/* multi_server_disconnect: one client less; idle or done? */
void multi_server_disconnect(void)
{
	if (ms.clients == 0)
		msg_panic("multi_server_disconnect: no client connected");
	if (--ms.clients > 0)
		return;
	if (!ms.draining && !ms.exit_now) {
		multi_server_status(MASTER_STAT_AVAIL);
		multi_server_idle_arm();
	}
	multi_server_check_exit();
}

/* multi_server_master_gone: our status pipe lost its reader. */
static void multi_server_master_gone(void *ctx, int fd, unsigned events)
{
	if ((events & EVENT_ERROR) == 0)
		return;
	msg_debug("master disconnect -- exiting");
	event_io_remove(&ms.status_io);
	multi_server_stop();
}

/* multi_server_signal: SIGHUP drains, SIGTERM/SIGINT leave at once. */
static void multi_server_signal(void *ctx, int signo)
{
	if (signo == SIGHUP)
		multi_server_drain("reload");
	else
		multi_server_stop();
}

/* multi_server_parent_watch: die with the master even if the pipe trick
 * fails (PR_SET_PDEATHSIG is cleared by the uid change, so it is set
 * after the privilege drop). SIGKILL, not SIGTERM: an orphan that takes
 * its time to finish (sessions in progress, a leak check at exit) would
 * still be working on the queue, or holding a port, when the next master
 * starts; every step of the mail path survives kill -9 anyway. */
static void multi_server_parent_watch(void)
{
	const char *env = getenv(MASTER_ENV_MASTER_PID);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		msg_warn("prctl(PR_SET_PDEATHSIG) failed: %m");
	if (env != NULL && atol(env) > 0 && getppid() != (pid_t)atol(env))
		msg_fatal("master (pid %s) is gone -- exiting", env);
}

/* multi_server_privileges: the drop the master asked for, or none. */
static void multi_server_privileges(void)
{
	const char *user = ms.args.unpriv ? config_str("mail_owner") : NULL;
	const char *root = ms.args.chroot ? config_str("queue_directory") : NULL;
	privs_drop(user, root);
}

/* multi_server_setup_loop: the loop, signals, and the master channel. */
static void multi_server_setup_loop(void)
{
	ms.loop = event_loop_create();
	signal(SIGPIPE, SIG_IGN);
	event_signal_add(ms.loop, SIGHUP, multi_server_signal, NULL);
	event_signal_add(ms.loop, SIGTERM, multi_server_signal, NULL);
	event_signal_add(ms.loop, SIGINT, multi_server_signal, NULL);
	ms.status_io = event_io_add(ms.loop, ms.status_fd, 0, multi_server_master_gone, NULL);
}

/* multi_server_cleanup: what the skeleton itself holds. */
static void multi_server_cleanup(void)
{
	multi_server_listen(false);
	for (unsigned i = 0; i < ms.listen_count; i++)
		if (ms.listeners[i].fd >= 0) {
			close(ms.listeners[i].fd);
			ms.listeners[i].fd = -1;
		}
	event_io_remove(&ms.status_io);
	event_timer_remove(&ms.idle_timer);
	event_timer_remove(&ms.pause_timer);
	event_loop_free(&ms.loop);
}

/* multi_server_main: the whole life of a daemon process. */
int multi_server_main(int argc, char **argv, const char *program_name,
		      const struct multi_server_ops *ops, void *ctx)
{
	if (ops == NULL || ops->accept == NULL)
		msg_panic("multi_server_main: ops->accept is required");
	msg_init(program_name);
	/* Until the configuration says otherwise: stderr under "master -d"
	 * or by hand, syslog under a detached master. */
	if (getenv(MASTER_ENV_LISTEN_FDS) != NULL && getenv(MASTER_ENV_LOG_STDERR) == NULL)
		msg_set_target(MSG_TARGET_SYSLOG);
	ms.ops = ops;
	ms.ctx = ctx;
	multi_server_parse_args(argc, argv, program_name);
	multi_server_config();
	mail_log_init(getenv(MASTER_ENV_LOG_STDERR) != NULL);
	multi_server_listeners();
	multi_server_setup_loop();
	msg_debug("starting service %s type %s with %u listeners", ms.args.service_name,
		  ms.args.service_type, ms.listen_count);
	if (ops->pre_init != NULL)
		ops->pre_init(ctx);
	multi_server_privileges();
	multi_server_parent_watch();
	if (ops->post_init != NULL)
		ops->post_init(ctx);
	multi_server_listen(true);
	multi_server_idle_arm();
	/* The first record: start-up worked (see master_proto.h). */
	multi_server_status(MASTER_STAT_AVAIL);
	if (!ms.exit_now)
		event_loop_run(ms.loop);
	/* Always said before exiting: an exit without it looks like a
	 * failed start to the master. */
	multi_server_status(MASTER_STAT_EXITING);
	if (ops->pre_exit != NULL)
		ops->pre_exit(ctx);
	multi_server_cleanup();
	return 0;
}
