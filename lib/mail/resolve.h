/* resolve.h: where a recipient goes. qmgr asks, per recipient of a queue
 * file, which final addresses it expands to and, for each, the transport
 * and next hop that deliver it (or why it bounces or must wait).
 *
 * The order, as Postfix's cleanup + trivial-rewrite + local do it:
 *   0. An address without a domain gets "@$myorigin".
 *   1. virtual_alias_maps, recursively (full address, then @domain; a
 *      value is a comma/space separated list of addresses). An address
 *      that maps to a list containing itself keeps itself (and is not
 *      expanded again); an address that comes back through a longer cycle
 *      bounces with 5.4.6 (forwarding loop). More than
 *      virtual_alias_recursion_limit levels or more than
 *      virtual_alias_expansion_limit addresses from one recipient defer
 *      the recipient (4.3.0, a configuration problem).
 *   2. The domain's class: mydestination (local), virtual_alias_domains
 *      (every address must have matched step 1: else User unknown),
 *      virtual_mailbox_domains, anything else.
 *   3. Local: alias_maps on the local part (then without its
 *      recipient_delimiter extension); values are comma separated. A bare
 *      name is a local address; ":include:", "|command" and "/file"
 *      targets bounce (5.3.5 refused: Petrel never runs commands or
 *      writes files from qmgr, whatever allow_mail_to_commands and
 *      allow_mail_to_files say). Not an alias: the user must be in
 *      local_recipient_maps (empty: everyone is), then local_transport.
 *   4. Virtual mailbox: the user must be in virtual_mailbox_maps, then
 *      virtual_transport.
 *   5. Other domains: relayhost (smtp) when set, else default_transport.
 *   transport_maps, when it has the address or its domain (then ".parent"
 *   domains, then "*"), overrides the transport and/or next hop of steps
 *   3-5; "error:text" bounces with text. An unknown user bounces with
 *   5.1.1 "... User unknown in ... table"; a table error defers (4.3.0),
 *   and so does a table that could not be opened (resolver_create).
 *
 * A transport value is "transport:nexthop" (the next hop keeps any further
 * colons: "lmtp:unix:private/lmtpd"); an empty next hop is the recipient's
 * domain (or, for smtp with relayhost, the relay host). */
#ifndef PETREL_RESOLVE_H
#define PETREL_RESOLVE_H

#include <stddef.h>

#define RESOLVE_DEPTH_MAX 1000	  /* hard cap over virtual_alias_recursion_limit */
#define RESOLVE_EXPANSION_MAX 100000 /* hard cap over virtual_alias_expansion_limit */

enum resolve_action {
	RESOLVE_DELIVER, /* hand to transport/nexthop */
	RESOLVE_BOUNCE,	 /* permanent failure: dsn 5.x.x, reason */
	RESOLVE_DEFER,	 /* try again later: dsn 4.x.x, reason */
};

struct resolve_result {
	enum resolve_action action;
	char *address;	 /* the final address (or the one that failed) */
	char *transport; /* DELIVER: service name under private/ */
	char *nexthop;	 /* DELIVER: the agent's nexthop */
	char dsn[16];	 /* BOUNCE/DEFER: enhanced status "5.1.1" */
	char *reason;	 /* BOUNCE/DEFER: text for the log and defer/ID */
};

struct resolver;

/* resolver_create: open the tables the current configuration names.
 * A map parameter whose tables cannot be opened (say alias_maps =
 * hash:/etc/aliases before postalias has built it) is logged as Postfix
 * does ("warning: hash:/etc/aliases is unavailable. ...") and marked
 * unavailable: every address whose resolution needs that parameter is
 * deferred (4.3.0 "alias_maps lookup table unavailable: ...") while the
 * others resolve as usual. NULL with *error_r only when a domain list
 * parameter is malformed. */
struct resolver *resolver_create(const char **error_r);
void resolver_free(struct resolver **res);

/* resolver_unavailable: how many map parameters are unavailable. */
size_t resolver_unavailable(const struct resolver *res);

/* resolver_reopen: try the unavailable parameters again (the same paths,
 * so it works only where they are visible: outside a chroot); returns how
 * many are still unavailable. */
size_t resolver_reopen(struct resolver *res);

/* resolver_resolve: every final destination of address (RFC 5321 form,
 * without brackets; "" is not valid). Always at least one result; the
 * array is freed with resolve_results_free(). */
size_t resolver_resolve(struct resolver *res, const char *address,
			struct resolve_result **results_r);
void resolve_results_free(struct resolve_result **results, size_t count);

#endif
