/* pickup.c: move locally submitted mail from maildrop/ into the queue,
 * exactly once.
 *
 * SYNOPSIS
 *	pickup -n pickup -t fifo [-o name=value ...] -c config_dir
 *	(started by master(8), never by hand)
 *
 * DESCRIPTION
 *	Woken through public/pickup (sendmail(1) writes 'W' after each
 *	message; the master writes 'W' every wakeup seconds), pickup first
 *	finishes whatever is in its own directory pickup/ (left by a crash),
 *	then takes each file of maildrop/ whose name does not start with '.'
 *	through three steps, each one rename:
 *
 *	1. claim: a regular file with one link is renamed maildrop/M ->
 *	   pickup/M. pickup/ (0700, mail_owner) is out of every user's reach,
 *	   so the checks that follow cannot race with the submitter.
 *	2. convert: pickup/M is parsed as a queue file (queue_file_read: fail
 *	   closed); a new queue file (a "Received: by myhostname (Petrel, from
 *	   userid UID)" header first, the attributes a submitter may set, the
 *	   pending recipients, uid=UID and pickup_id=ID) is written and
 *	   fsync'd under a temp name and renamed OVER pickup/M
 *	   (queue_writer_commit_replace): in one atomic step the raw file is
 *	   gone and the converted one is in its place.
 *	3. queue: pickup/M is renamed to incoming/ID (never replacing),
 *	   incoming/ is fsync'd, "ID: uid=UID from=<sender>" is logged and
 *	   qmgr woken ('A' on public/qmgr).
 *
 *	A crash anywhere leaves the message in exactly one place: maildrop/M
 *	or pickup/M (raw: redo steps 2 and 3), pickup/M (converted: redo step
 *	3) or incoming/ID (done); temp files are incoming/.tmp.*, removed by
 *	the master at start. So a message is queued once, never twice and
 *	never lost. A new pickup scans at once and wakes qmgr (one killed
 *	between step 3's rename and its wake-up call never did). Each rename
 *	is made durable by fsyncing the directory that gets the new name;
 *	like Postfix, this relies on rename() moving a name atomically on the
 *	queue file system.
 *
 *	A file in pickup/ is converted when it is owned by pickup's effective
 *	uid AND has a pickup_id attribute that is the queue ID of that very
 *	file (its time part and the file's inode). Anything else is raw. A
 *	user can write any bytes into a maildrop file, a pickup_id included,
 *	but cannot give a file away: only mail_owner (who owns the queue
 *	anyway) or root could forge a converted file. sendmail never writes
 *	pickup_id, and of a raw file only envid, ret and body are copied.
 *
 *	A file that does not parse, that pickup may not read, has no pending
 *	recipient or is over message_size_limit is moved to corrupt/ with a
 *	warning; one that is not a regular file or has more than one link is
 *	removed (or moved to corrupt/ when it cannot be removed). One scan at
 *	a time: a scan holds an exclusive flock on pickup/, so a pickup
 *	orphaned by a killed master cannot convert the file a new pickup is
 *	converting. postsuper(1) leaves pickup/ alone: its files are not
 *	queued yet.
 *
 * SECURITY
 *	maildrop/ is world-writable (1733, owned by mail_owner, so pickup may
 *	rename anyone's file out of it): every file in it is untrusted input,
 *	owned by the user who submitted it (its owner is the uid that is
 *	logged and written in the Received: header). Files are opened
 *	non-blocking without following symlinks, and the inode that was
 *	checked must be the one that was parsed. A submitter who kept a
 *	descriptor can still change the bytes of their own claimed file;
 *	that only changes their own message, and every byte is validated. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/mail_date.h"
#include "mail/queue.h"
#include "server/multi_server.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/msg.h"
#include "util/str.h"

/* Files handled per directory and scan; the rest wait for the next one. */
#define PICKUP_SCAN_MAX 10000
#define PICKUP_COPY_BUF 65536

/* The attribute that marks a converted file (with its owner). */
#define PICKUP_ID_ATTR "pickup_id"

/* Attributes a submitter may set; pickup writes the rest itself. */
static const char *const pickup_copy_attrs[] = { "envid", "ret", "body", NULL };

struct pickup_config {
	const char *queue_dir;
	const char *myhostname;
	const char *mail_name;
	long long message_size_limit;
};

static struct pickup_config pickup_config;

/* pickup_path: queue_dir/dir/name into out. */
static void pickup_path(struct str *out, const char *dir, const char *name)
{
	str_clear(out);
	str_printf(out, "%s/%s/%s", pickup_config.queue_dir, dir, name);
}

/* pickup_corrupt: keep a damaged dir/name in corrupt/ (never delete it);
 * the warning names the file by its maildrop name. */
static void pickup_corrupt(const char *dir, const char *name, const char *why)
{
	struct str from = STR_INIT, to = STR_INIT;
	pickup_path(&from, dir, name);
	pickup_path(&to, QUEUE_CORRUPT, name);
	msg_warn("%s/%s: %s -- moved to corrupt/", QUEUE_MAILDROP, name, why);
	if (rename(str_c(&from), str_c(&to)) < 0)
		msg_error("rename(%s, %s) failed: %m", str_c(&from), str_c(&to));
	str_deinit(&from);
	str_deinit(&to);
}

/* pickup_reject: remove dir/name, which is no message (not a regular
 * file, or a hard link that may point anywhere); what unlink cannot
 * remove (a directory) goes to corrupt/. */
static void pickup_reject(const char *dir, const char *name, const struct stat *st)
{
	struct str path = STR_INIT, to = STR_INIT;
	pickup_path(&path, dir, name);
	msg_warn("%s/%s: uid=%ld: %s -- removed", QUEUE_MAILDROP, name, (long)st->st_uid,
		 S_ISREG(st->st_mode) ? "file has more than one link" : "not a regular file");
	if (unlink(str_c(&path)) < 0 && errno != ENOENT) {
		pickup_path(&to, QUEUE_CORRUPT, name);
		if (rename(str_c(&path), str_c(&to)) < 0)
			msg_error("unlink(%s) failed: %m", str_c(&path));
	}
	str_deinit(&path);
	str_deinit(&to);
}

/* pickup_wakeup_qmgr: 'A' into public/qmgr; ignored when nobody listens. */
static void pickup_wakeup_qmgr(void)
{
	struct str path = STR_INIT;
	str_printf(&path, "%s/public/qmgr", pickup_config.queue_dir);
	(void)fifo_trigger(str_c(&path), 'A');
	str_deinit(&path);
}

/* pickup_received: the trace header for a local submission, as Postfix's
 * pickup and cleanup write it. */
static void pickup_received(struct queue_writer *qw, long uid)
{
	struct str h = STR_INIT;
	char date[MAIL_DATE_MAX];
	mail_date(date, sizeof(date), time(NULL), true);
	str_printf(&h, "Received: by %s (%s, from userid %ld)\r\n\tid %s; %s\r\n",
		   pickup_config.myhostname, pickup_config.mail_name, uid, queue_writer_id(qw),
		   date);
	queue_writer_content(qw, h.data, h.len);
	str_deinit(&h);
}

/* pickup_envelope: the new file's envelope from the parsed one, with the
 * marker of a converted file. */
static void pickup_envelope(struct queue_writer *qw, const struct queue_file *qf, long uid)
{
	char buf[32];
	queue_writer_sender(qw, qf->sender);
	for (size_t i = 0; pickup_copy_attrs[i] != NULL; i++) {
		const char *v = queue_file_attr(qf, pickup_copy_attrs[i]);
		if (v != NULL)
			queue_writer_attr(qw, pickup_copy_attrs[i], v);
	}
	queue_writer_attr(qw, "rewrite_context", "local");
	(void)str_format(buf, sizeof(buf), "%ld", uid);
	queue_writer_attr(qw, "uid", buf);
	queue_writer_attr(qw, PICKUP_ID_ATTR, queue_writer_id(qw));
	for (size_t i = 0; i < qf->rcpt_count; i++) {
		const struct queue_file_rcpt *r = &qf->rcpts[i];
		if (r->status != QUEUE_RCPT_PENDING)
			continue;
		struct queue_rcpt qr = { .address = r->address, .orcpt = r->orcpt,
					 .notify = r->notify };
		queue_writer_rcpt(qw, &qr);
	}
}

/* pickup_log: "ID: uid=UID from=<sender>", the sender escaped. */
static void pickup_log(const char *id, long uid, const char *sender)
{
	struct str s = STR_INIT;
	str_escape_log(&s, sender, strlen(sender), QUEUE_ADDRESS_MAX);
	msg_info("%s: uid=%ld from=<%s>", id, uid, str_c(&s));
	str_deinit(&s);
}

/* pickup_queue: step 3, the converted pickup/name into incoming/id. On
 * failure it stays in pickup/ for the next scan. */
static void pickup_queue(const char *name, const char *id, long uid, const char *sender)
{
	struct str from = STR_INIT, to = STR_INIT, dir = STR_INIT;
	pickup_path(&from, QUEUE_PICKUP, name);
	pickup_path(&to, QUEUE_INCOMING, id);
	str_printf(&dir, "%s/%s", pickup_config.queue_dir, QUEUE_INCOMING);
	int ret = rename_noreplace(str_c(&from), str_c(&to));
	if (ret < 0) {
		msg_error("%s: rename(%s, %s) failed: %m", id, str_c(&from), str_c(&to));
	} else {
		/* ret 1: queued, but pickup/name is a second link; the next
		 * scan removes it (a converted file with two links). */
		if (ret == 1)
			msg_error("%s: unlink(%s) failed: %m", id, str_c(&from));
		if (fsync_dir(str_c(&dir)) < 0)
			msg_error("%s: fsync(%s) failed: %m", id, str_c(&dir));
		pickup_log(id, uid, sender);
		pickup_wakeup_qmgr();
	}
	str_deinit(&from);
	str_deinit(&to);
	str_deinit(&dir);
}

/* pickup_copy_content: the message bytes of qf into qw. 0, or -1 with
 * *error_r and errno (EBADMSG: the file changed under us). */
static int pickup_copy_content(struct queue_writer *qw, struct queue_file *qf,
			       const char **error_r)
{
	char *buf = xmalloc(PICKUP_COPY_BUF);
	ssize_t n;
	while ((n = queue_file_content_read(qf, buf, PICKUP_COPY_BUF, error_r)) > 0 &&
	       !queue_writer_failed(qw))
		queue_writer_content(qw, buf, (size_t)n);
	int saved_errno = errno;
	free(buf);
	errno = saved_errno;
	return n < 0 ? -1 : 0;
}

/* pickup_convert: steps 2 and 3 for the raw pickup/name (parsed as qf,
 * submitted by uid). */
static void pickup_convert(const char *name, struct queue_file *qf, long uid)
{
	const char *error;
	int err;
	if (qf->rcpt_pending == 0) {
		pickup_corrupt(QUEUE_PICKUP, name, "no pending recipients");
		return;
	}
	if (pickup_config.message_size_limit > 0 &&
	    qf->content_size > pickup_config.message_size_limit) {
		pickup_corrupt(QUEUE_PICKUP, name, "message is larger than message_size_limit");
		return;
	}
	struct queue_writer *qw = queue_writer_open(pickup_config.queue_dir, &error);
	if (qw == NULL) {
		msg_error("%s", error);
		return;
	}
	pickup_envelope(qw, qf, uid);
	pickup_received(qw, uid);
	if (pickup_copy_content(qw, qf, &error) < 0) {
		bool damaged = errno == EBADMSG;
		queue_writer_abort(&qw);
		if (damaged)
			pickup_corrupt(QUEUE_PICKUP, name, error);
		else
			msg_error("%s", error);
		return;
	}
	char id[QUEUE_ID_MAX];
	(void)str_copy(id, sizeof(id), queue_writer_id(qw));
	struct str path = STR_INIT;
	pickup_path(&path, QUEUE_PICKUP, name);
	int ret = queue_writer_commit_replace(&qw, str_c(&path), &err, &error);
	str_deinit(&path);
	if (ret < 0) {
		msg_error("%s: %s", id, error);
		return;
	}
	pickup_queue(name, id, uid, qf->sender);
}

/* pickup_converted: step 3 for pickup/name, converted (qf, with its
 * pickup_id) before a crash. The ID must be this file's own. */
static void pickup_converted(const char *name, const struct queue_file *qf,
			     const struct stat *st, const char *id)
{
	struct timeval tv;
	char want[QUEUE_ID_MAX];
	if (!queue_id_valid(id) || !queue_id_time(id, &tv)) {
		pickup_corrupt(QUEUE_PICKUP, name, "invalid " PICKUP_ID_ATTR);
		return;
	}
	queue_id_format(want, &tv, (unsigned long long)st->st_ino);
	if (strcmp(want, id) != 0) {
		pickup_corrupt(QUEUE_PICKUP, name, PICKUP_ID_ATTR " is not the file's queue ID");
		return;
	}
	const char *uid_text = queue_file_attr(qf, "uid");
	char *end = NULL;
	long uid = uid_text != NULL ? strtol(uid_text, &end, 10) : -1;
	if (uid_text == NULL || end == uid_text || *end != '\0')
		uid = -1;
	pickup_queue(name, id, uid, qf->sender);
}

/* pickup_same_inode: fd is still the regular, single-link file st saw. */
static bool pickup_same_inode(int fd, const struct stat *st)
{
	struct stat fst;
	return fstat(fd, &fst) == 0 && S_ISREG(fst.st_mode) && fst.st_nlink == 1 &&
	       fst.st_dev == st->st_dev && fst.st_ino == st->st_ino;
}

/* pickup_claimed: one file in pickup/, raw (steps 2 and 3) or converted
 * (step 3). Nobody but pickup can change the name, so no re-checks race. */
static void pickup_claimed(const char *name)
{
	struct str path = STR_INIT;
	struct stat st;
	const char *error;
	pickup_path(&path, QUEUE_PICKUP, name);
	if (lstat(str_c(&path), &st) < 0) {
		if (errno != ENOENT)
			msg_warn("lstat(%s) failed: %m", str_c(&path));
		str_deinit(&path);
		return;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		pickup_reject(QUEUE_PICKUP, name, &st);
		str_deinit(&path);
		return;
	}
	struct queue_file *qf = queue_file_read(str_c(&path), &error);
	if (qf == NULL) {
		/* EACCES: a submitter made their file unreadable; in pickup/
		 * nobody can change that any more. */
		if (errno == EBADMSG || errno == EACCES)
			pickup_corrupt(QUEUE_PICKUP, name, error);
		else
			msg_warn("%s", error);
	} else if (!pickup_same_inode(qf->fd, &st)) {
		/* A submitter linked their file again through a descriptor
		 * they kept: the next scan removes it. */
		msg_warn("%s/%s: changed while being read -- skipped", QUEUE_MAILDROP, name);
	} else {
		const char *id = queue_file_attr(qf, PICKUP_ID_ATTR);
		if (id != NULL && st.st_uid == geteuid())
			pickup_converted(name, qf, &st, id);
		else
			pickup_convert(name, qf, (long)st.st_uid);
	}
	queue_file_free(&qf);
	str_deinit(&path);
}

/* pickup_claim: step 1 for one maildrop file (untrusted), then the rest. */
static void pickup_claim(const char *name)
{
	struct str path = STR_INIT, to = STR_INIT;
	struct stat st;
	pickup_path(&path, QUEUE_MAILDROP, name);
	pickup_path(&to, QUEUE_PICKUP, name);
	int ret = -1;
	if (lstat(str_c(&path), &st) < 0) {
		if (errno != ENOENT)
			msg_warn("lstat(%s) failed: %m", str_c(&path));
	} else if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		pickup_reject(QUEUE_MAILDROP, name, &st);
	} else if ((ret = rename_noreplace(str_c(&path), str_c(&to))) < 0) {
		/* EEXIST: that name is still in pickup/; later. */
		msg_warn("rename(%s, %s) failed: %m", str_c(&path), str_c(&to));
	} else if (ret == 1) {
		/* Both names left: the next scan drops the pickup/ one (two
		 * links) and claims the maildrop one again. */
		msg_error("unlink(%s) failed: %m", str_c(&path));
	}
	str_deinit(&path);
	str_deinit(&to);
	if (ret == 0)
		pickup_claimed(name);
}

/* pickup_name_cmp: qsort order (names start with the queue ID: by time). */
static int pickup_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* pickup_list: up to PICKUP_SCAN_MAX names in queue_dir/dir that do not
 * start with '.', sorted; *count_r of them. NULL when there are none. */
static char **pickup_list(const char *dir, size_t *count_r)
{
	struct str dir_path = STR_INIT;
	str_printf(&dir_path, "%s/%s", pickup_config.queue_dir, dir);
	char **names = NULL;
	size_t count = 0, cap = 0;
	DIR *d = opendir(str_c(&dir_path));
	if (d == NULL)
		msg_warn("opendir(%s) failed: %m", str_c(&dir_path));
	struct dirent *de;
	while (d != NULL && count < PICKUP_SCAN_MAX && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue; /* ".", "..", and temp files being written */
		if (count == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			names = xreallocarray(names, cap, sizeof(*names));
		}
		names[count++] = xstrdup(de->d_name);
	}
	if (d != NULL)
		(void)closedir(d);
	if (count > 1)
		qsort(names, count, sizeof(*names), pickup_name_cmp);
	str_deinit(&dir_path);
	*count_r = count;
	return names;
}

/* pickup_scan_dir: handle every listed file of dir with fn. */
static void pickup_scan_dir(const char *dir, void (*fn)(const char *name))
{
	size_t count;
	char **names = pickup_list(dir, &count);
	for (size_t i = 0; i < count; i++) {
		fn(names[i]);
		free(names[i]);
	}
	free(names);
}

/* pickup_lock: an exclusive flock on pickup/ for one scan, so that two
 * pickup processes (one orphaned by a killed master) never work on one
 * file. The descriptor, or -1 when the scan must not run. */
static int pickup_lock(void)
{
	struct str path = STR_INIT;
	str_printf(&path, "%s/%s", pickup_config.queue_dir, QUEUE_PICKUP);
	int fd = open(str_c(&path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		msg_warn("open(%s) failed: %m", str_c(&path));
	} else if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			msg_warn("%s is locked by another pickup process -- scan skipped",
				 str_c(&path));
		else
			msg_warn("flock(%s) failed: %m", str_c(&path));
		(void)close(fd);
		fd = -1;
	}
	str_deinit(&path);
	return fd;
}

/* pickup_scan: what a crash left in pickup/, then maildrop/, oldest first. */
static void pickup_scan(void)
{
	int lock_fd = pickup_lock();
	if (lock_fd < 0)
		return;
	pickup_scan_dir(QUEUE_PICKUP, pickup_claimed);
	pickup_scan_dir(QUEUE_MAILDROP, pickup_claim);
	(void)close(lock_fd);
}

/* pickup_trigger: drain the fifo, then scan. */
static void pickup_trigger(void *ctx, const struct multi_server_listener *l)
{
	char buf[256];
	while (read(l->fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf))
		;
	pickup_scan();
}

/* pickup_accept: pickup serves no connections (fifo only). */
static void pickup_accept(void *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen,
			  const struct multi_server_listener *l)
{
	(void)close(fd);
	multi_server_disconnect();
}

/* pickup_post_init: finish what a killed pickup left, without waiting
 * for a trigger, and wake qmgr: a pickup killed between its rename into
 * incoming/ and its wake-up call left a message qmgr does not know of. */
static void pickup_post_init(void *ctx)
{
	pickup_scan();
	pickup_wakeup_qmgr();
}

/* pickup_pre_init: the parameters. */
static void pickup_pre_init(void *ctx)
{
	pickup_config.queue_dir = multi_server_queue_dir();
	pickup_config.myhostname = config_str("myhostname");
	pickup_config.mail_name = config_str("mail_name");
	pickup_config.message_size_limit = config_size("message_size_limit");
}

static const struct multi_server_ops pickup_ops = {
	.pre_init = pickup_pre_init,
	.post_init = pickup_post_init,
	.accept = pickup_accept,
	.trigger = pickup_trigger,
};

int main(int argc, char **argv)
{
	return multi_server_main(argc, argv, "pickup", &pickup_ops, NULL);
}
