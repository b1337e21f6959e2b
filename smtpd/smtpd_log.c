/* smtpd_log.c: smtpd's log lines, in Postfix's exact shapes, which
 * pflogsumm and fail2ban's postfix filter parse:
 *   NOQUEUE: reject: RCPT from name[addr]: 554 5.7.1 <a@b>: Relay access
 *     denied; from=<s> to=<a@b> proto=ESMTP helo=<h>
 *   disconnect from name[addr] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4
 * Client-supplied text is escaped and capped before it is logged. */
#include <config.h>

#include <string.h>

#include "mail/queue.h"
#include "smtpd/smtpd.h"
#include "util/msg.h"

#define LOG_CLIENT_TEXT_MAX 256

const char *smtpd_log_escape(const char *text)
{
	static struct str buf;
	str_clear(&buf);
	str_escape_log(&buf, text, strlen(text), LOG_CLIENT_TEXT_MAX);
	return str_c(&buf);
}

void smtpd_log_reject(struct smtpd_session *s, const char *stage, const char *reply,
		      const char *rcpt)
{
	struct str line = STR_INIT;
	const char *id = s->tx.qw != NULL ? queue_writer_id(s->tx.qw) : "NOQUEUE";
	str_printf(&line, "%s: reject: %s from %s: %s; from=<", id, stage, s->namaddr, reply);
	if (s->tx.have_mail)
		str_escape_log(&line, s->tx.sender.external, strlen(s->tx.sender.external),
			       LOG_CLIENT_TEXT_MAX);
	str_append(&line, ">");
	if (rcpt != NULL) {
		str_append(&line, " to=<");
		str_escape_log(&line, rcpt, strlen(rcpt), LOG_CLIENT_TEXT_MAX);
		str_append(&line, ">");
	}
	str_printf(&line, " proto=%s", s->esmtp ? "ESMTP" : "SMTP");
	if (s->helo_name != NULL) {
		str_append(&line, " helo=<");
		str_escape_log(&line, s->helo_name, strlen(s->helo_name), LOG_CLIENT_TEXT_MAX);
		str_append(&line, ">");
	}
	msg_info("%s", str_c(&line));
	str_deinit(&line);
}

static const char *const counter_names[SMTPD_C_COUNT] = {
	[SMTPD_C_HELO] = "helo",   [SMTPD_C_EHLO] = "ehlo", [SMTPD_C_STARTTLS] = "starttls",
	[SMTPD_C_AUTH] = "auth",   [SMTPD_C_MAIL] = "mail", [SMTPD_C_RCPT] = "rcpt",
	[SMTPD_C_DATA] = "data",   [SMTPD_C_BDAT] = "bdat", [SMTPD_C_RSET] = "rset",
	[SMTPD_C_NOOP] = "noop",   [SMTPD_C_VRFY] = "vrfy", [SMTPD_C_ETRN] = "etrn",
	[SMTPD_C_QUIT] = "quit",   [SMTPD_C_HELP] = "help", [SMTPD_C_UNKNOWN] = "unknown",
};

static void log_counter(struct str *line, const char *name, unsigned ok, unsigned all)
{
	if (ok == all)
		str_printf(line, " %s=%u", name, all);
	else
		str_printf(line, " %s=%u/%u", name, ok, all);
}

void smtpd_log_disconnect(struct smtpd_session *s)
{
	struct str line = STR_INIT;
	unsigned ok = 0, all = 0;
	str_printf(&line, "disconnect from %s", s->namaddr);
	for (int c = 0; c < SMTPD_C_COUNT; c++) {
		if (s->counts_all[c] == 0)
			continue;
		log_counter(&line, counter_names[c], s->counts_ok[c], s->counts_all[c]);
		ok += s->counts_ok[c];
		all += s->counts_all[c];
	}
	log_counter(&line, "commands", ok, all);
	msg_info("%s", str_c(&line));
	str_deinit(&line);
}
