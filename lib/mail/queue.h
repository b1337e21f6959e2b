/* queue.h: the on-disk mail queue: queue IDs, the directory layout, the
 * queue file writer (smtpd's acceptance path) and reader (qmgr, postqueue).
 *
 * Durability contract. smtpd streams a message into a queue_writer and says
 * "250 2.0.0 Ok: queued as ID" only after queue_writer_commit() returned 0.
 * Commit writes the trailer and END record, flushes, fsyncs the file,
 * closes it (checked), renames the invisible temp name (".tmp.*") to
 * incoming/ID and fsyncs incoming/. A crash at any point leaves either a
 * complete visible queue file or nothing visible: names starting with '.'
 * are never queue files, and readers and listers ignore them. Any write,
 * fsync, close or rename error kills the writer: commit fails and the file
 * is removed (an fsync is never retried, its failure may have dropped the
 * dirty pages).
 *
 * Errors: functions return -1 (or NULL) with *error_r in the form
 * "open(path) failed: reason"; the string lives in static storage until the
 * next failing queue call. Where the cause matters to the caller, an errno
 * is handed back too: ENOSPC or EDQUOT mean "no space" (smtpd: 452 4.3.1),
 * anything else is a local error (451 4.3.0); queue_errno_is_nospace() says
 * which. The reader sets errno to EBADMSG for a damaged file (move it to
 * corrupt/) and to the system error otherwise (try again later).
 *
 * The file format is in doc/queue-format.md and, as a grammar, in queue.c. */
#ifndef PETREL_QUEUE_H
#define PETREL_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>
#include <sys/types.h>

/* Queue IDs: 8 hex digits of seconds, 5 of microseconds, then the queue
 * file's inode number in hex; uppercase [0-9A-F], 14..29 characters. They
 * sort by time (string order) and are unique per host: the inode is unique
 * among live files of the queue file system, the time across its reuse. */
#define QUEUE_ID_MAX 32 /* buffer size, including the NUL */
#define QUEUE_ID_MIN_LEN 14
#define QUEUE_ID_MAX_LEN 29

/* Limits the reader enforces and the writer refuses to exceed. */
#define QUEUE_ADDRESS_MAX 1024     /* sender, recipient, ORCPT bytes */
#define QUEUE_ATTR_NAME_MAX 64     /* attribute name bytes */
#define QUEUE_ATTR_VALUE_MAX 4096  /* attribute value bytes */
#define QUEUE_ATTR_COUNT_MAX 100   /* attributes per file */
#define QUEUE_RCPT_MAX 100000      /* recipients per file */
#define QUEUE_CHUNK_MAX 65536      /* content bytes per chunk record */

/* Recipient status byte (in the file, overwritten in place when done). */
#define QUEUE_RCPT_PENDING 'P'
#define QUEUE_RCPT_DONE 'D'

/* DSN NOTIFY bits (RFC 3461); 0 means NOTIFY was not given. */
#define QUEUE_NOTIFY_NEVER 0x1
#define QUEUE_NOTIFY_SUCCESS 0x2
#define QUEUE_NOTIFY_FAILURE 0x4
#define QUEUE_NOTIFY_DELAY 0x8

/* Queue directory names (relative to queue_directory). */
#define QUEUE_INCOMING "incoming"
#define QUEUE_ACTIVE "active"
#define QUEUE_DEFERRED "deferred"
#define QUEUE_HOLD "hold"
#define QUEUE_CORRUPT "corrupt"
#define QUEUE_MAILDROP "maildrop"
#define QUEUE_PICKUP "pickup" /* pickup(8)'s own: claimed maildrop files */

/* Every directory queue_dirs_create() makes, NULL-terminated. */
extern const char *const queue_dirs_names[];
/* The message queues in listing order (incoming active deferred hold). */
extern const char *const queue_dirs_message_queues[];

/* queue_errno_is_nospace: ENOSPC or EDQUOT (smtpd answers 452 4.3.1). */
bool queue_errno_is_nospace(int err);

/* --- queue IDs (queue_id.c) --- */

/* queue_id_format: the ID for a file created at tv with inode ino. */
void queue_id_format(char id[QUEUE_ID_MAX], const struct timeval *tv, unsigned long long ino);
/* queue_id_valid: true when name has the shape of a queue ID (so temp
 * names, which start with '.', never are). */
bool queue_id_valid(const char *name);
/* queue_id_time: the creation time encoded in a valid ID. */
bool queue_id_time(const char *id, struct timeval *tv_r);

/* --- directory layout (queue_dirs.c) --- */

/* queue_dirs_create: make queue_dir (0755) and every queue_dirs_names[]
 * entry in it (0700); existing directories are kept, so it is idempotent. */
int queue_dirs_create(const char *queue_dir, const char **error_r);

/* queue_scan: the queue IDs in one queue directory, sorted (so by time).
 * Temp names and anything that is not a queue ID are skipped. */
struct queue_scan;
/* queue_scan_open: read queue_dir/queue_name. A missing directory is an
 * error (errno ENOENT is kept for the caller). */
struct queue_scan *queue_scan_open(const char *queue_dir, const char *queue_name,
				   const char **error_r);
/* queue_scan_next: the next ID, or NULL at the end. */
const char *queue_scan_next(struct queue_scan *scan);
size_t queue_scan_count(const struct queue_scan *scan);
void queue_scan_close(struct queue_scan **scan);

/* --- writer (queue.c) --- */

struct queue_rcpt {
	const char *address; /* RFC 5321 form as received, no angle brackets */
	const char *orcpt;   /* DSN ORCPT ("rfc822;user@example.com") or NULL */
	unsigned notify;     /* QUEUE_NOTIFY_* bits, 0 if not given */
};

struct queue_writer;

/* queue_writer_open: create an invisible temp file in queue_dir/incoming
 * (O_EXCL, 0600) and assign the message its ID. NULL with *error_r and
 * errno set on failure. */
struct queue_writer *queue_writer_open(const char *queue_dir, const char **error_r);
const char *queue_writer_id(const struct queue_writer *qw);
/* Envelope, all before the first queue_writer_content() call (calling them
 * later is a programming error: panic). Invalid data (too long, a NUL, a
 * duplicate attribute, too many recipients) is a sticky error reported by
 * commit. The arrival time defaults to the time of open. */
void queue_writer_arrival(struct queue_writer *qw, const struct timeval *tv);
void queue_writer_sender(struct queue_writer *qw, const char *sender); /* "" for <> */
/* queue_writer_attr: name is [a-z0-9_]{1,64}, Postfix's attribute names
 * where there is one: client_name, client_address, client_port, helo_name,
 * protocol_name, envid, ret, body, smtputf8, sasl_username, ... */
void queue_writer_attr(struct queue_writer *qw, const char *name, const char *value);
void queue_writer_rcpt(struct queue_writer *qw, const struct queue_rcpt *rcpt);
/* queue_writer_content: message bytes (any bytes); buffered, errors sticky. */
void queue_writer_content(struct queue_writer *qw, const void *data, size_t len);
/* queue_writer_size: content bytes so far (for message_size_limit). */
long long queue_writer_size(const struct queue_writer *qw);
/* queue_writer_failed: true once a sticky error happened (commit will fail);
 * smtpd can stop reading into a dead writer early. */
bool queue_writer_failed(const struct queue_writer *qw);
/* queue_writer_commit: make the message durable and visible as
 * incoming/ID. 0 on success. -1 with *errno_r and *error_r otherwise, and
 * then nothing is left behind. Frees *qw either way. */
int queue_writer_commit(struct queue_writer **qw, int *errno_r, const char **error_r);
/* queue_writer_commit_replace: like commit, but the finished file is
 * renamed to path (on the queue's file system) replacing whatever is there
 * in one atomic step, and path's directory is fsync'd. pickup(8) uses it
 * to turn a submitted file into a queue file without a moment in which
 * both or neither exist. 0 on success. -1 with *errno_r and *error_r
 * otherwise: when the rename failed the temp file is removed and path is
 * untouched; when only the directory fsync failed, path holds the new
 * file (what it replaced is gone, so the new file is kept). Frees *qw. */
int queue_writer_commit_replace(struct queue_writer **qw, const char *path, int *errno_r,
				const char **error_r);
/* queue_writer_abort: remove the temp file and free *qw (NULL is fine). */
void queue_writer_abort(struct queue_writer **qw);

/* --- reader (queue_file.c) --- */

struct queue_file_attr {
	const char *name;
	const char *value;
};

struct queue_file_rcpt {
	const char *address;
	const char *orcpt; /* NULL when not given */
	unsigned notify;
	char status;          /* QUEUE_RCPT_PENDING or QUEUE_RCPT_DONE */
	off_t status_offset;  /* file offset of the status byte */
};

struct queue_file_chunk {
	off_t offset; /* file offset of the first content byte */
	size_t len;
};

/* A parsed queue file; every field is read-only for the caller. */
struct queue_file {
	char *path;
	char id[QUEUE_ID_MAX]; /* the file name when it is a queue ID, else "" */
	struct timeval arrival;
	const char *sender; /* "" for the null sender */
	struct queue_file_attr *attrs;
	size_t attr_count;
	struct queue_file_rcpt *rcpts;
	size_t rcpt_count;
	size_t rcpt_pending; /* recipients with status QUEUE_RCPT_PENDING */
	struct queue_file_chunk *chunks;
	size_t chunk_count;
	long long content_size;
	long long file_size;
	/* private */
	int fd;
	size_t read_chunk;
	size_t read_pos;
	char *strings;
};

/* queue_file_read: open path and parse and validate all of it (envelope,
 * every content record's framing, trailer, END, nothing after END). The
 * content stays on disk; the file stays open (read-only) for
 * queue_file_content_read(). NULL with *error_r on failure, errno EBADMSG
 * when the file is damaged. */
struct queue_file *queue_file_read(const char *path, const char **error_r);
void queue_file_free(struct queue_file **qf);
/* queue_file_attr: value of attribute name, or NULL. */
const char *queue_file_attr(const struct queue_file *qf, const char *name);
/* queue_file_content_read: the next up to size content bytes (the message
 * as a stream). Returns the count, 0 at the end, -1 with *error_r. */
ssize_t queue_file_content_read(struct queue_file *qf, void *buf, size_t size,
				 const char **error_r);
void queue_file_content_rewind(struct queue_file *qf);
/* queue_file_mark_rcpt: set the status byte at offset (from
 * queue_file_rcpt.status_offset) of the file at path in place and fsync.
 * The byte there must already be a status byte. */
int queue_file_mark_rcpt(const char *path, off_t offset, char status, const char **error_r);

#endif
