/* smtpd.c: the inbound ESMTP server (port 25).
 *
 * SYNOPSIS
 *	smtpd -n service -t inet [-o name=value ...] -c config_dir
 *	(started by master(8), never by hand)
 *
 * DESCRIPTION
 *	Accepts mail for the local and virtual domains, for relay_domains, and
 *	from mynetworks, into the queue (incoming/), and refuses everything
 *	else during the SMTP dialogue. One process serves many sessions
 *	through the event loop; master(8) runs more processes as load asks.
 *	RFC 5321 with PIPELINING, SIZE, 8BITMIME, SMTPUTF8,
 *	ENHANCEDSTATUSCODES, CHUNKING (BDAT), STARTTLS and DSN.
 *
 * SECURITY
 *	Network-facing. Opens its TLS key and lookup tables before dropping
 *	privileges to mail_owner (and chrooting when master.cf says so); it
 *	reads no passwords and no mailboxes. Every command line, parameter,
 *	recipient count and message size is bounded.
 *
 * See smtpd.h for the layout of the program. */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "mail/anvil_client.h"
#include "mail/config.h"
#include "mail/dict_lmdb.h"
#include "mail/dns.h"
#include "mail/maps.h"
#include "mail/match_list.h"
#include "server/multi_server.h"
#include "server/tls_server.h"
#include "smtpd/smtpd.h"
#include "util/msg.h"

struct smtpd_config smtpd_config;
char smtpd_maps_unavailable;

static const struct {
	const char *name;
	enum smtpd_restriction value;
} restriction_names[] = {
	{ "permit", SMTPD_R_PERMIT },
	{ "reject", SMTPD_R_REJECT },
	{ "permit_mynetworks", SMTPD_R_PERMIT_MYNETWORKS },
	{ "permit_sasl_authenticated", SMTPD_R_PERMIT_SASL_AUTHENTICATED },
	{ "reject_unauth_destination", SMTPD_R_REJECT_UNAUTH_DESTINATION },
	{ "defer_unauth_destination", SMTPD_R_DEFER_UNAUTH_DESTINATION },
	{ "reject_unlisted_recipient", SMTPD_R_REJECT_UNLISTED_RECIPIENT },
};

/* smtpd_parse_restrictions: a restriction list; an unknown item is fatal,
 * since ignoring it could let mail through that the admin meant to stop. */
static void smtpd_parse_restrictions(const char *param, struct smtpd_restrictions *r)
{
	r->count = 0;
	for (const char *const *item = config_list(param); *item != NULL; item++) {
		size_t i;
		for (i = 0; i < N_ELEMENTS(restriction_names); i++) {
			if (strcmp(*item, restriction_names[i].name) == 0)
				break;
		}
		if (i == N_ELEMENTS(restriction_names))
			msg_fatal("%s: unsupported restriction \"%s\"", param, *item);
		if (r->count == SMTPD_RESTRICTIONS_MAX)
			msg_fatal("%s: more than %d restrictions", param, SMTPD_RESTRICTIONS_MAX);
		r->items[r->count++] = restriction_names[i].value;
	}
}

/* smtpd_open_maps: a map list, or NULL when the parameter is empty. A
 * table that cannot be opened (say, alias_maps before newaliases ran) is,
 * as in Postfix, "unavailable": its lookups fail temporarily (451), so mail
 * waits instead of bouncing and the rest of the server keeps working. */
static struct maps *smtpd_open_maps(const char *param)
{
	const char *const *names = config_list(param);
	const char *error = NULL;
	if (names[0] == NULL)
		return NULL;
	struct maps *maps = maps_create(param, names, &error);
	if (maps == NULL) {
		msg_warn("%s is unavailable: %s", param, error);
		return SMTPD_MAPS_UNAVAILABLE;
	}
	return maps;
}

static struct domain_list *smtpd_open_domains(const char *param)
{
	const char *error = NULL;
	struct domain_list *list = domain_list_create(param, config_list(param), &error);
	if (list == NULL)
		msg_fatal("%s: %s", param, error);
	return list;
}

static struct net_list *smtpd_open_nets(const char *param)
{
	const char *error = NULL;
	struct net_list *list = net_list_create(param, config_list(param), &error);
	if (list == NULL)
		msg_fatal("%s: %s", param, error);
	return list;
}

static enum smtpd_bare_newline smtpd_bare_newline_mode(void)
{
	const char *v = config_str("smtpd_forbid_bare_newline");
	if (str_eq_icase(v, "normalize") || str_eq_icase(v, "yes"))
		return SMTPD_BARE_NL_NORMALIZE;
	if (str_eq_icase(v, "reject"))
		return SMTPD_BARE_NL_REJECT;
	if (str_eq_icase(v, "no"))
		return SMTPD_BARE_NL_KEEP;
	msg_fatal("smtpd_forbid_bare_newline: bad value \"%s\" (no, normalize or reject)", v);
}

/* smtpd_open_tls: credentials when TLS is wanted; "encrypt" without them
 * is a configuration error, "may" without them just offers no STARTTLS. */
static void smtpd_open_tls(void)
{
	const char *level = config_str("smtpd_tls_security_level");
	const char *cert = config_str("smtpd_tls_cert_file");
	const char *key = config_str("smtpd_tls_key_file");
	const char *error = NULL;
	if (strcmp(level, "none") == 0 || *level == '\0') {
		smtpd_config.tls_level = SMTPD_TLS_NONE;
		return;
	}
	if (strcmp(level, "may") == 0)
		smtpd_config.tls_level = SMTPD_TLS_MAY;
	else if (strcmp(level, "encrypt") == 0)
		smtpd_config.tls_level = SMTPD_TLS_ENCRYPT;
	else
		msg_fatal("smtpd_tls_security_level: bad value \"%s\" (none, may or encrypt)", level);
	if (*cert == '\0' || *key == '\0') {
		if (smtpd_config.tls_level == SMTPD_TLS_ENCRYPT)
			msg_fatal("smtpd_tls_security_level = encrypt needs smtpd_tls_cert_file and smtpd_tls_key_file");
		msg_warn("TLS offered (smtpd_tls_security_level = may) but no certificate: STARTTLS disabled");
		smtpd_config.tls_level = SMTPD_TLS_NONE;
		return;
	}
	smtpd_config.tls = tls_server_create(cert, key, &error);
	if (smtpd_config.tls == NULL) {
		if (smtpd_config.tls_level == SMTPD_TLS_ENCRYPT)
			msg_fatal("cannot load TLS certificate: %s", error);
		msg_warn("cannot load TLS certificate, STARTTLS disabled: %s", error);
		smtpd_config.tls_level = SMTPD_TLS_NONE;
	}
}

/* smtpd_open_dns: the resolver for smtpd_peername_lookup, made before the
 * chroot (libunbound reads /etc/resolv.conf at creation). */
static void smtpd_open_dns(void)
{
	const char *error = NULL;
	if (!smtpd_config.peername_lookup)
		return;
	const char *const *forwarders = config_list("resolver_forwarders");
	struct dns_client_settings set = {
		.forwarders = forwarders,
		.use_resolv_conf = forwarders[0] == NULL,
		.timeout_ms = (unsigned)config_time("resolver_timeout") * 1000,
	};
	smtpd_config.dns = dns_client_create(multi_server_loop(), &set, &error);
	if (smtpd_config.dns == NULL)
		msg_fatal("cannot start the DNS resolver: %s", error);
}

static int smtpd_reject_code(const char *param, int cls)
{
	long long code = config_int(param);
	if (code / 100 != cls && code / 100 != 4)
		msg_fatal("%s: bad reply code %lld", param, code);
	return (int)code;
}

/* smtpd_pre_init: everything that needs privileges or paths outside a
 * chroot: the TLS key and the lookup tables. */
static void smtpd_pre_init(void *ctx)
{
	struct smtpd_config *c = &smtpd_config;
	c->myhostname = config_str("myhostname");
	c->banner = config_str("smtpd_banner");
	c->queue_directory = multi_server_queue_dir();
	c->message_size_limit = config_size("message_size_limit");
	c->queue_minfree = config_size("queue_minfree");
	c->line_length_limit = (size_t)config_int("line_length_limit");
	if (c->line_length_limit < 512)
		c->line_length_limit = 512;
	c->recipient_limit = (unsigned)config_int("smtpd_recipient_limit");
	c->hard_error_limit = (unsigned)config_int("smtpd_hard_error_limit");
	c->soft_error_limit = (unsigned)config_int("smtpd_soft_error_limit");
	c->junk_command_limit = (unsigned)config_int("smtpd_junk_command_limit");
	c->timeout_ms = (unsigned)config_time("smtpd_timeout") * 1000;
	c->error_sleep_ms = (unsigned)config_time("smtpd_error_sleep_time") * 1000;
	c->hopcount_limit = (unsigned)config_int("hopcount_limit");
	c->helo_required = config_bool("smtpd_helo_required");
	c->disable_vrfy = config_bool("disable_vrfy_command");
	c->strict_rfc821 = config_bool("strict_rfc821_envelopes");
	c->smtputf8 = config_bool("smtputf8_enable");
	c->peername_lookup = config_bool("smtpd_peername_lookup");
	c->bare_newline = smtpd_bare_newline_mode();
	c->bare_newline_reject_code = smtpd_reject_code("smtpd_forbid_bare_newline_reject_code", 5);
	c->relay_reject_code = smtpd_reject_code("relay_domains_reject_code", 5);
	c->unknown_local_code = smtpd_reject_code("unknown_local_recipient_reject_code", 5);
	c->unknown_virtual_code = smtpd_reject_code("unknown_virtual_mailbox_reject_code", 5);
	c->recipient_delimiter = config_str("recipient_delimiter");
	c->discard_ehlo = config_list("smtpd_discard_ehlo_keywords");
	c->mynetworks = smtpd_open_nets("mynetworks");
	c->limit_exceptions = smtpd_open_nets("smtpd_client_event_limit_exceptions");
	c->bare_newline_exclusions = smtpd_open_nets("smtpd_forbid_bare_newline_exclusions");
	c->mydestination = smtpd_open_domains("mydestination");
	c->virtual_mailbox_domains = smtpd_open_domains("virtual_mailbox_domains");
	c->virtual_alias_domains = smtpd_open_domains("virtual_alias_domains");
	c->relay_domains = smtpd_open_domains("relay_domains");
	c->local_recipient_maps = smtpd_open_maps("local_recipient_maps");
	c->virtual_mailbox_maps = smtpd_open_maps("virtual_mailbox_maps");
	c->virtual_alias_maps = smtpd_open_maps("virtual_alias_maps");
	c->relay_recipient_maps = smtpd_open_maps("relay_recipient_maps");
	smtpd_parse_restrictions("smtpd_relay_restrictions", &c->relay_restrictions);
	smtpd_parse_restrictions("smtpd_recipient_restrictions", &c->recipient_restrictions);
	smtpd_open_tls();
	smtpd_open_dns();
	smtpd_check_init();
}

/* smtpd_table_changed: a table replaced behind our chroot. */
static void smtpd_table_changed(const char *path)
{
	multi_server_drain("table changed");
}

/* smtpd_open_anvil: per-client connection limits through anvil(8), at
 * private/anvil as seen from this process (inside the chroot or not). */
static void smtpd_open_anvil(void)
{
	struct smtpd_config *c = &smtpd_config;
	c->conn_count_limit = (unsigned)config_int("smtpd_client_connection_count_limit");
	c->conn_rate_limit = (unsigned)config_int("smtpd_client_connection_rate_limit");
	c->message_rate_limit = (unsigned)config_int("smtpd_client_message_rate_limit");
	c->rcpt_rate_limit = (unsigned)config_int("smtpd_client_recipient_rate_limit");
	if (c->conn_count_limit == 0 && c->conn_rate_limit == 0 && c->message_rate_limit == 0 &&
	    c->rcpt_rate_limit == 0)
		return;
	struct str path = STR_INIT;
	str_printf(&path, "%s/private/anvil", multi_server_queue_dir());
	c->anvil = anvil_client_create(multi_server_loop(), str_c(&path));
	str_deinit(&path);
}

static void smtpd_post_init(void *ctx)
{
	dict_lmdb_set_stale_hook(smtpd_table_changed);
	smtpd_open_anvil();
}

static void smtpd_accept(void *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen,
			 const struct multi_server_listener *listener)
{
	smtpd_session_start(fd, peer, peerlen);
}

/* smtpd_pre_exit: sessions still open when the process stops. */
static void smtpd_pre_exit(void *ctx)
{
	(void)ctx;
	smtpd_sessions_free();
}

static const struct multi_server_ops smtpd_ops = {
	.pre_init = smtpd_pre_init,
	.post_init = smtpd_post_init,
	.accept = smtpd_accept,
	.pre_exit = smtpd_pre_exit,
};

int main(int argc, char **argv)
{
	return multi_server_main(argc, argv, "smtpd", &smtpd_ops, NULL);
}
