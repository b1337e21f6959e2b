/* smtpd_cmd.c: one function per SMTP verb, and the table that maps a
 * command line to it. Replies and enhanced status codes follow Postfix's
 * wording so that log parsers and admins see what they know. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/anvil_client.h"
#include "mail/queue.h"
#include "server/multi_server.h"
#include "server/netconn.h"
#include "smtpd/smtpd.h"
#include "util/alloc.h"
#include "util/msg.h"

#define SMTPD_HELO_MAX 255

struct smtpd_cmd {
	const char *name;
	void (*fn)(struct smtpd_session *s, char *arg);
	enum smtpd_counter counter;
	bool junk; /* counts toward smtpd_junk_command_limit */
};

/* cmd_arg_empty: true when a command that takes no argument got none. */
static bool cmd_arg_empty(const char *arg)
{
	return arg == NULL || *arg == '\0';
}

/* cmd_helo_name_ok: printable ASCII, bounded. */
static bool cmd_helo_name_ok(const char *arg)
{
	size_t len = strlen(arg);
	if (len == 0 || len > SMTPD_HELO_MAX)
		return false;
	for (const unsigned char *p = (const unsigned char *)arg; *p != '\0'; p++) {
		if (*p < 0x21 || *p > 0x7e)
			return false;
	}
	return true;
}

static bool cmd_helo_common(struct smtpd_session *s, const char *verb, char *arg,
			    enum smtpd_counter c)
{
	if (cmd_arg_empty(arg)) {
		smtpd_count(s, c, false);
		smtpd_reply(s, "501 5.5.4 Syntax: %s hostname", verb);
		return false;
	}
	if (!cmd_helo_name_ok(arg)) {
		smtpd_count(s, c, false);
		smtpd_reply(s, "501 5.5.2 <%s>: Helo command rejected: Invalid name",
			    smtpd_log_escape(arg));
		return false;
	}
	smtpd_transaction_reset(s);
	free(s->helo_name);
	s->helo_name = xstrdup(arg);
	smtpd_count(s, c, true);
	return true;
}

static bool cmd_tls_offered(const struct smtpd_session *s)
{
	return smtpd_config.tls != NULL && smtpd_config.tls_level != SMTPD_TLS_NONE &&
	       !netconn_is_tls(s->conn);
}

/* cmd_ehlo_keyword_on: smtpd_discard_ehlo_keywords drops a keyword. */
static bool cmd_ehlo_keyword_on(const char *keyword)
{
	for (const char *const *d = smtpd_config.discard_ehlo; d != NULL && *d != NULL; d++) {
		if (str_eq_icase(*d, keyword))
			return false;
	}
	return true;
}

static void cmd_ehlo(struct smtpd_session *s, char *arg)
{
	if (!cmd_helo_common(s, "EHLO", arg, SMTPD_C_EHLO))
		return;
	s->esmtp = true;
	struct str lines = STR_INIT;
	str_append(&lines, smtpd_config.myhostname);
	static const char *const keywords[] = {
		"PIPELINING", "SIZE", "VRFY", "ETRN", "STARTTLS", "ENHANCEDSTATUSCODES",
		"8BITMIME", "DSN", "SMTPUTF8", "CHUNKING",
	};
	for (size_t i = 0; i < N_ELEMENTS(keywords); i++) {
		const char *k = keywords[i];
		if (!cmd_ehlo_keyword_on(k))
			continue;
		if (strcmp(k, "VRFY") == 0 && smtpd_config.disable_vrfy)
			continue;
		if (strcmp(k, "ETRN") == 0)
			continue; /* not implemented: not advertised */
		if (strcmp(k, "STARTTLS") == 0 && !cmd_tls_offered(s))
			continue;
		if (strcmp(k, "SMTPUTF8") == 0 && !smtpd_config.smtputf8)
			continue;
		if (strcmp(k, "SIZE") == 0 && smtpd_config.message_size_limit > 0)
			str_printf(&lines, "\nSIZE %lld", smtpd_config.message_size_limit);
		else
			str_printf(&lines, "\n%s", k);
	}
	smtpd_reply_multi(s, 250, str_c(&lines));
	str_deinit(&lines);
}

static void cmd_helo(struct smtpd_session *s, char *arg)
{
	if (!cmd_helo_common(s, "HELO", arg, SMTPD_C_HELO))
		return;
	s->esmtp = false;
	smtpd_reply(s, "250 %s", smtpd_config.myhostname);
}

/* cmd_need_tls: smtpd_tls_security_level = encrypt refuses mail in clear. */
static bool cmd_need_tls(struct smtpd_session *s, enum smtpd_counter c)
{
	if (smtpd_config.tls_level != SMTPD_TLS_ENCRYPT || netconn_is_tls(s->conn))
		return false;
	smtpd_count(s, c, false);
	smtpd_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
	return true;
}

/* cmd_path_arg: the text after "FROM:" / "TO:", or NULL on bad syntax. */
static char *cmd_path_arg(char *arg, const char *prefix)
{
	size_t n = strlen(prefix);
	if (arg == NULL || strncasecmp(arg, prefix, n) != 0)
		return NULL;
	arg += n;
	while (*arg == ' ')
		arg++;
	return arg;
}

static unsigned cmd_addr_flags(void)
{
	unsigned flags = 0;
	if (smtpd_config.smtputf8)
		flags |= ADDR_ALLOW_SMTPUTF8;
	if (smtpd_config.strict_rfc821)
		flags |= ADDR_STRICT;
	return flags;
}

/* cmd_ext: the ESMTP parameters this service accepts (what EHLO offers). */
static unsigned cmd_ext(void)
{
	unsigned ext = SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_DSN;
	if (smtpd_config.smtputf8)
		ext |= SMTP_EXT_SMTPUTF8;
	return ext;
}

/* cmd_mail_params_ok: MAIL parameters against the configuration. */
static bool cmd_mail_params_ok(struct smtpd_session *s, const struct smtp_addr *addr,
			       const struct smtp_params *p)
{
	if (smtpd_config.message_size_limit > 0 && p->size > smtpd_config.message_size_limit) {
		smtpd_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return false;
	}
	if (p->smtputf8 && !smtpd_config.smtputf8) {
		smtpd_reply(s, "555 5.5.4 Unsupported option: SMTPUTF8");
		return false;
	}
	if (addr->utf8 && !p->smtputf8) {
		smtpd_reply(s, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
		return false;
	}
	if (!smtpd_check_space(p->size)) {
		smtpd_reply(s, "452 4.3.1 Insufficient system storage");
		return false;
	}
	return true;
}

static void cmd_mail(struct smtpd_session *s, char *arg)
{
	char *path = cmd_path_arg(arg, "FROM:");
	const char *rest = NULL, *error = NULL;
	if (path == NULL) {
		smtpd_count(s, SMTPD_C_MAIL, false);
		smtpd_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (cmd_need_tls(s, SMTPD_C_MAIL))
		return;
	if (smtpd_config.helo_required && s->helo_name == NULL) {
		smtpd_count(s, SMTPD_C_MAIL, false);
		smtpd_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->tx.have_mail) {
		smtpd_count(s, SMTPD_C_MAIL, false);
		smtpd_reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	struct smtp_addr addr;
	struct smtp_params params;
	smtp_params_init(&params);
	if (addr_parse_path(path, strlen(path), cmd_addr_flags() | ADDR_NULL_OK, &addr, &rest,
			    &error) != ADDR_OK) {
		smtpd_count(s, SMTPD_C_MAIL, false);
		smtpd_reply(s, "501 5.1.7 Bad sender address syntax");
		return;
	}
	if (*rest != '\0' && !s->esmtp) {
		smtpd_reply(s, "555 5.5.4 Unsupported option: %s", smtpd_log_escape(rest));
		smtpd_count(s, SMTPD_C_MAIL, false);
		smtp_addr_deinit(&addr);
		return;
	}
	int r = smtp_params_parse_mail(rest, strlen(rest), cmd_ext(), &params, &error);
	if (r != ADDR_OK || !cmd_mail_params_ok(s, &addr, &params)) {
		if (r != ADDR_OK)
			smtpd_reply(s, "555 5.5.4 %s", error);
		smtpd_count(s, SMTPD_C_MAIL, false);
		smtp_addr_deinit(&addr);
		smtp_params_deinit(&params);
		return;
	}
	s->tx.have_mail = true;
	s->tx.sender = addr;
	s->tx.mail_params = params;
	smtpd_count(s, SMTPD_C_MAIL, true);
	smtpd_reply(s, "250 2.1.0 Ok");
}

/* cmd_rcpt_add: remember an accepted recipient and write it to the file. */
static bool cmd_rcpt_add(struct smtpd_session *s, const struct smtp_addr *addr,
			 const struct smtp_params *p)
{
	struct smtpd_transaction *tx = &s->tx;
	if (tx->qw == NULL && !smtpd_data_open(s))
		return false;
	if (tx->rcpt_count == tx->rcpt_alloc) {
		tx->rcpt_alloc = tx->rcpt_alloc ? tx->rcpt_alloc * 2 : 8;
		tx->rcpts = xreallocarray(tx->rcpts, tx->rcpt_alloc, sizeof(*tx->rcpts));
	}
	struct smtpd_rcpt *r = &tx->rcpts[tx->rcpt_count++];
	r->address = xstrdup(addr->external);
	r->orcpt = p->orcpt != NULL ? xstrdup(p->orcpt) : NULL;
	r->notify = p->notify;
	struct queue_rcpt qr = { .address = r->address, .orcpt = r->orcpt, .notify = r->notify };
	queue_writer_rcpt(tx->qw, &qr);
	return true;
}

static void cmd_rcpt(struct smtpd_session *s, char *arg)
{
	char *path = cmd_path_arg(arg, "TO:");
	const char *rest = NULL, *error = NULL;
	if (path == NULL) {
		smtpd_count(s, SMTPD_C_RCPT, false);
		smtpd_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (!s->tx.have_mail) {
		smtpd_count(s, SMTPD_C_RCPT, false);
		smtpd_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->tx.rcpt_count >= smtpd_config.recipient_limit) {
		smtpd_count(s, SMTPD_C_RCPT, false);
		smtpd_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	unsigned flags = cmd_addr_flags() | ADDR_POSTMASTER_OK;
	if (!s->tx.mail_params.smtputf8)
		flags &= ~(unsigned)ADDR_ALLOW_SMTPUTF8;
	struct smtp_addr addr;
	struct smtp_params params;
	smtp_params_init(&params);
	int r = addr_parse_path(path, strlen(path), flags, &addr, &rest, &error);
	if (r != ADDR_OK) {
		smtpd_count(s, SMTPD_C_RCPT, false);
		if (r == ADDR_ERR_8BIT)
			smtpd_reply(s, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
		else if (r == ADDR_ERR_SOURCE_ROUTE)
			smtpd_reply(s, "553 5.1.3 Error: source routes are not accepted");
		else
			smtpd_reply(s, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	struct str reply = STR_INIT;
	bool ok = false;
	if (smtp_params_parse_rcpt(rest, strlen(rest), cmd_ext(), &params, &error) != ADDR_OK) {
		smtpd_reply(s, "555 5.5.4 %s", error);
	} else if (smtpd_check_rcpt(s, &addr, &reply) != 0) {
		smtpd_log_reject(s, "RCPT", str_c(&reply), addr.external);
		smtpd_reply(s, "%s", str_c(&reply));
	} else if (!cmd_rcpt_add(s, &addr, &params)) {
		smtpd_reply(s, "451 4.3.0 Error: queue file write error");
	} else {
		ok = true;
		smtpd_reply(s, "250 2.1.5 Ok");
	}
	smtpd_count(s, SMTPD_C_RCPT, ok);
	str_deinit(&reply);
	smtp_addr_deinit(&addr);
	smtp_params_deinit(&params);
}

static void cmd_data(struct smtpd_session *s, char *arg)
{
	const char *refuse = NULL;
	if (!cmd_arg_empty(arg))
		refuse = "501 5.5.4 Syntax: DATA";
	else if (!s->tx.have_mail)
		refuse = "503 5.5.1 Error: need RCPT command";
	else if (s->tx.bdat_used)
		refuse = "503 5.5.1 Error: DATA after BDAT";
	else if (s->tx.rcpt_count == 0)
		refuse = "554 5.5.1 Error: no valid recipients";
	if (refuse != NULL) {
		smtpd_count(s, SMTPD_C_DATA, false);
		smtpd_reply(s, "%s", refuse);
		return;
	}
	smtpd_data_begin(s);
	smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_bdat(struct smtpd_session *s, char *arg)
{
	smtpd_bdat_begin(s, arg != NULL ? arg : "");
}

static void cmd_rset(struct smtpd_session *s, char *arg)
{
	if (!cmd_arg_empty(arg)) {
		smtpd_count(s, SMTPD_C_RSET, false);
		smtpd_reply(s, "501 5.5.4 Syntax: RSET");
		return;
	}
	smtpd_transaction_reset(s);
	smtpd_count(s, SMTPD_C_RSET, true);
	smtpd_reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct smtpd_session *s, char *arg)
{
	smtpd_count(s, SMTPD_C_NOOP, true);
	smtpd_reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct smtpd_session *s, char *arg)
{
	smtpd_count(s, SMTPD_C_QUIT, true);
	smtpd_reply(s, "221 2.0.0 Bye");
	smtpd_session_close(s);
}

/* cmd_vrfy: never confirms or denies a user (no address harvesting). */
static void cmd_vrfy(struct smtpd_session *s, char *arg)
{
	if (smtpd_config.disable_vrfy) {
		smtpd_count(s, SMTPD_C_VRFY, false);
		smtpd_reply(s, "502 5.5.1 VRFY command is disabled");
	} else if (cmd_arg_empty(arg)) {
		smtpd_count(s, SMTPD_C_VRFY, false);
		smtpd_reply(s, "501 5.5.4 Syntax: VRFY address");
	} else {
		smtpd_count(s, SMTPD_C_VRFY, true);
		smtpd_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
	}
}

static void cmd_etrn(struct smtpd_session *s, char *arg)
{
	smtpd_count(s, SMTPD_C_ETRN, false);
	smtpd_reply(s, "502 5.5.1 Error: command not implemented");
}

static void cmd_help(struct smtpd_session *s, char *arg)
{
	smtpd_count(s, SMTPD_C_HELP, true);
	smtpd_reply_multi(s, 214,
			  "2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY\n"
			  "2.0.0 STARTTLS HELP; see RFC 5321");
}

static void cmd_auth(struct smtpd_session *s, char *arg)
{
	smtpd_count(s, SMTPD_C_AUTH, false);
	smtpd_reply(s, "503 5.5.1 Error: authentication not enabled");
}

static void cmd_starttls(struct smtpd_session *s, char *arg)
{
	const char *error = NULL;
	if (!cmd_arg_empty(arg)) {
		smtpd_count(s, SMTPD_C_STARTTLS, false);
		smtpd_reply(s, "501 5.5.4 Syntax: STARTTLS");
	} else if (netconn_is_tls(s->conn)) {
		smtpd_count(s, SMTPD_C_STARTTLS, false);
		smtpd_reply(s, "554 5.5.1 Error: TLS already active");
	} else if (!cmd_tls_offered(s)) {
		smtpd_count(s, SMTPD_C_STARTTLS, false);
		smtpd_reply(s, "502 5.5.1 Error: command not implemented");
	} else {
		smtpd_count(s, SMTPD_C_STARTTLS, true);
		smtpd_reply(s, "220 2.0.0 Ready to start TLS");
		/* Anything the client pipelined after STARTTLS is discarded by
		 * netconn_starttls(): it was sent in clear. */
		s->state = SMTPD_STATE_TLS;
		if (netconn_starttls(s->conn, smtpd_config.tls, &error) < 0) {
			msg_warn("cannot start TLS for %s: %s", s->namaddr, error);
			smtpd_session_close(s);
		}
	}
}

static const struct smtpd_cmd smtpd_cmds[] = {
	{ "EHLO", cmd_ehlo, SMTPD_C_EHLO, false },
	{ "HELO", cmd_helo, SMTPD_C_HELO, false },
	{ "MAIL", cmd_mail, SMTPD_C_MAIL, false },
	{ "RCPT", cmd_rcpt, SMTPD_C_RCPT, false },
	{ "DATA", cmd_data, SMTPD_C_DATA, false },
	{ "BDAT", cmd_bdat, SMTPD_C_BDAT, false },
	{ "RSET", cmd_rset, SMTPD_C_RSET, true },
	{ "NOOP", cmd_noop, SMTPD_C_NOOP, true },
	{ "QUIT", cmd_quit, SMTPD_C_QUIT, false },
	{ "VRFY", cmd_vrfy, SMTPD_C_VRFY, true },
	{ "ETRN", cmd_etrn, SMTPD_C_ETRN, true },
	{ "HELP", cmd_help, SMTPD_C_HELP, true },
	{ "AUTH", cmd_auth, SMTPD_C_AUTH, false },
	{ "STARTTLS", cmd_starttls, SMTPD_C_STARTTLS, false },
};

/* cmd_non_smtp: an HTTP request or a mail header sent as a command means
 * the client is not speaking SMTP (or is smuggling); Postfix hangs up. */
static bool cmd_non_smtp(const char *verb, size_t verb_len)
{
	static const char *const forbidden[] = { "CONNECT", "GET", "POST", "PUT", "HEAD" };
	for (size_t i = 0; i < N_ELEMENTS(forbidden); i++) {
		if (strlen(forbidden[i]) == verb_len && strncasecmp(verb, forbidden[i], verb_len) == 0)
			return true;
	}
	return verb_len > 1 && verb[verb_len - 1] == ':';
}

/* cmd_rate_done: anvil's count of MAIL (or RCPT) commands from this
 * client in the time unit. Over the limit: Postfix's 450; otherwise the
 * command runs. Anvil unreachable: the command runs (best effort). */
static void cmd_rate_done(void *ctx, int status, unsigned count, unsigned rate)
{
	struct smtpd_session *s = ctx;
	char *line = s->suspended_line;
	bool mail = str_prefix_icase(line, "MAIL");
	unsigned limit = mail ? smtpd_config.message_rate_limit : smtpd_config.rcpt_rate_limit;
	s->rate_req = NULL;
	s->suspended_line = NULL;
	if (status == 0 && rate > limit) {
		msg_warn("%s rate limit exceeded: %u from %s for service %s",
			 mail ? "Message delivery request" : "Recipient address", rate, s->namaddr,
			 multi_server_service_name());
		smtpd_count(s, mail ? SMTPD_C_MAIL : SMTPD_C_RCPT, false);
		smtpd_reply(s, "450 4.7.1 Error: too %s from %s", mail ? "much mail" : "many recipients",
			    s->client_addr);
	} else {
		s->rate_checked = true;
		smtpd_cmd_dispatch(s, line, strlen(line));
		s->rate_checked = false;
	}
	free(line);
	smtpd_session_resume(s);
}

/* cmd_rate_suspend: MAIL and RCPT wait for anvil when their rate is
 * limited (smtpd_client_message_rate_limit, ..._recipient_rate_limit);
 * true when the command was suspended. */
static bool cmd_rate_suspend(struct smtpd_session *s, const struct smtpd_cmd *c, const char *line)
{
	bool mail = c->counter == SMTPD_C_MAIL;
	unsigned limit = mail ? smtpd_config.message_rate_limit : smtpd_config.rcpt_rate_limit;
	if ((c->counter != SMTPD_C_MAIL && c->counter != SMTPD_C_RCPT) || limit == 0 ||
	    s->rate_checked || s->limits_exempt || smtpd_config.anvil == NULL)
		return false;
	s->suspended_line = xstrdup(line);
	netconn_pause_input(s->conn, true);
	const char *svc = multi_server_service_name();
	s->rate_req = mail ? anvil_message(smtpd_config.anvil, svc, s->client_addr, cmd_rate_done, s)
			   : anvil_rcpt(smtpd_config.anvil, svc, s->client_addr, cmd_rate_done, s);
	return true;
}

void smtpd_cmd_dispatch(struct smtpd_session *s, char *line, size_t len)
{
	size_t verb_len = strcspn(line, " ");
	char *arg = line[verb_len] == ' ' ? line + verb_len + 1 : NULL;
	for (size_t i = 0; i < N_ELEMENTS(smtpd_cmds); i++) {
		const struct smtpd_cmd *c = &smtpd_cmds[i];
		if (strlen(c->name) != verb_len || strncasecmp(line, c->name, verb_len) != 0)
			continue;
		s->last_command = c->name;
		if (c->junk && ++s->junk_count > smtpd_config.junk_command_limit)
			smtpd_count_error(s);
		if (s->state == SMTPD_STATE_CLOSING || cmd_rate_suspend(s, c, line))
			return;
		c->fn(s, arg);
		return;
	}
	s->last_command = "UNKNOWN";
	smtpd_count(s, SMTPD_C_UNKNOWN, false);
	if (cmd_non_smtp(line, verb_len)) {
		msg_warn("non-SMTP command from %s: %s", s->namaddr, smtpd_log_escape(line));
		smtpd_reply(s, "521 5.5.1 Protocol error");
		smtpd_session_close(s);
		return;
	}
	smtpd_reply(s, "502 5.5.2 Error: command not recognized");
}
