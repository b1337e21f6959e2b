/* dsn.c: delivery status notifications (RFC 3464, RFC 6522): build a
 * multipart/report about some recipients of a queued message and queue it
 * from the null sender. See dsn.h for the contract and doc/bounce.md for
 * the layout.
 *
 * Notice grammar (every line ends in CRLF, no line passes 998 bytes):
 *
 *	notice  = headers CRLF preamble
 *	          "--" B CRLF text-part CRLF
 *	          "--" B CRLF status-part CRLF
 *	          "--" B CRLF original-part CRLF
 *	          "--" B "--" CRLF
 *	status-part = part-headers CRLF per-message 1*(CRLF per-recipient)
 *	              ; RFC 3464 field groups, each line "Name: value" CRLF
 *
 * Text taken from elsewhere (addresses, diagnostics, remote MTA names) is
 * sanitised before use: control characters become '?' or a space and the
 * length is capped, so nothing can inject a line. */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "mail/config.h"
#include "mail/dsn.h"
#include "mail/queue.h"
#include "util/alloc.h"
#include "util/str.h"

#define DSN_FOLD_WIDTH 76
#define DSN_HOST_IN_BOUNDARY 24

/* The working state of one notice. */
struct dsn_notice {
	struct queue_file *qf;
	enum dsn_action kind;
	bool double_bounce;
	const char *recipient; /* envelope and To: */
	const char *hostname;  /* myhostname, cleaned (in host) */
	struct str host;
	const struct dsn_rcpt **sel;
	const char **sel_orcpt; /* ORCPT per selected recipient, or NULL */
	size_t sel_count;
	size_t omitted;      /* wanted but over DSN_RCPT_MAX */
	struct str original; /* the returned text, CRLF lines */
	bool full;           /* message/rfc822, else text/rfc822-headers */
	char boundary[80];
	char id[QUEUE_ID_MAX];
};

static struct str dsn_error_buf = STR_INIT;

/* dsn_error: format a message for *error_r (static storage). */
static const char *dsn_error(const char *fmt, ...) ATTR_FORMAT(1, 2);
static const char *dsn_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *s = str_set_vprintf(&dsn_error_buf, fmt, ap);
	va_end(ap);
	return s;
}

/* dsn_wanted: does a recipient with these NOTIFY bits want this notice? */
static bool dsn_wanted(enum dsn_action action, unsigned notify)
{
	if ((notify & QUEUE_NOTIFY_NEVER) != 0)
		return false;
	switch (action) {
	case DSN_FAILED:
		return notify == 0 || (notify & QUEUE_NOTIFY_FAILURE) != 0;
	case DSN_DELAYED:
		return notify == 0 || (notify & QUEUE_NOTIFY_DELAY) != 0;
	case DSN_DELIVERED:
		return (notify & QUEUE_NOTIFY_SUCCESS) != 0;
	}
	return false;
}

/* dsn_index_cmp: order file recipients by address, then file order. */
static int dsn_index_cmp(const void *a, const void *b)
{
	const struct queue_file_rcpt *ra = *(const struct queue_file_rcpt *const *)a;
	const struct queue_file_rcpt *rb = *(const struct queue_file_rcpt *const *)b;
	int c = strcmp(ra->address, rb->address);
	if (c != 0)
		return c;
	return ra < rb ? -1 : ra > rb;
}

/* dsn_index_build: the file's recipients sorted by address, so that a
 * lookup costs log n even for 100000 recipients. */
static const struct queue_file_rcpt **dsn_index_build(const struct queue_file *qf)
{
	const struct queue_file_rcpt **index = xcalloc(qf->rcpt_count + 1, sizeof(*index));
	for (size_t i = 0; i < qf->rcpt_count; i++)
		index[i] = &qf->rcpts[i];
	qsort(index, qf->rcpt_count, sizeof(*index), dsn_index_cmp);
	return index;
}

/* dsn_file_rcpt: the original file's first recipient record for r (by
 * orig_rcpt, else address), or NULL. */
static const struct queue_file_rcpt *dsn_file_rcpt(const struct queue_file_rcpt **index,
						   size_t count, const struct dsn_rcpt *r)
{
	const char *want = r->orig_rcpt != NULL ? r->orig_rcpt : r->address;
	if (want == NULL)
		return NULL;
	size_t lo = 0, hi = count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(index[mid]->address, want) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < count && strcmp(index[lo]->address, want) == 0 ? index[lo] : NULL;
}

/* dsn_select: pick the recipients that want a notice (at most
 * DSN_RCPT_MAX are listed, the rest counted). */
static void dsn_select(struct dsn_notice *n, const struct dsn_rcpt *rcpts, size_t count)
{
	n->sel = xcalloc(count < DSN_RCPT_MAX ? count + 1 : DSN_RCPT_MAX, sizeof(*n->sel));
	n->sel_orcpt = xcalloc(count < DSN_RCPT_MAX ? count + 1 : DSN_RCPT_MAX,
			       sizeof(*n->sel_orcpt));
	const struct queue_file_rcpt **index = dsn_index_build(n->qf);
	for (size_t i = 0; i < count; i++) {
		const struct queue_file_rcpt *fr =
			dsn_file_rcpt(index, n->qf->rcpt_count, &rcpts[i]);
		if (!dsn_wanted(rcpts[i].action, fr != NULL ? fr->notify : 0))
			continue;
		if (n->sel_count == DSN_RCPT_MAX) {
			n->omitted++;
			continue;
		}
		n->sel_orcpt[n->sel_count] =
			rcpts[i].orcpt != NULL ? rcpts[i].orcpt : fr != NULL ? fr->orcpt : NULL;
		n->sel[n->sel_count++] = &rcpts[i];
	}
	free(index);
}

/* dsn_clean: append text with control characters replaced (by '?', or a
 * space for white space), 8-bit bytes kept only if keep8, at most max
 * bytes (then "..."). */
static void dsn_clean(struct str *out, const char *text, size_t max, bool keep8)
{
	size_t len = strlen(text);
	bool cut = len > max;
	if (cut)
		len = max;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '\t' || c == '\r' || c == '\n')
			c = ' ';
		else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !keep8))
			c = '?';
		str_append_c(out, (char)c);
	}
	if (cut)
		str_append(out, "...");
}

/* dsn_has_type: does text start with an RFC 3464 type ("smtp;", "dns;")? */
static bool dsn_has_type(const char *text)
{
	size_t i = 0;
	while (text[i] != '\0' && text[i] != ';' && i < 32) {
		unsigned char c = (unsigned char)text[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
		i++;
	}
	return i > 0 && text[i] == ';';
}

/* dsn_typed: "type; text" cleaned, with default_type when text has none. */
static void dsn_typed(struct str *out, const char *text, const char *default_type)
{
	if (!dsn_has_type(text)) {
		str_append(out, default_type);
		str_append(out, "; ");
	}
	dsn_clean(out, text, DSN_DIAG_MAX, false);
}

/* dsn_status_valid: RFC 3463 class.subject.detail with class 2, 4 or 5. */
static bool dsn_status_valid(const char *s)
{
	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	s += 2;
	for (int part = 0; part < 2; part++) {
		size_t digits = 0;
		while (*s >= '0' && *s <= '9' && digits < 4) {
			s++;
			digits++;
		}
		if (digits == 0 || digits > 3)
			return false;
		if (part == 0 && *s++ != '.')
			return false;
	}
	return *s == '\0';
}

/* dsn_date: an RFC 5322 date-time for t (local time, C locale names). */
static void dsn_date(struct str *out, time_t t)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm = { 0 };
	char zone[16];
	if (localtime_r(&t, &tm) == NULL)
		tm.tm_mday = 1; /* out of range: print the epoch's date shape */
	if (strftime(zone, sizeof(zone), "%z", &tm) == 0)
		str_copy(zone, sizeof(zone), "+0000");
	str_printf(out, "%s, %d %s %d %02d:%02d:%02d %s", days[tm.tm_wday % 7], tm.tm_mday,
		   months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
		   zone);
}

/* dsn_fold: append line (no CRLF in it) folded at spaces near
 * DSN_FOLD_WIDTH; continuation lines start with indent. Ends with CRLF. */
static void dsn_fold(struct str *out, const char *line, const char *indent)
{
	size_t col = 0;
	const char *p = line;
	while (*p != '\0') {
		/* The next word includes its leading spaces. */
		const char *q = p;
		while (*q == ' ')
			q++;
		while (*q != '\0' && *q != ' ')
			q++;
		size_t wlen = (size_t)(q - p);
		if (col > 0 && col + wlen > DSN_FOLD_WIDTH && *p == ' ') {
			str_append(out, "\r\n");
			str_append(out, indent);
			col = strlen(indent);
			p++;
			wlen--;
		}
		str_append_n(out, p, wlen);
		col += wlen;
		p = q;
	}
	str_append(out, "\r\n");
}

/* dsn_field: one "Name: value" header or status field, folded. */
static void dsn_field(struct str *out, const char *name, const char *value)
{
	struct str line = STR_INIT;
	str_printf(&line, "%s: %s", name, value);
	dsn_fold(out, str_c(&line), " ");
	str_deinit(&line);
}

/* dsn_is_header_line: "name:" with a printable, colon-free field name. */
static bool dsn_is_header_line(const char *line, size_t len)
{
	size_t i = 0;
	while (i < len && line[i] != ':') {
		unsigned char c = (unsigned char)line[i];
		if (c <= 32 || c >= 127)
			return false;
		i++;
	}
	return i > 0 && i < len;
}

/* dsn_original_lines: turn raw content into CRLF lines in n->original.
 * Headers end at the first empty or non-header line; for the full message
 * a missing separator line is added there; headers-only output stops there
 * and never passes limit bytes (cut at a line; a partial line at the end
 * of raw is dropped when truncated). */
static void dsn_original_lines(struct dsn_notice *n, const char *raw, size_t len, bool truncated,
			       size_t limit)
{
	bool in_headers = true;
	size_t pos = 0;
	while (pos < len) {
		const char *nl = memchr(raw + pos, '\n', len - pos);
		if (nl == NULL && truncated && !n->full)
			break;
		size_t end = nl != NULL ? (size_t)(nl - raw) : len;
		size_t llen = end - pos;
		if (llen > 0 && raw[pos + llen - 1] == '\r')
			llen--;
		const char *line = raw + pos;
		pos = nl != NULL ? end + 1 : len;
		if (in_headers) {
			bool cont = llen > 0 && (line[0] == ' ' || line[0] == '\t') &&
				    n->original.len > 0;
			if (llen == 0 || (!cont && !dsn_is_header_line(line, llen))) {
				in_headers = false;
				if (!n->full)
					break;
				str_append(&n->original, "\r\n");
				if (llen == 0)
					continue;
			} else if (!n->full && n->original.len + llen + 2 > limit) {
				break;
			}
		}
		str_append_n(&n->original, line, llen);
		str_append(&n->original, "\r\n");
	}
}

/* dsn_read_original: read the part of the original to return: the whole
 * message for a failure notice when RET allows and it fits
 * bounce_size_limit, else its header (at most bounce_size_limit bytes). */
static int dsn_read_original(struct dsn_notice *n, const char **error_r)
{
	long long limit = config_size("bounce_size_limit");
	const char *ret = queue_file_attr(n->qf, "ret");
	n->full = n->kind == DSN_FAILED && (ret == NULL || !str_eq_icase(ret, "HDRS")) &&
		  n->qf->content_size <= limit;
	struct str raw = STR_INIT;
	char buf[8192];
	bool truncated = false;
	queue_file_content_rewind(n->qf);
	for (;;) {
		ssize_t got = queue_file_content_read(n->qf, buf, sizeof(buf), error_r);
		if (got < 0) {
			str_deinit(&raw);
			return -1;
		}
		if (got == 0)
			break;
		str_append_n(&raw, buf, (size_t)got);
		if (!n->full && raw.len > (size_t)limit) {
			truncated = true;
			break;
		}
		/* Headers only: stop reading at the end of the header. */
		if (!n->full && (memmem(raw.data, raw.len, "\n\r\n", 3) != NULL ||
				 memmem(raw.data, raw.len, "\n\n", 2) != NULL))
			break;
	}
	dsn_original_lines(n, raw.data != NULL ? raw.data : "", raw.len, truncated,
			   (size_t)limit);
	str_deinit(&raw);
	return 0;
}

/* dsn_has_8bit: any byte over 127? */
static bool dsn_has_8bit(const struct str *s)
{
	for (size_t i = 0; i < s->len; i++)
		if ((unsigned char)s->data[i] >= 0x80)
			return true;
	return false;
}

/* dsn_make_boundary: a boundary that occurs nowhere in the returned text. */
static void dsn_make_boundary(struct dsn_notice *n)
{
	struct timeval now;
	gettimeofday(&now, NULL);
	char host[DSN_HOST_IN_BOUNDARY + 1];
	size_t i;
	for (i = 0; i < DSN_HOST_IN_BOUNDARY && n->hostname[i] != '\0'; i++) {
		char c = n->hostname[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '-';
		host[i] = ok ? c : '_';
	}
	host[i] = '\0';
	for (unsigned attempt = 0;; attempt++) {
		if (!str_format(n->boundary, sizeof(n->boundary), "%s.%lld.%u/%s", n->id,
				(long long)now.tv_sec, attempt, host))
			str_copy(n->boundary, sizeof(n->boundary), n->id);
		if (memmem(str_c(&n->original), n->original.len, n->boundary,
			   strlen(n->boundary)) == NULL ||
		    attempt > 1000)
			break;
	}
}

/* dsn_subject: the Subject: text of the notice. */
static const char *dsn_subject(const struct dsn_notice *n)
{
	if (n->double_bounce)
		return "Postmaster Copy: Undelivered Notice";
	switch (n->kind) {
	case DSN_DELAYED:
		return "Delayed Mail (still being retried)";
	case DSN_DELIVERED:
		return "Successful Mail Delivery Report";
	case DSN_FAILED:
		break;
	}
	return "Undelivered Mail Returned to Sender";
}

/* dsn_headers: the notice's message header. */
static void dsn_headers(struct dsn_notice *n, struct str *out, bool eight)
{
	struct str v = STR_INIT;
	str_append(out, "Date: ");
	dsn_date(out, time(NULL));
	str_append(out, "\r\n");
	str_printf(&v, "MAILER-DAEMON@%s (Mail Delivery System)", n->hostname);
	dsn_field(out, "From", str_c(&v));
	dsn_field(out, "Subject", dsn_subject(n));
	str_clear(&v);
	dsn_clean(&v, n->recipient, DSN_ADDRESS_MAX, true);
	dsn_field(out, "To", str_c(&v));
	str_clear(&v);
	str_printf(&v, "<%s.%lld@%s>", n->id, (long long)time(NULL), n->hostname);
	dsn_field(out, "Message-Id", str_c(&v));
	str_append(out, "Auto-Submitted: auto-replied\r\n");
	str_append(out, "MIME-Version: 1.0\r\n");
	str_printf(out,
		   "Content-Type: multipart/report; report-type=delivery-status;\r\n"
		   "\tboundary=\"%s\"\r\n",
		   n->boundary);
	str_printf(out, "Content-Transfer-Encoding: %s\r\n", eight ? "8bit" : "7bit");
	str_append(out, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");
	str_deinit(&v);
}

/* dsn_intro: the opening paragraphs of the human-readable part. */
static void dsn_intro(const struct dsn_notice *n, struct str *out)
{
	str_printf(out, "This is the mail system at host %s.\r\n\r\n", n->hostname);
	if (n->double_bounce) {
		str_append(out, "A message from the null sender (usually a delivery notice)\r\n"
				"could not be delivered. It has no sender to return it to,\r\n"
				"so it comes to you, the postmaster. It is attached below.\r\n");
		return;
	}
	switch (n->kind) {
	case DSN_FAILED:
		str_printf(out,
			   "Your message could not be delivered to one or more of its\r\n"
			   "recipients, and the mail system has stopped trying. The\r\n"
			   "reason for each recipient is given below. %s\r\n",
			   n->full ? "Your message is attached." : "Its header is attached.");
		str_append(out, "\r\nIf you ask the postmaster of this system for help,\r\n"
				"please include this report (you may leave out the\r\n"
				"attached message).\r\n");
		break;
	case DSN_DELAYED:
		str_append(out, "THIS IS ONLY A WARNING: there is no need to send your\r\n"
				"message again.\r\n\r\n"
				"Your message has not yet been delivered to the recipients\r\n"
				"below. The mail system keeps trying until the time given as\r\n"
				"Will-Retry-Until in the delivery report, and tells you if it\r\n"
				"gives up. Its header is attached.\r\n");
		break;
	case DSN_DELIVERED:
		str_append(out, "Your message was delivered to the recipients below, as you\r\n"
				"asked with a delivery status notification request. Its header\r\n"
				"is attached.\r\n");
		break;
	}
}

/* dsn_text_part: the human-readable explanation, one entry per recipient. */
static void dsn_text_part(const struct dsn_notice *n, struct str *out, bool eight)
{
	str_printf(out, "Content-Description: Notification\r\n"
			"Content-Type: text/plain; charset=%s\r\n"
			"Content-Transfer-Encoding: %s\r\n\r\n",
		   eight ? "utf-8" : "us-ascii", eight ? "8bit" : "7bit");
	dsn_intro(n, out);
	str_append(out, "\r\n                   The mail system\r\n\r\n");
	struct str line = STR_INIT;
	for (size_t i = 0; i < n->sel_count; i++) {
		const struct dsn_rcpt *r = n->sel[i];
		str_clear(&line);
		str_append_c(&line, '<');
		dsn_clean(&line, r->address, DSN_ADDRESS_MAX, true);
		str_append_c(&line, '>');
		if (r->orig_rcpt != NULL && strcmp(r->orig_rcpt, r->address) != 0) {
			str_append(&line, " (expanded from <");
			dsn_clean(&line, r->orig_rcpt, DSN_ADDRESS_MAX, true);
			str_append(&line, ">)");
		}
		str_append(&line, ": ");
		const char *diag = r->diagnostic;
		if (diag == NULL)
			diag = r->action == DSN_DELIVERED ? "delivered" : "no reason was given";
		else if (dsn_has_type(diag))
			diag = strchr(diag, ';') + 1;
		while (*diag == ' ')
			diag++;
		dsn_clean(&line, diag, DSN_DIAG_MAX, false);
		dsn_fold(out, str_c(&line), "    ");
		str_append(out, "\r\n");
	}
	if (n->omitted > 0)
		str_printf(out, "(%zu more recipients are not listed in this report.)\r\n",
			   n->omitted);
	str_deinit(&line);
}

/* dsn_action_name: the Action: value. */
static const char *dsn_action_name(enum dsn_action a)
{
	switch (a) {
	case DSN_DELAYED:
		return "delayed";
	case DSN_DELIVERED:
		return "delivered";
	case DSN_FAILED:
		break;
	}
	return "failed";
}

/* dsn_rcpt_block: one per-recipient group of the delivery-status part. */
static void dsn_rcpt_block(const struct dsn_notice *n, size_t i, struct str *out)
{
	const struct dsn_rcpt *r = n->sel[i];
	struct str v = STR_INIT;
	/* Groups are separated by an empty line; none follows the last. */
	str_append(out, "\r\n");
	str_append(&v, "rfc822; ");
	dsn_clean(&v, r->address, DSN_ADDRESS_MAX, true);
	dsn_field(out, "Final-Recipient", str_c(&v));
	if (n->sel_orcpt[i] != NULL && dsn_has_type(n->sel_orcpt[i])) {
		str_clear(&v);
		dsn_clean(&v, n->sel_orcpt[i], DSN_ADDRESS_MAX, true);
		dsn_field(out, "Original-Recipient", str_c(&v));
	}
	dsn_field(out, "Action", dsn_action_name(r->action));
	static const char *const default_status[] = { "5.0.0", "4.0.0", "2.0.0" };
	dsn_field(out, "Status",
		  dsn_status_valid(r->status) ? r->status : default_status[r->action]);
	if (r->remote_mta != NULL && r->remote_mta[0] != '\0') {
		str_clear(&v);
		dsn_typed(&v, r->remote_mta, "dns");
		dsn_field(out, "Remote-MTA", str_c(&v));
	}
	if (r->diagnostic != NULL && r->diagnostic[0] != '\0') {
		str_clear(&v);
		dsn_typed(&v, r->diagnostic, "x-unix");
		dsn_field(out, "Diagnostic-Code", str_c(&v));
	}
	if (r->last_attempt != 0) {
		str_clear(&v);
		dsn_date(&v, r->last_attempt);
		dsn_field(out, "Last-Attempt-Date", str_c(&v));
	}
	if (r->action == DSN_DELAYED) {
		str_clear(&v);
		dsn_date(&v, n->qf->arrival.tv_sec + (time_t)config_time("maximal_queue_lifetime"));
		dsn_field(out, "Will-Retry-Until", str_c(&v));
	}
	str_deinit(&v);
}

/* dsn_status_part: the message/delivery-status part. */
static void dsn_status_part(const struct dsn_notice *n, struct str *out, bool eight)
{
	struct str v = STR_INIT;
	str_printf(out, "Content-Description: Delivery report\r\n"
			"Content-Type: message/delivery-status\r\n"
			"Content-Transfer-Encoding: %s\r\n\r\n",
		   eight ? "8bit" : "7bit");
	str_printf(&v, "dns; %s", n->hostname);
	dsn_field(out, "Reporting-MTA", str_c(&v));
	if (n->qf->id[0] != '\0')
		dsn_field(out, "X-Petrel-Queue-ID", n->qf->id);
	str_clear(&v);
	str_append(&v, "rfc822; ");
	dsn_clean(&v, n->qf->sender, DSN_ADDRESS_MAX, true);
	dsn_field(out, "X-Petrel-Sender", str_c(&v));
	const char *envid = queue_file_attr(n->qf, "envid");
	if (envid != NULL) {
		str_clear(&v);
		dsn_clean(&v, envid, DSN_DIAG_MAX, false);
		dsn_field(out, "Original-Envelope-Id", str_c(&v));
	}
	str_clear(&v);
	dsn_date(&v, n->qf->arrival.tv_sec);
	dsn_field(out, "Arrival-Date", str_c(&v));
	for (size_t i = 0; i < n->sel_count; i++)
		dsn_rcpt_block(n, i, out);
	str_deinit(&v);
}

/* dsn_original_part: the returned message or its header. */
static void dsn_original_part(const struct dsn_notice *n, struct str *out, bool eight)
{
	const char *desc = n->kind == DSN_FAILED	? "Undelivered Message"
			   : n->kind == DSN_DELAYED ? "Delayed Message"
						    : "Delivered Message";
	str_printf(out, "Content-Description: %s%s\r\n", desc, n->full ? "" : " Headers");
	str_printf(out, "Content-Type: %s\r\n",
		   n->full ? "message/rfc822" : "text/rfc822-headers");
	str_printf(out, "Content-Transfer-Encoding: %s\r\n\r\n", eight ? "8bit" : "7bit");
	str_append_n(out, n->original.data != NULL ? n->original.data : "", n->original.len);
}

/* dsn_build: the whole notice content. */
static void dsn_build(struct dsn_notice *n, struct str *out)
{
	struct str text = STR_INIT, status = STR_INIT;
	dsn_make_boundary(n);
	bool eight_orig = dsn_has_8bit(&n->original);
	/* Build the parts first: the header says whether 8-bit occurs. */
	dsn_text_part(n, &text, false);
	bool eight_text = dsn_has_8bit(&text);
	if (eight_text) {
		str_clear(&text);
		dsn_text_part(n, &text, true);
	}
	dsn_status_part(n, &status, false);
	bool eight_status = dsn_has_8bit(&status);
	if (eight_status) {
		str_clear(&status);
		dsn_status_part(n, &status, true);
	}
	dsn_headers(n, out, eight_orig || eight_text || eight_status);
	str_printf(out, "--%s\r\n", n->boundary);
	str_append_n(out, text.data, text.len);
	str_printf(out, "\r\n--%s\r\n", n->boundary);
	str_append_n(out, status.data, status.len);
	str_printf(out, "\r\n--%s\r\n", n->boundary);
	dsn_original_part(n, out, eight_orig);
	str_printf(out, "\r\n--%s--\r\n", n->boundary);
	str_deinit(&text);
	str_deinit(&status);
}

/* dsn_write: queue the notice; 1 with id_r, -1 with *error_r. */
static int dsn_write(struct dsn_notice *n, const char *queue_dir, char *id_r,
		     const char **error_r)
{
	struct queue_writer *qw = queue_writer_open(queue_dir, error_r);
	if (qw == NULL)
		return -1;
	str_copy(n->id, sizeof(n->id), queue_writer_id(qw));
	struct str content = STR_INIT;
	dsn_build(n, &content);
	static const char *const notice_names[] = { "bounce", "delay", "success" };
	queue_writer_sender(qw, "");
	queue_writer_attr(qw, "notice", n->double_bounce ? "2bounce" : notice_names[n->kind]);
	if (dsn_has_8bit(&content))
		queue_writer_attr(qw, "body", "8BITMIME");
	const char *utf8 = queue_file_attr(n->qf, "smtputf8");
	if (utf8 != NULL)
		queue_writer_attr(qw, "smtputf8", utf8);
	struct queue_rcpt qr = { .address = n->recipient, .orcpt = NULL, .notify = 0 };
	queue_writer_rcpt(qw, &qr);
	queue_writer_content(qw, content.data, content.len);
	str_deinit(&content);
	int err = 0;
	if (queue_writer_commit(&qw, &err, error_r) < 0)
		return -1;
	str_copy(id_r, QUEUE_ID_MAX, n->id);
	return 1;
}

/* dsn_recipient: who gets the notice; false when nobody does. */
static bool dsn_recipient(struct dsn_notice *n)
{
	if (n->qf->sender[0] != '\0') {
		n->recipient = n->qf->sender;
		return true;
	}
	/* Only failures of null-sender mail are reported, and never a failed
	 * double-bounce notice (that would loop). */
	const char *notice = queue_file_attr(n->qf, "notice");
	if (n->kind != DSN_FAILED || (notice != NULL && strcmp(notice, "2bounce") == 0))
		return false;
	n->recipient = config_str("2bounce_notice_recipient");
	n->double_bounce = true;
	return n->recipient[0] != '\0';
}

int dsn_queue_notice(const char *queue_dir, const char *orig_path, enum dsn_action kind,
		     const struct dsn_rcpt *rcpts, size_t count, char *id_r,
		     const char **error_r)
{
	struct dsn_notice n = { .kind = kind, .original = STR_INIT, .host = STR_INIT };
	if ((unsigned)kind > DSN_DELIVERED) {
		*error_r = dsn_error("dsn_queue_notice: bad notice kind %d", (int)kind);
		return -1;
	}
	n.qf = queue_file_read(orig_path, error_r);
	if (n.qf == NULL)
		return -1;
	dsn_clean(&n.host, config_str("myhostname"), 255, false);
	n.hostname = str_c(&n.host);
	dsn_select(&n, rcpts, count);
	int ret = 0;
	if (n.sel_count > 0 && dsn_recipient(&n)) {
		ret = dsn_read_original(&n, error_r);
		if (ret == 0)
			ret = dsn_write(&n, queue_dir, id_r, error_r);
	}
	free(n.sel);
	free(n.sel_orcpt);
	str_deinit(&n.original);
	str_deinit(&n.host);
	queue_file_free(&n.qf);
	return ret;
}
