/* test-match-list.c: unit tests for lib/mail/match_list: domain lists
 * (names, .subdomain items, negation, tables, files, parent-style) and
 * network lists (IPv4, IPv6, IPv4-mapped, /0 /32 /128, tables, bad items). */
#include <config.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/match_list.h"
#include "tap.h"
#include "util/attr.h"
#include "util/msg.h"
#include "util/str.h"

static char tmpdir[] = "/tmp/test-match-list.XXXXXX";
static char domains_file[128];

/* The longest item list a case uses. */
#define ITEMS_MAX 12

static const struct domain_case {
	const char *items[ITEMS_MAX];
	unsigned int flags;
	const char *domain;
	int want;
} domain_cases[] = {
#define LIST_A "example.com", ".sub.example.org", "!bad.example.net", ".example.net", \
	       "inline:{ map.test=x, .wild.test=y }"
	{ { LIST_A }, 0, "example.com", 1 },
	{ { LIST_A }, 0, "EXAMPLE.Com", 1 },
	{ { LIST_A }, 0, "www.example.com", 0 },
	{ { LIST_A }, 0, "xexample.com", 0 },
	{ { LIST_A }, 0, "sub.example.org", 0 },
	{ { LIST_A }, 0, "a.sub.example.org", 1 },
	{ { LIST_A }, 0, "a.b.SUB.example.org", 1 },
	{ { LIST_A }, 0, "bad.example.net", 0 },
	{ { LIST_A }, 0, "x.bad.example.net", 1 },
	{ { LIST_A }, 0, "good.example.net", 1 },
	{ { LIST_A }, 0, "example.net", 0 },
	{ { LIST_A }, 0, "map.test", 1 },
	{ { LIST_A }, 0, "Map.Test", 1 },
	{ { LIST_A }, 0, "sub.map.test", 0 },
	{ { LIST_A }, 0, "wild.test", 0 },
	{ { LIST_A }, 0, "a.wild.test", 1 },
	{ { LIST_A }, 0, "a.b.wild.test", 1 },
	{ { LIST_A }, 0, "", 0 },
	{ { LIST_A }, 0, "com", 0 },
	{ { LIST_A }, 0, "[192.0.2.1]", 0 },
#define LIST_B "example.com", "inline:{ parent.test=x }", "[192.0.2.1]"
	{ { LIST_B }, DOMAIN_LIST_PARENT_MATCHES_SUBDOMAINS, "example.com", 1 },
	{ { LIST_B }, DOMAIN_LIST_PARENT_MATCHES_SUBDOMAINS, "www.example.com", 1 },
	{ { LIST_B }, DOMAIN_LIST_PARENT_MATCHES_SUBDOMAINS, "a.b.example.com", 1 },
	{ { LIST_B }, DOMAIN_LIST_PARENT_MATCHES_SUBDOMAINS, "badexample.com", 0 },
	{ { LIST_B }, DOMAIN_LIST_PARENT_MATCHES_SUBDOMAINS, "parent.test", 1 },
	{ { LIST_B }, DOMAIN_LIST_PARENT_MATCHES_SUBDOMAINS, "x.parent.test", 1 },
	{ { LIST_B }, DOMAIN_LIST_PARENT_MATCHES_SUBDOMAINS, "xparent.test", 0 },
	{ { LIST_B }, DOMAIN_LIST_PARENT_MATCHES_SUBDOMAINS, "[192.0.2.1]", 1 },
	/* items split by the list parser inside braces */
	{ { "inline:{", "a.test=1,", "b.test=2", "}" }, 0, "b.test", 1 },
	{ { NULL }, 0, "example.com", 0 },
};

static void test_domains(void)
{
	for (size_t i = 0; i < N_ELEMENTS(domain_cases); i++) {
		const struct domain_case *c = &domain_cases[i];
		const char *error = NULL;
		struct domain_list *list =
			domain_list_create_flags("mydestination", c->items, c->flags, &error);
		if (!tap_ok(list != NULL, "domain case %zu: list opens", i)) {
			tap_diag("%s", error);
			continue;
		}
		tap_is_int(domain_list_match(list, c->domain, &error), c->want,
			   "domain case %zu: \"%s\" -> %d", i, c->domain, c->want);
		domain_list_free(&list);
		tap_ok(list == NULL, "domain_list_free clears the pointer");
	}
}

/* A /file/name item, and a negated one. */
static void test_domain_file(void)
{
	const char *error = NULL;
	FILE *fp = fopen(domains_file, "w");
	if (fp == NULL)
		msg_fatal("create %s failed", domains_file);
	fputs("# local domains\nfile.test, other.test # trailing comment\n\n.sub.file.test\n", fp);
	fclose(fp);
	const char *items[] = { "first.test", domains_file, NULL };
	struct domain_list *list = domain_list_create("mydestination", items, &error);
	if (!tap_ok(list != NULL, "list with a file opens")) {
		tap_diag("%s", error);
		return;
	}
	tap_is_int(domain_list_match(list, "first.test", &error), 1, "item before the file");
	tap_is_int(domain_list_match(list, "other.test", &error), 1, "item in the file");
	tap_is_int(domain_list_match(list, "a.sub.file.test", &error), 1, ".sub item in the file");
	tap_is_int(domain_list_match(list, "trailing", &error), 0, "comment is not an item");
	domain_list_free(&list);

	char neg[160];
	snprintf(neg, sizeof(neg), "!%s", domains_file);
	const char *items2[] = { neg, ".test", NULL };
	list = domain_list_create("relay_domains", items2, &error);
	tap_ok(list != NULL && domain_list_match(list, "other.test", &error) == 0 &&
		       domain_list_match(list, "else.test", &error) == 1,
	       "!/file negates its items");
	domain_list_free(&list);
}

static const struct bad_case {
	const char *item;
	const char *want;
} bad_domains[] = {
	{ ".", "\".\"" },
	{ "!", "\"!\"" },
	{ "..x", "\"..x\"" },
	{ "foo:bar", "\"foo\"" },
	{ "inline:{", "unbalanced" },
	{ "/nonexistent/domains", "No such file" },
};

static void test_bad_domains(void)
{
	for (size_t i = 0; i < N_ELEMENTS(bad_domains); i++) {
		const char *error = NULL;
		const char *items[] = { "ok.test", bad_domains[i].item, NULL };
		struct domain_list *list = domain_list_create("relay_domains", items, &error);
		tap_ok(list == NULL && error != NULL && strstr(error, bad_domains[i].want) != NULL &&
			       strstr(error, "relay_domains") != NULL,
		       "bad domain item \"%s\": %s", bad_domains[i].item, error ? error : "(none)");
		domain_list_free(&list);
	}
}

static const struct net_case {
	const char *items[ITEMS_MAX];
	const char *addr;
	bool want;
} net_cases[] = {
#define NETS "127.0.0.0/8", "10.1.2.3", "[::1]/128", "[2001:db8::]/32", \
	     "[::ffff:192.168.0.0]/112", "!172.16.5.0/24", "172.16.0.0/12", "2001:db9::/48", \
	     "inline:{ 203.0.113.7=yes, 2001:db8:aaaa::1=yes }", "[198.51.100.1]"
	{ { NETS }, "127.0.0.1", true },
	{ { NETS }, "127.255.255.255", true },
	{ { NETS }, "128.0.0.1", false },
	{ { NETS }, "10.1.2.3", true },
	{ { NETS }, "10.1.2.4", false },
	{ { NETS }, "::1", true },
	{ { NETS }, "[::1]", true },
	{ { NETS }, "::2", false },
	{ { NETS }, "2001:db8::1", true },
	{ { NETS }, "2001:DB8:ffff::1", true },
	{ { NETS }, "2001:db9::1", true },
	{ { NETS }, "2001:db9:1::1", false },
	{ { NETS }, "::ffff:127.0.0.1", true },
	{ { NETS }, "::127.0.0.1", false },
	{ { NETS }, "192.168.1.1", true },
	{ { NETS }, "::ffff:192.168.1.1", true },
	{ { NETS }, "192.169.1.1", false },
	{ { NETS }, "172.16.5.9", false },
	{ { NETS }, "172.16.6.1", true },
	{ { NETS }, "172.32.0.1", false },
	{ { NETS }, "203.0.113.7", true },
	{ { NETS }, "::ffff:203.0.113.7", true },
	{ { NETS }, "203.0.113.8", false },
	{ { NETS }, "2001:db8:aaaa:0::1", true },
	{ { NETS }, "198.51.100.1", true },
	{ { NETS }, "garbage", false },
	{ { NETS }, "", false },
	{ { "0.0.0.0/0" }, "1.2.3.4", true },
	{ { "0.0.0.0/0" }, "::ffff:1.2.3.4", true },
	{ { "0.0.0.0/0" }, "::1", false },
	{ { "[::]/0" }, "::1", true },
	{ { "[::]/0" }, "2001:db8::1", true },
	{ { "[::]/0" }, "1.2.3.4", false },
	{ { "1.2.3.4/32" }, "1.2.3.4", true },
	{ { "1.2.3.4/32" }, "1.2.3.5", false },
	{ { "1.2.3.4/31" }, "1.2.3.5", true },
	{ { "1.2.3.4/31" }, "1.2.3.6", false },
	{ { "1.2.3.4/30" }, "1.2.3.7", true },
	{ { "[2001:db8::1]/128" }, "2001:db8::1", true },
	{ { "[2001:db8::1]/128" }, "2001:db8::2", false },
	{ { "[2001:db8::]/127" }, "2001:db8::1", true },
	{ { "[::ffff:127.0.0.0]/104" }, "127.1.2.3", true },
	{ { "[::ffff:127.0.0.0]/104" }, "::ffff:127.1.2.3", true },
	{ { "[::ffff:127.0.0.0]/104" }, "128.1.2.3", false },
	{ { "!10.0.0.1", "10.0.0.0/8" }, "10.0.0.1", false },
	{ { "!10.0.0.1", "10.0.0.0/8" }, "10.0.0.2", true },
	{ { NULL }, "10.0.0.2", false },
};

static void test_nets(void)
{
	for (size_t i = 0; i < N_ELEMENTS(net_cases); i++) {
		const struct net_case *c = &net_cases[i];
		const char *error = NULL;
		struct net_list *list = net_list_create("mynetworks", c->items, &error);
		if (!tap_ok(list != NULL, "net case %zu: list opens", i)) {
			tap_diag("%s", error);
			continue;
		}
		tap_ok(net_list_match_str(list, c->addr) == c->want, "net case %zu: %s %s", i,
		       c->addr, c->want ? "listed" : "not listed");
		net_list_free(&list);
	}
}

/* The sockaddr form, as accept() returns it. */
static void test_sockaddr(void)
{
	const char *error = NULL;
	const char *items[] = { "127.0.0.0/8", "[2001:db8::]/32", NULL };
	struct net_list *list = net_list_create("mynetworks", items, &error);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	struct sockaddr other = { .sa_family = AF_UNIX };

	if (!tap_ok(list != NULL, "sockaddr list opens"))
		return;
	inet_pton(AF_INET, "127.0.0.2", &sin.sin_addr);
	tap_ok(net_list_match(list, (struct sockaddr *)&sin), "sockaddr_in 127.0.0.2");
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	tap_ok(!net_list_match(list, (struct sockaddr *)&sin), "sockaddr_in 192.0.2.1");
	inet_pton(AF_INET6, "::ffff:127.0.0.9", &sin6.sin6_addr);
	tap_ok(net_list_match(list, (struct sockaddr *)&sin6), "sockaddr_in6 mapped 127.0.0.9");
	inet_pton(AF_INET6, "2001:db8:1::5", &sin6.sin6_addr);
	tap_ok(net_list_match(list, (struct sockaddr *)&sin6), "sockaddr_in6 2001:db8:1::5");
	inet_pton(AF_INET6, "2001:db9::5", &sin6.sin6_addr);
	tap_ok(!net_list_match(list, (struct sockaddr *)&sin6), "sockaddr_in6 2001:db9::5");
	tap_ok(!net_list_match(list, &other), "AF_UNIX is never listed");
	tap_ok(!net_list_match(list, NULL), "NULL is never listed");
	net_list_free(&list);
}

static const struct bad_case bad_nets[] = {
	{ "10.0.0.0/33", "bad prefix" },
	{ "10.1.2.3/8", "host address bits" },
	{ "[::1]/129", "bad prefix" },
	{ "[2001:db8::1]/32", "host address bits" },
	{ "2001:db8::/129", "bad prefix" },
	{ "[::1", "missing ']'" },
	{ "300.1.1.1", "bad address" },
	{ "1.2.3", "bad address" },
	{ "10.0.0.0/", "bad prefix" },
	{ "10.0.0.0/abc", "bad prefix" },
	{ "10.0.0.0/8/8", "bad prefix" },
	{ "[::1]/64x", "bad prefix" },
	{ "[::1]x", "bad prefix" },
	{ "example.com", "bad address" },
	{ "!", "\"!\"" },
	{ "foo:bar", "\"foo\"" },
	{ "[fe80::1%eth0]", "bad address" },
};

static void test_bad_nets(void)
{
	for (size_t i = 0; i < N_ELEMENTS(bad_nets); i++) {
		const char *error = NULL;
		const char *items[] = { "127.0.0.0/8", bad_nets[i].item, NULL };
		struct net_list *list = net_list_create("mynetworks", items, &error);
		tap_ok(list == NULL && error != NULL && strstr(error, bad_nets[i].want) != NULL &&
			       strstr(error, "mynetworks") != NULL,
		       "bad network item \"%s\": %s", bad_nets[i].item, error ? error : "(none)");
		net_list_free(&list);
	}
}

int main(void)
{
	msg_init("test-match-list");
	if (mkdtemp(tmpdir) == NULL)
		msg_fatal("mkdtemp failed");
	if (!str_format(domains_file, sizeof(domains_file), "%s/domains", tmpdir))
		msg_fatal("path too long");
	test_domains();
	test_domain_file();
	test_bad_domains();
	test_nets();
	test_sockaddr();
	test_bad_nets();
	(void)unlink(domains_file);
	(void)rmdir(tmpdir);
	return tap_done();
}
