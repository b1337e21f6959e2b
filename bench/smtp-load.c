/* smtp-load.c: an SMTP load generator for acceptance benchmarks.
 *
 * SYNOPSIS
 *	smtp-load [-Pjv] [-s host:port] [-m messages] [-c concurrency]
 *		[-r recipients] [-z size] [-n per-connection] [-t template]
 *		[-u users] [-f sender] [-H helo] [-k token-prefix]
 *		[-T seconds] [-w seconds]
 *
 * DESCRIPTION
 *	Sends messages to one SMTP server over loopback and reports how many
 *	were accepted and how fast. One process and one epoll loop drive up to
 *	-c sessions at once, all non-blocking, so the generator costs far less
 *	CPU than the server it measures. Each connection carries -n messages
 *	(EHLO once, then MAIL, RCPT x -r, DATA per message, RSET after a
 *	failed one, QUIT at the end), like smtp-source -s 1 -m.
 *
 *	A message's latency runs from connect (or from MAIL on a reused
 *	connection) to the 2xx reply after the final dot. Each message carries a
 *	unique Message-ID and an "X-Bench-Token: <prefix><n>" header (n from 1 to
 *	-m) so deliveries can be counted; the body is -z bytes of text in CRLF
 *	lines of 76 characters.
 *
 *	Outcomes per message: accepted (2xx after the dot), temp-failed (a 4xx
 *	reply on the way), rejected (5xx), error (connect failure, the server
 *	closing early, a malformed reply or a timeout). A connection that fails
 *	gives its remaining messages back to the pool for a new connection, so
 *	every message is tried once. Exit status: 0 when every message and every
 *	recipient was accepted, 1 otherwise, 2 for a usage error.
 *
 * SECURITY
 *	Loopback only: -s must be a numeric 127.0.0.0/8 or ::1 address (or
 *	"localhost"); anything else is refused before any socket is opened.
 *	Replies are bounded (line length, lines per reply); anything malformed
 *	ends that connection as an error. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/attr.h"
#include "util/msg.h"
#include "util/str.h"

#define LOAD_MAX_MESSAGES 10000000UL
#define LOAD_MAX_CONCURRENCY 10000UL
#define LOAD_MAX_RCPTS 1000UL
#define LOAD_MAX_SIZE (64UL * 1024 * 1024)
#define LOAD_MAX_PER_CONN 10000000UL
#define LOAD_MAX_USERS 10000000UL
#define LOAD_MAX_SECONDS 86400UL
#define LOAD_MAX_ARG 256           /* sender, template, HELO name, token prefix */
#define LOAD_LINE_MAX 4096         /* one reply line (RFC 5321 asks for 512) */
#define LOAD_REPLY_LINES_MAX 256   /* lines in one multi-line reply */
#define LOAD_TEXT_MAX 200          /* reply text kept for diagnostics */
#define LOAD_LOG_FAILURES 5        /* failures logged without -v */
#define LOAD_LINE_CHARS 76         /* body line length before CRLF */
#define LOAD_QUIT_WAIT_US 2000000  /* after 221: time for the server to close */
#define LOAD_SCAN_US 100000        /* how often deadlines are checked */
#define LOAD_EVENTS 256

enum load_outcome {
	LOAD_ACCEPTED,
	LOAD_TEMPFAIL,
	LOAD_REJECTED,
	LOAD_ERROR,
	LOAD_OUTCOMES,
};

enum load_state {
	LOAD_IDLE,       /* slot free */
	LOAD_CONNECTING, /* non-blocking connect under way */
	LOAD_GREETING,
	LOAD_EHLO,
	LOAD_HELO,
	LOAD_TXN,        /* replies to MAIL, RCPT x r, DATA */
	LOAD_DOT,        /* reply to the final dot */
	LOAD_RSET,
	LOAD_QUIT,
	LOAD_CLOSING,    /* after the reply to QUIT: wait for the server's close */
};

struct load_opts {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char server[INET6_ADDRSTRLEN + 16];
	unsigned long messages, concurrency, rcpts, size, per_conn, users;
	unsigned long timeout, reply_timeout;
	char *rcpt_prefix, *rcpt_suffix; /* the template around its %d */
	bool rcpt_numbered;              /* the template has a %d */
	const char *sender, *helo, *token_prefix;
	bool pipelining, json, verbose;
};

struct load_conn {
	int fd;
	enum load_state state;
	struct str in, out;
	size_t out_off;
	bool want_write;
	uint64_t deadline;          /* monotonic us: reply (or connect) due */
	unsigned reply_lines;       /* lines so far of the reply being read */
	bool reply_pipelining;      /* that reply lists PIPELINING */
	struct str reply_text;      /* its first line, escaped */
	bool pipelining;            /* this session pipelines */
	unsigned long msgs;         /* messages begun on this connection */
	bool msg_active;            /* a message is in progress */
	unsigned long msg_no;       /* 1..messages */
	uint64_t msg_start;
	unsigned long step;         /* reply awaited: 0 MAIL, 1..r RCPT, r+1 DATA */
	bool mail_ok;
	unsigned long rcpt_ok;
	int fail;                   /* first failing reply code of the message */
	const char *fail_stage;
	struct str fail_text;
	bool discard_dot;           /* DATA got 354 after a failure: "." only */
};

struct load {
	struct load_opts o;
	int epfd;
	struct load_conn *conns;
	unsigned long *free_slots, nfree;
	unsigned long active;
	unsigned long next_msg;     /* messages taken from the pool so far */
	unsigned long counts[LOAD_OUTCOMES];
	unsigned long rcpt_refused;
	unsigned long failures_logged;
	unsigned long conns_opened, conns_pipelined;
	uint32_t *lat;              /* us per accepted message */
	unsigned long nlat;
	struct str body;            /* blank line, body text, ".\r\n" */
	char date[64];
	long pid;
	long long epoch;
	uint64_t t0, t_end;
	const char *stopped;        /* why the run was cut short, or NULL */
};

static volatile sig_atomic_t load_interrupted;

/* load_usage: the synopsis, to out. */
static void load_usage(FILE *out)
{
	fprintf(out, "usage: smtp-load [-Pjv] [-s host:port] [-m messages] [-c concurrency]\n"
		     "\t[-r recipients] [-z size] [-n per-connection] [-t template] [-u users]\n"
		     "\t[-f sender] [-H helo] [-k token-prefix] [-T seconds] [-w seconds]\n");
}

/* load_usage_error: a usage problem: say so and exit 2. */
static void ATTR_FORMAT(1, 2) ATTR_NORETURN load_usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "smtp-load: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	load_usage(stderr);
	exit(2);
}

/* load_now: monotonic microseconds. */
static uint64_t load_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* load_number: a decimal option argument within [min, max]. */
static unsigned long load_number(int opt, const char *arg, unsigned long min, unsigned long max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(arg, &end, 10);
	if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno != 0 || v < min || v > max)
		load_usage_error("-%c %s: expected a number from %lu to %lu", opt, arg, min, max);
	return v;
}

/* load_word: an option argument that goes into SMTP commands or headers:
 * printable ASCII without space or angle brackets, bounded in length. */
static const char *load_word(int opt, const char *arg)
{
	size_t len = strlen(arg);
	if (len == 0 || len > LOAD_MAX_ARG)
		load_usage_error("-%c: expected 1 to %d characters", opt, LOAD_MAX_ARG);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)arg[i];
		if (ch <= 0x20 || ch >= 0x7f || ch == '<' || ch == '>')
			load_usage_error("-%c %s: only printable ASCII, no space, < or >", opt, arg);
	}
	return arg;
}

/* load_template: split a recipient template at its one %d. */
static void load_template(struct load_opts *o, const char *arg)
{
	load_word('t', arg);
	const char *d = strstr(arg, "%d");
	const char *pct = strchr(arg, '%');
	if (pct != NULL && pct != d)
		load_usage_error("-t %s: the only %% allowed is one %%d", arg);
	if (d != NULL && strchr(d + 2, '%') != NULL)
		load_usage_error("-t %s: the only %% allowed is one %%d", arg);
	free(o->rcpt_prefix);
	free(o->rcpt_suffix);
	o->rcpt_numbered = d != NULL;
	o->rcpt_prefix = d != NULL ? xstrndup(arg, (size_t)(d - arg)) : xstrdup(arg);
	o->rcpt_suffix = xstrdup(d != NULL ? d + 2 : "");
}

/* load_is_loopback: 127.0.0.0/8 or ::1. */
static bool load_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
	}
	return false;
}

/* load_server: parse -s host:port or [v6]:port; loopback addresses only. */
static void load_server(struct load_opts *o, const char *spec)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *port;
	size_t hlen;
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (close == NULL || close[1] != ':')
			load_usage_error("-s %s: expected [address]:port", spec);
		hlen = (size_t)(close - spec - 1);
		spec++;
		port = close + 2;
	} else {
		const char *colon = strrchr(spec, ':');
		if (colon == NULL)
			load_usage_error("-s %s: expected host:port", spec);
		hlen = (size_t)(colon - spec);
		port = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		load_usage_error("-s: bad address");
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	unsigned long portnum = load_number('s', port, 1, 65535);
	const char *numeric = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res;
	if (getaddrinfo(numeric, NULL, &hints, &res) != 0)
		load_usage_error("-s: %s is not a numeric address; loopback only", host);
	bool ok = load_is_loopback(res->ai_addr) && res->ai_addrlen <= sizeof(o->addr);
	if (ok) {
		memcpy(&o->addr, res->ai_addr, res->ai_addrlen);
		o->addrlen = res->ai_addrlen;
	}
	freeaddrinfo(res);
	if (!ok)
		load_usage_error("-s: %s is not a loopback address (127.0.0.0/8, ::1); refusing", host);
	char text[INET6_ADDRSTRLEN];
	if (o->addr.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&o->addr;
		sin->sin_port = htons((uint16_t)portnum);
		inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
		str_format(o->server, sizeof(o->server), "%s:%lu", text, portnum);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&o->addr;
		sin6->sin6_port = htons((uint16_t)portnum);
		inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
		str_format(o->server, sizeof(o->server), "[%s]:%lu", text, portnum);
	}
}

/* load_options: parse the command line into o (defaults first). */
static void load_options(struct load_opts *o, int argc, char **argv)
{
	*o = (struct load_opts){ .messages = 100, .concurrency = 1, .rcpts = 1, .size = 4096,
				 .per_conn = 1, .users = 100, .timeout = 600, .reply_timeout = 60,
				 .sender = "loadgen@client.test", .helo = "client.test",
				 .token_prefix = "" };
	load_server(o, "127.0.0.1:25");
	load_template(o, "user%d@example.test");
	int ch;
	while ((ch = getopt(argc, argv, "s:m:c:r:z:n:t:u:f:H:k:T:w:Pjvh")) != -1) {
		switch (ch) {
		case 's': load_server(o, optarg); break;
		case 'm': o->messages = load_number(ch, optarg, 1, LOAD_MAX_MESSAGES); break;
		case 'c': o->concurrency = load_number(ch, optarg, 1, LOAD_MAX_CONCURRENCY); break;
		case 'r': o->rcpts = load_number(ch, optarg, 1, LOAD_MAX_RCPTS); break;
		case 'z': o->size = load_number(ch, optarg, 0, LOAD_MAX_SIZE); break;
		case 'n': o->per_conn = load_number(ch, optarg, 1, LOAD_MAX_PER_CONN); break;
		case 't': load_template(o, optarg); break;
		case 'u': o->users = load_number(ch, optarg, 1, LOAD_MAX_USERS); break;
		case 'f': o->sender = load_word(ch, optarg); break;
		case 'H': o->helo = load_word(ch, optarg); break;
		case 'k': o->token_prefix = load_word(ch, optarg); break;
		case 'T': o->timeout = load_number(ch, optarg, 1, LOAD_MAX_SECONDS); break;
		case 'w': o->reply_timeout = load_number(ch, optarg, 1, LOAD_MAX_SECONDS); break;
		case 'P': o->pipelining = true; break;
		case 'j': o->json = true; break;
		case 'v': o->verbose = true; break;
		case 'h': load_usage(stdout); exit(0);
		default: load_usage_error("bad option");
		}
	}
	if (optind != argc)
		load_usage_error("unexpected argument: %s", argv[optind]);
}

/* load_body_make: the text after the headers: a blank line, size bytes in
 * CRLF lines of 76 characters (one line one longer, or the last shorter, to
 * hit size exactly; sizes below 2 become 2), then the final dot. */
static void load_body_make(struct load *l)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	const size_t alen = sizeof(alphabet) - 1, full = LOAD_LINE_CHARS + 2;
	size_t size = l->o.size == 1 ? 2 : l->o.size;
	size_t lines = size / full, rem = size % full;
	str_append(&l->body, "\r\n");
	for (size_t i = 0; i < lines + (rem >= 2); i++) {
		size_t n = i < lines ? LOAD_LINE_CHARS : rem - 2;
		if (rem == 1 && i == 0)
			n++;
		for (size_t j = 0; j < n; j++)
			str_append_c(&l->body, alphabet[(i + j) % alen]);
		str_append(&l->body, "\r\n");
	}
	str_append(&l->body, ".\r\n");
}

/* load_class: the outcome a reply code stands for. */
static enum load_outcome load_class(int code)
{
	switch (code / 100) {
	case 2: return LOAD_ACCEPTED;
	case 4: return LOAD_TEMPFAIL;
	case 5: return LOAD_REJECTED;
	default: return LOAD_ERROR;
	}
}

/* load_record: count the outcome of the connection's message and end it. */
static void load_record(struct load *l, struct load_conn *c, enum load_outcome out,
			const char *stage, const char *detail)
{
	if (!c->msg_active)
		return;
	c->msg_active = false;
	l->counts[out]++;
	if (out == LOAD_ACCEPTED) {
		uint64_t us = load_now() - c->msg_start;
		l->lat[l->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
		return;
	}
	if (l->o.verbose || l->failures_logged < LOAD_LOG_FAILURES)
		msg_warn("message %lu: %s%s%s", c->msg_no, stage, *detail ? ": " : "", detail);
	else if (l->failures_logged == LOAD_LOG_FAILURES)
		msg_warn("further failures are counted, not logged (-v logs them)");
	l->failures_logged++;
}

/* load_conn_close: close the connection and free its slot. */
static void load_conn_close(struct load *l, struct load_conn *c)
{
	if (c->state == LOAD_IDLE)
		return;
	close(c->fd);
	c->fd = -1;
	c->state = LOAD_IDLE;
	str_clear(&c->in);
	str_clear(&c->out);
	c->out_off = 0;
	c->msg_active = false;
	l->free_slots[l->nfree++] = (unsigned long)(c - l->conns);
	l->active--;
}

/* load_conn_error: the connection failed; its message (if any) is an error. */
static void load_conn_error(struct load *l, struct load_conn *c, const char *why)
{
	load_record(l, c, LOAD_ERROR, why, "");
	load_conn_close(l, c);
}

/* load_conn_watch: ask epoll for writability only while output is pending. */
static void load_conn_watch(struct load *l, struct load_conn *c, bool write)
{
	if (c->want_write == write)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (write ? EPOLLOUT : 0), .data.ptr = c };
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		msg_fatal("epoll_ctl: %m");
	c->want_write = write;
}

/* load_expect: wait for a reply in state, within the reply timeout. */
static void load_expect(struct load *l, struct load_conn *c, enum load_state state)
{
	c->state = state;
	c->deadline = load_now() + l->o.reply_timeout * 1000000u;
}

/* load_conn_flush: send what is queued; false if the connection failed. */
static bool load_conn_flush(struct load *l, struct load_conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
				 MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			c->deadline = load_now() + l->o.reply_timeout * 1000000u;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			break;
		} else {
			char why[128];
			str_format(why, sizeof(why), "send failed: %s", strerror(errno));
			load_conn_error(l, c, why);
			return false;
		}
	}
	bool pending = c->out_off < c->out.len;
	if (!pending) {
		str_clear(&c->out);
		c->out_off = 0;
	}
	load_conn_watch(l, c, pending);
	return true;
}

/* load_rcpt: append recipient j of message no to s. */
static void load_rcpt(const struct load *l, struct str *s, unsigned long no, unsigned long j)
{
	const struct load_opts *o = &l->o;
	if (!o->rcpt_numbered) {
		str_append(s, o->rcpt_prefix);
		return;
	}
	unsigned long user = (unsigned long)(((uint64_t)(no - 1) * o->rcpts + j) % o->users) + 1;
	str_printf(s, "%s%lu%s", o->rcpt_prefix, user, o->rcpt_suffix);
}

/* load_queue_message: headers and body of the connection's message. */
static void load_queue_message(struct load *l, struct load_conn *c)
{
	str_printf(&c->out, "From: <%s>\r\nTo: <", l->o.sender);
	load_rcpt(l, &c->out, c->msg_no, 0);
	str_printf(&c->out, ">\r\nSubject: smtp-load message %lu\r\nDate: %s\r\n"
		   "Message-ID: <%lu.%ld.%lld@smtp-load.invalid>\r\nX-Bench-Token: %s%lu\r\n",
		   c->msg_no, l->date, c->msg_no, l->pid, l->epoch, l->o.token_prefix, c->msg_no);
	str_append_n(&c->out, l->body.data, l->body.len);
}

/* load_txn_start: send MAIL (and with pipelining RCPT x r and DATA too). */
static void load_txn_start(struct load *l, struct load_conn *c)
{
	c->step = 0;
	c->mail_ok = false;
	c->rcpt_ok = 0;
	c->fail = 0;
	c->discard_dot = false;
	str_printf(&c->out, "MAIL FROM:<%s>\r\n", l->o.sender);
	if (c->pipelining) {
		for (unsigned long j = 0; j < l->o.rcpts; j++) {
			str_append(&c->out, "RCPT TO:<");
			load_rcpt(l, &c->out, c->msg_no, j);
			str_append(&c->out, ">\r\n");
		}
		str_append(&c->out, "DATA\r\n");
	}
	load_expect(l, c, LOAD_TXN);
	load_conn_flush(l, c);
}

/* load_msg_take: begin the next message from the pool on this connection. */
static void load_msg_take(struct load *l, struct load_conn *c)
{
	c->msg_no = ++l->next_msg;
	c->msgs++;
	c->msg_active = true;
	c->msg_start = load_now();
}

/* load_conn_next: after a message: the next one (RSET first after a
 * failure) or QUIT when this connection has carried its share. */
static void load_conn_next(struct load *l, struct load_conn *c, bool rset)
{
	if (l->stopped == NULL && c->msgs < l->o.per_conn && l->next_msg < l->o.messages) {
		if (rset) {
			str_append(&c->out, "RSET\r\n");
			load_expect(l, c, LOAD_RSET);
			load_conn_flush(l, c);
			return;
		}
		load_msg_take(l, c);
		load_txn_start(l, c);
		return;
	}
	str_append(&c->out, "QUIT\r\n");
	load_expect(l, c, LOAD_QUIT);
	load_conn_flush(l, c);
}

/* load_fail_note: remember the first failing reply of the message. */
static void load_fail_note(struct load_conn *c, int code, const char *stage)
{
	if (c->fail != 0)
		return;
	c->fail = code;
	c->fail_stage = stage;
	str_clear(&c->fail_text);
	str_append_n(&c->fail_text, c->reply_text.data, c->reply_text.len);
}

/* load_msg_failed: count the failed message, then go on (or close if the
 * reply made no sense). */
static void load_msg_failed(struct load *l, struct load_conn *c)
{
	enum load_outcome out = load_class(c->fail);
	load_record(l, c, out, c->fail_stage, str_c(&c->fail_text));
	if (out == LOAD_ERROR)
		load_conn_close(l, c);
	else
		load_conn_next(l, c, true);
}

/* load_data_reply: the reply to DATA: send the message, or count the failure. */
static void load_data_reply(struct load *l, struct load_conn *c, int code)
{
	if (code == 354) {
		/* A 354 after a failure (with pipelining) must still be answered:
		 * an empty message ends the DATA and its reply is ignored. */
		if (c->fail != 0) {
			str_append(&c->out, ".\r\n");
			c->discard_dot = true;
		} else {
			load_queue_message(l, c);
		}
		load_expect(l, c, LOAD_DOT);
		load_conn_flush(l, c);
		return;
	}
	load_fail_note(c, code, "DATA");
	load_msg_failed(l, c);
}

/* load_txn_reply: replies to MAIL, each RCPT and DATA. */
static void load_txn_reply(struct load *l, struct load_conn *c, int code)
{
	unsigned long r = l->o.rcpts;
	if (c->step == r + 1) {
		load_data_reply(l, c, code);
		return;
	}
	bool ok = code / 100 == 2;
	if (!ok) {
		/* After a failed MAIL, pipelined RCPTs fail too: not counted. */
		if (c->step > 0 && c->mail_ok)
			l->rcpt_refused++;
		load_fail_note(c, code, c->step == 0 ? "MAIL" : "RCPT");
	} else if (c->step > 0) {
		c->rcpt_ok++;
	} else {
		c->mail_ok = true;
	}
	bool mail_failed = c->step == 0 && !ok;
	bool last_rcpt = c->step == r;
	c->step++;
	if (c->pipelining) {
		load_expect(l, c, LOAD_TXN);
		return;
	}
	if (mail_failed || (last_rcpt && c->rcpt_ok == 0)) {
		load_msg_failed(l, c);
		return;
	}
	if (c->step <= r) {
		str_append(&c->out, "RCPT TO:<");
		load_rcpt(l, &c->out, c->msg_no, c->step - 1);
		str_append(&c->out, ">\r\n");
	} else {
		str_append(&c->out, "DATA\r\n");
	}
	load_expect(l, c, LOAD_TXN);
	load_conn_flush(l, c);
}

/* load_dot_reply: the reply after the final dot decides the message. */
static void load_dot_reply(struct load *l, struct load_conn *c, int code)
{
	if (c->discard_dot) {
		load_msg_failed(l, c);
		return;
	}
	if (code / 100 == 2) {
		if (c->out_off < c->out.len) {
			load_conn_error(l, c, "2xx reply before the message was sent");
			return;
		}
		load_record(l, c, LOAD_ACCEPTED, "", "");
		load_conn_next(l, c, false);
		return;
	}
	load_fail_note(c, code, "end of data");
	load_msg_failed(l, c);
}

/* load_session_refused: greeting, EHLO or HELO refused: count, then QUIT. */
static void load_session_refused(struct load *l, struct load_conn *c, int code,
				 const char *stage)
{
	c->fail = 0;
	load_fail_note(c, code, stage);
	enum load_outcome out = load_class(code);
	load_record(l, c, out, stage, str_c(&c->fail_text));
	if (out == LOAD_ERROR) {
		load_conn_close(l, c);
		return;
	}
	str_append(&c->out, "QUIT\r\n");
	load_expect(l, c, LOAD_QUIT);
	load_conn_flush(l, c);
}

/* load_conn_reply: one complete reply, dispatched on the session state. */
static void load_conn_reply(struct load *l, struct load_conn *c, int code)
{
	if (code == 421 && c->state != LOAD_QUIT && c->state != LOAD_CLOSING) {
		/* The server is closing the session: the message is deferred. */
		c->fail = 0;
		load_fail_note(c, code, "421");
		load_record(l, c, LOAD_TEMPFAIL, "server closing", str_c(&c->fail_text));
		load_conn_close(l, c);
		return;
	}
	switch (c->state) {
	case LOAD_GREETING:
		if (code / 100 != 2) {
			load_session_refused(l, c, code, "greeting");
			break;
		}
		str_printf(&c->out, "EHLO %s\r\n", l->o.helo);
		load_expect(l, c, LOAD_EHLO);
		load_conn_flush(l, c);
		break;
	case LOAD_EHLO:
	case LOAD_HELO:
		if (code / 100 == 2) {
			c->pipelining = l->o.pipelining && c->state == LOAD_EHLO &&
					c->reply_pipelining;
			l->conns_pipelined += c->pipelining;
			load_txn_start(l, c);
		} else if (code / 100 == 5 && c->state == LOAD_EHLO) {
			str_printf(&c->out, "HELO %s\r\n", l->o.helo);
			load_expect(l, c, LOAD_HELO);
			load_conn_flush(l, c);
		} else {
			load_session_refused(l, c, code, c->state == LOAD_EHLO ? "EHLO" : "HELO");
		}
		break;
	case LOAD_TXN: load_txn_reply(l, c, code); break;
	case LOAD_DOT: load_dot_reply(l, c, code); break;
	case LOAD_RSET:
		/* Other sessions may have emptied the pool meanwhile: look again. */
		if (code / 100 != 2)
			c->msgs = l->o.per_conn; /* no more messages after a failed RSET */
		load_conn_next(l, c, false);
		break;
	case LOAD_QUIT:
		c->state = LOAD_CLOSING;
		c->deadline = load_now() + LOAD_QUIT_WAIT_US;
		break;
	case LOAD_CLOSING: break;
	default: load_conn_error(l, c, "reply while none was expected"); break;
	}
}

/* load_reply_line: one reply line: the code when it ends a reply, 0 when
 * more lines follow, -1 when it is malformed. */
static int load_reply_line(struct load_conn *c, const char *line, size_t len)
{
	if (len < 3 || len > LOAD_LINE_MAX)
		return -1;
	for (int i = 0; i < 3; i++) {
		if (line[i] < '0' || line[i] > '9')
			return -1;
	}
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	if (c->reply_lines == 0) {
		str_clear(&c->reply_text);
		str_escape_log(&c->reply_text, line, len, LOAD_TEXT_MAX);
		c->reply_pipelining = false;
	}
	if (++c->reply_lines > LOAD_REPLY_LINES_MAX)
		return -1;
	static const char kw[] = "PIPELINING";
	const size_t kwlen = sizeof(kw) - 1;
	if (len >= 4 + kwlen && (len == 4 + kwlen || line[4 + kwlen] == ' ')) {
		size_t i = 0;
		while (i < kwlen && (line[4 + i] & ~0x20) == kw[i])
			i++;
		if (i == kwlen)
			c->reply_pipelining = true;
	}
	if (len > 3 && line[3] == '-')
		return 0;
	c->reply_lines = 0;
	return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

/* load_conn_parse: act on every complete reply in the input buffer. */
static void load_conn_parse(struct load *l, struct load_conn *c)
{
	while (c->state != LOAD_IDLE && c->in.len > 0) {
		char *nl = memchr(c->in.data, '\n', c->in.len);
		if (nl == NULL) {
			if (c->in.len > LOAD_LINE_MAX)
				load_conn_error(l, c, "reply line too long");
			return;
		}
		size_t used = (size_t)(nl - c->in.data) + 1, len = used - 1;
		if (len > 0 && c->in.data[len - 1] == '\r')
			len--;
		int code = load_reply_line(c, c->in.data, len);
		if (code < 0) {
			struct str why = STR_INIT;
			str_append(&why, "malformed reply: ");
			str_escape_log(&why, c->in.data, len, LOAD_TEXT_MAX);
			load_conn_error(l, c, str_c(&why));
			str_deinit(&why);
			return;
		}
		str_consume(&c->in, used);
		if (code > 0)
			load_conn_reply(l, c, code);
	}
}

/* load_conn_readable: read what the server sent; EOF ends the session. */
static void load_conn_readable(struct load *l, struct load_conn *c)
{
	char buf[16384];
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		char why[128];
		str_format(why, sizeof(why), "recv failed: %s", strerror(errno));
		load_conn_error(l, c, why);
		return;
	}
	if (n == 0) {
		if (c->state == LOAD_QUIT || c->state == LOAD_CLOSING)
			load_conn_close(l, c);
		else
			load_conn_error(l, c, "server closed the connection");
		return;
	}
	str_append_n(&c->in, buf, (size_t)n);
	load_conn_parse(l, c);
}

/* load_conn_writable: a connect finished, or queued output can move on. */
static void load_conn_writable(struct load *l, struct load_conn *c)
{
	if (c->state != LOAD_CONNECTING) {
		load_conn_flush(l, c);
		return;
	}
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		char why[128];
		str_format(why, sizeof(why), "connect failed: %s", strerror(err));
		load_conn_error(l, c, why);
		return;
	}
	load_expect(l, c, LOAD_GREETING);
	load_conn_watch(l, c, false);
}

/* load_conn_open: a new session in a free slot, carrying the next message. */
static void load_conn_open(struct load *l)
{
	struct load_conn *c = &l->conns[l->free_slots[--l->nfree]];
	l->active++;
	l->conns_opened++;
	c->msgs = 0;
	c->pipelining = false;
	c->reply_lines = 0;
	c->want_write = true;
	load_msg_take(l, c);
	c->fd = socket(l->o.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		msg_fatal("socket: %m");
	c->state = LOAD_CONNECTING;
	c->deadline = load_now() + l->o.reply_timeout * 1000000u;
	int one = 1;
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		msg_fatal("epoll_ctl: %m");
	if (connect(c->fd, (const struct sockaddr *)&l->o.addr, l->o.addrlen) == 0 ||
	    errno == EINPROGRESS)
		return;
	char why[128];
	str_format(why, sizeof(why), "connect failed: %s", strerror(errno));
	load_conn_error(l, c, why);
}

/* load_dispatch: one epoll event for one connection. */
static void load_dispatch(struct load *l, struct load_conn *c, uint32_t events)
{
	if (c->state == LOAD_IDLE)
		return; /* closed earlier in this round */
	if (c->state == LOAD_CONNECTING) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			load_conn_writable(l, c);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		load_conn_readable(l, c);
	if (c->state != LOAD_IDLE && (events & EPOLLOUT))
		load_conn_writable(l, c);
}

/* load_scan: end sessions whose reply (or connect) is overdue. */
static void load_scan(struct load *l, uint64_t now)
{
	for (unsigned long i = 0; i < l->o.concurrency; i++) {
		struct load_conn *c = &l->conns[i];
		if (c->state == LOAD_IDLE || now < c->deadline)
			continue;
		if (c->state == LOAD_CLOSING)
			load_conn_close(l, c);
		else
			load_conn_error(l, c, c->state == LOAD_CONNECTING ?
					"connect timed out" : "timed out waiting for a reply");
	}
}

/* load_stop: cut the run short: messages in flight count as errors. */
static void load_stop(struct load *l, const char *why)
{
	l->stopped = why;
	for (unsigned long i = 0; i < l->o.concurrency; i++) {
		if (l->conns[i].state != LOAD_IDLE)
			load_conn_error(l, &l->conns[i], why);
	}
}

/* load_run: keep -c sessions busy until every message is done or time is up. */
static void load_run(struct load *l)
{
	struct epoll_event ev[LOAD_EVENTS];
	uint64_t end = l->t0 + l->o.timeout * 1000000u, next_scan = 0;
	for (;;) {
		while (l->stopped == NULL && l->active < l->o.concurrency &&
		       l->next_msg < l->o.messages)
			load_conn_open(l);
		if (l->active == 0)
			break;
		int n = epoll_wait(l->epfd, ev, LOAD_EVENTS, 50);
		if (n < 0 && errno != EINTR)
			msg_fatal("epoll_wait: %m");
		for (int i = 0; i < n; i++)
			load_dispatch(l, ev[i].data.ptr, ev[i].events);
		uint64_t now = load_now();
		if (load_interrupted) {
			load_stop(l, "interrupted");
		} else if (now >= end) {
			load_stop(l, "global timeout (-T) reached");
		} else if (now >= next_scan) {
			load_scan(l, now);
			next_scan = now + LOAD_SCAN_US;
		}
	}
	l->t_end = load_now();
}

/* load_cmp_u32: qsort order for latencies. */
static int load_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* load_pct: the nearest-rank percentile of accepted latencies, in ms. */
static double load_pct(const struct load *l, unsigned pct)
{
	if (l->nlat == 0)
		return 0;
	unsigned long rank = (unsigned long)(((uint64_t)l->nlat * pct + 99) / 100);
	return l->lat[rank > 0 ? rank - 1 : 0] / 1000.0;
}

/* load_report: the summary, and with -j one JSON line after it. */
static void load_report(struct load *l)
{
	const struct load_opts *o = &l->o;
	double wall = (double)(l->t_end - l->t0) / 1e6;
	double rate = wall > 0 ? l->counts[LOAD_ACCEPTED] / wall : 0;
	qsort(l->lat, l->nlat, sizeof(l->lat[0]), load_cmp_u32);
	printf("smtp-load: %s, %lu messages of %lu B, %lu rcpt each, %lu per connection, "
	       "concurrency %lu, pipelining %s (used on %lu of %lu connections)\n",
	       o->server, o->messages, o->size, o->rcpts, o->per_conn, o->concurrency,
	       o->pipelining ? "on" : "off", l->conns_pipelined, l->conns_opened);
	printf("sent          %lu\naccepted      %lu\ntemp-failed   %lu\nrejected      %lu\n"
	       "errors        %lu\nrcpt-refused  %lu\nnot-started   %lu\n", l->next_msg,
	       l->counts[LOAD_ACCEPTED], l->counts[LOAD_TEMPFAIL], l->counts[LOAD_REJECTED],
	       l->counts[LOAD_ERROR], l->rcpt_refused, o->messages - l->next_msg);
	printf("wall          %.3f s\naccepted/s    %.1f\n", wall, rate);
	printf("latency ms    p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", load_pct(l, 50),
	       load_pct(l, 90), load_pct(l, 99), load_pct(l, 100));
	if (l->stopped != NULL)
		printf("stopped       %s\n", l->stopped);
	if (o->json) {
		printf("{\"server\":\"%s\",\"messages\":%lu,\"concurrency\":%lu,\"recipients\":%lu,"
		       "\"size\":%lu,\"per_connection\":%lu,\"pipelining\":%s,"
		       "\"connections\":%lu,\"pipelined_connections\":%lu,",
		       o->server, o->messages, o->concurrency, o->rcpts, o->size, o->per_conn,
		       o->pipelining ? "true" : "false", l->conns_opened, l->conns_pipelined);
		printf("\"sent\":%lu,\"accepted\":%lu,\"tempfail\":%lu,\"rejected\":%lu,"
		       "\"errors\":%lu,\"rcpt_refused\":%lu,\"not_started\":%lu,",
		       l->next_msg, l->counts[LOAD_ACCEPTED], l->counts[LOAD_TEMPFAIL],
		       l->counts[LOAD_REJECTED], l->counts[LOAD_ERROR], l->rcpt_refused,
		       o->messages - l->next_msg);
		printf("\"wall_s\":%.3f,\"accepted_per_s\":%.1f,\"p50_ms\":%.2f,\"p90_ms\":%.2f,"
		       "\"p99_ms\":%.2f,\"max_ms\":%.2f,\"stopped\":%s%s%s}\n", wall, rate,
		       load_pct(l, 50), load_pct(l, 90), load_pct(l, 99), load_pct(l, 100),
		       l->stopped ? "\"" : "", l->stopped ? l->stopped : "null",
		       l->stopped ? "\"" : "");
	}
	fflush(stdout);
}

/* load_on_signal: SIGINT/SIGTERM end the run with a report. */
static void load_on_signal(int signo)
{
	(void)signo;
	load_interrupted = 1;
}

/* load_setup: signals, descriptor limit, epoll, slots, the message body. */
static void load_setup(struct load *l)
{
	struct sigaction sa = { .sa_handler = load_on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl;
	rlim_t need = (rlim_t)l->o.concurrency + 32;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
			msg_fatal("-c %lu needs %lu descriptors; the hard limit is %lu",
				  l->o.concurrency, (unsigned long)need, (unsigned long)rl.rlim_max);
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			msg_fatal("setrlimit(RLIMIT_NOFILE): %m");
	}
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		msg_fatal("epoll_create1: %m");
	l->conns = xcalloc(l->o.concurrency, sizeof(*l->conns));
	l->free_slots = xcalloc(l->o.concurrency, sizeof(*l->free_slots));
	for (unsigned long i = 0; i < l->o.concurrency; i++) {
		l->conns[i].fd = -1;
		l->free_slots[l->nfree++] = l->o.concurrency - 1 - i;
	}
	l->lat = xcalloc(l->o.messages, sizeof(*l->lat));
	load_body_make(l);
	time_t now = time(NULL);
	struct tm tm;
	if (localtime_r(&now, &tm) == NULL ||
	    strftime(l->date, sizeof(l->date), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		msg_fatal("cannot format the date");
	l->pid = (long)getpid();
	l->epoch = (long long)now;
}

/* load_cleanup: free everything (the run is over). */
static void load_cleanup(struct load *l)
{
	for (unsigned long i = 0; i < l->o.concurrency; i++) {
		str_deinit(&l->conns[i].in);
		str_deinit(&l->conns[i].out);
		str_deinit(&l->conns[i].reply_text);
		str_deinit(&l->conns[i].fail_text);
	}
	free(l->conns);
	free(l->free_slots);
	free(l->lat);
	str_deinit(&l->body);
	free(l->o.rcpt_prefix);
	free(l->o.rcpt_suffix);
	close(l->epfd);
}

int main(int argc, char **argv)
{
	struct load l = { .epfd = -1 };
	msg_init("smtp-load");
	msg_set_target(MSG_TARGET_TTY);
	load_options(&l.o, argc, argv);
	load_setup(&l);
	l.t0 = load_now();
	load_run(&l);
	load_report(&l);
	int status = l.counts[LOAD_ACCEPTED] == l.o.messages && l.rcpt_refused == 0 ? 0 : 1;
	load_cleanup(&l);
	return status;
}
