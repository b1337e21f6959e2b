/* master_avail.c: what the children say, and when to start another one.
 *
 * Each service has one status pipe; its children write struct
 * master_status records to it (server/master_proto.h). The policy, after
 * Postfix's master: while no counted child of a service is idle, the
 * limit allows and the service is not throttled, the master watches the
 * service's listeners and starts a child when a client shows up. On top of
 * that, when a child reports BUSY and none is left idle, a new one is
 * started at once ("prespawn"), so the next client does not wait for an
 * exec. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "master/master.h"
#include "util/events.h"
#include "util/msg.h"

/* Records read per wakeup; the pipe stays readable for the rest. */
#define MASTER_STATUS_BATCH 256

static void master_status_event(void *ctx, int fd, unsigned events);
static void master_avail_event(void *ctx, int fd, unsigned events);

/* master_status_open: the service's status pipe, read by the loop. */
int master_status_open(struct master_service *serv, const char **error_r)
{
	static char error[256];
	if (pipe2(serv->status_fd, O_CLOEXEC) < 0) {
		snprintf(error, sizeof(error), "pipe2() failed: %s", strerror(errno));
		*error_r = error;
		return -1;
	}
	/* Only the master's end: children write with blocking writes. */
	if (fcntl(serv->status_fd[0], F_SETFL, O_NONBLOCK) < 0)
		msg_fatal("fcntl(O_NONBLOCK) on status pipe failed: %m");
	serv->status_io = event_io_add(master_loop, serv->status_fd[0], EVENT_READ,
				       master_status_event, serv);
	return 0;
}

/* master_status_close: both ends, when the service is freed. */
void master_status_close(struct master_service *serv)
{
	event_io_remove(&serv->status_io);
	for (int i = 0; i < 2; i++) {
		if (serv->status_fd[i] >= 0)
			close(serv->status_fd[i]);
		serv->status_fd[i] = -1;
	}
}

/* master_avail_limit_ok: room for one more counted child. */
static bool master_avail_limit_ok(const struct master_service *serv)
{
	return serv->maxproc == 0 || serv->total < serv->maxproc;
}

/* master_avail_can_spawn: a child may be started now. */
static bool master_avail_can_spawn(const struct master_service *serv)
{
	return !master_stopping && !serv->throttled && !serv->removed && serv->listen_count > 0 &&
	       serv->avail == 0 && master_avail_limit_ok(serv);
}

/* master_avail_stop: stop watching the listeners. */
void master_avail_stop(struct master_service *serv)
{
	for (unsigned i = 0; i < MASTER_LISTEN_MAX; i++)
		event_io_remove(&serv->listen_io[i]);
	serv->listening = false;
}

/* master_avail_update: apply the creation policy after any change. */
void master_avail_update(struct master_service *serv, bool prespawn)
{
	if (prespawn && master_avail_can_spawn(serv))
		master_spawn(serv);
	bool want = master_avail_can_spawn(serv);
	if (want && !serv->listening) {
		for (unsigned i = 0; i < serv->listen_count; i++)
			serv->listen_io[i] = event_io_add(master_loop, serv->listen_fds[i],
							  EVENT_READ, master_avail_event, serv);
		serv->listening = true;
		msg_debug("service %s: watching for clients (total %u, avail %u)", serv->name,
			  serv->total, serv->avail);
	} else if (!want && serv->listening) {
		master_avail_stop(serv);
	}
}

/* master_avail_event: a client is waiting and no child is idle. */
static void master_avail_event(void *ctx, int fd, unsigned events)
{
	struct master_service *serv = ctx;
	if (master_avail_can_spawn(serv))
		master_spawn(serv);
	master_avail_update(serv, false);
}

/* master_status_apply: one child's new state, counted. */
static void master_status_apply(struct master_proc *proc, enum master_stat st)
{
	struct master_service *serv = proc->serv;
	enum master_stat old = proc->state;
	if (old == st || old == MASTER_STAT_EXITING)
		return;
	proc->state = st;
	if (st == MASTER_STAT_BUSY) {
		proc->use_count++;
		if (!serv->used) {
			serv->used = true;
			master_wakeup_start(serv);
		}
	}
	if (proc->retiring)
		return;
	if (old == MASTER_STAT_AVAIL)
		serv->avail--;
	if (st == MASTER_STAT_AVAIL)
		serv->avail++;
	master_avail_update(serv, st != MASTER_STAT_AVAIL);
}

/* master_status_record: check and apply one record. */
static void master_status_record(struct master_service *serv, const struct master_status *rec)
{
	if (rec->magic != MASTER_STATUS_MAGIC) {
		msg_warn("service %s: bad status record (magic 0x%08x)", serv->name,
			 (unsigned)rec->magic);
		return;
	}
	if (rec->status != MASTER_STAT_AVAIL && rec->status != MASTER_STAT_BUSY &&
	    rec->status != MASTER_STAT_EXITING) {
		msg_warn("service %s: pid %ld: bad status %ld", serv->name, (long)rec->pid,
			 (long)rec->status);
		return;
	}
	struct master_proc *proc = master_proc_find((pid_t)rec->pid);
	if (proc == NULL || proc->serv != serv) {
		/* A child that was reaped before its record was read. */
		msg_debug("service %s: status from unknown pid %ld", serv->name, (long)rec->pid);
		return;
	}
	proc->reported = true;
	master_status_apply(proc, (enum master_stat)rec->status);
}

/* master_status_read: read what is pending on one service's pipe. */
static void master_status_read(struct master_service *serv)
{
	for (int i = 0; i < MASTER_STATUS_BATCH && serv->status_fd[0] >= 0; i++) {
		struct master_status rec;
		ssize_t n = read(serv->status_fd[0], &rec, sizeof(rec));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0)
			msg_fatal("service %s: read(status pipe) failed: %m", serv->name);
		if (n == 0)
			msg_panic("service %s: status pipe closed", serv->name);
		/* Records are written whole (smaller than PIPE_BUF). */
		if ((size_t)n != sizeof(rec)) {
			msg_warn("service %s: short status record (%zd bytes)", serv->name, n);
			continue;
		}
		master_status_record(serv, &rec);
	}
}

/* master_status_event: the status pipe is readable. */
static void master_status_event(void *ctx, int fd, unsigned events)
{
	master_status_read(ctx);
}

/* master_status_drain: every service's pending records. */
void master_status_drain(void)
{
	for (struct master_service *serv = master_services; serv != NULL; serv = serv->next)
		master_status_read(serv);
}
