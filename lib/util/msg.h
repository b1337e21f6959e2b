/* msg.h: the five severities, in Postfix's log line format.
 *
 * Every line goes out as one write: to syslog (facility mail), to a file
 * opened for append, or to stderr. File and stderr lines carry the syslog
 * prefix ("Nov 22 21:32:00 host postfix/smtpd[123]: "); the "tty" target is
 * for commands and prints "postqueue: fatal: text" like Postfix's tools.
 *
 * Syslog is Petrel's own client, not glibc's syslog(): a non-blocking
 * datagram socket connected to /dev/log when msg_set_syslog() is called
 * (before any chroot), sending what glibc sends ("<PRI>Nov 22 21:32:00
 * postfix/smtpd[123]: text"), so syslogd and the tools that read its files
 * see the same lines. Logging never blocks: when the writer is slow (its
 * queue is full) a line is dropped and counted; when it is gone (stopped,
 * restarted) the socket is closed and connected again at most once a
 * second (after a chroot that may never work: lines are then dropped and
 * counted, quietly). The first line that goes out after drops is preceded
 * by "warning: N log lines were dropped: the log writer was slow or
 * unavailable". The file and stderr targets of a daemon do the same when
 * their descriptor would block (a pipe or terminal nobody reads, as with
 * "./dev up | less" paused): a line is written only when poll() says it
 * fits now, else dropped and counted, and the next line that fits is
 * preceded by the same warning. The "tty" target of commands blocks.
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
/* msg_set_syslog_path: the log socket (default _PATH_LOG, "/dev/log"), for
 * tests and for admins whose syslog socket is elsewhere; an open socket is
 * connected again to the new path. */
void msg_set_syslog_path(const char *path);
/* msg_syslog_dropped: syslog lines dropped since the last "were dropped"
 * warning went out. */
unsigned long msg_syslog_dropped(void);
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
