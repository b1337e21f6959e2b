/* smtpd_check.c: who may send to whom: relay control and recipient
 * validation, decided at RCPT time (never after the 250).
 *
 * Relay and recipient restrictions are evaluated in Postfix's order
 * (smtpd_relay_restrictions, then smtpd_recipient_restrictions); the first
 * permit or reject decides the list. Then, as Postfix's default
 * smtpd_reject_unlisted_recipient = yes does, a recipient in a local,
 * virtual or relay domain must be known to that domain's table. */
#include <config.h>

#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "mail/maps.h"
#include "mail/match_list.h"
#include "smtpd/smtpd.h"
#include "util/msg.h"

enum rcpt_class {
	RCPT_CLASS_LOCAL,
	RCPT_CLASS_VIRTUAL_MAILBOX,
	RCPT_CLASS_VIRTUAL_ALIAS,
	RCPT_CLASS_RELAY,
	RCPT_CLASS_FOREIGN,
	RCPT_CLASS_ERROR, /* a table could not be read */
};

static enum rcpt_class check_classify(const char *domain)
{
	const char *error = NULL;
	const struct {
		struct domain_list *list;
		enum rcpt_class cls;
	} order[] = {
		{ smtpd_config.mydestination, RCPT_CLASS_LOCAL },
		{ smtpd_config.virtual_alias_domains, RCPT_CLASS_VIRTUAL_ALIAS },
		{ smtpd_config.virtual_mailbox_domains, RCPT_CLASS_VIRTUAL_MAILBOX },
		{ smtpd_config.relay_domains, RCPT_CLASS_RELAY },
	};
	for (size_t i = 0; i < N_ELEMENTS(order); i++) {
		if (order[i].list == NULL)
			continue;
		int r = domain_list_match(order[i].list, domain, &error);
		if (r < 0) {
			msg_warn("%s lookup error: %s", domain, error);
			return RCPT_CLASS_ERROR;
		}
		if (r > 0)
			return order[i].cls;
	}
	return RCPT_CLASS_FOREIGN;
}

/* check_known: 1 when some table lists the recipient, 0 not, -1 error. */
static int check_known(struct maps *maps, const struct smtp_addr *a, unsigned flags)
{
	const char *value = NULL, *error = NULL;
	if (maps == NULL)
		return 0;
	if (maps == SMTPD_MAPS_UNAVAILABLE) {
		msg_warn("recipient lookup for %s: table unavailable", a->external);
		return -1;
	}
	/* Tables are keyed by the quoted form of a local part, as Postfix's. */
	struct str local = STR_INIT;
	addr_external_local(&local, a->local, strlen(a->local));
	int r = maps_lookup_addr(maps, str_c(&local), a->domain, smtpd_config.recipient_delimiter,
				 flags, &value, &error);
	if (r < 0)
		msg_warn("recipient lookup for %s: %s", a->external, error);
	str_deinit(&local);
	return r;
}

/* check_unlisted: reply text for an unknown recipient, "" for known, or a
 * temporary error. */
static int check_unlisted(enum rcpt_class cls, const struct smtp_addr *a, struct str *reply)
{
	struct maps *table = NULL;
	const char *what = NULL;
	int code = smtpd_config.unknown_virtual_code;
	unsigned flags = 0;
	switch (cls) {
	case RCPT_CLASS_LOCAL:
		table = smtpd_config.local_recipient_maps;
		what = "local recipient";
		code = smtpd_config.unknown_local_code;
		flags = MAPS_ADDR_LOCAL;
		if (table == NULL) /* local_recipient_maps empty: accept all */
			return 0;
		break;
	case RCPT_CLASS_VIRTUAL_MAILBOX:
		table = smtpd_config.virtual_mailbox_maps;
		what = "virtual mailbox";
		break;
	case RCPT_CLASS_VIRTUAL_ALIAS:
		what = "virtual alias";
		break;
	case RCPT_CLASS_RELAY:
		table = smtpd_config.relay_recipient_maps;
		what = "relay recipient";
		if (table == NULL)
			return 0;
		break;
	default:
		return 0;
	}
	int r = check_known(smtpd_config.virtual_alias_maps, a, 0);
	if (r == 0 && table != NULL)
		r = check_known(table, a, flags);
	if (r < 0) {
		str_printf(reply, "451 4.3.0 <%s>: Temporary lookup failure", a->external);
		return -1;
	}
	if (r == 0) {
		str_printf(reply, "%d 5.1.1 <%s>: Recipient address rejected: User unknown in %s table",
			   code, a->external, what);
		return -1;
	}
	return 0;
}

/* check_restrictions: 1 permit, 0 no decision, -1 reject (reply set). */
static int check_restrictions(struct smtpd_session *s, const struct smtpd_restrictions *r,
			      enum rcpt_class cls, const struct smtp_addr *a, struct str *reply)
{
	bool ours = cls != RCPT_CLASS_FOREIGN;
	for (size_t i = 0; i < r->count; i++) {
		switch (r->items[i]) {
		case SMTPD_R_PERMIT:
			return 1;
		case SMTPD_R_REJECT:
			str_printf(reply, "554 5.7.1 <%s>: Recipient address rejected: Access denied",
				   a->external);
			return -1;
		case SMTPD_R_PERMIT_MYNETWORKS:
			if (s->in_mynetworks)
				return 1;
			break;
		case SMTPD_R_PERMIT_SASL_AUTHENTICATED:
			break; /* no SASL on this service */
		case SMTPD_R_REJECT_UNAUTH_DESTINATION:
		case SMTPD_R_DEFER_UNAUTH_DESTINATION:
			if (ours)
				break;
			if (r->items[i] == SMTPD_R_DEFER_UNAUTH_DESTINATION)
				str_printf(reply, "454 4.7.1 <%s>: Relay access denied", a->external);
			else
				str_printf(reply, "%d 5.7.1 <%s>: Relay access denied",
					   smtpd_config.relay_reject_code, a->external);
			return -1;
		case SMTPD_R_REJECT_UNLISTED_RECIPIENT:
			if (check_unlisted(cls, a, reply) < 0)
				return -1;
			break;
		}
	}
	return 0;
}

int smtpd_check_rcpt(struct smtpd_session *s, const struct smtp_addr *rcpt, struct str *reply_r)
{
	/* RFC 5321 4.5.1: <postmaster> without a domain is always accepted. */
	if (rcpt->domain == NULL)
		return 0;
	enum rcpt_class cls = check_classify(rcpt->domain);
	if (cls == RCPT_CLASS_ERROR) {
		str_printf(reply_r, "451 4.3.0 <%s>: Temporary lookup failure", rcpt->external);
		return -1;
	}
	if (check_restrictions(s, &smtpd_config.relay_restrictions, cls, rcpt, reply_r) < 0)
		return -1;
	if (check_restrictions(s, &smtpd_config.recipient_restrictions, cls, rcpt, reply_r) < 0)
		return -1;
	/* Whatever the lists said, mail for our domains goes to known users,
	 * and mail for other domains needs a permit: never an open relay. */
	if (cls == RCPT_CLASS_FOREIGN && !s->in_mynetworks) {
		str_printf(reply_r, "%d 5.7.1 <%s>: Relay access denied",
			   smtpd_config.relay_reject_code, rcpt->external);
		return -1;
	}
	return check_unlisted(cls, rcpt, reply_r) < 0 ? -1 : 0;
}

bool smtpd_check_space(long long message_size)
{
	struct statvfs st;
	if (statvfs(smtpd_config.queue_directory, &st) != 0) {
		msg_warn("statvfs(%s) failed: %m", smtpd_config.queue_directory);
		return true; /* the write will tell */
	}
	unsigned long long avail = (unsigned long long)st.f_bavail * st.f_frsize;
	unsigned long long need = (unsigned long long)smtpd_config.queue_minfree;
	if (message_size > 0)
		need += (unsigned long long)message_size + (unsigned long long)message_size / 2;
	return avail >= need;
}

void smtpd_check_init(void)
{
}
