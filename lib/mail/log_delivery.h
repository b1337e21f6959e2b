/* log_delivery.h: the one delivery log line, as Postfix's log_adhoc()
 * writes it (delivery agents and qmgr both use it):
 *
 *   ID: to=<rcpt>, orig_to=<orig>, relay=RELAY, delay=D,
 *       delays=a/b/c/d, dsn=X.Y.Z, status=sent (reason)
 *
 * orig_to is left out when empty or equal (ignoring case) to to. The
 * delays are: a = arrival to active (the request reaching the agent),
 * b = active to hand-off (agent setup), c = connection setup, d =
 * transmission; delay is their whole, arrival to done. Times are written
 * with two significant digits and at most two decimals ("0.12", "1.2",
 * "32", "0"), as Postfix's format_tv() with delay_logging_resolution_limit
 * 2. Addresses and reasons are escaped and capped (str_escape_log). */
#ifndef PETREL_LOG_DELIVERY_H
#define PETREL_LOG_DELIVERY_H

#include <sys/time.h>

#include "util/str.h"

/* Time stamps of one delivery; a zero (tv_sec == 0) stamp is "not
 * reached": the delay of a missing stage counts toward the next stage
 * that happened, as in Postfix. */
struct log_delivery_times {
	struct timeval arrival;   /* the queue file's arrival */
	struct timeval active;    /* qmgr handed it on / the agent got it */
	struct timeval handoff;   /* the agent starts delivery (connects) */
	struct timeval conn_done; /* connection set up (greeting, LHLO) */
	struct timeval done;      /* result known; zero: now */
};

/* log_delivery_format_tv: append sec.usec the way Postfix writes delays. */
void log_delivery_format_tv(struct str *out, long sec, long usec);

/* log_delivery_format: the whole line (no trailing newline) into out
 * (appended). status is "sent", "deferred", "bounced", "expired" ...;
 * relay "none" when there was no connection. */
void log_delivery_format(struct str *out, const char *queue_id, const char *to,
			 const char *orig_to, const char *relay,
			 const struct log_delivery_times *times, const char *dsn,
			 const char *status, const char *reason);

/* log_delivery: log_delivery_format() then msg_info(). */
void log_delivery(const char *queue_id, const char *to, const char *orig_to, const char *relay,
		  const struct log_delivery_times *times, const char *dsn, const char *status,
		  const char *reason);

#endif
