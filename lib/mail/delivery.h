/* delivery.h: the qmgr <-> delivery agent protocol (doc/delivery.md) on top
 * of the IPC record codec (mail/ipc.h): the request qmgr sends, the
 * per-recipient results and the done record the agent answers.
 *
 * API at a glance:
 *
 *   qmgr (client side):
 *     read the agent's greeting, then check it:
 *         ipc_parse(...) then delivery_check_version(rec, &error)
 *     send a request:
 *         delivery_request_write(out, &req);      // header + rcpt records
 *     read replies, one record at a time from the connection's buffer:
 *         r = delivery_reply_parse(in->data, in->len, &reply, &used, &error);
 *         // 1: one record (reply.done, or a result in reply.result);
 *         //    str_consume(in, used); delivery_reply_clear(&reply) after use
 *         // 0: need more bytes;  -1: protocol error (close, defer all)
 *
 *   agent (server side):
 *     delivery_version_write(out);                // first, on accept
 *     p = delivery_request_parser_create();
 *     r = delivery_request_parser_feed(p, in, &req, &error);
 *         // consumes from in; 1: *req complete (delivery_request_free
 *         // later); 0: need more; -1: protocol error (close)
 *     delivery_result_write(out, &result);         // one per rcpt, in order
 *     delivery_done_write(out);
 *     delivery_request_parser_free(&p);
 *
 * Decoding fails closed: a missing or malformed field, rcpt_count outside
 * 1..DELIVERY_RCPT_MAX, an address over DELIVERY_ADDRESS_MAX bytes or with
 * control characters, a status whose class disagrees with the action, a
 * queue_file outside the queue directory ("..", absolute) are errors.
 * Unknown fields are skipped (ipc.h). */
#ifndef PETREL_DELIVERY_H
#define PETREL_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>

#include "util/str.h"

struct ipc_record;

#define DELIVERY_PROTOCOL "delivery"
#define DELIVERY_PROTOCOL_VERSION 1

#define DELIVERY_RCPT_MAX 1000      /* recipients per request */
#define DELIVERY_ADDRESS_MAX 1024   /* address, orig_rcpt, orcpt bytes */
#define DELIVERY_NEXTHOP_MAX 1024   /* nexthop bytes */
#define DELIVERY_QUEUE_FILE_MAX 256 /* queue_file bytes */
#define DELIVERY_TEXT_MAX 4096      /* reply and relay bytes */
#define DELIVERY_STATUS_MAX 16      /* "5.7.1" and the like */

/* Field names (doc/delivery.md). */
#define DELIVERY_F_REQUEST "request"
#define DELIVERY_F_QUEUE_ID "queue_id"
#define DELIVERY_F_QUEUE_FILE "queue_file"
#define DELIVERY_F_NEXTHOP "nexthop"
#define DELIVERY_F_RCPT_COUNT "rcpt_count"
#define DELIVERY_F_ADDRESS "address"
#define DELIVERY_F_ORIG_RCPT "orig_rcpt"
#define DELIVERY_F_OFFSET "offset"
#define DELIVERY_F_NOTIFY "notify"
#define DELIVERY_F_ORCPT "orcpt"
#define DELIVERY_F_STATUS "status"
#define DELIVERY_F_ACTION "action"
#define DELIVERY_F_REPLY "reply"
#define DELIVERY_F_RELAY "relay"
#define DELIVERY_F_DONE "done"
#define DELIVERY_REQ_DELIVER "deliver"

enum delivery_action {
	DELIVERY_DELIVERED, /* status class 2 */
	DELIVERY_DEFERRED,  /* status class 4 */
	DELIVERY_BOUNCED,   /* status class 5 */
};

struct delivery_rcpt {
	char *address;   /* where to deliver (after aliases) */
	char *orig_rcpt; /* as received; "" when unknown */
	long long offset; /* the recipient's status byte in the queue file */
	unsigned notify;  /* QUEUE_NOTIFY_* bits, 0 when not given */
	char *orcpt;      /* "rfc822;addr" or NULL */
};

struct delivery_request {
	char *queue_id;
	char *queue_file; /* relative to queue_directory */
	char *nexthop;    /* "unix:PATH", "inet:HOST:PORT", or an smtp nexthop */
	struct delivery_rcpt *rcpts;
	unsigned rcpt_count;
};

struct delivery_result {
	long long offset;
	const char *address;
	char status[DELIVERY_STATUS_MAX]; /* "2.0.0" */
	enum delivery_action action;
	const char *reply; /* remote reply or the agent's reason */
	const char *relay; /* Postfix's relay= text ("none" when not connected) */
};

/* One record read by delivery_reply_parse: either done, or a result
 * whose strings point into the record (valid until delivery_reply_clear). */
struct delivery_reply {
	bool done;
	struct delivery_result result;
	struct ipc_record *rec; /* private */
};

/* --- both sides --- */
const char *delivery_action_name(enum delivery_action action);
/* delivery_action_parse: "delivered" etc.; false when unknown. */
bool delivery_action_parse(const char *name, enum delivery_action *action_r);
/* delivery_status_valid: "C.S.D" with C in 2,4,5, RFC 3463 digit counts. */
bool delivery_status_valid(const char *status);

/* --- client side (qmgr) --- */
/* delivery_check_version: rec is the agent's greeting. 0 or -1. */
int delivery_check_version(const struct ipc_record *rec, const char **error_r);
/* delivery_request_write: append the header and recipient records.
 * Panics on a request outside the limits (the caller builds it). */
void delivery_request_write(struct str *out, const struct delivery_request *req);
/* delivery_reply_parse: see the top of this file. */
int delivery_reply_parse(const char *in, size_t len, struct delivery_reply *reply_r,
			 size_t *consumed_r, const char **error_r);
void delivery_reply_clear(struct delivery_reply *reply);

/* --- server side (agent) --- */
struct delivery_request_parser;
void delivery_version_write(struct str *out);
struct delivery_request_parser *delivery_request_parser_create(void);
void delivery_request_parser_free(struct delivery_request_parser **p);
/* delivery_request_parser_feed: see the top of this file. */
int delivery_request_parser_feed(struct delivery_request_parser *p, struct str *in,
				 struct delivery_request **req_r, const char **error_r);
void delivery_request_free(struct delivery_request **req);
/* delivery_result_write: one result record; status must agree with action
 * (panic otherwise); reply and relay are truncated to DELIVERY_TEXT_MAX. */
void delivery_result_write(struct str *out, const struct delivery_result *res);
void delivery_done_write(struct str *out);

#endif
