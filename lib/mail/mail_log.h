/* mail_log.h: where a Petrel program's log lines go, from main.cf.
 *
 * maillog_file when set; else stderr when the program runs in the
 * foreground (master -d and its children); else syslog with syslog_name and
 * syslog_facility, connected at once so that it works inside a chroot. */
#ifndef PETREL_MAIL_LOG_H
#define PETREL_MAIL_LOG_H

#include <stdbool.h>

/* mail_log_init: apply the logging parameters; fatal when maillog_file
 * cannot be opened. Call after config_load() and msg_init(). */
void mail_log_init(bool foreground);

#endif
