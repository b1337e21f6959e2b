/* anvil_table.c: anvil's bounded table of (service, client) entries (the
 * model is described in anvil.h).
 *
 * A chained hash table keyed by SipHash-2-4 with a per-process random key,
 * so clients cannot choose addresses that pile into one chain; an idle
 * list (entries without connections, least recently used first) for
 * expiry and eviction; and links between owners and entries for the
 * connection counts. Every operation is O(1) but for the short list of
 * owners per entry (one per smtpd process that talks about the client). */
#include <config.h>

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "anvil/anvil.h"
#include "util/alloc.h"
#include "util/msg.h"

#define ANVIL_BUCKETS_MIN 1024
#define ANVIL_VALUE_MAX INT_MAX /* counters saturate here */

struct anvil_link {
	struct anvil_entry *entry;
	struct anvil_owner *owner;
	unsigned n;                          /* connections owner holds */
	struct anvil_link *e_prev, *e_next; /* in entry->links */
	struct anvil_link *o_prev, *o_next; /* in owner->links */
};

struct anvil_entry {
	struct anvil_entry *hash_next;
	struct anvil_entry *idle_prev, *idle_next;
	bool idle;
	uint64_t hash;
	struct anvil_link *links;
	unsigned count;
	unsigned events[ANVIL_EV_COUNT];
	uint64_t window_start; /* first event of the current window */
	uint64_t idle_since;   /* last use while idle */
	size_t service_len;    /* ident is service ":" client */
	size_t ident_len;
	char ident[];
};

struct anvil_table {
	struct anvil_entry **buckets;
	size_t nbuckets; /* a power of two */
	unsigned size, limit;
	uint64_t unit_ms;
	struct anvil_entry *idle_head, *idle_tail;
	uint64_t k0, k1;
};

/* ---- hashing ---- */

#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v0, v1, v2, v3)                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL64(v1, 13);                                                               \
		v1 ^= v0;                                                                          \
		v0 = ROTL64(v0, 32);                                                               \
		v2 += v3;                                                                          \
		v3 = ROTL64(v3, 16);                                                               \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL64(v3, 21);                                                               \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL64(v1, 17);                                                               \
		v1 ^= v2;                                                                          \
		v2 = ROTL64(v2, 32);                                                               \
	} while (0)

/* anvil_siphash: SipHash-2-4 of data under (k0, k1). */
static uint64_t anvil_siphash(const void *data, size_t len, uint64_t k0, uint64_t k1)
{
	const unsigned char *p = data;
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t m = 0;
		for (int b = 7; b >= 0; b--)
			m = (m << 8) | p[i + (size_t)b];
		v3 ^= m;
		SIPROUND(v0, v1, v2, v3);
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	uint64_t last = (uint64_t)len << 56;
	for (size_t b = 0; i + b < len; b++)
		last |= (uint64_t)p[i + b] << (8 * b);
	v3 ^= last;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	v0 ^= last;
	v2 ^= 0xff;
	for (int r = 0; r < 4; r++)
		SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* anvil_table_key: a random hash key (time and pid if getrandom fails,
 * which only weakens the flooding defence). */
static void anvil_table_key(struct anvil_table *t)
{
	uint64_t k[2];
	if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
		k[1] = (uint64_t)ts.tv_sec * 0xc2b2ae3d27d4eb4fULL;
	}
	t->k0 = k[0];
	t->k1 = k[1];
}

/* anvil_hash: the hash of (service, client); the service length goes into
 * the key so "a:b" + "c" and "a" + "b:c" differ. */
static uint64_t anvil_hash(const struct anvil_table *t, const char *ident, size_t len,
			   size_t service_len)
{
	return anvil_siphash(ident, len, t->k0, t->k1 ^ service_len);
}

/* ---- the table ---- */

struct anvil_table *anvil_table_create(unsigned limit, uint64_t unit_ms)
{
	struct anvil_table *t = xcalloc(1, sizeof(*t));
	t->limit = limit > 0 ? limit : 1;
	t->unit_ms = unit_ms > 0 ? unit_ms : 1;
	t->nbuckets = ANVIL_BUCKETS_MIN;
	t->buckets = xcalloc(t->nbuckets, sizeof(*t->buckets));
	anvil_table_key(t);
	return t;
}

/* anvil_link_free: unlink l from its entry and owner, free it. */
static void anvil_link_free(struct anvil_link *l)
{
	if (l->e_prev != NULL)
		l->e_prev->e_next = l->e_next;
	else
		l->entry->links = l->e_next;
	if (l->e_next != NULL)
		l->e_next->e_prev = l->e_prev;
	if (l->o_prev != NULL)
		l->o_prev->o_next = l->o_next;
	else
		l->owner->links = l->o_next;
	if (l->o_next != NULL)
		l->o_next->o_prev = l->o_prev;
	free(l);
}

void anvil_table_free(struct anvil_table **tp)
{
	struct anvil_table *t = *tp;
	if (t == NULL)
		return;
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct anvil_entry *e = t->buckets[b];
		while (e != NULL) {
			struct anvil_entry *next = e->hash_next;
			while (e->links != NULL)
				anvil_link_free(e->links);
			free(e);
			e = next;
		}
	}
	free(t->buckets);
	free(t);
	*tp = NULL;
}

/* anvil_idle_remove: e has connections again (or is going away). */
static void anvil_idle_remove(struct anvil_table *t, struct anvil_entry *e)
{
	if (!e->idle)
		return;
	if (e->idle_prev != NULL)
		e->idle_prev->idle_next = e->idle_next;
	else
		t->idle_head = e->idle_next;
	if (e->idle_next != NULL)
		e->idle_next->idle_prev = e->idle_prev;
	else
		t->idle_tail = e->idle_prev;
	e->idle_prev = e->idle_next = NULL;
	e->idle = false;
}

/* anvil_idle_touch: e (without connections) was used now: to the tail. */
static void anvil_idle_touch(struct anvil_table *t, struct anvil_entry *e, uint64_t now)
{
	anvil_idle_remove(t, e);
	e->idle = true;
	e->idle_since = now;
	e->idle_prev = t->idle_tail;
	if (t->idle_tail != NULL)
		t->idle_tail->idle_next = e;
	else
		t->idle_head = e;
	t->idle_tail = e;
}

/* anvil_entry_remove: out of the hash and idle list, freed. Only for
 * entries without connections (no links). */
static void anvil_entry_remove(struct anvil_table *t, struct anvil_entry *e)
{
	if (e->links != NULL || e->count != 0)
		msg_panic("anvil_entry_remove: %s still has %u connections", e->ident, e->count);
	struct anvil_entry **pp = &t->buckets[e->hash & (t->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hash_next;
	*pp = e->hash_next;
	anvil_idle_remove(t, e);
	t->size--;
	free(e);
}

/* anvil_table_grow: double the buckets once the load passes 1. */
static void anvil_table_grow(struct anvil_table *t)
{
	size_t n = t->nbuckets * 2;
	struct anvil_entry **b = xcalloc(n, sizeof(*b));
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct anvil_entry *e = t->buckets[i];
		while (e != NULL) {
			struct anvil_entry *next = e->hash_next;
			e->hash_next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

/* anvil_lookup: find (service, client); *hash_r for an insert. */
static struct anvil_entry *anvil_lookup(const struct anvil_table *t, const char *service,
					const char *client, uint64_t *hash_r)
{
	size_t slen = strlen(service), clen = strlen(client);
	char ident[ANVIL_SERVICE_MAX + 1 + ANVIL_CLIENT_MAX + 1];
	if (slen > ANVIL_SERVICE_MAX || clen > ANVIL_CLIENT_MAX)
		msg_panic("anvil_lookup: service or client too long");
	memcpy(ident, service, slen);
	ident[slen] = ':';
	memcpy(ident + slen + 1, client, clen + 1);
	size_t len = slen + 1 + clen;
	uint64_t h = anvil_hash(t, ident, len, slen);
	*hash_r = h;
	for (struct anvil_entry *e = t->buckets[h & (t->nbuckets - 1)]; e != NULL;
	     e = e->hash_next) {
		if (e->hash == h && e->service_len == slen && e->ident_len == len &&
		    memcmp(e->ident, ident, len) == 0)
			return e;
	}
	return NULL;
}

struct anvil_entry *anvil_table_find(struct anvil_table *t, const char *service,
				     const char *client)
{
	uint64_t h;
	return anvil_lookup(t, service, client, &h);
}

struct anvil_entry *anvil_table_get(struct anvil_table *t, const char *service,
				    const char *client, uint64_t now)
{
	uint64_t h;
	struct anvil_entry *e = anvil_lookup(t, service, client, &h);
	if (e != NULL)
		return e;
	if (t->size >= t->limit) {
		if (t->idle_head == NULL)
			return NULL;
		anvil_entry_remove(t, t->idle_head);
	}
	size_t slen = strlen(service), clen = strlen(client);
	e = xcalloc(1, sizeof(*e) + slen + 1 + clen + 1);
	memcpy(e->ident, service, slen);
	e->ident[slen] = ':';
	memcpy(e->ident + slen + 1, client, clen + 1);
	e->service_len = slen;
	e->ident_len = slen + 1 + clen;
	e->hash = h;
	e->window_start = now;
	if (t->size >= t->nbuckets && t->nbuckets < (size_t)t->limit)
		anvil_table_grow(t);
	struct anvil_entry **bucket = &t->buckets[h & (t->nbuckets - 1)];
	e->hash_next = *bucket;
	*bucket = e;
	t->size++;
	anvil_idle_touch(t, e, now);
	return e;
}

/* anvil_count_event: one event in e's window, restarting an ended one. */
static unsigned anvil_count_event(struct anvil_table *t, struct anvil_entry *e,
				  enum anvil_event ev, uint64_t now)
{
	if (now - e->window_start >= t->unit_ms) {
		memset(e->events, 0, sizeof(e->events));
		e->window_start = now;
	}
	if (e->events[ev] < ANVIL_VALUE_MAX)
		e->events[ev]++;
	return e->events[ev];
}

unsigned anvil_table_connect(struct anvil_table *t, struct anvil_entry *e,
			     struct anvil_owner *owner, uint64_t now)
{
	anvil_count_event(t, e, ANVIL_EV_CONNECT, now);
	if (e->count >= ANVIL_VALUE_MAX)
		return e->count;
	struct anvil_link *l = e->links;
	while (l != NULL && l->owner != owner)
		l = l->e_next;
	if (l == NULL) {
		l = xcalloc(1, sizeof(*l));
		l->entry = e;
		l->owner = owner;
		l->e_next = e->links;
		if (e->links != NULL)
			e->links->e_prev = l;
		e->links = l;
		l->o_next = owner->links;
		if (owner->links != NULL)
			owner->links->o_prev = l;
		owner->links = l;
	}
	l->n++;
	if (e->count++ == 0)
		anvil_idle_remove(t, e);
	return e->count;
}

void anvil_table_disconnect(struct anvil_table *t, struct anvil_entry *e,
			    struct anvil_owner *owner, uint64_t now)
{
	struct anvil_link *l = e->links;
	while (l != NULL && l->owner != owner)
		l = l->e_next;
	if (l == NULL)
		return;
	if (--l->n == 0)
		anvil_link_free(l);
	if (--e->count == 0)
		anvil_idle_touch(t, e, now);
}

void anvil_table_owner_gone(struct anvil_table *t, struct anvil_owner *owner, uint64_t now)
{
	while (owner->links != NULL) {
		struct anvil_link *l = owner->links;
		struct anvil_entry *e = l->entry;
		e->count -= l->n;
		anvil_link_free(l);
		if (e->count == 0)
			anvil_idle_touch(t, e, now);
	}
}

unsigned anvil_table_event(struct anvil_table *t, struct anvil_entry *e, enum anvil_event ev,
			   uint64_t now)
{
	if (ev == ANVIL_EV_CONNECT || ev >= ANVIL_EV_COUNT)
		msg_panic("anvil_table_event: bad event %d", (int)ev);
	unsigned n = anvil_count_event(t, e, ev, now);
	if (e->idle)
		anvil_idle_touch(t, e, now);
	return n;
}

void anvil_table_counts(const struct anvil_table *t, const struct anvil_entry *e, uint64_t now,
			struct anvil_counts *c)
{
	c->count = e->count;
	if (now - e->window_start >= t->unit_ms)
		memset(c->events, 0, sizeof(c->events));
	else
		memcpy(c->events, e->events, sizeof(c->events));
}

const char *anvil_entry_ident(const struct anvil_entry *e)
{
	return e->ident;
}

uint64_t anvil_table_expire(struct anvil_table *t, uint64_t now)
{
	/* Idle for a unit means the window ended too: the window starts at
	 * or before the last use, which idle_since records. */
	while (t->idle_head != NULL && now - t->idle_head->idle_since >= t->unit_ms)
		anvil_entry_remove(t, t->idle_head);
	if (t->idle_head == NULL)
		return 0;
	return t->unit_ms - (now - t->idle_head->idle_since);
}

unsigned anvil_table_size(const struct anvil_table *t)
{
	return t->size;
}

unsigned anvil_table_limit(const struct anvil_table *t)
{
	return t->limit;
}
