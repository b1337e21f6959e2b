/* mail_log.c: logging set-up from main.cf; see mail_log.h. */
#include <config.h> /* autoconf; "config.h" here would be mail/config.h */

#include <string.h>
#include <syslog.h>

#include "mail/config.h"
#include "mail/mail_log.h"
#include "util/msg.h"

static const struct {
	const char *name;
	int facility;
} mail_log_facilities[] = {
	{ "mail", LOG_MAIL },	  { "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "auth", LOG_AUTH },	  { "authpriv", LOG_AUTHPRIV }, { "cron", LOG_CRON },
	{ "ftp", LOG_FTP },	  { "kern", LOG_KERN },	  { "lpr", LOG_LPR },
	{ "news", LOG_NEWS },	  { "syslog", LOG_SYSLOG }, { "uucp", LOG_UUCP },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
	{ "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

/* mail_log_facility: syslog_facility by name; fatal when unknown. */
static int mail_log_facility(const char *name)
{
	for (size_t i = 0; i < N_ELEMENTS(mail_log_facilities); i++) {
		if (strcmp(mail_log_facilities[i].name, name) == 0)
			return mail_log_facilities[i].facility;
	}
	msg_fatal("syslog_facility: unknown facility \"%s\"", name);
}

void mail_log_init(bool foreground)
{
	const char *error = NULL;
	const char *file = config_str("maillog_file");
	msg_set_syslog_name(config_str("syslog_name"));
	if (*file != '\0') {
		if (!msg_set_file(file, &error))
			msg_fatal("%s", error);
	} else if (foreground) {
		msg_set_target(MSG_TARGET_STDERR);
	} else {
		msg_set_syslog(mail_log_facility(config_str("syslog_facility")));
	}
}
