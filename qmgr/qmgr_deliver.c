/* qmgr_deliver.c: destinations and delivery requests. Each (transport,
 * nexthop) has a wait list of deliveries; while it has fewer requests in
 * flight than its concurrency limit, the deliveries at its head that belong
 * to one message (up to QMGR_REQUEST_RCPT_MAX) go out as one request over
 * a new connection to private/<transport>, in the protocol of
 * doc/delivery.md. Answers come back through the event loop; a connection
 * that breaks before "done" defers what was not answered. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/delivery.h"
#include "mail/ipc.h"
#include "qmgr.h"
#include "server/netconn.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

/* qmgr_dest_limit: <transport>_destination_concurrency_limit when that
 * parameter exists, else default_destination_concurrency_limit. */
static unsigned qmgr_dest_limit(const char *transport)
{
	char name[128];
	long long limit = qmgr.dest_limit;
	if (str_format(name, sizeof(name), "%s_destination_concurrency_limit", transport) &&
	    config_param_find(name) != NULL)
		limit = config_int(name);
	if (limit < 1)
		limit = 1;
	return limit > 1000 ? 1000 : (unsigned)limit;
}

struct qmgr_dest *qmgr_dest_find(const char *transport, const char *nexthop)
{
	for (struct qmgr_dest *d = qmgr.dests; d != NULL; d = d->next) {
		if (strcmp(d->transport, transport) == 0 && str_eq_icase(d->nexthop, nexthop))
			return d;
	}
	struct qmgr_dest *d = xcalloc(1, sizeof(*d));
	d->transport = xstrdup(transport);
	d->nexthop = xstrdup(nexthop);
	d->tail = &d->head;
	d->limit = qmgr_dest_limit(transport);
	d->next = qmgr.dests;
	qmgr.dests = d;
	return d;
}

void qmgr_dest_enqueue(struct qmgr_delivery *d)
{
	d->next = NULL;
	*d->dest->tail = d;
	d->dest->tail = &d->next;
}

/* qmgr_dest_take: up to QMGR_REQUEST_RCPT_MAX waiting deliveries of the
 * message at the head, in order. */
static struct qmgr_delivery **qmgr_dest_take(struct qmgr_dest *dest, size_t *count_r)
{
	struct qmgr_message *msg = dest->head->msg;
	struct qmgr_delivery **items = NULL, **pp = &dest->head;
	size_t count = 0;
	while (*pp != NULL && count < QMGR_REQUEST_RCPT_MAX) {
		struct qmgr_delivery *d = *pp;
		if (d->msg != msg) {
			pp = &d->next;
			continue;
		}
		*pp = d->next;
		d->next = NULL;
		items = xreallocarray(items, count + 1, sizeof(*items));
		items[count++] = d;
	}
	dest->tail = &dest->head;
	while (*dest->tail != NULL)
		dest->tail = &(*dest->tail)->next;
	*count_r = count;
	return items;
}

/* qmgr_request_defer_rest: defer every unanswered delivery, logging why. */
static void qmgr_request_defer_rest(struct qmgr_request *req, const char *reason)
{
	while (req->answered < req->count) {
		struct qmgr_delivery *d = req->items[req->answered++];
		const struct qmgr_rcpt *r = &d->msg->rcpts[d->rcpts[0]];
		qmgr_log_rcpt(d->msg, d->address, r->address, "4.3.0", "deferred", reason);
		qmgr_delivery_result(d, QMGR_DEFERRED, "4.3.0", reason);
	}
}

/* qmgr_request_free: unlink, close and free; the destination gets room. */
static void qmgr_request_free(struct qmgr_request *req)
{
	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		qmgr.requests = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	req->dest->active--;
	netconn_free(&req->conn);
	free(req->items);
	free(req);
	qmgr_kick();
}

/* qmgr_request_reply: one per-recipient answer; -1 when it does not fit
 * the request. */
static int qmgr_request_reply(struct qmgr_request *req, const struct delivery_result *res)
{
	if (req->answered >= req->count)
		return -1;
	struct qmgr_delivery *d = req->items[req->answered];
	const struct qmgr_rcpt *r = &d->msg->rcpts[d->rcpts[0]];
	if (res->offset != (long long)r->offset)
		return -1;
	req->answered++;
	const char *reply = res->reply != NULL ? res->reply : "";
	if (res->action == DELIVERY_DEFERRED)
		qmgr_delivery_result(d, QMGR_DEFERRED, res->status, reply);
	else if (res->action == DELIVERY_BOUNCED)
		qmgr_delivery_result(d, QMGR_BOUNCED, res->status, reply);
	else
		qmgr_delivery_result(d, QMGR_DELIVERED, res->status, reply);
	return 0;
}

/* qmgr_request_version: the agent's greeting; -1 when wrong. */
static int qmgr_request_version(struct str *in, int *r_r, const char **error_r)
{
	struct ipc_record *rec = NULL;
	size_t used;
	int r = ipc_parse(in->data, in->len, &rec, &used, error_r);
	*r_r = r;
	if (r <= 0)
		return r;
	str_consume(in, used);
	r = delivery_check_version(rec, error_r);
	ipc_record_free(&rec);
	*r_r = r < 0 ? -1 : 1;
	return *r_r;
}

/* qmgr_request_input: the agent's version record, answers, then done. */
static void qmgr_request_input(void *ctx)
{
	struct qmgr_request *req = ctx;
	struct str *in = netconn_input(req->conn);
	const char *error = NULL;
	int r = 1;
	if (!req->versioned) {
		if (qmgr_request_version(in, &r, &error) == 0)
			return;
		req->versioned = r > 0;
	}
	while (r > 0) {
		struct delivery_reply reply;
		size_t used;
		r = delivery_reply_parse(in->data, in->len, &reply, &used, &error);
		if (r <= 0)
			break;
		str_consume(in, used);
		if (reply.done) {
			delivery_reply_clear(&reply);
			qmgr_request_defer_rest(req, "delivery agent did not answer");
			qmgr_request_free(req);
			return;
		}
		if (qmgr_request_reply(req, &reply.result) < 0) {
			error = "answer does not match the request";
			r = -1;
		}
		delivery_reply_clear(&reply);
	}
	if (r == 0 && in->len < IPC_RECORD_MAX + 1024)
		return;
	msg_warn("private/%s: protocol error: %s", req->dest->transport,
		 r < 0 ? error : "record too long");
	qmgr_request_defer_rest(req, "delivery agent protocol error");
	qmgr_request_free(req);
}

/* qmgr_request_closed: the agent went away before "done". */
static void qmgr_request_closed(void *ctx, const char *reason)
{
	struct qmgr_request *req = ctx;
	msg_warn("private/%s: %s before the delivery request was done", req->dest->transport,
		 reason);
	qmgr_request_defer_rest(req, "delivery agent died");
	qmgr_request_free(req);
}

static const struct netconn_callbacks qmgr_request_callbacks = {
	.input = qmgr_request_input,
	.closed = qmgr_request_closed,
};

/* qmgr_request_connect: a connected socket to private/<transport>, or -1
 * with errno. */
static int qmgr_request_connect(const char *transport)
{
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (!str_format(sun.sun_path, sizeof(sun.sun_path), "%s/private/%s", qmgr.queue_dir,
			transport)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 && errno != EINPROGRESS) {
		int saved = errno;
		(void)close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* qmgr_request_write: the request header and one record per recipient. */
static void qmgr_request_write(struct qmgr_request *req)
{
	struct str out = STR_INIT, path = STR_INIT;
	struct delivery_request dr;
	str_printf(&path, "%s/%s", QUEUE_ACTIVE, req->msg->id);
	dr.queue_id = req->msg->id;
	dr.queue_file = path.data;
	dr.nexthop = req->dest->nexthop;
	dr.rcpt_count = (unsigned)req->count;
	dr.rcpts = xcalloc(req->count, sizeof(*dr.rcpts));
	for (size_t i = 0; i < req->count; i++) {
		const struct qmgr_delivery *d = req->items[i];
		const struct qmgr_rcpt *r = &d->msg->rcpts[d->rcpts[0]];
		dr.rcpts[i].address = d->address;
		dr.rcpts[i].orig_rcpt = r->address;
		dr.rcpts[i].offset = (long long)r->offset;
		dr.rcpts[i].notify = r->notify;
		dr.rcpts[i].orcpt = r->orcpt;
	}
	delivery_request_write(&out, &dr);
	netconn_write(req->conn, out.data, out.len);
	free(dr.rcpts);
	str_deinit(&out);
	str_deinit(&path);
}

/* qmgr_request_start: one request from dest's head. */
static void qmgr_request_start(struct qmgr_dest *dest)
{
	struct qmgr_request *req = xcalloc(1, sizeof(*req));
	req->dest = dest;
	req->items = qmgr_dest_take(dest, &req->count);
	req->msg = req->items[0]->msg;
	dest->active++;
	req->next = qmgr.requests;
	if (qmgr.requests != NULL)
		qmgr.requests->prev = req;
	qmgr.requests = req;
	int fd = qmgr_request_connect(dest->transport);
	if (fd < 0) {
		struct str reason = STR_INIT;
		str_printf(&reason, "connect to private/%s: %m", dest->transport);
		msg_warn("%s", str_c(&reason));
		qmgr_request_defer_rest(req, str_c(&reason));
		str_deinit(&reason);
		qmgr_request_free(req);
		return;
	}
	req->conn = netconn_create(qmgr.loop, fd, &qmgr_request_callbacks, req);
	netconn_set_timeout(req->conn, QMGR_AGENT_TIMEOUT_MS);
	netconn_set_input_limit(req->conn, IPC_RECORD_MAX + 2048);
	qmgr_request_write(req);
}

void qmgr_dispatch(void)
{
	struct qmgr_dest **pp = &qmgr.dests;
	while (*pp != NULL) {
		struct qmgr_dest *dest = *pp;
		while (dest->head != NULL && dest->active < dest->limit)
			qmgr_request_start(dest);
		if (dest->head == NULL && dest->active == 0) {
			*pp = dest->next; /* idle: forget it */
			free(dest->transport);
			free(dest->nexthop);
			free(dest);
			continue;
		}
		pp = &dest->next;
	}
}

void qmgr_deliver_free_all(void)
{
	while (qmgr.requests != NULL) {
		struct qmgr_request *req = qmgr.requests;
		qmgr.requests = req->next;
		netconn_free(&req->conn);
		free(req->items);
		free(req);
	}
	while (qmgr.dests != NULL) {
		struct qmgr_dest *dest = qmgr.dests;
		qmgr.dests = dest->next;
		free(dest->transport);
		free(dest->nexthop);
		free(dest);
	}
}
