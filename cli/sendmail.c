/* sendmail.c: the Postfix/sendmail-compatible local submission command.
 *
 * SYNOPSIS
 *	sendmail [-t] [-i] [-oi] [-f sender] [-r sender] [-F fullname]
 *		 [-N dsn] [-R ret] [-V envid] [-B body] [-c config_dir]
 *		 [-bm] [-bs] [-bp] [-bi] [-oXXX ...] [--] [recipient ...]
 *	mailq [-c config_dir]		(postqueue -p)
 *	newaliases [-c config_dir]	(command_directory/newaliases)
 *
 * DESCRIPTION
 *	Reads a message on stdin (LF or CRLF line ends; stored with CRLF), a
 *	line with a single "." ends it unless -i or -oi. -t adds the
 *	recipients of To:, Cc: and Bcc: (Resent-To:, Resent-Cc:, Resent-Bcc:
 *	when the message has any of them) to those on the command line.
 *	Bcc: and Resent-Bcc: are removed; a missing Message-Id:, Date: and
 *	From: are added at the end of the header as Postfix's cleanup does
 *	for local submissions. Unqualified addresses get @$myorigin.
 *
 *	The message is written in queue file format (doc/queue-format.md)
 *	into maildrop/ as a temp name, fsync'd, renamed to its final name and
 *	the directory fsync'd; then pickup(8) is woken through public/pickup.
 *	Exit status 0 means the file is on disk.
 *
 *	-bs speaks SMTP on stdin/stdout (HELO, EHLO, MAIL, RCPT, DATA, RSET,
 *	NOOP, QUIT; no ESMTP parameters): each message is dot-unstuffed and
 *	written as above, then answered "250 2.0.0 Ok: queued as ID". A
 *	local error ends the session with a 421 reply and exit status 75.
 *
 * SECURITY
 *	Not set-id. maildrop/ is mode 1733: anyone may create a file there but
 *	nobody may list it, so the final name carries 64 random bits (the
 *	file is mode 0444 so that an unprivileged pickup can read it).
 *	pickup(8) treats these files as untrusted input.
 *
 * DIAGNOSTICS
 *	"sendmail: fatal: ..." on stderr; exit 75 (EX_TEMPFAIL) for a local
 *	problem, 64 (EX_USAGE) for a bad command line or no recipients, 65
 *	(EX_DATAERR) for a bad address or a message over message_size_limit. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "mail/addr.h"
#include "mail/config.h"
#include "mail/mail_date.h"
#include "mail/queue.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/msg.h"
#include "util/str.h"

#define SM_EX_USAGE 64
#define SM_EX_DATAERR 65
#define SM_EX_UNAVAILABLE 69
#define SM_EX_TEMPFAIL 75

#define SM_HEADER_MAX 1000000 /* bytes of header section examined for -t */
#define SM_FULLNAME_MAX 200

struct sendmail {
	const char *config_dir;
	const char *myorigin;
	const char *myhostname;
	char *login;
	long uid;
	char *sender;	 /* external form, "" for <> */
	char *full_name; /* NULL: none */
	bool extract;	 /* -t */
	bool dot_ends;	 /* no -i/-oi */
	unsigned notify; /* -N */
	const char *ret; /* -R: FULL or HDRS */
	const char *envid;
	const char *body;
	char **rcpts;
	size_t rcpt_count, rcpt_cap;
	struct str message; /* as read, CRLF lines */
	struct str out;	    /* the content written */
};

static int sendmail_exit_status = SM_EX_TEMPFAIL;
static char *sendmail_temp_path;
static bool sendmail_smtp_mode; /* -bs: a fatal error is also a 421 reply */

/* sendmail_cleanup: msg_fatal's hook: remove an unfinished file, then
 * exit with the status the caller chose (Postfix's msg_fatal_status). */
static void sendmail_cleanup(void)
{
	if (sendmail_temp_path != NULL)
		(void)unlink(sendmail_temp_path);
	if (sendmail_smtp_mode)
		printf("421 4.3.0 Error: local problem, closing connection\r\n");
	fflush(stdout);
	_exit(sendmail_exit_status);
}

/* sendmail_fatal: msg_fatal with an exit status. */
static void ATTR_FORMAT(2, 3) ATTR_NORETURN sendmail_fatal(int status, const char *fmt, ...)
{
	struct str text = STR_INIT;
	va_list ap;
	va_start(ap, fmt);
	str_vprintf(&text, fmt, ap);
	va_end(ap);
	sendmail_exit_status = status;
	msg_fatal("%s", str_c(&text));
}

/* sendmail_usage: the synopsis, exit 64. */
static void ATTR_NORETURN sendmail_usage(void)
{
	sendmail_fatal(SM_EX_USAGE, "usage: sendmail [-t] [-i] [-f sender] [-F fullname] "
				    "[-N dsn] [-R ret] [-V envid] [-c config_dir] [recipient ...]");
}

/* sendmail_qualify: an address as the queue stores it; a bare local part
 * gets @myorigin. false when the syntax is bad. */
static bool sendmail_qualify(const struct sendmail *sm, const char *text, char **external_r)
{
	struct str full = STR_INIT;
	struct smtp_addr addr;
	const char *error;
	str_append(&full, text);
	if (strchr(text, '@') == NULL && *sm->myorigin != '\0')
		str_printf(&full, "@%s", sm->myorigin);
	enum addr_error err = addr_parse_mailbox(full.data, full.len, ADDR_ALLOW_SMTPUTF8, &addr,
						 &error);
	str_deinit(&full);
	if (err != ADDR_OK)
		return false;
	*external_r = addr.external;
	addr.external = NULL;
	smtp_addr_deinit(&addr);
	return true;
}

/* sendmail_push_rcpt: append a recipient (external form, owned). */
static void sendmail_push_rcpt(struct sendmail *sm, char *external)
{
	if (sm->rcpt_count >= QUEUE_RCPT_MAX)
		sendmail_fatal(SM_EX_DATAERR, "%s(%ld): more than %d recipients", sm->login,
			       sm->uid, QUEUE_RCPT_MAX);
	if (sm->rcpt_count == sm->rcpt_cap) {
		sm->rcpt_cap = sm->rcpt_cap == 0 ? 16 : sm->rcpt_cap * 2;
		sm->rcpts = xreallocarray(sm->rcpts, sm->rcpt_cap, sizeof(*sm->rcpts));
	}
	sm->rcpts[sm->rcpt_count++] = external;
}

/* sendmail_add_rcpt: one address from the command line or a header. */
static void sendmail_add_rcpt(struct sendmail *sm, const char *text)
{
	char *external;
	if (!sendmail_qualify(sm, text, &external))
		sendmail_fatal(SM_EX_DATAERR, "%s(%ld): bad recipient address syntax: %s",
			       sm->login, sm->uid, text);
	sendmail_push_rcpt(sm, external);
}

/* sendmail_emit_addr: the end of one list element: the <route-addr> when
 * there was one, else the bare text without comments and white space. */
static void sendmail_emit_addr(struct sendmail *sm, struct str *bare, struct str *angle,
			       bool had_angle)
{
	struct str *a = had_angle ? angle : bare;
	if (a->len > 0)
		sendmail_add_rcpt(sm, str_c(a));
	str_clear(bare);
	str_clear(angle);
}

/* sendmail_addr_list: the addresses of an RFC 5322 address list
 * ("Name <a@b>, c@d (comment), group: e@f;"). */
static void sendmail_addr_list(struct sendmail *sm, const char *p)
{
	struct str bare = STR_INIT, angle = STR_INIT;
	bool quoted = false, in_angle = false, had_angle = false;
	int comment = 0;
	for (; *p != '\0'; p++) {
		char c = *p;
		struct str *cur = in_angle ? &angle : &bare;
		if (c == '\\' && (quoted || comment > 0) && p[1] != '\0') {
			if (comment == 0) {
				str_append_c(cur, c);
				str_append_c(cur, *++p);
			} else {
				p++;
			}
		} else if (comment > 0) {
			comment += c == '(' ? 1 : c == ')' ? -1 : 0;
		} else if (c == '"') {
			quoted = !quoted;
			str_append_c(cur, c);
		} else if (quoted) {
			str_append_c(cur, c);
		} else if (c == '(') {
			comment = 1;
		} else if (c == '<' && !in_angle) {
			in_angle = had_angle = true;
			str_clear(&angle);
		} else if (c == '>' && in_angle) {
			in_angle = false;
		} else if (in_angle) {
			if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
				str_append_c(&angle, c);
		} else if (c == ':') {
			str_clear(&bare); /* a group's display name */
		} else if (c == ',' || c == ';') {
			sendmail_emit_addr(sm, &bare, &angle, had_angle);
			had_angle = false;
		} else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			str_append_c(&bare, c);
		}
	}
	sendmail_emit_addr(sm, &bare, &angle, had_angle);
	str_deinit(&bare);
	str_deinit(&angle);
}

/* sendmail_notify: -N never | success,failure,delay. */
static unsigned sendmail_notify(const char *arg)
{
	unsigned bits = 0;
	char *copy = xstrdup(arg), *save = NULL;
	for (char *w = strtok_r(copy, ", \t", &save); w != NULL; w = strtok_r(NULL, ", \t", &save)) {
		if (str_eq_icase(w, "never"))
			bits |= QUEUE_NOTIFY_NEVER;
		else if (str_eq_icase(w, "success"))
			bits |= QUEUE_NOTIFY_SUCCESS;
		else if (str_eq_icase(w, "failure"))
			bits |= QUEUE_NOTIFY_FAILURE;
		else if (str_eq_icase(w, "delay"))
			bits |= QUEUE_NOTIFY_DELAY;
		else
			sendmail_fatal(SM_EX_USAGE, "bad -N option value: %s", arg);
	}
	free(copy);
	if (bits == 0 || ((bits & QUEUE_NOTIFY_NEVER) != 0 && bits != QUEUE_NOTIFY_NEVER))
		sendmail_fatal(SM_EX_USAGE, "bad -N option value: %s", arg);
	return bits;
}

/* sendmail_read: the message from stdin, CRLF line ends; "." alone ends
 * it unless -i. Fatal when it exceeds limit bytes (0: no limit). */
static void sendmail_read(struct sendmail *sm, long long limit)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		size_t len = (size_t)n;
		if (line[len - 1] == '\n') {
			len--;
			if (len > 0 && line[len - 1] == '\r')
				len--;
		}
		if (sm->dot_ends && len == 1 && line[0] == '.')
			break;
		str_append_n(&sm->message, line, len);
		str_append_n(&sm->message, "\r\n", 2);
		if (limit > 0 && (long long)sm->message.len > limit) {
			free(line);
			sendmail_fatal(SM_EX_DATAERR, "%s(%ld): message file too big", sm->login,
				       sm->uid);
		}
	}
	bool failed = ferror(stdin) != 0;
	free(line);
	if (failed)
		sendmail_fatal(SM_EX_TEMPFAIL, "%s(%ld): error reading input: %m", sm->login,
			       sm->uid);
}

/* sendmail_header_name_len: the length of the field name when line starts
 * a header ("Name:"), else 0. */
static size_t sendmail_header_name_len(const char *line, size_t len)
{
	size_t i;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c == ':')
			return i;
		if (c <= ' ' || c >= 127)
			return 0;
	}
	return 0;
}

/* sendmail_is_header: whether the header at h (name length n) is name. */
static bool sendmail_is_header(const char *h, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(h, name, n) == 0;
}

struct sendmail_headers {
	bool from, date, message_id, resent;
	struct str to, resent_to; /* recipient header values, ',' joined */
};

/* sendmail_header: one logical header (folded lines included): note what
 * it is, collect -t recipients, copy it unless it is a Bcc. */
static void sendmail_header(struct sendmail *sm, struct sendmail_headers *hs, const char *h,
			    size_t len)
{
	size_t n = sendmail_header_name_len(h, len);
	const char *value = h + n + 1;
	size_t value_len = len - n - 1;
	bool bcc = sendmail_is_header(h, n, "Bcc") || sendmail_is_header(h, n, "Resent-Bcc");
	if (sendmail_is_header(h, n, "From"))
		hs->from = true;
	else if (sendmail_is_header(h, n, "Date"))
		hs->date = true;
	else if (sendmail_is_header(h, n, "Message-Id"))
		hs->message_id = true;
	if (bcc || sendmail_is_header(h, n, "To") || sendmail_is_header(h, n, "Cc")) {
		str_append_n(&hs->to, value, value_len);
		str_append_c(&hs->to, ',');
	} else if (sendmail_is_header(h, n, "Resent-To") || sendmail_is_header(h, n, "Resent-Cc")) {
		hs->resent = true;
		str_append_n(&hs->resent_to, value, value_len);
		str_append_c(&hs->resent_to, ',');
	}
	if (sendmail_is_header(h, n, "Resent-Bcc")) {
		hs->resent = true;
		str_append_n(&hs->resent_to, value, value_len);
		str_append_c(&hs->resent_to, ',');
	}
	if (!bcc)
		str_append_n(&sm->out, h, len);
}

/* sendmail_scan_headers: copy the header section into sm->out; returns
 * the offset of the first body byte (at the separating blank line, or at
 * the first line that is not a header). */
static size_t sendmail_scan_headers(struct sendmail *sm, struct sendmail_headers *hs)
{
	const char *m = sm->message.data != NULL ? sm->message.data : "";
	size_t total = sm->message.len, pos = 0, start = 0;
	bool in_header = false;
	while (pos < total && pos < SM_HEADER_MAX) {
		const char *line = m + pos;
		const char *nl = memchr(line, '\n', total - pos);
		size_t len = (size_t)(nl - line) + 1; /* every line ends in CRLF */
		bool cont = in_header && (line[0] == ' ' || line[0] == '\t');
		if (!cont && in_header)
			sendmail_header(sm, hs, m + start, pos - start);
		in_header = false;
		if (cont) {
			in_header = true;
		} else if (sendmail_header_name_len(line, len) > 0) {
			in_header = true;
			start = pos;
		} else {
			return pos;
		}
		pos += len;
	}
	if (in_header)
		sendmail_header(sm, hs, m + start, pos - start);
	return pos;
}

/* sendmail_phrase: the display name, quoted unless it is plain atoms. */
static void sendmail_phrase(struct str *out, const char *name)
{
	static const char specials[] = "()<>[]:;@\\,.\"";
	bool quote = false;
	for (const char *p = name; *p != '\0'; p++)
		if (strchr(specials, *p) != NULL)
			quote = true;
	if (!quote) {
		str_append(out, name);
		return;
	}
	str_append_c(out, '"');
	for (const char *p = name; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			str_append_c(out, '\\');
		str_append_c(out, *p);
	}
	str_append_c(out, '"');
}

/* sendmail_add_headers: the missing Message-Id:, Date: and From:, in the
 * order Postfix's cleanup adds them. */
static void sendmail_add_headers(struct sendmail *sm, const struct sendmail_headers *hs,
				 const char *id, time_t now)
{
	char buf[64];
	struct tm tm;
	if (!hs->message_id) {
		gmtime_r(&now, &tm);
		strftime(buf, sizeof(buf), "%Y%m%d%H%M%S", &tm);
		str_printf(&sm->out, "Message-Id: <%s.%s@%s>\r\n", buf, id, sm->myhostname);
	}
	if (!hs->date) {
		mail_date(buf, sizeof(buf), now, true);
		str_printf(&sm->out, "Date: %s\r\n", buf);
	}
	if (!hs->from) {
		str_append(&sm->out, "From: ");
		if (*sm->sender == '\0') {
			str_append(&sm->out, "MAILER-DAEMON");
		} else if (sm->full_name != NULL && *sm->full_name != '\0') {
			sendmail_phrase(&sm->out, sm->full_name);
			str_printf(&sm->out, " <%s>", sm->sender);
		} else {
			str_append(&sm->out, sm->sender);
		}
		str_append(&sm->out, "\r\n");
	}
}

/* sendmail_build: the content to store, and the -t recipients. */
static void sendmail_build(struct sendmail *sm, const char *id, time_t now)
{
	struct sendmail_headers hs = { .to = STR_INIT, .resent_to = STR_INIT };
	size_t body = sendmail_scan_headers(sm, &hs);
	sendmail_add_headers(sm, &hs, id, now);
	const char *m = str_c(&sm->message);
	if (body >= sm->message.len || m[body] != '\r' || m[body + 1] != '\n')
		str_append(&sm->out, "\r\n"); /* no blank line before the body */
	str_append_n(&sm->out, m + body, sm->message.len - body);
	if (sm->extract)
		sendmail_addr_list(sm, str_c(hs.resent ? &hs.resent_to : &hs.to));
	str_deinit(&hs.to);
	str_deinit(&hs.resent_to);
	str_deinit(&sm->message);
}

/* sendmail_rec: one queue file record (see doc/queue-format.md). */
static void sendmail_rec(struct str *f, char type, const char *prefix, const void *data,
			 size_t len)
{
	str_printf(f, "%c%zu:%s", type, strlen(prefix) + len, prefix);
	str_append_n(f, data, len);
	str_append_c(f, '\n');
}

/* sendmail_file: the whole maildrop file in queue file format. */
static void sendmail_file(const struct sendmail *sm, const struct timeval *tv, struct str *f)
{
	static const char hex[] = "0123456789ABCDEF";
	char buf[64];
	sendmail_rec(f, 'V', "", "petrel-queue 1", strlen("petrel-queue 1"));
	int n = snprintf(buf, sizeof(buf), "%lld.%06ld", (long long)tv->tv_sec, (long)tv->tv_usec);
	sendmail_rec(f, 'T', "", buf, (size_t)n);
	sendmail_rec(f, 'S', "", sm->sender, strlen(sm->sender));
	if (sm->envid != NULL)
		sendmail_rec(f, 'A', "envid=", sm->envid, strlen(sm->envid));
	if (sm->ret != NULL)
		sendmail_rec(f, 'A', "ret=", sm->ret, strlen(sm->ret));
	if (sm->body != NULL)
		sendmail_rec(f, 'A', "body=", sm->body, strlen(sm->body));
	n = snprintf(buf, sizeof(buf), "%zu", sm->rcpt_count);
	sendmail_rec(f, 'N', "", buf, (size_t)n);
	for (size_t i = 0; i < sm->rcpt_count; i++) {
		char prefix[3] = { QUEUE_RCPT_PENDING, hex[sm->notify & 0xf], '\0' };
		sendmail_rec(f, 'R', prefix, sm->rcpts[i], strlen(sm->rcpts[i]));
	}
	for (size_t off = 0; off < sm->out.len; off += QUEUE_CHUNK_MAX) {
		size_t len = sm->out.len - off;
		sendmail_rec(f, 'C', "", sm->out.data + off, len > QUEUE_CHUNK_MAX ? QUEUE_CHUNK_MAX : len);
	}
	n = snprintf(buf, sizeof(buf), "%zu", sm->out.len);
	sendmail_rec(f, 'Z', "", buf, (size_t)n);
	sendmail_rec(f, 'E', "", "", 0);
}

/* sendmail_write_all: write, fsync and close fd; fatal on any error. */
static void sendmail_write_all(const struct sendmail *sm, int fd, const struct str *f)
{
	size_t done = 0;
	while (done < f->len) {
		ssize_t n = write(fd, f->data + done, f->len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			sendmail_fatal(SM_EX_TEMPFAIL, "%s(%ld): error writing queue file: %m",
				       sm->login, sm->uid);
		done += (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0)
		sendmail_fatal(SM_EX_TEMPFAIL, "%s(%ld): error writing queue file: %m", sm->login,
			       sm->uid);
}

/* sendmail_open_temp: create maildrop/.tmp.PID.N (O_EXCL, 0444). */
static int sendmail_open_temp(const struct sendmail *sm, const char *dir)
{
	struct str path = STR_INIT;
	for (unsigned n = 0;; n++) {
		str_clear(&path);
		str_printf(&path, "%s/.tmp.%ld.%u", dir, (long)getpid(), n);
		int fd = open(str_c(&path), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
		if (fd >= 0) {
			sendmail_temp_path = str_steal(&path);
			if (fchmod(fd, 0444) < 0)
				sendmail_fatal(SM_EX_TEMPFAIL, "%s(%ld): fchmod(%s) failed: %m",
					       sm->login, sm->uid, sendmail_temp_path);
			return fd;
		}
		if (errno != EEXIST || n >= 100)
			sendmail_fatal(SM_EX_TEMPFAIL, "%s(%ld): open(%s) failed: %m", sm->login,
				       sm->uid, str_c(&path));
	}
}

/* sendmail_wakeup: one byte into a trigger fifo; failure is harmless
 * (the daemon scans on its own timer too). */
static void sendmail_wakeup(const char *queue_dir, const char *fifo, char c)
{
	struct str path = STR_INIT;
	str_printf(&path, "%s/public/%s", queue_dir, fifo);
	(void)fifo_trigger(str_c(&path), c);
	str_deinit(&path);
}

/* sendmail_sync_dir: make the new name durable. An unprivileged user may
 * not open maildrop/ (mode 1733, no read bit) to fsync it; then syncfs()
 * on the file itself flushes the file system, its directories included. */
static int sendmail_sync_dir(const char *dir, const char *file)
{
	if (fsync_dir(dir) == 0)
		return 0;
	if (errno != EACCES)
		return -1;
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	if (syncfs(fd) < 0) {
		int saved_errno = errno;
		(void)close(fd);
		errno = saved_errno;
		return -1;
	}
	return close(fd);
}

/* sendmail_submit: write the message into maildrop/ durably, wake pickup;
 * the maildrop file's queue ID into id. */
static void sendmail_submit(struct sendmail *sm, const char *queue_dir, char id[QUEUE_ID_MAX])
{
	struct str dir = STR_INIT, final = STR_INIT, file = STR_INIT;
	struct timeval tv;
	struct stat st;
	unsigned char rnd[8];
	str_printf(&dir, "%s/%s", queue_dir, QUEUE_MAILDROP);
	int fd = sendmail_open_temp(sm, str_c(&dir));
	if (fstat(fd, &st) < 0)
		sendmail_fatal(SM_EX_TEMPFAIL, "fstat(%s) failed: %m", sendmail_temp_path);
	gettimeofday(&tv, NULL);
	queue_id_format(id, &tv, (unsigned long long)st.st_ino);
	sendmail_build(sm, id, tv.tv_sec);
	if (sm->rcpt_count == 0)
		sendmail_fatal(SM_EX_USAGE, sm->extract ?
			"%s(%ld): No recipient addresses found in message header" :
			"%s(%ld): Recipient addresses must be specified on the command line or via the -t option",
			sm->login, sm->uid);
	sendmail_file(sm, &tv, &file);
	sendmail_write_all(sm, fd, &file);
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		sendmail_fatal(SM_EX_TEMPFAIL, "getrandom failed: %m");
	str_printf(&final, "%s/%s.", str_c(&dir), id);
	for (size_t i = 0; i < sizeof(rnd); i++)
		str_printf(&final, "%02X", rnd[i]);
	if (rename_noreplace(sendmail_temp_path, str_c(&final)) < 0)
		sendmail_fatal(SM_EX_TEMPFAIL, "%s(%ld): rename(%s, %s) failed: %m", sm->login,
			       sm->uid, sendmail_temp_path, str_c(&final));
	free(sendmail_temp_path);
	sendmail_temp_path = NULL;
	if (sendmail_sync_dir(str_c(&dir), str_c(&final)) < 0) {
		(void)unlink(str_c(&final));
		sendmail_fatal(SM_EX_TEMPFAIL, "%s(%ld): fsync(%s) failed: %m", sm->login, sm->uid,
			       str_c(&dir));
	}
	sendmail_wakeup(queue_dir, "pickup", 'W');
	str_deinit(&dir);
	str_deinit(&final);
	str_deinit(&file);
}

/* sendmail_exec: run another Petrel command from command_directory in
 * place of this one (mailq, newaliases). */
static void ATTR_NORETURN sendmail_exec(const char *program, char **argv)
{
	struct str path = STR_INIT;
	str_printf(&path, "%s/%s", config_str("command_directory"), program);
	execv(str_c(&path), argv);
	sendmail_fatal(SM_EX_UNAVAILABLE, "execv(%s) failed: %m", str_c(&path));
}

/* sendmail_set_sender: -f/-r; "<>" or "" is the null sender. */
static void sendmail_set_sender(struct sendmail *sm, const char *arg)
{
	struct str s = STR_INIT;
	size_t len = strlen(arg);
	if (len >= 2 && arg[0] == '<' && arg[len - 1] == '>')
		str_append_n(&s, arg + 1, len - 2);
	else
		str_append(&s, arg);
	free(sm->sender);
	sm->sender = NULL;
	if (s.len == 0)
		sm->sender = xstrdup("");
	else if (!sendmail_qualify(sm, str_c(&s), &sm->sender))
		sendmail_fatal(SM_EX_DATAERR, "bad sender address syntax: %s", arg);
	str_deinit(&s);
}

/* sendmail_identity: login name, default sender and full name. */
static void sendmail_identity(struct sendmail *sm, const char *sender, const char *full_name)
{
	uid_t uid = getuid();
	struct passwd *pw = getpwuid(uid);
	sm->uid = (long)uid;
	if (pw == NULL)
		sendmail_fatal(SM_EX_TEMPFAIL, "no login name found for user ID %ld", sm->uid);
	sm->login = xstrdup(pw->pw_name);
	if (sender != NULL)
		sendmail_set_sender(sm, sender);
	else
		sendmail_set_sender(sm, sm->login);
	if (full_name == NULL)
		full_name = getenv("NAME");
	struct str name = STR_INIT;
	if (full_name == NULL && pw->pw_gecos != NULL)
		str_append_n(&name, pw->pw_gecos, strcspn(pw->pw_gecos, ","));
	else if (full_name != NULL)
		str_append(&name, full_name);
	/* Header text: no control characters, bounded. */
	for (size_t i = 0; i < name.len; i++)
		if ((unsigned char)name.data[i] < ' ' || name.data[i] == 127)
			name.data[i] = ' ';
	if (name.len > SM_FULLNAME_MAX)
		str_truncate(&name, SM_FULLNAME_MAX);
	sm->full_name = str_steal(&name);
}

struct sendmail_opts {
	const char *sender, *full_name, *config_dir;
	char mode; /* -b letter: 'm' deliver, 's' SMTP, 'p' mailq, 'i' newaliases */
};

/* sendmail_option: one command line option (Postfix's set). */
static void sendmail_option(struct sendmail *sm, struct sendmail_opts *o, int c)
{
	switch (c) {
	case 'B':
		if (!str_eq_icase(optarg, "8BITMIME") && !str_eq_icase(optarg, "7BIT"))
			sendmail_fatal(SM_EX_USAGE, "-B option needs 8BITMIME or 7BIT");
		sm->body = str_eq_icase(optarg, "8BITMIME") ? "8BITMIME" : NULL;
		break;
	case 'C': {
		struct stat st;
		if (stat(optarg, &st) == 0 && !S_ISDIR(st.st_mode)) {
			static char *dir; /* static: lives as long as the process */
			const char *slash = strrchr(optarg, '/');
			free(dir);
			dir = slash == NULL ? xstrdup(".") : xstrndup(optarg, (size_t)(slash - optarg));
			o->config_dir = dir;
		} else {
			o->config_dir = optarg;
		}
		break;
	}
	case 'F':
		o->full_name = optarg;
		break;
	case 'N':
		sm->notify = sendmail_notify(optarg);
		break;
	case 'R':
		if (!str_eq_icase(optarg, "full") && !str_eq_icase(optarg, "hdrs"))
			sendmail_fatal(SM_EX_USAGE, "-R option needs FULL or HDRS");
		sm->ret = str_eq_icase(optarg, "full") ? "FULL" : "HDRS";
		break;
	case 'V':
		if (strlen(optarg) > SMTP_ENVID_MAX)
			sendmail_fatal(SM_EX_USAGE, "-V option value is too long");
		sm->envid = optarg;
		break;
	case 'b':
		if (strchr("mspi", optarg[0]) == NULL || optarg[0] == '\0' || optarg[1] != '\0')
			sendmail_fatal(SM_EX_USAGE, "unsupported: -b%s", optarg);
		o->mode = optarg[0];
		break;
	case 'c':
		o->config_dir = optarg;
		break;
	case 'f':
	case 'r':
		o->sender = optarg;
		break;
	case 'i':
		sm->dot_ends = false;
		break;
	case 'o':
		if (strcmp(optarg, "i") == 0)
			sm->dot_ends = false;
		break; /* -o7 -o8 -oA... -om and the rest: ignored, as Postfix does */
	case 'q':
		sendmail_fatal(SM_EX_UNAVAILABLE, "-q%s is not implemented",
			       optarg != NULL ? optarg : "");
	case 't':
		sm->extract = true;
		break;
	case 'v':
		msg_verbose++;
		break;
	case '4': case '6': case '8': case 'G': case 'I': case 'L': case 'O': case 'U':
	case 'X': case 'e': case 'h': case 'm': case 'n': case 'p': case 'x':
		break; /* accepted for compatibility, ignored */
	default:
		sendmail_usage();
	}
}

/* --- -bs: SMTP on stdin/stdout, one maildrop file per message --- */

#define SM_SMTP_LINE_MAX 2048

/* sendmail_smtp_reply: one reply line, flushed (the client waits). */
static void ATTR_FORMAT(1, 2) sendmail_smtp_reply(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputs("\r\n", stdout);
	fflush(stdout);
}

/* sendmail_smtp_line: the next command line without its line end; false
 * at EOF. Overlong lines are cut (and then refused by the caller). */
static bool sendmail_smtp_line(char **line, size_t *cap, size_t *len_r)
{
	ssize_t n = getline(line, cap, stdin);
	if (n <= 0)
		return false;
	size_t len = (size_t)n;
	while (len > 0 && ((*line)[len - 1] == '\n' || (*line)[len - 1] == '\r'))
		len--;
	(*line)[len] = '\0';
	*len_r = len;
	return true;
}

/* sendmail_smtp_reset: forget the current transaction. */
static void sendmail_smtp_reset(struct sendmail *sm, bool *have_mail)
{
	for (size_t i = 0; i < sm->rcpt_count; i++)
		free(sm->rcpts[i]);
	sm->rcpt_count = 0;
	str_clear(&sm->out);
	str_deinit(&sm->message);
	*have_mail = false;
}

/* sendmail_smtp_path: the address of "FROM:<...>" / "TO:<...>"; false
 * with a reply sent when it is bad. */
static bool sendmail_smtp_path(struct sendmail *sm, const char *arg, unsigned flags,
			       char **external_r)
{
	struct smtp_addr addr;
	const char *rest, *error;
	if (addr_parse_path(arg, strlen(arg), flags | ADDR_ALLOW_SMTPUTF8, &addr, &rest,
			    &error) != ADDR_OK) {
		sendmail_smtp_reply("501 5.1.7 Bad address syntax: %s", error);
		return false;
	}
	bool ok = true;
	if (addr.is_null)
		*external_r = xstrdup("");
	else
		ok = sendmail_qualify(sm, addr.external, external_r);
	smtp_addr_deinit(&addr);
	if (!ok)
		sendmail_smtp_reply("501 5.1.3 Bad address syntax");
	return ok;
}

/* sendmail_smtp_data: the message after 354, dot-unstuffed, then queued. */
static void sendmail_smtp_data(struct sendmail *sm, const char *queue_dir, long long limit)
{
	char *line = NULL, id[QUEUE_ID_MAX];
	size_t cap = 0, len;
	bool too_big = false, ended = false;
	sendmail_smtp_reply("354 End data with <CR><LF>.<CR><LF>");
	while (sendmail_smtp_line(&line, &cap, &len)) {
		if (len == 1 && line[0] == '.') {
			ended = true;
			break;
		}
		const char *p = line[0] == '.' ? line + 1 : line;
		if (!too_big) {
			str_append(&sm->message, p);
			str_append(&sm->message, "\r\n");
		}
		if (limit > 0 && (long long)sm->message.len > limit) {
			too_big = true;
			str_deinit(&sm->message);
		}
	}
	free(line);
	if (!ended)
		sendmail_fatal(SM_EX_DATAERR, "%s(%ld): unexpected EOF in DATA", sm->login, sm->uid);
	if (too_big) {
		sendmail_smtp_reply("552 5.3.4 Error: message file too big");
		return;
	}
	sendmail_submit(sm, queue_dir, id);
	sendmail_smtp_reply("250 2.0.0 Ok: queued as %s", id);
}

/* sendmail_smtp_command: one command; false after QUIT. */
static bool sendmail_smtp_command(struct sendmail *sm, const char *line, bool *have_mail)
{
	const char *queue_dir = config_str("queue_directory");
	char *addr;
	if (str_prefix_icase(line, "HELO ") || str_prefix_icase(line, "EHLO ")) {
		sendmail_smtp_reset(sm, have_mail);
		if (str_prefix_icase(line, "EHLO "))
			sendmail_smtp_reply("250-%s\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES",
					    sm->myhostname);
		else
			sendmail_smtp_reply("250 %s", sm->myhostname);
	} else if (str_prefix_icase(line, "MAIL FROM:")) {
		if (*have_mail) {
			sendmail_smtp_reply("503 5.5.1 Error: nested MAIL command");
		} else if (sendmail_smtp_path(sm, line + 10, ADDR_NULL_OK, &addr)) {
			free(sm->sender);
			sm->sender = addr;
			*have_mail = true;
			sendmail_smtp_reply("250 2.1.0 Ok");
		}
	} else if (str_prefix_icase(line, "RCPT TO:")) {
		if (!*have_mail) {
			sendmail_smtp_reply("503 5.5.1 Error: need MAIL command");
		} else if (sm->rcpt_count >= QUEUE_RCPT_MAX) {
			sendmail_smtp_reply("452 4.5.3 Error: too many recipients");
		} else if (sendmail_smtp_path(sm, line + 8, ADDR_POSTMASTER_OK, &addr)) {
			sendmail_push_rcpt(sm, addr);
			sendmail_smtp_reply("250 2.1.5 Ok");
		}
	} else if (str_eq_icase(line, "DATA")) {
		if (sm->rcpt_count == 0) {
			sendmail_smtp_reply("503 5.5.1 Error: need RCPT command");
		} else {
			sendmail_smtp_data(sm, queue_dir, config_size("message_size_limit"));
			sendmail_smtp_reset(sm, have_mail);
		}
	} else if (str_eq_icase(line, "RSET")) {
		sendmail_smtp_reset(sm, have_mail);
		sendmail_smtp_reply("250 2.0.0 Ok");
	} else if (str_eq_icase(line, "NOOP")) {
		sendmail_smtp_reply("250 2.0.0 Ok");
	} else if (str_eq_icase(line, "QUIT")) {
		sendmail_smtp_reply("221 2.0.0 Bye");
		return false;
	} else {
		sendmail_smtp_reply("502 5.5.2 Error: command not recognized");
	}
	return true;
}

/* sendmail_smtp: the -bs session until QUIT or EOF. */
static void sendmail_smtp(struct sendmail *sm)
{
	char *line = NULL;
	size_t cap = 0, len;
	bool have_mail = false;
	sm->extract = false;
	sendmail_smtp_reply("220 %s ESMTP %s", sm->myhostname, config_str("mail_name"));
	while (sendmail_smtp_line(&line, &cap, &len)) {
		if (len > SM_SMTP_LINE_MAX)
			sendmail_smtp_reply("500 5.5.0 Error: line too long");
		else if (!sendmail_smtp_command(sm, line, &have_mail))
			break;
	}
	free(line);
	sendmail_smtp_reset(sm, &have_mail);
}

/* sendmail_free: release what main() built (LeakSanitizer is on in tests). */
static void sendmail_free(struct sendmail *sm)
{
	for (size_t i = 0; i < sm->rcpt_count; i++)
		free(sm->rcpts[i]);
	free(sm->rcpts);
	free(sm->sender);
	free(sm->full_name);
	free(sm->login);
	str_deinit(&sm->message);
	str_deinit(&sm->out);
}

int main(int argc, char **argv)
{
	static const char optstring[] = "+468B:C:F:GIL:N:O:R:UV:X:b:c:e:f:h:imno:p:q::r:tvx";
	const char *slash = strrchr(argv[0], '/');
	const char *name = slash != NULL ? slash + 1 : argv[0];
	struct sendmail sm = { .dot_ends = true };
	struct sendmail_opts o = { .mode = 'm', .config_dir = getenv("MAIL_CONFIG") };
	const char *error;
	char id[QUEUE_ID_MAX];
	int c;

	msg_init("sendmail");
	msg_set_target(MSG_TARGET_TTY);
	msg_set_cleanup(sendmail_cleanup);
	if (strcmp(name, "mailq") == 0 || strcmp(name, "newaliases") == 0) {
		/* Other names for other commands: hand over the arguments. */
		while ((c = getopt(argc, argv, "c:v")) != -1)
			if (c == 'c')
				o.config_dir = optarg;
		o.mode = name[0] == 'm' ? 'p' : 'i';
	} else {
		while ((c = getopt(argc, argv, optstring)) != -1)
			sendmail_option(&sm, &o, c);
	}
	if (o.config_dir == NULL || *o.config_dir == '\0')
		o.config_dir = PETREL_SYSCONFDIR;
	if (!config_load(o.config_dir, false, &error))
		sendmail_fatal(SM_EX_TEMPFAIL, "%s", error);
	if (o.mode == 'p' || o.mode == 'i') {
		char *args[] = { o.mode == 'p' ? "mailq" : "newaliases", "-c", (char *)o.config_dir,
				 NULL };
		sendmail_exec(o.mode == 'p' ? "postqueue" : "newaliases", args);
	}
	sm.myorigin = config_str("myorigin");
	sm.myhostname = config_str("myhostname");
	sendmail_identity(&sm, o.sender, o.full_name);
	if (o.mode == 's') {
		sendmail_smtp_mode = true;
		sendmail_smtp(&sm);
		sendmail_free(&sm);
		return 0;
	}
	for (int i = optind; i < argc; i++)
		sendmail_addr_list(&sm, argv[i]);
	sendmail_read(&sm, config_size("message_size_limit"));
	sendmail_submit(&sm, config_str("queue_directory"), id);
	sendmail_free(&sm);
	return 0;
}
