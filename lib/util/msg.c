/* msg.c: logging in Postfix's line format; see msg.h. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "util/msg.h"

/* A log line is capped: client text is escaped and capped before it gets
 * here, so only a bug makes a longer one, and it is cut, not split. */
#define MSG_LINE_MAX 4096
/* A log socket that went away is tried again at most this often. */
#define MSG_SYSLOG_RETRY_MS 1000

int msg_verbose;

static char msg_program_name[64] = "petrel";
static char msg_syslog_name[64] = "postfix";
static enum msg_target msg_target = MSG_TARGET_STDERR;
static int msg_file_fd = -1;
static bool msg_copy_stderr;
static int msg_syslog_facility = LOG_MAIL;
/* The syslog client (msg.h): socket path, socket, reconnect clock, and
 * the lines dropped since the last warning. */
static char msg_syslog_path[256] = _PATH_LOG; /* longer than sun_path: refused */
static int msg_syslog_fd = -1;
static bool msg_syslog_tried;
static long long msg_syslog_last_try;
static unsigned long msg_syslog_dropped_count;
static void (*msg_cleanup)(void);

static void copy_name(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src);
}

void msg_init(const char *program)
{
	const char *slash = strrchr(program, '/');
	copy_name(msg_program_name, sizeof(msg_program_name), slash ? slash + 1 : program);
}

void msg_set_syslog_name(const char *name)
{
	copy_name(msg_syslog_name, sizeof(msg_syslog_name), name);
}

const char *msg_program(void)
{
	return msg_program_name;
}

void msg_set_target(enum msg_target target)
{
	msg_target = target;
}

bool msg_set_file(const char *path, const char **error_r)
{
	static char error[256];
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(error, sizeof(error), "open(%s) failed: %s", path, strerror(errno));
		*error_r = error;
		return false;
	}
	if (msg_file_fd >= 0)
		close(msg_file_fd);
	msg_file_fd = fd;
	msg_target = MSG_TARGET_FILE;
	return true;
}

void msg_also_stderr(bool on)
{
	msg_copy_stderr = on;
}

void msg_set_cleanup(void (*cleanup)(void))
{
	msg_cleanup = cleanup;
}

/* write_all: one line, retried on EINTR; a log failure is not reported
 * (there is nowhere to report it). */
static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* Lines a daemon could not write to a stderr that is a pipe or terminal
 * nobody reads (./dev up | less, paused), since the last warning. */
static unsigned long msg_fd_dropped_count;

/* msg_fd_ready: a daemon never waits for its log: the descriptor must
 * take a line now (a regular file always does; a pipe has PIPE_BUF free). */
static bool msg_fd_ready(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int n = poll(&p, 1, 0);
	return n != 0; /* an error: let write() report it */
}

/* msg_fd_line: one line to a daemon's log descriptor, or dropped and
 * counted; after drops a warning with the count goes first. line is
 * prefix_len bytes of prefix and then text ending in '\n'. */
static void msg_fd_line(int fd, const char *line, size_t len, size_t prefix_len)
{
	if (msg_fd_dropped_count > 0 && msg_fd_ready(fd)) {
		char warning[MSG_LINE_MAX];
		int m = snprintf(warning, sizeof(warning),
				 "%.*swarning: %lu log lines were dropped: the log writer was slow "
				 "or unavailable\n", (int)prefix_len, line, msg_fd_dropped_count);
		if (m > 0 && (size_t)m < sizeof(warning)) {
			write_all(fd, warning, (size_t)m);
			msg_fd_dropped_count = 0;
		}
	}
	if (!msg_fd_ready(fd)) {
		msg_fd_dropped_count++;
		return;
	}
	if (len > PIPE_BUF) {
		/* Cut (a bug made it this long): a pipe takes PIPE_BUF at once. */
		write_all(fd, line, PIPE_BUF - 1);
		write_all(fd, "\n", 1);
	} else
		write_all(fd, line, len);
}

/* msg_stamp: syslog's "Nov 22 21:32:00 " for now; its length. */
static size_t msg_stamp(char *buf, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	return strftime(buf, size, "%b %e %H:%M:%S ", &tm);
}

/* syslog_prefix: "Nov 22 21:32:00 host postfix/smtpd[123]: ". */
static size_t syslog_prefix(char *buf, size_t size)
{
	char host[256];
	size_t n = msg_stamp(buf, size);
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	char *dot = strchr(host, '.');
	if (dot != NULL)
		*dot = '\0';
	int m = snprintf(buf + n, size - n, "%s %s/%s[%ld]: ", host, msg_syslog_name,
			 msg_program_name, (long)getpid());
	return m > 0 && (size_t)m < size - n ? n + (size_t)m : n;
}

static int syslog_priority(const char *level)
{
	if (level == NULL)
		return LOG_INFO;
	if (strcmp(level, "warning") == 0)
		return LOG_WARNING;
	if (strcmp(level, "error") == 0)
		return LOG_ERR;
	if (strcmp(level, "fatal") == 0)
		return LOG_CRIT;
	if (strcmp(level, "panic") == 0)
		return LOG_ALERT;
	return LOG_DEBUG;
}

/* msg_syslog_close: forget the socket; the next line may reconnect. */
static void msg_syslog_close(void)
{
	if (msg_syslog_fd >= 0)
		close(msg_syslog_fd);
	msg_syslog_fd = -1;
}

/* msg_syslog_may_retry: true at most once per MSG_SYSLOG_RETRY_MS, so a
 * writer that stays away (or a chroot without the socket) costs one
 * connect() a second, not one per line. */
static bool msg_syslog_may_retry(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long long ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	if (msg_syslog_tried && ms - msg_syslog_last_try < MSG_SYSLOG_RETRY_MS)
		return false;
	msg_syslog_tried = true;
	msg_syslog_last_try = ms;
	return true;
}

/* msg_syslog_connect: a non-blocking datagram socket connected to the log
 * socket; false (and no socket) when the writer is not there. */
static bool msg_syslog_connect(void)
{
	struct sockaddr_un sun;
	msg_syslog_close();
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(msg_syslog_path) >= sizeof(sun.sun_path))
		return false;
	memcpy(sun.sun_path, msg_syslog_path, strlen(msg_syslog_path) + 1);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return false;
	}
	msg_syslog_fd = fd;
	return true;
}

/* msg_syslog_format: "<PRI>Nov 22 21:32:00 postfix/smtpd[123]: text", as
 * glibc's syslog() writes to a local socket (no host name, no newline). */
static size_t msg_syslog_format(char *buf, size_t size, int priority, const char *level,
				const char *text)
{
	int m = snprintf(buf, size, "<%d>", msg_syslog_facility | priority);
	size_t n = m > 0 ? (size_t)m : 0;
	n += msg_stamp(buf + n, size - n);
	m = snprintf(buf + n, size - n, "%s/%s[%ld]: %s%s%s", msg_syslog_name, msg_program_name,
		     (long)getpid(), level ? level : "", level ? ": " : "", text);
	if (m < 0)
		return n;
	return (size_t)m < size - n ? n + (size_t)m : size - 1;
}

/* msg_syslog_send: one datagram, never blocking. Returns 1 when sent, 0
 * when the writer is slow (or another error), -1 when it is gone. */
static int msg_syslog_send(const char *buf, size_t len)
{
	if (msg_syslog_fd < 0)
		return -1;
	if (send(msg_syslog_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
		return 1;
	switch (errno) {
	case ECONNREFUSED:
	case ECONNRESET:
	case ENOTCONN:
	case ENOENT:
	case EPIPE:
	case EDESTADDRREQ:
		msg_syslog_close();
		return -1;
	default:
		/* EAGAIN, EWOULDBLOCK, ENOBUFS: the writer is behind. */
		return 0;
	}
}

/* msg_syslog_deliver: send one datagram, reconnecting once (rate-limited)
 * when the writer went away; true when it went out. */
static bool msg_syslog_deliver(const char *buf, size_t len)
{
	int ret = msg_syslog_send(buf, len);
	if (ret < 0 && msg_syslog_may_retry() && msg_syslog_connect())
		ret = msg_syslog_send(buf, len);
	return ret > 0;
}

/* msg_emit_syslog: one line to the log socket, or dropped and counted; the
 * first line that goes out after drops is preceded by a warning with the
 * count. */
static void msg_emit_syslog(const char *level, const char *text)
{
	char buf[MSG_LINE_MAX + 512];
	size_t len;

	if (msg_syslog_dropped_count > 0) {
		char warning[128];
		snprintf(warning, sizeof(warning),
			 "%lu log lines were dropped: the log writer was slow or unavailable",
			 msg_syslog_dropped_count);
		len = msg_syslog_format(buf, sizeof(buf), LOG_WARNING, "warning", warning);
		if (!msg_syslog_deliver(buf, len)) {
			msg_syslog_dropped_count++;
			return;
		}
		msg_syslog_dropped_count = 0;
	}
	len = msg_syslog_format(buf, sizeof(buf), syslog_priority(level), level, text);
	if (!msg_syslog_deliver(buf, len))
		msg_syslog_dropped_count++;
}

void msg_set_syslog(int facility)
{
	msg_syslog_facility = facility;
	msg_syslog_connect();
	/* This attempt counts for the once-a-second limit. */
	msg_syslog_tried = false;
	msg_syslog_may_retry();
	msg_target = MSG_TARGET_SYSLOG;
}

void msg_set_syslog_path(const char *path)
{
	copy_name(msg_syslog_path, sizeof(msg_syslog_path), path);
	if (msg_syslog_fd >= 0)
		msg_syslog_connect();
}

unsigned long msg_syslog_dropped(void)
{
	return msg_syslog_dropped_count;
}

static void msg_emit(const char *level, const char *fmt, va_list ap)
{
	int saved_errno = errno;
	char text[MSG_LINE_MAX];
	char line[MSG_LINE_MAX + 512];

	errno = saved_errno;
	vsnprintf(text, sizeof(text), fmt, ap);
	if (msg_target == MSG_TARGET_SYSLOG) {
		msg_emit_syslog(level, text);
	} else {
		size_t n;
		if (msg_target == MSG_TARGET_TTY)
			n = (size_t)snprintf(line, sizeof(line), "%s: ", msg_program_name);
		else
			n = syslog_prefix(line, sizeof(line));
		int m = snprintf(line + n, sizeof(line) - n, "%s%s%s\n", level ? level : "",
				 level ? ": " : "", text);
		size_t len = m > 0 && (size_t)m < sizeof(line) - n ? n + (size_t)m : sizeof(line) - 1;
		line[len - 1] = '\n';
		int fd = msg_target == MSG_TARGET_FILE && msg_file_fd >= 0 ? msg_file_fd : STDERR_FILENO;
		if (msg_target == MSG_TARGET_TTY)
			write_all(fd, line, len); /* a command waits for its terminal */
		else
			msg_fd_line(fd, line, len, n);
	}
	if (msg_copy_stderr && msg_target != MSG_TARGET_STDERR && msg_target != MSG_TARGET_TTY) {
		int m = snprintf(line, sizeof(line), "%s: %s%s%s\n", msg_program_name,
				 level ? level : "", level ? ": " : "", text);
		if (m > 0)
			write_all(STDERR_FILENO, line, (size_t)m < sizeof(line) ? (size_t)m : sizeof(line) - 1);
	}
	errno = saved_errno;
}

#define MSG_FUNCTION(name, level)                                                                  \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		msg_emit(level, fmt, ap);                                                          \
		va_end(ap);                                                                        \
	}

MSG_FUNCTION(msg_info, NULL)
MSG_FUNCTION(msg_warn, "warning")
MSG_FUNCTION(msg_error, "error")

void msg_debug(const char *fmt, ...)
{
	if (msg_verbose <= 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	msg_emit(NULL, fmt, ap);
	va_end(ap);
}

void msg_fatal(const char *fmt, ...)
{
	static int entered;
	va_list ap;
	va_start(ap, fmt);
	msg_emit("fatal", fmt, ap);
	va_end(ap);
	if (entered++ == 0 && msg_cleanup != NULL)
		msg_cleanup();
	exit(1);
}

void msg_panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	msg_emit("panic", fmt, ap);
	va_end(ap);
	abort();
}
