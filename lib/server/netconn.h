/* netconn.h: a buffered, non-blocking network connection, plain or TLS,
 * driven by the event loop; what smtpd, imapd and pop3d talk through.
 *
 * Input is read in chunks into a buffer the owner parses and consumes
 * (str_consume) from its input callback. Output is appended to a buffer
 * and written when the socket is writable. Nothing ever blocks, and no
 * write raises SIGPIPE.
 *
 * Bounds:
 * - input: reads never fill the input buffer beyond input_limit bytes
 *   (default 64 KiB; reads are of at most 16 KiB). At the limit reading
 *   stops until the owner consumes: checked after each input callback
 *   returns (or on netconn_pause_input(conn, false) after consuming
 *   elsewhere). An owner whose parser needs more than the limit (a line
 *   with no end) must treat in->len >= limit as an error, or it stalls
 *   until the timeout.
 * - output: while more than output_limit bytes (default 1 MiB) wait to be
 *   written, nothing is read, so a peer that does not read cannot grow
 *   memory through replies.
 *
 * Callbacks are only ever called from the event loop, never from inside a
 * netconn_* call the owner makes: errors found there (a failed write) are
 * reported through closed() on the next loop round. Every callback may call
 * netconn_free() on its own connection (the free is deferred until the
 * callback returns; the connection is not touched afterwards), and may call
 * any other netconn function.
 *
 * Timeout: closed("timeout") when, for msecs, nothing was read or written
 * while the connection was waiting for the peer (to send input, or to take
 * output). Time paused by the owner with no output pending does not count.
 *
 * TLS: netconn_starttls() throws away any buffered input (pipelined
 * plaintext after STARTTLS, RFC 3207 section 4.2), sends the output
 * already queued (the "220 Ready to start TLS" reply) in plaintext, then
 * runs the server handshake; tls_done() or closed("TLS handshake failed:
 * ...") follows. Output written meanwhile waits for the handshake. For
 * implicit TLS (465/993/995) call it right after netconn_create(). */
#ifndef PETREL_NETCONN_H
#define PETREL_NETCONN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/attr.h"
#include "util/str.h"

struct event_loop;
struct netconn;
struct tls_server;

#define NETCONN_DEFAULT_INPUT_LIMIT (64 * 1024)
#define NETCONN_DEFAULT_OUTPUT_LIMIT (1024 * 1024)

struct netconn_callbacks {
	/* input: bytes were appended to netconn_input(); also called again
	 * when input is resumed with bytes still buffered. */
	void (*input)(void *ctx);
	/* closed: EOF, error, timeout or TLS failure; reason is e.g. "lost
	 * connection", "timeout", "TLS handshake failed: ...", "TLS error:
	 * ...". The connection is dead: the owner must netconn_free() it
	 * (here or later) and use it for nothing else. */
	void (*closed)(void *ctx, const char *reason);
	/* tls_done: optional; the handshake finished. */
	void (*tls_done)(void *ctx);
	/* output_drained: optional; the output buffer became empty. */
	void (*output_drained)(void *ctx);
};

/* netconn_create: take over fd (made non-blocking; closed by
 * netconn_free). */
struct netconn *netconn_create(struct event_loop *loop, int fd, const struct netconn_callbacks *cb,
			       void *ctx);
/* netconn_free: makes one last non-blocking attempt to write pending
 * output, sends a TLS close_notify if it can without blocking, closes fd.
 * To be sure output went out, wait for output_drained first. */
void netconn_free(struct netconn **conn);

/* netconn_input: the buffered input; consume what you used. */
struct str *netconn_input(struct netconn *conn);
void netconn_set_input_limit(struct netconn *conn, size_t bytes);
void netconn_set_output_limit(struct netconn *conn, size_t bytes);

/* netconn_write: append to the output buffer (dropped once closed). */
void netconn_write(struct netconn *conn, const void *data, size_t len);
void netconn_printf(struct netconn *conn, const char *fmt, ...) ATTR_FORMAT(2, 3);
/* netconn_vwrite_line: one protocol reply line, formatted, capped at
 * NETCONN_LINE_MAX bytes, CRLF added. Returns its first byte (the reply
 * class for SMTP/LMTP: '2', '4', '5'...). */
#define NETCONN_LINE_MAX 1023
char netconn_vwrite_line(struct netconn *conn, const char *fmt, va_list ap) ATTR_FORMAT(2, 0);
/* netconn_flush: write what the socket takes now, without waiting. */
void netconn_flush(struct netconn *conn);
size_t netconn_output_pending(const struct netconn *conn);

/* netconn_set_timeout: idle timeout in msecs (see above); 0 = none. */
void netconn_set_timeout(struct netconn *conn, unsigned msecs);
/* netconn_pause_input: stop (true) or resume (false) reading. Resuming
 * with bytes buffered calls input() again from the loop, so pipelined
 * commands held while paused are seen; call it also after consuming
 * input outside the input callback. */
void netconn_pause_input(struct netconn *conn, bool pause);

/* netconn_starttls: start server TLS (see above); tls takes a reference.
 * Returns 0, or -1 and *error_r (already TLS, closed, GnuTLS failure). */
int netconn_starttls(struct netconn *conn, struct tls_server *tls, const char **error_r);
/* netconn_is_tls: true once netconn_starttls succeeded. */
bool netconn_is_tls(const struct netconn *conn);
/* After tls_done, for logs and Received: headers as Postfix writes them
 * ("TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"); before
 * it, "" and 0. netconn_tls_info gives that whole phrase. The cipher is
 * OpenSSL's name, as Postfix logs it. */
const char *netconn_tls_protocol(const struct netconn *conn);
const char *netconn_tls_cipher(const struct netconn *conn);
int netconn_tls_bits(const struct netconn *conn);
const char *netconn_tls_info(const struct netconn *conn);

/* netconn_fd: the socket, for getsockname/getpeername and the like. */
int netconn_fd(const struct netconn *conn);

#endif
