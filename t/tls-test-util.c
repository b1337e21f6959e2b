/* tls-test-util.c: throw-away certificates and an event-driven GnuTLS
 * client for the unit tests; see tls-test-util.h. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tls-test-util.h"
#include "util/alloc.h"
#include "util/events.h"
#include "util/msg.h"

/* tls_test_check: fatal on a GnuTLS error. */
static void tls_test_check(int ret, const char *what)
{
	if (ret < 0)
		msg_fatal("%s failed: %s", what, gnutls_strerror(ret));
}

/* tls_test_write_file: the whole datum to path, mode 0600. */
static void tls_test_write_file(const char *path, const gnutls_datum_t *d)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		msg_fatal("open(%s) failed: %m", path);
	if (write(fd, d->data, d->size) != (ssize_t)d->size)
		msg_fatal("write(%s) failed: %m", path);
	if (close(fd) < 0)
		msg_fatal("close(%s) failed: %m", path);
}

/* tls_test_key: a fresh ECDSA P-256 key. */
static gnutls_x509_privkey_t tls_test_key(void)
{
	gnutls_x509_privkey_t pkey;
	tls_test_check(gnutls_x509_privkey_init(&pkey), "gnutls_x509_privkey_init");
	tls_test_check(gnutls_x509_privkey_generate(pkey, GNUTLS_PK_ECDSA,
						    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
						    0),
		       "gnutls_x509_privkey_generate");
	return pkey;
}

/* tls_test_crt: a certificate for key, named cn, signed by issuer and
 * issuer_key (NULL: self-signed). */
static gnutls_x509_crt_t tls_test_crt(gnutls_x509_privkey_t key, const char *cn, bool ca,
				      gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key)
{
	gnutls_x509_crt_t crt;
	tls_test_check(gnutls_x509_crt_init(&crt), "gnutls_x509_crt_init");
	tls_test_check(gnutls_x509_crt_set_version(crt, 3), "gnutls_x509_crt_set_version");
	unsigned char serial[8] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, ca ? 0x01 : 0x02 };
	tls_test_check(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)), "set_serial");
	time_t now = time(NULL);
	tls_test_check(gnutls_x509_crt_set_activation_time(crt, now - 3600), "activation");
	tls_test_check(gnutls_x509_crt_set_expiration_time(crt, now + 86400), "expiration");
	tls_test_check(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
						     (unsigned)strlen(cn)),
		       "set_dn");
	tls_test_check(gnutls_x509_crt_set_key(crt, key), "gnutls_x509_crt_set_key");
	tls_test_check(gnutls_x509_crt_set_basic_constraints(crt, ca ? 1 : 0, -1),
		       "basic_constraints");
	tls_test_check(gnutls_x509_crt_set_key_usage(crt, ca ? GNUTLS_KEY_KEY_CERT_SIGN
							     : GNUTLS_KEY_DIGITAL_SIGNATURE),
		       "key_usage");
	tls_test_check(gnutls_x509_crt_sign2(crt, issuer != NULL ? issuer : crt,
					     issuer_key != NULL ? issuer_key : key,
					     GNUTLS_DIG_SHA256, 0),
		       "gnutls_x509_crt_sign2");
	return crt;
}

/* tls_test_append_crt: the certificate in PEM onto out. */
static void tls_test_append_crt(struct str *out, gnutls_x509_crt_t crt)
{
	gnutls_datum_t d;
	tls_test_check(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d), "crt_export2");
	str_append_n(out, d.data, d.size);
	gnutls_free(d.data);
}

void tls_test_cert_create(char *dir, size_t dirsize, char *cert, size_t certsize, char *key,
			  size_t keysize)
{
	const char *tmp = getenv("TMPDIR");
	if (!str_format(dir, dirsize, "%s/petrel-tls-XXXXXX", tmp != NULL ? tmp : "/tmp") ||
	    mkdtemp(dir) == NULL)
		msg_fatal("mkdtemp(%s) failed: %m", dir);
	if (!str_format(cert, certsize, "%s/cert.pem", dir) ||
	    !str_format(key, keysize, "%s/key.pem", dir))
		msg_fatal("temp path too long");

	/* a leaf signed by a CA, the chain in one file as Postfix allows */
	gnutls_x509_privkey_t ca_key = tls_test_key();
	gnutls_x509_crt_t ca = tls_test_crt(ca_key, "Petrel Test CA", true, NULL, NULL);
	gnutls_x509_privkey_t leaf_key = tls_test_key();
	gnutls_x509_crt_t leaf = tls_test_crt(leaf_key, "localhost", false, ca, ca_key);
	struct str chain = STR_INIT;
	tls_test_append_crt(&chain, leaf);
	tls_test_append_crt(&chain, ca);
	gnutls_datum_t d = { (unsigned char *)chain.data, (unsigned)chain.len };
	tls_test_write_file(cert, &d);
	str_deinit(&chain);
	tls_test_check(gnutls_x509_privkey_export2(leaf_key, GNUTLS_X509_FMT_PEM, &d),
		       "privkey_export2");
	tls_test_write_file(key, &d);
	gnutls_free(d.data);
	gnutls_x509_crt_deinit(leaf);
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_privkey_deinit(leaf_key);
	gnutls_x509_privkey_deinit(ca_key);
}

void tls_test_cert_remove(const char *dir, const char *cert, const char *key)
{
	unlink(cert);
	unlink(key);
	rmdir(dir);
}

enum tls_test_state {
	TLS_TEST_PLAIN,
	TLS_TEST_HANDSHAKE,
	TLS_TEST_UP,
	TLS_TEST_DEAD,
};

struct tls_test_client {
	struct event_loop *loop;
	int fd;
	struct event_io *io;
	enum tls_test_state state;
	char *priority;
	gnutls_certificate_credentials_t cred;
	gnutls_session_t session;
	bool hs_want_write;
	bool send_again;
	struct str in;
	struct str out;
	size_t out_pos;
	struct str resume; /* session data to resume, if any */
	char error[256];
};

static void tls_test_client_io(void *ctx, int fd, unsigned events);

/* tls_test_client_die: stop with a reason. */
static void tls_test_client_die(struct tls_test_client *c, const char *why)
{
	if (c->state == TLS_TEST_DEAD)
		return;
	c->state = TLS_TEST_DEAD;
	snprintf(c->error, sizeof(c->error), "%s", why);
	event_io_set(c->io, 0);
}

/* tls_test_client_update: what to wait for. */
static void tls_test_client_update(struct tls_test_client *c)
{
	if (c->state == TLS_TEST_DEAD) {
		event_io_set(c->io, 0);
		return;
	}
	unsigned want = EVENT_READ;
	if (c->state == TLS_TEST_HANDSHAKE)
		want = c->hs_want_write ? EVENT_WRITE : EVENT_READ;
	else if (c->out.len > c->out_pos)
		want |= EVENT_WRITE;
	event_io_set(c->io, want);
}

struct tls_test_client *tls_test_client_create(struct event_loop *loop, int fd,
					       const char *priority)
{
	struct tls_test_client *c = xcalloc(1, sizeof(*c));
	c->loop = loop;
	c->fd = fd;
	c->priority = xstrdup(priority != NULL ? priority : "NORMAL");
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		msg_fatal("fcntl failed: %m");
	c->io = event_io_add(loop, fd, EVENT_READ, tls_test_client_io, c);
	return c;
}

void tls_test_client_free(struct tls_test_client **cp)
{
	struct tls_test_client *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	event_io_remove(&c->io);
	if (c->session != NULL)
		gnutls_deinit(c->session);
	if (c->cred != NULL)
		gnutls_certificate_free_credentials(c->cred);
	close(c->fd);
	str_deinit(&c->in);
	str_deinit(&c->out);
	str_deinit(&c->resume);
	free(c->priority);
	free(c);
}

void tls_test_client_start(struct tls_test_client *c)
{
	tls_test_check(gnutls_certificate_allocate_credentials(&c->cred), "allocate_credentials");
	tls_test_check(gnutls_init(&c->session, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL),
		       "gnutls_init");
	tls_test_check(gnutls_priority_set_direct(c->session, c->priority, NULL),
		       "gnutls_priority_set_direct");
	tls_test_check(gnutls_credentials_set(c->session, GNUTLS_CRD_CERTIFICATE, c->cred),
		       "gnutls_credentials_set");
	tls_test_check(gnutls_server_name_set(c->session, GNUTLS_NAME_DNS, "localhost", 9),
		       "gnutls_server_name_set");
	if (c->resume.len > 0)
		tls_test_check(gnutls_session_set_data(c->session, c->resume.data, c->resume.len),
			       "gnutls_session_set_data");
	gnutls_transport_set_int(c->session, c->fd);
	c->state = TLS_TEST_HANDSHAKE;
	c->hs_want_write = true;
	tls_test_client_update(c);
}

void tls_test_client_send(struct tls_test_client *c, const void *data, size_t len)
{
	str_append_n(&c->out, data, len);
	tls_test_client_update(c);
}

void tls_test_client_raw(struct tls_test_client *c, const void *data, size_t len)
{
	if (send(c->fd, data, len, MSG_NOSIGNAL) != (ssize_t)len)
		tls_test_client_die(c, "short send in tls_test_client_raw");
}

void tls_test_client_bye(struct tls_test_client *c)
{
	if (c->state == TLS_TEST_UP)
		(void)gnutls_bye(c->session, GNUTLS_SHUT_WR);
	else
		shutdown(c->fd, SHUT_WR);
}

/* tls_test_client_write: flush out; false when dead. */
static bool tls_test_client_write(struct tls_test_client *c)
{
	while (c->out.len > c->out_pos) {
		ssize_t n;
		size_t len = c->out.len - c->out_pos;
		if (c->state == TLS_TEST_UP) {
			n = c->send_again ? gnutls_record_send(c->session, NULL, 0)
					  : gnutls_record_send(c->session, c->out.data + c->out_pos,
							       len > 16384 ? 16384 : len);
			c->send_again = n == GNUTLS_E_AGAIN;
			if (n == GNUTLS_E_AGAIN)
				return true;
			if (n < 0) {
				tls_test_client_die(c, gnutls_strerror((int)n));
				return false;
			}
		} else {
			n = send(c->fd, c->out.data + c->out_pos, len, MSG_NOSIGNAL);
			if (n < 0 && errno == EAGAIN)
				return true;
			if (n < 0) {
				tls_test_client_die(c, strerror(errno));
				return false;
			}
		}
		c->out_pos += (size_t)n;
	}
	str_clear(&c->out);
	c->out_pos = 0;
	return true;
}

/* tls_test_client_read: read until EAGAIN; false when dead. */
static bool tls_test_client_read(struct tls_test_client *c)
{
	for (;;) {
		str_reserve(&c->in, 16384);
		ssize_t n;
		if (c->state == TLS_TEST_UP) {
			n = gnutls_record_recv(c->session, c->in.data + c->in.len, 16384);
			if (n == GNUTLS_E_AGAIN)
				return true;
			if (n == 0) {
				tls_test_client_die(c, "EOF");
				return false;
			}
			if (n < 0) {
				tls_test_client_die(c, gnutls_strerror((int)n));
				return false;
			}
		} else {
			n = recv(c->fd, c->in.data + c->in.len, 16384, 0);
			if (n < 0 && errno == EAGAIN)
				return true;
			if (n <= 0) {
				tls_test_client_die(c, n == 0 ? "EOF" : strerror(errno));
				return false;
			}
		}
		c->in.len += (size_t)n;
		c->in.data[c->in.len] = '\0';
	}
}

static void tls_test_client_io(void *ctx, int fd, unsigned events)
{
	struct tls_test_client *c = ctx;
	if (c->state == TLS_TEST_HANDSHAKE) {
		int ret = gnutls_handshake(c->session);
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED ||
		    (ret < 0 && !gnutls_error_is_fatal(ret))) {
			c->hs_want_write = gnutls_record_get_direction(c->session) == 1;
		} else if (ret < 0) {
			tls_test_client_die(c, gnutls_strerror(ret));
		} else {
			c->state = TLS_TEST_UP;
		}
	}
	if ((c->state == TLS_TEST_UP || c->state == TLS_TEST_PLAIN) && tls_test_client_write(c))
		tls_test_client_read(c);
	tls_test_client_update(c);
}

struct str *tls_test_client_input(struct tls_test_client *c)
{
	return &c->in;
}

bool tls_test_client_handshake_done(const struct tls_test_client *c)
{
	return c->state == TLS_TEST_UP;
}

const char *tls_test_client_error(const struct tls_test_client *c)
{
	return c->state == TLS_TEST_DEAD ? c->error : NULL;
}

size_t tls_test_client_pending(const struct tls_test_client *c)
{
	return c->out.len - c->out_pos;
}

void tls_test_client_get_session(const struct tls_test_client *c, struct str *out)
{
	gnutls_datum_t d;
	tls_test_check(gnutls_session_get_data2(c->session, &d), "gnutls_session_get_data2");
	str_append_n(out, d.data, d.size);
	gnutls_free(d.data);
}

void tls_test_client_set_session(struct tls_test_client *c, const struct str *data)
{
	str_clear(&c->resume);
	str_append_n(&c->resume, data->data, data->len);
}

bool tls_test_client_resumed(const struct tls_test_client *c)
{
	return c->session != NULL && gnutls_session_is_resumed(c->session) != 0;
}

unsigned tls_test_client_peer_certs(const struct tls_test_client *c)
{
	unsigned n = 0;
	if (c->session != NULL && gnutls_certificate_get_peers(c->session, &n) == NULL)
		n = 0;
	return n;
}

const char *tls_test_client_protocol(const struct tls_test_client *c)
{
	if (c->session == NULL)
		return "";
	return gnutls_protocol_get_name(gnutls_protocol_get_version(c->session));
}
