/* anvil_client.c: smtpd's side of the anvil(8) protocol (see
 * anvil_client.h for the contract, doc/anvil.8 for the protocol).
 *
 * Plain non-blocking socket I/O on the event loop (lib/mail cannot use
 * lib/server's netconn). Requests wait in one FIFO in the order they
 * were sent; each reply answers the oldest. Failures move the FIFO to a
 * failed list that a zero-delay timer hands to the callbacks, so no
 * callback ever runs inside an anvil_* call. */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mail/anvil_client.h"
#include "mail/ipc.h"
#include "util/alloc.h"
#include "util/events.h"
#include "util/msg.h"
#include "util/str.h"

#define ANVIL_CLIENT_OUTPUT_MAX (1024 * 1024)
#define ANVIL_CLIENT_READ_CHUNK 4096
#define ANVIL_CLIENT_WARN_MS 10000 /* at most one warning per this */

struct anvil_request {
	struct anvil_request *next;
	anvil_reply_fn *cb; /* NULL: cancelled, or nobody asked */
	void *ctx;
	uint64_t deadline;
	bool has_rate;  /* the reply carries rate (all but disconnect) */
	bool has_count; /* connect: the reply carries count */
	char *undo;     /* connect: "service\0addr", to undo a cancelled one */
};

struct anvil_request_list {
	struct anvil_request *head, *tail;
};

struct anvil_client {
	struct event_loop *loop;
	char *path;
	unsigned timeout_ms;
	int fd; /* -1: not connected */
	struct event_io *io;
	bool greeted; /* the version record arrived */
	struct str in, out;
	struct anvil_request_list waiting; /* sent (or in out), oldest first */
	unsigned pending;
	struct anvil_request_list failed; /* to be told -1 */
	struct event_timer *timer;        /* the oldest request's deadline */
	struct event_timer *fail_timer;
	uint64_t warned_ms;
	bool warned;
	int busy; /* callbacks running */
	bool free_requested;
};

/* ---- lists ---- */

/* anvil_list_append: r to the tail. */
static void anvil_list_append(struct anvil_request_list *l, struct anvil_request *r)
{
	r->next = NULL;
	if (l->tail != NULL)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
}

/* anvil_list_pop: the head, or NULL. */
static struct anvil_request *anvil_list_pop(struct anvil_request_list *l)
{
	struct anvil_request *r = l->head;
	if (r != NULL) {
		l->head = r->next;
		if (l->head == NULL)
			l->tail = NULL;
	}
	return r;
}

/* anvil_list_free: free every request, calling nobody. */
static void anvil_list_free(struct anvil_request_list *l)
{
	struct anvil_request *r;
	while ((r = anvil_list_pop(l)) != NULL) {
		free(r->undo);
		free(r);
	}
}

/* ---- failure ---- */

/* anvil_client_warn: log a problem, at most every ANVIL_CLIENT_WARN_MS
 * (every smtpd session would otherwise repeat it while anvil is down). */
static void anvil_client_warn(struct anvil_client *cl, const char *what)
{
	uint64_t now = event_now_ms(cl->loop);
	if (cl->warned && now - cl->warned_ms < ANVIL_CLIENT_WARN_MS)
		return;
	cl->warned = true;
	cl->warned_ms = now;
	msg_warn("anvil %s: %s -- connection limits not enforced", cl->path, what);
}

/* anvil_client_close: drop the connection (anvil forgets our counts). */
static void anvil_client_close(struct anvil_client *cl)
{
	if (cl->fd < 0)
		return;
	event_io_remove(&cl->io);
	(void)close(cl->fd);
	cl->fd = -1;
	cl->greeted = false;
	str_clear(&cl->in);
	str_clear(&cl->out);
}

static void anvil_client_fail_timer(void *ctx);
static void anvil_client_timeout(void *ctx);

/* anvil_client_arm: start *timer (made on first use) unless it is
 * already running. */
static void anvil_client_arm(struct anvil_client *cl, struct event_timer **timer, unsigned msecs,
			     event_timer_fn *fn)
{
	if (*timer == NULL)
		*timer = event_timer_add(cl->loop, msecs, fn, cl);
	else if (!event_timer_pending(*timer))
		event_timer_reset(*timer, msecs);
}

/* anvil_client_fail_one: r gets -1 from the loop. */
static void anvil_client_fail_one(struct anvil_client *cl, struct anvil_request *r)
{
	anvil_list_append(&cl->failed, r);
	anvil_client_arm(cl, &cl->fail_timer, 0, anvil_client_fail_timer);
}

/* anvil_client_fail: the connection is unusable: close it, and every
 * request still waiting gets -1. */
static void anvil_client_fail(struct anvil_client *cl, const char *why)
{
	anvil_client_warn(cl, why);
	anvil_client_close(cl);
	struct anvil_request *r;
	while ((r = anvil_list_pop(&cl->waiting)) != NULL)
		anvil_client_fail_one(cl, r);
	cl->pending = 0;
}

/* anvil_client_destroy: free everything; no callback is called. */
static void anvil_client_destroy(struct anvil_client *cl)
{
	anvil_client_close(cl);
	anvil_list_free(&cl->waiting);
	anvil_list_free(&cl->failed);
	event_timer_remove(&cl->timer);
	event_timer_remove(&cl->fail_timer);
	str_deinit(&cl->in);
	str_deinit(&cl->out);
	free(cl->path);
	free(cl);
}

/* anvil_client_release: end of a callback run; a free asked for in one
 * happens now. Returns false when cl is gone. */
static bool anvil_client_release(struct anvil_client *cl)
{
	if (--cl->busy > 0 || !cl->free_requested)
		return true;
	anvil_client_destroy(cl);
	return false;
}

/* anvil_client_fail_timer: tell the failed requests. */
static void anvil_client_fail_timer(void *ctx)
{
	struct anvil_client *cl = ctx;
	/* only those failed so far: a callback that asks again and fails
	 * again is told on the next round, not in an endless loop here */
	struct anvil_request_list now = cl->failed;
	struct anvil_request *r;
	cl->failed.head = cl->failed.tail = NULL;
	cl->busy++;
	while (!cl->free_requested && (r = anvil_list_pop(&now)) != NULL) {
		anvil_reply_fn *cb = r->cb;
		void *cb_ctx = r->ctx;
		free(r->undo);
		free(r);
		if (cb != NULL)
			cb(cb_ctx, -1, 0, 0);
	}
	anvil_list_free(&now);
	(void)anvil_client_release(cl);
}

/* anvil_client_timeout: the oldest request is late: give up on anvil. */
static void anvil_client_timeout(void *ctx)
{
	struct anvil_client *cl = ctx;
	struct anvil_request *r = cl->waiting.head;
	if (r == NULL)
		return;
	uint64_t now = event_now_ms(cl->loop);
	if (now >= r->deadline)
		anvil_client_fail(cl, "timeout waiting for a reply");
	else
		event_timer_reset(cl->timer, (unsigned)(r->deadline - now));
}

/* ---- I/O ---- */

static void anvil_client_io(void *ctx, int fd, unsigned events);

/* anvil_client_open: connect to the socket; false on failure (logged). */
static bool anvil_client_open(struct anvil_client *cl)
{
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (!str_copy(sun.sun_path, sizeof(sun.sun_path), cl->path)) {
		anvil_client_warn(cl, "socket path too long");
		return false;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		anvil_client_warn(cl, "socket() failed");
		return false;
	}
	/* AF_UNIX connects at once or fails (EAGAIN: backlog full). */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		char why[160];
		(void)str_format(why, sizeof(why), "connect() failed: %s", strerror(errno));
		(void)close(fd);
		anvil_client_warn(cl, why);
		return false;
	}
	cl->fd = fd;
	cl->greeted = false;
	cl->io = event_io_add(cl->loop, fd, EVENT_READ, anvil_client_io, cl);
	return true;
}

/* anvil_client_flush: write what the socket takes; false on failure. */
static bool anvil_client_flush(struct anvil_client *cl)
{
	while (cl->out.len > 0) {
		ssize_t n = send(cl->fd, cl->out.data, cl->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			str_consume(&cl->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		anvil_client_fail(cl, "write failed");
		return false;
	}
	if (cl->out.len > ANVIL_CLIENT_OUTPUT_MAX) {
		anvil_client_fail(cl, "anvil does not read its requests");
		return false;
	}
	event_io_set(cl->io, EVENT_READ | (cl->out.len > 0 ? EVENT_WRITE : 0));
	return true;
}

/* anvil_client_reply: one record after the greeting; false on a protocol
 * error (the connection has failed). Calls the callback. */
static bool anvil_client_reply(struct anvil_client *cl, const struct ipc_record *rec)
{
	struct anvil_request *r = anvil_list_pop(&cl->waiting);
	long long status = 0, count = 0, rate = 0;
	if (r == NULL) {
		anvil_client_fail(cl, "reply without a request");
		return false;
	}
	cl->pending--;
	bool ok = ipc_get_int(rec, IPC_F_STATUS, &status);
	if (ok && status == 0) {
		ok = (!r->has_rate ||
		      (ipc_get_int(rec, ANVIL_F_RATE, &rate) && rate >= 0 && rate <= UINT32_MAX)) &&
		     (!r->has_count ||
		      (ipc_get_int(rec, ANVIL_F_COUNT, &count) && count >= 0 && count <= UINT32_MAX));
	}
	if (!ok) {
		anvil_client_fail_one(cl, r);
		anvil_client_fail(cl, "malformed reply");
		return false;
	}
	if (status != 0) {
		const char *error = ipc_get_str(rec, IPC_F_ERROR);
		char why[160];
		(void)str_format(why, sizeof(why), "request failed: %.100s",
				 error != NULL ? error : "(no reason)");
		anvil_client_warn(cl, why);
	}
	anvil_reply_fn *cb = r->cb;
	void *cb_ctx = r->ctx;
	/* A connect cancelled after it was sent still counted: give it back. */
	if (cb == NULL && r->undo != NULL && status == 0)
		anvil_disconnect(cl, r->undo, r->undo + strlen(r->undo) + 1);
	free(r->undo);
	free(r);
	if (cb != NULL)
		cb(cb_ctx, status == 0 ? 0 : -1, (unsigned)count, (unsigned)rate);
	return true;
}

/* anvil_client_records: handle every whole record in the input. */
static void anvil_client_records(struct anvil_client *cl)
{
	while (!cl->free_requested && cl->fd >= 0 && cl->in.len > 0) {
		struct ipc_record *rec = NULL;
		const char *error = NULL;
		size_t used = 0;
		int ret = ipc_parse(cl->in.data, cl->in.len, &rec, &used, &error);
		if (ret == 0)
			return;
		if (ret < 0) {
			anvil_client_fail(cl, error);
			return;
		}
		str_consume(&cl->in, used);
		if (!cl->greeted) {
			if (ipc_check_version(rec, ANVIL_PROTOCOL, ANVIL_PROTOCOL_VERSION, &error) < 0)
				anvil_client_fail(cl, error);
			cl->greeted = cl->fd >= 0;
		} else {
			(void)anvil_client_reply(cl, rec);
		}
		ipc_record_free(&rec);
	}
}

/* anvil_client_read: what the socket has, then the records in it. */
static void anvil_client_read(struct anvil_client *cl)
{
	for (;;) {
		str_reserve(&cl->in, ANVIL_CLIENT_READ_CHUNK);
		ssize_t n = recv(cl->fd, cl->in.data + cl->in.len, ANVIL_CLIENT_READ_CHUNK, 0);
		if (n > 0) {
			cl->in.len += (size_t)n;
			cl->in.data[cl->in.len] = '\0';
			anvil_client_records(cl);
			if (cl->fd < 0 || cl->free_requested)
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		anvil_client_fail(cl, n == 0 ? "connection closed by anvil" : "read failed");
		return;
	}
}

/* anvil_client_io: the socket's event handler. */
static void anvil_client_io(void *ctx, int fd, unsigned events)
{
	struct anvil_client *cl = ctx;
	cl->busy++;
	if ((events & EVENT_WRITE) != 0)
		(void)anvil_client_flush(cl);
	if (cl->fd >= 0 && (events & (EVENT_READ | EVENT_ERROR)) != 0)
		anvil_client_read(cl);
	(void)anvil_client_release(cl);
}

/* ---- requests ---- */

/* anvil_send: queue one request; the handle when cb is set. */
static struct anvil_request *anvil_send(struct anvil_client *cl, const char *req,
					const char *service, const char *addr, bool has_count,
					anvil_reply_fn *cb, void *ctx)
{
	struct anvil_request *r = xcalloc(1, sizeof(*r));
	r->cb = cb;
	r->ctx = ctx;
	r->has_count = has_count;
	r->has_rate = strcmp(req, ANVIL_REQ_DISCONNECT) != 0;
	if (!anvil_name_valid(service, strlen(service), ANVIL_SERVICE_MAX) ||
	    !anvil_name_valid(addr, strlen(addr), ANVIL_CLIENT_MAX)) {
		/* never sent: anvil would hang up on it, losing our counts */
		anvil_client_fail_one(cl, r);
		return cb != NULL ? r : NULL;
	}
	if (cl->pending >= ANVIL_CLIENT_PENDING_MAX)
		anvil_client_fail(cl, "too many requests waiting for a reply");
	if (cl->fd < 0 && !anvil_client_open(cl)) {
		anvil_client_fail_one(cl, r);
		return cb != NULL ? r : NULL;
	}
	ipc_put_str(&cl->out, IPC_F_REQUEST, req);
	ipc_put_str(&cl->out, ANVIL_F_SERVICE, service);
	ipc_put_str(&cl->out, ANVIL_F_CLIENT, addr);
	ipc_end(&cl->out);
	if (has_count) {
		size_t slen = strlen(service), alen = strlen(addr);
		r->undo = xmalloc(slen + 1 + alen + 1);
		memcpy(r->undo, service, slen + 1);
		memcpy(r->undo + slen + 1, addr, alen + 1);
	}
	r->deadline = event_now_ms(cl->loop) + cl->timeout_ms;
	anvil_list_append(&cl->waiting, r);
	cl->pending++;
	anvil_client_arm(cl, &cl->timer, cl->timeout_ms, anvil_client_timeout);
	(void)anvil_client_flush(cl); /* a failure moved r to the failed list */
	return cb != NULL ? r : NULL;
}

struct anvil_request *anvil_connect(struct anvil_client *cl, const char *service,
				    const char *addr, anvil_reply_fn *cb, void *ctx)
{
	return anvil_send(cl, ANVIL_REQ_CONNECT, service, addr, true, cb, ctx);
}

void anvil_disconnect(struct anvil_client *cl, const char *service, const char *addr)
{
	/* A new connection to anvil holds no counts of ours to give back. */
	if (cl->fd < 0)
		return;
	(void)anvil_send(cl, ANVIL_REQ_DISCONNECT, service, addr, false, NULL, NULL);
}

struct anvil_request *anvil_message(struct anvil_client *cl, const char *service,
				    const char *addr, anvil_reply_fn *cb, void *ctx)
{
	return anvil_send(cl, ANVIL_REQ_MESSAGE, service, addr, false, cb, ctx);
}

struct anvil_request *anvil_rcpt(struct anvil_client *cl, const char *service,
				 const char *addr, anvil_reply_fn *cb, void *ctx)
{
	return anvil_send(cl, ANVIL_REQ_RCPT, service, addr, false, cb, ctx);
}

struct anvil_request *anvil_newtls(struct anvil_client *cl, const char *service,
				   const char *addr, anvil_reply_fn *cb, void *ctx)
{
	return anvil_send(cl, ANVIL_REQ_NEWTLS, service, addr, false, cb, ctx);
}

struct anvil_request *anvil_auth(struct anvil_client *cl, const char *service,
				 const char *addr, anvil_reply_fn *cb, void *ctx)
{
	return anvil_send(cl, ANVIL_REQ_AUTH, service, addr, false, cb, ctx);
}

void anvil_cancel(struct anvil_request **req)
{
	if (*req != NULL)
		(*req)->cb = NULL;
	*req = NULL;
}

/* ---- life cycle ---- */

struct anvil_client *anvil_client_create(struct event_loop *loop, const char *socket_path)
{
	struct anvil_client *cl = xcalloc(1, sizeof(*cl));
	cl->loop = loop;
	cl->path = xstrdup(socket_path);
	cl->timeout_ms = ANVIL_CLIENT_TIMEOUT_MS;
	cl->fd = -1;
	str_init(&cl->in);
	str_init(&cl->out);
	return cl;
}

void anvil_client_set_timeout(struct anvil_client *cl, unsigned msecs)
{
	cl->timeout_ms = msecs > 0 ? msecs : ANVIL_CLIENT_TIMEOUT_MS;
}

void anvil_client_free(struct anvil_client **clp)
{
	struct anvil_client *cl = *clp;
	*clp = NULL;
	if (cl == NULL)
		return;
	if (cl->busy > 0)
		cl->free_requested = true;
	else
		anvil_client_destroy(cl);
}
