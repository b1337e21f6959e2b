/* match_list.h: domain lists (mydestination, relay_domains, ...) and
 * network lists (mynetworks), matched as Postfix does.
 *
 * Items come from a list parameter (config_list()). Common to both kinds:
 *	!item		a match of item means "no match" for the whole list;
 *			the first item that matches decides
 *	/file/name	the items written in that file (white space or comma
 *			separated, '#' starts a comment); no nesting
 *	type:name	a lookup table (maps.h); items are joined again where
 *			list splitting cut inside { }
 *
 * Domain lists, case-insensitive (ASCII):
 *	example.com	matches example.com only; with
 *			DOMAIN_LIST_PARENT_MATCHES_SUBDOMAINS (Postfix's
 *			parent_domain_matches_subdomains for this parameter)
 *			also every subdomain of it
 *	.example.com	matches every subdomain of example.com, not itself
 *	type:name	looks up the domain, then each parent as ".parent"
 *			(as "parent" with the flag above): sub.example.com,
 *			.example.com, .com; the value is ignored
 *
 * Network lists:
 *	10.1.2.3, [10.1.2.3]		one IPv4 address (/32)
 *	127.0.0.0/8			an IPv4 network; host bits must be 0
 *	[::1], [::1]/128, [2001:db8::]/32
 *					IPv6 (brackets as in main.cf; a bare
 *					IPv6 address is accepted too)
 *	[::ffff:127.0.0.0]/104		IPv4-mapped forms with a prefix of
 *					at least 96 are IPv4 networks
 *	type:name			looks up the address text ("10.1.2.3",
 *					"2001:db8::1")
 * A client address in IPv4-mapped IPv6 form (::ffff:a.b.c.d) is matched
 * as the IPv4 address a.b.c.d; IPv6 items never match IPv4 clients. A
 * malformed item fails the create call with a message naming it. */
#ifndef PETREL_MATCH_LIST_H
#define PETREL_MATCH_LIST_H

#include <stdbool.h>
#include <sys/socket.h>

struct domain_list;
struct net_list;

enum domain_list_flags {
	DOMAIN_LIST_PARENT_MATCHES_SUBDOMAINS = 1 << 0,
};

/* domain_list_create: title is the parameter name, for messages. */
struct domain_list *domain_list_create(const char *title, const char *const *items,
				       const char **error_r);
struct domain_list *domain_list_create_flags(const char *title, const char *const *items,
					     unsigned int flags, const char **error_r);
void domain_list_free(struct domain_list **list);
/* domain_list_match: 1 listed, 0 not, -1 table lookup error (*error_r,
 * valid until the next call on list). */
int domain_list_match(struct domain_list *list, const char *domain, const char **error_r);

struct net_list *net_list_create(const char *title, const char *const *items,
				 const char **error_r);
void net_list_free(struct net_list **list);
/* net_list_match: true when the address (AF_INET or AF_INET6) is listed.
 * A table lookup error is logged and counts as "not listed", so the
 * client gets no privilege from it (fail closed). */
bool net_list_match(struct net_list *list, const struct sockaddr *sa);
/* net_list_match_str: the same for an address in text ("10.1.2.3",
 * "::1", "[::1]"); text that is no address is not listed. */
bool net_list_match_str(struct net_list *list, const char *addr);

#endif
