/* msg.h: the five severities, in Postfix's log line format.
 *
 * Every line goes out as one write: to syslog (facility mail), to a file
 * opened for append, or to stderr. File and stderr lines carry the syslog
 * prefix ("Nov 22 21:32:00 host postfix/smtpd[123]: "); the "tty" target is
 * for commands and prints "postqueue: fatal: text" like Postfix's tools.
 *
 * info: normal events. warning: something went wrong and was recovered.
 * error: an operation failed. fatal: the environment or configuration is
 * broken; run the cleanup hook and exit 1. panic: a broken invariant; abort. */
#ifndef PETREL_MSG_H
#define PETREL_MSG_H

#include <stdbool.h>

#include "util/attr.h"

enum msg_target {
	MSG_TARGET_STDERR,
	MSG_TARGET_TTY,
	MSG_TARGET_SYSLOG,
	MSG_TARGET_FILE,
};

extern int msg_verbose;

/* msg_init: set the program name ("smtpd"); target stays stderr. */
void msg_init(const char *program);
/* msg_set_syslog_name: the prefix before "/program" (Postfix's syslog_name). */
void msg_set_syslog_name(const char *name);
const char *msg_program(void);
void msg_set_target(enum msg_target target);
/* msg_set_syslog: log to syslog with this facility, connecting at once
 * (so that logging keeps working after a chroot). */
void msg_set_syslog(int facility);
/* msg_set_file: log to path (appending); false and *error_r on failure. */
bool msg_set_file(const char *path, const char **error_r);
/* msg_also_stderr: copy lines to stderr too (commands that also log). */
void msg_also_stderr(bool on);
/* msg_set_cleanup: called once by msg_fatal before exit. */
void msg_set_cleanup(void (*cleanup)(void));

void msg_info(const char *fmt, ...) ATTR_FORMAT(1, 2);
void msg_warn(const char *fmt, ...) ATTR_FORMAT(1, 2);
void msg_error(const char *fmt, ...) ATTR_FORMAT(1, 2);
void msg_fatal(const char *fmt, ...) ATTR_FORMAT(1, 2) ATTR_NORETURN;
void msg_panic(const char *fmt, ...) ATTR_FORMAT(1, 2) ATTR_NORETURN;
/* msg_debug: logged only when msg_verbose > 0. */
void msg_debug(const char *fmt, ...) ATTR_FORMAT(1, 2);

#endif
