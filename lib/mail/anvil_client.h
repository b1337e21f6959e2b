/* anvil_client.h: the event-driven client of anvil(8), for smtpd.
 *
 * One client per process, created once (after the chroot, with the path
 * as seen from inside it: queue_directory/private/anvil, or
 * "/private/anvil" when chrooted to the queue). It connects on the first
 * request and again on the first request after a failure; requests are
 * pipelined over that one connection and answered in order.
 *
 * Limits are best effort, never a reason to refuse mail: when anvil is
 * unreachable, answers with an error, or has not answered a request within
 * the timeout (ANVIL_CLIENT_TIMEOUT_MS), the callback gets status -1 and
 * the caller lets the client in. A timeout or protocol error drops the
 * connection, and with it (anvil's side) every count this process held:
 * counts err low, never high.
 *
 * Callbacks are only ever called from the event loop, never from inside
 * an anvil_* call. A request handle stays valid until its callback has
 * been called or anvil_cancel() was called on it, whichever is first.
 * The callback may call any anvil_* function, anvil_client_free()
 * included. */
#ifndef PETREL_ANVIL_CLIENT_H
#define PETREL_ANVIL_CLIENT_H

struct event_loop;
struct anvil_client;
struct anvil_request;

#define ANVIL_CLIENT_TIMEOUT_MS 1000
/* requests waiting for a reply; more means anvil is stuck: reconnect */
#define ANVIL_CLIENT_PENDING_MAX 10000

/* anvil_reply_fn: status 0: count (connections open now, this one
 * included; 0 for rate requests) and rate (events of this kind in the
 * current anvil_rate_time_unit, this one included) are valid. status -1:
 * no answer; count and rate are 0. */
typedef void anvil_reply_fn(void *ctx, int status, unsigned count, unsigned rate);

struct anvil_client *anvil_client_create(struct event_loop *loop, const char *socket_path);
/* anvil_client_free: close; pending callbacks are never called. */
void anvil_client_free(struct anvil_client **client);
/* anvil_client_set_timeout: the reply timeout (tests); 0 restores the
 * default. */
void anvil_client_set_timeout(struct anvil_client *client, unsigned msecs);

/* anvil_connect: a new connection from addr to service: its count and
 * connection rate. Pair every status-0 connect with anvil_disconnect()
 * when the session ends. */
struct anvil_request *anvil_connect(struct anvil_client *client, const char *service,
				    const char *addr, anvil_reply_fn *cb, void *ctx);
/* anvil_disconnect: that connection ended (no reply; dropped when there
 * is no connection to anvil, which then holds no counts of ours). */
void anvil_disconnect(struct anvil_client *client, const char *service, const char *addr);
/* Rate events: the count in the current time unit comes back as rate.
 * anvil_message: a MAIL FROM; anvil_rcpt: a RCPT TO; anvil_newtls: a new
 * (not resumed) TLS session; anvil_auth: an AUTH command. */
struct anvil_request *anvil_message(struct anvil_client *client, const char *service,
				    const char *addr, anvil_reply_fn *cb, void *ctx);
struct anvil_request *anvil_rcpt(struct anvil_client *client, const char *service,
				 const char *addr, anvil_reply_fn *cb, void *ctx);
struct anvil_request *anvil_newtls(struct anvil_client *client, const char *service,
				   const char *addr, anvil_reply_fn *cb, void *ctx);
struct anvil_request *anvil_auth(struct anvil_client *client, const char *service,
				 const char *addr, anvil_reply_fn *cb, void *ctx);
/* anvil_cancel: the callback will not be called (the session ended
 * first); *req becomes NULL. A cancelled connect needs no disconnect:
 * if anvil counted it, the client gives it back itself. */
void anvil_cancel(struct anvil_request **req);

#endif
