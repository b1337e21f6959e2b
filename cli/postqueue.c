/* postqueue.c: the postqueue and mailq commands: list the mail queue.
 *
 * SYNOPSIS
 *	postqueue [-v] [-c config_dir] -p
 *	postqueue [-v] [-c config_dir] -j
 *	mailq [-v] [-c config_dir]
 * DESCRIPTION
 *	-p lists the queue in Postfix's mailq format: per message the queue
 *	ID (followed by '*' when it is in active/, '!' when in hold/), the
 *	message size, the arrival time and the sender (MAILER-DAEMON for
 *	<>), then each recipient not yet delivered (preceded, as in Postfix,
 *	by its delay reason from defer/ID in parentheses, right-aligned, when
 *	it differs from the previous recipient's), and a "-- N Kbytes in M
 *	Requests." summary (or "Mail queue is empty"). -j prints one JSON
 *	object per message, with Postfix's field names. Messages are listed
 *	queue by queue (incoming, active, deferred, hold), oldest first.
 *	Invoked as mailq, the program behaves like postqueue -p.
 *
 *	-c names the configuration directory (default: $MAIL_CONFIG, else
 *	the compiled-in one); queue_directory comes from its main.cf.
 *
 *	-f asks the queue manager to retry every deferred message now ('F'
 *	on public/qmgr). -i queue_id makes that deferred message due now
 *	(its modification time, the time of the next attempt, set to now)
 *	and wakes the queue manager ('I'); -s site does the same for every
 *	deferred message with a pending recipient in the domain site (no
 *	fast_flush_domains restriction: any site may be flushed). When the
 *	queue manager is not running, postqueue says "Mail system is down
 *	-- accessing queue directly" and still makes the messages due (for
 *	-f: every deferred message), so they go out when it starts. A
 *	malformed queue ID or site is "Invalid request" (exit 64, as
 *	Postfix); a queue ID that is not deferred is silently ignored.
 * SECURITY
 *	postqueue reads queue files directly, so it works only for a user
 *	who may read the queue (root or the mail owner); it is installed
 *	without set-id bits, so -c needs no restriction. Queue files are
 *	parsed fail-closed; a damaged one is skipped with a warning. Text
 *	from the envelope is printed with control characters and invalid
 *	UTF-8 replaced by '?'.
 * DIAGNOSTICS
 *	Problems go to stderr as "postqueue: warning: ..." or "postqueue:
 *	fatal: ..."; the exit status is 1 after a fatal error (64 for an
 *	invalid -i or -s argument), else 0. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/queue.h"
#include "util/fsutil.h"
#include "util/msg.h"
#include "util/str.h"

/* Postfix's mailq layout for short queue IDs (postqueue/showq_compat.c). */
#define POSTQUEUE_STRING_FORMAT "%-11s %7s %-20s %s\n"
#define POSTQUEUE_SENDER_FORMAT "%-11s %7lld %20.20s %s\n"
#define POSTQUEUE_EMPTY_ADDR "MAILER-DAEMON"

enum postqueue_mode {
	POSTQUEUE_NONE,
	POSTQUEUE_LIST,
	POSTQUEUE_JSON,
	POSTQUEUE_FLUSH,
	POSTQUEUE_DELIVER_ID,
	POSTQUEUE_DELIVER_SITE,
};

struct postqueue_totals {
	unsigned long count;
	unsigned long long bytes;
};

/* postqueue_utf8_len: length of the valid UTF-8 sequence at p, else 0. */
static size_t postqueue_utf8_len(const unsigned char *p)
{
	size_t len;
	unsigned min;
	unsigned cp;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2, min = 0x80, cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3, min = 0x800, cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4, min = 0x10000, cp = p[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* postqueue_json_escape: JSON's escape for a control character, short
 * forms where JSON has them. */
static const char *postqueue_json_escape(unsigned char c)
{
	static char buf[8];
	switch (c) {
	case '\b':
		return "\\b";
	case '\f':
		return "\\f";
	case '\n':
		return "\\n";
	case '\r':
		return "\\r";
	case '\t':
		return "\\t";
	default:
		snprintf(buf, sizeof(buf), "\\u%04X", c);
		return buf;
	}
}

/* postqueue_quote: text made printable, like Postfix's printable(): valid
 * UTF-8 stays, other non-ASCII bytes and controls become '?'; for JSON,
 * controls are escaped instead and '"' and '\' are quoted. */
static const char *postqueue_quote(struct str *out, const char *text, bool json)
{
	const unsigned char *p = (const unsigned char *)text;
	str_clear(out);
	while (*p != '\0') {
		size_t n = *p >= 0x80 ? postqueue_utf8_len(p) : 0;
		if (n > 0) {
			str_append_n(out, p, n);
			p += n;
			continue;
		}
		unsigned char c = *p++;
		if (c >= 0x80 || !json) {
			str_append_c(out, c >= 0x80 || c < 0x20 || c == 0x7f ? '?' : (char)c);
		} else if (c == '"' || c == '\\') {
			str_append_c(out, '\\');
			str_append_c(out, (char)c);
		} else if (c < 0x20 || c == 0x7f) {
			str_append(out, postqueue_json_escape(c));
		} else {
			str_append_c(out, (char)c);
		}
	}
	return str_c(out);
}

/* postqueue_sender: the sender as shown (MAILER-DAEMON for <>). */
static const char *postqueue_sender(const struct queue_file *qf)
{
	return qf->sender[0] != '\0' ? qf->sender : POSTQUEUE_EMPTY_ADDR;
}

/* postqueue_defer_read: defer/ID (the delay reasons qmgr keeps, lines of
 * "offset TAB dsn TAB reason") into out; empty when there is none. At most
 * POSTQUEUE_DEFER_MAX bytes are read. */
#define POSTQUEUE_DEFER_MAX (1024 * 1024)
static void postqueue_defer_read(const char *queue_dir, const char *id, struct str *out)
{
	struct str path = STR_INIT;
	char buf[4096];
	ssize_t n;
	str_clear(out);
	str_printf(&path, "%s/defer/%s", queue_dir, id);
	struct stat st;
	int fd = open(str_c(&path), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd); /* only a regular file is a delay log */
		fd = -1;
	}
	while (fd >= 0 && out->len < POSTQUEUE_DEFER_MAX && (n = read(fd, buf, sizeof(buf))) > 0)
		str_append_n(out, buf, (size_t)n);
	if (fd >= 0)
		close(fd);
	str_deinit(&path);
}

/* postqueue_defer_reason: the reason for the recipient whose status byte
 * is at offset, copied into reason (false when none). */
static bool postqueue_defer_reason(const char *defer, off_t offset, struct str *reason)
{
	char prefix[32];
	if (!str_format(prefix, sizeof(prefix), "%lld\t", (long long)offset))
		return false;
	for (const char *line = defer; line != NULL && *line != '\0';) {
		const char *end = strchr(line, '\n');
		size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
		const char *tab;
		if (strncmp(line, prefix, strlen(prefix)) == 0 &&
		    (tab = memchr(line + strlen(prefix), '\t', len - strlen(prefix))) != NULL) {
			str_clear(reason);
			str_append_n(reason, tab + 1, len - (size_t)(tab + 1 - line));
			return reason->len > 0;
		}
		line = end != NULL ? end + 1 : NULL;
	}
	return false;
}

/* postqueue_print_text: one message in mailq format. */
static void postqueue_print_text(const char *queue, const struct queue_file *qf,
				 const struct postqueue_totals *totals, const char *defer)
{
	struct str quoted = STR_INIT, reason = STR_INIT, saved = STR_INIT;
	char id_status[QUEUE_ID_MAX + 2], when[64];
	struct tm tm;
	time_t t = qf->arrival.tv_sec;

	if (totals->count == 0)
		printf(POSTQUEUE_STRING_FORMAT, "-Queue ID-", "--Size--", "----Arrival Time----",
		       "-Sender/Recipient-------");
	else
		printf("\n");
	const char *mark = strcmp(queue, QUEUE_ACTIVE) == 0 ? "*" :
			   strcmp(queue, QUEUE_HOLD) == 0   ? "!" :
							      "";
	snprintf(id_status, sizeof(id_status), "%s%s", qf->id, mark);
	/* asctime()'s layout, "Sat Nov 22 21:32:00 2025"; the format cuts it
	 * to 20 characters as Postfix does. */
	if (localtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", &tm) == 0)
		str_copy(when, sizeof(when), "??");
	printf(POSTQUEUE_SENDER_FORMAT, id_status, qf->content_size, when,
	       postqueue_quote(&quoted, postqueue_sender(qf), false));
	for (size_t i = 0; i < qf->rcpt_count; i++) {
		if (qf->rcpts[i].status != QUEUE_RCPT_PENDING)
			continue;
		/* As Postfix: the reason right-aligned to column 78, printed
		 * only when it differs from the previous recipient's. */
		if (!postqueue_defer_reason(defer, qf->rcpts[i].status_offset, &reason))
			str_clear(&reason);
		if (strcmp(str_c(&reason), str_c(&saved)) != 0) {
			str_set(&saved, str_c(&reason));
			const char *show = postqueue_quote(&quoted, saved.len > 0 ? str_c(&saved) :
									"reason unavailable",
							   false);
			int pad = 76 - (int)strlen(show);
			printf("%*s(%s)\n", pad > 0 ? pad : 0, "", show);
		}
		printf(POSTQUEUE_STRING_FORMAT, "", "", "",
		       postqueue_quote(&quoted, qf->rcpts[i].address, false));
	}
	str_deinit(&quoted);
	str_deinit(&reason);
	str_deinit(&saved);
}

/* postqueue_print_json: one message as a JSON line (Postfix 3.x names). */
static void postqueue_print_json(const char *queue, const struct queue_file *qf,
				 const char *defer)
{
	struct str q = STR_INIT, reason = STR_INIT;
	printf("{\"queue_name\": \"%s\", ", postqueue_quote(&q, queue, true));
	printf("\"queue_id\": \"%s\", ", postqueue_quote(&q, qf->id, true));
	printf("\"arrival_time\": %lld, ", (long long)qf->arrival.tv_sec);
	printf("\"message_size\": %lld, ", qf->content_size);
	printf("\"forced_expire\": false, ");
	printf("\"sender\": \"%s\", ", postqueue_quote(&q, postqueue_sender(qf), true));
	printf("\"recipients\": [");
	bool first = true;
	for (size_t i = 0; i < qf->rcpt_count; i++) {
		if (qf->rcpts[i].status != QUEUE_RCPT_PENDING)
			continue;
		/* No address rewriting yet, so the original is the address. */
		const char *addr = postqueue_quote(&q, qf->rcpts[i].address, true);
		printf("%s{\"orig_address\": \"%s\", \"address\": \"%s\"", first ? "" : ", ", addr,
		       addr);
		if (postqueue_defer_reason(defer, qf->rcpts[i].status_offset, &reason))
			printf(", \"delay_reason\": \"%s\"", postqueue_quote(&q, str_c(&reason), true));
		printf("}");
		first = false;
	}
	printf("]}\n");
	str_deinit(&q);
	str_deinit(&reason);
}

/* postqueue_list_queue: every message of one queue. */
static void postqueue_list_queue(const char *queue_dir, const char *queue, bool json,
				 struct postqueue_totals *totals)
{
	struct str path = STR_INIT, defer = STR_INIT;
	const char *error;
	const char *id;
	struct queue_scan *scan = queue_scan_open(queue_dir, queue, &error);
	if (scan == NULL) {
		if (errno == ENOENT)
			return; /* a queue nobody created yet is empty */
		msg_fatal("%s", error);
	}
	while ((id = queue_scan_next(scan)) != NULL) {
		str_clear(&path);
		str_printf(&path, "%s/%s/%s", queue_dir, queue, id);
		struct queue_file *qf = queue_file_read(str_c(&path), &error);
		if (qf == NULL) {
			if (errno == ENOENT)
				continue; /* delivered or moved since the scan */
			if (errno != EBADMSG)
				msg_fatal("%s", error);
			msg_warn("%s", error);
			continue;
		}
		postqueue_defer_read(queue_dir, id, &defer);
		if (json)
			postqueue_print_json(queue, qf, str_c(&defer));
		else
			postqueue_print_text(queue, qf, totals, str_c(&defer));
		totals->count++;
		totals->bytes += (unsigned long long)qf->content_size;
		queue_file_free(&qf);
	}
	queue_scan_close(&scan);
	str_deinit(&path);
	str_deinit(&defer);
}

/* postqueue_list: all queues, then the summary (text format only). */
static void postqueue_list(const char *queue_dir, bool json)
{
	struct postqueue_totals totals = { 0, 0 };
	if (access(queue_dir, X_OK) < 0)
		msg_fatal("access(%s) failed: %m", queue_dir);
	for (size_t i = 0; queue_dirs_message_queues[i] != NULL; i++)
		postqueue_list_queue(queue_dir, queue_dirs_message_queues[i], json, &totals);
	if (!json) {
		if (totals.count == 0)
			printf("Mail queue is empty\n");
		else
			printf("\n-- %llu Kbytes in %lu Request%s.\n", totals.bytes / 1024,
			       totals.count, totals.count == 1 ? "" : "s");
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (errno != EPIPE)
			msg_fatal("write error: %m");
	}
}

/* postqueue_fatal_status: a fatal error with Postfix's exit status (the
 * sysexits.h codes postqueue uses), in msg_fatal's format. */
static void ATTR_NORETURN ATTR_FORMAT(2, 3) postqueue_fatal_status(int status, const char *fmt,
								    ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "%s: fatal: %s\n", msg_program(), text);
	exit(status);
}

/* postqueue_trigger: one byte to the queue manager's fifo, without
 * waiting. false when nobody listens (ENXIO: qmgr not running, or no fifo
 * yet), so the caller can act on the queue directly. */
static bool postqueue_trigger(const char *queue_dir, char byte)
{
	struct str path = STR_INIT;
	str_printf(&path, "%s/public/qmgr", queue_dir);
	bool ok = fifo_trigger(str_c(&path), byte) == 0;
	if (!ok && errno != ENXIO && errno != ENOENT && errno != EINVAL)
		msg_warn("open(%s) failed: %m", str_c(&path));
	str_deinit(&path);
	if (!ok)
		msg_warn("Mail system is down -- accessing queue directly");
	return ok;
}

/* postqueue_make_due: set the mtime of deferred/id (its next attempt) to
 * now. false when it is not in deferred/. */
static bool postqueue_make_due(const char *queue_dir, const char *id)
{
	struct str path = STR_INIT;
	bool ok;

	str_printf(&path, "%s/%s/%s", queue_dir, QUEUE_DEFERRED, id);
	ok = utimensat(AT_FDCWD, str_c(&path), NULL, AT_SYMLINK_NOFOLLOW) == 0;
	if (!ok && errno != ENOENT)
		msg_fatal("utimensat(%s) failed: %m", str_c(&path));
	str_deinit(&path);
	return ok;
}

/* postqueue_site_valid: a domain name or [address] as -s takes it. */
static bool postqueue_site_valid(const char *site)
{
	size_t len = strlen(site);

	if (len == 0 || len > 255 || site[0] == '.' || site[0] == '-')
		return false;
	for (const char *p = site; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (!(c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr(".-_[]:", c) != NULL))
			return false;
	}
	return true;
}

/* postqueue_has_site: a pending recipient of qf is in domain site. */
static bool postqueue_has_site(const struct queue_file *qf, const char *site)
{
	for (size_t i = 0; i < qf->rcpt_count; i++) {
		const char *at = strrchr(qf->rcpts[i].address, '@');
		if (qf->rcpts[i].status == QUEUE_RCPT_PENDING && at != NULL &&
		    str_eq_icase(at + 1, site))
			return true;
	}
	return false;
}

/* postqueue_due_site: make due every deferred message for site (every
 * one when site is NULL). */
static void postqueue_due_site(const char *queue_dir, const char *site)
{
	struct str path = STR_INIT;
	const char *error, *id;
	struct queue_scan *scan = queue_scan_open(queue_dir, QUEUE_DEFERRED, &error);

	if (scan == NULL) {
		if (errno == ENOENT)
			return;
		msg_fatal("%s", error);
	}
	while ((id = queue_scan_next(scan)) != NULL) {
		bool match = site == NULL;
		if (!match) {
			str_clear(&path);
			str_printf(&path, "%s/%s/%s", queue_dir, QUEUE_DEFERRED, id);
			struct queue_file *qf = queue_file_read(str_c(&path), &error);
			if (qf == NULL && errno != ENOENT)
				msg_warn("%s", error);
			match = qf != NULL && postqueue_has_site(qf, site);
			queue_file_free(&qf);
		}
		if (match)
			postqueue_make_due(queue_dir, id);
	}
	queue_scan_close(&scan);
	str_deinit(&path);
}

/* postqueue_flush: -f, -i and -s. */
static void postqueue_flush(const char *queue_dir, enum postqueue_mode mode, const char *arg)
{
	if (access(queue_dir, X_OK) < 0)
		msg_fatal("access(%s) failed: %m", queue_dir);
	if (mode == POSTQUEUE_FLUSH) {
		if (!postqueue_trigger(queue_dir, 'F'))
			postqueue_due_site(queue_dir, NULL);
		return;
	}
	if (mode == POSTQUEUE_DELIVER_ID) {
		if (!queue_id_valid(arg))
			postqueue_fatal_status(EX_USAGE, "Invalid request: \"%s\"", arg);
		postqueue_make_due(queue_dir, arg);
	} else {
		if (!postqueue_site_valid(arg))
			postqueue_fatal_status(EX_USAGE, "Invalid request: \"%s\"", arg);
		postqueue_due_site(queue_dir, arg);
	}
	postqueue_trigger(queue_dir, 'I');
}

static void ATTR_NORETURN postqueue_usage(void)
{
	msg_fatal("usage: %s [-v] [-c config_dir] -p | -j | -f | -i queue_id | -s site",
		  msg_program());
}

/* postqueue_set_mode: only one of -f -i -j -p -s, as Postfix requires. */
static void postqueue_set_mode(enum postqueue_mode *mode, enum postqueue_mode want)
{
	if (*mode != POSTQUEUE_NONE)
		msg_fatal("specify only one of -f, -i, -j, -p, or -s");
	*mode = want;
}

int main(int argc, char **argv)
{
	const char *slash = strrchr(argv[0], '/');
	const char *name = slash != NULL ? slash + 1 : argv[0];
	bool mailq = strcmp(name, "mailq") == 0;
	enum postqueue_mode mode = POSTQUEUE_NONE;
	const char *config_dir = getenv("MAIL_CONFIG");
	const char *error, *arg = NULL;
	int c;

	msg_init(mailq ? "mailq" : "postqueue");
	msg_set_target(MSG_TARGET_TTY);
	while ((c = getopt(argc, argv, "c:fi:jps:v")) != -1) {
		switch (c) {
		case 'c':
			config_dir = optarg;
			break;
		case 'f':
			postqueue_set_mode(&mode, POSTQUEUE_FLUSH);
			break;
		case 'i':
			postqueue_set_mode(&mode, POSTQUEUE_DELIVER_ID);
			arg = optarg;
			break;
		case 'j':
			postqueue_set_mode(&mode, POSTQUEUE_JSON);
			break;
		case 'p':
			postqueue_set_mode(&mode, POSTQUEUE_LIST);
			break;
		case 's':
			postqueue_set_mode(&mode, POSTQUEUE_DELIVER_SITE);
			arg = optarg;
			break;
		case 'v':
			msg_verbose++;
			break;
		default:
			postqueue_usage();
		}
	}
	if (optind < argc)
		postqueue_usage();
	if (mailq && mode == POSTQUEUE_NONE)
		mode = POSTQUEUE_LIST;
	if (mode == POSTQUEUE_NONE)
		postqueue_usage();

	if (config_dir == NULL || *config_dir == '\0')
		config_dir = PETREL_SYSCONFDIR;
	if (!config_load(config_dir, false, &error))
		msg_fatal("%s", error);
	if (mode == POSTQUEUE_FLUSH || mode == POSTQUEUE_DELIVER_ID ||
	    mode == POSTQUEUE_DELIVER_SITE)
		postqueue_flush(config_str("queue_directory"), mode, arg);
	else
		postqueue_list(config_str("queue_directory"), mode == POSTQUEUE_JSON);
	return 0;
}
