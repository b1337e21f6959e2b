/* match_list.c: domain lists and network lists; see match_list.h. */
#include <config.h> /* autoconf; "config.h" here would be mail/config.h */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/maps.h"
#include "mail/match_list.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

/* Limits for /file/name items. */
#define MATCH_FILE_MAX (1024 * 1024)
#define MATCH_ITEMS_MAX 100000

enum domain_item_kind {
	DOMAIN_ITEM_NAME,   /* example.com */
	DOMAIN_ITEM_SUFFIX, /* .example.com */
	DOMAIN_ITEM_MAP,
};

struct domain_item {
	enum domain_item_kind kind;
	bool negate;
	char *text; /* folded */
	struct maps *maps;
};

struct domain_list {
	char *title;
	unsigned int flags;
	struct domain_item *items;
	size_t count;
	struct str domain;
	struct str error;
};

struct net_item {
	bool negate;
	int family; /* AF_INET, AF_INET6, or AF_UNSPEC for a table */
	unsigned int prefix;
	uint8_t addr[16];
	struct maps *maps;
};

struct net_list {
	char *title;
	struct net_item *items;
	size_t count;
};

/* A client address, canonical: IPv4-mapped IPv6 becomes IPv4. */
struct net_addr {
	int family;
	uint8_t addr[16];
	char text[INET6_ADDRSTRLEN];
};

static struct str match_error_buf;

static const char *match_err(const char *fmt, ...) ATTR_FORMAT(1, 2);

/* match_err: format the module's error text for create calls. */
static const char *match_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *text = str_set_vprintf(&match_error_buf, fmt, ap);
	va_end(ap);
	return text;
}

/* ---- items, with /file/name expanded ---- */

struct match_items {
	char **items;
	size_t count, cap;
};

/* match_items_init: an empty, NULL-terminated list. */
static void match_items_init(struct match_items *m)
{
	m->cap = 16;
	m->count = 0;
	m->items = xcalloc(m->cap, sizeof(*m->items));
}

/* match_items_add: append a copy of item, keeping the NULL end. */
static void match_items_add(struct match_items *m, const char *item)
{
	if (m->count + 1 >= m->cap) {
		m->cap *= 2;
		m->items = xreallocarray(m->items, m->cap, sizeof(*m->items));
	}
	m->items[m->count++] = xstrdup(item);
	m->items[m->count] = NULL;
}

/* match_file_words: the words of a /file/name item, comments removed. */
static char **match_file_words(const char *path, const char **error_r)
{
	struct match_items words = { NULL, 0, 0 };
	struct str text = STR_INIT;
	char buf[4096];
	size_t n;
	FILE *fp = fopen(path, "re");

	if (fp == NULL) {
		*error_r = match_err("open(%s) failed: %s", path, strerror(errno));
		return NULL;
	}
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0 && text.len <= MATCH_FILE_MAX)
		str_append_n(&text, buf, n);
	bool failed = ferror(fp) != 0;
	fclose(fp);
	if (failed || text.len > MATCH_FILE_MAX) {
		*error_r = match_err("%s: %s", path, failed ? "read error" : "file too large");
		str_deinit(&text);
		return NULL;
	}
	match_items_init(&words);
	str_append(&text, ""); /* text.data is not NULL from here on */
	for (char *line = text.data, *next; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		char *hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		char *save = NULL;
		for (char *w = strtok_r(line, " \t\r\f\v,", &save); w != NULL;
		     w = strtok_r(NULL, " \t\r\f\v,", &save))
			match_items_add(&words, w);
	}
	str_deinit(&text);
	return words.items;
}

/* match_expand: regroup braces, expand /file/name items. NULL on error. */
static char **match_expand(const char *const *items, const char **error_r)
{
	struct match_items out = { NULL, 0, 0 };
	char **grouped = maps_items_regroup(items, error_r);

	if (grouped == NULL)
		return NULL;
	match_items_init(&out);
	for (char **p = grouped; *p != NULL; p++) {
		const char *item = **p == '!' ? *p + 1 : *p;
		if (*item != '/') {
			match_items_add(&out, *p);
			continue;
		}
		char **words = match_file_words(item, error_r), **file_items = NULL;
		if (words != NULL)
			file_items = maps_items_regroup((const char *const *)words, error_r);
		maps_items_free(&words);
		if (file_items == NULL) {
			maps_items_free(&grouped);
			maps_items_free(&out.items);
			return NULL;
		}
		for (char **w = file_items; *w != NULL; w++) {
			/* "!/file" negates each item of the file. */
			struct str neg = STR_INIT;
			str_printf(&neg, "%s%s", item != *p ? "!" : "", *w);
			if (strchr(*w, '/') == *w || out.count >= MATCH_ITEMS_MAX) {
				*error_r = match_err("%s: item \"%s\" not allowed here (nested file "
						     "or too many items)",
						     item, *w);
				str_deinit(&neg);
				maps_items_free(&file_items);
				maps_items_free(&grouped);
				maps_items_free(&out.items);
				return NULL;
			}
			match_items_add(&out, str_c(&neg));
			str_deinit(&neg);
		}
		maps_items_free(&file_items);
	}
	maps_items_free(&grouped);
	return out.items;
}

/* match_is_map: "type:name" rather than a name or an address. */
static bool match_is_map(const char *item)
{
	return item[0] != '[' && strchr(item, ':') != NULL;
}

/* match_open_map: one table item as its own maps. */
static struct maps *match_open_map(const char *title, const char *item, const char **error_r)
{
	const char *names[] = { item, NULL };
	return maps_create(title, names, error_r);
}

/* ---- domain lists ---- */

/* domain_item_parse: one item; -1 and *error_r when it is malformed. */
static int domain_item_parse(struct domain_list *list, struct domain_item *it, const char *item,
			     const char **error_r)
{
	const char *text = item;

	if (*text == '!') {
		it->negate = true;
		text++;
	}
	if (match_is_map(text)) {
		it->kind = DOMAIN_ITEM_MAP;
		it->maps = match_open_map(list->title, text, error_r);
		return it->maps == NULL ? -1 : 0;
	}
	if (*text == '\0' || strcmp(text, ".") == 0 || text[strcspn(text, " \t\r\n,!")] != '\0' ||
	    (text[0] == '.' && text[1] == '.')) {
		*error_r = match_err("%s: bad domain item \"%s\"", list->title, item);
		return -1;
	}
	it->kind = text[0] == '.' ? DOMAIN_ITEM_SUFFIX : DOMAIN_ITEM_NAME;
	it->text = xstrdup(text);
	maps_fold(it->text);
	return 0;
}

struct domain_list *domain_list_create_flags(const char *title, const char *const *items,
					     unsigned int flags, const char **error_r)
{
	char **expanded = match_expand(items, error_r);
	struct domain_list *list;
	size_t n = 0;

	if (expanded == NULL) {
		*error_r = match_err("%s: %s", title, *error_r);
		return NULL;
	}
	while (expanded[n] != NULL)
		n++;
	list = xcalloc(1, sizeof(*list));
	list->title = xstrdup(title != NULL ? title : "domain list");
	list->flags = flags;
	list->items = xcalloc(n + 1, sizeof(*list->items));
	str_init(&list->domain);
	str_init(&list->error);
	for (size_t i = 0; i < n; i++) {
		list->count++;
		if (domain_item_parse(list, &list->items[i], expanded[i], error_r) < 0) {
			maps_items_free(&expanded);
			domain_list_free(&list);
			return NULL;
		}
	}
	maps_items_free(&expanded);
	return list;
}

struct domain_list *domain_list_create(const char *title, const char *const *items,
				       const char **error_r)
{
	return domain_list_create_flags(title, items, 0, error_r);
}

void domain_list_free(struct domain_list **listp)
{
	struct domain_list *list = *listp;

	if (list == NULL)
		return;
	*listp = NULL;
	for (size_t i = 0; i < list->count; i++) {
		free(list->items[i].text);
		maps_free(&list->items[i].maps);
	}
	free(list->items);
	free(list->title);
	str_deinit(&list->domain);
	str_deinit(&list->error);
	free(list);
}

/* domain_ends_with: name is a proper subdomain of parent (".parent" when
 * parent has no leading dot). */
static bool domain_is_below(const char *name, const char *parent)
{
	size_t n = strlen(name), p = strlen(parent);

	if (parent[0] == '.')
		return n > p && strcmp(name + n - p, parent) == 0;
	return n > p + 1 && name[n - p - 1] == '.' && strcmp(name + n - p, parent) == 0;
}

/* domain_item_map: the domain, then its parents, in the item's table. */
static int domain_item_map(struct domain_list *list, struct domain_item *it, const char *domain,
			   const char **error_r)
{
	bool parent_style = (list->flags & DOMAIN_LIST_PARENT_MATCHES_SUBDOMAINS) != 0;
	const char *value, *error;
	int ret = maps_lookup(it->maps, domain, &value, &error);

	for (const char *dot = strchr(domain, '.'); ret == 0 && dot != NULL;
	     dot = strchr(dot + 1, '.')) {
		const char *key = parent_style ? dot + 1 : dot;
		if (key[0] != '\0' && strcmp(key, ".") != 0)
			ret = maps_lookup(it->maps, key, &value, &error);
	}
	if (ret < 0) {
		str_clear(&list->error);
		str_append(&list->error, error);
		*error_r = str_c(&list->error);
	}
	return ret;
}

int domain_list_match(struct domain_list *list, const char *domain, const char **error_r)
{
	bool parent_style = (list->flags & DOMAIN_LIST_PARENT_MATCHES_SUBDOMAINS) != 0;

	if (domain == NULL || *domain == '\0')
		return 0;
	str_set(&list->domain, domain);
	maps_fold(list->domain.data);
	domain = str_c(&list->domain);
	for (size_t i = 0; i < list->count; i++) {
		struct domain_item *it = &list->items[i];
		int ret = 0;
		switch (it->kind) {
		case DOMAIN_ITEM_NAME:
			ret = strcmp(domain, it->text) == 0 ||
			      (parent_style && domain_is_below(domain, it->text));
			break;
		case DOMAIN_ITEM_SUFFIX:
			ret = domain_is_below(domain, it->text);
			break;
		case DOMAIN_ITEM_MAP:
			ret = domain_item_map(list, it, domain, error_r);
			break;
		}
		if (ret < 0)
			return -1;
		if (ret > 0)
			return it->negate ? 0 : 1;
	}
	return 0;
}

/* ---- network lists ---- */

/* net_parse_prefix: "" (the full length) or "/N" with 0 <= N <= max. */
static bool net_parse_prefix(const char *text, unsigned int max, unsigned int *prefix)
{
	unsigned int n = 0;

	if (*text == '\0') {
		*prefix = max;
		return true;
	}
	if (*text++ != '/' || *text == '\0' || strlen(text) > 3)
		return false;
	for (; *text != '\0'; text++) {
		if (*text < '0' || *text > '9')
			return false;
		n = n * 10 + (unsigned int)(*text - '0');
	}
	*prefix = n;
	return n <= max;
}

/* net_parse_addr: IPv4 or IPv6 text into family and bytes. */
static bool net_parse_addr(const char *text, int *family, uint8_t addr[16])
{
	if (inet_pton(AF_INET, text, addr) == 1) {
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, text, addr) == 1) {
		*family = AF_INET6;
		return true;
	}
	return false;
}

/* net_prefix_eq: the first prefix bits of a and b agree. */
static bool net_prefix_eq(const uint8_t *a, const uint8_t *b, unsigned int prefix)
{
	unsigned int full = prefix / 8, rem = prefix % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rem == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rem));
	return (a[full] & mask) == (b[full] & mask);
}

/* net_item_canon: an IPv4-mapped IPv6 network of prefix >= 96 is IPv4. */
static void net_item_canon(struct net_item *it)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (it->family == AF_INET6 && it->prefix >= 96 && memcmp(it->addr, mapped, 12) == 0) {
		memmove(it->addr, it->addr + 12, 4);
		memset(it->addr + 4, 0, 12);
		it->family = AF_INET;
		it->prefix -= 96;
	}
}

/* net_item_parse_addr: [addr]/len, addr/len, addr. */
static int net_item_parse_addr(struct net_item *it, const char *text, const char **why)
{
	char addr[INET6_ADDRSTRLEN + 2];
	const char *rest;
	size_t len;

	if (*text == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL) {
			*why = "missing ']'";
			return -1;
		}
		len = (size_t)(close - text - 1);
		text++;
		rest = close + 1;
	} else {
		len = strcspn(text, "/");
		rest = text + len;
	}
	if (len == 0 || len >= sizeof(addr)) {
		*why = "bad address";
		return -1;
	}
	memcpy(addr, text, len);
	addr[len] = '\0';
	if (!net_parse_addr(addr, &it->family, it->addr)) {
		*why = "bad address";
		return -1;
	}
	if (!net_parse_prefix(rest, it->family == AF_INET ? 32 : 128, &it->prefix)) {
		*why = "bad prefix length";
		return -1;
	}
	uint8_t masked[16];
	memcpy(masked, it->addr, sizeof(masked));
	for (unsigned int bit = it->prefix; bit < (it->family == AF_INET ? 32u : 128u); bit++)
		masked[bit / 8] &= (uint8_t) ~(0x80 >> (bit % 8));
	if (memcmp(masked, it->addr, sizeof(masked)) != 0) {
		*why = "non-null host address bits";
		return -1;
	}
	net_item_canon(it);
	return 0;
}

/* net_item_parse: one item; -1 and *error_r when malformed. */
static int net_item_parse(struct net_list *list, struct net_item *it, const char *item,
			  const char **error_r)
{
	const char *text = item, *why = NULL;

	if (*text == '!') {
		it->negate = true;
		text++;
	}
	if (match_is_map(text)) {
		/* A bare IPv6 address has ':' too; a table name is no address. */
		char addr[INET6_ADDRSTRLEN];
		uint8_t bytes[16];
		size_t len = strcspn(text, "/");
		if (len >= sizeof(addr) || !str_format(addr, sizeof(addr), "%.*s", (int)len, text) ||
		    inet_pton(AF_INET6, addr, bytes) != 1) {
			it->family = AF_UNSPEC;
			it->maps = match_open_map(list->title, text, error_r);
			return it->maps == NULL ? -1 : 0;
		}
	}
	if (net_item_parse_addr(it, text, &why) < 0) {
		*error_r = match_err("%s: bad network item \"%s\": %s", list->title, item, why);
		return -1;
	}
	return 0;
}

struct net_list *net_list_create(const char *title, const char *const *items,
				 const char **error_r)
{
	char **expanded = match_expand(items, error_r);
	struct net_list *list;
	size_t n = 0;

	if (expanded == NULL) {
		*error_r = match_err("%s: %s", title, *error_r);
		return NULL;
	}
	while (expanded[n] != NULL)
		n++;
	list = xcalloc(1, sizeof(*list));
	list->title = xstrdup(title != NULL ? title : "network list");
	list->items = xcalloc(n + 1, sizeof(*list->items));
	for (size_t i = 0; i < n; i++) {
		list->count++;
		if (net_item_parse(list, &list->items[i], expanded[i], error_r) < 0) {
			maps_items_free(&expanded);
			net_list_free(&list);
			return NULL;
		}
	}
	maps_items_free(&expanded);
	return list;
}

void net_list_free(struct net_list **listp)
{
	struct net_list *list = *listp;

	if (list == NULL)
		return;
	*listp = NULL;
	for (size_t i = 0; i < list->count; i++)
		maps_free(&list->items[i].maps);
	free(list->items);
	free(list->title);
	free(list);
}

/* net_addr_canon: IPv4-mapped IPv6 becomes IPv4; fill in the text form. */
static void net_addr_canon(struct net_addr *a)
{
	if (a->family == AF_INET6 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a->addr)) {
		memmove(a->addr, a->addr + 12, 4);
		a->family = AF_INET;
	}
	if (inet_ntop(a->family, a->addr, a->text, sizeof(a->text)) == NULL)
		a->text[0] = '\0';
}

/* net_list_match_addr: first matching item decides. */
static bool net_list_match_addr(struct net_list *list, struct net_addr *a)
{
	net_addr_canon(a);
	for (size_t i = 0; i < list->count; i++) {
		const struct net_item *it = &list->items[i];
		bool hit;
		if (it->family == AF_UNSPEC) {
			const char *value, *error;
			int ret = maps_lookup(it->maps, a->text, &value, &error);
			if (ret < 0) {
				msg_warn("%s: %s", list->title, error);
				return false;
			}
			hit = ret > 0;
		} else {
			hit = it->family == a->family && net_prefix_eq(it->addr, a->addr, it->prefix);
		}
		if (hit)
			return !it->negate;
	}
	return false;
}

bool net_list_match(struct net_list *list, const struct sockaddr *sa)
{
	struct net_addr a = { 0 };

	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
		a.family = AF_INET;
		memcpy(a.addr, &sin->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		a.family = AF_INET6;
		memcpy(a.addr, &sin6->sin6_addr, 16);
	} else {
		return false;
	}
	return net_list_match_addr(list, &a);
}

bool net_list_match_str(struct net_list *list, const char *addr)
{
	struct net_addr a = { 0 };
	char text[INET6_ADDRSTRLEN];
	size_t len = strlen(addr);

	if (len >= 2 && addr[0] == '[' && addr[len - 1] == ']') {
		addr++;
		len -= 2;
	}
	if (len >= sizeof(text))
		return false;
	memcpy(text, addr, len);
	text[len] = '\0';
	if (!net_parse_addr(text, &a.family, a.addr))
		return false;
	return net_list_match_addr(list, &a);
}
