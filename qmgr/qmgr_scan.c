/* qmgr_scan.c: moving queue files into the active queue: active/ at start
 * (left over by a qmgr that died), incoming/ on a trigger or timer, and
 * deferred/ files whose mtime (the next attempt) has come. hold/ is never
 * looked at. Each move is a rename(); the active queue is bounded by
 * qmgr_message_active_limit. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "qmgr.h"
#include "util/msg.h"

/* qmgr_scan_room: true while the active queue has room. */
static bool qmgr_scan_room(void)
{
	return qmgr.message_count < (size_t)qmgr.active_limit;
}

void qmgr_scan_active(void)
{
	const char *error = NULL;
	struct queue_scan *scan = queue_scan_open(qmgr.queue_dir, QUEUE_ACTIVE, &error);
	const char *id;
	if (scan == NULL) {
		msg_warn("%s", error);
		return;
	}
	while ((id = queue_scan_next(scan)) != NULL)
		qmgr_message_load(id);
	queue_scan_close(&scan);
}

/* qmgr_scan_move: rename dir/id to active/id and load it. */
static void qmgr_scan_move(const char *dir, const char *id)
{
	const char *from = qmgr_path(0, dir, id);
	const char *to = qmgr_path(1, QUEUE_ACTIVE, id);
	if (rename(from, to) < 0) {
		if (errno != ENOENT)
			msg_warn("rename(%s, %s) failed: %m", from, to);
		return;
	}
	qmgr_message_load(id);
}

void qmgr_scan_incoming(void)
{
	const char *error = NULL;
	struct queue_scan *scan = queue_scan_open(qmgr.queue_dir, QUEUE_INCOMING, &error);
	const char *id;
	if (scan == NULL) {
		msg_warn("%s", error);
		return;
	}
	while (qmgr_scan_room() && (id = queue_scan_next(scan)) != NULL)
		qmgr_scan_move(QUEUE_INCOMING, id);
	/* Left over for lack of room: look again when a message is done. */
	if (queue_scan_next(scan) != NULL)
		qmgr.want_incoming = true;
	queue_scan_close(&scan);
}

void qmgr_scan_deferred(bool force)
{
	const char *error = NULL;
	struct queue_scan *scan = queue_scan_open(qmgr.queue_dir, QUEUE_DEFERRED, &error);
	const char *id;
	time_t now = time(NULL);
	if (scan == NULL) {
		msg_warn("%s", error);
		return;
	}
	while ((id = queue_scan_next(scan)) != NULL) {
		if (!qmgr_scan_room()) {
			qmgr.want_deferred = true;
			qmgr.force_deferred = qmgr.force_deferred || force;
			break;
		}
		struct stat st;
		if (stat(qmgr_path(0, QUEUE_DEFERRED, id), &st) < 0)
			continue;
		if (force || st.st_mtime <= now)
			qmgr_scan_move(QUEUE_DEFERRED, id);
	}
	queue_scan_close(&scan);
}
