/* qmgr_notice.c: delivery status notices (bounces and NOTIFY=SUCCESS
 * reports) of one message. Entries are collected while the message is
 * being delivered and queued, one notice per kind, when it is finished
 * (lib/mail/dsn.h writes them durably to incoming/); only then are the
 * recipients they cover marked done, so a crash in between repeats the
 * notice rather than losing it. A recipient that is also deferred keeps
 * its entries for the attempt that finishes it. */
#include <config.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mail/dsn.h"
#include "qmgr.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

void qmgr_notice_add(struct qmgr_message *msg, size_t rcpt, int action, const char *address,
		     const char *status, const char *diagnostic)
{
	msg->notices = xreallocarray(msg->notices, msg->notice_count + 1, sizeof(*msg->notices));
	struct qmgr_notice *n = &msg->notices[msg->notice_count++];
	memset(n, 0, sizeof(*n));
	n->rcpt = rcpt;
	n->action = action;
	n->address = xstrdup(address);
	if (status == NULL || !str_copy(n->status, sizeof(n->status), status))
		(void)str_copy(n->status, sizeof(n->status), action == DSN_DELIVERED ? "2.0.0"
										  : "5.0.0");
	n->diagnostic = xstrndup(diagnostic, strnlen(diagnostic, DSN_DIAG_MAX));
	msg->rcpts[rcpt].notices++;
}

/* qmgr_notice_queue: one notice of kind for up to DSN_RCPT_MAX entries
 * starting at *next; marks the recipients whose entries are all queued. */
static void qmgr_notice_queue(struct qmgr_message *msg, int kind, size_t *next)
{
	struct dsn_rcpt *rcpts = xcalloc(DSN_RCPT_MAX, sizeof(*rcpts));
	size_t *which = xcalloc(DSN_RCPT_MAX, sizeof(*which));
	size_t count = 0;
	const char *error = NULL;
	char id[QUEUE_ID_MAX] = "";

	for (; *next < msg->notice_count && count < DSN_RCPT_MAX; (*next)++) {
		const struct qmgr_notice *n = &msg->notices[*next];
		const struct qmgr_rcpt *r = &msg->rcpts[n->rcpt];
		if (n->action != kind || r->deferred || r->done)
			continue;
		struct dsn_rcpt *d = &rcpts[count];
		d->address = n->address;
		d->orig_rcpt = r->address;
		d->orcpt = r->orcpt;
		d->status = n->status;
		d->diagnostic = n->diagnostic;
		d->action = (enum dsn_action)kind;
		d->last_attempt = time(NULL);
		which[count++] = n->rcpt;
	}
	int ret = count == 0 ? 0
			     : dsn_queue_notice(qmgr.queue_dir, qmgr_path(0, QUEUE_ACTIVE, msg->id),
						(enum dsn_action)kind, rcpts, count, id, &error);
	if (ret < 0) {
		msg_warn("%s: cannot queue a delivery status notice: %s", msg->id, error);
		for (size_t i = 0; i < count; i++)
			qmgr_rcpt_defer(&msg->rcpts[which[i]], "4.3.0",
					"cannot queue a delivery status notice");
	} else {
		if (ret > 0) {
			msg_info("%s: sender %s notification: %s", msg->id,
				 kind == DSN_DELIVERED ? "delivery status" : "non-delivery", id);
			qmgr.want_incoming = true;
		}
		for (size_t i = 0; i < count; i++) {
			struct qmgr_rcpt *r = &msg->rcpts[which[i]];
			if (r->notices > 0 && --r->notices == 0 && r->outstanding == 0)
				(void)qmgr_rcpt_mark(msg, r);
		}
	}
	free(rcpts);
	free(which);
}

void qmgr_notice_send(struct qmgr_message *msg)
{
	static const int kinds[] = { DSN_FAILED, DSN_DELIVERED };
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		size_t next = 0;
		while (next < msg->notice_count)
			qmgr_notice_queue(msg, kinds[k], &next);
	}
}

void qmgr_notice_free(struct qmgr_message *msg)
{
	for (size_t i = 0; i < msg->notice_count; i++) {
		free(msg->notices[i].address);
		free(msg->notices[i].diagnostic);
	}
	free(msg->notices);
	msg->notices = NULL;
	msg->notice_count = 0;
}
