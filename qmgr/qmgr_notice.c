/* qmgr_notice.c: delivery status notices (bounces and NOTIFY=SUCCESS
 * reports) of one message. Entries are collected while the message is
 * being delivered and queued, one notice per kind, when it is finished
 * (lib/mail/dsn.h writes them durably to incoming/); only then are the
 * recipients they cover marked done, so a crash in between repeats the
 * notice rather than losing it. A recipient that is also deferred keeps
 * its entries for the attempt that finishes it. The delay warning
 * (delay_warning_time) is sent once per message: the queue file's
 * QMGR_MODE_WARNED bit records it across restarts. */
#include <config.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

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

/* qmgr_notice_delay_due: the message wants its delay warning now. */
static bool qmgr_notice_delay_due(const struct qmgr_message *msg)
{
	if (qmgr.delay_warning <= 0 || msg->warned || msg->sender[0] == '\0')
		return false; /* off, sent already, or a bounce (as Postfix) */
	struct timeval now;
	gettimeofday(&now, NULL);
	double age = (double)(now.tv_sec - msg->arrival.tv_sec) +
		     (double)(now.tv_usec - msg->arrival.tv_usec) / 1e6;
	if (age < (double)qmgr.delay_warning)
		return false;
	for (size_t i = 0; i < msg->rcpt_count; i++) {
		if (msg->rcpts[i].deferred && !msg->rcpts[i].done)
			return true;
	}
	return false;
}

/* qmgr_notice_delay_mark: set QMGR_MODE_WARNED on active/ID durably. */
static void qmgr_notice_delay_mark(struct qmgr_message *msg)
{
	const char *path = qmgr_path(0, QUEUE_ACTIVE, msg->id);
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 ||
	    fchmod(fd, (st.st_mode & 07777) | QMGR_MODE_WARNED) < 0 || fsync(fd) < 0)
		msg_warn("%s: cannot record the delay warning in %s: %m", msg->id, path);
	if (fd >= 0)
		(void)close(fd);
	msg->warned = true; /* not again from this qmgr, even when that failed */
}

void qmgr_notice_delay(struct qmgr_message *msg)
{
	if (!qmgr_notice_delay_due(msg))
		return;
	struct dsn_rcpt *rcpts = xcalloc(DSN_RCPT_MAX, sizeof(*rcpts));
	struct str *diags = xcalloc(DSN_RCPT_MAX, sizeof(*diags));
	size_t next = 0;
	bool failed = false;
	while (next < msg->rcpt_count && !failed) {
		size_t count = 0;
		char id[QUEUE_ID_MAX] = "";
		const char *error = NULL;
		for (; next < msg->rcpt_count && count < DSN_RCPT_MAX; next++) {
			const struct qmgr_rcpt *r = &msg->rcpts[next];
			if (!r->deferred || r->done)
				continue;
			struct dsn_rcpt *d = &rcpts[count];
			str_clear(&diags[count]);
			str_printf(&diags[count], "%s; %s", r->remote ? "smtp" : "x-unix",
				   r->reason != NULL ? r->reason : "");
			d->address = r->address;
			d->orig_rcpt = r->address;
			d->orcpt = r->orcpt;
			d->status = r->dsn[0] == '4' ? r->dsn : "4.0.0";
			d->diagnostic = str_c(&diags[count]);
			d->action = DSN_DELAYED;
			d->last_attempt = time(NULL);
			count++;
		}
		int ret = count == 0 ? 0
				     : dsn_queue_notice(qmgr.queue_dir,
							qmgr_path(0, QUEUE_ACTIVE, msg->id),
							DSN_DELAYED, rcpts, count, id, &error);
		if (ret < 0) {
			msg_warn("%s: cannot queue a delay notice: %s", msg->id, error);
			failed = true; /* try again at the next attempt */
		} else if (ret > 0) {
			msg_info("%s: sender delay notification: %s", msg->id, id);
			qmgr.want_incoming = true;
		}
	}
	for (size_t i = 0; i < DSN_RCPT_MAX; i++)
		str_deinit(&diags[i]);
	free(diags);
	free(rcpts);
	if (!failed)
		qmgr_notice_delay_mark(msg);
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
