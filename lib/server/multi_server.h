/* multi_server.h: the skeleton of every connection-serving daemon.
 *
 * A daemon's main() is a table of callbacks plus one call:
 *
 *     static const struct multi_server_ops ops = {
 *             .pre_init = foo_pre_init,    // as root: open keys, certs
 *             .post_init = foo_post_init,  // unprivileged, maybe chrooted
 *             .accept = foo_accept,        // one new client connection
 *             .pre_exit = foo_pre_exit,    // free what is left
 *     };
 *     int main(int argc, char **argv)
 *     {
 *             return multi_server_main(argc, argv, "foo", &ops, &foo_state);
 *     }
 *
 * The skeleton does, in order: parse the command line the master passes
 * (-c config_dir, -n service, -t type, -o name=value..., -v, -u, -r; see
 * server/master_proto.h), config_load() plus config_override() for each
 * -o, logging (maillog_file if set; else stderr when the master runs in the
 * foreground; else syslog, with syslog_name), pre_init, the privilege drop
 * (mail_owner and chroot to queue_directory when the master asked for
 * them), post_init, then the event loop until it is time to exit.
 *
 * In the loop it accepts on every inherited stream listener (as many
 * connections as are pending, each made non-blocking and close-on-exec)
 * and hands each to ops->accept, which owns the descriptor from then on.
 * When that connection ends, whatever the reason, the service closes it
 * and calls multi_server_disconnect() exactly once: the skeleton counts
 * clients to tell the master BUSY/AVAIL and to apply the limits.
 *
 * The process exits (return from multi_server_main, after ops->pre_exit):
 *   - after max_use clients, once they are all done (0: no limit);
 *   - after max_idle seconds without a client (0: never);
 *   - on SIGHUP (the master reloaded): it stops accepting at once and
 *     exits when its current clients are done;
 *   - on SIGTERM or SIGINT, or when the master dies: at once, with clients
 *     still connected; pre_exit must free them.
 *
 * Listeners that are not stream sockets (fifo, unix-dgram) are handed to
 * ops->trigger, when set, each time they are readable: the callback reads
 * (and may ignore) what is there, typically the master's wakeup byte 'W'.
 *
 * Callbacks run in the event loop (multi_server_loop()); none may block. */
#ifndef PETREL_MULTI_SERVER_H
#define PETREL_MULTI_SERVER_H

#include <stdbool.h>
#include <sys/socket.h>

struct event_loop;

/* One inherited listener. */
struct multi_server_listener {
	int fd;                      /* MASTER_LISTEN_FD + index */
	unsigned index;              /* 0 .. count-1, in master.cf's order */
	int family;                  /* AF_INET, AF_INET6 or AF_UNIX (-1 for a fifo) */
	int socktype;                /* SOCK_STREAM, SOCK_DGRAM (0 for a fifo) */
	struct sockaddr_storage addr; /* the local address (getsockname) */
	socklen_t addrlen;
};

struct multi_server_ops {
	/* pre_init: still privileged, before chroot and the drop: open
	 * certificates, keys, files outside the chroot. May be NULL. */
	void (*pre_init)(void *ctx);
	/* post_init: unprivileged (and chrooted if asked): everything else.
	 * May be NULL. */
	void (*post_init)(void *ctx);
	/* accept: a new client. fd is non-blocking and close-on-exec; the
	 * service owns it and calls multi_server_disconnect() when it is
	 * done with it (possibly from inside this call). l says which
	 * listener (l->fd is -1 once the process has stopped accepting).
	 * Required. */
	void (*accept)(void *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen,
		       const struct multi_server_listener *l);
	/* trigger: a fifo or datagram listener is readable. May be NULL. */
	void (*trigger)(void *ctx, const struct multi_server_listener *l);
	/* pre_exit: the loop is over: close and free what is left. May be
	 * NULL. */
	void (*pre_exit)(void *ctx);
	/* resident: the process keeps state in memory (qmgr, anvil): it never
	 * retires for max_use or max_idle, as Postfix's qmgr ignores them. */
	bool resident;
};

/* multi_server_main: run the daemon; returns its exit status for main().
 * Fatal (exit 1) on a bad command line, a broken configuration or a
 * failed privilege drop. */
int multi_server_main(int argc, char **argv, const char *program_name,
		      const struct multi_server_ops *ops, void *ctx);

/* multi_server_loop: the process's event loop (valid from pre_init on). */
struct event_loop *multi_server_loop(void);
/* multi_server_disconnect: a connection that ops->accept was given ended. */
void multi_server_disconnect(void);
/* multi_server_service_name: master.cf's service field ("smtp",
 * "127.0.0.1:2525", "submission"). */
const char *multi_server_service_name(void);
/* multi_server_service_type: "inet", "unix", "unix-dgram" or "fifo". */
const char *multi_server_service_type(void);
/* multi_server_args: master.cf arguments after the options (NULL-terminated). */
char *const *multi_server_args(void);
/* multi_server_clients: connections currently owned by the service. */
unsigned multi_server_clients(void);
/* multi_server_draining: true once the process accepts no more clients
 * (reload, max_use); a service may use it to shorten idle sessions. */
bool multi_server_draining(void);
/* multi_server_queue_dir: queue_directory as seen from this process ("/"
 * when chrooted there). */
const char *multi_server_queue_dir(void);
/* multi_server_drain: stop accepting, exit when the clients are done (the
 * master starts a fresh process); why is logged. */
void multi_server_drain(const char *why);

#endif
