/* smtp_client.h: shared declarations of the delivery agent smtp-client(8):
 * the agent side (smtp_client.c: requests from qmgr, results, logs) and
 * the protocol engine (smtp_proto.c: connect, LMTP conversation). */
#ifndef PETREL_SMTP_CLIENT_H
#define PETREL_SMTP_CLIENT_H

#include <stdbool.h>
#include <sys/time.h>

#include "mail/delivery.h"
#include "mail/queue.h"

/* Settings read once in post_init. */
struct smtp_client_settings {
	const char *myhostname;
	unsigned connect_timeout_ms;
	unsigned helo_timeout_ms;  /* greeting and LHLO */
	unsigned mail_timeout_ms;  /* MAIL FROM */
	unsigned rcpt_timeout_ms;  /* RCPT TO */
	unsigned data_init_timeout_ms; /* DATA */
	unsigned data_xfer_timeout_ms; /* message content */
	unsigned data_done_timeout_ms; /* replies after the final dot */
};
extern struct smtp_client_settings smtp_client_settings;

/* The outcome of one recipient. */
struct smtp_rcpt_result {
	bool final;                 /* a result is known */
	enum delivery_action action;
	char status[DELIVERY_STATUS_MAX];
	char *reason;               /* logged text and result reply */
	struct timeval done;
};

/* One delivery attempt of one request. */
struct smtp_session;

/* smtp_session_done_fn: every recipient of the session has its result. */
typedef void smtp_session_done_fn(void *ctx);

/* smtp_session_start: deliver req's recipients of qf (owned by the
 * caller, both outlive the session) to req->nexthop; results go into
 * results[rcpt_count]; done is called from the event loop once all are
 * final (never from inside this call). */
struct smtp_session *smtp_session_start(const struct delivery_request *req,
					 struct queue_file *qf, struct smtp_rcpt_result *results,
					 smtp_session_done_fn *done, void *ctx);
/* smtp_session_relay: relay= text ("none" before a connection). */
const char *smtp_session_relay(const struct smtp_session *s);
/* smtp_session_handoff, smtp_session_conn_done: time stamps for delays=. */
struct timeval smtp_session_handoff(const struct smtp_session *s);
struct timeval smtp_session_conn_done(const struct smtp_session *s);
void smtp_session_free(struct smtp_session **s);

/* smtp_result_set: make a result final (once; later calls are ignored). */
void smtp_result_set(struct smtp_rcpt_result *r, enum delivery_action action,
		     const char *status, const char *reason);

#endif
