/* anvil.h: the layout of anvil(8), the connection count and rate service.
 *
 *	anvil.c		main(), the connections from smtpd processes, the
 *			request handlers, the statistics log lines
 *	anvil_table.c	the bounded table of (service, client) entries:
 *			counts, rate windows, expiry, LRU eviction
 *
 * Model. An entry is one (service, client address) pair with a connection
 * count and five event counters (connections, messages, recipients, new
 * TLS sessions, AUTH commands) over a window of anvil_rate_time_unit that
 * restarts with the first event after it ends, as in Postfix.
 *
 * Connections are counted per owner: each anvil connection (one smtpd
 * process) has a list of links (owner, entry, n). When that smtpd process
 * goes away without saying "disconnect" (it crashed, or anvil's client
 * gave up on a timeout), closing its anvil connection gives back all its
 * counts, so counts never leak. A disconnect from an owner that holds no
 * link to the entry is ignored.
 *
 * Bounds. At most limit entries. Entries with no connections sit on an
 * idle list in the order they were last used; they are removed once idle
 * for a time unit (their window has then ended too), and the least
 * recently used one is evicted when a new entry needs room. When every
 * entry holds connections, a new client is not tracked (the request gets
 * status -1, and smtpd lets the client in: limits are best effort). */
#ifndef PETREL_ANVIL_H
#define PETREL_ANVIL_H

#include <stddef.h>
#include <stdint.h>

#include "mail/ipc.h" /* ANVIL_SERVICE_MAX, ANVIL_CLIENT_MAX */

/* The bound of the table. */
#define ANVIL_TABLE_LIMIT 100000

enum anvil_event {
	ANVIL_EV_CONNECT,
	ANVIL_EV_MESSAGE,
	ANVIL_EV_RCPT,
	ANVIL_EV_NEWTLS,
	ANVIL_EV_AUTH,
	ANVIL_EV_COUNT
};

struct anvil_table;
struct anvil_entry;
struct anvil_link;

/* anvil_owner: embedded in whatever holds connections (one per anvil
 * client connection); zero-initialized. */
struct anvil_owner {
	struct anvil_link *links;
};

/* anvil_counts: an entry as lookup reports it (rates of an ended window
 * read as 0). */
struct anvil_counts {
	unsigned count;
	unsigned events[ANVIL_EV_COUNT];
};

/* Times are event_now_ms() milliseconds. */
struct anvil_table *anvil_table_create(unsigned limit, uint64_t unit_ms);
/* anvil_table_free: every entry and link (owners must not be used
 * afterwards). */
void anvil_table_free(struct anvil_table **t);

/* anvil_table_find: the entry, or NULL. */
struct anvil_entry *anvil_table_find(struct anvil_table *t, const char *service,
				     const char *client);
/* anvil_table_get: the entry, made (idle, counts 0) when absent, evicting
 * the least recently used idle entry when full; NULL when every entry
 * holds connections. */
struct anvil_entry *anvil_table_get(struct anvil_table *t, const char *service,
				    const char *client, uint64_t now);
/* anvil_table_connect: one more connection held by owner; counts a
 * connect event too. Returns the new count. */
unsigned anvil_table_connect(struct anvil_table *t, struct anvil_entry *e,
			     struct anvil_owner *owner, uint64_t now);
/* anvil_table_disconnect: one connection fewer, if owner holds one. */
void anvil_table_disconnect(struct anvil_table *t, struct anvil_entry *e,
			    struct anvil_owner *owner, uint64_t now);
/* anvil_table_owner_gone: give back every connection owner holds. */
void anvil_table_owner_gone(struct anvil_table *t, struct anvil_owner *owner, uint64_t now);
/* anvil_table_event: count one event (not ANVIL_EV_CONNECT: use
 * anvil_table_connect); returns the count in the current window. */
unsigned anvil_table_event(struct anvil_table *t, struct anvil_entry *e, enum anvil_event ev,
			   uint64_t now);
/* anvil_table_counts: the current values of e. */
void anvil_table_counts(const struct anvil_table *t, const struct anvil_entry *e, uint64_t now,
			struct anvil_counts *c);
/* anvil_entry_ident: "service:client", for logs. */
const char *anvil_entry_ident(const struct anvil_entry *e);

/* anvil_table_expire: drop entries idle for a time unit; returns the
 * msecs until the next one is due (0: no idle entry). */
uint64_t anvil_table_expire(struct anvil_table *t, uint64_t now);
unsigned anvil_table_size(const struct anvil_table *t);
unsigned anvil_table_limit(const struct anvil_table *t);

#endif
