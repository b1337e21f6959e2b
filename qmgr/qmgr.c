/* qmgr.c: the queue manager daemon: start-up, the wake-up fifo, the queue
 * run timer and the per-recipient log lines. It moves messages from
 * incoming/ (and due ones from deferred/) to active/, resolves their
 * recipients and hands them to delivery agents (qmgr_deliver.c); the
 * queue directory is the truth (doc/delivery.md). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/resolve.h"
#include "qmgr.h"
#include "server/multi_server.h"
#include "util/events.h"
#include "util/msg.h"
#include "util/str.h"

struct qmgr qmgr;

const char *qmgr_path(int slot, const char *dir, const char *id)
{
	static char buf[2][4096];
	if (!str_format(buf[slot], sizeof(buf[slot]), "%s/%s/%s", qmgr.queue_dir, dir, id))
		msg_fatal("queue path too long: %s/%s/%s", qmgr.queue_dir, dir, id);
	return buf[slot];
}

/* qmgr_secs: seconds from a to b, not negative. */
static double qmgr_secs(const struct timeval *a, const struct timeval *b)
{
	double d = (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_usec - a->tv_usec) / 1e6;
	return d < 0 ? 0 : d;
}

/* qmgr_fmt_delay: a delay the way Postfix prints it (2 significant digits
 * under 10 s, whole seconds above). */
static void qmgr_fmt_delay(struct str *out, double secs)
{
	if (secs >= 10)
		str_printf(out, "%.0f", secs);
	else if (secs >= 0.01)
		str_printf(out, "%.2g", secs);
	else
		str_append(out, "0");
}

void qmgr_log_rcpt(const struct qmgr_message *msg, const char *to, const char *orig,
		   const char *dsn, const char *status, const char *reason)
{
	struct str line = STR_INIT;
	struct timeval now;
	gettimeofday(&now, NULL);
	str_printf(&line, "%s: to=<", msg->id);
	str_escape_log(&line, to, strlen(to), QUEUE_ADDRESS_MAX);
	str_append(&line, ">");
	if (orig != NULL && strcmp(orig, to) != 0) {
		str_append(&line, ", orig_to=<");
		str_escape_log(&line, orig, strlen(orig), QUEUE_ADDRESS_MAX);
		str_append(&line, ">");
	}
	str_append(&line, ", relay=none, delay=");
	qmgr_fmt_delay(&line, qmgr_secs(&msg->arrival, &now));
	str_append(&line, ", delays=");
	qmgr_fmt_delay(&line, qmgr_secs(&msg->arrival, &msg->active_time));
	str_append(&line, "/");
	qmgr_fmt_delay(&line, qmgr_secs(&msg->active_time, &now));
	str_printf(&line, "/0/0, dsn=%s, status=%s (", dsn, status);
	str_escape_log(&line, reason, strlen(reason), QMGR_REASON_MAX);
	str_append(&line, ")");
	msg_info("%s", str_c(&line));
	str_deinit(&line);
}

/* True from start-up until the first kick loads active/: that load (the
 * messages a killed qmgr left in flight, possibly thousands) runs in the
 * event loop, after qmgr has told the master it is up, so a kill during
 * it is restarted at once instead of throttled as a failed start. */
static bool qmgr_want_active;

/* qmgr_kick_now: the deferred work: scans that were asked for, then
 * dispatch to every destination with room. */
static void qmgr_kick_now(void *ctx)
{
	(void)ctx;
	/* A table that was unavailable (postalias not run yet) may be there
	 * now: try again before resolving more recipients. */
	if ((qmgr.want_deferred || qmgr.want_incoming) && resolver_unavailable(qmgr.resolver) > 0)
		(void)resolver_reopen(qmgr.resolver);
	if (qmgr_want_active) {
		qmgr_want_active = false;
		qmgr_scan_active();
	}
	if (qmgr.want_deferred) {
		bool force = qmgr.force_deferred;
		qmgr.want_deferred = false;
		qmgr.force_deferred = false;
		qmgr_scan_deferred(force);
	}
	if (qmgr.want_incoming) {
		qmgr.want_incoming = false;
		qmgr_scan_incoming();
	}
	qmgr_dispatch();
}

void qmgr_kick(void)
{
	if (qmgr.kick_timer == NULL)
		qmgr.kick_timer = event_timer_add(qmgr.loop, 0, qmgr_kick_now, NULL);
	else if (!event_timer_pending(qmgr.kick_timer))
		event_timer_reset(qmgr.kick_timer, 0);
}

/* qmgr_run: the periodic queue run (incoming and due deferred mail). */
static void qmgr_run(void *ctx)
{
	(void)ctx;
	qmgr.want_incoming = true;
	qmgr.want_deferred = true;
	qmgr_kick();
	event_timer_reset(qmgr.run_timer, (unsigned)qmgr.run_delay * 1000u);
}

/* qmgr_trigger: bytes on public/qmgr: A (incoming), F (flush deferred),
 * I and anything else (incoming and due deferred mail). */
static void qmgr_trigger(void *ctx, const struct multi_server_listener *l)
{
	char buf[256];
	ssize_t n = read(l->fd, buf, sizeof(buf));
	(void)ctx;
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		msg_warn("read(public/qmgr) failed: %m");
	for (ssize_t i = 0; i < n; i++) {
		qmgr.want_incoming = true;
		if (buf[i] == 'F') {
			qmgr.want_deferred = true;
			qmgr.force_deferred = true;
		} else if (buf[i] != 'A') {
			qmgr.want_deferred = true;
		}
	}
	if (n > 0)
		qmgr_kick();
}

/* qmgr_accept: qmgr serves no stream clients (only its fifo). */
static void qmgr_accept(void *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen,
			const struct multi_server_listener *l)
{
	(void)ctx;
	(void)peer;
	(void)peerlen;
	(void)l;
	(void)close(fd);
	multi_server_disconnect();
}

/* qmgr_concurrency: <transport>... limits are looked up per destination;
 * this is the default. */
static void qmgr_params(void)
{
	qmgr.active_limit = config_int("qmgr_message_active_limit");
	qmgr.run_delay = config_time("queue_run_delay");
	qmgr.min_backoff = config_time("minimal_backoff_time");
	qmgr.max_backoff = config_time("maximal_backoff_time");
	qmgr.max_lifetime = config_time("maximal_queue_lifetime");
	qmgr.bounce_lifetime = config_time("bounce_queue_lifetime");
	qmgr.delay_warning = config_time("delay_warning_time");
	qmgr.dest_limit = config_int("default_destination_concurrency_limit");
	if (qmgr.max_backoff < qmgr.min_backoff)
		qmgr.max_backoff = qmgr.min_backoff;
	if (qmgr.run_delay > 86400)
		qmgr.run_delay = 86400;
}

/* qmgr_pre_init: the lookup tables, opened before the chroot (their paths
 * are outside it). A table that cannot be opened does not stop qmgr: the
 * recipients that need it are deferred (resolve.h). */
static void qmgr_pre_init(void *ctx)
{
	const char *error = NULL;
	(void)ctx;
	qmgr.resolver = resolver_create(&error);
	if (qmgr.resolver == NULL)
		msg_fatal("%s", error);
}

/* qmgr_post_init: asks for the start-up scan, made at the first kick:
 * active/ first (messages in flight when the previous qmgr died),
 * incoming/, deferred/. */
static void qmgr_post_init(void *ctx)
{
	(void)ctx;
	qmgr.loop = multi_server_loop();
	qmgr.queue_dir = multi_server_queue_dir();
	qmgr_params();
	qmgr_want_active = true; /* first, before incoming/ and deferred/ */
	qmgr.want_incoming = true;
	qmgr.want_deferred = true;
	qmgr_kick();
	qmgr.run_timer =
		event_timer_add(qmgr.loop, (unsigned)qmgr.run_delay * 1000u, qmgr_run, NULL);
}

/* qmgr_pre_exit: free everything; messages stay in active/ on disk. */
static void qmgr_pre_exit(void *ctx)
{
	(void)ctx;
	qmgr_deliver_free_all();
	qmgr_message_free_all();
	event_timer_remove(&qmgr.run_timer);
	event_timer_remove(&qmgr.kick_timer);
	resolver_free(&qmgr.resolver);
}

static const struct multi_server_ops qmgr_ops = {
	.pre_init = qmgr_pre_init,
	.post_init = qmgr_post_init,
	.accept = qmgr_accept,
	.trigger = qmgr_trigger,
	.pre_exit = qmgr_pre_exit,
	.resident = true, /* its state is the active queue: never retire */
};

int main(int argc, char **argv)
{
	return multi_server_main(argc, argv, "qmgr", &qmgr_ops, NULL);
}
