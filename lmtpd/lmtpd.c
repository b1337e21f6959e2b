/* lmtpd.c: the local delivery server: LMTP in, Maildir out.
 *
 * SYNOPSIS
 *	lmtpd -n service -t unix|inet [-o name=value ...] -c config_dir
 *	(started by master(8), never by hand)
 *
 * DESCRIPTION
 *	Speaks LMTP (RFC 2033) on private/lmtpd (and on an inet listener
 *	when master.cf has one) to the delivery agent. Recipients are
 *	looked up in a Dovecot passwd-file (lmtpd_user_database); each
 *	message is written to every recipient's Maildir (mail_location)
 *	exactly as Dovecot's LMTP server writes it, and recorded in the
 *	user's index (doc/mailstore.md). One reply per accepted recipient
 *	follows DATA, each sent only once that recipient's file is durable.
 *	On the UNIX socket it offers XDELIVERYID: a delivery that carries
 *	the queue ID is stored at most once per mailbox, however often it is
 *	repeated (doc/delivery.md, "Exactly once").
 *
 * SECURITY
 *	Reachable only through the private socket (or a trusted inet
 *	listener). Run as root (master.cf unpriv = n), it delivers with each
 *	user's uid and gid (seteuid, switched back after each delivery); run
 *	as mail_owner, every Maildir must be writable by mail_owner. It reads
 *	the users file itself (never the password field); a later userdb
 *	service should own that file. Every line, count and size is bounded.
 *
 * See lmtpd.h for the layout of the program. */
#include <config.h>

#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#include "lmtpd/lmtpd.h"
#include "mail/config.h"
#include "mail/userdb.h"
#include "server/multi_server.h"
#include "util/msg.h"

struct lmtpd_config lmtpd_config;

/* lmtpd_pre_init: parameters and the user database (opened lazily). */
static void lmtpd_pre_init(void *ctx)
{
	struct lmtpd_config *c = &lmtpd_config;
	(void)ctx;
	c->myhostname = config_str("myhostname");
	c->size_limit = config_size("message_size_limit");
	if (c->size_limit == 0 || c->size_limit > LMTPD_CONTENT_HARD_MAX)
		c->size_limit = LMTPD_CONTENT_HARD_MAX;
	c->timeout_ms = (unsigned)config_time("lmtpd_timeout") * 1000;
	c->recipient_limit = (unsigned)config_int("lmtpd_recipient_limit");
	c->recipient_delimiter = config_str("recipient_delimiter");
	c->mail_location = config_str("mail_location");
	c->default_home = config_str("lmtpd_default_home");
	c->save_to_detail = config_bool("lmtp_save_to_detail_mailbox");
	/* A delivery can be retried for as long as its message may stay in
	 * the queue; a day more covers a clock step and the last retry. */
	long lifetime = config_time("maximal_queue_lifetime");
	long bounce_lifetime = config_time("bounce_queue_lifetime");
	c->delivery_record_ttl = (lifetime > bounce_lifetime ? lifetime : bounce_lifetime) + 86400;
	c->userdb = userdb_open(config_str("lmtpd_user_database"));
}

static void lmtpd_accept(void *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen,
			 const struct multi_server_listener *l)
{
	char addr[64] = "local";
	(void)ctx;
	bool local = l->family == AF_UNIX || peer->sa_family == AF_UNIX;
	if (!local) {
		struct sockaddr_storage ss;
		memcpy(&ss, peer, peerlen < sizeof(ss) ? peerlen : sizeof(ss));
		if (getnameinfo((const struct sockaddr *)&ss, peerlen, addr, sizeof(addr), NULL, 0,
				NI_NUMERICHOST) != 0)
			str_copy(addr, sizeof(addr), "unknown");
	}
	lmtpd_session_start(fd, local, addr);
}

static void lmtpd_pre_exit(void *ctx)
{
	(void)ctx;
	lmtpd_sessions_free();
	userdb_free(&lmtpd_config.userdb);
}

static const struct multi_server_ops lmtpd_ops = {
	.pre_init = lmtpd_pre_init,
	.accept = lmtpd_accept,
	.pre_exit = lmtpd_pre_exit,
};

int main(int argc, char **argv)
{
	return multi_server_main(argc, argv, "lmtpd", &lmtpd_ops, NULL);
}
