/* qmgr.h: the queue manager's shared state: messages in the active queue,
 * their recipients and deliveries, destinations and the delivery requests
 * in flight. See doc/qmgr.8 and doc/delivery.md for the behaviour. */
#ifndef PETREL_QMGR_H
#define PETREL_QMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>
#include <sys/types.h>

#include "mail/queue.h"
#include "util/attr.h"

struct event_loop;
struct event_timer;
struct netconn;
struct resolver;

#define QMGR_REQUEST_RCPT_MAX 1000  /* recipients per delivery request */
#define QMGR_AGENT_TIMEOUT_MS (3600u * 1000u)
#define QMGR_REASON_MAX 1000	    /* bytes of a reason kept and logged */
/* The queue file mode bit that records "delay warning sent" (group
 * execute: files are written 0600); doc/delivery.md, Queue states. */
#define QMGR_MODE_WARNED 0010

/* One recipient record of a queue file that was pending at load. */
struct qmgr_rcpt {
	char *address; /* as received (orig_rcpt) */
	char *orcpt;   /* NULL when not given */
	unsigned notify;
	off_t offset;	      /* its status byte */
	unsigned outstanding; /* deliveries without a final answer */
	bool deferred;	      /* one of its deliveries was deferred */
	bool done;	      /* marked done in the file */
	unsigned notices;     /* DSN notices waiting to be queued */
	char dsn[16];	      /* of the deferral */
	char *reason;	      /* of the deferral */
	bool remote;	      /* the reason is an agent's reply (smtp;), not ours */
};

/* What an agent (or the resolver) said about one delivery. */
enum qmgr_outcome {
	QMGR_DELIVERED,
	QMGR_BOUNCED,
	QMGR_DEFERRED,
};

/* A DSN notice entry, queued when the message is finished. */
struct qmgr_notice {
	size_t rcpt;	/* index into msg->rcpts */
	int action;	/* enum dsn_action */
	char *address;	/* the final address */
	char status[16];
	char *diagnostic;
};

/* One final address of a message: what one recipient record of a request
 * carries. Several recipients that resolve to it share it. */
struct qmgr_delivery {
	struct qmgr_message *msg;
	struct qmgr_dest *dest;
	char *address;
	size_t *rcpts; /* indexes into msg->rcpts; [0] is the one sent */
	size_t rcpt_count;
	struct qmgr_delivery *next; /* in dest's wait list */
};

struct qmgr_message {
	char id[QUEUE_ID_MAX];
	char *sender;
	struct timeval arrival;
	struct timeval active_time; /* when qmgr took it */
	long long size;
	struct qmgr_rcpt *rcpts;
	size_t rcpt_count;
	struct qmgr_delivery **deliveries;
	size_t delivery_count, delivery_cap;
	size_t *hash; /* open addressing over deliveries (index + 1) */
	size_t hash_size;
	unsigned outstanding; /* deliveries without a final answer */
	struct qmgr_notice *notices; /* bounces and success notices to queue */
	size_t notice_count;
	bool warned; /* the delay warning was sent (QMGR_MODE_WARNED) */
	struct qmgr_message *prev, *next;
};

/* A (transport, nexthop) pair and the deliveries waiting for it. */
struct qmgr_dest {
	char *transport, *nexthop;
	struct qmgr_delivery *head, **tail;
	unsigned active; /* requests in flight */
	unsigned limit;
	struct qmgr_dest *next;
};

/* One delivery request over its own connection to an agent. */
struct qmgr_request {
	struct qmgr_dest *dest;
	struct qmgr_message *msg;
	struct qmgr_delivery **items;
	size_t count, answered;
	struct netconn *conn;
	bool versioned;
	struct qmgr_request *prev, *next;
};

struct qmgr {
	struct event_loop *loop;
	const char *queue_dir;
	struct resolver *resolver;
	struct qmgr_message *messages;
	size_t message_count;
	struct qmgr_dest *dests;
	struct qmgr_request *requests;
	struct event_timer *run_timer;	/* every queue_run_delay */
	struct event_timer *kick_timer; /* deferred work: scans, dispatch */
	bool want_incoming, want_deferred, force_deferred;
	/* parameters */
	long long active_limit;
	long long run_delay, min_backoff, max_backoff;
	long long max_lifetime, bounce_lifetime;
	long long delay_warning; /* delay_warning_time; 0: never */
	long long dest_limit;
};

extern struct qmgr qmgr;

/* qmgr.c */
/* qmgr_kick: run qmgr_kick_now() from the loop soon. */
void qmgr_kick(void);
/* qmgr_path: queue_dir/dir/id in a static buffer (one of two slots). */
const char *qmgr_path(int slot, const char *dir, const char *id);
/* qmgr_log_rcpt: a Postfix-style per-recipient line
 * "ID: to=<>, orig_to=<>, relay=none, delay=, delays=, dsn=, status= (reason)". */
void qmgr_log_rcpt(const struct qmgr_message *msg, const char *to, const char *orig,
		   const char *dsn, const char *status, const char *reason);

/* qmgr_scan.c */
void qmgr_scan_active(void);
void qmgr_scan_incoming(void);
void qmgr_scan_deferred(bool force);

/* qmgr_message.c */
/* qmgr_message_load: read active/ID and schedule its recipients. */
void qmgr_message_load(const char *id);
/* qmgr_delivery_result: the answer for one delivery (dsn and reason may
 * be NULL for a delivered one). May finish (and free) the message. */
void qmgr_delivery_result(struct qmgr_delivery *d, enum qmgr_outcome outcome, const char *dsn,
			  const char *reason);
/* qmgr_rcpt_mark: write the done byte; false (and the recipient deferred)
 * when that fails. */
bool qmgr_rcpt_mark(struct qmgr_message *msg, struct qmgr_rcpt *r);
/* qmgr_rcpt_defer: remember why a recipient must wait. */
void qmgr_rcpt_defer(struct qmgr_rcpt *r, const char *dsn, const char *reason);

/* qmgr_notice.c */
/* qmgr_notice_add: remember a notice for recipient rcpt (action is an
 * enum dsn_action; diagnostic "x-unix; ..." or "smtp; ..."). */
void qmgr_notice_add(struct qmgr_message *msg, size_t rcpt, int action, const char *address,
		     const char *status, const char *diagnostic);
/* qmgr_notice_send: queue the notices of every recipient that is not
 * deferred, then mark those recipients done. */
void qmgr_notice_send(struct qmgr_message *msg);
void qmgr_notice_free(struct qmgr_message *msg);
/* qmgr_notice_delay: once per message, when it is older than
 * delay_warning_time and still has deferred recipients, queue a delay
 * notice about them and set QMGR_MODE_WARNED on active/ID. */
void qmgr_notice_delay(struct qmgr_message *msg);
void qmgr_message_free_all(void);

/* qmgr_deliver.c */
/* qmgr_dest_find: the destination of (transport, nexthop), created once. */
struct qmgr_dest *qmgr_dest_find(const char *transport, const char *nexthop);
void qmgr_dest_enqueue(struct qmgr_delivery *d);
/* qmgr_dispatch: start requests while destinations have room. */
void qmgr_dispatch(void);
void qmgr_deliver_free_all(void);

#endif
