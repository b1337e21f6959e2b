/* smtpd_session.c: one SMTP session: connection set-up, reading command
 * lines, replies, error limits, timeouts and the end of the session.
 *
 * Command lines end with CRLF only: a bare LF or CR never ends a command
 * (RFC 5321 2.3.8), and a line that contains one is refused whole. All
 * complete lines in the input buffer are answered before the output is
 * flushed, which is what PIPELINING asks of a server. */
#include <config.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "mail/anvil_client.h"
#include "mail/dns.h"
#include "mail/match_list.h"
#include "mail/queue.h"
#include "server/multi_server.h"
#include "server/netconn.h"
#include "smtpd/smtpd.h"
#include "util/alloc.h"
#include "util/events.h"
#include "util/msg.h"

static void session_input(void *ctx);
static void session_closed(void *ctx, const char *reason);
static void session_tls_done(void *ctx);
static void session_drained(void *ctx);

static const struct netconn_callbacks session_callbacks = {
	.input = session_input,
	.closed = session_closed,
	.tls_done = session_tls_done,
	.output_drained = session_drained,
};

/* session_set_peer: numeric address and port, "unknown" as the name until a
 * lookup (when enabled) says otherwise. */
static void session_set_peer(struct smtpd_session *s, const struct sockaddr *peer,
			     socklen_t peerlen)
{
	memcpy(&s->peer, peer, peerlen);
	s->peerlen = peerlen;
	if (getnameinfo(peer, peerlen, s->client_addr, sizeof(s->client_addr), s->client_port,
			sizeof(s->client_port), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		str_copy(s->client_addr, sizeof(s->client_addr), "unknown");
		str_copy(s->client_port, sizeof(s->client_port), "0");
	}
	/* An IPv4-mapped IPv6 address is logged as plain IPv4, as Postfix does. */
	if (strncmp(s->client_addr, "::ffff:", 7) == 0 && strchr(s->client_addr + 7, ':') == NULL)
		memmove(s->client_addr, s->client_addr + 7, strlen(s->client_addr + 7) + 1);
	str_copy(s->client_name, sizeof(s->client_name), "unknown");
	snprintf(s->namaddr, sizeof(s->namaddr), "%s[%s]", s->client_name, s->client_addr);
	s->in_mynetworks = net_list_match(smtpd_config.mynetworks, peer);
	s->bare_newline_excluded = net_list_match(smtpd_config.bare_newline_exclusions, peer);
}

/* session_greet: the client is let in: log and send the banner. */
static void session_greet(struct smtpd_session *s)
{
	netconn_pause_input(s->conn, false);
	msg_info("connect from %s", s->namaddr);
	smtpd_reply(s, "220 %s", smtpd_config.banner);
	netconn_flush(s->conn);
}

/* session_refuse: over a per-client limit: Postfix's 421 and log line. */
static void session_refuse(struct smtpd_session *s, const char *what, unsigned value)
{
	msg_info("connect from %s", s->namaddr);
	msg_warn("%s limit exceeded: %u from %s for service %s", what, value, s->namaddr,
		 multi_server_service_name());
	smtpd_reply(s, "421 4.7.0 %s Error: too many connections from %s", smtpd_config.myhostname,
		    s->client_addr);
	smtpd_session_close(s);
	netconn_flush(s->conn);
}

/* session_anvil_done: the client's connection count and rate. When anvil
 * cannot answer (status < 0) the client is let in: limits are best effort,
 * never a reason to refuse all mail. */
static void session_anvil_done(void *ctx, int status, unsigned count, unsigned rate)
{
	struct smtpd_session *s = ctx;
	s->anvil_req = NULL;
	if (status == 0)
		s->anvil_counted = true;
	if (status == 0 && smtpd_config.conn_count_limit > 0 && count > smtpd_config.conn_count_limit)
		session_refuse(s, "Connection concurrency", count);
	else if (status == 0 && smtpd_config.conn_rate_limit > 0 && rate > smtpd_config.conn_rate_limit)
		session_refuse(s, "Connection rate", rate);
	else
		session_greet(s);
}

/* session_check_limits: ask anvil, unless the client is exempt. */
static void session_check_limits(struct smtpd_session *s)
{
	s->limits_exempt =
		net_list_match(smtpd_config.limit_exceptions, (const struct sockaddr *)&s->peer);
	if (smtpd_config.anvil == NULL || s->limits_exempt) {
		session_greet(s);
		return;
	}
	s->anvil_req = anvil_connect(smtpd_config.anvil, multi_server_service_name(), s->client_addr,
				     session_anvil_done, s);
}

/* session_peer_found: Postfix's rule: the name counts only when the
 * forward lookup confirms the address; otherwise "unknown". */
static void session_peer_found(void *ctx, const struct dns_peer *peer)
{
	struct smtpd_session *s = ctx;
	s->peer_query = NULL;
	if (peer->name_status == DNS_PEER_OK && strcmp(peer->name, "unknown") != 0) {
		str_copy(s->client_name, sizeof(s->client_name), peer->name);
		snprintf(s->namaddr, sizeof(s->namaddr), "%s[%s]", s->client_name, s->client_addr);
	}
	session_check_limits(s);
}

/* smtpd_session_start: a new client: its name (when asked), its limits,
 * then the banner. Nothing is read before the banner. */
static struct smtpd_session *smtpd_sessions; /* live, newest first */

void smtpd_session_start(int fd, const struct sockaddr *peer, socklen_t peerlen)
{
	struct smtpd_session *s = xcalloc(1, sizeof(*s));
	s->next = smtpd_sessions;
	if (s->next != NULL)
		s->next->prev = s;
	smtpd_sessions = s;
	gettimeofday(&s->start, NULL);
	session_set_peer(s, peer, peerlen);
	s->state = SMTPD_STATE_COMMAND;
	s->last_command = "CONNECT";
	s->conn = netconn_create(multi_server_loop(), fd, &session_callbacks, s);
	netconn_set_timeout(s->conn, smtpd_config.timeout_ms);
	netconn_set_input_limit(s->conn, smtpd_config.line_length_limit + 64 * 1024);
	netconn_pause_input(s->conn, true);
	if (smtpd_config.dns != NULL)
		s->peer_query = dns_peername(smtpd_config.dns, peer, session_peer_found, s);
	else
		session_check_limits(s);
}

/* The session is freed later, by session_input() or session_drained(),
 * never under the caller's feet. */
void smtpd_session_close(struct smtpd_session *s)
{
	s->state = SMTPD_STATE_CLOSING;
	netconn_pause_input(s->conn, true);
}

static void session_drained(void *ctx)
{
	struct smtpd_session *s = ctx;
	if (s->state == SMTPD_STATE_CLOSING && !s->dispatching)
		session_closed(s, NULL);
}

static void transaction_free_rcpts(struct smtpd_transaction *tx)
{
	for (size_t i = 0; i < tx->rcpt_count; i++) {
		free(tx->rcpts[i].address);
		free(tx->rcpts[i].orcpt);
	}
	free(tx->rcpts);
	tx->rcpts = NULL;
	tx->rcpt_count = 0;
	tx->rcpt_alloc = 0;
}

/* smtpd_transaction_reset: forget MAIL, RCPT and any half-written file. */
void smtpd_transaction_reset(struct smtpd_session *s)
{
	struct smtpd_transaction *tx = &s->tx;
	if (tx->qw != NULL)
		queue_writer_abort(&tx->qw);
	if (tx->have_mail) {
		smtp_addr_deinit(&tx->sender);
		smtp_params_deinit(&tx->mail_params);
	}
	transaction_free_rcpts(tx);
	str_deinit(&tx->header_line);
	str_deinit(&tx->header_phys);
	free(tx->message_id);
	memset(tx, 0, sizeof(*tx));
}

static void session_free(struct smtpd_session *s)
{
	smtpd_transaction_reset(s);
	if (s->sleep_timer != NULL)
		event_timer_remove(&s->sleep_timer);
	if (s->peer_query != NULL)
		dns_cancel(&s->peer_query);
	if (s->rate_req != NULL)
		anvil_cancel(&s->rate_req);
	free(s->suspended_line);
	if (s->anvil_req != NULL)
		anvil_cancel(&s->anvil_req);
	else if (s->anvil_counted)
		anvil_disconnect(smtpd_config.anvil, multi_server_service_name(), s->client_addr);
	netconn_free(&s->conn);
	free(s->helo_name);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		smtpd_sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	free(s);
	multi_server_disconnect();
}

void smtpd_sessions_free(void)
{
	while (smtpd_sessions != NULL)
		session_free(smtpd_sessions);
}

/* session_closed: the connection ended (reason NULL: we closed it). */
static void session_closed(void *ctx, const char *reason)
{
	struct smtpd_session *s = ctx;
	if (reason != NULL) {
		if (strcmp(reason, "timeout") == 0) {
			msg_info("timeout after %s from %s", s->last_command, s->namaddr);
			netconn_printf(s->conn, "421 4.4.2 %s Error: timeout exceeded\r\n",
				       smtpd_config.myhostname);
			netconn_flush(s->conn);
		} else if (s->state == SMTPD_STATE_DATA || s->state == SMTPD_STATE_BDAT) {
			msg_info("lost connection after %s (%lld bytes) from %s", s->last_command,
				 s->tx.content_bytes, s->namaddr);
		} else {
			msg_info("%s after %s from %s",
				 strncmp(reason, "TLS", 3) == 0 ? reason : "lost connection",
				 s->last_command, s->namaddr);
		}
	}
	smtpd_log_disconnect(s);
	session_free(s);
}

static void session_wake(void *ctx)
{
	struct smtpd_session *s = ctx;
	event_timer_remove(&s->sleep_timer);
	s->sleeping = false;
	netconn_pause_input(s->conn, false);
	session_input(s);
}

/* smtpd_count_error: the limits on 4xx/5xx replies. Past the soft limit
 * the session pauses before reading on (a tarpit); at the hard limit it
 * ends. */
void smtpd_count_error(struct smtpd_session *s)
{
	s->error_count++;
	if (s->error_count >= smtpd_config.hard_error_limit) {
		msg_info("too many errors after %s from %s", s->last_command, s->namaddr);
		netconn_printf(s->conn, "421 4.7.0 %s Error: too many errors\r\n",
			       smtpd_config.myhostname);
		smtpd_session_close(s);
		return;
	}
	if (s->error_count > smtpd_config.soft_error_limit && smtpd_config.error_sleep_ms > 0 &&
	    !s->sleeping) {
		s->sleeping = true;
		netconn_pause_input(s->conn, true);
		s->sleep_timer = event_timer_add(multi_server_loop(), smtpd_config.error_sleep_ms,
						 session_wake, s);
	}
}

void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
	if (s->state == SMTPD_STATE_CLOSING)
		return;
	va_list ap;
	va_start(ap, fmt);
	char cls = netconn_vwrite_line(s->conn, fmt, ap);
	va_end(ap);
	if (cls == '4' || cls == '5')
		smtpd_count_error(s);
}

void smtpd_reply_multi(struct smtpd_session *s, int code, const char *lines)
{
	const char *p = lines;
	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		bool last = nl == NULL || nl[1] == '\0';
		netconn_printf(s->conn, "%d%c%.*s\r\n", code, last ? ' ' : '-', (int)len, p);
		if (last)
			break;
		p = nl + 1;
	}
}

void smtpd_count(struct smtpd_session *s, enum smtpd_counter c, bool ok)
{
	s->counts_all[c]++;
	if (ok)
		s->counts_ok[c]++;
}

/* session_skip_long: after "line too long", drop bytes up to the next CRLF. */
static bool session_skip_long(struct smtpd_session *s, struct str *in)
{
	char *crlf = memmem(in->data, in->len, "\r\n", 2);
	if (crlf == NULL) {
		/* keep a trailing CR: the LF may be in the next read */
		size_t keep = in->len > 0 && in->data[in->len - 1] == '\r' ? 1 : 0;
		str_consume(in, in->len - keep);
		return false;
	}
	str_consume(in, (size_t)(crlf - in->data) + 2);
	s->skip_long_line = false;
	return true;
}

/* session_take_line: answer one complete command line; false when the
 * buffer holds no complete line. */
static bool session_take_line(struct smtpd_session *s, struct str *in)
{
	if (s->skip_long_line)
		return session_skip_long(s, in);
	char *crlf = in->len > 0 ? memmem(in->data, in->len, "\r\n", 2) : NULL;
	size_t limit = smtpd_config.line_length_limit;
	if (crlf == NULL || (size_t)(crlf - in->data) > limit) {
		if (in->len <= limit && crlf == NULL)
			return false;
		s->last_command = "UNKNOWN";
		smtpd_count(s, SMTPD_C_UNKNOWN, false);
		smtpd_reply(s, "500 5.5.2 Error: line too long");
		s->skip_long_line = true;
		return true;
	}
	size_t len = (size_t)(crlf - in->data);
	char *line = xstrndup(in->data, len);
	bool has_nul = memchr(in->data, '\0', len) != NULL;
	str_consume(in, len + 2);
	if (has_nul) {
		s->last_command = "UNKNOWN";
		smtpd_count(s, SMTPD_C_UNKNOWN, false);
		smtpd_reply(s, "500 5.5.2 Error: NUL character in command");
	} else if (strpbrk(line, "\r\n") != NULL) {
		s->last_command = "UNKNOWN";
		smtpd_count(s, SMTPD_C_UNKNOWN, false);
		smtpd_reply(s, "500 5.5.2 Error: bare <%s> received",
			    strchr(line, '\n') != NULL ? "LF" : "CR");
	} else {
		smtpd_cmd_dispatch(s, line, len);
	}
	free(line);
	return true;
}

/* session_input: run the state machine over everything buffered. */
static void session_input(void *ctx)
{
	struct smtpd_session *s = ctx;
	struct str *in = netconn_input(s->conn);
	bool progress = true;
	s->dispatching = true;
	while (progress && !s->sleeping && s->suspended_line == NULL) {
		switch (s->state) {
		case SMTPD_STATE_COMMAND:
			progress = session_take_line(s, in);
			break;
		case SMTPD_STATE_DATA:
			progress = smtpd_data_feed(s, in);
			break;
		case SMTPD_STATE_BDAT:
			progress = smtpd_bdat_feed(s, in);
			break;
		case SMTPD_STATE_TLS:
		case SMTPD_STATE_CLOSING:
			progress = false;
			break;
		}
	}
	netconn_flush(s->conn);
	s->dispatching = false;
	if (s->state == SMTPD_STATE_CLOSING && netconn_output_pending(s->conn) == 0)
		session_closed(s, NULL);
}

void smtpd_session_resume(struct smtpd_session *s)
{
	netconn_pause_input(s->conn, false);
	session_input(s);
}

/* session_tls_done: RFC 3207: the session starts over after the handshake. */
static void session_tls_done(void *ctx)
{
	struct smtpd_session *s = ctx;
	msg_info("Anonymous TLS connection established from %s: %s with cipher %s (%d/%d bits)",
		 s->namaddr, netconn_tls_protocol(s->conn), netconn_tls_cipher(s->conn),
		 netconn_tls_bits(s->conn), netconn_tls_bits(s->conn));
	s->state = SMTPD_STATE_COMMAND;
	s->esmtp = false;
	free(s->helo_name);
	s->helo_name = NULL;
	smtpd_transaction_reset(s);
	session_input(s);
}
