/* tls_server.c: GnuTLS server credentials, priorities and the per-process
 * session ticket key; see tls_server.h.
 *
 * Error strings returned through error_r live in a static buffer that the
 * next failing call overwrites. */
#include <config.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/tls_server.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

struct tls_server {
	unsigned refcount;
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t priority;
};

static bool tls_global_initialized;
static gnutls_datum_t tls_ticket_key;
static char tls_error[512];

/* tls_global_init: gnutls_global_init and the ticket key, once. */
static int tls_global_init(const char **error_r)
{
	if (tls_global_initialized)
		return 0;
	int ret = gnutls_global_init();
	if (ret < 0) {
		snprintf(tls_error, sizeof(tls_error), "gnutls_global_init() failed: %s",
			 gnutls_strerror(ret));
		*error_r = tls_error;
		return -1;
	}
	ret = gnutls_session_ticket_key_generate(&tls_ticket_key);
	if (ret < 0) {
		snprintf(tls_error, sizeof(tls_error),
			 "gnutls_session_ticket_key_generate() failed: %s", gnutls_strerror(ret));
		*error_r = tls_error;
		gnutls_global_deinit();
		return -1;
	}
	tls_global_initialized = true;
	return 0;
}

/* tls_server_global_deinit: undo tls_global_init. */
void tls_server_global_deinit(void)
{
	if (!tls_global_initialized)
		return;
	gnutls_memset(tls_ticket_key.data, 0, tls_ticket_key.size);
	gnutls_free(tls_ticket_key.data);
	tls_ticket_key.data = NULL;
	tls_ticket_key.size = 0;
	gnutls_global_deinit();
	tls_global_initialized = false;
}

/* tls_server_load: credentials and priorities into server. */
static int tls_server_load(struct tls_server *server, const char *cert_file,
			   const char *key_file, const char *priority, const char **error_r)
{
	int ret = gnutls_certificate_allocate_credentials(&server->cred);
	if (ret < 0) {
		snprintf(tls_error, sizeof(tls_error),
			 "gnutls_certificate_allocate_credentials() failed: %s",
			 gnutls_strerror(ret));
		*error_r = tls_error;
		return -1;
	}
	ret = gnutls_certificate_set_x509_key_file2(server->cred, cert_file, key_file,
						    GNUTLS_X509_FMT_PEM, NULL, 0);
	if (ret < 0) {
		snprintf(tls_error, sizeof(tls_error), "loading certificate %s and key %s failed: %s",
			 cert_file, key_file, gnutls_strerror(ret));
		*error_r = tls_error;
		return -1;
	}
	/* RFC 7919 groups for TLS 1.2 DHE with clients that do not negotiate
	 * groups; ECDHE is preferred anyway. */
	ret = gnutls_certificate_set_known_dh_params(server->cred, GNUTLS_SEC_PARAM_MEDIUM);
	if (ret < 0) {
		snprintf(tls_error, sizeof(tls_error),
			 "gnutls_certificate_set_known_dh_params() failed: %s", gnutls_strerror(ret));
		*error_r = tls_error;
		return -1;
	}
	const char *err_pos = NULL;
	ret = gnutls_priority_init2(&server->priority, priority, &err_pos, 0);
	if (ret < 0) {
		server->priority = NULL;
		snprintf(tls_error, sizeof(tls_error), "bad TLS priority string \"%s\" at \"%s\": %s",
			 priority, err_pos != NULL ? err_pos : "", gnutls_strerror(ret));
		*error_r = tls_error;
		return -1;
	}
	return 0;
}

/* tls_server_destroy: release everything (refcount reached zero). */
static void tls_server_destroy(struct tls_server *server)
{
	if (server->priority != NULL)
		gnutls_priority_deinit(server->priority);
	if (server->cred != NULL)
		gnutls_certificate_free_credentials(server->cred);
	free(server);
}

/* tls_server_create_priority: credentials with an explicit priority. */
struct tls_server *tls_server_create_priority(const char *cert_file, const char *key_file,
					      const char *priority, const char **error_r)
{
	if (tls_global_init(error_r) < 0)
		return NULL;
	if (priority == NULL)
		priority = TLS_SERVER_DEFAULT_PRIORITY;
	struct tls_server *server = xcalloc(1, sizeof(*server));
	server->refcount = 1;
	if (tls_server_load(server, cert_file, key_file, priority, error_r) < 0) {
		tls_server_destroy(server);
		return NULL;
	}
	return server;
}

/* tls_server_create: credentials with the default priority. */
struct tls_server *tls_server_create(const char *cert_file, const char *key_file,
				     const char **error_r)
{
	return tls_server_create_priority(cert_file, key_file, NULL, error_r);
}

/* tls_server_ref: one more user. */
void tls_server_ref(struct tls_server *server)
{
	if (server->refcount == 0)
		msg_panic("tls_server_ref: server already freed");
	server->refcount++;
}

/* tls_server_unref: one user less; destroy with the last. */
void tls_server_unref(struct tls_server **serverp)
{
	struct tls_server *server = *serverp;
	if (server == NULL)
		return;
	*serverp = NULL;
	if (server->refcount == 0)
		msg_panic("tls_server_unref: refcount already zero");
	if (--server->refcount == 0)
		tls_server_destroy(server);
}

/* tls_server_free: the creator lets go. */
void tls_server_free(struct tls_server **serverp)
{
	tls_server_unref(serverp);
}

/* tls_server_session_create: a non-blocking server session on fd. GnuTLS
 * reads and writes fd itself, with MSG_NOSIGNAL (GNUTLS_NO_SIGNAL). */
int tls_server_session_create(struct tls_server *server, int fd, gnutls_session_t *session_r,
			      const char **error_r)
{
	gnutls_session_t session;
	int ret = gnutls_init(&session, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (ret < 0) {
		snprintf(tls_error, sizeof(tls_error), "gnutls_init() failed: %s",
			 gnutls_strerror(ret));
		*error_r = tls_error;
		return -1;
	}
	const char *what = "gnutls_priority_set";
	ret = gnutls_priority_set(session, server->priority);
	if (ret >= 0) {
		what = "gnutls_credentials_set";
		ret = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, server->cred);
	}
	if (ret >= 0) {
		what = "gnutls_session_ticket_enable_server";
		ret = gnutls_session_ticket_enable_server(session, &tls_ticket_key);
	}
	if (ret < 0) {
		snprintf(tls_error, sizeof(tls_error), "%s() failed: %s", what,
			 gnutls_strerror(ret));
		*error_r = tls_error;
		gnutls_deinit(session);
		return -1;
	}
	gnutls_certificate_server_set_request(session, GNUTLS_CERT_IGNORE);
	gnutls_transport_set_int(session, fd);
	*session_r = session;
	return 0;
}
