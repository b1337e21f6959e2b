/* dns.c: DNS lookups on libunbound, and smtpd's client name lookup; see
 * dns.h.
 *
 * libunbound resolves in a worker thread (ub_ctx_async(ctx, 1)) and hands
 * results back through a pipe, ub_fd(), which the event loop watches; then
 * ub_process() calls dns_ub_done() in this thread. A thread rather than
 * libunbound's forked process: ub_ctx_delete() joins it, so nothing is left
 * behind, and a forked worker would be a copy of the whole daemon (running
 * LeakSanitizer's exit check on its copy of our heap in the tests). The
 * daemons never fork without exec, so a thread is safe. The thread is started
 * with signals blocked, so that signals still reach the loop's signalfd.
 *
 * libunbound has no timeout for async queries: each query carries an event
 * timer, and ub_cancel() drops the query when it fires. Once ub_cancel()
 * returns, libunbound never calls back for that query (in thread mode it
 * marks the query, and the answer is discarded in ub_process()).
 *
 * Handles are in one list per client, so dns_client_free() can cancel them.
 * A finished query is unlinked ("detached") before its callback and freed
 * after it. */
/* Angle brackets: "config.h" would find lib/mail/config.h (main.cf) first. */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>

#include "mail/dns.h"
#include "util/alloc.h"
#include "util/events.h"
#include "util/msg.h"
#include "util/str.h"

#define DNS_CLASS_IN 1
#define DNS_UNKNOWN "unknown"

/* gai_strerror() texts that Postfix logs for these outcomes. */
#define DNS_EAI_NONAME "Name or service not known"
#define DNS_EAI_NODATA "No address associated with hostname"
#define DNS_EAI_AGAIN "Temporary failure in name resolution"
#define DNS_EAI_FAIL "Non-recoverable failure in name resolution"

#define DNS_ERR_MALFORMED "malformed answer"
#define DNS_ERR_INVALID_NAME "invalid name"

struct dns_client {
	struct event_loop *loop;
	struct ub_ctx *ctx;
	struct event_io *io;
	unsigned timeout_ms;
	unsigned max_queries;
	unsigned in_flight;
	bool worker_started;
	bool broken;	   /* the worker's pipe failed: new queries fail */
	bool processing;   /* inside ub_process() */
	bool free_pending; /* dns_client_free() was called while processing */
	struct dns_query *queries;
};

struct dns_peer_state {
	struct dns_query *inner; /* the PTR, A or AAAA lookup under way */
	dns_peername_fn *fn;
	void *ctx;
	struct sockaddr_storage sa; /* v4-mapped addresses as AF_INET */
	char addr[INET6_ADDRSTRLEN];
	char *names[DNS_PEER_MAX_NAMES];
	size_t name_count;
	size_t name_next;
	bool temp_failure; /* a forward lookup failed temporarily */
	enum dns_peer_status reverse_status;
};

struct dns_query {
	struct dns_client *client;
	struct dns_query *prev, *next;
	int async_id;
	bool in_flight;		   /* accepted by libunbound, not answered */
	bool detached;		   /* finished: callback running */
	struct event_timer *timer; /* the timeout, or a deferred completion */
	const char *fail;	   /* the deferred failure (static text) */
	int rrtype;
	dns_done_fn *fn;
	void *ctx;
	struct dns_peer_state *peer; /* dns_peername() handles only */
	struct dns_query *parent;    /* the dns_peername() handle of an inner lookup */
};

/* dns_error: format an error_r message into static storage. */
static const char *dns_error(const char *fmt, ...) ATTR_FORMAT(1, 2);
static const char *dns_error(const char *fmt, ...)
{
	static char buf[512];
	va_list ap;
	va_start(ap, fmt);
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return buf;
}

/* dns_ctx_setup: apply the settings to a fresh libunbound context. */
static const char *dns_ctx_setup(struct ub_ctx *ctx, const struct dns_client_settings *set)
{
	bool have_fwd = set->forwarders != NULL && set->forwarders[0] != NULL;
	int r;

	if (have_fwd || set->use_resolv_conf) {
		/* Explicit servers may be a local resolver on loopback. */
		if ((r = ub_ctx_set_option(ctx, "do-not-query-localhost:", "no")) != 0)
			return dns_error("do-not-query-localhost: %s", ub_strerror(r));
	}
	if (have_fwd) {
		for (size_t i = 0; set->forwarders[i] != NULL; i++) {
			if ((r = ub_ctx_set_fwd(ctx, set->forwarders[i])) != 0)
				return dns_error("DNS forwarder %s: %s", set->forwarders[i],
						 ub_strerror(r));
		}
	} else if (set->use_resolv_conf) {
		if ((r = ub_ctx_resolvconf(ctx, NULL)) != 0)
			return dns_error("/etc/resolv.conf: %s", ub_strerror(r));
	}
	if (set->trust_anchor_file != NULL && set->trust_anchor_file[0] != '\0') {
		FILE *fp = fopen(set->trust_anchor_file, "r");
		if (fp == NULL)
			return dns_error("open(%s) failed: %s", set->trust_anchor_file,
					 strerror(errno));
		(void)fclose(fp);
		if ((r = ub_ctx_add_ta_file(ctx, set->trust_anchor_file)) != 0)
			return dns_error("%s: %s", set->trust_anchor_file, ub_strerror(r));
	} else if ((r = ub_ctx_set_option(ctx, "module-config:", "iterator")) != 0) {
		return dns_error("module-config: %s", ub_strerror(r));
	}
	if ((r = ub_ctx_async(ctx, 1)) != 0)
		return dns_error("ub_ctx_async: %s", ub_strerror(r));
	/* Finalize now, without a query: the trust anchor is read here (before
	 * any chroot) and its errors are reported to the caller. Removing a
	 * local zone that does not exist is libunbound's one side-effect-free
	 * call that finalizes the context. */
	if ((r = ub_ctx_zone_remove(ctx, "petrel-init.invalid.")) != 0) {
		if (set->trust_anchor_file != NULL && set->trust_anchor_file[0] != '\0')
			return dns_error("libunbound initialization failed: %s (is %s a trust "
					 "anchor file?)", ub_strerror(r), set->trust_anchor_file);
		return dns_error("libunbound initialization failed: %s", ub_strerror(r));
	}
	return NULL;
}

static void dns_client_io(void *ctx, int fd, unsigned events);

/* dns_client_create: see dns.h. */
struct dns_client *dns_client_create(struct event_loop *loop,
				     const struct dns_client_settings *set,
				     const char **error_r)
{
	struct ub_ctx *ctx = ub_ctx_create();
	if (ctx == NULL) {
		*error_r = "ub_ctx_create() failed";
		return NULL;
	}
	const char *error = dns_ctx_setup(ctx, set);
	if (error != NULL) {
		ub_ctx_delete(ctx);
		*error_r = error;
		return NULL;
	}
	int fd = ub_fd(ctx);
	if (fd < 0) {
		ub_ctx_delete(ctx);
		*error_r = "ub_fd() failed";
		return NULL;
	}
	struct dns_client *c = xcalloc(1, sizeof(*c));
	c->loop = loop;
	c->ctx = ctx;
	c->timeout_ms = set->timeout_ms > 0 ? set->timeout_ms : DNS_DEFAULT_TIMEOUT_MS;
	c->max_queries = set->max_queries > 0 ? set->max_queries : DNS_DEFAULT_MAX_QUERIES;
	c->io = event_io_add(loop, fd, EVENT_READ, dns_client_io, c);
	return c;
}

/* dns_client_destroy: stop the worker and release everything. */
static void dns_client_destroy(struct dns_client *c)
{
	event_io_remove(&c->io);
	ub_ctx_delete(c->ctx);
	free(c);
}

static void dns_query_free(struct dns_query *q);

/* dns_client_free: see dns.h. */
void dns_client_free(struct dns_client **clientp)
{
	struct dns_client *c = *clientp;
	if (c == NULL)
		return;
	*clientp = NULL;
	while (c->queries != NULL)
		dns_query_free(c->queries);
	if (c->processing)
		c->free_pending = true; /* dns_client_io() finishes the job */
	else
		dns_client_destroy(c);
}

/* dns_client_io: results are waiting in libunbound's pipe. */
static void dns_client_io(void *ctx, int fd, unsigned events)
{
	struct dns_client *c = ctx;
	c->processing = true;
	int r = ub_process(c->ctx);
	c->processing = false;
	if (c->free_pending) {
		dns_client_destroy(c);
		return;
	}
	if (r != 0) {
		/* The worker is gone; stop watching its pipe (it would stay
		 * readable). Queries in flight end by their timeouts. */
		msg_error("libunbound: ub_process() failed: %s", ub_strerror(r));
		event_io_remove(&c->io);
		c->broken = true;
	}
}

/* dns_query_new: a handle linked into the client's list. */
static struct dns_query *dns_query_new(struct dns_client *c)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));
	q->client = c;
	q->next = c->queries;
	if (c->queries != NULL)
		c->queries->prev = q;
	c->queries = q;
	return q;
}

/* dns_query_unlink: take q out of the client's list. */
static void dns_query_unlink(struct dns_query *q)
{
	struct dns_client *c = q->client;
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		c->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

/* dns_query_stop: end q's timer and its libunbound query, if any. */
static void dns_query_stop(struct dns_query *q)
{
	event_timer_remove(&q->timer);
	if (q->in_flight) {
		/* Whatever it returns, no callback comes for this id now. */
		int r = ub_cancel(q->client->ctx, q->async_id);
		if (r != 0)
			msg_debug("ub_cancel(%d): %s", q->async_id, ub_strerror(r));
		q->in_flight = false;
		q->client->in_flight--;
	}
}

/* dns_query_release: free a handle that is no longer linked. */
static void dns_query_release(struct dns_query *q)
{
	if (q->peer != NULL) {
		for (size_t i = 0; i < q->peer->name_count; i++)
			free(q->peer->names[i]);
		free(q->peer);
	}
	free(q);
}

/* dns_query_free: cancel a live handle and free it (no callback). */
static void dns_query_free(struct dns_query *q)
{
	dns_query_stop(q);
	if (q->peer != NULL)
		dns_cancel(&q->peer->inner);
	if (q->parent != NULL)
		q->parent->peer->inner = NULL;
	dns_query_unlink(q);
	dns_query_release(q);
}

/* dns_query_detach: a query is finishing; its callback comes next. */
static void dns_query_detach(struct dns_query *q)
{
	dns_query_stop(q);
	dns_query_unlink(q);
	q->detached = true;
}

/* dns_cancel: see dns.h. */
void dns_cancel(struct dns_query **queryp)
{
	struct dns_query *q = *queryp;
	if (q == NULL)
		return;
	*queryp = NULL;
	if (q->detached)
		return; /* its callback is running; freed when that returns */
	dns_query_free(q);
}

/* dns_query_finish: detach q, call back, free q. */
static void dns_query_finish(struct dns_query *q, const struct dns_result *res,
			     const char *error)
{
	dns_query_detach(q);
	q->fn(q->ctx, res, error);
	dns_query_release(q);
}

/* dns_query_failed: report error with an empty result. */
static void dns_query_failed(struct dns_query *q, const char *error)
{
	struct dns_result res = { .rrtype = q->rrtype, .rcode = -1 };
	dns_query_finish(q, &res, error);
}

/* dns_query_deferred: deliver a failure found before the query started. */
static void dns_query_deferred(void *ctx)
{
	struct dns_query *q = ctx;
	dns_query_failed(q, q->fail);
}

/* dns_query_timeout: the answer took too long. */
static void dns_query_timeout(void *ctx)
{
	dns_query_failed(ctx, "timeout");
}

/* dns_name_decode: see dns.h. */
bool dns_name_decode(const uint8_t *wire, size_t len, char *buf, size_t bufsize)
{
	size_t pos = 0, out = 0;

	if (len == 0 || len > 255 || bufsize < DNS_NAME_TEXT_MAX)
		return false;
	for (;;) {
		if (pos >= len)
			return false;
		size_t label = wire[pos++];
		if (label == 0)
			break;
		/* 0xc0 is a compression pointer, 0x40 an extended label:
		 * neither belongs in uncompressed rdata. */
		if (label > 63 || label > len - pos)
			return false;
		if (out > 0)
			buf[out++] = '.';
		for (size_t i = 0; i < label; i++) {
			unsigned char ch = wire[pos++];
			if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '*') {
				buf[out++] = (char)ch;
			} else if (ch == '.' || ch == '\\') {
				buf[out++] = '\\';
				buf[out++] = (char)ch;
			} else {
				(void)snprintf(buf + out, 5, "\\%03u", ch);
				out += 4;
			}
		}
	}
	if (pos != len)
		return false;
	if (out == 0)
		buf[out++] = '.';
	buf[out] = '\0';
	return true;
}

/* dns_hostname_numeric: digits and dots only (Postfix refuses those). */
static bool dns_hostname_numeric(const char *name)
{
	return name[strspn(name, "0123456789.")] == '\0';
}

/* dns_hostname_valid: see dns.h. */
bool dns_hostname_valid(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len == 0 || len > DNS_MAX_NAME_LEN || dns_hostname_numeric(name))
		return false;
	for (size_t i = 0; i <= len; i++) {
		char ch = name[i];
		if (ch == '.' || ch == '\0') {
			if (label == 0 || label > 63 || name[i - 1] == '-')
				return false;
			label = 0;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			   (ch >= '0' && ch <= '9') || ch == '_' || (ch == '-' && label > 0)) {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

/* dns_result_alloc: the arrays that rrtype uses, for count records. */
static void dns_result_alloc(struct dns_result *res, size_t count)
{
	res->count = count;
	res->rdata = xcalloc(count + 1, sizeof(*res->rdata));
	res->rdata_len = xcalloc(count + 1, sizeof(*res->rdata_len));
	switch (res->rrtype) {
	case DNS_TYPE_MX:
		res->prefs = xcalloc(count + 1, sizeof(*res->prefs));
		/* fall through */
	case DNS_TYPE_PTR:
	case DNS_TYPE_CNAME:
	case DNS_TYPE_NS:
		res->names = xcalloc(count + 1, sizeof(*res->names));
		break;
	case DNS_TYPE_A:
	case DNS_TYPE_AAAA:
		res->addrs = xcalloc(count + 1, sizeof(*res->addrs));
		break;
	default:
		break;
	}
}

/* dns_result_free: release what dns_result_alloc() and parsing made. */
static void dns_result_free(struct dns_result *res)
{
	if (res->names != NULL) {
		for (size_t i = 0; i < res->count; i++)
			free(res->names[i]);
	}
	free(res->names);
	free(res->prefs);
	free(res->addrs);
	free(res->rdata);
	free(res->rdata_len);
}

/* dns_record_parse: decode record i of res from its rdata. */
static bool dns_record_parse(struct dns_result *res, size_t i, const uint8_t *data, size_t len)
{
	char name[DNS_NAME_TEXT_MAX];

	res->rdata[i] = data;
	res->rdata_len[i] = len;
	switch (res->rrtype) {
	case DNS_TYPE_A: {
		struct sockaddr_in *sin = (struct sockaddr_in *)&res->addrs[i];
		if (len != 4)
			return false;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, data, 4);
		return true;
	}
	case DNS_TYPE_AAAA: {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&res->addrs[i];
		if (len != 16)
			return false;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, data, 16);
		return true;
	}
	case DNS_TYPE_MX:
		if (len < 3 || !dns_name_decode(data + 2, len - 2, name, sizeof(name)))
			return false;
		res->prefs[i] = (unsigned short)((data[0] << 8) | data[1]);
		res->names[i] = xstrdup(name);
		return true;
	case DNS_TYPE_PTR:
	case DNS_TYPE_CNAME:
	case DNS_TYPE_NS:
		if (!dns_name_decode(data, len, name, sizeof(name)))
			return false;
		res->names[i] = xstrdup(name);
		return true;
	default:
		return true;
	}
}

/* dns_result_parse: fill res from libunbound's result; NULL or an error.
 * The data arrays hold each record's rdata with names uncompressed. */
static const char *dns_result_parse(struct dns_result *res, const struct ub_result *ub,
				    char *errbuf, size_t errsize)
{
	static const char *const rcodes[] = { "NOERROR", "FORMERR", "SERVFAIL",
					      "NXDOMAIN", "NOTIMP", "REFUSED" };
	size_t count = 0;

	res->rcode = ub->rcode;
	res->secure = ub->secure != 0;
	res->bogus = ub->bogus != 0;
	res->nxdomain = ub->nxdomain != 0;
	res->ttl = ub->ttl > 0 ? (unsigned)ub->ttl : 0;
	res->canonname = ub->canonname;
	if (res->bogus) {
		(void)snprintf(errbuf, errsize, "DNSSEC validation failed: %.200s",
			       ub->why_bogus != NULL ? ub->why_bogus : "bogus");
		return errbuf;
	}
	if (ub->rcode != DNS_RCODE_NOERROR && ub->rcode != DNS_RCODE_NXDOMAIN) {
		if (ub->rcode > 0 && ub->rcode < (int)(sizeof(rcodes) / sizeof(rcodes[0])))
			return rcodes[ub->rcode];
		(void)snprintf(errbuf, errsize, "rcode %d", ub->rcode);
		return errbuf;
	}
	if (!ub->havedata || ub->data == NULL)
		return NULL;
	while (ub->data[count] != NULL && count <= DNS_MAX_RECORDS)
		count++;
	if (count > DNS_MAX_RECORDS) {
		res->truncated = true;
		count = DNS_MAX_RECORDS;
	}
	dns_result_alloc(res, count);
	for (size_t i = 0; i < count; i++) {
		if (ub->len[i] < 0 ||
		    !dns_record_parse(res, i, (const uint8_t *)ub->data[i], (size_t)ub->len[i]))
			return DNS_ERR_MALFORMED;
	}
	return NULL;
}

/* dns_ub_done: libunbound's callback, from ub_process(). */
static void dns_ub_done(void *mydata, int err, struct ub_result *ub)
{
	struct dns_query *q = mydata;
	struct dns_result res = { .rrtype = q->rrtype, .rcode = -1 };
	const char *error;
	char errbuf[256];

	q->in_flight = false;
	q->client->in_flight--;
	if (err == UB_SYNTAX)
		error = DNS_ERR_INVALID_NAME;
	else if (err != 0 || ub == NULL)
		error = err != 0 ? ub_strerror(err) : "no result";
	else
		error = dns_result_parse(&res, ub, errbuf, sizeof(errbuf));
	if (error != NULL) {
		/* A failed answer carries no records. */
		dns_result_free(&res);
		struct dns_result empty = { .rrtype = res.rrtype, .rcode = res.rcode,
					    .bogus = res.bogus, .secure = res.secure };
		res = empty;
	}
	dns_query_finish(q, &res, error);
	dns_result_free(&res);
	ub_resolve_free(ub);
}

/* dns_resolve_start: hand the query to libunbound. The first call starts
 * the worker thread; it inherits the mask, so block signals around it. */
static int dns_resolve_start(struct dns_client *c, struct dns_query *q, const char *name)
{
	sigset_t all, old;
	bool first = !c->worker_started;
	int r;

	if (first) {
		sigfillset(&all);
		/* Faults must still kill the process where they happen. */
		sigdelset(&all, SIGSEGV);
		sigdelset(&all, SIGBUS);
		sigdelset(&all, SIGFPE);
		sigdelset(&all, SIGILL);
		sigdelset(&all, SIGABRT);
		pthread_sigmask(SIG_BLOCK, &all, &old);
	}
	r = ub_resolve_async(c->ctx, name, q->rrtype, DNS_CLASS_IN, q, dns_ub_done,
			     &q->async_id);
	if (first) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		c->worker_started = r == 0;
	}
	return r;
}

/* dns_query_defer: fail q from the loop (never inside the caller). */
static void dns_query_defer(struct dns_query *q, const char *error)
{
	q->fail = error;
	q->timer = event_timer_add(q->client->loop, 0, dns_query_deferred, q);
}

/* dns_lookup: see dns.h. */
struct dns_query *dns_lookup(struct dns_client *c, const char *name, int rrtype,
			     dns_done_fn *fn, void *ctx)
{
	struct dns_query *q = dns_query_new(c);
	size_t len = strlen(name);
	int r;

	if (rrtype <= 0 || rrtype > 65535)
		msg_panic("dns_lookup: bad record type %d", rrtype);
	q->rrtype = rrtype;
	q->fn = fn;
	q->ctx = ctx;
	if (len == 0 || len > DNS_MAX_NAME_LEN + (name[len - 1] == '.' ? 1 : 0)) {
		dns_query_defer(q, DNS_ERR_INVALID_NAME);
	} else if (c->broken) {
		dns_query_defer(q, "resolver failed");
	} else if (c->in_flight >= c->max_queries) {
		dns_query_defer(q, "too many outstanding queries");
	} else if ((r = dns_resolve_start(c, q, name)) != 0) {
		dns_query_defer(q, r == UB_SYNTAX ? DNS_ERR_INVALID_NAME : ub_strerror(r));
	} else {
		q->in_flight = true;
		c->in_flight++;
		q->timer = event_timer_add(c->loop, c->timeout_ms, dns_query_timeout, q);
	}
	return q;
}

/* dns_peer_finish: report the outcome of a dns_peername() query. */
static void dns_peer_finish(struct dns_query *q, const char *name, enum dns_peer_status status)
{
	struct dns_peer_state *p = q->peer;
	struct dns_peer peer = {
		.addr = p->addr,
		.name = name,
		.reverse_name = p->name_count > 0 ? p->names[0] : DNS_UNKNOWN,
		.name_status = status,
		.reverse_status = p->reverse_status,
	};
	dns_query_detach(q);
	p->fn(p->ctx, &peer);
	dns_query_release(q);
}

static void dns_peer_fwd_done(void *ctx, const struct dns_result *res, const char *error);

/* dns_peer_next: forward-resolve the next PTR name, or give up. */
static void dns_peer_next(struct dns_query *q)
{
	struct dns_peer_state *p = q->peer;
	if (p->name_next >= p->name_count) {
		dns_peer_finish(q, DNS_UNKNOWN, p->temp_failure ? DNS_PEER_TEMP : DNS_PEER_FORGED);
		return;
	}
	p->inner = dns_lookup(q->client, p->names[p->name_next],
			      p->sa.ss_family == AF_INET ? DNS_TYPE_A : DNS_TYPE_AAAA,
			      dns_peer_fwd_done, q);
	p->inner->parent = q;
}

/* dns_addr_equal: same address (ports ignored). */
static bool dns_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
			      &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		      &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

/* dns_peer_fwd_done: the A/AAAA answer for one PTR name. */
static void dns_peer_fwd_done(void *ctx, const struct dns_result *res, const char *error)
{
	struct dns_query *q = ctx;
	struct dns_peer_state *p = q->peer;
	const char *name = p->names[p->name_next++];
	const char *why = NULL;

	p->inner = NULL;
	if (error != NULL) {
		bool perm = strcmp(error, DNS_ERR_MALFORMED) == 0 ||
			    strcmp(error, DNS_ERR_INVALID_NAME) == 0;
		why = perm ? DNS_EAI_FAIL : DNS_EAI_AGAIN;
		if (!perm)
			p->temp_failure = true;
	} else if (res->nxdomain) {
		why = DNS_EAI_NONAME;
	} else if (res->count == 0) {
		why = DNS_EAI_NODATA;
	} else {
		for (size_t i = 0; i < res->count; i++) {
			if (dns_addr_equal(&res->addrs[i], &p->sa)) {
				dns_peer_finish(q, name, DNS_PEER_OK);
				return;
			}
		}
	}
	if (why != NULL)
		msg_warn("hostname %s does not resolve to address %s: %s", name, p->addr, why);
	else
		msg_warn("hostname %s does not resolve to address %s", name, p->addr);
	dns_peer_next(q);
}

/* dns_peer_ptr_done: the PTR answer; keep the usable names. */
static void dns_peer_ptr_done(void *ctx, const struct dns_result *res, const char *error)
{
	struct dns_query *q = ctx;
	struct dns_peer_state *p = q->peer;

	p->inner = NULL;
	if (error != NULL) {
		p->reverse_status = DNS_PEER_TEMP;
		dns_peer_finish(q, DNS_UNKNOWN, DNS_PEER_TEMP);
		return;
	}
	for (size_t i = 0; i < res->count && p->name_count < DNS_PEER_MAX_NAMES; i++) {
		const char *name = res->names[i];
		if (dns_hostname_numeric(name))
			msg_warn("numeric hostname: %s", name);
		else if (!dns_hostname_valid(name))
			msg_warn("malformed domain name in resource data of PTR record for %s",
				 p->addr);
		else
			p->names[p->name_count++] = xstrdup(name);
	}
	if (p->name_count == 0) {
		p->reverse_status = DNS_PEER_PERM;
		dns_peer_finish(q, DNS_UNKNOWN, DNS_PEER_PERM);
		return;
	}
	p->reverse_status = DNS_PEER_OK;
	dns_peer_next(q);
}

/* dns_peer_local: a non-IP client is "localhost", as in Postfix. */
static void dns_peer_local(void *ctx)
{
	struct dns_query *q = ctx;
	q->peer->reverse_status = DNS_PEER_OK;
	dns_peer_finish(q, "localhost", DNS_PEER_OK);
}

/* dns_reverse_name: the in-addr.arpa or ip6.arpa name of sa into buf. */
static void dns_reverse_name(const struct sockaddr_storage *sa, char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	struct str s = STR_INIT;

	if (sa->ss_family == AF_INET) {
		const uint8_t *b = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		str_printf(&s, "%u.%u.%u.%u.in-addr.arpa.", b[3], b[2], b[1], b[0]);
	} else {
		const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		for (int i = 15; i >= 0; i--)
			str_printf(&s, "%c.%c.", hex[b[i] & 0xf], hex[b[i] >> 4]);
		str_append(&s, "ip6.arpa.");
	}
	if (!str_copy(buf, size, str_c(&s)))
		msg_panic("dns_reverse_name: buffer too small");
	str_deinit(&s);
}

/* dns_peer_addr: copy sa into p, v4-mapped IPv6 as IPv4; false if not IP. */
static bool dns_peer_addr(struct dns_peer_state *p, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		memcpy(&p->sa, sa, sizeof(struct sockaddr_in));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&p->sa;
			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, sin6->sin6_addr.s6_addr + 12, 4);
		} else {
			memcpy(&p->sa, sa, sizeof(struct sockaddr_in6));
		}
	} else {
		return false;
	}
	const void *bin = p->sa.ss_family == AF_INET
				  ? (const void *)&((struct sockaddr_in *)&p->sa)->sin_addr
				  : (const void *)&((struct sockaddr_in6 *)&p->sa)->sin6_addr;
	if (inet_ntop(p->sa.ss_family, bin, p->addr, sizeof(p->addr)) == NULL)
		msg_panic("dns_peer_addr: inet_ntop failed: %s", strerror(errno));
	return true;
}

/* dns_peername: see dns.h. */
struct dns_query *dns_peername(struct dns_client *c, const struct sockaddr *sa,
			       dns_peername_fn *fn, void *ctx)
{
	struct dns_query *q = dns_query_new(c);
	struct dns_peer_state *p = xcalloc(1, sizeof(*p));
	char rev[80];

	q->peer = p;
	p->fn = fn;
	p->ctx = ctx;
	if (!dns_peer_addr(p, sa)) {
		(void)str_copy(p->addr, sizeof(p->addr), "127.0.0.1");
		q->timer = event_timer_add(c->loop, 0, dns_peer_local, q);
		return q;
	}
	dns_reverse_name(&p->sa, rev, sizeof(rev));
	p->inner = dns_lookup(c, rev, DNS_TYPE_PTR, dns_peer_ptr_done, q);
	p->inner->parent = q;
	return q;
}
