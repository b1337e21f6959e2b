/* smtpd_data.c: message content: DATA and BDAT into the queue file.
 *
 * DATA ends at CRLF "." CRLF and nowhere else. A bare LF or CR never ends a
 * line for that purpose: "\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n" and the rest
 * are content, so a second message cannot be smuggled inside the first
 * (whatever the client, mynetworks included). What a bare LF becomes is
 * smtpd_forbid_bare_newline's choice: kept, normalized to CRLF, or the
 * message refused. Content is stored with its CRLF line ends; the leading
 * dot of a dot-stuffed line is removed (RFC 5321 4.5.2).
 *
 * "250 queued as" is sent only after queue_writer_commit() has made the file
 * and its directory entry durable. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/mail_date.h"
#include "mail/queue.h"
#include "server/netconn.h"
#include "smtpd/smtpd.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/msg.h"

#define DATA_HEADER_MAX 1000 /* bytes of one header kept for the scan */
#define DATA_CHUNK 16384     /* bytes buffered before a write to the file */
#define BDAT_SIZE_MAX 1000000000000LL

/* A small output buffer so the file sees large writes. */
struct data_out {
	struct smtpd_session *s;
	char buf[DATA_CHUNK];
	size_t len;
};

static void out_flush(struct data_out *o)
{
	struct smtpd_transaction *tx = &o->s->tx;
	if (o->len > 0 && !tx->too_big && tx->qw != NULL)
		queue_writer_content(tx->qw, o->buf, o->len);
	o->len = 0;
}

/* header_done: one complete (unfolded) header from the scan. */
static void header_done(struct smtpd_transaction *tx)
{
	const char *h = str_c(&tx->header_line);
	if (str_prefix_icase(h, "Received:"))
		tx->received_count++;
	else if (str_prefix_icase(h, "Message-ID:") && tx->message_id == NULL) {
		const char *v = h + strlen("Message-ID:");
		v += strspn(v, " \t");
		size_t n = strcspn(v, "\r\n");
		tx->message_id = xstrndup(v, n > 200 ? 200 : n);
	}
	str_clear(&tx->header_line);
}

/* header_scan_line: a physical line (with its line end) of the header. */
static void header_scan_line(struct smtpd_transaction *tx, const char *line, size_t len)
{
	bool blank = (len == 2 && line[0] == '\r') || (len == 1 && line[0] == '\n');
	if (blank || (line[0] != ' ' && line[0] != '\t'))
		header_done(tx);
	if (blank) {
		tx->in_headers = false;
		return;
	}
	size_t room = DATA_HEADER_MAX - tx->header_line.len;
	if (tx->header_line.len < DATA_HEADER_MAX)
		str_append_n(&tx->header_line, line, len < room ? len : room);
}

/* emit: one content byte after unstuffing, into the size count, the header
 * scan and the file buffer. */
static void emit(struct data_out *o, char c)
{
	struct smtpd_transaction *tx = &o->s->tx;
	tx->content_bytes++;
	if (smtpd_config.message_size_limit > 0 &&
	    tx->content_bytes > smtpd_config.message_size_limit)
		tx->too_big = true;
	if (tx->in_headers) {
		if (tx->header_phys.len < DATA_HEADER_MAX)
			str_append_c(&tx->header_phys, c);
		if (c == '\n') {
			header_scan_line(tx, tx->header_phys.data, tx->header_phys.len);
			str_clear(&tx->header_phys);
		}
	}
	if (tx->too_big)
		return;
	o->buf[o->len++] = c;
	if (o->len == sizeof(o->buf))
		out_flush(o);
}

static void emit_n(struct data_out *o, const char *p, size_t n)
{
	while (n-- > 0)
		emit(o, *p++);
}

/* bare_newline_mode: exclusions (mynetworks by default) keep bare LFs. */
static enum smtpd_bare_newline bare_newline_mode(const struct smtpd_session *s)
{
	return s->bare_newline_excluded ? SMTPD_BARE_NL_KEEP : smtpd_config.bare_newline;
}

/* emit_bare_lf: a LF not preceded by CR. */
static void emit_bare_lf(struct data_out *o)
{
	o->s->tx.bare_newline_seen = true;
	if (bare_newline_mode(o->s) == SMTPD_BARE_NL_NORMALIZE)
		emit_n(o, "\r\n", 2);
	else
		emit(o, '\n');
}

/* data_step: one DATA byte through the end-of-data state machine; true at
 * the end (CRLF "." CRLF). */
static bool data_step(struct data_out *o, char c)
{
	struct smtpd_transaction *tx = &o->s->tx;
	switch (tx->data_state) {
	case SMTPD_DATA_LINE_START:
		if (c == '.') {
			tx->data_state = SMTPD_DATA_DOT;
			return false;
		}
		/* fall through */
	case SMTPD_DATA_BARE_START:
	case SMTPD_DATA_TEXT:
		if (c == '\r') {
			tx->data_state = SMTPD_DATA_CR;
		} else if (c == '\n') {
			emit_bare_lf(o);
			tx->data_state = SMTPD_DATA_BARE_START;
		} else {
			emit(o, c);
			tx->data_state = SMTPD_DATA_TEXT;
		}
		return false;
	case SMTPD_DATA_CR:
		if (c == '\n') {
			emit_n(o, "\r\n", 2);
			tx->data_state = SMTPD_DATA_LINE_START;
			return false;
		}
		tx->bare_newline_seen = true; /* a bare CR */
		emit(o, '\r');
		tx->data_state = SMTPD_DATA_TEXT;
		return data_step(o, c);
	case SMTPD_DATA_DOT:
		if (c == '\r') {
			tx->data_state = SMTPD_DATA_DOT_CR;
			return false;
		}
		/* "." + bare LF keeps its dot; otherwise the stuffed dot goes. */
		if (c == '\n' || c == '.')
			emit(o, '.');
		tx->data_state = SMTPD_DATA_TEXT;
		return c == '.' ? false : data_step(o, c);
	case SMTPD_DATA_DOT_CR:
		if (c == '\n')
			return true;
		emit(o, '.');
		tx->data_state = SMTPD_DATA_CR;
		return data_step(o, c);
	}
	return false;
}

/* received_protocol: RFC 3848 / RFC 6531 protocol names. */
static const char *received_protocol(const struct smtpd_session *s)
{
	bool tls = netconn_is_tls(s->conn);
	if (s->tx.mail_params.smtputf8)
		return tls ? "UTF8SMTPS" : "UTF8SMTP";
	if (!s->esmtp)
		return "SMTP";
	return tls ? "ESMTPS" : "ESMTP";
}

/* data_received_header: the trace header, first in the content. */
static void data_received_header(struct smtpd_session *s, struct data_out *o)
{
	struct str h = STR_INIT;
	char date[MAIL_DATE_MAX];
	mail_date(date, sizeof(date), time(NULL), true);
	str_printf(&h, "Received: from %s (%s [%s])\r\n",
		   s->helo_name != NULL ? s->helo_name : s->client_name, s->client_name,
		   s->client_addr);
	if (netconn_is_tls(s->conn))
		str_printf(&h, "\t(using %s with cipher %s (%d/%d bits))\r\n",
			   netconn_tls_protocol(s->conn), netconn_tls_cipher(s->conn),
			   netconn_tls_bits(s->conn), netconn_tls_bits(s->conn));
	str_printf(&h, "\tby %s (%s) with %s id %s", smtpd_config.myhostname,
		   config_str("mail_name"), received_protocol(s), queue_writer_id(s->tx.qw));
	if (s->tx.rcpt_count == 1)
		str_printf(&h, "\r\n\tfor <%s>", s->tx.rcpts[0].address);
	str_printf(&h, "; %s\r\n", date);
	/* Our own header is not scanned (it is not the client's hop). */
	queue_writer_content(s->tx.qw, h.data, h.len);
	s->tx.content_bytes += (long long)h.len;
	str_deinit(&h);
	(void)o;
}

/* smtpd_data_open: the queue file, opened at the first accepted recipient. */
bool smtpd_data_open(struct smtpd_session *s)
{
	struct smtpd_transaction *tx = &s->tx;
	const char *error = NULL;
	tx->qw = queue_writer_open(smtpd_config.queue_directory, &error);
	if (tx->qw == NULL) {
		msg_error("%s", error);
		return false;
	}
	struct timeval now;
	gettimeofday(&now, NULL);
	queue_writer_arrival(tx->qw, &now);
	queue_writer_sender(tx->qw, tx->sender.external);
	queue_writer_attr(tx->qw, "client_name", s->client_name);
	queue_writer_attr(tx->qw, "client_address", s->client_addr);
	queue_writer_attr(tx->qw, "client_port", s->client_port);
	if (s->helo_name != NULL)
		queue_writer_attr(tx->qw, "helo_name", s->helo_name);
	queue_writer_attr(tx->qw, "protocol_name", s->esmtp ? "ESMTP" : "SMTP");
	const struct smtp_params *p = &tx->mail_params;
	if (p->envid != NULL)
		queue_writer_attr(tx->qw, "envid", p->envid);
	if (p->ret != 0)
		queue_writer_attr(tx->qw, "ret", p->ret == SMTP_RET_FULL ? "FULL" : "HDRS");
	if (p->body == SMTP_BODY_8BITMIME)
		queue_writer_attr(tx->qw, "body", "8BITMIME");
	if (p->smtputf8)
		queue_writer_attr(tx->qw, "smtputf8", "yes");
	msg_info("%s: client=%s", queue_writer_id(tx->qw), s->namaddr);
	return true;
}

static void data_start_content(struct smtpd_session *s)
{
	struct data_out o = { .s = s };
	s->tx.in_headers = true;
	data_received_header(s, &o);
}

void smtpd_data_begin(struct smtpd_session *s)
{
	s->state = SMTPD_STATE_DATA;
	s->tx.data_state = SMTPD_DATA_LINE_START;
	data_start_content(s);
}

/* wake_qmgr: poke the queue manager's fifo, if one is listening. */
static void wake_qmgr(void)
{
	char path[4096];
	if (!str_format(path, sizeof(path), "%s/public/qmgr", smtpd_config.queue_directory))
		return;
	if (fifo_trigger(path, 'A') < 0 && errno != ENXIO && errno != ENOENT)
		msg_warn("write(%s) failed: %m", path);
}

/* data_refusal: why a complete message is not queued, or NULL. */
static const char *data_refusal(struct smtpd_session *s, char *buf, size_t size)
{
	struct smtpd_transaction *tx = &s->tx;
	if (tx->too_big)
		return "552 5.3.4 Message size exceeds fixed limit";
	if (tx->bare_newline_seen && bare_newline_mode(s) == SMTPD_BARE_NL_REJECT) {
		snprintf(buf, size, "%d 5.5.2 Error: bare <LF> received",
			 smtpd_config.bare_newline_reject_code);
		return buf;
	}
	if (tx->received_count > smtpd_config.hopcount_limit)
		return "554 5.4.0 Error: too many hops";
	return NULL;
}

/* data_finish: the whole message is in: refuse it or commit it. */
static void data_finish(struct smtpd_session *s, enum smtpd_counter counter)
{
	struct smtpd_transaction *tx = &s->tx;
	char buf[128];
	header_done(tx);
	const char *refusal = data_refusal(s, buf, sizeof(buf));
	s->state = SMTPD_STATE_COMMAND;
	if (refusal != NULL) {
		smtpd_log_reject(s, "END-OF-MESSAGE", refusal, NULL);
		smtpd_count(s, counter, false);
		smtpd_reply(s, "%s", refusal);
		smtpd_transaction_reset(s);
		return;
	}
	char id[QUEUE_ID_MAX];
	str_copy(id, sizeof(id), queue_writer_id(tx->qw));
	int err = 0;
	const char *error = NULL;
	int r = queue_writer_commit(&tx->qw, &err, &error);
	if (r < 0) {
		msg_warn("%s: queue file write error: %s", id, error);
		smtpd_count(s, counter, false);
		if (err == ENOSPC || err == EDQUOT)
			smtpd_reply(s, "452 4.3.1 Insufficient system storage");
		else
			smtpd_reply(s, "451 4.3.0 Error: queue file write error");
	} else {
		if (tx->message_id != NULL)
			msg_info("%s: message-id=%s", id, smtpd_log_escape(tx->message_id));
		smtpd_count(s, counter, true);
		smtpd_reply(s, "250 2.0.0 Ok: queued as %s", id);
		wake_qmgr();
	}
	smtpd_transaction_reset(s);
}

bool smtpd_data_feed(struct smtpd_session *s, struct str *in)
{
	struct data_out o = { .s = s };
	size_t i;
	bool end = false;
	for (i = 0; i < in->len && !end; i++)
		end = data_step(&o, in->data[i]);
	out_flush(&o);
	str_consume(in, i);
	if (end)
		data_finish(s, SMTPD_C_DATA);
	return end;
}

/* bdat_parse: "size [LAST]"; false on bad syntax. */
static bool bdat_parse(const char *arg, long long *size_r, bool *last_r)
{
	char *end;
	if (*arg < '0' || *arg > '9')
		return false;
	errno = 0;
	long long size = strtoll(arg, &end, 10);
	if (errno != 0 || size < 0 || size > BDAT_SIZE_MAX)
		return false;
	*last_r = false;
	if (*end == ' ' && str_eq_icase(end + 1, "LAST"))
		*last_r = true;
	else if (*end != '\0')
		return false;
	*size_r = size;
	return true;
}

/* smtpd_bdat_begin: RFC 3030. A chunk the server refuses is still read
 * (its bytes are not commands); the refusal is the reply to the chunk. */
void smtpd_bdat_begin(struct smtpd_session *s, const char *arg)
{
	long long size;
	bool last;
	struct smtpd_transaction *tx = &s->tx;
	if (!bdat_parse(arg, &size, &last)) {
		smtpd_count(s, SMTPD_C_BDAT, false);
		smtpd_reply(s, "501 5.5.4 Syntax: BDAT count [LAST]");
		return;
	}
	tx->bdat_remaining = size;
	tx->bdat_last = last;
	s->state = SMTPD_STATE_BDAT;
	if (!tx->have_mail)
		tx->bdat_error = "503 5.5.1 Error: need MAIL command";
	else if (tx->rcpt_count == 0)
		tx->bdat_error = "554 5.5.1 Error: no valid recipients";
	if (tx->bdat_error != NULL)
		return;
	if (!tx->bdat_used) {
		tx->bdat_used = true;
		tx->data_state = SMTPD_DATA_TEXT;
		data_start_content(s);
	}
}

/* bdat_step: raw chunk bytes; only bare-newline handling applies. */
static void bdat_step(struct data_out *o, char c)
{
	struct smtpd_transaction *tx = &o->s->tx;
	if (tx->data_state == SMTPD_DATA_CR) {
		if (c == '\n') {
			emit_n(o, "\r\n", 2);
			tx->data_state = SMTPD_DATA_TEXT;
			return;
		}
		tx->bare_newline_seen = true;
		emit(o, '\r');
		tx->data_state = SMTPD_DATA_TEXT;
	}
	if (c == '\r')
		tx->data_state = SMTPD_DATA_CR;
	else if (c == '\n')
		emit_bare_lf(o);
	else
		emit(o, c);
}

static void bdat_chunk_done(struct smtpd_session *s)
{
	struct smtpd_transaction *tx = &s->tx;
	s->state = SMTPD_STATE_COMMAND;
	if (tx->too_big && tx->bdat_error == NULL)
		tx->bdat_error = "552 5.3.4 Message size exceeds fixed limit";
	if (tx->bdat_error != NULL) {
		smtpd_count(s, SMTPD_C_BDAT, false);
		smtpd_reply(s, "%s", tx->bdat_error);
		if (tx->bdat_last || !tx->have_mail)
			smtpd_transaction_reset(s);
		return;
	}
	if (!tx->bdat_last) {
		smtpd_count(s, SMTPD_C_BDAT, true);
		smtpd_reply(s, "250 2.0.0 Ok: %lld bytes", tx->content_bytes);
		return;
	}
	if (tx->data_state == SMTPD_DATA_CR) {
		struct data_out o = { .s = s };
		tx->bare_newline_seen = true;
		emit(&o, '\r');
		out_flush(&o);
	}
	data_finish(s, SMTPD_C_BDAT);
}

bool smtpd_bdat_feed(struct smtpd_session *s, struct str *in)
{
	struct smtpd_transaction *tx = &s->tx;
	size_t n = in->len < (unsigned long long)tx->bdat_remaining ? in->len
								   : (size_t)tx->bdat_remaining;
	if (tx->bdat_error == NULL) {
		struct data_out o = { .s = s };
		for (size_t i = 0; i < n; i++)
			bdat_step(&o, in->data[i]);
		out_flush(&o);
	}
	str_consume(in, n);
	tx->bdat_remaining -= (long long)n;
	if (tx->bdat_remaining > 0)
		return false;
	bdat_chunk_done(s);
	return true;
}
