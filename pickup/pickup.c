/* pickup.c: move locally submitted mail from maildrop/ into the queue.
 *
 * SYNOPSIS
 *	pickup -n pickup -t fifo [-o name=value ...] -c config_dir
 *	(started by master(8), never by hand)
 *
 * DESCRIPTION
 *	Woken through public/pickup (sendmail(1) writes 'W' after each
 *	message; the master writes 'W' every wakeup seconds), pickup scans
 *	maildrop/ and, for each file whose name does not start with '.':
 *	checks that it is a regular file with one link, parses it as a queue
 *	file (queue_file_read: fail closed), writes a new queue file into
 *	incoming/ with queue_writer (a "Received: by myhostname (Petrel, from
 *	userid UID)" header first, the attributes a submitter may set, the
 *	pending recipients), commits it durably, removes the maildrop file,
 *	logs "ID: uid=UID from=<sender>" and wakes qmgr ('A' on public/qmgr).
 *	A file that does not parse is moved to corrupt/ with a warning; one
 *	that is not a regular file or has more than one link is removed.
 *
 * SECURITY
 *	maildrop/ is world-writable (1733): every file in it is untrusted
 *	input, owned by the user who submitted it (its owner is the uid that
 *	is logged and written in the Received: header). The file is opened
 *	non-blocking without following symlinks, and the inode that was
 *	checked must be the one that was parsed. Only the envid, ret and body
 *	attributes are copied; everything else is pickup's own.
 *
 * BUGS
 *	A crash after the commit and before the unlink leaves the maildrop
 *	file, which is picked up again: the message is queued twice (Postfix
 *	has the same window; issue #9 closes it). queue_file_read() opens by
 *	path without O_NONBLOCK: a user who swaps the checked file for a fifo
 *	in that instant can stall pickup until the master restarts it. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/queue.h"
#include "server/multi_server.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

/* Files handled per scan; the rest wait for the next trigger. */
#define PICKUP_SCAN_MAX 10000
#define PICKUP_COPY_BUF 65536

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

/* pickup_corrupt: keep a damaged file in corrupt/ (never delete it). */
static void pickup_corrupt(const char *name, const char *why)
{
	struct str from = STR_INIT, to = STR_INIT;
	pickup_path(&from, QUEUE_MAILDROP, name);
	pickup_path(&to, QUEUE_CORRUPT, name);
	msg_warn("maildrop/%s: %s -- moved to corrupt/", name, why);
	if (rename(str_c(&from), str_c(&to)) < 0)
		msg_error("rename(%s, %s) failed: %m", str_c(&from), str_c(&to));
	str_deinit(&from);
	str_deinit(&to);
}

/* pickup_wakeup_qmgr: 'A' into public/qmgr; ignored when nobody listens. */
static void pickup_wakeup_qmgr(void)
{
	struct str path = STR_INIT;
	str_printf(&path, "%s/public/qmgr", pickup_config.queue_dir);
	int fd = open(str_c(&path), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
			(void)!write(fd, "A", 1);
		(void)close(fd);
	}
	str_deinit(&path);
}

/* pickup_received: the trace header for a local submission, as Postfix's
 * pickup and cleanup write it. */
static void pickup_received(struct queue_writer *qw, long uid)
{
	struct str h = STR_INIT;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z (%Z)", &tm);
	str_printf(&h, "Received: by %s (%s, from userid %ld)\r\n\tid %s; %s\r\n",
		   pickup_config.myhostname, pickup_config.mail_name, uid, queue_writer_id(qw),
		   date);
	queue_writer_content(qw, h.data, h.len);
	str_deinit(&h);
}

/* pickup_envelope: the new file's envelope from the parsed one. */
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
	for (size_t i = 0; i < qf->rcpt_count; i++) {
		const struct queue_file_rcpt *r = &qf->rcpts[i];
		if (r->status != QUEUE_RCPT_PENDING)
			continue;
		struct queue_rcpt qr = { .address = r->address, .orcpt = r->orcpt,
					 .notify = r->notify };
		queue_writer_rcpt(qw, &qr);
	}
}

/* pickup_copy: write qf into incoming/ and commit. 0, or -1 after logging
 * (the maildrop file stays for the next scan). */
static int pickup_copy(struct queue_file *qf, long uid, char id_r[QUEUE_ID_MAX])
{
	const char *error;
	int err;
	struct queue_writer *qw = queue_writer_open(pickup_config.queue_dir, &error);
	if (qw == NULL) {
		msg_error("%s", error);
		return -1;
	}
	pickup_envelope(qw, qf, uid);
	pickup_received(qw, uid);
	char *buf = xmalloc(PICKUP_COPY_BUF);
	ssize_t n;
	while ((n = queue_file_content_read(qf, buf, PICKUP_COPY_BUF, &error)) > 0 &&
	       !queue_writer_failed(qw))
		queue_writer_content(qw, buf, (size_t)n);
	free(buf);
	if (n < 0) {
		msg_error("%s", error);
		queue_writer_abort(&qw);
		return -1;
	}
	(void)str_copy(id_r, QUEUE_ID_MAX, queue_writer_id(qw));
	if (queue_writer_commit(&qw, &err, &error) < 0) {
		msg_error("%s: %s", id_r, error);
		return -1;
	}
	return 0;
}

/* pickup_same_inode: fd is still the regular, single-link file st saw. */
static bool pickup_same_inode(int fd, const struct stat *st)
{
	struct stat fst;
	return fstat(fd, &fst) == 0 && S_ISREG(fst.st_mode) && fst.st_nlink == 1 &&
	       fst.st_dev == st->st_dev && fst.st_ino == st->st_ino;
}

/* pickup_log: "ID: uid=UID from=<sender>", the sender escaped. */
static void pickup_log(const char *id, long uid, const char *sender)
{
	struct str s = STR_INIT;
	str_escape_log(&s, sender, strlen(sender), QUEUE_ADDRESS_MAX);
	msg_info("%s: uid=%ld from=<%s>", id, uid, str_c(&s));
	str_deinit(&s);
}

/* pickup_parsed: a file that parsed: check it, queue it, remove it. */
static void pickup_parsed(const char *name, const char *path, struct queue_file *qf, long uid)
{
	char id[QUEUE_ID_MAX];
	if (qf->rcpt_pending == 0) {
		pickup_corrupt(name, "no pending recipients");
		return;
	}
	if (pickup_config.message_size_limit > 0 &&
	    qf->content_size > pickup_config.message_size_limit) {
		pickup_corrupt(name, "message is larger than message_size_limit");
		return;
	}
	if (pickup_copy(qf, uid, id) < 0)
		return;
	if (unlink(path) < 0)
		msg_error("unlink(%s) failed: %m", path);
	pickup_log(id, uid, qf->sender);
	pickup_wakeup_qmgr();
}

/* pickup_file: one maildrop file, untrusted. */
static void pickup_file(const char *name)
{
	struct str path = STR_INIT;
	struct stat st;
	const char *error;
	pickup_path(&path, QUEUE_MAILDROP, name);
	if (lstat(str_c(&path), &st) < 0) {
		if (errno != ENOENT)
			msg_warn("lstat(%s) failed: %m", str_c(&path));
		str_deinit(&path);
		return;
	}
	long uid = (long)st.st_uid;
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		/* Not a message: a hard link may point at anything, so it is
		 * neither read nor kept. */
		msg_warn("maildrop/%s: uid=%ld: %s -- removed", name, uid,
			 S_ISREG(st.st_mode) ? "file has more than one link" : "not a regular file");
		if (unlink(str_c(&path)) < 0)
			msg_error("unlink(%s) failed: %m", str_c(&path));
		str_deinit(&path);
		return;
	}
	int fd = open(str_c(&path), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !pickup_same_inode(fd, &st)) {
		msg_warn("maildrop/%s: changed or vanished while being checked -- skipped", name);
		if (fd >= 0)
			(void)close(fd);
		str_deinit(&path);
		return;
	}
	struct queue_file *qf = queue_file_read(str_c(&path), &error);
	if (qf == NULL) {
		if (errno == EBADMSG)
			pickup_corrupt(name, error);
		else
			msg_warn("%s", error);
	} else if (!pickup_same_inode(qf->fd, &st)) {
		msg_warn("maildrop/%s: changed while being read -- skipped", name);
	} else {
		pickup_parsed(name, str_c(&path), qf, uid);
	}
	queue_file_free(&qf);
	(void)close(fd);
	str_deinit(&path);
}

/* pickup_name_cmp: qsort order (names start with the queue ID: by time). */
static int pickup_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* pickup_scan: every complete file in maildrop/, oldest first. */
static void pickup_scan(void)
{
	struct str dir_path = STR_INIT;
	str_printf(&dir_path, "%s/%s", pickup_config.queue_dir, QUEUE_MAILDROP);
	DIR *dir = opendir(str_c(&dir_path));
	if (dir == NULL) {
		msg_warn("opendir(%s) failed: %m", str_c(&dir_path));
		str_deinit(&dir_path);
		return;
	}
	char **names = NULL;
	size_t count = 0, cap = 0;
	struct dirent *de;
	while (count < PICKUP_SCAN_MAX && (de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue; /* ".", "..", and temp files being written */
		if (count == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			names = xreallocarray(names, cap, sizeof(*names));
		}
		names[count++] = xstrdup(de->d_name);
	}
	(void)closedir(dir);
	if (count > 1)
		qsort(names, count, sizeof(*names), pickup_name_cmp);
	for (size_t i = 0; i < count; i++) {
		pickup_file(names[i]);
		free(names[i]);
	}
	free(names);
	str_deinit(&dir_path);
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
	.accept = pickup_accept,
	.trigger = pickup_trigger,
};

int main(int argc, char **argv)
{
	return multi_server_main(argc, argv, "pickup", &pickup_ops, NULL);
}
