/* lmtpd_session.c: one LMTP connection: lines, replies, the commands
 * before DATA, and the session's end.
 *
 * Command lines end with CRLF (a bare LF is accepted too, as Dovecot
 * does, since the client is our own agent); all complete lines buffered
 * are answered before output is flushed (PIPELINING). */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "lmtpd/lmtpd.h"
#include "server/multi_server.h"
#include "server/netconn.h"
#include "util/alloc.h"
#include "util/msg.h"

static void session_input(void *ctx);
static void session_closed(void *ctx, const char *reason);
static void session_drained(void *ctx);

static const struct netconn_callbacks session_callbacks = {
	.input = session_input,
	.closed = session_closed,
	.output_drained = session_drained,
};

void lmtpd_new_id(char id[LMTPD_ID_LEN + 1])
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char rnd[LMTPD_ID_LEN];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		msg_fatal("getrandom failed: %m");
	for (size_t i = 0; i < LMTPD_ID_LEN; i++)
		id[i] = b64[rnd[i] & 63];
	id[LMTPD_ID_LEN] = '\0';
}

const char *lmtpd_state_name(const struct lmtpd_session *s)
{
	if (s->state == LMTPD_STATE_DATA)
		return "DATA";
	if (s->rcpt_count > 0)
		return "RCPT TO";
	if (s->have_mail)
		return "MAIL FROM";
	return "READY";
}

static struct lmtpd_session *lmtpd_sessions; /* live, newest first */

void lmtpd_session_start(int fd, bool local, const char *addr)
{
	struct lmtpd_session *s = xcalloc(1, sizeof(*s));
	s->next = lmtpd_sessions;
	if (s->next != NULL)
		s->next->prev = s;
	lmtpd_sessions = s;
	s->local = local;
	str_copy(s->client_addr, sizeof(s->client_addr), addr);
	lmtpd_new_id(s->id);
	s->conn = netconn_create(multi_server_loop(), fd, &session_callbacks, s);
	netconn_set_timeout(s->conn, lmtpd_config.timeout_ms);
	msg_info("lmtp(%ld): Connect from %s", (long)getpid(), s->client_addr);
	lmtpd_reply(s, "220 %s Petrel LMTP ready", lmtpd_config.myhostname);
	netconn_flush(s->conn);
}

void lmtpd_reply(struct lmtpd_session *s, const char *fmt, ...)
{
	if (s->state == LMTPD_STATE_CLOSING)
		return;
	va_list ap;
	va_start(ap, fmt);
	(void)netconn_vwrite_line(s->conn, fmt, ap);
	va_end(ap);
}

void lmtpd_transaction_reset(struct lmtpd_session *s)
{
	if (s->have_mail) {
		smtp_addr_deinit(&s->sender);
		smtp_params_deinit(&s->mail_params);
	}
	for (size_t i = 0; i < s->rcpt_count; i++)
		lmtpd_rcpt_free(&s->rcpts[i]);
	free(s->rcpts);
	s->rcpts = NULL;
	s->rcpt_count = 0;
	s->have_mail = false;
	s->too_big = false;
	str_deinit(&s->content);
}

static void session_free(struct lmtpd_session *s)
{
	lmtpd_transaction_reset(s);
	netconn_free(&s->conn);
	free(s->lhlo);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		lmtpd_sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	free(s);
	multi_server_disconnect();
}

void lmtpd_sessions_free(void)
{
	while (lmtpd_sessions != NULL)
		session_free(lmtpd_sessions);
}

/* session_log_end: Dovecot's disconnect line. */
static void session_log_end(struct lmtpd_session *s, const char *why)
{
	if (s->end_logged)
		return;
	s->end_logged = true;
	msg_info("lmtp(%ld): Disconnect from %s: %s (state=%s)", (long)getpid(), s->client_addr,
		 why, lmtpd_state_name(s));
}

static void session_closed(void *ctx, const char *reason)
{
	struct lmtpd_session *s = ctx;
	if (reason != NULL && strcmp(reason, "timeout") == 0) {
		session_log_end(s, "Disconnected for inactivity");
		netconn_printf(s->conn, "421 4.4.2 %s Disconnected for inactivity\r\n",
			       lmtpd_config.myhostname);
		netconn_flush(s->conn);
	} else if (reason != NULL)
		session_log_end(s, "Connection closed");
	session_free(s);
}

static void session_close(struct lmtpd_session *s)
{
	s->state = LMTPD_STATE_CLOSING;
	netconn_pause_input(s->conn, true);
}

static void session_drained(void *ctx)
{
	struct lmtpd_session *s = ctx;
	if (s->state == LMTPD_STATE_CLOSING && !s->dispatching)
		session_closed(s, NULL);
}

static void cmd_lhlo(struct lmtpd_session *s, const char *arg)
{
	if (*arg == '\0') {
		lmtpd_reply(s, "501 5.5.4 Missing hostname");
		return;
	}
	free(s->lhlo);
	s->lhlo = xstrndup(arg, 255);
	lmtpd_transaction_reset(s);
	lmtpd_reply(s, "250-%s", lmtpd_config.myhostname);
	lmtpd_reply(s, "250-8BITMIME");
	lmtpd_reply(s, "250-ENHANCEDSTATUSCODES");
	lmtpd_reply(s, "250-PIPELINING");
	lmtpd_reply(s, "250-SMTPUTF8");
	lmtpd_reply(s, "250-DSN");
	if (s->local)
		lmtpd_reply(s, "250-XDELIVERYID");
	lmtpd_reply(s, "250 SIZE %lld", lmtpd_config.size_limit);
}

/* after_prefix: arg past "FROM:" / "TO:" (case-insensitive), or NULL. */
static const char *after_prefix(const char *arg, const char *prefix)
{
	return str_prefix_icase(arg, prefix) ? arg + strlen(prefix) : NULL;
}

#define LMTPD_EXT (SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_DSN | SMTP_EXT_SMTPUTF8)
/* lmtpd_ext: XDELIVERYID only on the internal (UNIX) socket. */
#define lmtpd_ext(s) (LMTPD_EXT | ((s)->local ? SMTP_EXT_XDELIVERYID : 0))

static void cmd_mail(struct lmtpd_session *s, const char *arg)
{
	const char *path = after_prefix(arg, "FROM:"), *rest, *error = NULL;
	if (s->lhlo == NULL) {
		lmtpd_reply(s, "503 5.5.1 LHLO command must be sent first");
		return;
	}
	if (s->have_mail) {
		lmtpd_reply(s, "503 5.5.1 MAIL already given");
		return;
	}
	if (path == NULL) {
		lmtpd_reply(s, "501 5.5.4 Invalid parameters");
		return;
	}
	enum addr_error e = addr_parse_path(path, strlen(path), ADDR_NULL_OK | ADDR_ALLOW_SMTPUTF8,
					    &s->sender, &rest, &error);
	if (e != ADDR_OK) {
		lmtpd_reply(s, "501 5.1.7 Invalid FROM: %s", error);
		return;
	}
	e = smtp_params_parse_mail(rest, strlen(rest), lmtpd_ext(s), &s->mail_params, &error);
	if (e != ADDR_OK) {
		smtp_addr_deinit(&s->sender);
		lmtpd_reply(s, "%s 5.5.4 Invalid FROM: %s", e == ADDR_ERR_PARAM_UNKNOWN ? "555" : "501",
			    error);
		return;
	}
	if (s->mail_params.size > lmtpd_config.size_limit) {
		smtp_addr_deinit(&s->sender);
		smtp_params_deinit(&s->mail_params);
		lmtpd_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	s->have_mail = true;
	lmtpd_reply(s, "250 2.1.0 OK");
}

static void cmd_rcpt(struct lmtpd_session *s, const char *arg)
{
	const char *path = after_prefix(arg, "TO:"), *rest, *error = NULL;
	if (!s->have_mail) {
		lmtpd_reply(s, "503 5.5.1 MAIL needed first");
		return;
	}
	if (path == NULL) {
		lmtpd_reply(s, "501 5.5.4 Invalid parameters");
		return;
	}
	if (s->rcpt_count >= lmtpd_config.recipient_limit) {
		lmtpd_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	struct smtp_addr addr;
	struct smtp_params params;
	enum addr_error e = addr_parse_path(path, strlen(path),
					    s->mail_params.smtputf8 ? ADDR_ALLOW_SMTPUTF8 : 0, &addr,
					    &rest, &error);
	if (e != ADDR_OK) {
		lmtpd_reply(s, "501 5.1.3 Invalid TO: %s", error);
		return;
	}
	e = smtp_params_parse_rcpt(rest, strlen(rest), lmtpd_ext(s), &params, &error);
	smtp_params_deinit(&params);
	if (e != ADDR_OK) {
		lmtpd_reply(s, "%s 5.5.4 Invalid TO: %s", e == ADDR_ERR_PARAM_UNKNOWN ? "555" : "501",
			    error);
		smtp_addr_deinit(&addr);
		return;
	}
	struct lmtpd_rcpt r;
	char reply[600];
	int ret = lmtpd_rcpt_resolve(&addr, s->mail_params.size, s->mail_params.delivery_id == NULL,
				     &r, reply, sizeof(reply));
	smtp_addr_deinit(&addr);
	if (ret <= 0) {
		lmtpd_reply(s, "%s", reply);
		return;
	}
	s->rcpts = xreallocarray(s->rcpts, s->rcpt_count + 1, sizeof(*s->rcpts));
	s->rcpts[s->rcpt_count++] = r;
	lmtpd_reply(s, "250 2.1.5 OK");
}

static void cmd_data(struct lmtpd_session *s)
{
	if (!s->have_mail) {
		lmtpd_reply(s, "503 5.5.1 MAIL needed first");
		return;
	}
	if (s->rcpt_count == 0) {
		lmtpd_reply(s, "554 5.5.1 No valid recipients");
		return;
	}
	lmtpd_reply(s, "354 OK");
	lmtpd_data_begin(s);
}

/* session_dispatch: one command line (without its line end). */
static void session_dispatch(struct lmtpd_session *s, const char *line)
{
	size_t vlen = strcspn(line, " ");
	const char *arg = line + vlen + (line[vlen] == ' ');
	char verb[16];
	if (vlen >= sizeof(verb)) {
		lmtpd_reply(s, "500 5.5.1 Unknown command");
		return;
	}
	memcpy(verb, line, vlen);
	verb[vlen] = '\0';
	if (str_eq_icase(verb, "LHLO"))
		cmd_lhlo(s, arg);
	else if (str_eq_icase(verb, "MAIL"))
		cmd_mail(s, arg);
	else if (str_eq_icase(verb, "RCPT"))
		cmd_rcpt(s, arg);
	else if (str_eq_icase(verb, "DATA"))
		cmd_data(s);
	else if (str_eq_icase(verb, "RSET")) {
		lmtpd_transaction_reset(s);
		lmtpd_reply(s, "250 2.0.0 OK");
	} else if (str_eq_icase(verb, "NOOP"))
		lmtpd_reply(s, "250 2.0.0 OK");
	else if (str_eq_icase(verb, "VRFY"))
		lmtpd_reply(s, "252 2.3.3 Try RCPT instead");
	else if (str_eq_icase(verb, "QUIT")) {
		session_log_end(s, "Logged out");
		lmtpd_reply(s, "221 2.0.0 %s Bye", lmtpd_config.myhostname);
		session_close(s);
	} else if (str_eq_icase(verb, "HELO") || str_eq_icase(verb, "EHLO"))
		lmtpd_reply(s, "500 5.5.1 This is LMTP: use LHLO");
	else
		lmtpd_reply(s, "500 5.5.1 Unknown command");
}

/* session_take_line: one complete line; false when none is buffered. */
static bool session_take_line(struct lmtpd_session *s, struct str *in)
{
	char *nl = in->len > 0 ? memchr(in->data, '\n', in->len) : NULL;
	if (nl == NULL) {
		if (in->len > LMTPD_LINE_MAX) {
			lmtpd_reply(s, "500 5.5.2 Line too long");
			session_log_end(s, "Line too long");
			session_close(s);
		}
		return false;
	}
	size_t len = (size_t)(nl - in->data);
	size_t used = len + 1;
	if (len > 0 && in->data[len - 1] == '\r')
		len--;
	if (len > LMTPD_LINE_MAX || memchr(in->data, '\0', len) != NULL) {
		str_consume(in, used);
		lmtpd_reply(s, "500 5.5.2 Invalid command line");
		return true;
	}
	char *line = xstrndup(in->data, len);
	str_consume(in, used);
	session_dispatch(s, line);
	free(line);
	return true;
}

static void session_input(void *ctx)
{
	struct lmtpd_session *s = ctx;
	struct str *in = netconn_input(s->conn);
	bool progress = true;
	s->dispatching = true;
	while (progress) {
		if (s->state == LMTPD_STATE_COMMAND)
			progress = session_take_line(s, in);
		else if (s->state == LMTPD_STATE_DATA)
			progress = lmtpd_data_feed(s, in);
		else
			progress = false;
	}
	netconn_flush(s->conn);
	s->dispatching = false;
	if (s->state == LMTPD_STATE_CLOSING && netconn_output_pending(s->conn) == 0)
		session_closed(s, NULL);
}
