/* dns.h: asynchronous DNS lookups on libunbound, driven by the event loop,
 * and the forward-confirmed client name lookup of smtpd.
 *
 * One dns_client per process (it holds libunbound's cache and worker
 * thread). dns_lookup() and dns_peername() never call back before they
 * return: even an immediate failure (too many queries, a bad name) is
 * reported from the event loop. A callback is called exactly once, unless
 * the query is cancelled with dns_cancel() first; the query handle is freed
 * before the callback runs, so the owner forgets it there.
 *
 * Bounds: at most settings.max_queries lookups in flight per client (more
 * fail with "too many outstanding queries"), names of at most 253
 * characters, at most DNS_MAX_RECORDS records decoded per answer (the rest
 * are dropped and res->truncated is set); a record that does not decode
 * fails the whole answer ("malformed answer"). */
#ifndef PETREL_DNS_H
#define PETREL_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_loop;
struct dns_client;
struct dns_query;

/* Record types the callers use (host order); any other number works too. */
enum {
	DNS_TYPE_A = 1,
	DNS_TYPE_NS = 2,
	DNS_TYPE_CNAME = 5,
	DNS_TYPE_PTR = 12,
	DNS_TYPE_MX = 15,
	DNS_TYPE_TXT = 16,
	DNS_TYPE_AAAA = 28,
	DNS_TYPE_TLSA = 52,
};

enum {
	DNS_RCODE_NOERROR = 0,
	DNS_RCODE_SERVFAIL = 2,
	DNS_RCODE_NXDOMAIN = 3,
	DNS_RCODE_REFUSED = 5,
};

#define DNS_MAX_RECORDS 100
#define DNS_MAX_NAME_LEN 253 /* presentation form, no trailing dot */
#define DNS_DEFAULT_TIMEOUT_MS 10000
#define DNS_DEFAULT_MAX_QUERIES 64
#define DNS_PEER_MAX_NAMES 4 /* PTR names tried by dns_peername() */

struct dns_client_settings {
	/* "127.0.0.1", "127.0.0.1@5353" or "::1@53". When set, only these
	 * servers are asked (and loopback ones are allowed). */
	const char *const *forwarders;
	/* No forwarders: use the nameservers of /etc/resolv.conf if true,
	 * else recurse from the root servers. */
	bool use_resolv_conf;
	/* DNSSEC trust anchor file (e.g. /usr/share/dns/root.key); NULL: no
	 * validation, every answer is insecure. It is read by
	 * dns_client_create(), so a chroot may follow. */
	const char *trust_anchor_file;
	unsigned timeout_ms;  /* per query; 0: DNS_DEFAULT_TIMEOUT_MS */
	unsigned max_queries; /* in flight; 0: DNS_DEFAULT_MAX_QUERIES */
};

/* dns_result: one answer, valid only during the callback. The arrays have
 * count entries; the ones that do not apply to rrtype are NULL. */
struct dns_result {
	int rrtype;
	int rcode;	       /* DNS rcode, or -1 when no answer arrived */
	bool secure;	       /* DNSSEC validated */
	bool bogus;	       /* DNSSEC validation failed */
	bool nxdomain;	       /* the name does not exist */
	bool truncated;	       /* more than DNS_MAX_RECORDS records */
	unsigned ttl;
	const char *canonname; /* after CNAMEs, with the trailing dot; or NULL */
	size_t count;
	/* PTR, MX, CNAME, NS: target names, presentation form without the
	 * trailing dot ("." for the root, as in a null MX); "\." and "\\"
	 * for those bytes in a label, \DDD for any byte other than letters,
	 * digits, '-', '_' and '*'. */
	char **names;
	unsigned short *prefs; /* MX preference, in the order of names */
	/* A, AAAA: AF_INET/AF_INET6 with port 0. */
	struct sockaddr_storage *addrs;
	/* Every type: each record's rdata as received (TLSA, TXT, ...). */
	const uint8_t **rdata;
	size_t *rdata_len;
};

/* dns_done_fn: error is NULL when the server answered NOERROR (count may be
 * 0: no such record) or NXDOMAIN (res->nxdomain); otherwise a short text:
 * "timeout", "SERVFAIL", "REFUSED", "DNSSEC validation failed: ...",
 * "malformed answer", "too many outstanding queries", ... All errors are
 * temporary except "malformed answer" and "invalid name". res is never
 * NULL (count is 0 on error). */
typedef void dns_done_fn(void *ctx, const struct dns_result *res, const char *error);

/* dns_client_create: a libunbound context with its worker thread, whose
 * result pipe is watched by loop. NULL and *error_r on bad settings. */
struct dns_client *dns_client_create(struct event_loop *loop,
				     const struct dns_client_settings *set,
				     const char **error_r);
/* dns_client_free: cancel every query (no callback is called) and stop the
 * worker. May be called from a dns callback. */
void dns_client_free(struct dns_client **client);

/* dns_lookup: look up name (text, absolute or not; no search list) of type
 * rrtype (1..65535; anything else is a panic), class IN. Never NULL. */
struct dns_query *dns_lookup(struct dns_client *client, const char *name, int rrtype,
			     dns_done_fn *fn, void *ctx);
/* dns_cancel: forget the query; its callback is never called. *query may be
 * NULL. Not to be called on a query whose callback has run. */
void dns_cancel(struct dns_query **query);

/* Postfix's name_status/reverse_name_status codes (smtpd_check uses them). */
enum dns_peer_status {
	DNS_PEER_OK = 2,     /* found (and for name: confirmed) */
	DNS_PEER_TEMP = 4,   /* a lookup failed temporarily */
	DNS_PEER_PERM = 5,   /* no PTR record, or none usable */
	DNS_PEER_FORGED = 6, /* no PTR name resolves to the address */
};

struct dns_peer {
	const char *addr;	  /* printable client address (v4-mapped as IPv4) */
	const char *name;	  /* confirmed name, or "unknown" */
	const char *reverse_name; /* first usable PTR name, or "unknown" */
	enum dns_peer_status name_status;
	enum dns_peer_status reverse_status;
};

/* dns_peername_fn: peer is valid only during the callback. */
typedef void dns_peername_fn(void *ctx, const struct dns_peer *peer);

/* dns_peername: Postfix's client name lookup. The address's PTR names (up
 * to DNS_PEER_MAX_NAMES usable ones) are looked up for A (IPv4) or AAAA
 * (IPv6) records; the first name whose addresses include sa is the name.
 * Logs Postfix's warnings ("hostname %s does not resolve to address %s").
 * A non-IP address is "localhost". Never NULL; cancel with dns_cancel(). */
struct dns_query *dns_peername(struct dns_client *client, const struct sockaddr *sa,
			       dns_peername_fn *fn, void *ctx);

/* dns_name_decode: wire-format name (uncompressed) of exactly len bytes to
 * presentation form into buf (at least DNS_NAME_TEXT_MAX bytes). false on
 * a malformed name. Exposed for the tests. */
#define DNS_NAME_TEXT_MAX (4 * 255 + 2)
bool dns_name_decode(const uint8_t *wire, size_t len, char *buf, size_t bufsize);
/* dns_hostname_valid: a name fit to be a client hostname: letters, digits,
 * '-' and '_' in labels of 1..63 characters, not all-numeric. */
bool dns_hostname_valid(const char *name);

#endif
