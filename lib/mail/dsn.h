/* dsn.h: delivery status notifications (RFC 3464): bounces, delay warnings
 * and success reports, queued as new messages from the null sender.
 *
 * The queue manager calls dsn_queue_notice() when recipients of a message
 * failed, are delayed, or were delivered with NOTIFY=SUCCESS. The notice is
 * a multipart/report (RFC 6522) with a text/plain explanation, a
 * message/delivery-status part and the original message (message/rfc822)
 * or its header (text/rfc822-headers). It is written with queue_writer into
 * incoming/ of the queue directory and committed durably before the call
 * returns, so the caller may then mark the recipients done.
 *
 * Parameters read (config_*): myhostname, mail_name, bounce_size_limit,
 * maximal_queue_lifetime (Will-Retry-Until of delay notices) and
 * 2bounce_notice_recipient. The layout and wording are in doc/bounce.md. */
#ifndef PETREL_DSN_H
#define PETREL_DSN_H

#include <stddef.h>
#include <time.h>

/* Limits: recipient blocks per notice (the rest is only counted in the
 * text part); bytes of diagnostic text kept; bytes of an address shown
 * (SMTP allows 256; longer ones are cut so that no line passes 998). */
#define DSN_RCPT_MAX 1000
#define DSN_DIAG_MAX 800
#define DSN_ADDRESS_MAX 900

enum dsn_action {
	DSN_FAILED,
	DSN_DELAYED,
	DSN_DELIVERED, /* success notices when NOTIFY=SUCCESS */
};

struct dsn_rcpt {
	const char *address;    /* where delivery was tried (after aliases) */
	const char *orig_rcpt;  /* the recipient as received, or NULL */
	const char *orcpt;      /* "rfc822;..." or NULL (then the file's is used) */
	const char *status;     /* RFC 3463, "5.1.1" */
	const char *diagnostic; /* "smtp; 550 5.1.1 ..." or "x-unix; ..." or NULL */
	const char *remote_mta; /* "dns; mx.example.test" or NULL */
	enum dsn_action action;
	time_t last_attempt; /* 0 when unknown */
};

/* dsn_queue_notice: read the original queue file at orig_path (sender,
 * ENVID, RET, arrival, per-recipient NOTIFY and ORCPT, content) and queue a
 * notice of kind about those rcpts that want one: NOTIFY=NEVER never;
 * failed when NOTIFY has FAILURE or was not given; delayed when NOTIFY has
 * DELAY or was not given; delivered only with SUCCESS. A recipient's
 * NOTIFY is looked up in the original file by orig_rcpt (else address).
 * The notice goes to the original sender; for a failed message from the
 * null sender it goes to 2bounce_notice_recipient instead, and a failed
 * double-bounce notice produces nothing.
 * Returns 1 with the new queue ID in id_r, 0 when no notice is due, -1
 * with *error_r when the original cannot be read or the notice cannot be
 * written (nothing is left visible then; keep the recipients pending). */
int dsn_queue_notice(const char *queue_dir, const char *orig_path, enum dsn_action kind,
		     const struct dsn_rcpt *rcpts, size_t count, char *id_r,
		     const char **error_r);

#endif
