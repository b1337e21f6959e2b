/* echo-daemon.c: a multi_server service for the master's end-to-end tests.
 *
 * SYNOPSIS
 *	echo-daemon (started by master; master.cf: ... echo-daemon [param])
 *
 * DESCRIPTION
 *	Each connection first gets one line
 *	    "echo-daemon pid=PID PARAM=VALUE\r\n"
 *	with PARAM (default message_size_limit) read through config_str(), so
 *	a test can see which process and which configuration served it; then
 *	every line the client sends comes back unchanged. "quit" closes the
 *	connection. A fifo or datagram trigger is logged as
 *	"trigger: N bytes". Lines are capped at 4096 bytes.
 *
 * SECURITY
 *	Test-only: never installed. */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/config.h"
#include "server/multi_server.h"
#include "util/alloc.h"
#include "util/events.h"
#include "util/msg.h"
#include "util/str.h"

#define ECHO_LINE_MAX 4096

struct echo_state;

struct echo_conn {
	struct echo_conn *next;
	struct echo_state *st;
	int fd;
	struct event_io *io;
	struct str in;
	struct str out;
};

struct echo_state {
	const char *param;
	struct echo_conn *conns;
};

/* echo_close: end one connection and tell the skeleton. */
static void echo_close(struct echo_state *st, struct echo_conn *c)
{
	for (struct echo_conn **pp = &st->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	event_io_remove(&c->io);
	close(c->fd);
	str_deinit(&c->in);
	str_deinit(&c->out);
	free(c);
	multi_server_disconnect();
}

/* echo_flush: write what is queued; false when the connection broke. */
static bool echo_flush(struct echo_conn *c)
{
	while (c->out.len > 0) {
		ssize_t n = write(c->fd, c->out.data, c->out.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return false;
		str_consume(&c->out, (size_t)n);
	}
	event_io_set(c->io, EVENT_READ | (c->out.len > 0 ? EVENT_WRITE : 0));
	return true;
}

/* echo_lines: echo each complete line; false on "quit" or a line too long. */
static bool echo_lines(struct echo_conn *c)
{
	char *nl;
	while ((nl = memchr(c->in.data, '\n', c->in.len)) != NULL) {
		size_t len = (size_t)(nl - c->in.data) + 1;
		if (strncmp(c->in.data, "quit", 4) == 0)
			return false;
		str_append_n(&c->out, c->in.data, len);
		str_consume(&c->in, len);
	}
	return c->in.len <= ECHO_LINE_MAX;
}

/* echo_event: input to echo, or room to write what is queued. */
static void echo_event(void *ctx, int fd, unsigned events)
{
	struct echo_conn *c = ctx;
	struct echo_state *st = c->st;
	if ((events & EVENT_READ) != 0) {
		char buf[1024];
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			echo_close(st, c);
			return;
		}
		if (n > 0)
			str_append_n(&c->in, buf, (size_t)n);
		if (!echo_lines(c)) {
			echo_flush(c);
			echo_close(st, c);
			return;
		}
	}
	if (!echo_flush(c))
		echo_close(st, c);
}

/* echo_accept: greet a new client with our pid and the parameter. */
static void echo_accept(void *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen,
			const struct multi_server_listener *l)
{
	struct echo_state *st = ctx;
	struct echo_conn *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->st = st;
	c->next = st->conns;
	st->conns = c;
	str_printf(&c->out, "echo-daemon pid=%ld %s=%s\r\n", (long)getpid(), st->param,
		   config_str(st->param));
	c->io = event_io_add(multi_server_loop(), fd, EVENT_READ, echo_event, c);
	if (!echo_flush(c))
		echo_close(st, c);
}

/* echo_trigger: a wakeup arrived on a fifo or datagram listener. */
static void echo_trigger(void *ctx, const struct multi_server_listener *l)
{
	char buf[256];
	ssize_t n = read(l->fd, buf, sizeof(buf));
	if (n > 0)
		msg_info("trigger: %zd bytes", n);
}

/* echo_post_init: which parameter to report (the first master.cf arg). */
static void echo_post_init(void *ctx)
{
	struct echo_state *st = ctx;
	char *const *args = multi_server_args();
	if (args[0] != NULL)
		st->param = args[0];
	/* Fails (panics) here, at start, on a name that is not a parameter. */
	(void)config_str(st->param);
	msg_info("echo-daemon ready: service %s", multi_server_service_name());
}

/* echo_pre_exit: close what is still open. */
static void echo_pre_exit(void *ctx)
{
	struct echo_state *st = ctx;
	while (st->conns != NULL)
		echo_close(st, st->conns);
}

/* main: the whole daemon is this table. */
int main(int argc, char **argv)
{
	static struct echo_state echo_state = { "message_size_limit", NULL };
	static const struct multi_server_ops ops = {
		.post_init = echo_post_init,
		.accept = echo_accept,
		.trigger = echo_trigger,
		.pre_exit = echo_pre_exit,
	};
	return multi_server_main(argc, argv, "echo-daemon", &ops, &echo_state);
}
