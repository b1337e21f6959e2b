/* smtp_client.c: smtp-client(8), Petrel's delivery agent for LMTP (and,
 * later, SMTP to remote MX hosts).
 *
 * SYNOPSIS
 *	smtp-client -n service -t unix [-o name=value ...] -c config_dir
 * DESCRIPTION
 *	A multi_server daemon on private/lmtp. qmgr connects, reads the
 *	greeting (protocol=delivery, version=1) and sends one request at a
 *	time (doc/delivery.md). For each request the agent reads the queue
 *	file, talks LMTP to the nexthop (smtp_proto.c), answers one result
 *	record per recipient in request order, then done=1, and logs one
 *	Postfix delivery line per recipient. Several qmgr connections are
 *	served at once, each by its own event-driven session.
 * SECURITY
 *	Runs as mail_owner; reads queue files named relative to the queue
 *	directory only ("..", absolute paths refused by the codec). Remote
 *	reply text is escaped in logs and in result records. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/config.h"
#include "mail/delivery.h"
#include "mail/ipc.h"
#include "mail/log_delivery.h"
#include "server/multi_server.h"
#include "server/netconn.h"
#include "smtp_client.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

struct smtp_client_settings smtp_client_settings;
/* true for the smtp service (not implemented yet), false for lmtp */
static bool smtp_client_role_smtp;

/* One connection from qmgr. */
struct agent_conn {
	struct netconn *conn;
	struct delivery_request_parser *parser;
	struct delivery_request *req;     /* the request being delivered */
	struct queue_file *qf;            /* its queue file, NULL if unreadable */
	struct smtp_rcpt_result *results; /* req->rcpt_count */
	struct smtp_session *session;
	struct timeval received; /* when the request arrived */
	struct agent_conn *prev, *next; /* agent_conns */
};

/* Every open qmgr connection, for pre_exit. */
static struct agent_conn *agent_conns;

static void agent_input(void *ctx);

/* smtp_result_set: make a result final once. */
void smtp_result_set(struct smtp_rcpt_result *r, enum delivery_action action,
		     const char *status, const char *reason)
{
	if (r->final)
		return;
	r->final = true;
	r->action = action;
	(void)str_copy(r->status, sizeof(r->status), status);
	r->reason = xstrdup(reason);
	(void)gettimeofday(&r->done, NULL);
}

/* agent_request_end: forget the current request. */
static void agent_request_end(struct agent_conn *a)
{
	smtp_session_free(&a->session);
	if (a->results != NULL && a->req != NULL) {
		for (unsigned i = 0; i < a->req->rcpt_count; i++)
			free(a->results[i].reason);
	}
	free(a->results);
	a->results = NULL;
	queue_file_free(&a->qf);
	delivery_request_free(&a->req);
}

/* agent_free: close a qmgr connection. */
static void agent_free(struct agent_conn *a)
{
	agent_request_end(a);
	delivery_request_parser_free(&a->parser);
	netconn_free(&a->conn);
	if (a->prev != NULL)
		a->prev->next = a->next;
	else
		agent_conns = a->next;
	if (a->next != NULL)
		a->next->prev = a->prev;
	free(a);
	multi_server_disconnect();
}

/* agent_status_word: Postfix's status= word for an action. */
static const char *agent_status_word(enum delivery_action action)
{
	return action == DELIVERY_DELIVERED ? "sent"
	       : action == DELIVERY_DEFERRED ? "deferred"
					     : "bounced";
}

/* agent_finish: log and answer every result, then done. */
static void agent_finish(void *ctx)
{
	struct agent_conn *a = ctx;
	const char *relay = a->session != NULL ? smtp_session_relay(a->session) : "none";
	struct log_delivery_times t;
	memset(&t, 0, sizeof(t));
	t.arrival = a->qf != NULL ? a->qf->arrival : a->received;
	t.active = a->received;
	if (a->session != NULL) {
		t.handoff = smtp_session_handoff(a->session);
		t.conn_done = smtp_session_conn_done(a->session);
	}
	struct str out = STR_INIT;
	for (unsigned i = 0; i < a->req->rcpt_count; i++) {
		const struct delivery_rcpt *rcpt = &a->req->rcpts[i];
		struct smtp_rcpt_result *r = &a->results[i];
		if (!r->final)
			smtp_result_set(r, DELIVERY_DEFERRED, "4.3.0", "delivery incomplete");
		t.done = r->done;
		log_delivery(a->req->queue_id, rcpt->address, rcpt->orig_rcpt, relay, &t, r->status,
			     agent_status_word(r->action), r->reason);
		struct delivery_result res = {
			.offset = rcpt->offset,
			.address = rcpt->address,
			.action = r->action,
			.reply = r->reason,
			.relay = relay,
		};
		(void)str_copy(res.status, sizeof(res.status), r->status);
		delivery_result_write(&out, &res);
	}
	delivery_done_write(&out);
	netconn_write(a->conn, out.data, out.len);
	str_deinit(&out);
	agent_request_end(a);
	/* a pipelined next request may already be buffered */
	netconn_pause_input(a->conn, false);
}

/* agent_fail_all: every recipient gets the same local result. */
static void agent_fail_all(struct agent_conn *a, const char *status, const char *reason)
{
	for (unsigned i = 0; i < a->req->rcpt_count; i++)
		smtp_result_set(&a->results[i], status[0] == '5' ? DELIVERY_BOUNCED
							       : DELIVERY_DEFERRED,
				status, reason);
}

/* agent_start: open the queue file and start the delivery of a->req. */
static void agent_start(struct agent_conn *a)
{
	const char *error = NULL;
	struct str path = STR_INIT;
	(void)gettimeofday(&a->received, NULL);
	a->results = xcalloc(a->req->rcpt_count, sizeof(*a->results));
	str_printf(&path, "%s/%s", multi_server_queue_dir(), a->req->queue_file);
	a->qf = queue_file_read(str_c(&path), &error);
	str_deinit(&path);
	if (a->qf == NULL) {
		msg_warn("%s: %s", a->req->queue_id, error);
		agent_fail_all(a, "4.3.0", "cannot read the queue file");
	} else if (strcmp(a->qf->id, a->req->queue_id) != 0) {
		msg_warn("%s: queue file %s has another queue ID", a->req->queue_id,
			 a->req->queue_file);
		agent_fail_all(a, "4.3.0", "queue file does not match the queue ID");
	} else if (smtp_client_role_smtp) {
		/* the SMTP role (MX lookup, EHLO, TLS) comes later: refuse clearly */
		agent_fail_all(a, "4.3.0", "SMTP delivery is not implemented");
	} else if (strncmp(a->req->nexthop, "unix:", 5) != 0 &&
		   strncmp(a->req->nexthop, "inet:", 5) != 0) {
		agent_fail_all(a, "4.3.5", "bad LMTP nexthop (want unix:PATH or inet:HOST:PORT)");
	} else {
		a->session = smtp_session_start(a->req, a->qf, a->results, agent_finish, a);
		return;
	}
	agent_finish(a);
}

/* agent_input: parse a request from qmgr (one at a time). */
static void agent_input(void *ctx)
{
	struct agent_conn *a = ctx;
	const char *error = NULL;
	if (a->req != NULL) {
		/* one request at a time: keep the rest buffered */
		netconn_pause_input(a->conn, true);
		return;
	}
	int r = delivery_request_parser_feed(a->parser, netconn_input(a->conn), &a->req, &error);
	if (r < 0) {
		msg_warn("bad request from queue manager: %s", error);
		agent_free(a);
		return;
	}
	if (r > 0)
		agent_start(a);
}

/* agent_closed: qmgr went away; abandon any delivery in progress. */
static void agent_closed(void *ctx, const char *reason)
{
	struct agent_conn *a = ctx;
	if (a->req != NULL)
		msg_warn("%s: queue manager connection closed (%s) during delivery",
			 a->req->queue_id, reason);
	agent_free(a);
}

static const struct netconn_callbacks agent_callbacks = {
	.input = agent_input,
	.closed = agent_closed,
};

/* agent_accept: a new connection from qmgr: greet it. */
static void agent_accept(void *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen,
			 const struct multi_server_listener *l)
{
	(void)ctx;
	(void)peer;
	(void)peerlen;
	(void)l;
	struct agent_conn *a = xcalloc(1, sizeof(*a));
	a->parser = delivery_request_parser_create();
	a->next = agent_conns;
	if (agent_conns != NULL)
		agent_conns->prev = a;
	agent_conns = a;
	a->conn = netconn_create(multi_server_loop(), fd, &agent_callbacks, a);
	netconn_set_input_limit(a->conn, 2 * IPC_RECORD_MAX);
	struct str out = STR_INIT;
	delivery_version_write(&out);
	netconn_write(a->conn, out.data, out.len);
	str_deinit(&out);
}

/* agent_time_ms: a time parameter in milliseconds. */
static unsigned agent_time_ms(const char *name)
{
	long long s = config_time(name);
	return s > 4000000 ? 4000000000u : (unsigned)(s * 1000);
}

/* agent_post_init: read the settings. */
static void agent_post_init(void *ctx)
{
	(void)ctx;
	struct smtp_client_settings *s = &smtp_client_settings;
	s->myhostname = config_str("myhostname");
	s->connect_timeout_ms = agent_time_ms("lmtp_connect_timeout");
	s->helo_timeout_ms = agent_time_ms("lmtp_lhlo_timeout");
	s->mail_timeout_ms = agent_time_ms("lmtp_mail_timeout");
	s->rcpt_timeout_ms = agent_time_ms("lmtp_rcpt_timeout");
	s->data_init_timeout_ms = agent_time_ms("lmtp_data_init_timeout");
	s->data_xfer_timeout_ms = agent_time_ms("lmtp_data_xfer_timeout");
	s->data_done_timeout_ms = agent_time_ms("lmtp_data_done_timeout");
	/* Postfix's lmtp and smtp are one program under two names; log as
	 * the role, as they do ("postfix/lmtp[PID]: ..."). */
	const char *service = multi_server_service_name();
	smtp_client_role_smtp = strcmp(service, "smtp") == 0 || strcmp(service, "relay") == 0;
	msg_init(smtp_client_role_smtp ? "smtp" : "lmtp");
	if (smtp_client_role_smtp)
		msg_warn("service %s: SMTP delivery is not implemented yet; every recipient "
			 "is deferred", service);
}

/* agent_pre_exit: SIGTERM or master death: drop what is in flight (qmgr
 * sees the connection close and defers those recipients). */
static void agent_pre_exit(void *ctx)
{
	(void)ctx;
	while (agent_conns != NULL)
		agent_free(agent_conns);
}

static const struct multi_server_ops agent_ops = {
	.post_init = agent_post_init,
	.pre_exit = agent_pre_exit,
	.accept = agent_accept,
};

/* main: the multi_server skeleton with the agent's callbacks. */
int main(int argc, char **argv)
{
	return multi_server_main(argc, argv, "smtp-client", &agent_ops, NULL);
}
