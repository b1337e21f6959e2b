/* test-msg-syslog.c: unit tests for msg.c's own syslog client: the
 * datagram format, drops counted (never blocking) when the log writer is
 * slow or gone, the "were dropped" warning, and the once-a-second
 * reconnect. The log writer is a datagram socket the test binds in a
 * temporary directory. Also the stderr target on a pipe nobody reads. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "util/msg.h"

static char test_dir[64];
static char test_path[96];

/* now_ms: monotonic milliseconds. */
static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* sleep_ms: pause the test (never the code under test). */
static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* writer_bind: the fake log writer: a non-blocking datagram socket bound
 * at test_path (replacing an old socket file). */
static int writer_bind(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", test_path);
	unlink(test_path);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		tap_diag("bind(%s) failed: %s", test_path, strerror(errno));
		exit(1);
	}
	return fd;
}

/* writer_recv: the next datagram as a string; "" when there is none. */
static const char *writer_recv(int fd)
{
	static char buf[8192];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* writer_fill: fill the writer's receive queue from another socket until
 * the kernel refuses more; returns how many datagrams it took. */
static int writer_fill(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", test_path);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int n = 0;
	while (n < 100000 && sendto(fd, "filler", 6, MSG_DONTWAIT, (struct sockaddr *)&sun,
				    sizeof(sun)) == 6)
		n++;
	close(fd);
	return n;
}

/* writer_drain: read and discard the filler datagrams; returns the count
 * of other (unexpected) datagrams. */
static int writer_drain(int fd)
{
	int other = 0;
	const char *line;
	while (*(line = writer_recv(fd)) != '\0')
		if (strcmp(line, "filler") != 0)
			other++;
	return other;
}

/* check_line: "<PRI>Mmm dd hh:mm:ss " followed by want_tail exactly. */
static void check_line(const char *got, int pri, const char *want_tail, const char *what)
{
	char head[16];
	snprintf(head, sizeof(head), "<%d>", pri);
	size_t hlen = strlen(head);
	bool ok = strncmp(got, head, hlen) == 0 && strlen(got) > hlen + 16;
	if (ok) {
		const char *ts = got + hlen; /* "Nov 22 21:32:00 " */
		ok = ts[3] == ' ' && ts[6] == ' ' && ts[9] == ':' && ts[12] == ':' &&
		     ts[15] == ' ' && strcmp(ts + 16, want_tail) == 0;
	}
	if (!tap_ok(ok, "%s", what))
		tap_diag("got \"%s\", want \"%s<timestamp> %s\"", got, head, want_tail);
}

static const struct format_case {
	void (*log)(const char *fmt, ...);
	int pri;
	const char *text;
	const char *tail;
} format_cases[] = {
	{ msg_info, LOG_MAIL | LOG_INFO, "connect from unknown[127.0.0.1]",
	  "connect from unknown[127.0.0.1]" },
	{ msg_warn, LOG_MAIL | LOG_WARNING, "hostname does not resolve",
	  "warning: hostname does not resolve" },
	{ msg_error, LOG_MAIL | LOG_ERR, "open(x) failed", "error: open(x) failed" },
};

/* test_format: each severity, as glibc's syslog() would have sent it. */
static void test_format(int fd)
{
	for (size_t i = 0; i < sizeof(format_cases) / sizeof(format_cases[0]); i++) {
		const struct format_case *c = &format_cases[i];
		char tail[256];
		snprintf(tail, sizeof(tail), "postfix/smtpd[%ld]: %s", (long)getpid(), c->tail);
		c->log("%s", c->text);
		check_line(writer_recv(fd), c->pri, tail, c->text);
	}
	msg_set_syslog_name("postfix-out");
	msg_info("renamed");
	char tail[128];
	snprintf(tail, sizeof(tail), "postfix-out/smtpd[%ld]: renamed", (long)getpid());
	check_line(writer_recv(fd), LOG_MAIL | LOG_INFO, tail, "syslog_name applies at once");
	msg_set_syslog_name("postfix");
}

/* test_slow_writer: a full queue drops and counts, at once; after a drain
 * the warning with the count comes first. */
static void test_slow_writer(int fd)
{
	int filled = writer_fill();
	tap_ok(filled > 0, "filled the writer's queue with %d datagrams", filled);
	long long start = now_ms();
	for (int i = 0; i < 1000; i++)
		msg_info("line %d while the writer is slow", i);
	long long took = now_ms() - start;
	tap_ok(took < 2000, "1000 lines to a full queue took %lld ms (never blocks)", took);
	tap_is_int((long long)msg_syslog_dropped(), 1000, "1000 lines dropped and counted");
	tap_is_int(writer_drain(fd), 0, "only the filler was queued");
	msg_info("writer caught up");
	char tail[256];
	snprintf(tail, sizeof(tail),
		 "postfix/smtpd[%ld]: warning: 1000 log lines were dropped: "
		 "the log writer was slow or unavailable",
		 (long)getpid());
	check_line(writer_recv(fd), LOG_MAIL | LOG_WARNING, tail, "the warning comes first");
	snprintf(tail, sizeof(tail), "postfix/smtpd[%ld]: writer caught up", (long)getpid());
	check_line(writer_recv(fd), LOG_MAIL | LOG_INFO, tail, "then the line");
	tap_is_int((long long)msg_syslog_dropped(), 0, "count reset after the warning");
}

/* test_dead_writer: a closed writer drops and counts; a new writer at the
 * same path is reached, but not within a second of the last attempt. */
static int test_dead_writer(int fd)
{
	close(fd);
	long long start = now_ms();
	msg_info("writer closed");
	unlink(test_path);
	msg_info("writer gone");
	tap_is_int((long long)msg_syslog_dropped(), 2, "two lines dropped while the writer is gone");
	sleep_ms(1100);
	msg_info("dead, tries once");
	tap_ok(now_ms() - start < 5000, "no blocking while the writer is dead");
	fd = writer_bind();
	msg_info("too soon");
	tap_is_str(writer_recv(fd), "", "no reconnect within a second of the last attempt");
	tap_is_int((long long)msg_syslog_dropped(), 4, "four lines dropped");
	sleep_ms(1100);
	msg_info("writer back");
	char tail[256];
	snprintf(tail, sizeof(tail),
		 "postfix/smtpd[%ld]: warning: 4 log lines were dropped: "
		 "the log writer was slow or unavailable",
		 (long)getpid());
	check_line(writer_recv(fd), LOG_MAIL | LOG_WARNING, tail, "reconnected: warning first");
	snprintf(tail, sizeof(tail), "postfix/smtpd[%ld]: writer back", (long)getpid());
	check_line(writer_recv(fd), LOG_MAIL | LOG_INFO, tail, "then the line");
	tap_is_int((long long)msg_syslog_dropped(), 0, "count reset");
	return fd;
}

/* test_no_writer: msg_set_syslog with no socket at all (a chroot without
 * /dev/log) drops quietly. */
static void test_no_writer(void)
{
	char path[160];
	snprintf(path, sizeof(path), "%s/missing", test_dir);
	msg_set_syslog_path(path);
	msg_set_syslog(LOG_MAIL);
	long long start = now_ms();
	for (int i = 0; i < 100; i++)
		msg_warn("nowhere %d", i);
	tap_ok(now_ms() - start < 1000, "no socket: 100 lines return at once");
	tap_is_int((long long)msg_syslog_dropped(), 100, "and are counted");
}

/* test_stderr_pipe: stderr is a pipe that nobody reads: lines are
 * dropped (an alarm catches a hang), then the warning and the line. */
static void test_stderr_pipe(void)
{
	int p[2];
	if (pipe(p) < 0)
		return;
	int saved = dup(STDERR_FILENO);
	dup2(p[1], STDERR_FILENO);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	msg_set_target(MSG_TARGET_STDERR);
	alarm(10);
	long long t0 = now_ms();
	for (int i = 0; i < 20000; i++)
		msg_info("line %d of a log that nobody reads, long enough to fill a pipe soon", i);
	long long spent = now_ms() - t0;
	alarm(0);
	char buf[65536];
	while (read(p[0], buf, sizeof(buf)) > 0)
		;
	msg_info("after the drain");
	ssize_t n = read(p[0], buf, sizeof(buf) - 1);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[0]);
	close(p[1]);
	buf[n > 0 ? n : 0] = '\0';
	tap_ok(spent < 5000, "20000 lines to a full pipe return (%lld ms)", spent);
	char *nl = strchr(buf, '\n');
	tap_ok(nl != NULL && strstr(buf, "warning: ") != NULL && strstr(buf, "warning: ") < nl &&
	       strstr(buf, " log lines were dropped: the log writer was slow or unavailable") != NULL,
	       "the warning comes first: %.*s", nl != NULL ? (int)(nl - buf) : 0, buf);
	tap_ok(nl != NULL && strstr(nl, "after the drain\n") != NULL, "then the line");
}

int main(void)
{
	snprintf(test_dir, sizeof(test_dir), "/tmp/petrel-msg-XXXXXX");
	if (mkdtemp(test_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(test_path, sizeof(test_path), "%s/log", test_dir);
	int fd = writer_bind();
	msg_init("/usr/libexec/petrel/smtpd");
	msg_set_syslog_name("postfix");
	msg_set_syslog_path(test_path);
	msg_set_syslog(LOG_MAIL);
	test_format(fd);
	test_slow_writer(fd);
	fd = test_dead_writer(fd);
	close(fd);
	unlink(test_path);
	test_no_writer();
	test_stderr_pipe();
	msg_set_target(MSG_TARGET_STDERR);
	rmdir(test_dir);
	return tap_done();
}
