/* tls-test-util.h: TLS helpers for unit tests: a throw-away self-signed
 * certificate, and a non-blocking GnuTLS client driven by the event loop
 * in the same process. */
#ifndef PETREL_TLS_TEST_UTIL_H
#define PETREL_TLS_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "util/str.h"

struct event_loop;

/* tls_test_cert_create: a temp dir holding cert.pem (a leaf for
 * CN=localhost followed by the CA that signed it) and key.pem (the leaf's
 * ECDSA P-256 key); fatal on failure. */
void tls_test_cert_create(char *dir, size_t dirsize, char *cert, size_t certsize, char *key,
			  size_t keysize);
/* tls_test_cert_remove: delete the files and the dir. */
void tls_test_cert_remove(const char *dir, const char *cert, const char *key);

struct tls_test_client;

/* tls_test_client_create: a client on fd (non-blocking) with a GnuTLS
 * priority string (NULL: "NORMAL"); it does not start TLS until
 * tls_test_client_start. Without TLS it is a plain socket client. */
struct tls_test_client *tls_test_client_create(struct event_loop *loop, int fd,
					       const char *priority);
void tls_test_client_free(struct tls_test_client **client);
/* tls_test_client_start: begin the client handshake. */
void tls_test_client_start(struct tls_test_client *client);
/* tls_test_client_send: queue bytes (sent in TLS once it is up). */
void tls_test_client_send(struct tls_test_client *client, const void *data, size_t len);
/* tls_test_client_raw: write bytes to the socket directly, now (a short
 * write stops the client with an error). */
void tls_test_client_raw(struct tls_test_client *client, const void *data, size_t len);
/* tls_test_client_bye: send close_notify (TLS up) and stop writing. */
void tls_test_client_bye(struct tls_test_client *client);
/* what the client has received so far */
struct str *tls_test_client_input(struct tls_test_client *client);
bool tls_test_client_handshake_done(const struct tls_test_client *client);
/* tls_test_client_error: NULL, or why the client stopped (EOF included). */
const char *tls_test_client_error(const struct tls_test_client *client);
size_t tls_test_client_pending(const struct tls_test_client *client);
/* tls_test_client_get_session: the session (ticket) to resume, appended
 * to out; set_session before start makes the next client resume it. */
void tls_test_client_get_session(const struct tls_test_client *client, struct str *out);
void tls_test_client_set_session(struct tls_test_client *client, const struct str *data);
bool tls_test_client_resumed(const struct tls_test_client *client);
/* tls_test_client_peer_certs: certificates the server sent. */
unsigned tls_test_client_peer_certs(const struct tls_test_client *client);
/* tls_test_client_protocol: "TLS1.3" etc. once up. */
const char *tls_test_client_protocol(const struct tls_test_client *client);

#endif
