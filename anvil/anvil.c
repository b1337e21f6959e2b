/* anvil.c: connection count and rate service for smtpd (Postfix's anvil).
 *
 * SYNOPSIS
 *	anvil -n anvil -t unix [-o name=value ...] -c config_dir
 *	(started by master(8); master.cf: anvil unix - - n - 1 anvil)
 *
 * DESCRIPTION
 *	Counts, per (service, client address), the connections open now and
 *	the connections, messages, recipients, new TLS sessions and AUTH
 *	commands in the current anvil_rate_time_unit, and answers smtpd's
 *	questions about them over queue_directory/private/anvil. Requests and
 *	replies are lib/mail/ipc records; the first record on a connection is
 *	the greeting "protocol=anvil version=1". See doc/anvil.8 for the
 *	requests, anvil.h for the model.
 *
 *	Every anvil_status_update_time, and on exit, it logs the peaks seen
 *	since the last report, as Postfix does ("statistics: max connection
 *	count 3 for (smtp:192.0.2.1) at Nov 22 21:32:00").
 *
 *	The state lives in memory only, so there must be one process
 *	(process limit 1) and it never retires after max_use clients or when
 *	idle (a resident multi_server).
 *
 * SECURITY
 *	Talks only to local daemons over a socket in private/; runs as
 *	mail_owner and may be chrooted. Memory is bounded: at most
 *	ANVIL_TABLE_LIMIT entries, service and client names of bounded length
 *	and printable ASCII only, one IPC record of bounded size buffered per
 *	connection. A malformed request gets an error record and the
 *	connection is closed (which gives back the connections it counted). */
#include <config.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "anvil/anvil.h"
#include "mail/config.h"
#include "mail/ipc.h"
#include "server/multi_server.h"
#include "server/netconn.h"
#include "util/alloc.h"
#include "util/events.h"
#include "util/msg.h"
#include "util/str.h"

/* A peak and where it was seen, for the statistics lines. */
struct anvil_peak {
	unsigned value;
	char ident[ANVIL_SERVICE_MAX + 1 + ANVIL_CLIENT_MAX + 1];
	time_t when;
};

/* One connection from a client daemon (one smtpd process). */
struct anvil_conn {
	struct anvil_conn *prev, *next;
	struct netconn *conn;
	struct anvil_owner owner;
	bool closing; /* error record sent; close once it is out */
};

static struct {
	struct event_loop *loop;
	struct anvil_table *table;
	struct anvil_conn *conns;
	struct event_timer *expire_timer;
	struct event_timer *status_timer;
	unsigned unit_secs;
	unsigned status_ms;
	struct anvil_peak peaks[ANVIL_EV_COUNT];
	struct anvil_peak count_peak;
	unsigned size_peak;
	time_t size_peak_when;
	uint64_t full_warned_ms;
} anvil;

/* Statistics names, by event, as Postfix logs them. */
static const char *const anvil_event_names[ANVIL_EV_COUNT] = {
	[ANVIL_EV_CONNECT] = "connection",
	[ANVIL_EV_MESSAGE] = "message",
	[ANVIL_EV_RCPT] = "recipient",
	[ANVIL_EV_NEWTLS] = "newtls",
	[ANVIL_EV_AUTH] = "auth",
};

/* Reply fields of lookup, by event. */
static const char *const anvil_event_fields[ANVIL_EV_COUNT] = {
	[ANVIL_EV_CONNECT] = ANVIL_F_RATE,
	[ANVIL_EV_MESSAGE] = ANVIL_F_MESSAGE,
	[ANVIL_EV_RCPT] = ANVIL_F_RCPT,
	[ANVIL_EV_NEWTLS] = ANVIL_F_NEWTLS,
	[ANVIL_EV_AUTH] = ANVIL_F_AUTH,
};

/* ---- statistics ---- */

/* anvil_peak_update: remember a new peak. */
static void anvil_peak_update(struct anvil_peak *p, unsigned value, const struct anvil_entry *e)
{
	if (value <= p->value)
		return;
	p->value = value;
	(void)str_copy(p->ident, sizeof(p->ident), anvil_entry_ident(e));
	p->when = time(NULL);
}

/* anvil_when: "Nov 22 21:32:00", as Postfix prints ctime() + 4. */
static const char *anvil_when(time_t when, char *buf, size_t size)
{
	struct tm tm;
	if (localtime_r(&when, &tm) == NULL || strftime(buf, size, "%b %e %H:%M:%S", &tm) == 0)
		(void)str_copy(buf, size, "?");
	return buf;
}

/* anvil_status_dump: log the peaks since the last report, then reset. */
static void anvil_status_dump(void)
{
	char when[32];
	for (int ev = 0; ev < ANVIL_EV_COUNT; ev++) {
		struct anvil_peak *p = &anvil.peaks[ev];
		if (p->value > 0)
			msg_info("statistics: max %s rate %u/%us for (%s) at %s",
				 anvil_event_names[ev], p->value, anvil.unit_secs, p->ident,
				 anvil_when(p->when, when, sizeof(when)));
		p->value = 0;
		/* Postfix logs the connection count right after the rate */
		if (ev == ANVIL_EV_CONNECT && anvil.count_peak.value > 0) {
			msg_info("statistics: max connection count %u for (%s) at %s",
				 anvil.count_peak.value, anvil.count_peak.ident,
				 anvil_when(anvil.count_peak.when, when, sizeof(when)));
			anvil.count_peak.value = 0;
		}
	}
	if (anvil.size_peak > 0) {
		msg_info("statistics: max cache size %u at %s", anvil.size_peak,
			 anvil_when(anvil.size_peak_when, when, sizeof(when)));
		anvil.size_peak = 0;
	}
}

/* anvil_status_timer: the periodic report. */
static void anvil_status_timer(void *ctx)
{
	anvil_status_dump();
	event_timer_reset(anvil.status_timer, anvil.status_ms);
}

/* anvil_expire_timer: drop entries idle for a time unit. */
static void anvil_expire_timer(void *ctx)
{
	uint64_t next = anvil_table_expire(anvil.table, event_now_ms(anvil.loop));
	/* a long time unit may not fit a timer: wake up hourly until due */
	if (next > 0)
		event_timer_reset(anvil.expire_timer, next > 3600000 ? 3600000 : (unsigned)next);
}

/* anvil_after_change: keep the expiry timer armed while entries are idle,
 * and note a new peak table size. */
static void anvil_after_change(void)
{
	unsigned size = anvil_table_size(anvil.table);
	if (size > anvil.size_peak) {
		anvil.size_peak = size;
		anvil.size_peak_when = time(NULL);
	}
	if (!event_timer_pending(anvil.expire_timer))
		anvil_expire_timer(NULL);
}

/* ---- requests ---- */

/* anvil_reply_error: status=-1 with a reason. */
static void anvil_reply_error(struct str *out, const char *error)
{
	ipc_put_int(out, IPC_F_STATUS, -1);
	ipc_put_str(out, IPC_F_ERROR, error);
	ipc_end(out);
}

/* anvil_get_entry: the entry named by the request (made when create),
 * reporting "table full" itself. false: reply sent. */
static bool anvil_get_entry(const char *service, const char *client, bool create,
			    struct anvil_entry **e_r, struct str *out)
{
	if (!create) {
		*e_r = anvil_table_find(anvil.table, service, client);
		return true;
	}
	uint64_t now = event_now_ms(anvil.loop);
	*e_r = anvil_table_get(anvil.table, service, client, now);
	if (*e_r != NULL)
		return true;
	if (anvil.full_warned_ms == 0 || now - anvil.full_warned_ms >= 60000) {
		msg_warn("table full (%u clients with connections): not counting %s:%s",
			 anvil_table_limit(anvil.table), service, client);
		anvil.full_warned_ms = now;
	}
	anvil_reply_error(out, "table full");
	return false;
}

/* anvil_do_request: one request that names a service and a client. */
static void anvil_do_request(struct anvil_conn *c, const char *req, const char *service,
			     const char *client, struct str *out)
{
	static const struct {
		const char *name;
		enum anvil_event ev;
	} rates[] = {
		{ ANVIL_REQ_MESSAGE, ANVIL_EV_MESSAGE },
		{ ANVIL_REQ_RCPT, ANVIL_EV_RCPT },
		{ ANVIL_REQ_NEWTLS, ANVIL_EV_NEWTLS },
		{ ANVIL_REQ_AUTH, ANVIL_EV_AUTH },
	};
	uint64_t now = event_now_ms(anvil.loop);
	struct anvil_entry *e = NULL;
	if (strcmp(req, ANVIL_REQ_CONNECT) == 0) {
		if (!anvil_get_entry(service, client, true, &e, out))
			return;
		unsigned count = anvil_table_connect(anvil.table, e, &c->owner, now);
		struct anvil_counts counts;
		anvil_table_counts(anvil.table, e, now, &counts);
		ipc_put_int(out, IPC_F_STATUS, 0);
		ipc_put_int(out, ANVIL_F_COUNT, count);
		ipc_put_int(out, ANVIL_F_RATE, counts.events[ANVIL_EV_CONNECT]);
		ipc_end(out);
		anvil_peak_update(&anvil.count_peak, count, e);
		anvil_peak_update(&anvil.peaks[ANVIL_EV_CONNECT], counts.events[ANVIL_EV_CONNECT], e);
		return;
	}
	if (strcmp(req, ANVIL_REQ_DISCONNECT) == 0) {
		(void)anvil_get_entry(service, client, false, &e, out);
		if (e != NULL)
			anvil_table_disconnect(anvil.table, e, &c->owner, now);
		ipc_put_int(out, IPC_F_STATUS, 0);
		ipc_end(out);
		return;
	}
	if (strcmp(req, ANVIL_REQ_LOOKUP) == 0) {
		struct anvil_counts counts = { 0 };
		(void)anvil_get_entry(service, client, false, &e, out);
		if (e != NULL)
			anvil_table_counts(anvil.table, e, now, &counts);
		ipc_put_int(out, IPC_F_STATUS, 0);
		ipc_put_int(out, ANVIL_F_COUNT, counts.count);
		for (int ev = 0; ev < ANVIL_EV_COUNT; ev++)
			ipc_put_int(out, anvil_event_fields[ev], counts.events[ev]);
		ipc_end(out);
		return;
	}
	for (size_t i = 0; i < N_ELEMENTS(rates); i++) {
		if (strcmp(req, rates[i].name) != 0)
			continue;
		if (!anvil_get_entry(service, client, true, &e, out))
			return;
		unsigned n = anvil_table_event(anvil.table, e, rates[i].ev, now);
		ipc_put_int(out, IPC_F_STATUS, 0);
		ipc_put_int(out, ANVIL_F_RATE, n);
		ipc_end(out);
		anvil_peak_update(&anvil.peaks[rates[i].ev], n, e);
		return;
	}
	/* Unknown requests are not protocol errors: a newer client may ask
	 * for something this version does not do. */
	msg_warn("unrecognized request: \"%s\", ignored", req);
	anvil_reply_error(out, "unrecognized request");
}

/* anvil_request: one decoded record; false on a protocol error (*error_r),
 * after which the connection is closed. */
static bool anvil_request(struct anvil_conn *c, const struct ipc_record *rec, struct str *out,
			  const char **error_r)
{
	static const char *const required[] = { IPC_F_REQUEST, NULL };
	static const char *const named[] = { ANVIL_F_SERVICE, ANVIL_F_CLIENT, NULL };
	if (ipc_expect(rec, required, false, error_r) < 0)
		return false;
	size_t rlen = 0, slen = 0, clen = 0;
	const char *req = ipc_get_data(rec, IPC_F_REQUEST, &rlen);
	if (!anvil_name_valid(req, rlen, IPC_NAME_MAX)) {
		*error_r = "bad request name";
		return false;
	}
	if (strcmp(req, ANVIL_REQ_STATS) == 0) {
		ipc_put_int(out, IPC_F_STATUS, 0);
		ipc_put_int(out, ANVIL_F_ENTRIES, anvil_table_size(anvil.table));
		ipc_put_int(out, ANVIL_F_LIMIT, anvil_table_limit(anvil.table));
		ipc_end(out);
		return true;
	}
	if (ipc_expect(rec, named, false, error_r) < 0)
		return false;
	const char *service = ipc_get_data(rec, ANVIL_F_SERVICE, &slen);
	const char *client = ipc_get_data(rec, ANVIL_F_CLIENT, &clen);
	if (!anvil_name_valid(service, slen, ANVIL_SERVICE_MAX)) {
		*error_r = "bad service name";
		return false;
	}
	if (!anvil_name_valid(client, clen, ANVIL_CLIENT_MAX)) {
		*error_r = "bad client name";
		return false;
	}
	anvil_do_request(c, req, service, client, out);
	return true;
}

/* ---- connections ---- */

/* anvil_conn_close: give back c's connections, close, tell the skeleton. */
static void anvil_conn_close(struct anvil_conn *c)
{
	anvil_table_owner_gone(anvil.table, &c->owner, event_now_ms(anvil.loop));
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		anvil.conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	netconn_free(&c->conn);
	free(c);
	multi_server_disconnect();
	anvil_after_change();
}

/* anvil_input: answer every whole record buffered. */
static void anvil_input(void *ctx)
{
	struct anvil_conn *c = ctx;
	struct str *in = netconn_input(c->conn);
	struct str out = STR_INIT;
	while (!c->closing && in->len > 0) {
		struct ipc_record *rec = NULL;
		const char *error = NULL;
		size_t used = 0;
		int ret = ipc_parse(in->data, in->len, &rec, &used, &error);
		if (ret == 0)
			break;
		if (ret > 0) {
			bool ok = anvil_request(c, rec, &out, &error);
			ipc_record_free(&rec);
			str_consume(in, used);
			if (ok)
				continue;
		}
		/* fail closed: say why, then hang up once that is out */
		msg_warn("malformed request: %s -- closing the connection", error);
		anvil_reply_error(&out, error);
		c->closing = true;
		str_clear(in);
		netconn_pause_input(c->conn, true);
	}
	netconn_write(c->conn, out.data, out.len);
	str_deinit(&out);
	if (c->closing)
		netconn_flush(c->conn);
	anvil_after_change();
}

/* anvil_closed: the client went away (or an I/O error). */
static void anvil_closed(void *ctx, const char *reason)
{
	struct anvil_conn *c = ctx;
	msg_debug("client connection closed: %s", reason);
	anvil_conn_close(c);
}

/* anvil_drained: the error record is out: now hang up. */
static void anvil_drained(void *ctx)
{
	struct anvil_conn *c = ctx;
	if (c->closing)
		anvil_conn_close(c);
}

static const struct netconn_callbacks anvil_conn_callbacks = {
	.input = anvil_input,
	.closed = anvil_closed,
	.output_drained = anvil_drained,
};

/* anvil_accept: a new client daemon: greet it with the protocol version. */
static void anvil_accept(void *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen,
			 const struct multi_server_listener *l)
{
	struct anvil_conn *c = xcalloc(1, sizeof(*c));
	c->conn = netconn_create(anvil.loop, fd, &anvil_conn_callbacks, c);
	/* one whole record must fit; ipc_parse fails beyond it */
	netconn_set_input_limit(c->conn, IPC_RECORD_MAX);
	c->next = anvil.conns;
	if (anvil.conns != NULL)
		anvil.conns->prev = c;
	anvil.conns = c;
	struct str out = STR_INIT;
	ipc_put_version(&out, ANVIL_PROTOCOL, ANVIL_PROTOCOL_VERSION);
	netconn_write(c->conn, out.data, out.len);
	str_deinit(&out);
}

/* anvil_post_init: the table and the timers. */
static void anvil_post_init(void *ctx)
{
	if (multi_server_args()[0] != NULL)
		msg_fatal("unexpected command-line argument: %s", multi_server_args()[0]);
	anvil.loop = multi_server_loop();
	long long unit = config_time("anvil_rate_time_unit");
	long long status = config_time("anvil_status_update_time");
	/* both are at most INT_MAX seconds; timers take unsigned msecs */
	anvil.unit_secs = (unsigned)unit;
	anvil.status_ms = status > 4000000 ? 4000000000U : (unsigned)status * 1000;
	anvil.table = anvil_table_create(ANVIL_TABLE_LIMIT, (uint64_t)unit * 1000);
	anvil.expire_timer = event_timer_add(anvil.loop, 1000, anvil_expire_timer, NULL);
	anvil.status_timer = event_timer_add(anvil.loop, anvil.status_ms, anvil_status_timer, NULL);
}

/* anvil_pre_exit: last report, then free everything. */
static void anvil_pre_exit(void *ctx)
{
	anvil_status_dump();
	while (anvil.conns != NULL)
		anvil_conn_close(anvil.conns);
	event_timer_remove(&anvil.expire_timer);
	event_timer_remove(&anvil.status_timer);
	anvil_table_free(&anvil.table);
}

static const struct multi_server_ops anvil_ops = {
	.post_init = anvil_post_init,
	.accept = anvil_accept,
	.pre_exit = anvil_pre_exit,
	.resident = true, /* in-memory counts: never retire */
};

int main(int argc, char **argv)
{
	return multi_server_main(argc, argv, "anvil", &anvil_ops, NULL);
}
