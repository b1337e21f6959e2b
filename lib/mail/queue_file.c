/* queue_file.c: the queue file reader; see queue.h, and the grammar in
 * queue.c.
 *
 * The reader fails closed: it checks every record's type, length and
 * framing, the record order, every field's syntax and limit, the recipient
 * count, the content size, that END is there and that nothing follows it.
 * Content records are checked for their framing only; their bytes stay on
 * disk (one small pread per 64 KiB record) and are read back on demand. */
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
#include "util/str.h"

#define QUEUE_IN_BUF 16384

/* A buffered view of the file, by offset (pread), so skipping content
 * costs nothing. */
struct queue_in {
	int fd;
	const char *path;
	off_t base; /* file offset of buf[0] */
	size_t len; /* bytes held in buf */
	size_t pos; /* next unread byte in buf */
	unsigned char buf[QUEUE_IN_BUF];
};

struct queue_rec {
	char type;
	size_t len;
	off_t offset;		   /* of the record header */
	off_t data_offset;	   /* of the first data byte */
	const unsigned char *data; /* NULL for content, which is skipped */
};

/* The largest data length of each record type; 0 also for unknown types. */
static size_t queue_rec_max(char type)
{
	switch (type) {
	case QUEUE_REC_VERSION:
		return 32;
	case QUEUE_REC_ARRIVAL:
		return 26;
	case QUEUE_REC_SENDER:
	case QUEUE_REC_ORCPT:
		return QUEUE_ADDRESS_MAX;
	case QUEUE_REC_ATTR:
		return QUEUE_ATTR_NAME_MAX + 1 + QUEUE_ATTR_VALUE_MAX;
	case QUEUE_REC_COUNT:
		return 6;
	case QUEUE_REC_RCPT:
		return 2 + QUEUE_ADDRESS_MAX;
	case QUEUE_REC_CONTENT:
		return QUEUE_CHUNK_MAX;
	case QUEUE_REC_SIZE:
		return 19;
	default:
		return 0;
	}
}

static bool queue_rec_known(char type)
{
	return type != '\0' && strchr("VTSANORCZE", type) != NULL;
}

/* queue_bad: a format error: *error_r names the file and offset, errno is
 * EBADMSG. Returns -1. */
static int ATTR_FORMAT(4, 5) queue_bad(const struct queue_in *in, off_t offset,
				       const char **error_r, const char *fmt, ...)
{
	char text[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	*error_r = queue_error("%s: corrupt queue file: %s at offset %lld", in->path, text,
			       (long long)offset);
	errno = EBADMSG;
	return -1;
}

/* queue_in_fill: make at least need bytes available (reading up to want),
 * 0 if so, 1 at end of file, -1 on a read error (errno set). */
static int queue_in_fill(struct queue_in *in, size_t need, size_t want)
{
	if (in->len - in->pos >= need)
		return 0;
	memmove(in->buf, in->buf + in->pos, in->len - in->pos);
	in->base += (off_t)in->pos;
	in->len -= in->pos;
	in->pos = 0;
	size_t goal = want > need ? want : need;
	if (goal > sizeof(in->buf))
		goal = sizeof(in->buf);
	while (in->len < goal) {
		ssize_t n = pread(in->fd, in->buf + in->len, goal - in->len,
				  in->base + (off_t)in->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		in->len += (size_t)n;
	}
	return in->len >= need ? 0 : 1;
}

/* queue_in_skip: step over n bytes without reading them. */
static void queue_in_skip(struct queue_in *in, size_t n)
{
	if (n <= in->len - in->pos) {
		in->pos += n;
		return;
	}
	in->base += (off_t)(in->pos + n);
	in->len = in->pos = 0;
}

static off_t queue_in_offset(const struct queue_in *in)
{
	return in->base + (off_t)in->pos;
}

/* queue_in_fail: a read error, or end of file where a record must be. */
static int queue_in_fail(const struct queue_in *in, int r, const char **error_r)
{
	if (r < 0) {
		int saved_errno = errno;
		*error_r = queue_error("read(%s) failed: %s", in->path, strerror(errno));
		errno = saved_errno;
		return -1;
	}
	return queue_bad(in, queue_in_offset(in), error_r, "unexpected end of file");
}

/* queue_rec_header: parse "type length ':'" at the current offset. */
static int queue_rec_header(struct queue_in *in, struct queue_rec *rec, size_t want,
			    const char **error_r)
{
	rec->offset = queue_in_offset(in);
	int r = queue_in_fill(in, QUEUE_REC_HEADER_MAX, want);
	if (r < 0)
		return queue_in_fail(in, r, error_r);
	const unsigned char *p = in->buf + in->pos;
	size_t avail = in->len - in->pos;
	if (avail == 0)
		return queue_in_fail(in, 1, error_r);
	rec->type = (char)p[0];
	if (!queue_rec_known(rec->type))
		return queue_bad(in, rec->offset, error_r, "unknown record type 0x%02x", p[0]);
	size_t i = 1;
	unsigned long long len = 0; /* 10 digits fit */
	while (i < avail && p[i] >= '0' && p[i] <= '9' && i <= QUEUE_REC_LENGTH_DIGITS) {
		len = len * 10 + (unsigned)(p[i] - '0');
		i++;
	}
	if (i == avail)
		return queue_in_fail(in, 1, error_r);
	if (i == 1 || p[i] != ':' || (p[1] == '0' && i > 2))
		return queue_bad(in, rec->offset, error_r, "malformed %c record length", rec->type);
	if (len > queue_rec_max(rec->type) || (rec->type == QUEUE_REC_CONTENT && len == 0))
		return queue_bad(in, rec->offset, error_r, "%c record length %llu out of range",
				 rec->type, len);
	rec->len = (size_t)len;
	in->pos += i + 1;
	rec->data_offset = queue_in_offset(in);
	return 0;
}

/* queue_rec_next: the next record; its data (except content) stays valid
 * until the next call. Every record must end in LF. */
static int queue_rec_next(struct queue_in *in, struct queue_rec *rec, const char **error_r)
{
	if (queue_rec_header(in, rec, sizeof(in->buf), error_r) < 0)
		return -1;
	int r;
	if (rec->type == QUEUE_REC_CONTENT) {
		/* Check the LF and read the next header in one small pread. */
		queue_in_skip(in, rec->len);
		rec->data = NULL;
		r = queue_in_fill(in, 1, 1 + QUEUE_REC_HEADER_MAX);
		if (r != 0)
			return queue_in_fail(in, r, error_r);
	} else {
		r = queue_in_fill(in, rec->len + 1, sizeof(in->buf));
		if (r != 0)
			return queue_in_fail(in, r, error_r);
		rec->data = in->buf + in->pos;
		in->pos += rec->len;
	}
	if (in->buf[in->pos] != '\n')
		return queue_bad(in, rec->offset, error_r, "%c record not ended by LF", rec->type);
	in->pos++;
	return 0;
}

/* queue_rec_expect: the next record, which must be of type. */
static int queue_rec_expect(struct queue_in *in, struct queue_rec *rec, char type,
			    const char **error_r)
{
	if (queue_rec_next(in, rec, error_r) < 0)
		return -1;
	if (rec->type != type)
		return queue_bad(in, rec->offset, error_r, "%c record where %c belongs", rec->type,
				 type);
	return 0;
}

/* queue_parse_decimal: 1..19 digits, no leading zero, at most max. */
static bool queue_parse_decimal(const unsigned char *p, size_t len, long long max,
				long long *value_r)
{
	long long v = 0;
	if (len == 0 || len > 19 || (p[0] == '0' && len > 1))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		if (v > (max - (p[i] - '0')) / 10)
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*value_r = v;
	return true;
}

/* queue_parse_string: a copy of data that must hold no NUL. */
static char *queue_parse_string(const unsigned char *data, size_t len)
{
	if (memchr(data, '\0', len) != NULL)
		return NULL;
	return xstrndup((const char *)data, len);
}

/* queue_file_arrival: "seconds.microseconds", microseconds 6 digits. */
static int queue_file_arrival(struct queue_in *in, struct queue_file *qf, const char **error_r)
{
	struct queue_rec rec;
	long long sec, usec = 0;
	if (queue_rec_expect(in, &rec, QUEUE_REC_ARRIVAL, error_r) < 0)
		return -1;
	const unsigned char *dot = memchr(rec.data, '.', rec.len);
	size_t sec_len = dot != NULL ? (size_t)(dot - rec.data) : 0;
	bool ok = dot != NULL && rec.len - sec_len - 1 == 6 &&
		  queue_parse_decimal(rec.data, sec_len, 0x7fffffffffffffffLL, &sec);
	/* The microseconds keep their leading zeros ("000123"). */
	for (size_t i = 0; ok && i < 6; i++) {
		ok = dot[1 + i] >= '0' && dot[1 + i] <= '9';
		usec = usec * 10 + (dot[1 + i] - '0');
	}
	if (!ok)
		return queue_bad(in, rec.offset, error_r, "malformed arrival time");
	qf->arrival.tv_sec = (time_t)sec;
	qf->arrival.tv_usec = (suseconds_t)usec;
	return 0;
}

/* queue_attr_valid_name: [a-z0-9_]{1,64}, as the writer enforces. */
static bool queue_attr_valid_name(const unsigned char *p, size_t len)
{
	if (len == 0 || len > QUEUE_ATTR_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
			return false;
	}
	return true;
}

/* queue_file_attr_rec: one "name=value" record into qf->attrs. */
static int queue_file_attr_rec(struct queue_in *in, struct queue_file *qf,
			       const struct queue_rec *rec, const char **error_r)
{
	const unsigned char *eq = memchr(rec->data, '=', rec->len);
	size_t name_len = eq != NULL ? (size_t)(eq - rec->data) : 0;
	if (eq == NULL || !queue_attr_valid_name(rec->data, name_len) ||
	    rec->len - name_len - 1 > QUEUE_ATTR_VALUE_MAX)
		return queue_bad(in, rec->offset, error_r, "malformed attribute");
	if (qf->attr_count >= QUEUE_ATTR_COUNT_MAX)
		return queue_bad(in, rec->offset, error_r, "too many attributes");
	char *value = queue_parse_string(eq + 1, rec->len - name_len - 1);
	if (value == NULL)
		return queue_bad(in, rec->offset, error_r, "NUL in attribute value");
	char *name = xstrndup((const char *)rec->data, name_len);
	for (size_t i = 0; i < qf->attr_count; i++) {
		if (strcmp(qf->attrs[i].name, name) == 0) {
			free(name);
			free(value);
			return queue_bad(in, rec->offset, error_r, "duplicate attribute");
		}
	}
	if (qf->attrs == NULL)
		qf->attrs = xcalloc(QUEUE_ATTR_COUNT_MAX, sizeof(*qf->attrs));
	qf->attrs[qf->attr_count].name = name;
	qf->attrs[qf->attr_count].value = value;
	qf->attr_count++;
	return 0;
}

/* queue_file_hex: an uppercase hex digit's value, or -1. */
static int queue_file_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* queue_file_rcpt_rec: one R record (and the O record before it). */
static int queue_file_rcpt_rec(struct queue_in *in, struct queue_file_rcpt *rcpt,
			       const struct queue_rec *rec, const char **error_r)
{
	if (rec->len < 2 || (rec->data[0] != QUEUE_RCPT_PENDING && rec->data[0] != QUEUE_RCPT_DONE))
		return queue_bad(in, rec->offset, error_r, "malformed recipient status");
	int notify = queue_file_hex(rec->data[1]);
	if (notify < 0 || ((notify & QUEUE_NOTIFY_NEVER) != 0 && notify != QUEUE_NOTIFY_NEVER))
		return queue_bad(in, rec->offset, error_r, "malformed recipient NOTIFY");
	char *address = queue_parse_string(rec->data + 2, rec->len - 2);
	if (address == NULL)
		return queue_bad(in, rec->offset, error_r, "NUL in recipient address");
	rcpt->address = address;
	rcpt->status = (char)rec->data[0];
	rcpt->notify = (unsigned)notify;
	rcpt->status_offset = rec->data_offset;
	return 0;
}

/* queue_file_envelope: sender, attributes, count and recipients. */
static int queue_file_envelope(struct queue_in *in, struct queue_file *qf, const char **error_r)
{
	struct queue_rec rec;
	long long count;
	if (queue_rec_expect(in, &rec, QUEUE_REC_SENDER, error_r) < 0)
		return -1;
	if ((qf->sender = queue_parse_string(rec.data, rec.len)) == NULL)
		return queue_bad(in, rec.offset, error_r, "NUL in sender address");
	for (;;) {
		if (queue_rec_next(in, &rec, error_r) < 0)
			return -1;
		if (rec.type != QUEUE_REC_ATTR)
			break;
		if (queue_file_attr_rec(in, qf, &rec, error_r) < 0)
			return -1;
	}
	if (rec.type != QUEUE_REC_COUNT)
		return queue_bad(in, rec.offset, error_r, "%c record where N belongs", rec.type);
	if (!queue_parse_decimal(rec.data, rec.len, QUEUE_RCPT_MAX, &count) || count == 0)
		return queue_bad(in, rec.offset, error_r, "malformed recipient count");
	qf->rcpts = xcalloc((size_t)count, sizeof(*qf->rcpts));
	for (size_t i = 0; i < (size_t)count; i++) {
		struct queue_file_rcpt *rcpt = &qf->rcpts[i];
		qf->rcpt_count = i + 1; /* so queue_file_free() sees what is set */
		if (queue_rec_next(in, &rec, error_r) < 0)
			return -1;
		if (rec.type == QUEUE_REC_ORCPT) {
			const char *orcpt = queue_parse_string(rec.data, rec.len);
			if (orcpt == NULL)
				return queue_bad(in, rec.offset, error_r, "NUL in ORCPT");
			rcpt->orcpt = orcpt;
			if (queue_rec_next(in, &rec, error_r) < 0)
				return -1;
		}
		if (rec.type != QUEUE_REC_RCPT)
			return queue_bad(in, rec.offset, error_r, "%c record where R belongs",
					 rec.type);
		if (queue_file_rcpt_rec(in, rcpt, &rec, error_r) < 0)
			return -1;
		if (rcpt->status == QUEUE_RCPT_PENDING)
			qf->rcpt_pending++;
	}
	return 0;
}

/* queue_file_content: the content records, the size trailer and END. */
static int queue_file_content(struct queue_in *in, struct queue_file *qf, const char **error_r)
{
	struct queue_rec rec;
	size_t cap = 0;
	long long size;
	for (;;) {
		if (queue_rec_next(in, &rec, error_r) < 0)
			return -1;
		if (rec.type != QUEUE_REC_CONTENT)
			break;
		if (qf->chunk_count == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			qf->chunks = xreallocarray(qf->chunks, cap, sizeof(*qf->chunks));
		}
		qf->chunks[qf->chunk_count].offset = rec.data_offset;
		qf->chunks[qf->chunk_count].len = rec.len;
		qf->chunk_count++;
		qf->content_size += (long long)rec.len;
	}
	if (rec.type != QUEUE_REC_SIZE)
		return queue_bad(in, rec.offset, error_r, "%c record where C or Z belongs",
				 rec.type);
	if (!queue_parse_decimal(rec.data, rec.len, 0x7fffffffffffffffLL, &size) ||
	    size != qf->content_size)
		return queue_bad(in, rec.offset, error_r, "content size mismatch");
	if (queue_rec_expect(in, &rec, QUEUE_REC_END, error_r) < 0)
		return -1;
	int r = queue_in_fill(in, 1, 1);
	if (r < 0)
		return queue_in_fail(in, r, error_r);
	if (r == 0)
		return queue_bad(in, queue_in_offset(in), error_r, "data after END record");
	return 0;
}

/* queue_file_parse: the whole file, in grammar order. */
static int queue_file_parse(struct queue_in *in, struct queue_file *qf, const char **error_r)
{
	struct queue_rec rec;
	if (queue_rec_expect(in, &rec, QUEUE_REC_VERSION, error_r) < 0)
		return -1;
	if (rec.len != strlen(QUEUE_FORMAT_MAGIC) ||
	    memcmp(rec.data, QUEUE_FORMAT_MAGIC, rec.len) != 0)
		return queue_bad(in, rec.offset, error_r, "unsupported format version");
	if (queue_file_arrival(in, qf, error_r) < 0 || queue_file_envelope(in, qf, error_r) < 0 ||
	    queue_file_content(in, qf, error_r) < 0)
		return -1;
	return 0;
}

/* queue_file_read: open, parse, validate; see queue.h. */
struct queue_file *queue_file_read(const char *path, const char **error_r)
{
	struct queue_file *qf = xcalloc(1, sizeof(*qf));
	struct stat st;
	qf->path = xstrdup(path);
	/* O_NONBLOCK: a fifo put where a queue file was expected (maildrop/
	 * is writable by local users) must not stall the reader; anything but
	 * a regular file is damaged input. */
	qf->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (qf->fd < 0 || fstat(qf->fd, &st) < 0) {
		int saved_errno = errno;
		*error_r = queue_error("%s(%s) failed: %s", qf->fd < 0 ? "open" : "fstat", path,
				       strerror(errno));
		queue_file_free(&qf);
		errno = saved_errno;
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		*error_r = queue_error("%s: not a regular file", path);
		queue_file_free(&qf);
		errno = EBADMSG;
		return NULL;
	}
	qf->file_size = (long long)st.st_size;
	const char *slash = strrchr(path, '/');
	const char *base = slash != NULL ? slash + 1 : path;
	if (queue_id_valid(base))
		(void)str_copy(qf->id, sizeof(qf->id), base);
	struct queue_in *in = xmalloc(sizeof(*in));
	in->fd = qf->fd;
	in->path = path;
	in->base = 0;
	in->len = in->pos = 0;
	int ret = queue_file_parse(in, qf, error_r);
	free(in);
	if (ret < 0) {
		int saved_errno = errno;
		queue_file_free(&qf);
		errno = saved_errno;
		return NULL;
	}
	return qf;
}

/* queue_file_free: close the file and free the parse. */
void queue_file_free(struct queue_file **qfp)
{
	struct queue_file *qf = *qfp;
	if (qf == NULL)
		return;
	*qfp = NULL;
	if (qf->fd >= 0)
		(void)close(qf->fd);
	for (size_t i = 0; i < qf->attr_count; i++) {
		free((char *)qf->attrs[i].name);
		free((char *)qf->attrs[i].value);
	}
	for (size_t i = 0; i < qf->rcpt_count; i++) {
		free((char *)qf->rcpts[i].address);
		free((char *)qf->rcpts[i].orcpt);
	}
	free(qf->attrs);
	free(qf->rcpts);
	free(qf->chunks);
	free((char *)qf->sender);
	free(qf->path);
	free(qf);
}

/* queue_file_attr: look up an attribute by name. */
const char *queue_file_attr(const struct queue_file *qf, const char *name)
{
	for (size_t i = 0; i < qf->attr_count; i++) {
		if (strcmp(qf->attrs[i].name, name) == 0)
			return qf->attrs[i].value;
	}
	return NULL;
}

/* queue_file_content_read: the content as one stream, chunk by chunk. */
ssize_t queue_file_content_read(struct queue_file *qf, void *buf, size_t size,
				 const char **error_r)
{
	while (qf->read_chunk < qf->chunk_count) {
		const struct queue_file_chunk *chunk = &qf->chunks[qf->read_chunk];
		if (qf->read_pos == chunk->len) {
			qf->read_chunk++;
			qf->read_pos = 0;
			continue;
		}
		size_t n = chunk->len - qf->read_pos;
		if (n > size)
			n = size;
		ssize_t r = pread(qf->fd, buf, n, chunk->offset + (off_t)qf->read_pos);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int saved_errno = r < 0 ? errno : EBADMSG;
			*error_r = queue_error("read(%s) failed: %s", qf->path,
					       r < 0 ? strerror(errno) : "file shrank");
			errno = saved_errno;
			return -1;
		}
		qf->read_pos += (size_t)r;
		return r;
	}
	return 0;
}

/* queue_file_content_rewind: start the content stream over. */
void queue_file_content_rewind(struct queue_file *qf)
{
	qf->read_chunk = 0;
	qf->read_pos = 0;
}

/* queue_file_mark_rcpt: overwrite one status byte in place, durably. */
int queue_file_mark_rcpt(const char *path, off_t offset, char status, const char **error_r)
{
	unsigned char old;
	if (status != QUEUE_RCPT_PENDING && status != QUEUE_RCPT_DONE) {
		errno = EINVAL;
		*error_r = queue_error("invalid recipient status 0x%02x", (unsigned char)status);
		return -1;
	}
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		int saved_errno = errno;
		*error_r = queue_error("open(%s) failed: %s", path, strerror(errno));
		errno = saved_errno;
		return -1;
	}
	const char *op = "read";
	ssize_t r = pread(fd, &old, 1, offset);
	if (r == 1 && old != QUEUE_RCPT_PENDING && old != QUEUE_RCPT_DONE) {
		(void)close(fd);
		errno = EBADMSG;
		*error_r = queue_error("%s: no recipient status byte at offset %lld", path,
				       (long long)offset);
		return -1;
	}
	if (r == 1) {
		op = "write";
		r = pwrite(fd, &status, 1, offset);
	}
	if (r == 1) {
		op = "fsync";
		r = fsync(fd) == 0 ? 1 : -1;
	}
	int saved_errno = r < 0 ? errno : EBADMSG;
	if (close(fd) < 0 && r == 1) {
		op = "close";
		saved_errno = errno;
		r = -1;
	}
	if (r != 1) {
		*error_r = queue_error("%s(%s) failed: %s", op, path, strerror(saved_errno));
		errno = saved_errno;
		return -1;
	}
	return 0;
}
