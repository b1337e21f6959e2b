/* smtp_proto.c: the protocol engine of smtp-client(8): connect to the
 * nexthop (unix:PATH or inet:HOST:PORT), then LMTP (RFC 2033): greeting,
 * LHLO, MAIL FROM, RCPT TO per recipient, DATA, the content dot-stuffed,
 * one reply per accepted recipient, QUIT. PIPELINING is used when the
 * server offers it (MAIL, every RCPT and DATA in one write). Replies map
 * to results as Postfix's smtp_trouble does: 2xx delivered, 4xx deferred,
 * 5xx bounced; a lost connection or a timeout defers every recipient still
 * without a result, worded as Postfix words it ("lost connection with
 * HOST while sending RCPT TO"). Everything is non-blocking (netconn); the
 * queue file is read from disk as the socket takes the content. */
#include <config.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "server/multi_server.h"
#include "server/netconn.h"
#include "smtp_client.h"
#include "util/alloc.h"
#include "util/events.h"
#include "util/msg.h"
#include "util/str.h"

#define SMTP_REPLY_LINE_MAX 4096   /* bytes per reply line */
#define SMTP_REPLY_TEXT_MAX 2048   /* bytes of reply text kept */
#define SMTP_REPLY_LINES_MAX 100   /* lines per multi-line reply */
#define SMTP_BODY_CHUNK 65536      /* content bytes read per step */
#define SMTP_BODY_HIGH_WATER (256 * 1024) /* output queued before waiting */

enum smtp_state {
	SMTP_CONNECTING, /* inet: non-blocking connect in progress */
	SMTP_GREETING,   /* waiting for the 220 greeting */
	SMTP_LHLO,       /* LHLO sent */
	SMTP_COMMANDS,   /* MAIL, RCPT and DATA replies */
	SMTP_BODY,       /* sending the content */
	SMTP_DOT,        /* one reply per accepted recipient */
	SMTP_FINISHED,
};

struct smtp_reply {
	int code;          /* 200..599 */
	char status[DELIVERY_STATUS_MAX];
	struct str text;   /* "250 2.0.0 text" with continuation lines joined */
	unsigned lines;
};

struct smtp_session {
	const struct delivery_request *req;
	struct queue_file *qf;
	struct smtp_rcpt_result *results;
	smtp_session_done_fn *done;
	void *ctx;

	enum smtp_state state;
	int fd;                   /* while connecting */
	struct event_io *connect_io;
	struct event_timer *timer; /* connect timeout, then the done call */
	struct netconn *conn;
	char *relay;       /* relay= text */
	char *host;        /* "name[addr]" in reasons */
	char *connect_name; /* in "connect to %s: ..." */
	struct timeval handoff, conn_done;

	bool pipelining, size, eightbit, smtputf8, dsn;
	bool delivery_id; /* Petrel's lmtpd: XDELIVERYID (exactly once) */
	long long size_limit; /* from "SIZE n"; 0: none given */
	struct smtp_reply reply;

	unsigned cmd_sent, cmd_replied; /* 0 MAIL, 1..n RCPT, n+1 DATA */
	bool mail_ok;
	unsigned *accepted; /* indexes of accepted recipients */
	unsigned accepted_count, dot_replies;
	bool at_bol;        /* the content written so far ends a line */
	bool prev_cr;
};

static void smtp_input(void *ctx);
static void smtp_closed(void *ctx, const char *reason);
static void smtp_drained(void *ctx);

static const struct netconn_callbacks smtp_callbacks = {
	.input = smtp_input,
	.closed = smtp_closed,
	.output_drained = smtp_drained,
};

/* smtp_session_relay: relay= text. */
const char *smtp_session_relay(const struct smtp_session *s)
{
	return s->relay != NULL ? s->relay : "none";
}

/* smtp_session_handoff: when the agent started the delivery. */
struct timeval smtp_session_handoff(const struct smtp_session *s)
{
	return s->handoff;
}

/* smtp_session_conn_done: when LHLO was answered (zero: never). */
struct timeval smtp_session_conn_done(const struct smtp_session *s)
{
	return s->conn_done;
}

/* smtp_cmd_count: MAIL, the RCPTs and DATA. */
static unsigned smtp_cmd_count(const struct smtp_session *s)
{
	return s->req->rcpt_count + 2;
}

/* smtp_done_timer: tell the owner, from the loop, that all is known. */
static void smtp_done_timer(void *ctx)
{
	struct smtp_session *s = ctx;
	s->done(s->ctx); /* may free s */
}

/* smtp_finish: close the connection (QUIT first when the dialogue is at a
 * command boundary) and report from the loop. */
static void smtp_finish(struct smtp_session *s, bool quit)
{
	if (s->state == SMTP_FINISHED)
		return;
	s->state = SMTP_FINISHED;
	if (s->connect_io != NULL) {
		event_io_remove(&s->connect_io);
		(void)close(s->fd);
		s->fd = -1;
	}
	if (s->conn != NULL) {
		if (quit)
			netconn_write(s->conn, "QUIT\r\n", 6);
		netconn_free(&s->conn);
	}
	event_timer_remove(&s->timer);
	s->timer = event_timer_add(multi_server_loop(), 0, smtp_done_timer, s);
}

/* smtp_fail_rest: every recipient without a result gets this one. */
static void smtp_fail_rest(struct smtp_session *s, const char *status, const char *fmt, ...)
	ATTR_FORMAT(3, 4);
static void smtp_fail_rest(struct smtp_session *s, const char *status, const char *fmt, ...)
{
	struct str reason = STR_INIT;
	va_list ap;
	va_start(ap, fmt);
	str_vprintf(&reason, fmt, ap);
	va_end(ap);
	enum delivery_action action = status[0] == '5' ? DELIVERY_BOUNCED : DELIVERY_DEFERRED;
	for (unsigned i = 0; i < s->req->rcpt_count; i++)
		smtp_result_set(&s->results[i], action, status, str_c(&reason));
	str_deinit(&reason);
}

/* smtp_reply_result: the result of recipient i from the current reply. */
static void smtp_reply_result(struct smtp_session *s, unsigned i, const char *in_reply_to)
{
	const struct smtp_reply *r = &s->reply;
	if (r->code / 100 == 2) {
		smtp_result_set(&s->results[i], DELIVERY_DELIVERED, r->status, str_c(&r->text));
		return;
	}
	struct str reason = STR_INIT;
	str_printf(&reason, "host %s said: %s (in reply to %s)", s->host, str_c(&r->text),
		   in_reply_to);
	smtp_result_set(&s->results[i], r->code / 100 == 5 ? DELIVERY_BOUNCED : DELIVERY_DEFERRED,
			r->status, str_c(&reason));
	str_deinit(&reason);
}

/* smtp_reply_all: the current reply is every pending recipient's result. */
static void smtp_reply_all(struct smtp_session *s, const char *in_reply_to)
{
	for (unsigned i = 0; i < s->req->rcpt_count; i++)
		smtp_reply_result(s, i, in_reply_to);
}

/* smtp_stage: what the session was doing, for "lost connection ... while". */
static const char *smtp_stage(const struct smtp_session *s)
{
	switch (s->state) {
	case SMTP_CONNECTING:
	case SMTP_GREETING:
		return "receiving the initial server greeting";
	case SMTP_LHLO:
		return "performing the LHLO handshake";
	case SMTP_COMMANDS:
		if (s->cmd_replied == 0)
			return "sending MAIL FROM";
		if (s->cmd_replied <= s->req->rcpt_count)
			return "sending RCPT TO";
		return "sending DATA command";
	case SMTP_BODY:
		return "sending message body";
	case SMTP_DOT:
		return "sending end of data -- message may be sent more than once";
	case SMTP_FINISHED:
		break;
	}
	return "finishing";
}

/* smtp_closed: the server went away or timed out. */
static void smtp_closed(void *ctx, const char *reason)
{
	struct smtp_session *s = ctx;
	if (strcmp(reason, "timeout") == 0)
		smtp_fail_rest(s, "4.4.2", "conversation with %s timed out while %s", s->host,
			       smtp_stage(s));
	else
		smtp_fail_rest(s, "4.4.2", "lost connection with %s while %s", s->host,
			       smtp_stage(s));
	smtp_finish(s, false);
}

/* smtp_xtext: RFC 3461 xtext of text into out. */
static void smtp_xtext(struct str *out, const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
		if (*p < 33 || *p > 126 || *p == '+' || *p == '=')
			str_printf(out, "+%02X", *p);
		else
			str_append_c(out, (char)*p);
	}
}

/* smtp_printable: text fit for a command parameter (no space, no control). */
static bool smtp_printable(const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++)
		if (*p <= 32 || *p == 127)
			return false;
	return true;
}

/* smtp_send_mail: MAIL FROM with the parameters the server supports. */
static void smtp_send_mail(struct smtp_session *s)
{
	struct str cmd = STR_INIT;
	const char *body = queue_file_attr(s->qf, "body");
	const char *utf8 = queue_file_attr(s->qf, "smtputf8");
	const char *ret = queue_file_attr(s->qf, "ret");
	const char *envid = queue_file_attr(s->qf, "envid");
	str_printf(&cmd, "MAIL FROM:<%s>", s->qf->sender);
	if (s->size)
		str_printf(&cmd, " SIZE=%lld", s->qf->content_size);
	if (s->eightbit && body != NULL && str_eq_icase(body, "8BITMIME"))
		str_append(&cmd, " BODY=8BITMIME");
	if (s->smtputf8 && utf8 != NULL && strcmp(utf8, "yes") == 0)
		str_append(&cmd, " SMTPUTF8");
	if (s->dsn && ret != NULL && (strcmp(ret, "FULL") == 0 || strcmp(ret, "HDRS") == 0))
		str_printf(&cmd, " RET=%s", ret);
	if (s->dsn && envid != NULL && envid[0] != '\0' && strlen(envid) <= 100) {
		str_append(&cmd, " ENVID=");
		smtp_xtext(&cmd, envid);
	}
	/* The queue ID makes the delivery idempotent at lmtpd: a repeat
	 * (after a crash or a lost reply) stores no second copy. */
	if (s->delivery_id)
		str_printf(&cmd, " XDELIVERYID=%s", s->req->queue_id);
	str_append(&cmd, "\r\n");
	netconn_write(s->conn, cmd.data, cmd.len);
	str_deinit(&cmd);
}

/* smtp_send_rcpt: RCPT TO for recipient i, NOTIFY/ORCPT under DSN. */
static void smtp_send_rcpt(struct smtp_session *s, unsigned i)
{
	const struct delivery_rcpt *r = &s->req->rcpts[i];
	struct str cmd = STR_INIT;
	str_printf(&cmd, "RCPT TO:<%s>", r->address);
	if (s->dsn && r->notify != 0) {
		if (r->notify & QUEUE_NOTIFY_NEVER) {
			str_append(&cmd, " NOTIFY=NEVER");
		} else {
			const char *sep = " NOTIFY=";
			static const struct {
				unsigned bit;
				const char *name;
			} bits[] = {{QUEUE_NOTIFY_SUCCESS, "SUCCESS"},
				    {QUEUE_NOTIFY_FAILURE, "FAILURE"},
				    {QUEUE_NOTIFY_DELAY, "DELAY"}};
			for (size_t b = 0; b < sizeof(bits) / sizeof(bits[0]); b++) {
				if (r->notify & bits[b].bit) {
					str_printf(&cmd, "%s%s", sep, bits[b].name);
					sep = ",";
				}
			}
		}
	}
	if (s->dsn && r->orcpt != NULL && smtp_printable(r->orcpt) && strchr(r->orcpt, ';'))
		str_printf(&cmd, " ORCPT=%s", r->orcpt);
	str_append(&cmd, "\r\n");
	netconn_write(s->conn, cmd.data, cmd.len);
	str_deinit(&cmd);
}

/* smtp_send_next: send command cmd_sent (and the rest when pipelining). */
static void smtp_send_next(struct smtp_session *s)
{
	do {
		unsigned i = s->cmd_sent++;
		if (i == 0)
			smtp_send_mail(s);
		else if (i <= s->req->rcpt_count)
			smtp_send_rcpt(s, i - 1);
		else
			netconn_write(s->conn, "DATA\r\n", 6);
	} while (s->pipelining && s->cmd_sent < smtp_cmd_count(s));
	unsigned next = s->cmd_replied;
	const struct smtp_client_settings *c = &smtp_client_settings;
	netconn_set_timeout(s->conn, next == 0			     ? c->mail_timeout_ms
				     : next <= s->req->rcpt_count ? c->rcpt_timeout_ms
								  : c->data_init_timeout_ms);
}

/* smtp_body_pump: write content until the output is full or it ends. */
static void smtp_body_pump(struct smtp_session *s)
{
	static char buf[SMTP_BODY_CHUNK];
	const char *error = NULL;
	struct str out = STR_INIT;
	while (s->state == SMTP_BODY && netconn_output_pending(s->conn) < SMTP_BODY_HIGH_WATER) {
		ssize_t n = queue_file_content_read(s->qf, buf, sizeof(buf), &error);
		if (n < 0) {
			msg_warn("%s: %s", s->req->queue_id, error);
			smtp_fail_rest(s, "4.3.0", "error reading the queue file");
			smtp_finish(s, false);
			break;
		}
		str_clear(&out);
		if (n == 0) {
			if (!s->at_bol)
				str_append(&out, "\r\n");
			str_append(&out, ".\r\n");
			s->state = SMTP_DOT;
			netconn_set_timeout(s->conn, smtp_client_settings.data_done_timeout_ms);
			netconn_pause_input(s->conn, false);
		}
		for (ssize_t i = 0; i < n; i++) {
			char ch = buf[i];
			/* dot-stuffing, and CRLF for any bare LF */
			if (s->at_bol && ch == '.')
				str_append_c(&out, '.');
			if (ch == '\n' && !s->prev_cr)
				str_append_c(&out, '\r');
			str_append_c(&out, ch);
			s->prev_cr = ch == '\r';
			s->at_bol = ch == '\n';
		}
		netconn_write(s->conn, out.data, out.len);
	}
	str_deinit(&out);
}

/* smtp_drained: the socket took the queued output. */
static void smtp_drained(void *ctx)
{
	struct smtp_session *s = ctx;
	if (s->state == SMTP_BODY)
		smtp_body_pump(s);
}

/* smtp_start_body: 354 came: send the content. */
static void smtp_start_body(struct smtp_session *s)
{
	s->state = SMTP_BODY;
	s->at_bol = true;
	s->prev_cr = false;
	queue_file_content_rewind(s->qf);
	/* the server says nothing until the dot */
	netconn_pause_input(s->conn, true);
	netconn_set_timeout(s->conn, smtp_client_settings.data_xfer_timeout_ms);
	smtp_body_pump(s);
}

/* smtp_command_reply: a reply to MAIL, RCPT or DATA, in order. */
static void smtp_command_reply(struct smtp_session *s)
{
	unsigned idx = s->cmd_replied++;
	unsigned n = s->req->rcpt_count;
	bool ok = s->reply.code / 100 == 2;
	if (idx == 0) {
		s->mail_ok = ok;
		if (!ok)
			smtp_reply_all(s, "MAIL FROM command");
	} else if (idx <= n) {
		if (s->mail_ok && ok)
			s->accepted[s->accepted_count++] = idx - 1;
		else if (s->mail_ok)
			smtp_reply_result(s, idx - 1, "RCPT TO command");
	} else {
		if (s->mail_ok && s->accepted_count > 0 && s->reply.code == 354) {
			smtp_start_body(s);
		} else {
			if (s->mail_ok && s->accepted_count > 0)
				smtp_reply_all(s, "DATA command");
			/* after an unexpected 354 QUIT would be content */
			smtp_finish(s, s->reply.code != 354);
		}
		return;
	}
	if (s->pipelining)
		return; /* everything is sent already */
	if (!s->mail_ok || (idx == n && s->accepted_count == 0)) {
		smtp_finish(s, true);
		return;
	}
	smtp_send_next(s);
}

/* smtp_dot_reply: one accepted recipient's final reply. */
static void smtp_dot_reply(struct smtp_session *s)
{
	smtp_reply_result(s, s->accepted[s->dot_replies++], "end of DATA command");
	if (s->dot_replies == s->accepted_count)
		smtp_finish(s, true);
}

/* smtp_capability: one LHLO reply line's keyword. */
static void smtp_capability(struct smtp_session *s, const char *kw)
{
	size_t n = strcspn(kw, " ");
	char word[32];
	if (n == 0 || n >= sizeof(word))
		return;
	memcpy(word, kw, n);
	word[n] = '\0';
	if (str_eq_icase(word, "PIPELINING"))
		s->pipelining = true;
	else if (str_eq_icase(word, "SIZE")) {
		s->size = true;
		if (kw[n] == ' ') {
			char *end = NULL;
			long long v = strtoll(kw + n + 1, &end, 10);
			if (end != kw + n + 1 && *end == '\0' && v > 0)
				s->size_limit = v;
		}
	}
	else if (str_eq_icase(word, "8BITMIME"))
		s->eightbit = true;
	else if (str_eq_icase(word, "SMTPUTF8"))
		s->smtputf8 = true;
	else if (str_eq_icase(word, "DSN"))
		s->dsn = true;
	else if (str_eq_icase(word, "XDELIVERYID"))
		s->delivery_id = queue_id_valid(s->req->queue_id);
}

/* smtp_reply_done: a whole reply is in s->reply: act on it. */
static void smtp_reply_done(struct smtp_session *s)
{
	const struct smtp_client_settings *c = &smtp_client_settings;
	bool ok = s->reply.code / 100 == 2;
	switch (s->state) {
	case SMTP_GREETING:
		if (!ok) {
			smtp_fail_rest(s, s->reply.status, "host %s refused to talk to me: %s",
				       s->host, str_c(&s->reply.text));
			smtp_finish(s, true);
			return;
		}
		netconn_printf(s->conn, "LHLO %s\r\n", c->myhostname);
		netconn_set_timeout(s->conn, c->helo_timeout_ms);
		s->state = SMTP_LHLO;
		return;
	case SMTP_LHLO:
		if (!ok) {
			smtp_reply_all(s, "LHLO command");
			smtp_finish(s, true);
			return;
		}
		(void)gettimeofday(&s->conn_done, NULL);
		if (s->size_limit > 0 && s->qf->content_size > s->size_limit) {
			/* as Postfix: no point sending what the server refuses */
			smtp_fail_rest(s, "5.3.4", "message size %lld exceeds size limit %lld of "
				       "server %s", s->qf->content_size, s->size_limit, s->host);
			smtp_finish(s, true);
			return;
		}
		s->state = SMTP_COMMANDS;
		smtp_send_next(s);
		return;
	case SMTP_COMMANDS:
		smtp_command_reply(s);
		return;
	case SMTP_DOT:
		smtp_dot_reply(s);
		return;
	default:
		break;
	}
	smtp_fail_rest(s, "4.4.2", "unexpected reply from %s while %s", s->host, smtp_stage(s));
	smtp_finish(s, false);
}

/* smtp_reply_status: the enhanced status of the reply, or class.0.0. */
static void smtp_reply_status(struct smtp_reply *r, const char *text)
{
	size_t n = strspn(text, "0123456789.");
	char cand[DELIVERY_STATUS_MAX];
	if (n > 0 && n < sizeof(cand) && (text[n] == ' ' || text[n] == '\0')) {
		memcpy(cand, text, n);
		cand[n] = '\0';
		if (delivery_status_valid(cand) && cand[0] - '0' == r->code / 100) {
			memcpy(r->status, cand, n + 1);
			return;
		}
	}
	(void)str_format(r->status, sizeof(r->status), "%d.0.0", r->code / 100);
}

/* smtp_reply_line: one reply line (without CRLF); 1 when the reply is
 * complete, 0 for more lines, -1 when malformed. */
static int smtp_reply_line(struct smtp_session *s, const char *line)
{
	struct smtp_reply *r = &s->reply;
	if (strlen(line) < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '9' || line[2] < '0' || line[2] > '9' ||
	    (line[3] != '\0' && line[3] != ' ' && line[3] != '-'))
		return -1;
	int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	const char *text = line[3] != '\0' ? line + 4 : "";
	if (r->lines == 0) {
		r->code = code;
		str_clear(&r->text);
		str_printf(&r->text, "%d", code);
		smtp_reply_status(r, text);
	} else if (code != r->code) {
		return -1;
	}
	if (++r->lines > SMTP_REPLY_LINES_MAX)
		return -1;
	if (s->state == SMTP_LHLO && r->lines > 1)
		smtp_capability(s, text);
	if (r->text.len + strlen(text) < SMTP_REPLY_TEXT_MAX && *text != '\0' &&
	    (s->state != SMTP_LHLO || r->lines == 1)) {
		str_append_c(&r->text, ' ');
		str_append(&r->text, text);
	}
	if (line[3] == '-')
		return 0;
	r->lines = 0;
	return 1;
}

/* smtp_input: split replies into lines and act on whole replies. */
static void smtp_input(void *ctx)
{
	struct smtp_session *s = ctx;
	struct str *in = netconn_input(s->conn);
	while (s->state != SMTP_FINISHED && s->state != SMTP_BODY) {
		char *nl = memchr(in->data, '\n', in->len);
		if (nl == NULL) {
			if (in->len > SMTP_REPLY_LINE_MAX) {
				smtp_fail_rest(s, "4.5.0", "reply line too long from %s while %s",
					       s->host, smtp_stage(s));
				smtp_finish(s, false);
			}
			return;
		}
		size_t len = (size_t)(nl - in->data);
		char line[SMTP_REPLY_LINE_MAX + 1];
		if (len > SMTP_REPLY_LINE_MAX)
			len = SMTP_REPLY_LINE_MAX;
		memcpy(line, in->data, len);
		line[len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[len - 1] = '\0';
		str_consume(in, (size_t)(nl - in->data) + 1);
		int r = smtp_reply_line(s, line);
		if (r < 0) {
			smtp_fail_rest(s, "4.5.0", "malformed reply from %s while %s", s->host,
				       smtp_stage(s));
			smtp_finish(s, false);
			return;
		}
		if (r > 0)
			smtp_reply_done(s);
	}
}

/* smtp_connected: the socket is up: wait for the greeting. */
static void smtp_connected(struct smtp_session *s, int fd)
{
	s->conn = netconn_create(multi_server_loop(), fd, &smtp_callbacks, s);
	netconn_set_timeout(s->conn, smtp_client_settings.helo_timeout_ms);
	s->state = SMTP_GREETING;
}

/* smtp_connect_fail: the connection could not be made. */
static void smtp_connect_fail(struct smtp_session *s, const char *why)
{
	smtp_fail_rest(s, "4.4.1", "connect to %s: %s", s->connect_name, why);
	free(s->relay);
	s->relay = NULL; /* relay=none, as Postfix logs a failed connect */
	smtp_finish(s, false);
}

/* smtp_connect_event: the non-blocking connect finished. */
static void smtp_connect_event(void *ctx, int fd, unsigned events)
{
	struct smtp_session *s = ctx;
	int err = 0;
	socklen_t len = sizeof(err);
	(void)events;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	event_io_remove(&s->connect_io);
	event_timer_remove(&s->timer);
	if (err != 0) {
		smtp_connect_fail(s, strerror(err));
		return;
	}
	s->fd = -1;
	smtp_connected(s, fd);
}

/* smtp_connect_timeout: lmtp_connect_timeout passed. */
static void smtp_connect_timeout(void *ctx)
{
	struct smtp_session *s = ctx;
	smtp_connect_fail(s, "Connection timed out");
}

/* smtp_connect_fd: start a connect to addr; false with errno on failure. */
static bool smtp_connect_fd(struct smtp_session *s, const struct sockaddr *addr,
			    socklen_t addrlen)
{
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	if (connect(fd, addr, addrlen) == 0) {
		smtp_connected(s, fd);
		return true;
	}
	if (errno != EINPROGRESS) {
		int saved = errno;
		(void)close(fd);
		errno = saved;
		return false;
	}
	s->fd = fd;
	s->connect_io = event_io_add(multi_server_loop(), fd, EVENT_WRITE, smtp_connect_event, s);
	if (smtp_client_settings.connect_timeout_ms > 0)
		s->timer = event_timer_add(multi_server_loop(),
					   smtp_client_settings.connect_timeout_ms,
					   smtp_connect_timeout, s);
	return true;
}

/* smtp_connect_unix: nexthop unix:PATH, PATH relative to the queue
 * directory unless absolute. */
static void smtp_connect_unix(struct smtp_session *s, const char *path)
{
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	s->connect_name = xstrdup(path);
	struct str full = STR_INIT;
	str_printf(&full, "%s[%s]", smtp_client_settings.myhostname, path);
	s->relay = xstrdup(str_c(&full));
	s->host = xstrdup(str_c(&full));
	str_clear(&full);
	if (path[0] == '/')
		str_append(&full, path);
	else
		str_printf(&full, "%s/%s", multi_server_queue_dir(), path);
	bool fits = str_copy(sun.sun_path, sizeof(sun.sun_path), str_c(&full));
	str_deinit(&full);
	if (!fits) {
		smtp_connect_fail(s, "File name too long");
		return;
	}
	if (!smtp_connect_fd(s, (struct sockaddr *)&sun, sizeof(sun)))
		smtp_connect_fail(s, strerror(errno));
}

/* smtp_connect_inet: nexthop inet:HOST:PORT or inet:[HOST]:PORT. */
static void smtp_connect_inet(struct smtp_session *s, const char *spec)
{
	char host[256], port[16];
	const char *colon = strrchr(spec, ':');
	const char *h = spec;
	size_t hlen = colon != NULL ? (size_t)(colon - spec) : 0;
	if (hlen > 1 && h[0] == '[' && h[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	if (colon == NULL || hlen == 0 || hlen >= sizeof(host) ||
	    !str_copy(port, sizeof(port), colon + 1) || port[0] == '\0') {
		s->connect_name = xstrdup(spec);
		s->host = xstrdup(spec);
		smtp_fail_rest(s, "4.3.5", "bad nexthop: %s", spec);
		smtp_finish(s, false);
		return;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0 || res == NULL) {
		s->connect_name = xstrdup(host);
		s->host = xstrdup(host);
		smtp_fail_rest(s, "4.4.4", "Host or domain name not found. Name service error "
			       "for name=%s: %s", host, gai_strerror(gai));
		smtp_finish(s, false);
		return;
	}
	char addr[NI_MAXHOST];
	if (getnameinfo(res->ai_addr, res->ai_addrlen, addr, sizeof(addr), NULL, 0,
			NI_NUMERICHOST) != 0)
		(void)str_copy(addr, sizeof(addr), "unknown");
	struct str text = STR_INIT;
	str_printf(&text, "%s[%s]", host, addr);
	s->host = xstrdup(str_c(&text));
	str_printf(&text, ":%s", port);
	s->relay = xstrdup(str_c(&text));
	s->connect_name = xstrdup(str_c(&text));
	str_deinit(&text);
	if (!smtp_connect_fd(s, res->ai_addr, res->ai_addrlen))
		smtp_connect_fail(s, strerror(errno));
	freeaddrinfo(res);
}

/* smtp_sender_ok: the envelope can go into commands as is. */
static bool smtp_sender_ok(const char *sender)
{
	for (const unsigned char *p = (const unsigned char *)sender; *p != '\0'; p++)
		if (*p < 32 || *p == 127 || *p == '<' || *p == '>')
			return false;
	return true;
}

/* smtp_session_start: see smtp_client.h. */
struct smtp_session *smtp_session_start(const struct delivery_request *req,
					 struct queue_file *qf, struct smtp_rcpt_result *results,
					 smtp_session_done_fn *done, void *ctx)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	s->req = req;
	s->qf = qf;
	s->results = results;
	s->done = done;
	s->ctx = ctx;
	s->fd = -1;
	s->state = SMTP_CONNECTING;
	str_init(&s->reply.text);
	s->accepted = xcalloc(req->rcpt_count, sizeof(*s->accepted));
	(void)gettimeofday(&s->handoff, NULL);
	if (!smtp_sender_ok(qf->sender)) {
		s->host = xstrdup("none");
		smtp_fail_rest(s, "5.1.7", "bad sender address syntax");
		smtp_finish(s, false);
	} else if (strncmp(req->nexthop, "unix:", 5) == 0) {
		smtp_connect_unix(s, req->nexthop + 5);
	} else {
		smtp_connect_inet(s, req->nexthop + 5);
	}
	return s;
}

/* smtp_session_free: close everything (done is not called). */
void smtp_session_free(struct smtp_session **sp)
{
	struct smtp_session *s = *sp;
	if (s == NULL)
		return;
	if (s->connect_io != NULL)
		event_io_remove(&s->connect_io);
	if (s->fd >= 0)
		(void)close(s->fd);
	netconn_free(&s->conn);
	event_timer_remove(&s->timer);
	str_deinit(&s->reply.text);
	free(s->accepted);
	free(s->relay);
	free(s->host);
	free(s->connect_name);
	free(s);
	*sp = NULL;
}
