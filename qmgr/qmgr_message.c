/* qmgr_message.c: one message in the active queue: read the queue file,
 * resolve its pending recipients into deliveries (one per final address:
 * recipients that resolve to the same address share it), take the agents'
 * answers, mark finished recipients done in the file, and at the end
 * remove the file or move it to deferred/ with defer/ID and its next
 * attempt time as mtime. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "mail/delivery.h"
#include "mail/dsn.h"
#include "mail/resolve.h"
#include "qmgr.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/msg.h"
#include "util/str.h"

#define QMGR_DEFER_DIR "defer"

/* qmgr_message_corrupt: a damaged file goes to corrupt/, never deleted. */
static void qmgr_message_corrupt(const char *id, const char *error)
{
	const char *from = qmgr_path(0, QUEUE_ACTIVE, id);
	const char *to = qmgr_path(1, QUEUE_CORRUPT, id);
	msg_warn("%s: %s", id, error);
	if (rename(from, to) < 0)
		msg_warn("%s: rename(%s, %s) failed: %m", id, from, to);
	else
		msg_warn("%s: corrupt queue file -- moved to corrupt", id);
}

/* qmgr_hash: FNV-1a of the lower-cased address and the destination. */
static size_t qmgr_hash(const char *address, const struct qmgr_dest *dest)
{
	size_t h = 2166136261u;
	for (const char *p = address; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		h = (h ^ (c >= 'A' && c <= 'Z' ? c + 32 : c)) * 16777619u;
	}
	return h ^ (size_t)(uintptr_t)dest;
}

/* qmgr_delivery_get: the message's delivery of address to dest, created
 * when new (*created_r). */
static struct qmgr_delivery *qmgr_delivery_get(struct qmgr_message *msg, const char *address,
					       struct qmgr_dest *dest, bool *created_r)
{
	if (msg->hash_size == 0) {
		msg->hash_size = 64;
		while (msg->hash_size < msg->rcpt_count * 2)
			msg->hash_size *= 2;
		msg->hash = xcalloc(msg->hash_size, sizeof(*msg->hash));
	}
	size_t i = qmgr_hash(address, dest) & (msg->hash_size - 1);
	for (; msg->hash[i] != 0; i = (i + 1) & (msg->hash_size - 1)) {
		struct qmgr_delivery *d = msg->deliveries[msg->hash[i] - 1];
		if (d->dest == dest && str_eq_icase(d->address, address)) {
			*created_r = false;
			return d;
		}
	}
	if (msg->delivery_count * 2 + 2 > msg->hash_size) {
		/* Full enough: grow and rehash, then insert. */
		free(msg->hash);
		msg->hash_size *= 2;
		msg->hash = xcalloc(msg->hash_size, sizeof(*msg->hash));
		for (size_t k = 0; k < msg->delivery_count; k++) {
			struct qmgr_delivery *o = msg->deliveries[k];
			size_t j = qmgr_hash(o->address, o->dest) & (msg->hash_size - 1);
			while (msg->hash[j] != 0)
				j = (j + 1) & (msg->hash_size - 1);
			msg->hash[j] = k + 1;
		}
		i = qmgr_hash(address, dest) & (msg->hash_size - 1);
		while (msg->hash[i] != 0)
			i = (i + 1) & (msg->hash_size - 1);
	}
	if (msg->delivery_count == msg->delivery_cap) {
		msg->delivery_cap = msg->delivery_cap == 0 ? 8 : msg->delivery_cap * 2;
		msg->deliveries = xreallocarray(msg->deliveries, msg->delivery_cap,
						sizeof(*msg->deliveries));
	}
	struct qmgr_delivery *d = xcalloc(1, sizeof(*d));
	d->msg = msg;
	d->dest = dest;
	d->address = xstrdup(address);
	msg->deliveries[msg->delivery_count++] = d;
	msg->hash[i] = msg->delivery_count;
	*created_r = true;
	return d;
}

void qmgr_rcpt_defer(struct qmgr_rcpt *r, const char *dsn, const char *reason)
{
	r->deferred = true;
	r->remote = false;
	if (!str_copy(r->dsn, sizeof(r->dsn), dsn))
		(void)str_copy(r->dsn, sizeof(r->dsn), "4.0.0");
	free(r->reason);
	r->reason = xstrndup(reason, strnlen(reason, QMGR_REASON_MAX));
}

/* qmgr_rcpt_resolve: turn one recipient into deliveries (or a result). */
static void qmgr_rcpt_resolve(struct qmgr_message *msg, size_t index)
{
	struct qmgr_rcpt *r = &msg->rcpts[index];
	struct resolve_result *res = NULL;
	size_t count = resolver_resolve(qmgr.resolver, r->address, &res);
	for (size_t i = 0; i < count; i++) {
		const struct resolve_result *x = &res[i];
		if (x->action == RESOLVE_BOUNCE) {
			struct str diag = STR_INIT;
			qmgr_log_rcpt(msg, x->address, r->address, x->dsn, "bounced", x->reason);
			str_printf(&diag, "x-unix; %s", x->reason);
			qmgr_notice_add(msg, index, DSN_FAILED, x->address, x->dsn, str_c(&diag));
			str_deinit(&diag);
			continue;
		}
		if (x->action == RESOLVE_DEFER) {
			qmgr_log_rcpt(msg, x->address, r->address, x->dsn, "deferred", x->reason);
			qmgr_rcpt_defer(r, x->dsn, x->reason);
			continue;
		}
		if (strlen(x->address) > DELIVERY_ADDRESS_MAX ||
		    strlen(x->nexthop) > DELIVERY_NEXTHOP_MAX ||
		    strlen(r->address) > DELIVERY_ADDRESS_MAX) {
			qmgr_log_rcpt(msg, x->address, r->address, "4.3.0", "deferred",
				      "address or next hop too long");
			qmgr_rcpt_defer(r, "4.3.0", "address or next hop too long");
			continue;
		}
		bool created;
		struct qmgr_dest *dest = qmgr_dest_find(x->transport, x->nexthop);
		struct qmgr_delivery *d = qmgr_delivery_get(msg, x->address, dest, &created);
		d->rcpts = xreallocarray(d->rcpts, d->rcpt_count + 1, sizeof(*d->rcpts));
		d->rcpts[d->rcpt_count++] = index;
		r->outstanding++;
		if (created) {
			msg->outstanding++;
			qmgr_dest_enqueue(d);
		}
	}
	resolve_results_free(&res, count);
}

/* qmgr_message_unlink: the list of active messages. */
static void qmgr_message_unlink(struct qmgr_message *msg)
{
	if (msg->prev != NULL)
		msg->prev->next = msg->next;
	else
		qmgr.messages = msg->next;
	if (msg->next != NULL)
		msg->next->prev = msg->prev;
	qmgr.message_count--;
}

static void qmgr_message_free(struct qmgr_message *msg)
{
	for (size_t i = 0; i < msg->rcpt_count; i++) {
		free(msg->rcpts[i].address);
		free(msg->rcpts[i].orcpt);
		free(msg->rcpts[i].reason);
	}
	for (size_t i = 0; i < msg->delivery_count; i++) {
		free(msg->deliveries[i]->address);
		free(msg->deliveries[i]->rcpts);
		free(msg->deliveries[i]);
	}
	free(msg->deliveries);
	qmgr_notice_free(msg);
	free(msg->hash);
	free(msg->rcpts);
	free(msg->sender);
	free(msg);
}

/* qmgr_message_new: the in-memory message from a parsed queue file
 * (pending recipients only). */
static struct qmgr_message *qmgr_message_new(const struct queue_file *qf, const char *id)
{
	struct qmgr_message *msg = xcalloc(1, sizeof(*msg));
	(void)str_copy(msg->id, sizeof(msg->id), id);
	msg->sender = xstrdup(qf->sender);
	msg->arrival = qf->arrival;
	gettimeofday(&msg->active_time, NULL);
	msg->size = qf->content_size;
	msg->rcpts = xcalloc(qf->rcpt_pending + 1, sizeof(*msg->rcpts));
	for (size_t i = 0; i < qf->rcpt_count; i++) {
		const struct queue_file_rcpt *fr = &qf->rcpts[i];
		if (fr->status != QUEUE_RCPT_PENDING)
			continue;
		struct qmgr_rcpt *r = &msg->rcpts[msg->rcpt_count++];
		r->address = xstrdup(fr->address);
		r->orcpt = fr->orcpt != NULL ? xstrdup(fr->orcpt) : NULL;
		r->notify = fr->notify;
		r->offset = fr->status_offset;
	}
	return msg;
}

/* qmgr_message_log_active: "ID: from=<sender>, size=N, nrcpt=N (queue active)". */
static void qmgr_message_log_active(const struct qmgr_message *msg, size_t nrcpt)
{
	struct str line = STR_INIT;
	str_printf(&line, "%s: from=<", msg->id);
	str_escape_log(&line, msg->sender, strlen(msg->sender), QUEUE_ADDRESS_MAX);
	str_printf(&line, ">, size=%lld, nrcpt=%zu (queue active)", msg->size, nrcpt);
	msg_info("%s", str_c(&line));
	str_deinit(&line);
}

static void qmgr_message_finish(struct qmgr_message *msg);
static void qmgr_rcpt_finish(struct qmgr_message *msg, struct qmgr_rcpt *r);

void qmgr_message_load(const char *id)
{
	const char *error = NULL;
	const char *path = qmgr_path(0, QUEUE_ACTIVE, id);
	struct queue_file *qf = queue_file_read(path, &error);
	if (qf == NULL) {
		if (errno == EBADMSG)
			qmgr_message_corrupt(id, error);
		else
			msg_warn("%s: %s (left in active/ until the next start)", id, error);
		return;
	}
	struct qmgr_message *msg = qmgr_message_new(qf, id);
	size_t nrcpt = qf->rcpt_count;
	struct stat st;
	queue_file_free(&qf);
	msg->warned = stat(path, &st) == 0 && (st.st_mode & QMGR_MODE_WARNED) != 0;
	msg->next = qmgr.messages;
	if (qmgr.messages != NULL)
		qmgr.messages->prev = msg;
	qmgr.messages = msg;
	qmgr.message_count++;
	qmgr_message_log_active(msg, nrcpt);

	/* An extra hold on the message so it cannot finish while resolving. */
	msg->outstanding++;
	for (size_t i = 0; i < msg->rcpt_count; i++)
		qmgr_rcpt_resolve(msg, i);
	for (size_t i = 0; i < msg->rcpt_count; i++) {
		if (msg->rcpts[i].outstanding == 0)
			qmgr_rcpt_finish(msg, &msg->rcpts[i]);
	}
	if (--msg->outstanding == 0)
		qmgr_message_finish(msg);
	else
		qmgr_kick();
}

bool qmgr_rcpt_mark(struct qmgr_message *msg, struct qmgr_rcpt *r)
{
	const char *error = NULL;
	if (r->done)
		return true;
	if (queue_file_mark_rcpt(qmgr_path(0, QUEUE_ACTIVE, msg->id), r->offset, QUEUE_RCPT_DONE,
				 &error) < 0) {
		msg_warn("%s: %s", msg->id, error);
		qmgr_rcpt_defer(r, "4.3.0", "cannot update the queue file");
		return false;
	}
	r->done = true;
	return true;
}

/* qmgr_rcpt_finish: every delivery of r has answered: unless one was
 * deferred or a notice is still to be queued, r is done (status byte
 * written and fsync'd). */
static void qmgr_rcpt_finish(struct qmgr_message *msg, struct qmgr_rcpt *r)
{
	if (r->deferred || r->done || r->notices > 0)
		return;
	(void)qmgr_rcpt_mark(msg, r);
}

void qmgr_delivery_result(struct qmgr_delivery *d, enum qmgr_outcome outcome, const char *dsn,
			  const char *reason)
{
	struct qmgr_message *msg = d->msg;
	struct str diag = STR_INIT;
	if (outcome != QMGR_DEFERRED)
		str_printf(&diag, "smtp; %s", reason != NULL ? reason : "");
	for (size_t i = 0; i < d->rcpt_count; i++) {
		struct qmgr_rcpt *r = &msg->rcpts[d->rcpts[i]];
		if (outcome == QMGR_DEFERRED) {
			qmgr_rcpt_defer(r, dsn, reason);
			r->remote = true;
		} else if (outcome == QMGR_BOUNCED)
			qmgr_notice_add(msg, d->rcpts[i], DSN_FAILED, d->address, dsn,
					str_c(&diag));
		else if ((r->notify & QUEUE_NOTIFY_SUCCESS) != 0)
			qmgr_notice_add(msg, d->rcpts[i], DSN_DELIVERED, d->address,
					dsn != NULL ? dsn : "2.0.0", str_c(&diag));
		if (r->outstanding > 0 && --r->outstanding == 0)
			qmgr_rcpt_finish(msg, r);
	}
	str_deinit(&diag);
	if (--msg->outstanding == 0)
		qmgr_message_finish(msg);
}

/* qmgr_message_defer_file: write defer/ID ("offset TAB dsn TAB reason"
 * per pending recipient) atomically. */
static int qmgr_message_defer_file(const struct qmgr_message *msg)
{
	struct str text = STR_INIT, tmp = STR_INIT, dir = STR_INIT, pathbuf = STR_INIT;
	int ret = -1;
	str_printf(&dir, "%s/%s", qmgr.queue_dir, QMGR_DEFER_DIR);
	str_printf(&pathbuf, "%s/%s", str_c(&dir), msg->id);
	const char *path = str_c(&pathbuf);
	for (size_t i = 0; i < msg->rcpt_count; i++) {
		const struct qmgr_rcpt *r = &msg->rcpts[i];
		if (r->done)
			continue;
		str_printf(&text, "%lld\t%s\t", (long long)r->offset, r->dsn);
		for (const char *p = r->reason != NULL ? r->reason : ""; *p != '\0'; p++)
			str_append_c(&text, *p == '\n' || *p == '\t' ? ' ' : *p);
		str_append_c(&text, '\n');
	}
	str_printf(&tmp, "%s/%s/.tmp.%s", qmgr.queue_dir, QMGR_DEFER_DIR, msg->id);
	if (mkdir(str_c(&dir), 0700) < 0 && errno != EEXIST) {
		msg_warn("%s: mkdir(%s) failed: %m", msg->id, str_c(&dir));
		goto out;
	}
	int fd = open(str_c(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		msg_warn("%s: open(%s) failed: %m", msg->id, str_c(&tmp));
		goto out;
	}
	bool ok = write(fd, text.data != NULL ? text.data : "", text.len) == (ssize_t)text.len &&
		  fsync(fd) == 0;
	if (close(fd) < 0)
		ok = false;
	if (!ok || rename(str_c(&tmp), path) < 0) {
		msg_warn("%s: writing %s failed: %m", msg->id, path);
		(void)unlink(str_c(&tmp));
		goto out;
	}
	ret = 0;
out:
	str_deinit(&text);
	str_deinit(&tmp);
	str_deinit(&dir);
	str_deinit(&pathbuf);
	return ret;
}

/* qmgr_message_expire: the message is too old: its deferred recipients
 * fail (a bounce each) instead of waiting again. */
static void qmgr_message_expire(struct qmgr_message *msg)
{
	for (size_t i = 0; i < msg->rcpt_count; i++) {
		struct qmgr_rcpt *r = &msg->rcpts[i];
		if (r->done || !r->deferred)
			continue;
		struct str reason = STR_INIT, diag = STR_INIT;
		str_printf(&reason, "message expired: %s", r->reason != NULL ? r->reason : "");
		str_printf(&diag, "x-unix; %s", str_c(&reason));
		qmgr_log_rcpt(msg, r->address, NULL, "5.4.7", "bounced", str_c(&reason));
		r->deferred = false;
		qmgr_notice_add(msg, i, DSN_FAILED, r->address, "5.4.7", str_c(&diag));
		str_deinit(&reason);
		str_deinit(&diag);
	}
	struct str line = STR_INIT;
	str_printf(&line, "%s: from=<", msg->id);
	str_escape_log(&line, msg->sender, strlen(msg->sender), QUEUE_ADDRESS_MAX);
	str_append(&line, ">, status=expired, returned to sender");
	msg_info("%s", str_c(&line));
	str_deinit(&line);
}

/* qmgr_message_backoff: defer the file: defer/ID, mtime = next attempt,
 * rename to deferred/. */
static void qmgr_message_backoff(struct qmgr_message *msg)
{
	struct timeval now;
	gettimeofday(&now, NULL);
	long long delay = (long long)(now.tv_sec - msg->arrival.tv_sec);
	if (delay < qmgr.min_backoff)
		delay = qmgr.min_backoff;
	if (delay > qmgr.max_backoff)
		delay = qmgr.max_backoff;
	(void)qmgr_message_defer_file(msg);
	const char *path = qmgr_path(0, QUEUE_ACTIVE, msg->id);
	struct timeval tv[2] = { now, now };
	tv[1].tv_sec += (time_t)delay;
	if (utimes(path, tv) < 0)
		msg_warn("%s: utimes(%s) failed: %m", msg->id, path);
	const char *to = qmgr_path(1, QUEUE_DEFERRED, msg->id);
	if (rename(path, to) < 0)
		msg_warn("%s: rename(%s, %s) failed: %m", msg->id, path, to);
}

/* qmgr_message_finish: no delivery is outstanding: remove the file when
 * every recipient is done, else expire or defer it; then forget it. */
static void qmgr_message_finish(struct qmgr_message *msg)
{
	struct timeval now;
	gettimeofday(&now, NULL);
	long long lifetime = msg->sender[0] == '\0' ? qmgr.bounce_lifetime : qmgr.max_lifetime;
	bool deferred = false;
	for (size_t i = 0; i < msg->rcpt_count; i++)
		deferred = deferred || msg->rcpts[i].deferred;
	if (deferred && (long long)(now.tv_sec - msg->arrival.tv_sec) >= lifetime)
		qmgr_message_expire(msg);
	qmgr_notice_send(msg);
	qmgr_notice_delay(msg);
	size_t pending = 0;
	for (size_t i = 0; i < msg->rcpt_count; i++)
		pending += msg->rcpts[i].done ? 0 : 1;
	if (pending > 0) {
		qmgr_message_backoff(msg);
	} else {
		const char *path = qmgr_path(0, QUEUE_ACTIVE, msg->id);
		if (unlink(path) < 0)
			msg_warn("%s: unlink(%s) failed: %m", msg->id, path);
		else
			msg_info("%s: removed", msg->id);
		(void)unlink(qmgr_path(1, QMGR_DEFER_DIR, msg->id));
	}
	qmgr_message_unlink(msg);
	qmgr_message_free(msg);
	if (qmgr.want_incoming || qmgr.want_deferred)
		qmgr_kick();
}

void qmgr_message_free_all(void)
{
	while (qmgr.messages != NULL) {
		struct qmgr_message *msg = qmgr.messages;
		qmgr_message_unlink(msg);
		qmgr_message_free(msg);
	}
}
