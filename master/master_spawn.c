/* master_spawn.c: children's birth and death.
 *
 * Every child is fork+exec'd with the descriptors and environment of
 * server/master_proto.h. A child that exits before its first status record
 * (it says AVAIL once initialized) points at a broken command or
 * configuration: its service is throttled (no new children) for
 * service_throttle_time, with Postfix's warnings. Postfix's own rule,
 * "died before its first client", would throttle on the kill of an idle
 * child, which prespawning makes common. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mail/config.h"
#include "master/master.h"
#include "util/alloc.h"
#include "util/events.h"
#include "util/msg.h"

/* master_proc_find: the child with this pid, or NULL. */
struct master_proc *master_proc_find(pid_t pid)
{
	for (struct master_proc *p = master_procs; p != NULL; p = p->next)
		if (p->pid == pid)
			return p;
	return NULL;
}

/* master_unthrottle: the throttle timer expired. */
static void master_unthrottle(void *ctx)
{
	struct master_service *serv = ctx;
	master_throttle_clear(serv);
	master_avail_update(serv, false);
}

/* master_throttle_clear: allow children again. */
void master_throttle_clear(struct master_service *serv)
{
	event_timer_remove(&serv->throttle_timer);
	if (serv->throttled)
		msg_debug("throttle released for command %s", serv->path);
	serv->throttled = false;
}

/* master_throttle: stop creating children of serv for a while. */
static void master_throttle(struct master_service *serv)
{
	if (serv->throttled)
		return;
	serv->throttled = true;
	long long secs = config_time("service_throttle_time");
	unsigned ms = secs <= 0 ? 1000 : secs > 4000000 ? 4000000000u : (unsigned)secs * 1000;
	serv->throttle_timer = event_timer_add(master_loop, ms, master_unthrottle, serv);
	master_avail_update(serv, false);
}

/* master_spawn_fds: in the child, move the status pipe and listeners to
 * their fixed numbers. Sources are first lifted above the targets so that
 * no dup2 clobbers a descriptor still to be moved. */
static void master_spawn_fds(const struct master_service *serv)
{
	int top = MASTER_LISTEN_FD + (int)serv->listen_count;
	int status = fcntl(serv->status_fd[1], F_DUPFD_CLOEXEC, top);
	int lifted[MASTER_LISTEN_MAX];
	if (status < 0)
		msg_fatal("fcntl(F_DUPFD) failed: %m");
	for (unsigned i = 0; i < serv->listen_count; i++)
		if ((lifted[i] = fcntl(serv->listen_fds[i], F_DUPFD_CLOEXEC, top)) < 0)
			msg_fatal("fcntl(F_DUPFD) failed: %m");
	if (dup2(status, MASTER_STATUS_FD) < 0)
		msg_fatal("dup2(status) failed: %m");
	for (unsigned i = 0; i < serv->listen_count; i++)
		if (dup2(lifted[i], MASTER_LISTEN_FD + (int)i) < 0)
			msg_fatal("dup2(listener) failed: %m");
}

/* master_spawn_env: the variables of master_proto.h. */
static void master_spawn_env(const struct master_service *serv, pid_t master_pid)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%u", serv->listen_count);
	setenv(MASTER_ENV_LISTEN_FDS, buf, 1);
	snprintf(buf, sizeof(buf), "%ld", (long)master_pid);
	setenv(MASTER_ENV_MASTER_PID, buf, 1);
	if (master_foreground)
		setenv(MASTER_ENV_LOG_STDERR, "1", 1);
	else
		unsetenv(MASTER_ENV_LOG_STDERR);
}

/* master_spawn_child: the child side, between fork and exec. Nothing here
 * may run the master's exit code: failures end in _exit. */
static void master_spawn_child(const struct master_service *serv, pid_t master_pid)
{
	msg_set_cleanup(NULL);
	event_signal_unblock(master_loop);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	/* The master's death kills us at once (see master_proto.h): an orphan
	 * must never work beside the children of the next master. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != master_pid)
		_exit(1);
	master_spawn_fds(serv);
	master_spawn_env(serv, master_pid);
	execv(serv->path, serv->argv);
	msg_error("execv(%s) failed: %m", serv->path);
	_exit(1);
}

/* master_spawn: start one child of serv, counted as idle. */
void master_spawn(struct master_service *serv)
{
	pid_t master_pid = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		msg_warn("master_spawn: fork: %m -- throttling");
		master_throttle(serv);
		return;
	}
	if (pid == 0)
		master_spawn_child(serv, master_pid);
	msg_debug("spawn command %s; pid %ld", serv->path, (long)pid);
	struct master_proc *proc = xcalloc(1, sizeof(*proc));
	proc->pid = pid;
	proc->serv = serv;
	proc->state = MASTER_STAT_AVAIL;
	proc->next = master_procs;
	master_procs = proc;
	serv->total++;
	serv->avail++;
	serv->children++;
	master_avail_update(serv, false);
	if (serv->wakeup_conditional && !serv->used) {
		serv->used = true;
		master_wakeup_start(serv);
	}
}

/* master_reap_report: the Postfix warnings for an abnormal death. */
static void master_reap_report(const struct master_proc *proc, int status)
{
	const struct master_service *serv = proc->serv;
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		msg_warn("process %s pid %ld exit status %d", serv->path, (long)proc->pid,
			 WEXITSTATUS(status));
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		/* Signals we sent: SIGTERM to stop, SIGHUP at a reload (a child
		 * still starting up dies of it, harmlessly). */
		bool ours = (proc->killed && (sig == SIGTERM || sig == SIGKILL)) ||
			    (proc->retiring && sig == SIGHUP);
		if (!ours)
			msg_warn("process %s pid %ld killed by signal %d", serv->path,
				 (long)proc->pid, sig);
	}
}

/* master_reap_one: forget a dead child and adjust its service. */
static void master_reap_one(struct master_proc *proc, int status)
{
	struct master_service *serv = proc->serv;
	bool normal = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (!normal)
		master_reap_report(proc, status);
	/* Gone before its first status record: a broken command or
	 * configuration, not worth restarting at once. A SIGKILL comes from
	 * outside (an admin, the OOM killer), not from a broken start. */
	bool killed_outside = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
	bool failed_start = !proc->reported && !killed_outside;
	if (failed_start && !proc->killed && !proc->retiring && !serv->throttled &&
	    !serv->removed) {
		msg_warn("%s: bad command startup -- throttling", serv->path);
		master_throttle(serv);
	}
	for (struct master_proc **pp = &master_procs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == proc) {
			*pp = proc->next;
			break;
		}
	}
	serv->children--;
	if (!proc->retiring) {
		serv->total--;
		if (proc->state == MASTER_STAT_AVAIL)
			serv->avail--;
	}
	/* A resident service (qmgr, pickup) has work waiting: a trigger
	 * makes the master start its replacement within a second (or, when
	 * throttled, once the throttle ends), not at the next wakeup. */
	bool restart = !normal && !proc->killed && !proc->retiring && !master_stopping;
	free(proc);
	if (serv->removed) {
		master_service_free_removed(serv);
		return;
	}
	master_avail_update(serv, false);
	if (restart)
		master_wakeup_soon(serv);
}

/* master_reap: SIGCHLD: status records first, then the dead. */
void master_reap(void)
{
	int status;
	pid_t pid;
	master_status_drain();
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (WIFSTOPPED(status))
			continue;
		struct master_proc *proc = master_proc_find(pid);
		if (proc == NULL) {
			msg_warn("master_reap: unknown pid %ld", (long)pid);
			continue;
		}
		master_reap_one(proc, status);
	}
}

/* master_signal_children: signal children, updating the counts. */
void master_signal_children(struct master_service *serv, int signo)
{
	for (struct master_proc *p = master_procs; p != NULL; p = p->next) {
		if (serv != NULL && p->serv != serv)
			continue;
		if (signo == SIGHUP && !p->retiring) {
			p->retiring = true;
			p->serv->total--;
			if (p->state == MASTER_STAT_AVAIL)
				p->serv->avail--;
		}
		if (signo == SIGTERM)
			p->killed = true;
		if (kill(p->pid, signo) < 0 && errno != ESRCH)
			msg_warn("kill(%ld, %d) failed: %m", (long)p->pid, signo);
	}
}

/* master_sleep_ms: a short pause while waiting for children. */
static void master_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* master_stop_children: the shutdown: SIGTERM, wait, SIGKILL. */
void master_stop_children(unsigned timeout_ms)
{
	master_signal_children(NULL, SIGTERM);
	for (unsigned waited = 0; master_procs != NULL; waited += 10) {
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			struct master_proc *proc = master_proc_find(pid);
			if (proc != NULL && !WIFSTOPPED(status))
				master_reap_one(proc, status);
		}
		if (master_procs == NULL)
			break;
		if (waited >= timeout_ms) {
			for (struct master_proc *p = master_procs; p != NULL; p = p->next) {
				msg_warn("process %s pid %ld did not stop -- killing it",
					 p->serv->path, (long)p->pid);
				kill(p->pid, SIGKILL);
			}
			while (master_procs != NULL && (pid = waitpid(-1, &status, 0)) > 0) {
				struct master_proc *proc = master_proc_find(pid);
				if (proc != NULL)
					master_reap_one(proc, status);
			}
			break;
		}
		master_sleep_ms(10);
	}
}
