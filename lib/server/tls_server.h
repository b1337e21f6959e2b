/* tls_server.h: server-side TLS credentials (GnuTLS) shared by all the
 * sessions of a process.
 *
 * A tls_server holds the certificate chain, the private key, the priority
 * string and the session ticket key. It is refcounted: each TLS session
 * (netconn_starttls) takes a reference, so a reload creates a new
 * tls_server and frees the old one, which goes away when its last session
 * ends. Create it before dropping privileges if the key is root-only.
 *
 * Only TLS 1.2 and 1.3 are offered; the server's cipher order wins. The
 * session ticket key is generated once per process, so tickets survive a
 * reload but not a process restart. */
#ifndef PETREL_TLS_SERVER_H
#define PETREL_TLS_SERVER_H

#include <gnutls/gnutls.h>

/* The default GnuTLS priority string. */
#define TLS_SERVER_DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"

struct tls_server;

/* tls_server_create: load a PEM certificate (the chain may follow it in the
 * same file) and its PEM key. NULL and *error_r on failure. */
struct tls_server *tls_server_create(const char *cert_file, const char *key_file,
				     const char **error_r);
/* tls_server_create_priority: the same with a GnuTLS priority string
 * (NULL: TLS_SERVER_DEFAULT_PRIORITY). */
struct tls_server *tls_server_create_priority(const char *cert_file, const char *key_file,
					      const char *priority, const char **error_r);
/* tls_server_free: drop the creator's reference; *server = NULL. */
void tls_server_free(struct tls_server **server);

/* tls_server_ref/unref: references held by sessions. */
void tls_server_ref(struct tls_server *server);
void tls_server_unref(struct tls_server **server);

/* tls_server_session_create: a non-blocking server session on fd, using
 * server's credentials (the caller takes a reference with
 * tls_server_ref). Returns 0, or -1 and *error_r. */
int tls_server_session_create(struct tls_server *server, int fd, gnutls_session_t *session_r,
			      const char **error_r);

/* tls_server_global_deinit: at exit, after every tls_server is gone:
 * releases the ticket key and GnuTLS (keeps leak checkers quiet). */
void tls_server_global_deinit(void);

#endif
