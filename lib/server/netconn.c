/* netconn.c: buffered non-blocking connections, plain or TLS; see
 * netconn.h for the contract.
 *
 * Re-entrancy: every entry from the loop (io event, timer, kick) holds
 * conn->busy while it runs. netconn_free() during that time only marks the
 * connection; the entry point frees it on the way out, and after each
 * callback the handlers check netconn_gone() before touching anything.
 * Owner calls never invoke callbacks: what they find (a write error, a
 * drained buffer) is reported by the "kick", a 0 ms timer.
 *
 * closed vs failed: "closed" means closed() was called and no more events
 * are handled; "failed" means the socket itself is unusable, so nothing is
 * written any more. After a timeout the owner may still write a last reply
 * ("421 ... timeout exceeded"), which netconn_free() tries to send. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/netconn.h"
#include "server/tls_server.h"
#include "util/alloc.h"
#include "util/events.h"
#include "util/msg.h"

/* Bytes per read() or gnutls_record_recv(), and per TLS record written. */
#define NETCONN_CHUNK 16384
/* Reads per event before giving other connections a turn. */
#define NETCONN_READS_PER_EVENT 8
/* Keep the already-written head of the output buffer until it is this big
 * (and half the buffer), then move the rest down. */
#define NETCONN_COMPACT_MIN (64 * 1024)
/* Non-fatal GnuTLS results tolerated in a row during the handshake. */
#define NETCONN_HANDSHAKE_RETRIES 16

enum netconn_state {
	NETCONN_PLAIN,
	NETCONN_TLS_FLUSH,     /* STARTTLS: sending queued plaintext first */
	NETCONN_TLS_HANDSHAKE, /* gnutls_handshake in progress */
	NETCONN_TLS,           /* TLS up */
};

enum {
	NETCONN_KICK_FAIL = 1,    /* report fail_reason through closed() */
	NETCONN_KICK_DRAINED = 2, /* call output_drained() */
	NETCONN_KICK_INPUT = 4,   /* redeliver buffered input, read on */
	NETCONN_KICK_READ = 8,    /* read on (GnuTLS may hold bytes) */
};

struct netconn {
	struct event_loop *loop;
	int fd;
	struct event_io *io;
	const struct netconn_callbacks *cb;
	void *ctx;

	struct str input;
	struct str output;
	size_t out_pos; /* output.data[0..out_pos) is already written */
	size_t input_limit;
	size_t output_limit;

	unsigned timeout_ms;
	struct event_timer *timer;
	uint64_t last_activity;
	struct event_timer *kick;
	unsigned kick_flags;

	unsigned busy;
	bool paused;
	bool closed;
	bool failed;
	bool free_requested;
	bool drain_notify; /* output went non-empty since the last drained() */
	char fail_reason[256];

	enum netconn_state state;
	size_t plain_left; /* TLS_FLUSH: plaintext bytes still to send */
	gnutls_session_t session;
	struct tls_server *tls;
	bool hs_want_write;
	bool tls_send_again;   /* gnutls_record_send said EAGAIN: call again */
	bool tls_recv_wants_write;
	char tls_protocol[16];
	char tls_cipher[64];
	int tls_bits;
	char tls_info[128];
};

static void netconn_io_fn(void *ctx, int fd, unsigned events);
static void netconn_destroy(struct netconn *conn);

/* netconn_create: wrap fd and start reading. */
struct netconn *netconn_create(struct event_loop *loop, int fd, const struct netconn_callbacks *cb,
			       void *ctx)
{
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		msg_fatal("fcntl(%d, O_NONBLOCK) failed: %m", fd);
	struct netconn *conn = xcalloc(1, sizeof(*conn));
	conn->loop = loop;
	conn->fd = fd;
	conn->cb = cb;
	conn->ctx = ctx;
	str_init(&conn->input);
	str_init(&conn->output);
	conn->input_limit = NETCONN_DEFAULT_INPUT_LIMIT;
	conn->output_limit = NETCONN_DEFAULT_OUTPUT_LIMIT;
	conn->last_activity = event_now_ms(loop);
	conn->io = event_io_add(loop, fd, EVENT_READ, netconn_io_fn, conn);
	return conn;
}

/* netconn_gone: the connection must not be driven any further. */
static bool netconn_gone(const struct netconn *conn)
{
	return conn->closed || conn->free_requested;
}

/* netconn_output_pending: bytes queued but not yet written. */
size_t netconn_output_pending(const struct netconn *conn)
{
	return conn->output.len - conn->out_pos;
}

/* netconn_can_read: whether reading more input is allowed now. */
static bool netconn_can_read(const struct netconn *conn)
{
	return !netconn_gone(conn) && !conn->failed && !conn->paused &&
	       (conn->state == NETCONN_PLAIN || conn->state == NETCONN_TLS) &&
	       conn->input.len < conn->input_limit &&
	       netconn_output_pending(conn) <= conn->output_limit;
}

/* netconn_can_send: whether output may go to the socket in this state. */
static bool netconn_can_send(const struct netconn *conn)
{
	return !conn->failed && conn->state != NETCONN_TLS_HANDSHAKE;
}

/* netconn_update_io: tell the loop what we wait for. */
static void netconn_update_io(struct netconn *conn)
{
	if (conn->io == NULL)
		return;
	unsigned want = 0;
	if (conn->failed) {
		/* closed() is on its way (kick) */
	} else if (conn->state == NETCONN_TLS_HANDSHAKE) {
		want = conn->hs_want_write ? EVENT_WRITE : EVENT_READ;
	} else {
		if (netconn_output_pending(conn) > 0 || conn->tls_recv_wants_write)
			want |= EVENT_WRITE;
		if (netconn_can_read(conn))
			want |= EVENT_READ;
	}
	event_io_set(conn->io, want);
}

/* netconn_kick_fn: deferred work (see the NETCONN_KICK_* flags). */
static void netconn_kick_fn(void *ctx);

/* netconn_kick: schedule deferred work for the next loop round. */
static void netconn_kick(struct netconn *conn, unsigned flag)
{
	conn->kick_flags |= flag;
	if (conn->kick == NULL)
		conn->kick = event_timer_add(conn->loop, 0, netconn_kick_fn, conn);
	else if (!event_timer_pending(conn->kick))
		event_timer_reset(conn->kick, 0);
}

/* netconn_touch: I/O progress: restart the idle timeout. */
static void netconn_touch(struct netconn *conn)
{
	conn->last_activity = event_now_ms(conn->loop);
}

/* netconn_set_fail: note why the socket became unusable. */
static void netconn_set_fail(struct netconn *conn, const char *reason)
{
	conn->failed = true;
	if (conn->fail_reason[0] == '\0')
		str_copy(conn->fail_reason, sizeof(conn->fail_reason), reason);
}

/* netconn_fail: end the connection and tell the owner (loop context). */
static void netconn_fail(struct netconn *conn, const char *reason)
{
	if (netconn_gone(conn))
		return;
	conn->closed = true;
	event_io_remove(&conn->io);
	event_timer_remove(&conn->timer);
	event_timer_remove(&conn->kick);
	conn->cb->closed(conn->ctx, reason);
}

/* netconn_errno_reason: a socket errno as a closed() reason. */
static void netconn_errno_reason(struct netconn *conn, const char *op, int err)
{
	char buf[128];
	if (err == ECONNRESET || err == EPIPE || err == ENOTCONN)
		str_copy(buf, sizeof(buf), "lost connection");
	else
		snprintf(buf, sizeof(buf), "%s failed: %s", op, strerror(err));
	netconn_set_fail(conn, buf);
}

/* netconn_tls_reason: a GnuTLS failure as a closed() reason. A peer that
 * vanished without close_notify after the handshake is just "lost
 * connection", as Postfix logs it. */
static void netconn_tls_reason(struct netconn *conn, bool handshake, int ret)
{
	char buf[160];
	bool lost = ret == GNUTLS_E_PREMATURE_TERMINATION || ret == GNUTLS_E_PUSH_ERROR ||
		    ret == GNUTLS_E_PULL_ERROR;
	if (handshake)
		snprintf(buf, sizeof(buf), "TLS handshake failed: %s",
			 lost ? "lost connection" : gnutls_strerror(ret));
	else if (lost)
		str_copy(buf, sizeof(buf), "lost connection");
	else
		snprintf(buf, sizeof(buf), "TLS error: %s", gnutls_strerror(ret));
	netconn_set_fail(conn, buf);
}

/* --- output --- */

/* netconn_output_done: bytes were written; drop them and maybe compact. */
static void netconn_output_done(struct netconn *conn, size_t n)
{
	conn->out_pos += n;
	if (conn->out_pos == conn->output.len) {
		/* an idle connection does not keep a big buffer */
		if (conn->output.cap > NETCONN_COMPACT_MIN)
			str_deinit(&conn->output);
		else
			str_clear(&conn->output);
		conn->out_pos = 0;
	} else if (conn->out_pos >= NETCONN_COMPACT_MIN && conn->out_pos * 2 >= conn->output.len) {
		str_consume(&conn->output, conn->out_pos);
		conn->out_pos = 0;
	}
	netconn_touch(conn);
}

/* netconn_send_plain: send(2) until done or EAGAIN; -1 when failed. In
 * TLS_FLUSH only what was queued before netconn_starttls goes out. */
static int netconn_send_plain(struct netconn *conn)
{
	while (netconn_output_pending(conn) > 0) {
		size_t len = netconn_output_pending(conn);
		if (conn->state == NETCONN_TLS_FLUSH) {
			if (conn->plain_left == 0)
				break;
			if (len > conn->plain_left)
				len = conn->plain_left;
		}
		ssize_t n = send(conn->fd, conn->output.data + conn->out_pos, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			netconn_errno_reason(conn, "write", errno);
			return -1;
		}
		if (conn->state == NETCONN_TLS_FLUSH)
			conn->plain_left -= (size_t)n;
		netconn_output_done(conn, (size_t)n);
	}
	return 0;
}

/* netconn_send_tls: one record at a time until done or EAGAIN. After
 * EAGAIN GnuTLS holds the encrypted record; calling with no data sends the
 * rest and returns the size that record carried. */
static int netconn_send_tls(struct netconn *conn)
{
	while (netconn_output_pending(conn) > 0) {
		ssize_t n;
		if (conn->tls_send_again) {
			n = gnutls_record_send(conn->session, NULL, 0);
		} else {
			size_t len = netconn_output_pending(conn);
			if (len > NETCONN_CHUNK)
				len = NETCONN_CHUNK;
			n = gnutls_record_send(conn->session, conn->output.data + conn->out_pos, len);
		}
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
			conn->tls_send_again = true;
			if (n == GNUTLS_E_AGAIN)
				return 0;
			continue;
		}
		conn->tls_send_again = false;
		if (n < 0) {
			netconn_tls_reason(conn, false, (int)n);
			return -1;
		}
		netconn_output_done(conn, (size_t)n);
	}
	return 0;
}

/* netconn_send: write what the socket takes; -1 when the socket failed.
 * The STARTTLS plaintext reply going out completes TLS_FLUSH. */
static int netconn_send(struct netconn *conn)
{
	if (!netconn_can_send(conn))
		return 0;
	int ret = conn->state == NETCONN_TLS ? netconn_send_tls(conn) : netconn_send_plain(conn);
	if (ret == 0 && conn->state == NETCONN_TLS_FLUSH && conn->plain_left == 0) {
		conn->state = NETCONN_TLS_HANDSHAKE;
		conn->hs_want_write = false;
	}
	return ret;
}

/* netconn_write_step: send from the loop, then report drain or failure.
 * Returns false when the connection is gone. */
static bool netconn_write_step(struct netconn *conn)
{
	if (netconn_output_pending(conn) == 0 && !conn->tls_send_again)
		return true;
	if (netconn_send(conn) < 0) {
		netconn_fail(conn, conn->fail_reason);
		return false;
	}
	if (conn->drain_notify && netconn_output_pending(conn) == 0) {
		conn->drain_notify = false;
		if (conn->cb->output_drained != NULL)
			conn->cb->output_drained(conn->ctx);
	}
	return !netconn_gone(conn);
}

/* netconn_write: queue bytes for the peer. */
void netconn_write(struct netconn *conn, const void *data, size_t len)
{
	if (conn->failed || conn->free_requested || len == 0)
		return;
	str_append_n(&conn->output, data, len);
	conn->drain_notify = true;
	if (conn->busy == 0)
		netconn_update_io(conn);
}

/* netconn_printf: queue formatted text for the peer. */
void netconn_printf(struct netconn *conn, const char *fmt, ...)
{
	if (conn->failed || conn->free_requested)
		return;
	va_list ap;
	va_start(ap, fmt);
	str_vprintf(&conn->output, fmt, ap);
	va_end(ap);
	conn->drain_notify = true;
	if (conn->busy == 0)
		netconn_update_io(conn);
}

char netconn_vwrite_line(struct netconn *conn, const char *fmt, va_list ap)
{
	char line[NETCONN_LINE_MAX + 1];
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		msg_panic("netconn_vwrite_line: bad format %s", fmt);
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	netconn_write(conn, line, (size_t)n);
	netconn_write(conn, "\r\n", 2);
	return line[0];
}

/* netconn_flush: try writing now; callbacks follow from the loop. */
void netconn_flush(struct netconn *conn)
{
	if (conn->free_requested || (netconn_output_pending(conn) == 0 && !conn->tls_send_again))
		return;
	if (netconn_send(conn) < 0) {
		if (!conn->closed)
			netconn_kick(conn, NETCONN_KICK_FAIL);
		return;
	}
	if (conn->drain_notify && netconn_output_pending(conn) == 0 && !conn->closed) {
		conn->drain_notify = false;
		if (conn->cb->output_drained != NULL)
			netconn_kick(conn, NETCONN_KICK_DRAINED);
	}
	if (conn->busy == 0)
		netconn_update_io(conn);
}

/* --- input --- */

/* netconn_recv_plain: one read of up to max bytes; >0 bytes, 0 would
 * block, -1 failed. */
static int netconn_recv_plain(struct netconn *conn, size_t max)
{
	for (;;) {
		ssize_t n = recv(conn->fd, conn->input.data + conn->input.len, max, 0);
		if (n > 0)
			return (int)n;
		if (n == 0) {
			netconn_set_fail(conn, "lost connection");
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		netconn_errno_reason(conn, "read", errno);
		return -1;
	}
}

/* netconn_recv_tls: up to one record's worth; as netconn_recv_plain. Warning
 * alerts are skipped; renegotiation is refused by closing. */
static int netconn_recv_tls(struct netconn *conn, size_t max)
{
	for (int tries = 0; tries < NETCONN_HANDSHAKE_RETRIES; tries++) {
		ssize_t n = gnutls_record_recv(conn->session, conn->input.data + conn->input.len,
					       max);
		if (n > 0)
			return (int)n;
		if (n == 0) {
			netconn_set_fail(conn, "lost connection");
			return -1;
		}
		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n == GNUTLS_E_AGAIN) {
			conn->tls_recv_wants_write = gnutls_record_get_direction(conn->session) == 1;
			return 0;
		}
		if (n == GNUTLS_E_REHANDSHAKE) {
			netconn_set_fail(conn, "TLS error: renegotiation refused");
			return -1;
		}
		if (gnutls_error_is_fatal((int)n)) {
			netconn_tls_reason(conn, false, (int)n);
			return -1;
		}
	}
	netconn_set_fail(conn, "TLS error: too many alerts");
	return -1;
}

/* netconn_read_step: read and deliver input while allowed. Returns false
 * when the connection is gone; *progress_r tells whether bytes came. */
static bool netconn_read_step(struct netconn *conn, bool *progress_r)
{
	for (int reads = 0; netconn_can_read(conn); reads++) {
		if (reads == NETCONN_READS_PER_EVENT) {
			/* give others a turn; GnuTLS may hold decrypted bytes
			 * that epoll cannot see, so come back by timer */
			if (conn->state == NETCONN_TLS)
				netconn_kick(conn, NETCONN_KICK_READ);
			break;
		}
		/* never beyond the limit: what does not fit waits in the
		 * kernel, or in GnuTLS (picked up by the kick on resume) */
		size_t max = conn->input_limit - conn->input.len;
		if (max > NETCONN_CHUNK)
			max = NETCONN_CHUNK;
		str_reserve(&conn->input, max);
		int n = conn->state == NETCONN_TLS ? netconn_recv_tls(conn, max)
						   : netconn_recv_plain(conn, max);
		if (n < 0) {
			netconn_fail(conn, conn->fail_reason);
			return false;
		}
		if (n == 0)
			break;
		*progress_r = true;
		conn->input.len += (size_t)n;
		conn->input.data[conn->input.len] = '\0';
		netconn_touch(conn);
		conn->cb->input(conn->ctx);
		if (netconn_gone(conn))
			return false;
		if (conn->input.len == 0 && conn->input.cap > 2 * NETCONN_CHUNK) {
			secure_zero(conn->input.data, conn->input.cap);
			str_deinit(&conn->input);
		}
		/* answer everything the input produced in one write */
		if (!netconn_write_step(conn))
			return false;
	}
	return true;
}

/* --- TLS handshake --- */

/* An OpenSSL name for each IANA TLS 1.2 suite GnuTLS offers by default, as
 * Postfix logs them; TLS 1.3 names are the same in both. */
static const struct netconn_suite_name {
	const char *iana;
	const char *openssl;
} netconn_suite_names[] = {
	{ "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384" },
	{ "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256" },
	{ "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305" },
	{ "TLS_ECDHE_ECDSA_WITH_AES_256_CCM", "ECDHE-ECDSA-AES256-CCM" },
	{ "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", "ECDHE-ECDSA-AES128-CCM" },
	{ "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA" },
	{ "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA" },
	{ "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384" },
	{ "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256" },
	{ "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305" },
	{ "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA" },
	{ "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA" },
	{ "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "DHE-RSA-AES256-GCM-SHA384" },
	{ "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "DHE-RSA-AES128-GCM-SHA256" },
	{ "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "DHE-RSA-CHACHA20-POLY1305" },
	{ "TLS_DHE_RSA_WITH_AES_256_CCM", "DHE-RSA-AES256-CCM" },
	{ "TLS_DHE_RSA_WITH_AES_128_CCM", "DHE-RSA-AES128-CCM" },
	{ "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", "DHE-RSA-AES256-SHA" },
	{ "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", "DHE-RSA-AES128-SHA" },
	{ "TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384" },
	{ "TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256" },
	{ "TLS_RSA_WITH_AES_256_CCM", "AES256-CCM" },
	{ "TLS_RSA_WITH_AES_128_CCM", "AES128-CCM" },
	{ "TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA" },
	{ "TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA" },
};

/* netconn_cipher_name: OpenSSL's name for an IANA suite name. */
static const char *netconn_cipher_name(const char *iana)
{
	for (size_t i = 0; i < N_ELEMENTS(netconn_suite_names); i++) {
		if (strcmp(netconn_suite_names[i].iana, iana) == 0)
			return netconn_suite_names[i].openssl;
	}
	return iana;
}

/* netconn_tls_describe: fill in protocol, cipher and bits after the
 * handshake ("TLS1.3" is written "TLSv1.3", as OpenSSL does). */
static void netconn_tls_describe(struct netconn *conn)
{
	const char *proto = gnutls_protocol_get_name(gnutls_protocol_get_version(conn->session));
	if (proto == NULL)
		proto = "unknown";
	if (strncmp(proto, "TLS", 3) == 0 && proto[3] >= '0' && proto[3] <= '9')
		snprintf(conn->tls_protocol, sizeof(conn->tls_protocol), "TLSv%s", proto + 3);
	else
		str_copy(conn->tls_protocol, sizeof(conn->tls_protocol), proto);
	const char *suite = gnutls_ciphersuite_get(conn->session);
	if (suite == NULL)
		suite = gnutls_cipher_get_name(gnutls_cipher_get(conn->session));
	str_copy(conn->tls_cipher, sizeof(conn->tls_cipher),
		 netconn_cipher_name(suite != NULL ? suite : "unknown"));
	conn->tls_bits = (int)gnutls_cipher_get_key_size(gnutls_cipher_get(conn->session)) * 8;
	snprintf(conn->tls_info, sizeof(conn->tls_info), "%s with cipher %s (%d/%d bits)",
		 conn->tls_protocol, conn->tls_cipher, conn->tls_bits, conn->tls_bits);
}

/* netconn_handshake_step: drive the handshake. Returns true when it is
 * done and the connection lives on, false while in progress or gone. */
static bool netconn_handshake_step(struct netconn *conn)
{
	int ret = 0;
	for (int tries = 0;; tries++) {
		ret = gnutls_handshake(conn->session);
		if (ret == 0 || gnutls_error_is_fatal(ret) || ret == GNUTLS_E_AGAIN ||
		    tries == NETCONN_HANDSHAKE_RETRIES)
			break;
	}
	if (ret == GNUTLS_E_AGAIN) {
		conn->hs_want_write = gnutls_record_get_direction(conn->session) == 1;
		return false;
	}
	if (ret < 0) {
		netconn_tls_reason(conn, true, ret);
		netconn_fail(conn, conn->fail_reason);
		return false;
	}
	conn->state = NETCONN_TLS;
	netconn_tls_describe(conn);
	netconn_touch(conn);
	if (conn->cb->tls_done != NULL) {
		conn->cb->tls_done(conn->ctx);
		if (netconn_gone(conn))
			return false;
	}
	return true;
}

/* netconn_starttls: begin server TLS on this connection. */
int netconn_starttls(struct netconn *conn, struct tls_server *tls, const char **error_r)
{
	if (netconn_gone(conn) || conn->failed) {
		*error_r = "connection closed";
		return -1;
	}
	if (conn->state != NETCONN_PLAIN) {
		*error_r = "TLS already started";
		return -1;
	}
	if (tls_server_session_create(tls, conn->fd, &conn->session, error_r) < 0)
		return -1;
	tls_server_ref(tls);
	conn->tls = tls;
	/* RFC 3207 4.2: plaintext pipelined after STARTTLS is discarded */
	secure_zero(conn->input.data, conn->input.len);
	str_clear(&conn->input);
	conn->plain_left = netconn_output_pending(conn);
	conn->state = conn->plain_left > 0 ? NETCONN_TLS_FLUSH : NETCONN_TLS_HANDSHAKE;
	conn->hs_want_write = false;
	netconn_touch(conn);
	if (conn->busy == 0)
		netconn_update_io(conn);
	return 0;
}

/* --- loop entry points --- */

/* netconn_release: leave a loop entry point: free or re-arm. */
static void netconn_release(struct netconn *conn)
{
	if (--conn->busy > 0)
		return;
	if (conn->free_requested) {
		netconn_destroy(conn);
		return;
	}
	netconn_update_io(conn);
}

/* netconn_handle: one io event. */
static void netconn_handle(struct netconn *conn, unsigned events)
{
	bool tls_done = false;
	if (conn->state == NETCONN_TLS_HANDSHAKE) {
		if (!netconn_handshake_step(conn))
			return;
		/* output queued during the handshake (an implicit-TLS greeting)
		 * can go now */
		tls_done = true;
	}
	if ((events & EVENT_WRITE) != 0 || tls_done) {
		if (!netconn_write_step(conn))
			return;
	}
	bool progress = false;
	if ((events & (EVENT_READ | EVENT_ERROR)) != 0 || conn->tls_recv_wants_write || tls_done) {
		conn->tls_recv_wants_write = false;
		if (!netconn_read_step(conn, &progress))
			return;
	}
	/* A hangup or error we could not read through: the peer is gone, and
	 * level-triggered epoll would report it again and again. */
	if ((events & EVENT_ERROR) != 0 && !progress && conn->state != NETCONN_TLS_HANDSHAKE) {
		netconn_set_fail(conn, "lost connection");
		netconn_fail(conn, conn->fail_reason);
	}
}

/* netconn_io_fn: the socket's event handler. */
static void netconn_io_fn(void *ctx, int fd, unsigned events)
{
	struct netconn *conn = ctx;
	conn->busy++;
	if (!netconn_gone(conn))
		netconn_handle(conn, events);
	netconn_release(conn);
}

/* netconn_kick_fn: run the deferred work netconn_kick() asked for. */
static void netconn_kick_fn(void *ctx)
{
	struct netconn *conn = ctx;
	unsigned flags = conn->kick_flags;
	conn->kick_flags = 0;
	conn->busy++;
	if ((flags & NETCONN_KICK_FAIL) != 0) {
		netconn_fail(conn, conn->fail_reason);
	} else if ((flags & NETCONN_KICK_DRAINED) != 0 && conn->cb->output_drained != NULL) {
		conn->cb->output_drained(conn->ctx);
	}
	if ((flags & (NETCONN_KICK_INPUT | NETCONN_KICK_READ)) != 0 && !netconn_gone(conn) &&
	    !conn->paused && (conn->state == NETCONN_PLAIN || conn->state == NETCONN_TLS)) {
		bool progress = false;
		if ((flags & NETCONN_KICK_INPUT) != 0 && conn->input.len > 0)
			conn->cb->input(conn->ctx);
		if (!netconn_gone(conn) && netconn_write_step(conn))
			(void)netconn_read_step(conn, &progress);
	}
	netconn_release(conn);
}

/* netconn_timeout_fn: the idle timer; re-armed lazily to the deadline. */
static void netconn_timeout_fn(void *ctx)
{
	struct netconn *conn = ctx;
	uint64_t now = event_now_ms(conn->loop);
	bool waiting_for_peer = !conn->paused || netconn_output_pending(conn) > 0 ||
				conn->state == NETCONN_TLS_HANDSHAKE;
	if (!waiting_for_peer)
		conn->last_activity = now;
	uint64_t deadline = conn->last_activity + conn->timeout_ms;
	if (now < deadline) {
		event_timer_reset(conn->timer, (unsigned)(deadline - now));
		return;
	}
	conn->busy++;
	netconn_fail(conn, "timeout");
	netconn_release(conn);
}

/* --- owner calls --- */

/* netconn_free: free now, or when the running callback returns. */
void netconn_free(struct netconn **connp)
{
	struct netconn *conn = *connp;
	if (conn == NULL)
		return;
	*connp = NULL;
	if (conn->busy > 0)
		conn->free_requested = true;
	else
		netconn_destroy(conn);
}

/* netconn_destroy: last write attempt, close_notify, close, free. */
static void netconn_destroy(struct netconn *conn)
{
	(void)netconn_send(conn);
	event_io_remove(&conn->io);
	event_timer_remove(&conn->timer);
	event_timer_remove(&conn->kick);
	if (conn->session != NULL) {
		if (conn->state == NETCONN_TLS && !conn->failed)
			(void)gnutls_bye(conn->session, GNUTLS_SHUT_WR);
		gnutls_deinit(conn->session);
	}
	tls_server_unref(&conn->tls);
	if (close(conn->fd) < 0)
		msg_warn("close(%d) failed: %m", conn->fd);
	/* the input may hold credentials (AUTH PLAIN, LOGIN) */
	secure_zero(conn->input.data, conn->input.cap);
	str_deinit(&conn->input);
	str_deinit(&conn->output);
	free(conn);
}

/* netconn_input: the input buffer, owned by the connection. */
struct str *netconn_input(struct netconn *conn)
{
	return &conn->input;
}

/* netconn_set_input_limit: the most input buffered by reads. */
void netconn_set_input_limit(struct netconn *conn, size_t bytes)
{
	conn->input_limit = bytes;
	if (conn->busy == 0 && !netconn_gone(conn))
		netconn_update_io(conn);
}

/* netconn_set_output_limit: pending output above which reading stops. */
void netconn_set_output_limit(struct netconn *conn, size_t bytes)
{
	conn->output_limit = bytes;
	if (conn->busy == 0 && !netconn_gone(conn))
		netconn_update_io(conn);
}

/* netconn_set_timeout: (re)start the idle timer; 0 stops it. */
void netconn_set_timeout(struct netconn *conn, unsigned msecs)
{
	if (netconn_gone(conn))
		return;
	conn->timeout_ms = msecs;
	netconn_touch(conn);
	if (msecs == 0)
		event_timer_remove(&conn->timer);
	else if (conn->timer == NULL)
		conn->timer = event_timer_add(conn->loop, msecs, netconn_timeout_fn, conn);
	else
		event_timer_reset(conn->timer, msecs);
}

/* netconn_pause_input: stop or resume reading; resuming also re-checks
 * the limits after the owner consumed input outside input(). */
void netconn_pause_input(struct netconn *conn, bool pause)
{
	if (netconn_gone(conn))
		return;
	bool was_paused = conn->paused;
	conn->paused = pause;
	if (!pause) {
		if (was_paused)
			netconn_touch(conn);
		if (conn->input.len > 0 || conn->state == NETCONN_TLS)
			netconn_kick(conn, NETCONN_KICK_INPUT);
	}
	if (conn->busy == 0)
		netconn_update_io(conn);
}

/* netconn_is_tls: TLS started (handshake maybe still running). */
bool netconn_is_tls(const struct netconn *conn)
{
	return conn->session != NULL;
}

/* netconn_tls_protocol: "TLSv1.3", or "" before the handshake. */
const char *netconn_tls_protocol(const struct netconn *conn)
{
	return conn->tls_protocol;
}

/* netconn_tls_cipher: the suite's OpenSSL name, or "". */
const char *netconn_tls_cipher(const struct netconn *conn)
{
	return conn->tls_cipher;
}

/* netconn_tls_bits: symmetric key bits, or 0. */
int netconn_tls_bits(const struct netconn *conn)
{
	return conn->tls_bits;
}

/* netconn_tls_info: "PROTO with cipher NAME (B/B bits)", or "". */
const char *netconn_tls_info(const struct netconn *conn)
{
	return conn->tls_info;
}

/* netconn_fd: the socket. */
int netconn_fd(const struct netconn *conn)
{
	return conn->fd;
}
