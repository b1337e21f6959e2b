/* resolve.c: recipient resolution for qmgr (virtual aliases, local
 * aliases, address classes, transport_maps); the rules are in resolve.h. */
#include <config.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mail/config.h"
#include "mail/maps.h"
#include "mail/match_list.h"
#include "mail/resolve.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

/* The map parameters, in the order of resolver.maps[]. */
enum resolve_map {
	RESOLVE_MAP_VIRTUAL_ALIAS,
	RESOLVE_MAP_ALIAS,
	RESOLVE_MAP_LOCAL_RCPT,
	RESOLVE_MAP_VIRTUAL_MAILBOX,
	RESOLVE_MAP_TRANSPORT,
	RESOLVE_MAP_COUNT,
};

static const char *const resolve_map_params[RESOLVE_MAP_COUNT] = {
	"virtual_alias_maps", "alias_maps", "local_recipient_maps", "virtual_mailbox_maps",
	"transport_maps",
};

struct resolver {
	struct maps *virtual_alias, *alias, *local_rcpt, *virtual_mailbox, *transport;
	char *unavailable[RESOLVE_MAP_COUNT]; /* why a parameter's tables did not open */
	struct domain_list *mydestination, *virtual_alias_domains, *virtual_mailbox_domains;
	char *delimiter, *myhostname, *myorigin;
	char *local_transport, *virtual_transport, *default_transport, *relayhost;
	long long recursion_limit, expansion_limit;
};

/* One resolver_resolve() call. */
struct resolve_state {
	struct resolve_result *results;
	size_t count, cap;
	char *chain[RESOLVE_DEPTH_MAX + 2]; /* the addresses being expanded */
	size_t depth;
	bool overflow;
};

/* resolve_maps_slot: where the maps of parameter index i live. */
static struct maps **resolve_maps_slot(struct resolver *res, size_t i)
{
	struct maps **slots[RESOLVE_MAP_COUNT] = { &res->virtual_alias, &res->alias,
						   &res->local_rcpt, &res->virtual_mailbox,
						   &res->transport };
	return slots[i];
}

/* resolve_maps_culprit: log which table of param fails to open, as
 * Postfix does ("warning: hash:/etc/aliases is unavailable. ..."). */
static void resolve_maps_culprit(const char *param, const char *error)
{
	const char *err = NULL;
	char **items = maps_items_regroup(config_list(param), &err);
	bool found = false;
	for (size_t i = 0; items != NULL && items[i] != NULL && !found; i++) {
		const char *one[2] = { items[i], NULL };
		struct maps *m = maps_create(param, one, &err);
		if (m == NULL) {
			msg_warn("%s is unavailable. %s", items[i], err);
			found = true;
		}
		maps_free(&m);
	}
	if (!found)
		msg_warn("%s is unavailable. %s", param, error);
	maps_items_free(&items);
}

/* resolve_maps_open: the maps of parameter index i (NULL when the list is
 * empty). A table that cannot be opened makes the parameter unavailable
 * (logged once): the recipients that need it are deferred until
 * resolver_reopen() succeeds. */
static void resolve_maps_open(struct resolver *res, size_t i, bool quiet)
{
	const char *param = resolve_map_params[i];
	const char *const *names = config_list(param);
	const char *error = NULL;
	struct maps **slot = resolve_maps_slot(res, i);
	maps_free(slot);
	if (names[0] == NULL)
		return;
	*slot = maps_create(param, names, &error);
	if (*slot != NULL) {
		free(res->unavailable[i]);
		res->unavailable[i] = NULL;
		return;
	}
	char *why = xstrdup(error); /* error dies with the next maps call */
	if (!quiet)
		resolve_maps_culprit(param, why);
	free(res->unavailable[i]);
	res->unavailable[i] = why;
}

size_t resolver_unavailable(const struct resolver *res)
{
	size_t n = 0;
	for (size_t i = 0; i < RESOLVE_MAP_COUNT; i++)
		n += res->unavailable[i] != NULL ? 1 : 0;
	return n;
}

size_t resolver_reopen(struct resolver *res)
{
	for (size_t i = 0; i < RESOLVE_MAP_COUNT; i++) {
		if (res->unavailable[i] == NULL)
			continue;
		resolve_maps_open(res, i, true);
		if (res->unavailable[i] == NULL)
			msg_info("%s: lookup tables are available now", resolve_map_params[i]);
	}
	return resolver_unavailable(res);
}

static void ATTR_FORMAT(4, 5) resolve_fail(struct resolve_state *st, const char *address,
					   const char *dsn, const char *fmt, ...);

/* resolve_unavailable: true (and the address deferred) when the tables
 * of parameter index i could not be opened. */
static bool resolve_unavailable(const struct resolver *res, struct resolve_state *st,
				const char *address, size_t i)
{
	const char *why = res->unavailable[i];
	size_t plen = strlen(resolve_map_params[i]);
	if (why == NULL)
		return false;
	if (strncmp(why, resolve_map_params[i], plen) == 0 && strncmp(why + plen, ": ", 2) == 0)
		why += plen + 2; /* maps_create() names the parameter too */
	resolve_fail(st, address, "4.3.0", "%s lookup table unavailable: %s",
		     resolve_map_params[i], why);
	return true;
}

/* resolve_domains_open: a domain list parameter, NULL when empty. */
static int resolve_domains_open(const char *param, struct domain_list **list_r,
				const char **error_r)
{
	const char *const *items = config_list(param);
	*list_r = NULL;
	if (items[0] == NULL)
		return 0;
	*list_r = domain_list_create(param, items, error_r);
	return *list_r == NULL ? -1 : 0;
}

struct resolver *resolver_create(const char **error_r)
{
	struct resolver *res = xcalloc(1, sizeof(*res));
	static const char *const domain_params[] = { "mydestination", "virtual_alias_domains",
						     "virtual_mailbox_domains" };
	struct domain_list **domains[] = { &res->mydestination, &res->virtual_alias_domains,
					   &res->virtual_mailbox_domains };

	for (size_t i = 0; i < RESOLVE_MAP_COUNT; i++)
		resolve_maps_open(res, i, false);
	for (size_t i = 0; i < sizeof(domains) / sizeof(domains[0]); i++) {
		if (resolve_domains_open(domain_params[i], domains[i], error_r) < 0) {
			resolver_free(&res);
			return NULL;
		}
	}
	res->delimiter = xstrdup(config_str("recipient_delimiter"));
	res->myhostname = xstrdup(config_str("myhostname"));
	res->myorigin = xstrdup(config_str("myorigin"));
	res->local_transport = xstrdup(config_str("local_transport"));
	res->virtual_transport = xstrdup(config_str("virtual_transport"));
	res->default_transport = xstrdup(config_str("default_transport"));
	res->relayhost = xstrdup(config_str("relayhost"));
	res->recursion_limit = config_int("virtual_alias_recursion_limit");
	res->expansion_limit = config_int("virtual_alias_expansion_limit");
	if (res->recursion_limit > RESOLVE_DEPTH_MAX)
		res->recursion_limit = RESOLVE_DEPTH_MAX;
	if (res->expansion_limit > RESOLVE_EXPANSION_MAX)
		res->expansion_limit = RESOLVE_EXPANSION_MAX;
	return res;
}

void resolver_free(struct resolver **resp)
{
	struct resolver *res = *resp;
	if (res == NULL)
		return;
	maps_free(&res->virtual_alias);
	maps_free(&res->alias);
	maps_free(&res->local_rcpt);
	maps_free(&res->virtual_mailbox);
	maps_free(&res->transport);
	for (size_t i = 0; i < RESOLVE_MAP_COUNT; i++)
		free(res->unavailable[i]);
	domain_list_free(&res->mydestination);
	domain_list_free(&res->virtual_alias_domains);
	domain_list_free(&res->virtual_mailbox_domains);
	free(res->delimiter);
	free(res->myhostname);
	free(res->myorigin);
	free(res->local_transport);
	free(res->virtual_transport);
	free(res->default_transport);
	free(res->relayhost);
	free(res);
	*resp = NULL;
}

/* resolve_add: append a result (a duplicate of one already there is
 * dropped). */
static void resolve_add(struct resolve_state *st, enum resolve_action action, const char *address,
			const char *transport, const char *nexthop, const char *dsn,
			const char *reason)
{
	for (size_t i = 0; i < st->count; i++) {
		struct resolve_result *r = &st->results[i];
		if (r->action == action && str_eq_icase(r->address, address) &&
		    (action != RESOLVE_DELIVER ||
		     (strcmp(r->transport, transport) == 0 && strcmp(r->nexthop, nexthop) == 0)))
			return;
	}
	if (st->count == st->cap) {
		st->cap = st->cap == 0 ? 4 : st->cap * 2;
		st->results = xreallocarray(st->results, st->cap, sizeof(*st->results));
	}
	struct resolve_result *r = &st->results[st->count++];
	memset(r, 0, sizeof(*r));
	r->action = action;
	r->address = xstrdup(address);
	if (action == RESOLVE_DELIVER) {
		r->transport = xstrdup(transport);
		r->nexthop = xstrdup(nexthop);
	} else {
		if (!str_copy(r->dsn, sizeof(r->dsn), dsn))
			msg_panic("resolve_add: bad dsn");
		r->reason = xstrdup(reason);
	}
}

/* resolve_fail: a bounce or deferral with a formatted reason. */
static void ATTR_FORMAT(4, 5) resolve_fail(struct resolve_state *st, const char *address,
					   const char *dsn, const char *fmt, ...)
{
	struct str reason = STR_INIT;
	va_list ap;
	va_start(ap, fmt);
	str_vprintf(&reason, fmt, ap);
	va_end(ap);
	resolve_add(st, dsn[0] == '5' ? RESOLVE_BOUNCE : RESOLVE_DEFER, address, NULL, NULL, dsn,
		    str_c(&reason));
	str_deinit(&reason);
}

/* resolve_split: local part and domain of address (domain "" when none). */
static void resolve_split(const char *address, struct str *local, struct str *domain)
{
	const char *at = strrchr(address, '@');
	str_clear(local);
	str_clear(domain);
	if (at == NULL) {
		str_set(local, address);
		return;
	}
	str_append_n(local, address, (size_t)(at - address));
	str_set(domain, at + 1);
	maps_fold(domain->data);
}

/* resolve_words: split an alias value into addresses: commas (and, when
 * spaces, white space) outside double quotes separate them; surrounding
 * white space goes; "<addr>" loses its brackets. */
static char **resolve_words(const char *value, bool spaces, size_t *count_r)
{
	char **words = NULL;
	size_t count = 0;
	const char *p = value;
	while (*p != '\0') {
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		const char *start = p;
		bool quoted = false;
		for (; *p != '\0'; p++) {
			if (*p == '"')
				quoted = !quoted;
			else if (*p == '\\' && p[1] != '\0')
				p++;
			else if (!quoted && (*p == ',' || (spaces && (*p == ' ' || *p == '\t'))))
				break;
		}
		size_t len = (size_t)(p - start);
		while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
			len--;
		if (len >= 2 && start[0] == '<' && start[len - 1] == '>') {
			start++;
			len -= 2;
		}
		if (len >= 2 && start[0] == '"' && start[len - 1] == '"' &&
		    (start[1] == '|' || start[1] == '/' || start[1] == ':')) {
			start++; /* "|command with spaces" */
			len -= 2;
		}
		words = xreallocarray(words, count + 2, sizeof(*words));
		words[count++] = xstrndup(start, len);
		words[count] = NULL;
	}
	*count_r = count;
	return words;
}

static void resolve_words_free(char **words, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(words[i]);
	free(words);
}

static void resolve_address(struct resolver *res, struct resolve_state *st, const char *address,
			    size_t depth, bool no_alias);

/* resolve_transport_parse: "transport:nexthop" into its parts; either may
 * be empty. */
static void resolve_transport_parse(const char *value, struct str *transport, struct str *nexthop)
{
	const char *colon = strchr(value, ':');
	str_clear(transport);
	str_clear(nexthop);
	if (colon == NULL) {
		str_set(transport, value);
		return;
	}
	str_append_n(transport, value, (size_t)(colon - value));
	str_set(nexthop, colon + 1);
}

/* resolve_transport_lookup: transport_maps for address/domain. 1 found
 * (*value_r), 0 not, -1 error. */
static int resolve_transport_lookup(struct resolver *res, const char *address, const char *domain,
				    const char **value_r, const char **error_r)
{
	struct str key = STR_INIT;
	int r;
	str_set(&key, address);
	maps_fold(key.data);
	r = maps_lookup(res->transport, str_c(&key), value_r, error_r);
	if (r == 0 && *domain != '\0')
		r = maps_lookup(res->transport, domain, value_r, error_r);
	for (const char *d = strchr(domain, '.'); r == 0 && d != NULL; d = strchr(d + 1, '.'))
		r = maps_lookup(res->transport, d, value_r, error_r);
	if (r == 0)
		r = maps_lookup(res->transport, "*", value_r, error_r);
	str_deinit(&key);
	return r;
}

/* resolve_deliver: the class transport (default "transport:nexthop"),
 * overridden by transport_maps; adds the result. */
static void resolve_deliver(struct resolver *res, struct resolve_state *st, const char *address,
			    const char *domain, const char *class_transport, const char *relay)
{
	struct str transport = STR_INIT, nexthop = STR_INIT, t2 = STR_INIT, n2 = STR_INIT;
	const char *value = NULL, *error = NULL;

	resolve_transport_parse(class_transport, &transport, &nexthop);
	if (nexthop.len == 0)
		str_set(&nexthop, relay != NULL && *relay != '\0' ? relay : domain);
	if (resolve_unavailable(res, st, address, RESOLVE_MAP_TRANSPORT))
		goto out;
	int r = res->transport == NULL ? 0
				       : resolve_transport_lookup(res, address, domain, &value, &error);
	if (r < 0) {
		resolve_fail(st, address, "4.3.0", "transport_maps lookup failure: %s", error);
		goto out;
	}
	if (r > 0) {
		resolve_transport_parse(value, &t2, &n2);
		if (strcmp(str_c(&t2), "error") == 0) {
			const char *text = str_c(&n2);
			bool has_dsn = text[0] == '5' && text[1] == '.';
			char dsn[16] = "5.0.0";
			if (has_dsn) {
				size_t n = strcspn(text, " ");
				if (n < sizeof(dsn))
					(void)str_format(dsn, sizeof(dsn), "%.*s", (int)n, text);
				text += n;
				while (*text == ' ')
					text++;
			}
			resolve_fail(st, address, dsn, "%s", *text != '\0' ? text : "User unknown");
			goto out;
		}
		if (t2.len > 0)
			str_set(&transport, str_c(&t2));
		if (n2.len > 0)
			str_set(&nexthop, str_c(&n2));
	}
	if (transport.len == 0 || strchr(str_c(&transport), '/') != NULL ||
	    strcmp(str_c(&transport), "..") == 0 || strcmp(str_c(&transport), ".") == 0)
		resolve_fail(st, address, "4.3.0", "bad transport \"%s\"", str_c(&transport));
	else
		resolve_add(st, RESOLVE_DELIVER, address, str_c(&transport), str_c(&nexthop), NULL,
			    NULL);
out:
	str_deinit(&transport);
	str_deinit(&nexthop);
	str_deinit(&t2);
	str_deinit(&n2);
}

/* resolve_known: 1 when maps list the user, 0 not, -1 error (deferred). */
static int resolve_known(struct resolver *res, struct resolve_state *st, struct maps *maps,
			 const char *address, const char *local, const char *domain,
			 unsigned flags)
{
	const char *value = NULL, *error = NULL;
	if (maps == NULL)
		return 0;
	int r = maps_lookup_addr(maps, local, domain, res->delimiter, flags, &value, &error);
	if (r < 0)
		resolve_fail(st, address, "4.3.0", "%s lookup failure: %s", maps_title(maps),
			     error);
	return r;
}

/* resolve_alias_target: one alias_maps target of address. */
static void resolve_alias_target(struct resolver *res, struct resolve_state *st,
				 const char *address, const char *local, const char *domain,
				 const char *target, size_t depth)
{
	if (target[0] == '|' || target[0] == '/' || str_prefix_icase(target, ":include:")) {
		const char *what = target[0] == '|' ? "command" : "file";
		resolve_fail(st, address, "5.3.5",
			     "alias %s: delivery to %s \"%s\" is refused (Petrel delivers to "
			     "mailboxes only)",
			     local, what, target);
		return;
	}
	if (str_eq_icase(target, local) || str_eq_icase(target, address)) {
		resolve_address(res, st, address, depth + 1, true);
		return;
	}
	if (strchr(target, '@') != NULL) {
		resolve_address(res, st, target, depth + 1, false);
		return;
	}
	struct str full = STR_INIT;
	str_printf(&full, "%s@%s", target, *domain != '\0' ? domain : res->myhostname);
	resolve_address(res, st, str_c(&full), depth + 1, false);
	str_deinit(&full);
}

/* resolve_local: an address in mydestination. */
static void resolve_local(struct resolver *res, struct resolve_state *st, const char *address,
			  const char *local, const char *domain, size_t depth, bool no_alias)
{
	const char *value = NULL, *error = NULL;
	int r = 0;
	if (!no_alias && resolve_unavailable(res, st, address, RESOLVE_MAP_ALIAS))
		return;
	if (!no_alias && res->alias != NULL) {
		struct str key = STR_INIT;
		str_set(&key, local);
		maps_fold(key.data);
		r = maps_lookup_addr(res->alias, str_c(&key), NULL, res->delimiter,
				     MAPS_ADDR_LOCAL, &value, &error);
		str_deinit(&key);
	}
	if (r < 0) {
		resolve_fail(st, address, "4.3.0", "alias_maps lookup failure: %s", error);
		return;
	}
	if (r > 0) {
		size_t count;
		char **words = resolve_words(value, false, &count);
		st->chain[st->depth++] = (char *)address;
		for (size_t i = 0; i < count && !st->overflow; i++)
			resolve_alias_target(res, st, address, local, domain, words[i], depth);
		st->depth--;
		resolve_words_free(words, count);
		if (count == 0)
			resolve_fail(st, address, "5.1.1", "alias %s has no targets", local);
		return;
	}
	if (resolve_unavailable(res, st, address, RESOLVE_MAP_LOCAL_RCPT))
		return;
	if (res->local_rcpt != NULL) {
		r = resolve_known(res, st, res->local_rcpt, address, local, domain, MAPS_ADDR_LOCAL);
		if (r < 0)
			return;
		if (r == 0) {
			resolve_fail(st, address, "5.1.1",
				     "<%s>: User unknown in local recipient table", address);
			return;
		}
	}
	resolve_deliver(res, st, address, domain, res->local_transport, NULL);
}

/* resolve_final: an address virtual aliasing left alone. */
static void resolve_final(struct resolver *res, struct resolve_state *st, const char *address,
			  const char *local, const char *domain, size_t depth, bool no_alias)
{
	const char *error = NULL;
	struct {
		struct domain_list *list;
		int cls;
	} order[] = {
		{ res->mydestination, 0 },
		{ res->virtual_alias_domains, 1 },
		{ res->virtual_mailbox_domains, 2 },
	};
	int cls = 3;
	if (*domain == '\0')
		cls = 0;
	for (size_t i = 0; cls == 3 && i < sizeof(order) / sizeof(order[0]); i++) {
		if (order[i].list == NULL)
			continue;
		int r = domain_list_match(order[i].list, domain, &error);
		if (r < 0) {
			resolve_fail(st, address, "4.3.0", "domain lookup failure: %s", error);
			return;
		}
		if (r > 0)
			cls = order[i].cls;
	}
	switch (cls) {
	case 0:
		resolve_local(res, st, address, local, domain, depth, no_alias);
		return;
	case 1:
		resolve_fail(st, address, "5.1.1", "<%s>: User unknown in virtual alias table",
			     address);
		return;
	case 2: {
		if (resolve_unavailable(res, st, address, RESOLVE_MAP_VIRTUAL_MAILBOX))
			return;
		int r = resolve_known(res, st, res->virtual_mailbox, address, local, domain, 0);
		if (r == 0)
			resolve_fail(st, address, "5.1.1",
				     "<%s>: User unknown in virtual mailbox table", address);
		else if (r > 0)
			resolve_deliver(res, st, address, domain, res->virtual_transport, NULL);
		return;
	}
	default:
		resolve_deliver(res, st, address, domain, res->default_transport, res->relayhost);
	}
}

/* resolve_in_chain: true when address is being expanded already. */
static bool resolve_in_chain(const struct resolve_state *st, const char *address)
{
	for (size_t i = 0; i < st->depth; i++) {
		if (str_eq_icase(st->chain[i], address))
			return true;
	}
	return false;
}

/* resolve_address: virtual aliases, then the address class. */
static void resolve_address(struct resolver *res, struct resolve_state *st, const char *address,
			    size_t depth, bool no_alias)
{
	struct str local = STR_INIT, domain = STR_INIT;
	const char *value = NULL, *error = NULL;

	if (st->overflow)
		return;
	if (st->count >= (size_t)res->expansion_limit) {
		st->overflow = true;
		return;
	}
	if (depth > (size_t)res->recursion_limit || st->depth > RESOLVE_DEPTH_MAX) {
		resolve_fail(st, address, "4.3.0", "unreasonable alias nesting for <%s>", address);
		return;
	}
	if (!no_alias && resolve_in_chain(st, address)) {
		resolve_fail(st, address, "5.4.6", "mail forwarding loop for <%s>", address);
		return;
	}
	resolve_split(address, &local, &domain);
	int r = 0;
	if (!no_alias && resolve_unavailable(res, st, address, RESOLVE_MAP_VIRTUAL_ALIAS))
		goto out;
	if (!no_alias && res->virtual_alias != NULL)
		r = maps_lookup_addr(res->virtual_alias, str_c(&local), str_c(&domain),
				     res->delimiter, 0, &value, &error);
	if (r < 0) {
		resolve_fail(st, address, "4.3.0", "virtual_alias_maps lookup failure: %s", error);
	} else if (r > 0) {
		size_t count;
		char **words = resolve_words(value, true, &count);
		st->chain[st->depth++] = (char *)address;
		for (size_t i = 0; i < count && !st->overflow; i++) {
			bool self = str_eq_icase(words[i], address);
			resolve_address(res, st, words[i], depth + 1, self);
		}
		st->depth--;
		if (count == 0)
			resolve_fail(st, address, "5.1.1", "<%s>: virtual alias has no targets",
				     address);
		resolve_words_free(words, count);
	} else {
		resolve_final(res, st, address, str_c(&local), str_c(&domain), depth, no_alias);
	}
out:
	str_deinit(&local);
	str_deinit(&domain);
}

size_t resolver_resolve(struct resolver *res, const char *address,
			struct resolve_result **results_r)
{
	struct resolve_state st;
	memset(&st, 0, sizeof(st));
	if (*address == '\0') {
		resolve_fail(&st, address, "5.1.3", "empty recipient address");
	} else if (strchr(address, '@') == NULL && *res->myorigin != '\0') {
		/* Unqualified (a local submission): user@$myorigin, as Postfix. */
		struct str full = STR_INIT;
		str_printf(&full, "%s@%s", address, res->myorigin);
		resolve_address(res, &st, str_c(&full), 0, false);
		str_deinit(&full);
	} else {
		resolve_address(res, &st, address, 0, false);
	}
	if (st.overflow) {
		resolve_results_free(&st.results, st.count);
		st.count = 0;
		st.cap = 0;
		resolve_fail(&st, address, "4.3.0",
			     "virtual alias expansion of <%s> exceeds %lld addresses", address,
			     res->expansion_limit);
	}
	if (st.count == 0)
		resolve_fail(&st, address, "5.1.1", "<%s>: no destination", address);
	*results_r = st.results;
	return st.count;
}

void resolve_results_free(struct resolve_result **resultsp, size_t count)
{
	struct resolve_result *results = *resultsp;
	if (results == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free(results[i].address);
		free(results[i].transport);
		free(results[i].nexthop);
		free(results[i].reason);
	}
	free(results);
	*resultsp = NULL;
}
