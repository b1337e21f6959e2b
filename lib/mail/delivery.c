/* delivery.c: the qmgr <-> delivery agent request/result codec (see
 * delivery.h and doc/delivery.md).
 *
 * Grammar, in IPC records (mail/ipc.h):
 *
 *	request := header rcpt{rcpt_count}
 *	header  := request=deliver queue_id= queue_file= nexthop= rcpt_count=
 *	rcpt    := address= orig_rcpt= offset= notify= [orcpt=]
 *	reply   := result* done
 *	result  := offset= address= status= action= reply= relay=
 *	done    := done=1 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/delivery.h"
#include "mail/ipc.h"
#include "mail/queue.h"
#include "util/alloc.h"
#include "util/msg.h"

struct delivery_request_parser {
	struct delivery_request *req; /* being filled; NULL before the header */
	unsigned rcpts_expected; /* the header's rcpt_count */
};

static char delivery_errbuf[256];

/* delivery_error: format an error into static storage. */
static const char *delivery_error(const char *fmt, ...) ATTR_FORMAT(1, 2);
static const char *delivery_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	(void)vsnprintf(delivery_errbuf, sizeof(delivery_errbuf), fmt, ap);
	va_end(ap);
	return delivery_errbuf;
}

/* delivery_action_name: the wire name of an action. */
const char *delivery_action_name(enum delivery_action action)
{
	switch (action) {
	case DELIVERY_DELIVERED:
		return "delivered";
	case DELIVERY_DEFERRED:
		return "deferred";
	case DELIVERY_BOUNCED:
		return "bounced";
	}
	msg_panic("delivery_action_name: bad action %d", (int)action);
}

/* delivery_action_parse: the action for a wire name. */
bool delivery_action_parse(const char *name, enum delivery_action *action_r)
{
	static const enum delivery_action all[] = {DELIVERY_DELIVERED, DELIVERY_DEFERRED,
						    DELIVERY_BOUNCED};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(name, delivery_action_name(all[i])) == 0) {
			*action_r = all[i];
			return true;
		}
	}
	return false;
}

/* delivery_digits: n decimal digits from *p (1..max); advances *p. */
static bool delivery_digits(const char **p, int max)
{
	int n = 0;
	while (**p >= '0' && **p <= '9') {
		(*p)++;
		if (++n > max)
			return false;
	}
	return n > 0;
}

/* delivery_status_valid: RFC 3463 class.subject.detail, class 2/4/5. */
bool delivery_status_valid(const char *status)
{
	const char *p = status;
	if (*p != '2' && *p != '4' && *p != '5')
		return false;
	p++;
	if (*p++ != '.' || !delivery_digits(&p, 3) || *p++ != '.' || !delivery_digits(&p, 3))
		return false;
	return *p == '\0';
}

/* delivery_action_class: the status class an action needs. */
static char delivery_action_class(enum delivery_action action)
{
	return action == DELIVERY_DELIVERED ? '2' : action == DELIVERY_DEFERRED ? '4' : '5';
}

/* delivery_text_ok: 1..max bytes (0 allowed when empty_ok), no control
 * characters. */
static bool delivery_text_ok(const char *s, size_t len, size_t max, bool empty_ok)
{
	if (len > max || (len == 0 && !empty_ok))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* delivery_get_text: a validated text field, or NULL with *error_r. */
static const char *delivery_get_text(const struct ipc_record *rec, const char *name, size_t max,
				     bool empty_ok, const char **error_r)
{
	size_t len = 0;
	const char *v = ipc_get_data(rec, name, &len);
	if (v == NULL) {
		*error_r = delivery_error("missing field %s", name);
		return NULL;
	}
	if (!delivery_text_ok(v, len, max, empty_ok)) {
		*error_r = delivery_error("bad value for field %s", name);
		return NULL;
	}
	return v;
}

/* delivery_get_uint: a non-negative integer field up to max. */
static bool delivery_get_uint(const struct ipc_record *rec, const char *name, long long max,
			      long long *value_r, const char **error_r)
{
	if (!ipc_get_int(rec, name, value_r) || *value_r < 0 || *value_r > max) {
		*error_r = delivery_error("missing or bad field %s", name);
		return false;
	}
	return true;
}

/* delivery_queue_file_ok: a relative path with no "." or ".." component. */
static bool delivery_queue_file_ok(const char *path)
{
	if (path[0] == '/')
		return false;
	for (const char *p = path; *p != '\0';) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += n;
		if (*p == '/')
			p++;
	}
	return true;
}

/* ---- client side ---- */

/* delivery_check_version: the agent's greeting. */
int delivery_check_version(const struct ipc_record *rec, const char **error_r)
{
	return ipc_check_version(rec, DELIVERY_PROTOCOL, DELIVERY_PROTOCOL_VERSION, error_r);
}

/* delivery_request_write: the header and one record per recipient. */
void delivery_request_write(struct str *out, const struct delivery_request *req)
{
	if (req->rcpt_count == 0 || req->rcpt_count > DELIVERY_RCPT_MAX)
		msg_panic("delivery_request_write: %u recipients", req->rcpt_count);
	ipc_put_str(out, DELIVERY_F_REQUEST, DELIVERY_REQ_DELIVER);
	ipc_put_str(out, DELIVERY_F_QUEUE_ID, req->queue_id);
	ipc_put_str(out, DELIVERY_F_QUEUE_FILE, req->queue_file);
	ipc_put_str(out, DELIVERY_F_NEXTHOP, req->nexthop);
	ipc_put_int(out, DELIVERY_F_RCPT_COUNT, req->rcpt_count);
	ipc_end(out);
	for (unsigned i = 0; i < req->rcpt_count; i++) {
		const struct delivery_rcpt *r = &req->rcpts[i];
		if (strlen(r->address) > DELIVERY_ADDRESS_MAX)
			msg_panic("delivery_request_write: address too long");
		ipc_put_str(out, DELIVERY_F_ADDRESS, r->address);
		ipc_put_str(out, DELIVERY_F_ORIG_RCPT, r->orig_rcpt != NULL ? r->orig_rcpt : "");
		ipc_put_int(out, DELIVERY_F_OFFSET, r->offset);
		ipc_put_int(out, DELIVERY_F_NOTIFY, r->notify);
		if (r->orcpt != NULL)
			ipc_put_str(out, DELIVERY_F_ORCPT, r->orcpt);
		ipc_end(out);
	}
}

/* delivery_result_decode: the fields of a result record. */
static int delivery_result_decode(const struct ipc_record *rec, struct delivery_result *res,
				  const char **error_r)
{
	const char *status, *action;
	if (!delivery_get_uint(rec, DELIVERY_F_OFFSET, (long long)1 << 62, &res->offset, error_r))
		return -1;
	if ((res->address = delivery_get_text(rec, DELIVERY_F_ADDRESS, DELIVERY_ADDRESS_MAX,
					      true, error_r)) == NULL ||
	    (status = delivery_get_text(rec, DELIVERY_F_STATUS, DELIVERY_STATUS_MAX - 1, false,
					error_r)) == NULL ||
	    (action = delivery_get_text(rec, DELIVERY_F_ACTION, 16, false, error_r)) == NULL ||
	    (res->reply = delivery_get_text(rec, DELIVERY_F_REPLY, DELIVERY_TEXT_MAX, false,
					    error_r)) == NULL ||
	    (res->relay = delivery_get_text(rec, DELIVERY_F_RELAY, DELIVERY_TEXT_MAX, false,
					    error_r)) == NULL)
		return -1;
	if (!delivery_action_parse(action, &res->action)) {
		*error_r = delivery_error("unknown action");
		return -1;
	}
	if (!delivery_status_valid(status) || status[0] != delivery_action_class(res->action)) {
		*error_r = delivery_error("bad status for action %s", action);
		return -1;
	}
	(void)str_copy(res->status, sizeof(res->status), status);
	return 0;
}

/* delivery_reply_parse: one result or done record from in. */
int delivery_reply_parse(const char *in, size_t len, struct delivery_reply *reply_r,
			 size_t *consumed_r, const char **error_r)
{
	struct ipc_record *rec = NULL;
	long long done = 0;
	size_t done_len = 0;
	memset(reply_r, 0, sizeof(*reply_r));
	int r = ipc_parse(in, len, &rec, consumed_r, error_r);
	if (r <= 0)
		return r;
	if (ipc_get_data(rec, DELIVERY_F_DONE, &done_len) != NULL) {
		if (!ipc_get_int(rec, DELIVERY_F_DONE, &done) || done != 1 ||
		    ipc_field_count(rec) != 1) {
			ipc_record_free(&rec);
			*error_r = delivery_error("bad done record");
			return -1;
		}
		ipc_record_free(&rec);
		reply_r->done = true;
		return 1;
	}
	if (delivery_result_decode(rec, &reply_r->result, error_r) < 0) {
		ipc_record_free(&rec);
		memset(reply_r, 0, sizeof(*reply_r));
		return -1;
	}
	reply_r->rec = rec;
	return 1;
}

/* delivery_reply_clear: free what delivery_reply_parse kept. */
void delivery_reply_clear(struct delivery_reply *reply)
{
	ipc_record_free(&reply->rec);
	memset(reply, 0, sizeof(*reply));
}

/* ---- server side ---- */

/* delivery_version_write: the agent's greeting. */
void delivery_version_write(struct str *out)
{
	ipc_put_version(out, DELIVERY_PROTOCOL, DELIVERY_PROTOCOL_VERSION);
}

/* delivery_request_parser_create: a parser waiting for a header. */
struct delivery_request_parser *delivery_request_parser_create(void)
{
	return xcalloc(1, sizeof(struct delivery_request_parser));
}

/* delivery_request_parser_free: free the parser and any partial request. */
void delivery_request_parser_free(struct delivery_request_parser **p)
{
	if (*p == NULL)
		return;
	delivery_request_free(&(*p)->req);
	free(*p);
	*p = NULL;
}

/* delivery_request_free: free a request the parser returned. */
void delivery_request_free(struct delivery_request **req)
{
	struct delivery_request *r = *req;
	if (r == NULL)
		return;
	for (unsigned i = 0; i < r->rcpt_count; i++) {
		free(r->rcpts[i].address);
		free(r->rcpts[i].orig_rcpt);
		free(r->rcpts[i].orcpt);
	}
	free(r->rcpts);
	free(r->queue_id);
	free(r->queue_file);
	free(r->nexthop);
	free(r);
	*req = NULL;
}

/* delivery_header_decode: a new request from its header record. */
static struct delivery_request *delivery_header_decode(const struct ipc_record *rec,
						       unsigned *count_r, const char **error_r)
{
	const char *req, *id, *file, *nexthop;
	long long count;
	if ((req = delivery_get_text(rec, DELIVERY_F_REQUEST, 32, false, error_r)) == NULL)
		return NULL;
	if (strcmp(req, DELIVERY_REQ_DELIVER) != 0) {
		*error_r = delivery_error("unknown request");
		return NULL;
	}
	if ((id = delivery_get_text(rec, DELIVERY_F_QUEUE_ID, QUEUE_ID_MAX_LEN, false,
				    error_r)) == NULL ||
	    (file = delivery_get_text(rec, DELIVERY_F_QUEUE_FILE, DELIVERY_QUEUE_FILE_MAX, false,
				      error_r)) == NULL ||
	    (nexthop = delivery_get_text(rec, DELIVERY_F_NEXTHOP, DELIVERY_NEXTHOP_MAX, false,
					 error_r)) == NULL)
		return NULL;
	if (!queue_id_valid(id)) {
		*error_r = delivery_error("bad queue_id");
		return NULL;
	}
	if (!delivery_queue_file_ok(file)) {
		*error_r = delivery_error("bad queue_file");
		return NULL;
	}
	if (!ipc_get_int(rec, DELIVERY_F_RCPT_COUNT, &count) || count < 1 ||
	    count > DELIVERY_RCPT_MAX) {
		*error_r = delivery_error("missing or bad field %s", DELIVERY_F_RCPT_COUNT);
		return NULL;
	}
	struct delivery_request *r = xcalloc(1, sizeof(*r));
	r->queue_id = xstrdup(id);
	r->queue_file = xstrdup(file);
	r->nexthop = xstrdup(nexthop);
	r->rcpts = xcalloc((size_t)count, sizeof(*r->rcpts));
	/* rcpt_count counts the records filled so far until the last one */
	r->rcpt_count = 0;
	*count_r = (unsigned)count;
	return r;
}

/* delivery_rcpt_decode: one recipient record into r. */
static int delivery_rcpt_decode(const struct ipc_record *rec, struct delivery_rcpt *r,
				const char **error_r)
{
	const char *addr, *orig, *orcpt = NULL;
	long long offset, notify;
	size_t orcpt_len = 0;
	if ((addr = delivery_get_text(rec, DELIVERY_F_ADDRESS, DELIVERY_ADDRESS_MAX, false,
				      error_r)) == NULL ||
	    (orig = delivery_get_text(rec, DELIVERY_F_ORIG_RCPT, DELIVERY_ADDRESS_MAX, true,
				      error_r)) == NULL)
		return -1;
	if (!delivery_get_uint(rec, DELIVERY_F_OFFSET, (long long)1 << 62, &offset, error_r) ||
	    !delivery_get_uint(rec, DELIVERY_F_NOTIFY, 15, &notify, error_r))
		return -1;
	if (ipc_get_data(rec, DELIVERY_F_ORCPT, &orcpt_len) != NULL &&
	    (orcpt = delivery_get_text(rec, DELIVERY_F_ORCPT, DELIVERY_ADDRESS_MAX + 16, false,
				       error_r)) == NULL)
		return -1;
	r->address = xstrdup(addr);
	r->orig_rcpt = xstrdup(orig);
	r->offset = offset;
	r->notify = (unsigned)notify;
	r->orcpt = orcpt != NULL ? xstrdup(orcpt) : NULL;
	return 0;
}

/* delivery_request_parser_record: take one record; 1 when the request is
 * complete. */
static int delivery_request_parser_record(struct delivery_request_parser *p,
					  const struct ipc_record *rec, const char **error_r)
{
	if (p->req == NULL) {
		if ((p->req = delivery_header_decode(rec, &p->rcpts_expected, error_r)) == NULL)
			return -1;
		return 0;
	}
	struct delivery_rcpt *r = &p->req->rcpts[p->req->rcpt_count];
	if (delivery_rcpt_decode(rec, r, error_r) < 0)
		return -1;
	p->req->rcpt_count++;
	return p->req->rcpt_count == p->rcpts_expected ? 1 : 0;
}

/* delivery_request_parser_feed: consume records until a request is whole. */
int delivery_request_parser_feed(struct delivery_request_parser *p, struct str *in,
				 struct delivery_request **req_r, const char **error_r)
{
	for (;;) {
		struct ipc_record *rec = NULL;
		size_t used = 0;
		int r = ipc_parse(in->data, in->len, &rec, &used, error_r);
		if (r <= 0)
			return r;
		str_consume(in, used);
		r = delivery_request_parser_record(p, rec, error_r);
		ipc_record_free(&rec);
		if (r < 0) {
			delivery_request_free(&p->req);
			return -1;
		}
		if (r > 0) {
			*req_r = p->req;
			p->req = NULL;
			return 1;
		}
	}
}

/* delivery_put_text: a text field with control characters replaced and
 * the length capped, so a remote reply can never break the record. */
static void delivery_put_text(struct str *out, const char *name, const char *text)
{
	struct str clean;
	str_init(&clean);
	for (size_t i = 0; text[i] != '\0' && i < DELIVERY_TEXT_MAX; i++) {
		unsigned char c = (unsigned char)text[i];
		str_append_c(&clean, c < 0x20 || c == 0x7f ? ' ' : (char)c);
	}
	if (clean.len == 0)
		str_append_c(&clean, ' ');
	ipc_put_data(out, name, clean.data, clean.len);
	str_deinit(&clean);
}

/* delivery_result_write: one result record. */
void delivery_result_write(struct str *out, const struct delivery_result *res)
{
	if (!delivery_status_valid(res->status) ||
	    res->status[0] != delivery_action_class(res->action))
		msg_panic("delivery_result_write: status %s for action %s", res->status,
			  delivery_action_name(res->action));
	ipc_put_int(out, DELIVERY_F_OFFSET, res->offset);
	ipc_put_str(out, DELIVERY_F_ADDRESS, res->address);
	ipc_put_str(out, DELIVERY_F_STATUS, res->status);
	ipc_put_str(out, DELIVERY_F_ACTION, delivery_action_name(res->action));
	delivery_put_text(out, DELIVERY_F_REPLY, res->reply);
	delivery_put_text(out, DELIVERY_F_RELAY, res->relay);
	ipc_end(out);
}

/* delivery_done_write: the record that ends the answer to a request. */
void delivery_done_write(struct str *out)
{
	ipc_put_int(out, DELIVERY_F_DONE, 1);
	ipc_end(out);
}
