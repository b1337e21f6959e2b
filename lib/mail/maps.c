/* maps.c: lookup tables by "type:name", lists of them, Postfix's address
 * lookup order, and the table source text parser; see maps.h. */
#include <config.h> /* autoconf; "config.h" here would be mail/config.h */

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "mail/dict_lmdb.h"
#include "mail/maps.h"
#include "util/alloc.h"
#include "util/logical_line.h"
#include "util/msg.h"
#include "util/str.h"

/* Largest passwd/group entry getpwnam_r()/getgrnam_r() may need. */
#define MAPS_PW_BUF_MAX (1024 * 1024)
/* Nesting and item limits for { } in names. */
#define MAPS_BRACE_DEPTH_MAX 16

enum map_type {
	MAP_LMDB,
	MAP_STATIC,
	MAP_INLINE,
	MAP_TEXTHASH,
	MAP_UNIX_PASSWD,
	MAP_UNIX_GROUP,
};

/* One key/value of an in-memory table (inline:, texthash:). */
struct map_pair {
	char *key;
	char *value;
	size_t seq; /* input order: the first of duplicates wins */
	unsigned int lineno;
};

/* One table of a list. */
struct map {
	enum map_type type;
	char *name; /* as configured, for messages */
	struct dict_lmdb *lmdb;
	char *value; /* static: */
	struct map_pair *pairs; /* inline:, texthash:; sorted by key */
	size_t npairs;
};

struct maps {
	char *title;
	unsigned int flags;
	struct map *maps;
	size_t count;
	struct str key, value, error;
};

static struct str maps_error_buf;

static const char *maps_err(const char *fmt, ...) ATTR_FORMAT(1, 2);

/* maps_err: format the module's error text for calls without a maps. */
static const char *maps_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *text = str_set_vprintf(&maps_error_buf, fmt, ap);
	va_end(ap);
	return text;
}

void maps_fold(char *text)
{
	for (; *text != '\0'; text++) {
		if (*text >= 'A' && *text <= 'Z')
			*text = (char)(*text + ('a' - 'A'));
	}
}

/* maps_trim: skip leading white space, cut trailing; returns the start. */
static char *maps_trim(char *text)
{
	while (str_isspace(*text))
		text++;
	size_t len = strlen(text);
	while (len > 0 && str_isspace(text[len - 1]))
		text[--len] = '\0';
	return text;
}

/* maps_text_split: split a logical line at the first white space outside
 * quotes. Returns false (after a warning) when the line is malformed. */
static bool maps_text_split(struct logical_line_reader *r, char *line, char **key_r,
			    char **value_r)
{
	bool in_quotes = false;
	char *p;

	for (p = line; *p != '\0'; p++) {
		if (*p == '\\') {
			if (*++p == '\0')
				break;
		} else if (str_isspace(*p)) {
			if (!in_quotes)
				break;
		} else if (*p == '"') {
			in_quotes = !in_quotes;
		}
	}
	if (in_quotes) {
		msg_warn("%s, line %u: unbalanced '\"' in '%.100s' -- ignoring this line", r->path,
			 r->first_line, line);
		return false;
	}
	if (*p != '\0')
		*p++ = '\0';
	*value_r = maps_trim(p);
	*key_r = line;
	if (**key_r == '\0' || **value_r == '\0') {
		msg_warn("%s, line %u: expected format: key whitespace value", r->path,
			 r->first_line);
		return false;
	}
	if ((*key_r)[strlen(*key_r) - 1] == ':')
		msg_warn("%s, line %u: record is in \"key: value\" format; is this an alias file?",
			 r->path, r->first_line);
	return true;
}

int maps_text_read(FILE *fp, const char *path, bool fold, maps_text_fn *fn, void *ctx,
		   const char **error_r)
{
	struct logical_line_reader r;
	char *key, *value;
	int ret;

	logical_line_init(&r, fp, path, MAPS_TEXT_LINE_MAX, false);
	while ((ret = logical_line_next(&r, error_r)) > 0) {
		if (!maps_text_split(&r, r.logical.data, &key, &value))
			continue;
		if (fold)
			maps_fold(key);
		if ((ret = fn(key, value, r.first_line, ctx)) != 0)
			break;
	}
	logical_line_deinit(&r);
	return ret;
}

/* ---- names and braces ---- */

/* maps_brace_balance: change in '{' depth over text; *bad_r on a '}' with
 * none open. */
static int maps_brace_balance(const char *text, int depth, bool *bad_r)
{
	for (; *text != '\0'; text++) {
		if (*text == '{')
			depth++;
		else if (*text == '}' && --depth < 0)
			*bad_r = true;
	}
	return depth;
}

char **maps_items_regroup(const char *const *items, const char **error_r)
{
	size_t n = 0, count = 0;
	struct str item = STR_INIT;
	int depth = 0;
	bool bad = false;

	while (items != NULL && items[n] != NULL)
		n++;
	char **out = xcalloc(n + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		if (item.len > 0)
			str_append_c(&item, ' ');
		str_append(&item, items[i]);
		depth = maps_brace_balance(items[i], depth, &bad);
		if (bad || depth > MAPS_BRACE_DEPTH_MAX)
			break;
		if (depth == 0)
			out[count++] = str_steal(&item);
	}
	if (bad || depth != 0) {
		*error_r = maps_err("unbalanced braces in \"%.100s\"", str_c(&item));
		str_deinit(&item);
		maps_items_free(&out);
		return NULL;
	}
	str_deinit(&item);
	return out;
}

void maps_items_free(char ***items)
{
	if (*items == NULL)
		return;
	for (char **p = *items; *p != NULL; p++)
		free(*p);
	free(*items);
	*items = NULL;
}

/* maps_strip_proxy: Petrel has no proxymap; "proxy:type:name" is "type:name". */
static const char *maps_strip_proxy(const char *name)
{
	while (strncmp(name, "proxy:", 6) == 0)
		name += 6;
	return name;
}

const char *maps_name_lmdb(const char *name)
{
	static const char *const types[] = { "lmdb:", "hash:", "btree:" };

	name = maps_strip_proxy(name);
	for (size_t i = 0; i < N_ELEMENTS(types); i++) {
		if (strncmp(name, types[i], strlen(types[i])) == 0)
			return name + strlen(types[i]);
	}
	return NULL;
}

/* maps_unbrace: "{ text }" -> "text" (trimmed), in place; NULL when the
 * braces do not enclose the whole text. */
static char *maps_unbrace(char *text)
{
	size_t len = strlen(text);
	bool bad = false;

	if (len < 2 || text[0] != '{' || text[len - 1] != '}')
		return NULL;
	text[len - 1] = '\0';
	if (maps_brace_balance(text + 1, 0, &bad) != 0 || bad)
		return NULL;
	return maps_trim(text + 1);
}

/* ---- in-memory tables: inline:, texthash: ---- */

struct map_pairs {
	struct map_pair *pairs;
	size_t count, cap;
};

/* map_pairs_add: remember one entry, in input order. */
static void map_pairs_add(struct map_pairs *p, const char *key, const char *value,
			  unsigned int lineno)
{
	if (p->count == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->pairs = xreallocarray(p->pairs, p->cap, sizeof(*p->pairs));
	}
	p->pairs[p->count] = (struct map_pair){ xstrdup(key), xstrdup(value), p->count, lineno };
	p->count++;
}

/* map_pair_cmp: by key, then by input order. */
static int map_pair_cmp(const void *a, const void *b)
{
	const struct map_pair *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c != 0 ? c : (x->seq < y->seq ? -1 : x->seq > y->seq);
}

/* map_pairs_finish: sort for bsearch; of duplicate keys keep the first,
 * warning about the others (as postmap does). */
static void map_pairs_finish(struct map *map, struct map_pairs *p, const char *where)
{
	size_t out = 0;

	if (p->count > 0)
		qsort(p->pairs, p->count, sizeof(*p->pairs), map_pair_cmp);
	for (size_t i = 0; i < p->count; i++) {
		if (out > 0 && strcmp(p->pairs[out - 1].key, p->pairs[i].key) == 0) {
			if (p->pairs[i].lineno > 0)
				msg_warn("%s, line %u: duplicate entry: \"%s\"", where,
					 p->pairs[i].lineno, p->pairs[i].key);
			else
				msg_warn("%s: duplicate entry: \"%s\"", where, p->pairs[i].key);
			free(p->pairs[i].key);
			free(p->pairs[i].value);
			continue;
		}
		p->pairs[out++] = p->pairs[i];
	}
	map->pairs = p->pairs;
	map->npairs = out;
}

/* map_pairs_find: bsearch a finished table. */
static const struct map_pair *map_pairs_find(const struct map *map, const char *key)
{
	size_t lo = 0, hi = map->npairs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, map->pairs[mid].key);
		if (c == 0)
			return &map->pairs[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* map_inline_token: the next comma/space separated token of an inline
 * table, where "{ ... }" is one token; NULL at the end. */
static char *map_inline_token(char **cursor)
{
	char *p = *cursor, *start;
	int depth = 0;

	while (*p == ',' || str_isspace(*p))
		p++;
	if (*p == '\0')
		return NULL;
	start = p;
	for (; *p != '\0'; p++) {
		if (*p == '{')
			depth++;
		else if (*p == '}')
			depth--;
		else if (depth == 0 && (*p == ',' || str_isspace(*p)))
			break;
	}
	if (*p != '\0')
		*p++ = '\0';
	*cursor = p;
	return start;
}

/* map_open_inline: inline:{ key=value, { key = value } }. */
static int map_open_inline(struct map *map, const char *arg, bool fold, const char **error_r)
{
	struct map_pairs p = { NULL, 0, 0 };
	char *copy = xstrdup(arg), *body, *cursor, *token;
	const char *why = NULL;

	if ((body = maps_unbrace(copy)) == NULL) {
		why = "need \"inline:{name=value...}\"";
	} else {
		cursor = body;
		while (why == NULL && (token = map_inline_token(&cursor)) != NULL) {
			char *eq, *name, *value;
			if (*token == '{' && (token = maps_unbrace(token)) == NULL) {
				why = "unbalanced braces";
				break;
			}
			if ((eq = strchr(token, '=')) == NULL) {
				why = "missing '=' after name";
				break;
			}
			*eq = '\0';
			name = maps_trim(token);
			value = maps_trim(eq + 1);
			if (*name == '\0') {
				why = "missing name before '='";
				break;
			}
			if (fold)
				maps_fold(name);
			map_pairs_add(&p, name, value, 0);
		}
		if (why == NULL && p.count == 0)
			why = "empty table";
	}
	free(copy);
	map_pairs_finish(map, &p, map->name);
	if (why != NULL) {
		*error_r = maps_err("%s: bad syntax: %s", map->name, why);
		return -1;
	}
	return 0;
}

/* map_texthash_add: maps_text_read() callback for texthash:. */
static int map_texthash_add(const char *key, const char *value, unsigned int lineno, void *ctx)
{
	map_pairs_add(ctx, key, value, lineno);
	return 0;
}

/* map_open_texthash: read the whole text file now. */
static int map_open_texthash(struct map *map, const char *path, bool fold, const char **error_r)
{
	struct map_pairs p = { NULL, 0, 0 };
	FILE *fp;
	int ret;

	if (*path == '\0' || (fp = fopen(path, "re")) == NULL) {
		*error_r = maps_err("open(%s) failed: %s", path, *path ? strerror(errno) : "no path");
		return -1;
	}
	ret = maps_text_read(fp, path, fold, map_texthash_add, &p, error_r);
	fclose(fp);
	map_pairs_finish(map, &p, path);
	return ret == 0 ? 0 : -1;
}

/* ---- opening one table ---- */

/* map_open_static: static:value or static:{ value }. */
static int map_open_static(struct map *map, const char *arg, const char **error_r)
{
	char *copy = xstrdup(arg), *value = copy;

	if (*copy == '{' && (value = maps_unbrace(copy)) == NULL) {
		free(copy);
		*error_r = maps_err("%s: bad syntax: unbalanced braces", map->name);
		return -1;
	}
	map->value = xstrdup(value);
	free(copy);
	return 0;
}

/* map_open_lmdb: lmdb:/path, hash:/path, btree:/path -> /path.lmdb. */
static int map_open_lmdb(struct map *map, const char *path, const char **error_r)
{
	struct str db = STR_INIT;

	if (*path == '\0') {
		*error_r = maps_err("%s: missing file name", map->name);
		return -1;
	}
	str_printf(&db, "%s%s", path, DICT_LMDB_SUFFIX);
	map->lmdb = dict_lmdb_open(str_c(&db), error_r);
	str_deinit(&db);
	return map->lmdb == NULL ? -1 : 0;
}

/* map_open: open one "type:name" table. */
static int map_open(struct map *map, const char *name, bool fold, const char **error_r)
{
	const char *arg, *colon;

	name = maps_strip_proxy(name);
	map->name = xstrdup(name);
	if ((colon = strchr(name, ':')) == NULL || colon == name) {
		*error_r = maps_err("bad table name \"%s\": need type:name", name);
		return -1;
	}
	size_t tlen = (size_t)(colon - name);
	arg = colon + 1;
#define MAP_TYPE_IS(t) (tlen == strlen(t) && strncmp(name, t, tlen) == 0)
	if (MAP_TYPE_IS("lmdb") || MAP_TYPE_IS("hash") || MAP_TYPE_IS("btree")) {
		map->type = MAP_LMDB;
		return map_open_lmdb(map, arg, error_r);
	} else if (MAP_TYPE_IS("static")) {
		map->type = MAP_STATIC;
		return map_open_static(map, arg, error_r);
	} else if (MAP_TYPE_IS("inline")) {
		map->type = MAP_INLINE;
		return map_open_inline(map, arg, fold, error_r);
	} else if (MAP_TYPE_IS("texthash")) {
		map->type = MAP_TEXTHASH;
		return map_open_texthash(map, arg, fold, error_r);
	} else if (MAP_TYPE_IS("unix")) {
		if (strcmp(arg, "passwd.byname") == 0) {
			map->type = MAP_UNIX_PASSWD;
			return 0;
		}
		if (strcmp(arg, "group.byname") == 0) {
			map->type = MAP_UNIX_GROUP;
			return 0;
		}
		*error_r = maps_err("%s: unknown unix table \"%s\"", name, arg);
		return -1;
	}
#undef MAP_TYPE_IS
	*error_r = maps_err("unsupported table type \"%.*s\" in \"%s\"", (int)tlen, name, name);
	return -1;
}

/* map_close: release one table. */
static void map_close(struct map *map)
{
	if (map->lmdb != NULL)
		dict_lmdb_close(&map->lmdb);
	for (size_t i = 0; i < map->npairs; i++) {
		free(map->pairs[i].key);
		free(map->pairs[i].value);
	}
	free(map->pairs);
	free(map->value);
	free(map->name);
}

/* ---- lookups in one table ---- */

/* map_unix_passwd: getpwnam() as "name:passwd:uid:gid:gecos:dir:shell". */
static int map_unix_passwd(const char *key, struct str *value, const char **error_r)
{
	struct passwd pw, *result = NULL;
	size_t size = 1024;
	int rc;

	for (;;) {
		char *buf = xmalloc(size);
		rc = getpwnam_r(key, &pw, buf, size, &result);
		if (rc == 0 && result != NULL) {
			str_clear(value);
			str_printf(value, "%s:%s:%lu:%lu:%s:%s:%s", pw.pw_name, pw.pw_passwd,
				   (unsigned long)pw.pw_uid, (unsigned long)pw.pw_gid,
				   pw.pw_gecos ? pw.pw_gecos : "", pw.pw_dir, pw.pw_shell);
		}
		free(buf);
		if (rc != ERANGE || size >= MAPS_PW_BUF_MAX)
			break;
		size *= 2;
	}
	if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
		return result != NULL && rc == 0 ? 1 : 0;
	*error_r = maps_err("getpwnam_r(%s) failed: %s", key, strerror(rc));
	return -1;
}

/* map_unix_group: getgrnam() as "name:passwd:gid:member,member". */
static int map_unix_group(const char *key, struct str *value, const char **error_r)
{
	struct group gr, *result = NULL;
	size_t size = 1024;
	int rc;

	for (;;) {
		char *buf = xmalloc(size);
		rc = getgrnam_r(key, &gr, buf, size, &result);
		if (rc == 0 && result != NULL) {
			str_clear(value);
			str_printf(value, "%s:%s:%lu:", gr.gr_name, gr.gr_passwd,
				   (unsigned long)gr.gr_gid);
			for (char **m = gr.gr_mem; m != NULL && *m != NULL; m++)
				str_printf(value, "%s%s", m == gr.gr_mem ? "" : ",", *m);
		}
		free(buf);
		if (rc != ERANGE || size >= MAPS_PW_BUF_MAX)
			break;
		size *= 2;
	}
	if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
		return result != NULL && rc == 0 ? 1 : 0;
	*error_r = maps_err("getgrnam_r(%s) failed: %s", key, strerror(rc));
	return -1;
}

/* map_lookup: one table; 1 found (value set), 0, -1. */
static int map_lookup(struct map *map, const char *key, struct str *value, const char **error_r)
{
	const struct map_pair *pair;

	switch (map->type) {
	case MAP_LMDB:
		return dict_lmdb_lookup(map->lmdb, key, value, error_r);
	case MAP_STATIC:
		str_set(value, map->value);
		return 1;
	case MAP_INLINE:
	case MAP_TEXTHASH:
		if ((pair = map_pairs_find(map, key)) == NULL)
			return 0;
		str_set(value, pair->value);
		return 1;
	case MAP_UNIX_PASSWD:
		return *key == '\0' ? 0 : map_unix_passwd(key, value, error_r);
	case MAP_UNIX_GROUP:
		return *key == '\0' ? 0 : map_unix_group(key, value, error_r);
	}
	msg_panic("map_lookup: bad type %d", (int)map->type);
}

/* ---- lists of tables ---- */

struct maps *maps_create_flags(const char *title, const char *const *names, unsigned int flags,
			       const char **error_r)
{
	struct maps *maps;
	char **items;
	size_t n = 0;

	if ((items = maps_items_regroup(names, error_r)) == NULL) {
		*error_r = maps_err("%s: %s", title, *error_r);
		return NULL;
	}
	while (items[n] != NULL)
		n++;
	maps = xcalloc(1, sizeof(*maps));
	maps->title = xstrdup(title != NULL ? title : "maps");
	maps->flags = flags;
	maps->maps = xcalloc(n + 1, sizeof(*maps->maps));
	str_init(&maps->key);
	str_init(&maps->value);
	str_init(&maps->error);
	for (size_t i = 0; i < n; i++) {
		maps->count++;
		if (map_open(&maps->maps[i], items[i], (flags & MAPS_FLAG_NO_FOLD) == 0, error_r) <
		    0) {
			*error_r = maps_err("%s: %s", maps->title, *error_r);
			maps_items_free(&items);
			maps_free(&maps);
			return NULL;
		}
	}
	maps_items_free(&items);
	return maps;
}

struct maps *maps_create(const char *title, const char *const *names, const char **error_r)
{
	return maps_create_flags(title, names, 0, error_r);
}

void maps_free(struct maps **mapsp)
{
	struct maps *maps = *mapsp;

	if (maps == NULL)
		return;
	*mapsp = NULL;
	for (size_t i = 0; i < maps->count; i++)
		map_close(&maps->maps[i]);
	free(maps->maps);
	free(maps->title);
	str_deinit(&maps->key);
	str_deinit(&maps->value);
	str_deinit(&maps->error);
	free(maps);
}

const char *maps_title(const struct maps *maps)
{
	return maps->title;
}

bool maps_is_empty(const struct maps *maps)
{
	return maps->count == 0;
}

/* maps_find: search every table for key as given (already folded). */
static int maps_find(struct maps *maps, const char *key, const char **value_r,
		     const char **error_r)
{
	for (size_t i = 0; i < maps->count; i++) {
		const char *error;
		int ret = map_lookup(&maps->maps[i], key, &maps->value, &error);
		if (ret > 0) {
			*value_r = str_c(&maps->value);
			return 1;
		}
		if (ret < 0) {
			str_clear(&maps->error);
			str_printf(&maps->error, "%s: %s lookup error: %s", maps->title,
				   maps->maps[i].name, error);
			*error_r = str_c(&maps->error);
			return -1;
		}
	}
	return 0;
}

int maps_lookup(struct maps *maps, const char *key, const char **value_r, const char **error_r)
{
	str_set(&maps->key, key); /* str_set always allocates: data is not NULL */
	if ((maps->flags & MAPS_FLAG_NO_FOLD) == 0)
		maps_fold(maps->key.data);
	return maps_find(maps, str_c(&maps->key), value_r, error_r);
}

/* maps_addr_ext: the offset of the address extension in local, or its
 * length when it has none (Postfix's split_addr() rules). */
static size_t maps_addr_ext(const char *local, const char *delimiters)
{
	size_t len = strlen(local), n;

	if (delimiters == NULL || *delimiters == '\0')
		return len;
	if (str_eq_icase(local, "postmaster") || str_eq_icase(local, "mailer-daemon"))
		return len;
	if (strchr(delimiters, '-') != NULL &&
	    (str_prefix_icase(local, "owner-") ||
	     (len > 8 && str_eq_icase(local + len - 8, "-request"))))
		return len;
	n = strcspn(local, delimiters);
	return n == 0 ? len : n;
}

int maps_lookup_addr(struct maps *maps, const char *local, const char *domain,
		     const char *delimiters, unsigned int flags, const char **value_r,
		     const char **error_r)
{
	struct str keys[5];
	size_t nkeys = 0, base = maps_addr_ext(local, delimiters);
	bool has_ext = local[base] != '\0';
	bool has_domain = domain != NULL && *domain != '\0';
	int ret = 0;

	for (size_t i = 0; i < N_ELEMENTS(keys); i++)
		str_init(&keys[i]);
	if (has_domain && *local != '\0') {
		str_printf(&keys[nkeys++], "%s@%s", local, domain);
		if (has_ext)
			str_printf(&keys[nkeys++], "%.*s@%s", (int)base, local, domain);
	}
	if ((!has_domain || (flags & MAPS_ADDR_LOCAL) != 0) && *local != '\0') {
		str_set(&keys[nkeys++], local);
		if (has_ext)
			str_append_n(&keys[nkeys++], local, base);
	}
	if (has_domain)
		str_printf(&keys[nkeys++], "@%s", domain);
	for (size_t i = 0; i < nkeys && ret == 0; i++)
		ret = maps_lookup(maps, str_c(&keys[i]), value_r, error_r);
	for (size_t i = 0; i < N_ELEMENTS(keys); i++)
		str_deinit(&keys[i]);
	return ret;
}

/* maps_walk_pairs: every entry of an in-memory table, in key order. */
static int maps_walk_pairs(const struct map *map, maps_walk_fn *fn, void *ctx)
{
	int ret = 0;

	for (size_t i = 0; i < map->npairs && ret == 0; i++)
		ret = fn(map->pairs[i].key, map->pairs[i].value, ctx);
	return ret;
}

int maps_walk(struct maps *maps, maps_walk_fn *fn, void *ctx, const char **error_r)
{
	for (size_t i = 0; i < maps->count; i++) {
		struct map *map = &maps->maps[i];
		const char *error = NULL;
		int ret;

		switch (map->type) {
		case MAP_LMDB:
			ret = dict_lmdb_walk(map->lmdb, fn, ctx, &error);
			break;
		case MAP_INLINE:
		case MAP_TEXTHASH:
			ret = maps_walk_pairs(map, fn, ctx);
			break;
		default:
			ret = -1;
			error = "sequence operation is not supported";
			break;
		}
		if (ret < 0) {
			str_clear(&maps->error);
			str_printf(&maps->error, "%s: %s: %s", maps->title, map->name,
				   error != NULL ? error : "walk failed");
			*error_r = str_c(&maps->error);
			return -1;
		}
		if (ret > 0)
			return ret;
	}
	return 0;
}
