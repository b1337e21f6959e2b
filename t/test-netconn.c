/* test-netconn.c: unit tests for lib/server/netconn and tls_server: line
 * assembly, input and output limits, timeouts, freeing from callbacks, TLS
 * (implicit and STARTTLS) against a GnuTLS client in the same loop. */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/netconn.h"
#include "server/tls_server.h"
#include "tap.h"
#include "tls-test-util.h"
#include "util/events.h"
#include "util/msg.h"

static struct event_loop *loop;
static char cert_dir[256], cert_file[300], key_file[300];

static uint64_t test_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

enum pair_kind { PAIR_UNIX, PAIR_TCP };

/* make_pair: two connected stream sockets: [0] for netconn, [1] the peer. */
static void make_pair(enum pair_kind kind, int fds[2])
{
	if (kind == PAIR_UNIX) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
			msg_fatal("socketpair failed: %m");
		return;
	}
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len) < 0)
		msg_fatal("listen on 127.0.0.1 failed: %m");
	fds[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fds[1] < 0 || connect(fds[1], (struct sockaddr *)&sin, sizeof(sin)) < 0)
		msg_fatal("connect to 127.0.0.1 failed: %m");
	fds[0] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fds[0] < 0)
		msg_fatal("accept failed: %m");
	close(lfd);
}

/* A test pattern that catches reordered, lost or duplicated bytes. */
static unsigned char pattern_byte(size_t offset)
{
	return (unsigned char)((offset * 7 + offset / 251) % 256);
}

static void pattern_fill(unsigned char *buf, size_t offset, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern_byte(offset + i);
}

static bool pattern_check(const unsigned char *buf, size_t offset, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != pattern_byte(offset + i))
			return false;
	}
	return true;
}

/* --- the owner: what smtpd would be --- */

enum owner_mode {
	OWNER_LINES, /* answer CRLF lines: "250 line", QUIT, STARTTLS */
	OWNER_HOLD,  /* consume nothing */
	OWNER_SINK,  /* consume and check the pattern; reply with bulk_reply bytes */
	OWNER_ECHO,  /* echo everything */
};

enum owner_free {
	FREE_NONE,
	FREE_IN_TLS_DONE,
	FREE_IN_DRAINED,
};

struct owner {
	struct netconn *conn;
	enum owner_free free_in;
	enum owner_mode mode;
	struct tls_server *tls;
	struct str lines;
	bool closed;
	char reason[256];
	const char *closed_reply; /* written from closed() before the free */
	const char *after_starttls; /* written right after netconn_starttls */
	bool tls_done;
	int drained;
	int input_calls;
	size_t bytes_in;
	bool pattern_ok;
	size_t bulk_reply;
	size_t max_input;
	size_t max_output;
};

static void owner_line(struct owner *o, const char *line)
{
	if (o->lines.len > 0)
		str_append_c(&o->lines, '|');
	str_append(&o->lines, line);
	if (strcmp(line, "QUIT") == 0) {
		netconn_write(o->conn, "221 bye\r\n", 9);
		netconn_free(&o->conn);
	} else if (strcmp(line, "STARTTLS") == 0) {
		const char *error;
		netconn_printf(o->conn, "220 %s\r\n", "ready");
		if (netconn_starttls(o->conn, o->tls, &error) < 0)
			msg_fatal("netconn_starttls: %s", error);
		if (o->after_starttls != NULL)
			netconn_printf(o->conn, "%s", o->after_starttls);
	} else {
		netconn_printf(o->conn, "250 %s\r\n", line);
	}
}

static void owner_input(void *ctx)
{
	struct owner *o = ctx;
	struct str *in = netconn_input(o->conn);
	o->input_calls++;
	if (in->len > o->max_input)
		o->max_input = in->len;
	switch (o->mode) {
	case OWNER_LINES:
		while (o->conn != NULL && in->len > 0) {
			char *crlf = memmem(in->data, in->len, "\r\n", 2);
			if (crlf == NULL)
				break;
			*crlf = '\0';
			char *line = strdup(in->data);
			str_consume(in, (size_t)(crlf - in->data) + 2);
			owner_line(o, line);
			free(line);
		}
		break;
	case OWNER_HOLD:
		break;
	case OWNER_SINK:
		if (!pattern_check((unsigned char *)in->data, o->bytes_in, in->len))
			o->pattern_ok = false;
		o->bytes_in += in->len;
		str_clear(in);
		if (o->bulk_reply > 0 && o->bytes_in == o->bulk_reply) {
			unsigned char *buf = malloc(o->bulk_reply);
			pattern_fill(buf, 0, o->bulk_reply);
			netconn_write(o->conn, buf, o->bulk_reply);
			free(buf);
		}
		break;
	case OWNER_ECHO:
		o->bytes_in += in->len;
		netconn_write(o->conn, in->data, in->len);
		str_clear(in);
		if (netconn_output_pending(o->conn) > o->max_output)
			o->max_output = netconn_output_pending(o->conn);
		break;
	}
}

static void owner_closed(void *ctx, const char *reason)
{
	struct owner *o = ctx;
	o->closed = true;
	str_copy(o->reason, sizeof(o->reason), reason);
	if (o->closed_reply != NULL)
		netconn_write(o->conn, o->closed_reply, strlen(o->closed_reply));
	netconn_free(&o->conn);
}

static void owner_tls_done(void *ctx)
{
	struct owner *o = ctx;
	o->tls_done = true;
	if (o->free_in == FREE_IN_TLS_DONE)
		netconn_free(&o->conn);
}

static void owner_drained(void *ctx)
{
	struct owner *o = ctx;
	o->drained++;
	if (o->free_in == FREE_IN_DRAINED)
		netconn_free(&o->conn);
}

static const struct netconn_callbacks owner_callbacks = {
	.input = owner_input,
	.closed = owner_closed,
	.tls_done = owner_tls_done,
	.output_drained = owner_drained,
};

static void owner_init(struct owner *o, int fd, enum owner_mode mode)
{
	memset(o, 0, sizeof(*o));
	o->mode = mode;
	o->pattern_ok = true;
	o->conn = netconn_create(loop, fd, &owner_callbacks, o);
}

static void owner_deinit(struct owner *o)
{
	netconn_free(&o->conn);
	str_deinit(&o->lines);
}

/* run_until: run the loop until cond(arg) or max_ms; returns cond. */
static bool run_until(bool (*cond)(void *), void *arg, unsigned max_ms)
{
	uint64_t end = test_clock_ms() + max_ms;
	while (!cond(arg) && test_clock_ms() < end)
		event_loop_once(loop, 10);
	return cond(arg);
}

static bool owner_is_closed(void *arg)
{
	return ((struct owner *)arg)->closed || ((struct owner *)arg)->conn == NULL;
}

struct wait_client {
	struct tls_test_client *client;
	const char *text;
	size_t bytes;
};

/* client_has: the client received text (or bytes), or stopped. */
static bool client_has(void *arg)
{
	struct wait_client *w = arg;
	struct str *in = tls_test_client_input(w->client);
	if (tls_test_client_error(w->client) != NULL)
		return true;
	if (w->text != NULL)
		return memmem(in->data != NULL ? in->data : "", in->len, w->text,
			      strlen(w->text)) != NULL;
	return in->len >= w->bytes;
}

static bool client_dead(void *arg)
{
	return tls_test_client_error(arg) != NULL;
}

static bool client_tls_up(void *arg)
{
	return tls_test_client_handshake_done(arg) || tls_test_client_error(arg) != NULL;
}

/* --- plain --- */

static const struct line_case {
	const char *name;
	const char *chunks[5];
	const char *want_lines;
	const char *want_reply;
} line_cases[] = {
	{ "one write", { "HELO a\r\nNOOP\r\nQUIT\r\n" }, "HELO a|NOOP|QUIT",
	  "250 HELO a\r\n250 NOOP\r\n221 bye\r\n" },
	{ "split lines", { "HEL", "O a\r", "\nNO", "OP\r\nQU", "IT\r\n" }, "HELO a|NOOP|QUIT",
	  "250 HELO a\r\n250 NOOP\r\n221 bye\r\n" },
	{ "bytes after QUIT ignored", { "X\r\n", "QUIT\r\nJUNK\r\n" }, "X|QUIT",
	  "250 X\r\n221 bye\r\n" },
};

static void test_lines(enum pair_kind kind)
{
	const char *kname = kind == PAIR_UNIX ? "unix" : "tcp";
	for (size_t i = 0; i < N_ELEMENTS(line_cases); i++) {
		const struct line_case *c = &line_cases[i];
		int fds[2];
		make_pair(kind, fds);
		struct owner o;
		owner_init(&o, fds[0], OWNER_LINES);
		struct tls_test_client *cl = tls_test_client_create(loop, fds[1], NULL);
		for (size_t j = 0; j < N_ELEMENTS(c->chunks) && c->chunks[j] != NULL; j++) {
			tls_test_client_raw(cl, c->chunks[j], strlen(c->chunks[j]));
			for (int k = 0; k < 3; k++)
				event_loop_once(loop, 5);
		}
		run_until(client_dead, cl, 2000);
		tap_is_str(str_c(&o.lines), c->want_lines, "%s %s: lines assembled", kname, c->name);
		tap_is_str(str_c(tls_test_client_input(cl)), c->want_reply,
			   "%s %s: replies, 221 flushed by netconn_free", kname, c->name);
		tap_ok(o.conn == NULL && !o.closed, "%s %s: freed from input(), no closed()", kname,
		       c->name);
		tap_is_str(tls_test_client_error(cl), "EOF", "%s %s: peer sees EOF", kname, c->name);
		tls_test_client_free(&cl);
		owner_deinit(&o);
	}
}

static void test_eof(void)
{
	int fds[2];
	make_pair(PAIR_TCP, fds);
	struct owner o;
	owner_init(&o, fds[0], OWNER_LINES);
	if (write(fds[1], "NOOP\r\n", 6) != 6)
		msg_fatal("write: %m");
	close(fds[1]);
	run_until(owner_is_closed, &o, 2000);
	tap_ok(o.closed, "EOF: closed() called");
	tap_is_str(o.reason, "lost connection", "EOF: reason");
	tap_is_str(str_c(&o.lines), "NOOP", "EOF: input before the EOF was delivered");
	tap_ok(o.conn == NULL, "EOF: freed from closed()");
	owner_deinit(&o);
}

/* send_some: write the pattern to fd until it would block; returns bytes. */
static size_t send_some(int fd, size_t *offset, size_t max)
{
	unsigned char buf[65536];
	size_t total = 0;
	while (total < max) {
		size_t len = max - total < sizeof(buf) ? max - total : sizeof(buf);
		pattern_fill(buf, *offset, len);
		ssize_t n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			break;
		*offset += (size_t)n;
		total += (size_t)n;
	}
	return total;
}

static void test_input_limit(void)
{
	enum { LIMIT = 4096, TOTAL = 300 * 1024 };
	int fds[2];
	make_pair(PAIR_UNIX, fds);
	struct owner o;
	owner_init(&o, fds[0], OWNER_HOLD);
	netconn_set_input_limit(o.conn, LIMIT);
	size_t sent_off = 0;
	send_some(fds[1], &sent_off, TOTAL);
	for (int i = 0; i < 20; i++)
		event_loop_once(loop, 5);
	size_t held = netconn_input(o.conn)->len;
	tap_is_int((long long)held, LIMIT, "input limit: reading stops at the limit");
	int calls = o.input_calls;
	for (int i = 0; i < 10; i++)
		event_loop_once(loop, 5);
	tap_is_int(o.input_calls, calls, "input limit: no more input() while over the limit");
	tap_ok(sent_off < TOTAL, "input limit: the peer is blocked (%zu of %d sent)", sent_off,
	       TOTAL);

	/* the owner catches up: consuming in input() resumes reading */
	o.mode = OWNER_SINK;
	netconn_pause_input(o.conn, false); /* redelivers what is buffered */
	uint64_t end = test_clock_ms() + 5000;
	while (o.bytes_in < TOTAL && test_clock_ms() < end) {
		send_some(fds[1], &sent_off, TOTAL - sent_off);
		event_loop_once(loop, 5);
	}
	tap_is_int((long long)o.bytes_in, TOTAL, "input limit: everything arrives once consumed");
	tap_ok(o.pattern_ok, "input limit: bytes intact and in order");
	tap_ok(o.max_input <= LIMIT, "input limit: buffer never beyond the limit");
	owner_deinit(&o);
	close(fds[1]);
}

static void test_pause(void)
{
	int fds[2];
	make_pair(PAIR_UNIX, fds);
	struct owner o;
	owner_init(&o, fds[0], OWNER_LINES);
	netconn_pause_input(o.conn, true);
	if (write(fds[1], "A\r\nB\r\n", 6) != 6)
		msg_fatal("write: %m");
	for (int i = 0; i < 5; i++)
		event_loop_once(loop, 5);
	tap_is_int(o.input_calls, 0, "paused: nothing read");
	netconn_pause_input(o.conn, false);
	for (int i = 0; i < 5; i++)
		event_loop_once(loop, 5);
	tap_is_str(str_c(&o.lines), "A|B", "resumed: input read and delivered");

	/* paused with input left over: resuming delivers it again */
	o.mode = OWNER_HOLD;
	if (write(fds[1], "C\r\n", 3) != 3)
		msg_fatal("write: %m");
	for (int i = 0; i < 5; i++)
		event_loop_once(loop, 5);
	netconn_pause_input(o.conn, true);
	o.mode = OWNER_LINES;
	netconn_pause_input(o.conn, false);
	for (int i = 0; i < 5; i++)
		event_loop_once(loop, 5);
	tap_is_str(str_c(&o.lines), "A|B|C", "resumed: buffered input redelivered");
	owner_deinit(&o);
	close(fds[1]);
}

static void test_backpressure(void)
{
	int fds[2];
	make_pair(PAIR_UNIX, fds);
	struct owner o;
	owner_init(&o, fds[0], OWNER_ECHO);
	size_t sent_off = 0;
	int idle_rounds = 0;
	/* the peer writes and never reads until netconn stops reading */
	while (idle_rounds < 20) {
		size_t n = send_some(fds[1], &sent_off, 8 * 1024 * 1024);
		event_loop_once(loop, 2);
		idle_rounds = n == 0 ? idle_rounds + 1 : 0;
		if (sent_off > 16 * 1024 * 1024)
			break;
	}
	size_t pending = netconn_output_pending(o.conn);
	tap_ok(sent_off < 16 * 1024 * 1024, "backpressure: the non-reading peer got blocked (%zu)",
	       sent_off);
	tap_ok(pending > NETCONN_DEFAULT_OUTPUT_LIMIT / 2,
	       "backpressure: output backed up (%zu pending)", pending);
	tap_ok(o.max_output <= NETCONN_DEFAULT_OUTPUT_LIMIT + 8 * 16384,
	       "backpressure: output stays bounded (max %zu)", o.max_output);

	/* the peer reads: everything comes back intact */
	size_t got = 0;
	bool ok = true;
	unsigned char buf[65536];
	uint64_t end = test_clock_ms() + 10000;
	while (got < sent_off && test_clock_ms() < end) {
		ssize_t n = recv(fds[1], buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0) {
			ok = ok && pattern_check(buf, got, (size_t)n);
			got += (size_t)n;
		}
		send_some(fds[1], &sent_off, 0);
		event_loop_once(loop, n > 0 ? 0 : 2);
	}
	tap_is_int((long long)got, (long long)sent_off, "backpressure: all echoed once drained");
	tap_ok(ok, "backpressure: echo intact");
	tap_ok(o.drained > 0, "backpressure: output_drained called");
	owner_deinit(&o);
	close(fds[1]);
}

static void test_timeout(void)
{
	int fds[2];
	make_pair(PAIR_UNIX, fds);
	struct owner o;
	owner_init(&o, fds[0], OWNER_LINES);
	o.closed_reply = "421 timeout\r\n";
	struct tls_test_client *cl = tls_test_client_create(loop, fds[1], NULL);
	netconn_set_timeout(o.conn, 200);
	/* activity keeps it alive */
	for (int i = 0; i < 6; i++) {
		tls_test_client_raw(cl, "NOOP\r\n", 6);
		uint64_t t = test_clock_ms();
		while (test_clock_ms() < t + 50)
			event_loop_once(loop, 5);
	}
	tap_ok(!o.closed, "timeout: traffic resets the idle timer");
	/* paused by the owner with nothing to write: not idle */
	netconn_pause_input(o.conn, true);
	uint64_t t = test_clock_ms();
	while (test_clock_ms() < t + 400)
		event_loop_once(loop, 5);
	tap_ok(!o.closed, "timeout: time paused by the owner does not count");
	netconn_pause_input(o.conn, false);
	uint64_t start = test_clock_ms();
	run_until(owner_is_closed, &o, 3000);
	uint64_t elapsed = test_clock_ms() - start;
	tap_is_str(o.reason, "timeout", "timeout: closed(\"timeout\")");
	tap_ok(elapsed >= 190 && elapsed < 2000, "timeout: after about 200 ms (%llu)",
	       (unsigned long long)elapsed);
	struct wait_client w = { .client = cl, .text = "421 timeout\r\n" };
	run_until(client_has, &w, 1000);
	tap_ok(memmem(str_c(tls_test_client_input(cl)), tls_test_client_input(cl)->len,
		      "421 timeout\r\n", 13) != NULL,
	       "timeout: a reply written from closed() still goes out");
	tls_test_client_free(&cl);
	owner_deinit(&o);
}

/* --- TLS --- */

static struct tls_server *test_tls_server(void)
{
	const char *error;
	struct tls_server *tls = tls_server_create(cert_file, key_file, &error);
	if (tls == NULL)
		msg_fatal("tls_server_create: %s", error);
	return tls;
}

static const struct tls_case {
	const char *priority;
	bool ok;
	const char *protocol;
	const char *cipher;
	int bits;
} tls_cases[] = {
	{ "NORMAL", true, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256 },
	{ "NORMAL:-CIPHER-ALL:+AES-128-GCM", true, "TLSv1.3", "TLS_AES_128_GCM_SHA256", 128 },
	{ "NORMAL:-VERS-ALL:+VERS-TLS1.2", true, "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384", 256 },
	{ "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+CHACHA20-POLY1305", true, "TLSv1.2",
	  "ECDHE-ECDSA-CHACHA20-POLY1305", 256 },
	{ "NORMAL:-VERS-ALL:+VERS-TLS1.1:+VERS-TLS1.0", false, NULL, NULL, 0 },
	{ "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+3DES-CBC", false, NULL, NULL, 0 },
};

static void test_tls_versions(void)
{
	for (size_t i = 0; i < N_ELEMENTS(tls_cases); i++) {
		const struct tls_case *c = &tls_cases[i];
		int fds[2];
		make_pair(PAIR_TCP, fds);
		struct tls_server *tls = test_tls_server();
		struct owner o;
		owner_init(&o, fds[0], OWNER_LINES);
		const char *error;
		tap_is_int(netconn_starttls(o.conn, tls, &error), 0, "%s: starttls", c->priority);
		/* the owner lets go of the credentials: the session keeps them */
		tls_server_free(&tls);
		netconn_printf(o.conn, "220 hello\r\n"); /* queued until the handshake */
		struct tls_test_client *cl = tls_test_client_create(loop, fds[1], c->priority);
		tls_test_client_start(cl);
		run_until(client_tls_up, cl, 5000);
		if (!c->ok) {
			run_until(owner_is_closed, &o, 2000);
			tap_ok(tls_test_client_error(cl) != NULL, "%s: client fails", c->priority);
			tap_ok(strncmp(o.reason, "TLS handshake failed: ", 22) == 0,
			       "%s: closed(\"%s\")", c->priority, o.reason);
		} else {
			tls_test_client_send(cl, "EHLO x\r\n", 8);
			struct wait_client w = { .client = cl, .text = "250 EHLO x\r\n" };
			run_until(client_has, &w, 2000);
			tap_is_str(str_c(tls_test_client_input(cl)), "220 hello\r\n250 EHLO x\r\n",
				   "%s: greeting held for the handshake, then the reply",
				   c->priority);
			tap_ok(o.tls_done, "%s: tls_done called", c->priority);
			tap_is_int(tls_test_client_peer_certs(cl), 2, "%s: chain from cert_file sent",
				   c->priority);
			tap_ok(o.conn != NULL && netconn_is_tls(o.conn), "%s: netconn_is_tls",
			       c->priority);
			if (o.conn != NULL) {
				tap_is_str(netconn_tls_protocol(o.conn), c->protocol, "%s: protocol",
					   c->priority);
				char want[128];
				snprintf(want, sizeof(want), "%s with cipher %s (%d/%d bits)",
					 netconn_tls_protocol(o.conn), netconn_tls_cipher(o.conn),
					 netconn_tls_bits(o.conn), netconn_tls_bits(o.conn));
				tap_is_str(netconn_tls_info(o.conn), want, "%s: info", c->priority);
				tap_is_str(netconn_tls_cipher(o.conn), c->cipher,
					   "%s: cipher named as OpenSSL does", c->priority);
				tap_is_int(netconn_tls_bits(o.conn), c->bits, "%s: bits", c->priority);
			}
		}
		tls_test_client_free(&cl);
		owner_deinit(&o);
	}
}

static bool client_bulk_done(void *arg)
{
	struct wait_client *w = arg;
	return client_has(w);
}

static void test_tls_bulk(void)
{
	enum { BULK = 1024 * 1024 };
	int fds[2];
	make_pair(PAIR_UNIX, fds);
	struct tls_server *tls = test_tls_server();
	struct owner o;
	owner_init(&o, fds[0], OWNER_SINK);
	o.bulk_reply = BULK;
	const char *error;
	if (netconn_starttls(o.conn, tls, &error) < 0)
		msg_fatal("starttls: %s", error);
	struct tls_test_client *cl = tls_test_client_create(loop, fds[1], NULL);
	tls_test_client_start(cl);
	unsigned char *buf = malloc(BULK);
	pattern_fill(buf, 0, BULK);
	tls_test_client_send(cl, buf, BULK);
	free(buf);
	struct wait_client w = { .client = cl, .bytes = BULK };
	run_until(client_bulk_done, &w, 20000);
	tap_is_int((long long)o.bytes_in, BULK, "TLS: 1 MiB client -> server");
	tap_ok(o.pattern_ok, "TLS: server received it intact");
	struct str *in = tls_test_client_input(cl);
	tap_is_int((long long)in->len, BULK, "TLS: 1 MiB server -> client");
	tap_ok(in->len == BULK && pattern_check((unsigned char *)in->data, 0, BULK),
	       "TLS: client received it intact");
	tap_ok(o.max_input <= NETCONN_DEFAULT_INPUT_LIMIT,
	       "TLS: input buffer bounded (max %zu)", o.max_input);
	tap_ok(o.drained > 0, "TLS: output_drained called");
	/* closing sends close_notify: the client sees a clean EOF */
	owner_deinit(&o);
	run_until(client_dead, cl, 2000);
	tap_is_str(tls_test_client_error(cl), "EOF", "TLS: close_notify on netconn_free");
	tls_test_client_free(&cl);
	tls_server_free(&tls);
}

static void test_starttls_pipelining(void)
{
	int fds[2];
	make_pair(PAIR_TCP, fds);
	struct owner o;
	owner_init(&o, fds[0], OWNER_LINES);
	o.tls = test_tls_server();
	o.after_starttls = "250 secret\r\n";
	struct tls_test_client *cl = tls_test_client_create(loop, fds[1], NULL);
	tls_test_client_raw(cl, "EHLO x\r\n", 8);
	struct wait_client w = { .client = cl, .text = "250 EHLO x\r\n" };
	run_until(client_has, &w, 2000);
	/* an attacker's pipelined plaintext after STARTTLS */
	tls_test_client_raw(cl, "STARTTLS\r\nRSET\r\n", 16);
	w.text = "220 ready\r\n";
	run_until(client_has, &w, 2000);
	for (int i = 0; i < 5; i++)
		event_loop_once(loop, 5);
	tap_is_str(str_c(tls_test_client_input(cl)), "250 EHLO x\r\n220 ready\r\n",
		   "STARTTLS: 220 sent in plaintext, RSET not answered");
	str_clear(tls_test_client_input(cl));
	tls_test_client_start(cl);
	run_until(client_tls_up, cl, 5000);
	tap_ok(tls_test_client_handshake_done(cl), "STARTTLS: handshake done");
	tls_test_client_send(cl, "NOOP\r\n", 6);
	w.text = "250 NOOP\r\n";
	run_until(client_has, &w, 2000);
	tap_ok(o.tls_done, "STARTTLS: tls_done called");
	tap_is_str(str_c(tls_test_client_input(cl)), "250 secret\r\n250 NOOP\r\n",
		   "STARTTLS: output queued after netconn_starttls goes out in TLS");
	tap_is_str(str_c(&o.lines), "EHLO x|STARTTLS|NOOP", "STARTTLS: pipelined RSET discarded");
	const char *error;
	tap_is_int(netconn_starttls(o.conn, o.tls, &error), -1, "STARTTLS twice refused");
	tls_test_client_send(cl, "QUIT\r\n", 6);
	run_until(client_dead, cl, 2000);
	tap_is_str(str_c(tls_test_client_input(cl)), "250 secret\r\n250 NOOP\r\n221 bye\r\n",
		   "STARTTLS: 221 flushed over TLS by netconn_free from input()");
	tap_is_str(tls_test_client_error(cl), "EOF", "STARTTLS: clean TLS close");
	tls_test_client_free(&cl);
	tls_server_free(&o.tls);
	owner_deinit(&o);
}

static const struct garbage_case {
	const char *name;
	const char *bytes;
	size_t len;
} garbage_cases[] = {
	{ "HTTP request", "GET / HTTP/1.0\r\n\r\n", 18 },
	{ "SMTP command", "EHLO x\r\n", 8 },
	{ "bad record header", "\x16\x03\x01\xff\xff\x01\x00", 7 },
	{ "nothing, then EOF", "", 0 },
};

static void test_tls_garbage(void)
{
	for (size_t i = 0; i < N_ELEMENTS(garbage_cases); i++) {
		const struct garbage_case *c = &garbage_cases[i];
		int fds[2];
		make_pair(PAIR_UNIX, fds);
		struct tls_server *tls = test_tls_server();
		struct owner o;
		owner_init(&o, fds[0], OWNER_LINES);
		const char *error;
		if (netconn_starttls(o.conn, tls, &error) < 0)
			msg_fatal("starttls: %s", error);
		tls_server_free(&tls);
		if (c->len > 0 && write(fds[1], c->bytes, c->len) != (ssize_t)c->len)
			msg_fatal("write: %m");
		if (c->len == 0)
			shutdown(fds[1], SHUT_WR);
		run_until(owner_is_closed, &o, 3000);
		tap_ok(strncmp(o.reason, "TLS handshake failed: ", 22) == 0,
		       "garbage %s: closed(\"%s\")", c->name, o.reason);
		tap_ok(o.conn == NULL, "garbage %s: freed", c->name);
		close(fds[1]);
		owner_deinit(&o);
	}
}

/* After the handshake: how the session ends, and the reason given. */
enum tls_end {
	END_CLOSE_NOTIFY,
	END_ABRUPT,
	END_GARBAGE,
	END_FREE_IN_TLS_DONE,
};

static const struct tls_end_case {
	const char *name;
	enum tls_end end;
	const char *want_reason; /* prefix; NULL: freed by the owner */
} tls_end_cases[] = {
	{ "close_notify", END_CLOSE_NOTIFY, "lost connection" },
	{ "abrupt close", END_ABRUPT, "lost connection" },
	{ "garbage record", END_GARBAGE, "TLS error: " },
	{ "free in tls_done", END_FREE_IN_TLS_DONE, NULL },
};

static void test_tls_end(void)
{
	for (size_t i = 0; i < N_ELEMENTS(tls_end_cases); i++) {
		const struct tls_end_case *c = &tls_end_cases[i];
		int fds[2];
		make_pair(PAIR_TCP, fds);
		struct tls_server *tls = test_tls_server();
		struct owner o;
		owner_init(&o, fds[0], OWNER_LINES);
		if (c->end == END_FREE_IN_TLS_DONE)
			o.free_in = FREE_IN_TLS_DONE;
		const char *error;
		if (netconn_starttls(o.conn, tls, &error) < 0)
			msg_fatal("starttls: %s", error);
		tls_server_free(&tls);
		struct tls_test_client *cl = tls_test_client_create(loop, fds[1], NULL);
		tls_test_client_start(cl);
		run_until(client_tls_up, cl, 5000);
		switch (c->end) {
		case END_CLOSE_NOTIFY:
			tls_test_client_bye(cl);
			break;
		case END_ABRUPT:
			shutdown(fds[1], SHUT_RDWR);
			break;
		case END_GARBAGE:
			tls_test_client_raw(cl, "\x17\x03\x03\x00\x05hello", 10);
			break;
		case END_FREE_IN_TLS_DONE:
			break;
		}
		run_until(owner_is_closed, &o, 3000);
		if (c->want_reason == NULL) {
			tap_ok(!o.closed && o.conn == NULL, "TLS end %s: freed, no closed()", c->name);
			run_until(client_dead, cl, 2000);
			tap_ok(tls_test_client_error(cl) != NULL, "TLS end %s: client sees the end",
			       c->name);
		} else {
			tap_ok(strncmp(o.reason, c->want_reason, strlen(c->want_reason)) == 0,
			       "TLS end %s: closed(\"%s\")", c->name, o.reason);
		}
		tls_test_client_free(&cl);
		owner_deinit(&o);
	}
}

/* Writing to a peer that has gone: no SIGPIPE, closed("lost connection")
 * from the loop, not from inside netconn_flush. */
static const struct epipe_case {
	const char *name;
	bool tls;
} epipe_cases[] = {
	{ "plain", false },
	{ "TLS", true },
};

static void test_epipe(void)
{
	for (size_t i = 0; i < N_ELEMENTS(epipe_cases); i++) {
		const struct epipe_case *c = &epipe_cases[i];
		int fds[2];
		make_pair(PAIR_UNIX, fds);
		struct owner o;
		owner_init(&o, fds[0], OWNER_HOLD);
		struct tls_test_client *cl = tls_test_client_create(loop, fds[1], NULL);
		struct tls_server *tls = NULL;
		if (c->tls) {
			const char *error;
			tls = test_tls_server();
			if (netconn_starttls(o.conn, tls, &error) < 0)
				msg_fatal("starttls: %s", error);
			tls_test_client_start(cl);
			run_until(client_tls_up, cl, 5000);
			for (int k = 0; k < 5; k++)
				event_loop_once(loop, 5);
		}
		tls_test_client_free(&cl); /* closes the peer's socket */
		static char big[256 * 1024];
		netconn_write(o.conn, big, sizeof(big));
		netconn_flush(o.conn);
		tap_ok(!o.closed, "%s EPIPE: no callback from inside netconn_flush", c->name);
		run_until(owner_is_closed, &o, 2000);
		tap_is_str(o.reason, "lost connection", "%s EPIPE: closed(\"lost connection\")",
			   c->name);
		owner_deinit(&o);
		tls_server_free(&tls);
	}
}

static void test_free_in_drained(void)
{
	int fds[2];
	make_pair(PAIR_UNIX, fds);
	struct owner o;
	owner_init(&o, fds[0], OWNER_LINES);
	o.free_in = FREE_IN_DRAINED;
	struct tls_test_client *cl = tls_test_client_create(loop, fds[1], NULL);
	tls_test_client_raw(cl, "NOOP\r\n", 6);
	run_until(client_dead, cl, 2000);
	tap_is_str(str_c(tls_test_client_input(cl)), "250 NOOP\r\n",
		   "free in output_drained: reply went out first");
	tap_ok(o.conn == NULL && o.drained == 1, "free in output_drained: freed once");
	tls_test_client_free(&cl);
	owner_deinit(&o);

	/* netconn_flush from outside a callback: drained comes from the loop */
	make_pair(PAIR_UNIX, fds);
	owner_init(&o, fds[0], OWNER_LINES);
	o.free_in = FREE_IN_DRAINED;
	netconn_printf(o.conn, "220 %s\r\n", "hello");
	netconn_flush(o.conn);
	tap_ok(o.conn != NULL && o.drained == 0 && netconn_output_pending(o.conn) == 0,
	       "netconn_flush writes now; no callback from inside it");
	event_loop_once(loop, 10);
	tap_ok(o.conn == NULL && o.drained == 1, "output_drained follows from the loop");
	owner_deinit(&o);
	close(fds[1]);
}

/* tls_session_once: one implicit-TLS session with a line exchanged;
 * resumes *ticket when non-empty, else stores the new session there.
 * Returns whether the client resumed. */
static bool tls_session_once(struct tls_server *tls, struct str *ticket, const char *priority)
{
	int fds[2];
	make_pair(PAIR_UNIX, fds);
	struct owner o;
	owner_init(&o, fds[0], OWNER_LINES);
	const char *error;
	if (netconn_starttls(o.conn, tls, &error) < 0)
		msg_fatal("starttls: %s", error);
	struct tls_test_client *cl = tls_test_client_create(loop, fds[1], priority);
	if (ticket->len > 0)
		tls_test_client_set_session(cl, ticket);
	tls_test_client_start(cl);
	tls_test_client_send(cl, "NOOP\r\n", 6);
	/* the TLS 1.3 ticket arrives after the handshake, with the reply */
	struct wait_client w = { .client = cl, .text = "250 NOOP\r\n" };
	run_until(client_has, &w, 5000);
	bool resumed = tls_test_client_resumed(cl);
	if (ticket->len == 0)
		tls_test_client_get_session(cl, ticket);
	tls_test_client_free(&cl);
	owner_deinit(&o);
	return resumed;
}

static const struct resume_case {
	const char *priority;
} resume_cases[] = {
	{ "NORMAL" },
	{ "NORMAL:-VERS-ALL:+VERS-TLS1.2" },
};

static void test_tls_resume(void)
{
	for (size_t i = 0; i < N_ELEMENTS(resume_cases); i++) {
		const char *prio = resume_cases[i].priority;
		struct str ticket = STR_INIT;
		struct tls_server *tls = test_tls_server();
		tap_ok(!tls_session_once(tls, &ticket, prio), "%s: first session is full", prio);
		tap_ok(tls_session_once(tls, &ticket, prio), "%s: second resumes with the ticket",
		       prio);
		/* a reload: new credentials, same per-process ticket key */
		tls_server_free(&tls);
		tls = test_tls_server();
		tap_ok(tls_session_once(tls, &ticket, prio), "%s: ticket survives a reload", prio);
		tls_server_free(&tls);
		str_deinit(&ticket);
	}
}

static const struct create_case {
	const char *name;
	bool bad_cert;
	bool bad_key;
	const char *priority;
	const char *want_error;
} create_cases[] = {
	{ "missing cert", true, false, NULL, "loading certificate /nonexistent/cert.pem" },
	{ "missing key", false, true, NULL, "loading certificate" },
	{ "bad priority", false, false, "NORMAL:+NONSENSE", "bad TLS priority string" },
	{ "good", false, false, NULL, NULL },
};

static void test_tls_create(void)
{
	for (size_t i = 0; i < N_ELEMENTS(create_cases); i++) {
		const struct create_case *c = &create_cases[i];
		const char *error = NULL;
		struct tls_server *tls = tls_server_create_priority(
			c->bad_cert ? "/nonexistent/cert.pem" : cert_file,
			c->bad_key ? "/nonexistent/key.pem" : key_file, c->priority, &error);
		if (c->want_error == NULL) {
			tap_ok(tls != NULL, "tls_server_create %s", c->name);
		} else {
			tap_ok(tls == NULL && error != NULL &&
				       strncmp(error, c->want_error, strlen(c->want_error)) == 0,
			       "tls_server_create %s fails: %s", c->name, error);
		}
		tls_server_free(&tls);
		tap_ok(tls == NULL, "tls_server_free clears the pointer");
	}
}

int main(void)
{
	msg_init("test-netconn");
	loop = event_loop_create();
	tls_test_cert_create(cert_dir, sizeof(cert_dir), cert_file, sizeof(cert_file), key_file,
			     sizeof(key_file));
	test_lines(PAIR_UNIX);
	test_lines(PAIR_TCP);
	test_eof();
	test_input_limit();
	test_pause();
	test_backpressure();
	test_timeout();
	test_tls_create();
	test_tls_versions();
	test_tls_bulk();
	test_starttls_pipelining();
	test_tls_garbage();
	test_tls_end();
	test_tls_resume();
	test_free_in_drained();
	test_epipe();
	event_loop_free(&loop);
	tls_test_cert_remove(cert_dir, cert_file, key_file);
	tls_server_global_deinit();
	return tap_done();
}
