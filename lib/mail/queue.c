/* queue.c: the queue file writer, smtpd's acceptance path; see queue.h.
 *
 * Queue file format, version 1 (doc/queue-format.md has the prose). Every
 * record is framed by its length, so data is binary-safe, and the framing
 * stays readable in a hex dump. ABNF (RFC 5234):
 *
 *   queue-file = version arrival sender *attribute count 1*recipient
 *                *content size end              ; nothing may follow end
 *   record     = type length ":" data LF
 *   type       = %x41-5A                        ; one uppercase letter
 *   length     = "0" / (%x31-39 0*9DIGIT)       ; bytes of data, no leading 0
 *   data       = *OCTET                         ; exactly length bytes
 *
 *   version    = "V" length ":" "petrel-queue 1" LF
 *   arrival    = "T" length ":" 1*19DIGIT "." 6DIGIT LF   ; Unix time
 *   sender     = "S" length ":" address LF      ; empty for the null sender
 *   attribute  = "A" length ":" attr-name "=" attr-value LF ; a name once
 *   count      = "N" length ":" 1*6DIGIT LF     ; 1..100000, as many as follow
 *   recipient  = [orcpt] "R" length ":" status notify address LF
 *   orcpt      = "O" length ":" address LF      ; DSN ORCPT as received
 *   status     = "P" / "D"                      ; pending / done
 *   notify     = DIGIT / %x41-46                ; QUEUE_NOTIFY_* bits, hex
 *   content    = "C" length ":" 1*65536OCTET LF ; message bytes, in order
 *   size       = "Z" length ":" 1*19DIGIT LF    ; sum of content lengths
 *   end        = "E" "0" ":" LF
 *
 *   address    = 0*1024(%x01-FF)                ; no NUL
 *   attr-name  = 1*64(%x61-7A / DIGIT / "_")
 *   attr-value = 0*4096(%x01-FF)                ; no NUL
 *
 * A recipient's status byte is the first data byte of its R record, so a
 * queue manager marks it done by overwriting that one byte in place.
 * NOTIFY "never" (1) is not combined with other bits. The writer puts each
 * content record at exactly 65536 bytes except the last; readers accept any
 * length from 1 to 65536. */
#include <config.h> /* autoconf; "config.h" here would be mail/config.h */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/queue.h"
#include "mail/queue_rec.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/msg.h"
#include "util/str.h"

/* How often a temp name that exists already (left by a crashed process
 * with our PID) is skipped before giving up. */
#define QUEUE_TEMP_TRIES 100

struct queue_writer {
	char *incoming_dir;
	char *temp_path;
	char *final_path;
	char id[QUEUE_ID_MAX];
	int fd;
	int error; /* sticky errno; 0 while the writer is healthy */
	char error_text[512];
	struct timeval arrival;
	char *sender;
	struct str attrs; /* A records, held until the envelope is written */
	struct str rcpts; /* O and R records, likewise */
	char *attr_names[QUEUE_ATTR_COUNT_MAX];
	size_t attr_count;
	size_t rcpt_count;
	bool envelope_done;
	struct str out;   /* records not yet written */
	struct str chunk; /* content not yet in a record */
	long long content_size;
};

static char queue_error_buf[1024];

/* queue_error: format into the module's static error buffer. */
const char *queue_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(queue_error_buf, sizeof(queue_error_buf), fmt, ap);
	va_end(ap);
	return queue_error_buf;
}

/* queue_errno_is_nospace: the errors that mean a full disk or quota. */
bool queue_errno_is_nospace(int err)
{
	return err == ENOSPC || err == EDQUOT;
}

/* queue_writer_fail: record the first error; later ones are consequences. */
static void ATTR_FORMAT(3, 4)
	queue_writer_fail(struct queue_writer *qw, int err, const char *fmt, ...)
{
	if (qw->error != 0)
		return;
	qw->error = err != 0 ? err : EIO;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(qw->error_text, sizeof(qw->error_text), fmt, ap);
	va_end(ap);
}

/* queue_rec_append: one record whose data is prefix followed by data. */
static void queue_rec_append(struct str *out, char type, const char *prefix, size_t prefix_len,
			     const void *data, size_t len)
{
	str_printf(out, "%c%zu:", type, prefix_len + len);
	str_append_n(out, prefix, prefix_len);
	str_append_n(out, data, len);
	str_append_c(out, '\n');
}

/* queue_writer_clock: the current time, strictly later than the last one
 * this process used, so its IDs increase even if the clock steps back. */
static void queue_writer_clock(struct timeval *tv)
{
	static struct timeval last;
	gettimeofday(tv, NULL);
	if (tv->tv_sec < last.tv_sec ||
	    (tv->tv_sec == last.tv_sec && tv->tv_usec <= last.tv_usec)) {
		*tv = last;
		if (++tv->tv_usec >= 1000000) {
			tv->tv_usec = 0;
			tv->tv_sec++;
		}
	}
	last = *tv;
}

/* queue_writer_create_temp: open a new ".tmp.PID.N" name with O_EXCL. */
static int queue_writer_create_temp(struct queue_writer *qw, const char **error_r)
{
	static unsigned long counter;
	struct str path = STR_INIT;
	for (int tries = 0;; tries++) {
		str_clear(&path);
		str_printf(&path, "%s/.tmp.%lx.%lx", qw->incoming_dir, (unsigned long)getpid(),
			   counter++);
		qw->fd = open(str_c(&path), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (qw->fd >= 0)
			break;
		if (errno != EEXIST || tries >= QUEUE_TEMP_TRIES) {
			int saved_errno = errno;
			*error_r = queue_error("open(%s) failed: %s", str_c(&path),
					       strerror(errno));
			str_deinit(&path);
			errno = saved_errno;
			return -1;
		}
	}
	qw->temp_path = str_steal(&path);
	return 0;
}

/* queue_writer_free: release everything; the file is the caller's affair. */
static void queue_writer_free(struct queue_writer *qw)
{
	if (qw->fd >= 0)
		(void)close(qw->fd);
	free(qw->incoming_dir);
	free(qw->temp_path);
	free(qw->final_path);
	free(qw->sender);
	for (size_t i = 0; i < qw->attr_count; i++)
		free(qw->attr_names[i]);
	str_deinit(&qw->attrs);
	str_deinit(&qw->rcpts);
	str_deinit(&qw->out);
	str_deinit(&qw->chunk);
	free(qw);
}

/* queue_writer_open: create the temp file; its inode gives the ID. */
struct queue_writer *queue_writer_open(const char *queue_dir, const char **error_r)
{
	struct queue_writer *qw = xcalloc(1, sizeof(*qw));
	struct str path = STR_INIT;
	struct stat st;

	qw->fd = -1;
	str_printf(&path, "%s/%s", queue_dir, QUEUE_INCOMING);
	qw->incoming_dir = str_steal(&path);
	if (queue_writer_create_temp(qw, error_r) < 0) {
		int saved_errno = errno;
		queue_writer_free(qw);
		errno = saved_errno;
		return NULL;
	}
	if (fstat(qw->fd, &st) < 0) {
		int saved_errno = errno;
		*error_r = queue_error("fstat(%s) failed: %s", qw->temp_path, strerror(errno));
		queue_writer_abort(&qw);
		errno = saved_errno;
		return NULL;
	}
	queue_writer_clock(&qw->arrival);
	queue_id_format(qw->id, &qw->arrival, (unsigned long long)st.st_ino);
	str_printf(&path, "%s/%s", qw->incoming_dir, qw->id);
	qw->final_path = str_steal(&path);
	return qw;
}

/* queue_writer_id: the message's queue ID, known from open on. */
const char *queue_writer_id(const struct queue_writer *qw)
{
	return qw->id;
}

/* queue_writer_check_envelope: envelope calls after content are a bug. */
static void queue_writer_check_envelope(const struct queue_writer *qw, const char *what)
{
	if (qw->envelope_done)
		msg_panic("queue_writer_%s: envelope data after message content", what);
}

/* queue_writer_arrival: override the arrival time (default: open time). */
void queue_writer_arrival(struct queue_writer *qw, const struct timeval *tv)
{
	queue_writer_check_envelope(qw, "arrival");
	if (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000) {
		queue_writer_fail(qw, EINVAL, "invalid arrival time");
		return;
	}
	qw->arrival = *tv;
}

/* queue_writer_sender: the envelope sender; "" is the null sender. */
void queue_writer_sender(struct queue_writer *qw, const char *sender)
{
	queue_writer_check_envelope(qw, "sender");
	if (strlen(sender) > QUEUE_ADDRESS_MAX) {
		queue_writer_fail(qw, EINVAL, "sender address longer than %d bytes",
				  QUEUE_ADDRESS_MAX);
		return;
	}
	free(qw->sender);
	qw->sender = xstrdup(sender);
}

/* queue_attr_name_valid: [a-z0-9_]{1,64}. */
static bool queue_attr_name_valid(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > QUEUE_ATTR_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

/* queue_writer_attr: one named attribute; each name at most once. */
void queue_writer_attr(struct queue_writer *qw, const char *name, const char *value)
{
	queue_writer_check_envelope(qw, "attr");
	if (!queue_attr_name_valid(name)) {
		queue_writer_fail(qw, EINVAL, "invalid attribute name");
		return;
	}
	size_t value_len = strlen(value);
	if (value_len > QUEUE_ATTR_VALUE_MAX) {
		queue_writer_fail(qw, EINVAL, "attribute %s longer than %d bytes", name,
				  QUEUE_ATTR_VALUE_MAX);
		return;
	}
	for (size_t i = 0; i < qw->attr_count; i++) {
		if (strcmp(qw->attr_names[i], name) == 0) {
			queue_writer_fail(qw, EINVAL, "duplicate attribute %s", name);
			return;
		}
	}
	if (qw->attr_count >= QUEUE_ATTR_COUNT_MAX) {
		queue_writer_fail(qw, EINVAL, "more than %d attributes", QUEUE_ATTR_COUNT_MAX);
		return;
	}
	qw->attr_names[qw->attr_count++] = xstrdup(name);
	size_t name_len = strlen(name);
	str_printf(&qw->attrs, "%c%zu:%s=", QUEUE_REC_ATTR, name_len + 1 + value_len, name);
	str_append_n(&qw->attrs, value, value_len);
	str_append_c(&qw->attrs, '\n');
}

/* queue_writer_rcpt: one recipient, status pending. */
void queue_writer_rcpt(struct queue_writer *qw, const struct queue_rcpt *rcpt)
{
	static const char hex[] = "0123456789ABCDEF";
	queue_writer_check_envelope(qw, "rcpt");
	size_t len = strlen(rcpt->address);
	if (len > QUEUE_ADDRESS_MAX ||
	    (rcpt->orcpt != NULL && strlen(rcpt->orcpt) > QUEUE_ADDRESS_MAX)) {
		queue_writer_fail(qw, EINVAL, "recipient address longer than %d bytes",
				  QUEUE_ADDRESS_MAX);
		return;
	}
	if (rcpt->notify > 0xf ||
	    ((rcpt->notify & QUEUE_NOTIFY_NEVER) != 0 && rcpt->notify != QUEUE_NOTIFY_NEVER)) {
		queue_writer_fail(qw, EINVAL, "invalid DSN NOTIFY bits 0x%x", rcpt->notify);
		return;
	}
	if (qw->rcpt_count >= QUEUE_RCPT_MAX) {
		queue_writer_fail(qw, EINVAL, "more than %d recipients", QUEUE_RCPT_MAX);
		return;
	}
	qw->rcpt_count++;
	if (rcpt->orcpt != NULL)
		queue_rec_append(&qw->rcpts, QUEUE_REC_ORCPT, "", 0, rcpt->orcpt,
				 strlen(rcpt->orcpt));
	char prefix[2] = { QUEUE_RCPT_PENDING, hex[rcpt->notify] };
	queue_rec_append(&qw->rcpts, QUEUE_REC_RCPT, prefix, 2, rcpt->address, len);
}

/* queue_writer_flush: write out the buffered records. */
static void queue_writer_flush(struct queue_writer *qw)
{
	const char *p = qw->out.data;
	size_t left = qw->out.len;
	while (qw->error == 0 && left > 0) {
		ssize_t n = write(qw->fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			queue_writer_fail(qw, n < 0 ? errno : EIO, "write(%s) failed: %s",
					  qw->temp_path, n < 0 ? strerror(errno) : "no progress");
			break;
		}
		p += n;
		left -= (size_t)n;
	}
	str_clear(&qw->out);
}

/* queue_writer_envelope: the envelope records, once, before any content. */
static void queue_writer_envelope(struct queue_writer *qw)
{
	char buf[64];
	if (qw->envelope_done)
		return;
	qw->envelope_done = true;
	if (qw->sender == NULL)
		queue_writer_fail(qw, EINVAL, "no sender address");
	if (qw->rcpt_count == 0)
		queue_writer_fail(qw, EINVAL, "no recipients");
	if (qw->error == 0) {
		queue_rec_append(&qw->out, QUEUE_REC_VERSION, "", 0, QUEUE_FORMAT_MAGIC,
				 strlen(QUEUE_FORMAT_MAGIC));
		int n = snprintf(buf, sizeof(buf), "%lld.%06ld", (long long)qw->arrival.tv_sec,
				 (long)qw->arrival.tv_usec);
		queue_rec_append(&qw->out, QUEUE_REC_ARRIVAL, "", 0, buf, (size_t)n);
		queue_rec_append(&qw->out, QUEUE_REC_SENDER, "", 0, qw->sender,
				 strlen(qw->sender));
		str_append_n(&qw->out, qw->attrs.data, qw->attrs.len);
		n = snprintf(buf, sizeof(buf), "%zu", qw->rcpt_count);
		queue_rec_append(&qw->out, QUEUE_REC_COUNT, "", 0, buf, (size_t)n);
		str_append_n(&qw->out, qw->rcpts.data, qw->rcpts.len);
	}
	str_deinit(&qw->attrs);
	str_deinit(&qw->rcpts);
}

/* queue_writer_chunk: turn the pending content into one C record. */
static void queue_writer_chunk(struct queue_writer *qw)
{
	if (qw->chunk.len > 0 && qw->error == 0)
		queue_rec_append(&qw->out, QUEUE_REC_CONTENT, "", 0, qw->chunk.data, qw->chunk.len);
	str_clear(&qw->chunk);
	if (qw->out.len >= QUEUE_CHUNK_MAX)
		queue_writer_flush(qw);
}

/* queue_writer_content: buffer message bytes into 64 KiB records. */
void queue_writer_content(struct queue_writer *qw, const void *data, size_t len)
{
	const char *p = data;
	queue_writer_envelope(qw);
	qw->content_size += (long long)len;
	while (qw->error == 0 && len > 0) {
		size_t room = QUEUE_CHUNK_MAX - qw->chunk.len;
		size_t n = len < room ? len : room;
		str_append_n(&qw->chunk, p, n);
		p += n;
		len -= n;
		if (qw->chunk.len == QUEUE_CHUNK_MAX)
			queue_writer_chunk(qw);
	}
}

/* queue_writer_size: content bytes handed over so far. */
long long queue_writer_size(const struct queue_writer *qw)
{
	return qw->content_size;
}

/* queue_writer_failed: whether commit is already bound to fail. */
bool queue_writer_failed(const struct queue_writer *qw)
{
	return qw->error != 0;
}

/* queue_writer_finish: trailer, END, fsync, close, rename to target
 * (replacing it, or never), fsync of target's directory dir; stops at the
 * first error. Returns true when target was created (so cleanup must deal
 * with that name, not the temp one). */
static bool queue_writer_finish(struct queue_writer *qw, const char *target, bool replace,
				const char *dir)
{
	char buf[32];
	queue_writer_envelope(qw);
	queue_writer_chunk(qw);
	if (qw->error == 0) {
		int n = snprintf(buf, sizeof(buf), "%lld", qw->content_size);
		queue_rec_append(&qw->out, QUEUE_REC_SIZE, "", 0, buf, (size_t)n);
		queue_rec_append(&qw->out, QUEUE_REC_END, "", 0, "", 0);
		queue_writer_flush(qw);
	}
	if (qw->error == 0 && fsync(qw->fd) < 0)
		queue_writer_fail(qw, errno, "fsync(%s) failed: %s", qw->temp_path,
				  strerror(errno));
	int fd = qw->fd;
	qw->fd = -1;
	if (close(fd) < 0)
		queue_writer_fail(qw, errno, "close(%s) failed: %s", qw->temp_path,
				  strerror(errno));
	if (qw->error != 0)
		return false;
	/* rename_noreplace 1: the target is in place, the temp name left
	 * (invisible). */
	if (replace ? rename(qw->temp_path, target) < 0 :
		      rename_noreplace(qw->temp_path, target) < 0) {
		queue_writer_fail(qw, errno, "rename(%s, %s) failed: %s", qw->temp_path, target,
				  strerror(errno));
		return false;
	}
	if (fsync_dir(dir) < 0)
		queue_writer_fail(qw, errno, "fsync(%s) failed: %s", dir, strerror(errno));
	return true;
}

/* queue_writer_commit: make the file durable and visible, or remove it. */
int queue_writer_commit(struct queue_writer **qwp, int *errno_r, const char **error_r)
{
	struct queue_writer *qw = *qwp;
	*qwp = NULL;
	bool renamed = queue_writer_finish(qw, qw->final_path, false, qw->incoming_dir);
	if (qw->error == 0) {
		queue_writer_free(qw);
		return 0;
	}
	/* Not acknowledged, so not kept: the client will send it again, and
	 * a copy left behind (say, after a failed directory fsync) would be
	 * delivered twice. */
	(void)unlink(renamed ? qw->final_path : qw->temp_path);
	*errno_r = qw->error;
	*error_r = queue_error("%s", qw->error_text);
	queue_writer_free(qw);
	return -1;
}

/* queue_writer_commit_replace: make the file durable under path, in place
 * of what was there; see queue.h. */
int queue_writer_commit_replace(struct queue_writer **qwp, const char *path, int *errno_r,
				const char **error_r)
{
	struct queue_writer *qw = *qwp;
	*qwp = NULL;
	struct str dir = STR_INIT;
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		str_append(&dir, ".");
	else
		str_append_n(&dir, path, slash == path ? 1 : (size_t)(slash - path));
	bool renamed = queue_writer_finish(qw, path, true, str_c(&dir));
	str_deinit(&dir);
	if (qw->error == 0) {
		queue_writer_free(qw);
		return 0;
	}
	/* Once renamed, the file it replaced is gone: the new one is all
	 * that is left of the message, so it stays even when the directory
	 * fsync failed. */
	if (!renamed)
		(void)unlink(qw->temp_path);
	*errno_r = qw->error;
	*error_r = queue_error("%s", qw->error_text);
	queue_writer_free(qw);
	return -1;
}

/* queue_writer_abort: drop the message. */
void queue_writer_abort(struct queue_writer **qwp)
{
	struct queue_writer *qw = *qwp;
	if (qw == NULL)
		return;
	*qwp = NULL;
	if (qw->temp_path != NULL)
		(void)unlink(qw->temp_path);
	queue_writer_free(qw);
}
