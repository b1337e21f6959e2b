/* config.c: main.cf, in Postfix syntax, as one process-wide table; see
 * config.h.
 *
 * File grammar (as Postfix's readlline(3) and split_nameval(3)):
 *
 *	file     = *(logical / comment / blank)
 *	logical  = first-line *(continuation / comment / blank)
 *	first    = name *WSP "=" *WSP value   ; starts with a non-space byte
 *	continuation = WSP text               ; appended as is, newline dropped
 *	comment  = *WSP "#" text               ; anywhere, even inside a value
 *
 * The value is trimmed of white space at both ends. Later definitions win.
 * Values are stored raw and expanded on use ($name, ${name}, $(name),
 * ${name?text}, ${name:text}, ${name?{text}:{text}}, $$); the expansion
 * depth and the work per expansion are bounded so that a loop (a = $b,
 * b = $a) is an error, never a crash or a hang.
 *
 * Bounds: a physical or logical line is at most CONFIG_LINE_MAX bytes, the
 * file at most CONFIG_FILE_MAX bytes, at most CONFIG_PARAMS_MAX names are set
 * by main.cf and overrides together; beyond any of these, loading fails. */
#include <config.h> /* autoconf; "config.h" here would be mail/config.h */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/config_private.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

#ifndef PETREL_SYSCONFDIR
#define PETREL_SYSCONFDIR "/etc/petrel"
#endif
#ifndef PETREL_QUEUE_DIR
#define PETREL_QUEUE_DIR "/var/spool/petrel"
#endif
#ifndef PETREL_DAEMON_DIR
#define PETREL_DAEMON_DIR "/usr/libexec/petrel"
#endif
#ifndef PETREL_SBINDIR
#define PETREL_SBINDIR "/usr/sbin"
#endif
#ifndef PETREL_DATA_DIR
#define PETREL_DATA_DIR "/var/lib/petrel"
#endif

/* Work per top-level expansion: $name lookups before giving up. */
#define CONFIG_EXPAND_STEPS_MAX 100000
/* How much of a value an error message quotes. */
#define CONFIG_QUOTE_MAX 100

#define PARAM(name, type, def, min, max, unit, summary) \
	{ #name, PARAM_##type, def, min, max, unit, summary },
const struct param_def config_params[] = {
#include "mail/params.def"
	{ NULL, PARAM_STR, NULL, 0, 0, 0, NULL },
};

struct config_param_values {
	const char *name;
	const char *values; /* "a|b|c" */
};

#define PARAM(...)
#define PARAM_VALUES(name, values) { #name, values },
static const struct config_param_values config_values[] = {
#include "mail/params.def"
};

/* config_map: open-addressing hash from a C string to a pointer. */
struct config_map {
	const char **keys;
	void **values;
	size_t size; /* 0 or a power of two */
	size_t count;
};

struct config_entry {
	char *name;
	const struct param_def *def; /* NULL: not in params.def */
	const char *values;          /* PARAM_VALUES words, or NULL */
	char *file_value;            /* raw, from main.cf; NULL if not set */
	int file_line;
	char *override;        /* raw, from config_override(); NULL if none */
	char *dynamic_default; /* computed default, or NULL */
	bool set_listed;       /* already in set_order */
	char *expanded;        /* cache of the expanded value */
	char **list;           /* cache of config_list() */
};

/* config_expansion: a config_expand() result kept until the next load. */
struct config_expansion {
	char *text;
	char *result;
};

struct config_table {
	char *dir;
	char *path; /* dir/main.cf */
	struct config_map names;      /* name -> struct config_entry */
	struct config_entry **set_order; /* entries set by file or override */
	size_t set_count, set_cap;
	struct config_map expansions; /* text -> struct config_expansion */
	void **retired;               /* stale caches, freed with the table */
	size_t retired_count, retired_cap;
	int expand_steps;
};

static struct config_table *config_current;
static char config_error_buf[1024];

/* config_err: format an error message into static storage. */
const char *config_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(config_error_buf, sizeof(config_error_buf), fmt, ap);
	va_end(ap);
	return config_error_buf;
}

/* config_isname: a byte allowed in $name references. */
static bool config_isname(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* config_quote: a value cut to CONFIG_QUOTE_MAX bytes for messages. */
static const char *config_quote(const char *value, char *buf, size_t size)
{
	if (strlen(value) <= CONFIG_QUOTE_MAX)
		return value;
	snprintf(buf, size, "%.*s...", CONFIG_QUOTE_MAX, value);
	return buf;
}

/* ---- string map ---- */

/* config_hash: FNV-1a. */
static size_t config_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

/* config_map_slot: the slot holding key, or the empty slot where it goes. */
static size_t config_map_slot(const struct config_map *m, const char *key)
{
	size_t mask = m->size - 1;
	size_t i = config_hash(key) & mask;
	while (m->keys[i] != NULL && strcmp(m->keys[i], key) != 0)
		i = (i + 1) & mask;
	return i;
}

/* config_map_get: the value stored under key, or NULL. */
static void *config_map_get(const struct config_map *m, const char *key)
{
	if (m->size == 0)
		return NULL;
	size_t i = config_map_slot(m, key);
	return m->keys[i] != NULL ? m->values[i] : NULL;
}

/* config_map_put: insert a new key (which must outlive the map's use). */
static void config_map_put(struct config_map *m, const char *key, void *value)
{
	if ((m->count + 1) * 2 > m->size) {
		struct config_map grown = { NULL, NULL, m->size ? m->size * 2 : 64, 0 };
		grown.keys = xcalloc(grown.size, sizeof(*grown.keys));
		grown.values = xcalloc(grown.size, sizeof(*grown.values));
		for (size_t i = 0; i < m->size; i++) {
			if (m->keys[i] != NULL)
				config_map_put(&grown, m->keys[i], m->values[i]);
		}
		free(m->keys);
		free(m->values);
		*m = grown;
	}
	size_t i = config_map_slot(m, key);
	if (m->keys[i] == NULL)
		m->count++;
	m->keys[i] = key;
	m->values[i] = value;
}

static void config_map_deinit(struct config_map *m)
{
	free(m->keys);
	free(m->values);
	memset(m, 0, sizeof(*m));
}

/* ---- typed value parsers ---- */

bool config_parse_number(const char *text, long long *value_r)
{
	const char *p = text;
	bool negative = *p == '-';
	unsigned long long v = 0;

	if (negative)
		p++;
	if (*p == '\0')
		return false;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		unsigned digit = (unsigned)(*p - '0');
		if (v > ((unsigned long long)LLONG_MAX - digit) / 10)
			return false;
		v = v * 10 + digit;
	}
	*value_r = negative ? -(long long)v : (long long)v;
	return true;
}

/* config_time_multiplier: seconds per unit letter, 0 if not a unit. */
static long long config_time_multiplier(char unit)
{
	switch (unit) {
	case 's': case 'S': return 1;
	case 'm': case 'M': return 60;
	case 'h': case 'H': return 3600;
	case 'd': case 'D': return 86400;
	case 'w': case 'W': return 7 * 86400;
	default: return 0;
	}
}

bool config_parse_time(const char *text, char unit, long long *secs_r, const char **error_r)
{
	size_t len = strlen(text);
	size_t digits = strspn(text, "0123456789");
	long long n;
	char unit_letter = unit != 0 ? unit : 's';

	if (digits == 0 || digits + 1 < len) {
		*error_r = "not a time value: a number with an optional unit s, m, h, d or w";
		return false;
	}
	if (digits + 1 == len)
		unit_letter = text[digits];
	long long mul = config_time_multiplier(unit_letter);
	if (mul == 0) {
		*error_r = "bad time unit: use s, m, h, d or w";
		return false;
	}
	char number[32];
	if (digits >= sizeof(number) || !str_format(number, sizeof(number), "%.*s", (int)digits, text) ||
	    !config_parse_number(number, &n) || n > LLONG_MAX / mul) {
		*error_r = "time value out of range";
		return false;
	}
	*secs_r = n * mul;
	return true;
}

bool config_parse_bool(const char *text, bool *value_r)
{
	static const char *const yes[] = { "yes", "true", "1" };
	static const char *const no[] = { "no", "false", "0" };
	for (size_t i = 0; i < N_ELEMENTS(yes); i++) {
		if (str_eq_icase(text, yes[i])) {
			*value_r = true;
			return true;
		}
		if (str_eq_icase(text, no[i])) {
			*value_r = false;
			return true;
		}
	}
	return false;
}

/* config_list_next: find the next word of text at *pos; false at the end.
 * Braces group: separators inside {...} do not split. */
static bool config_list_next(const char *text, size_t *pos, size_t *start_r, size_t *len_r,
			     const char **error_r)
{
	size_t i = *pos;
	int level = 0;

	while (text[i] != '\0' && (str_isspace((unsigned char)text[i]) || text[i] == ','))
		i++;
	if (text[i] == '\0') {
		*pos = i;
		return false;
	}
	*start_r = i;
	for (; text[i] != '\0'; i++) {
		if (text[i] == '{') {
			level++;
		} else if (text[i] == '}') {
			if (level == 0) {
				*error_r = "unexpected '}'";
				return false;
			}
			level--;
		} else if (level == 0 && (str_isspace((unsigned char)text[i]) || text[i] == ',')) {
			break;
		}
	}
	if (level > 0) {
		*error_r = "missing '}'";
		return false;
	}
	*len_r = i - *start_r;
	*pos = i;
	return true;
}

bool config_split_list(const char *text, char ***words_r, const char **error_r)
{
	size_t pos = 0, start, len, count = 0;
	const char *error = NULL;

	while (config_list_next(text, &pos, &start, &len, &error))
		count++;
	if (error != NULL) {
		*error_r = error;
		return false;
	}
	/* One block: the pointer array, then the words. */
	size_t text_len = strlen(text);
	char **words = xmalloc((count + 1) * sizeof(*words) + text_len + count + 1);
	char *store = (char *)(words + count + 1);
	size_t n = 0;
	pos = 0;
	while (n < count && config_list_next(text, &pos, &start, &len, &error)) {
		memcpy(store, text + start, len);
		store[len] = '\0';
		words[n++] = store;
		store += len + 1;
	}
	words[n] = NULL;
	*words_r = words;
	return true;
}

void config_list_free(char ***words)
{
	free(*words);
	*words = NULL;
}

/* ---- entries ---- */

/* config_entry_get: the entry for name, or NULL. */
static struct config_entry *config_entry_get(const struct config_table *t, const char *name)
{
	return config_map_get(&t->names, name);
}

/* config_entry_add: a new, unset entry for name. */
static struct config_entry *config_entry_add(struct config_table *t, const char *name,
					     const struct param_def *def)
{
	struct config_entry *e = xcalloc(1, sizeof(*e));
	e->name = xstrdup(name);
	e->def = def;
	config_map_put(&t->names, e->name, e);
	return e;
}

/* config_entry_mark_set: record e in set_order the first time it is set;
 * false when that would exceed CONFIG_PARAMS_MAX. */
static bool config_entry_mark_set(struct config_table *t, struct config_entry *e)
{
	if (e->set_listed)
		return true;
	if (t->set_count >= CONFIG_PARAMS_MAX)
		return false;
	if (t->set_count == t->set_cap) {
		t->set_cap = t->set_cap ? t->set_cap * 2 : 16;
		t->set_order = xreallocarray(t->set_order, t->set_cap, sizeof(*t->set_order));
	}
	t->set_order[t->set_count++] = e;
	e->set_listed = true;
	return true;
}

/* config_retire: keep a stale cache alive until the table is freed (callers
 * may still hold it: results live "until the next load"). */
static void config_retire(struct config_table *t, void *p)
{
	if (p == NULL)
		return;
	if (t->retired_count == t->retired_cap) {
		t->retired_cap = t->retired_cap ? t->retired_cap * 2 : 16;
		t->retired = xreallocarray(t->retired, t->retired_cap, sizeof(*t->retired));
	}
	t->retired[t->retired_count++] = p;
}

/* config_invalidate: drop every expansion cache after a value changed. */
static void config_invalidate(struct config_table *t)
{
	for (size_t i = 0; i < t->names.size; i++) {
		struct config_entry *e = t->names.values[i];
		if (t->names.keys[i] == NULL)
			continue;
		config_retire(t, e->expanded);
		config_retire(t, e->list);
		e->expanded = NULL;
		e->list = NULL;
	}
	for (size_t i = 0; i < t->expansions.size; i++) {
		struct config_expansion *x = t->expansions.values[i];
		if (t->expansions.keys[i] == NULL)
			continue;
		config_retire(t, x->result);
		free(x->text);
		free(x);
	}
	config_map_deinit(&t->expansions);
}

static struct config_table *config_table_create(const char *dir)
{
	struct config_table *t = xcalloc(1, sizeof(*t));
	struct str path = STR_INIT;

	t->dir = xstrdup(dir);
	str_printf(&path, "%s/%s", dir, CONFIG_FILE_NAME);
	t->path = str_steal(&path);
	for (const struct param_def *p = config_params; p->name != NULL; p++)
		config_entry_add(t, p->name, p);
	for (size_t i = 0; i < N_ELEMENTS(config_values); i++) {
		struct config_entry *e = config_entry_get(t, config_values[i].name);
		if (e == NULL)
			msg_panic("params.def: PARAM_VALUES for unknown parameter %s",
				  config_values[i].name);
		e->values = config_values[i].values;
	}
	return t;
}

static void config_table_free(struct config_table **tp)
{
	struct config_table *t = *tp;
	if (t == NULL)
		return;
	config_invalidate(t);
	for (size_t i = 0; i < t->names.size; i++) {
		struct config_entry *e = t->names.values[i];
		if (t->names.keys[i] == NULL)
			continue;
		free(e->file_value);
		free(e->override);
		free(e->dynamic_default);
		free(e->name);
		free(e);
	}
	config_map_deinit(&t->names);
	for (size_t i = 0; i < t->retired_count; i++)
		free(t->retired[i]);
	free(t->retired);
	free(t->set_order);
	free(t->dir);
	free(t->path);
	free(t);
	*tp = NULL;
}

/* config_entry_raw: the value in force: override, main.cf, default. */
static const char *config_entry_raw(const struct config_entry *e)
{
	if (e->override != NULL)
		return e->override;
	if (e->file_value != NULL)
		return e->file_value;
	if (e->dynamic_default != NULL)
		return e->dynamic_default;
	return e->def != NULL ? e->def->default_value : NULL;
}

/* ---- expansion ---- */

static bool config_expand_text(struct config_table *t, const char *text, size_t len,
			       struct str *out, int depth, const char **error_r);

/* config_expand_name: append the expansion of parameter name. Undefined
 * names expand to "". */
static bool config_expand_name(struct config_table *t, const char *name, size_t len,
			       struct str *out, int depth, const char **error_r)
{
	char key[256];
	if (len >= sizeof(key)) {
		*error_r = config_err("parameter name too long: \"%.40s...\"", name);
		return false;
	}
	memcpy(key, name, len);
	key[len] = '\0';
	if (++t->expand_steps > CONFIG_EXPAND_STEPS_MAX) {
		*error_r = config_err("too many parameter expansions (more than %d)",
				      CONFIG_EXPAND_STEPS_MAX);
		return false;
	}
	if (depth >= CONFIG_EXPAND_DEPTH) {
		*error_r = config_err("$%s: expansion nested more than %d levels deep "
				      "(a parameter refers to itself?)", key, CONFIG_EXPAND_DEPTH);
		return false;
	}
	const struct config_entry *e = config_entry_get(t, key);
	const char *raw = e != NULL ? config_entry_raw(e) : NULL;
	if (raw == NULL)
		return true;
	return config_expand_text(t, raw, strlen(raw), out, depth + 1, error_r);
}

/* config_curly: if text[*pos...] is optional white space and a {...}
 * group, return its payload (start, length) and move *pos past it. */
static bool config_curly(const char *text, size_t len, size_t *pos, size_t *start_r,
			 size_t *len_r, const char **error_r)
{
	size_t i = *pos;
	while (i < len && str_isspace((unsigned char)text[i]))
		i++;
	if (i >= len || text[i] != '{')
		return false;
	int level = 0;
	for (size_t j = i; j < len; j++) {
		if (text[j] == '{')
			level++;
		else if (text[j] == '}' && --level == 0) {
			*start_r = i + 1;
			*len_r = j - i - 1;
			for (j++; j < len && str_isspace((unsigned char)text[j]); j++)
				;
			*pos = j;
			return true;
		}
	}
	*error_r = config_err("missing '}' in \"%.*s\"", (int)(len < 60 ? len : 60), text);
	return false;
}

/* config_expand_cond: the part after '?' or ':' in ${name?...}. */
static bool config_expand_cond(struct config_table *t, bool nonempty, char op, const char *text,
			       size_t len, struct str *out, int depth, const char **error_r)
{
	size_t pos = 0, start, n;
	const char *error = NULL;
	bool curly = config_curly(text, len, &pos, &start, &n, &error);

	bool take = op == '?' ? nonempty : !nonempty;

	if (error != NULL) {
		*error_r = error;
		return false;
	}
	if (!curly) /* plain text: everything up to the closing brace, as Postfix */
		return !take || config_expand_text(t, text, len, out, depth + 1, error_r);
	if (take && !config_expand_text(t, text + start, n, out, depth + 1, error_r))
		return false;
	if (pos == len)
		return true;
	if (op != '?' || text[pos] != ':') {
		*error_r = config_err("unexpected text after {...}: \"%.*s\"", (int)(len - pos), text + pos);
		return false;
	}
	pos++;
	size_t alt_pos = pos;
	if (config_curly(text, len, &alt_pos, &start, &n, &error)) {
		if (alt_pos != len) {
			*error_r = config_err("unexpected text after {...}: \"%.*s\"",
					      (int)(len - alt_pos), text + alt_pos);
			return false;
		}
	} else if (error != NULL) {
		*error_r = error;
		return false;
	} else {
		start = pos;
		n = len - pos;
	}
	return nonempty || config_expand_text(t, text + start, n, out, depth + 1, error_r);
}

/* config_expand_braced: the inside of ${...} or $(...). */
static bool config_expand_braced(struct config_table *t, const char *text, size_t len,
				 struct str *out, int depth, const char **error_r)
{
	size_t i = 0;
	while (i < len && str_isspace((unsigned char)text[i]))
		i++;
	if (i < len && text[i] == '{') {
		*error_r = config_err("relational expressions are not supported: \"${%.*s}\"",
				      (int)(len < 60 ? len : 60), text);
		return false;
	}
	size_t name = i;
	while (i < len && config_isname((unsigned char)text[i]))
		i++;
	size_t name_len = i - name;
	while (i < len && str_isspace((unsigned char)text[i]))
		i++;
	if (name_len == 0 || (i < len && text[i] != '?' && text[i] != ':')) {
		*error_r = config_err("parameter name syntax error in \"${%.*s}\"",
				      (int)(len < 60 ? len : 60), text);
		return false;
	}
	if (i == len)
		return config_expand_name(t, text + name, name_len, out, depth, error_r);

	char key[256];
	if (name_len >= sizeof(key)) {
		*error_r = config_err("parameter name too long: \"%.40s...\"", text + name);
		return false;
	}
	memcpy(key, text + name, name_len);
	key[name_len] = '\0';
	const struct config_entry *e = config_entry_get(t, key);
	const char *raw = e != NULL ? config_entry_raw(e) : NULL;
	bool nonempty = raw != NULL && *raw != '\0';
	return config_expand_cond(t, nonempty, text[i], text + i + 1, len - i - 1, out, depth,
				  error_r);
}

/* config_expand_text: append text[0..len) with $ references expanded. */
static bool config_expand_text(struct config_table *t, const char *text, size_t len,
			       struct str *out, int depth, const char **error_r)
{
	size_t i = 0;
	if (depth > CONFIG_EXPAND_DEPTH) {
		*error_r = config_err("parameter expansion nested more than %d levels deep",
				      CONFIG_EXPAND_DEPTH);
		return false;
	}
	while (i < len) {
		if (out->len > CONFIG_EXPAND_MAX) {
			*error_r = config_err("expansion longer than %d bytes", CONFIG_EXPAND_MAX);
			return false;
		}
		const char *dollar = memchr(text + i, '$', len - i);
		size_t plain = dollar != NULL ? (size_t)(dollar - text) - i : len - i;
		str_append_n(out, text + i, plain);
		i += plain;
		if (i >= len)
			break;
		i++; /* the '$' */
		if (i < len && text[i] == '$') {
			str_append_c(out, '$');
			i++;
		} else if (i < len && (text[i] == '{' || text[i] == '(')) {
			char open = text[i], close = open == '{' ? '}' : ')';
			int level = 1;
			size_t j = i + 1;
			for (; j < len; j++) {
				if (text[j] == open)
					level++;
				else if (text[j] == close && --level == 0)
					break;
			}
			if (j >= len) {
				*error_r = config_err("truncated parameter reference: \"%.*s\"",
						      (int)(len - i + 1 < 60 ? len - i + 1 : 60),
						      text + i - 1);
				return false;
			}
			if (!config_expand_braced(t, text + i + 1, j - i - 1, out, depth, error_r))
				return false;
			i = j + 1;
		} else {
			size_t j = i;
			while (j < len && config_isname((unsigned char)text[j]))
				j++;
			if (j == i) {
				*error_r = "'$' without a parameter name (write $$ for a literal $)";
				return false;
			}
			if (!config_expand_name(t, text + i, j - i, out, depth, error_r))
				return false;
			i = j;
		}
	}
	if (out->len > CONFIG_EXPAND_MAX) {
		*error_r = config_err("expansion longer than %d bytes", CONFIG_EXPAND_MAX);
		return false;
	}
	return true;
}

/* config_expand_top: expand text from scratch into a new string. */
static char *config_expand_top(struct config_table *t, const char *text, const char **error_r)
{
	struct str out = STR_INIT;
	t->expand_steps = 0;
	if (!config_expand_text(t, text, strlen(text), &out, 0, error_r)) {
		str_deinit(&out);
		return NULL;
	}
	/* str_steal() of a never-written str returns an unterminated buffer. */
	str_append(&out, "");
	return str_steal(&out);
}

/* config_entry_expanded: the cached expansion of an entry's value. */
static const char *config_entry_expanded(struct config_table *t, struct config_entry *e,
					 const char **error_r)
{
	if (e->expanded != NULL)
		return e->expanded;
	const char *raw = config_entry_raw(e);
	e->expanded = config_expand_top(t, raw != NULL ? raw : "", error_r);
	return e->expanded;
}

/* ---- validation ---- */

/* config_word_allowed: is word one of "a|b|c" (case-insensitive)? */
static bool config_word_allowed(const char *values, const char *word)
{
	size_t wlen = strlen(word);
	for (const char *p = values;;) {
		size_t n = strcspn(p, "|");
		size_t i = 0;
		while (i < n && i < wlen && (p[i] | 0x20) == (word[i] | 0x20))
			i++;
		if (n == wlen && i == n)
			return true;
		if (p[n] == '\0')
			return false;
		p += n + 1;
	}
}

/* config_value_check: does an expanded value fit def's type and bounds? */
static bool config_value_check(const struct param_def *def, const char *values,
			       const char *value, const char **reason_r)
{
	long long n;
	bool b;
	char **words;

	switch (def->type) {
	case PARAM_STR:
		if (values != NULL && !config_word_allowed(values, value)) {
			*reason_r = config_err("expected one of: %s", values);
			return false;
		}
		return true;
	case PARAM_INT:
	case PARAM_SIZE:
		if (!config_parse_number(value, &n)) {
			*reason_r = def->type == PARAM_INT ? "not a decimal integer"
							   : "not a size in bytes (a decimal integer)";
			return false;
		}
		break;
	case PARAM_TIME:
		if (!config_parse_time(value, def->time_unit, &n, reason_r))
			return false;
		break;
	case PARAM_BOOL:
		if (!config_parse_bool(value, &b)) {
			*reason_r = "not a boolean: use yes or no";
			return false;
		}
		return true;
	case PARAM_LIST:
		if (!config_split_list(value, &words, reason_r))
			return false;
		for (size_t i = 0; values != NULL && words[i] != NULL; i++) {
			if (!config_word_allowed(values, words[i])) {
				*reason_r = config_err("\"%s\" is not one of: %s", words[i], values);
				config_list_free(&words);
				return false;
			}
		}
		config_list_free(&words);
		return true;
	default:
		msg_panic("config: parameter %s has unknown type %d", def->name, (int)def->type);
	}
	if (n < def->min || n > def->max) {
		*reason_r = config_err("out of range: %s must be between %lld and %lld%s", def->name,
				       def->min, def->max, def->type == PARAM_TIME ? " seconds" : "");
		return false;
	}
	return true;
}

/* config_entry_where: where an entry's value came from, for messages. */
static void config_entry_where(const struct config_table *t, const struct config_entry *e,
			       struct str *out)
{
	if (e->override != NULL)
		str_printf(out, "override -o %s", e->name);
	else if (e->file_value != NULL)
		str_printf(out, "%s, line %d", t->path, e->file_line);
	else
		str_printf(out, "%s: default", t->path);
}

/* config_entry_check: validate one table parameter's current value. */
static bool config_entry_check(struct config_table *t, struct config_entry *e,
			       const char **error_r)
{
	const char *reason = NULL;
	const char *raw = config_entry_raw(e);
	const char *value = config_entry_expanded(t, e, &reason);
	char q1[CONFIG_QUOTE_MAX + 8], q2[CONFIG_QUOTE_MAX + 8];

	if (value != NULL && config_value_check(e->def, e->values, value, &reason))
		return true;
	/* reason may live in config_error_buf: copy it before reformatting. */
	char why[512];
	str_copy(why, sizeof(why), reason != NULL ? reason : "invalid");
	struct str where = STR_INIT;
	config_entry_where(t, e, &where);
	if (value != NULL && strcmp(value, raw) != 0)
		*error_r = config_err("%s: invalid value for parameter %s: \"%s\" (expands to \"%s\"): %s",
				      str_c(&where), e->name, config_quote(raw, q1, sizeof(q1)),
				      config_quote(value, q2, sizeof(q2)), why);
	else
		*error_r = config_err("%s: invalid value for parameter %s: \"%s\": %s", str_c(&where),
				      e->name, config_quote(raw, q1, sizeof(q1)), why);
	str_deinit(&where);
	return false;
}

/* config_table_check: validate every table parameter, in table order. */
static bool config_table_check(struct config_table *t, const char **error_r)
{
	for (const struct param_def *p = config_params; p->name != NULL; p++) {
		struct config_entry *e = config_entry_get(t, p->name);
		if (!config_entry_check(t, e, error_r))
			return false;
	}
	return true;
}

/* ---- dynamic defaults ---- */

/* config_hostname: this machine's name, as gethostname() gives it. */
static char *config_hostname(void)
{
	char host[256];
	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		return xstrdup("localhost");
	host[sizeof(host) - 1] = '\0';
	return xstrdup(host);
}

/* config_set_dynamic: replace an entry's computed default. */
static void config_set_dynamic(struct config_table *t, const char *name, char *value)
{
	struct config_entry *e = config_entry_get(t, name);
	config_retire(t, e->dynamic_default);
	e->dynamic_default = value;
}

/* config_refresh_dynamic: compute config_directory, myhostname and
 * mydomain defaults (mydomain from the myhostname in force, as Postfix). */
static void config_refresh_dynamic(struct config_table *t)
{
	const char *error;
	config_set_dynamic(t, "config_directory", xstrdup(t->dir));
	config_set_dynamic(t, "myhostname", config_hostname());
	config_invalidate(t);

	struct config_entry *host = config_entry_get(t, "myhostname");
	const char *name = config_entry_expanded(t, host, &error);
	const char *dot = name != NULL ? strchr(name, '.') : NULL;
	config_set_dynamic(t, "mydomain", xstrdup(dot != NULL && dot[1] != '\0' ? dot + 1
									     : "localdomain"));
	config_invalidate(t);
}

/* ---- reading main.cf ---- */

/* config_read_file: the whole file, NUL-terminated, bounded. */
bool config_read_file(const char *path, struct str *buf, const char **error_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*error_r = config_err("open(%s) failed: %s", path, strerror(errno));
		return false;
	}
	char chunk[8192];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = config_err("read(%s) failed: %s", path, strerror(errno));
			close(fd);
			return false;
		}
		if (n == 0)
			break;
		if (buf->len + (size_t)n > CONFIG_FILE_MAX) {
			*error_r = config_err("%s: file larger than %d bytes", path, CONFIG_FILE_MAX);
			close(fd);
			return false;
		}
		str_append_n(buf, chunk, (size_t)n);
	}
	close(fd);
	if (memchr(str_c(buf), '\0', buf->len) != NULL) {
		*error_r = config_err("%s: file contains a NUL byte", path);
		return false;
	}
	return true;
}

/* config_logical: one logical line (name = value) found at line lineno. */
static bool config_logical(struct config_table *t, char *line, int lineno, const char **error_r)
{
	char *eq = strchr(line, '=');
	size_t name_len = strcspn(line, " \t\n\r\v\f=");
	char *p = line + name_len;

	while (str_isspace((unsigned char)*p))
		p++;
	if (name_len == 0 || eq == NULL || p != eq) {
		*error_r = config_err("%s, line %d: missing '=' after parameter name: \"%.*s\"",
				      t->path, lineno, (int)(name_len < 60 ? name_len : 60), line);
		return false;
	}
	line[name_len] = '\0';
	char *value = eq + 1;
	while (str_isspace((unsigned char)*value))
		value++;
	size_t vlen = strlen(value);
	while (vlen > 0 && str_isspace((unsigned char)value[vlen - 1]))
		value[--vlen] = '\0';
	for (const char *c = line; *c != '\0'; c++) {
		if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e) {
			*error_r = config_err("%s, line %d: bad parameter name \"%.60s\"", t->path,
					      lineno, line);
			return false;
		}
	}
	struct config_entry *e = config_entry_get(t, line);
	if (e == NULL)
		e = config_entry_add(t, line, NULL);
	if (!config_entry_mark_set(t, e)) {
		*error_r = config_err("%s, line %d: more than %d parameters", t->path, lineno,
				      CONFIG_PARAMS_MAX);
		return false;
	}
	free(e->file_value);
	e->file_value = xstrdup(value);
	e->file_line = lineno;
	return true;
}

/* config_parse: split a main.cf buffer into logical lines. */
static bool config_parse(struct config_table *t, const char *data, size_t size,
			 const char **error_r)
{
	struct str logical = STR_INIT;
	int lineno = 0, first_line = 0;
	bool ok = true;

	for (size_t pos = 0; pos < size && ok;) {
		const char *nl = memchr(data + pos, '\n', size - pos);
		size_t len = nl != NULL ? (size_t)(nl - (data + pos)) : size - pos;
		const char *line = data + pos;
		pos += len + (nl != NULL);
		lineno++;
		if (len > CONFIG_LINE_MAX) {
			*error_r = config_err("%s, line %d: line longer than %d bytes", t->path,
					      lineno, CONFIG_LINE_MAX);
			ok = false;
			break;
		}
		size_t skip = 0;
		while (skip < len && str_isspace((unsigned char)line[skip]))
			skip++;
		if (skip == len || line[skip] == '#')
			continue; /* blank or comment: does not end a logical line */
		if (skip > 0) {
			if (first_line == 0) {
				msg_warn("%s, line %d: logical line must not start with white space: "
					 "\"%.*s\"", t->path, lineno,
					 (int)(len - skip < 30 ? len - skip : 30), line + skip);
				continue;
			}
			if (logical.len + len > CONFIG_LINE_MAX) {
				*error_r = config_err("%s, line %d: value longer than %d bytes",
						      t->path, first_line, CONFIG_LINE_MAX);
				ok = false;
				break;
			}
			str_append_n(&logical, line, len);
			continue;
		}
		if (first_line != 0 && !config_logical(t, logical.data, first_line, error_r)) {
			ok = false;
			break;
		}
		str_clear(&logical);
		str_append_n(&logical, line, len);
		first_line = lineno;
	}
	if (ok && first_line != 0)
		ok = config_logical(t, logical.data, first_line, error_r);
	str_deinit(&logical);
	return ok;
}

/* ---- unused-parameter warnings ---- */

/* config_scan_refs: mark in refs every name text refers to with $. */
static void config_scan_refs(const char *text, struct str *names)
{
	for (const char *p = text; (p = strchr(p, '$')) != NULL;) {
		p++;
		if (*p == '$') {
			p++;
			continue;
		}
		if (*p == '{' || *p == '(')
			p++;
		while (str_isspace((unsigned char)*p))
			p++;
		size_t n = 0;
		while (config_isname((unsigned char)p[n]))
			n++;
		if (n == 0)
			continue;
		/* Names are stored one after another, NUL-terminated; the map
		 * is built once the buffer stops moving. */
		str_append_n(names, p, n);
		str_append_c(names, '\0');
		p += n;
	}
}

/* config_warn_unused: warn once about each main.cf name that is neither in
 * params.def nor referred to by another value. */
static void config_warn_unused(struct config_table *t)
{
	struct str names = STR_INIT;
	struct config_map refs = { NULL, NULL, 0, 0 };

	for (size_t i = 0; i < t->names.size; i++) {
		const struct config_entry *e = t->names.values[i];
		if (t->names.keys[i] == NULL)
			continue;
		if (e->file_value != NULL)
			config_scan_refs(e->file_value, &names);
		if (e->override != NULL)
			config_scan_refs(e->override, &names);
		if (e->def != NULL)
			config_scan_refs(e->def->default_value, &names);
	}
	for (size_t off = 0; off < names.len; off += strlen(names.data + off) + 1)
		config_map_put(&refs, names.data + off, names.data + off);
	for (size_t i = 0; i < t->set_count; i++) {
		const struct config_entry *e = t->set_order[i];
		if (e->def == NULL && e->file_value != NULL && config_map_get(&refs, e->name) == NULL)
			msg_warn("%s, line %d: unused parameter: %s=%s", t->path, e->file_line,
				 e->name, e->file_value);
	}
	config_map_deinit(&refs);
	str_deinit(&names);
}

/* ---- loading ---- */

/* config_table_finish: compute defaults and validate; the table is ready
 * to become current when this returns true. */
static bool config_table_finish(struct config_table *t, const char **error_r)
{
	config_refresh_dynamic(t);
	return config_table_check(t, error_r);
}

/* config_copy_overrides: carry the overrides of old into t. */
static bool config_copy_overrides(struct config_table *t, const struct config_table *old,
				  const char **error_r)
{
	for (size_t i = 0; i < old->set_count; i++) {
		const struct config_entry *o = old->set_order[i];
		if (o->override == NULL)
			continue;
		struct config_entry *e = config_entry_get(t, o->name);
		if (e == NULL)
			e = config_entry_add(t, o->name, NULL);
		if (!config_entry_mark_set(t, e)) {
			*error_r = config_err("more than %d parameters", CONFIG_PARAMS_MAX);
			return false;
		}
		e->override = xstrdup(o->override);
	}
	return true;
}

bool config_load(const char *dir, bool keep_overrides, const char **error_r)
{
	struct config_table *t = config_table_create(dir);
	struct str data = STR_INIT;
	bool ok = config_read_file(t->path, &data, error_r) &&
		  config_parse(t, str_c(&data), data.len, error_r);

	str_deinit(&data);
	if (ok && keep_overrides && config_current != NULL)
		ok = config_copy_overrides(t, config_current, error_r);
	if (ok)
		ok = config_table_finish(t, error_r);
	if (!ok) {
		config_table_free(&t);
		return false;
	}
	config_warn_unused(t);
	config_table_free(&config_current);
	config_current = t;
	return true;
}

void config_load_defaults(const char *dir)
{
	struct config_table *t = config_table_create(dir);
	const char *error;
	if (!config_table_finish(t, &error))
		msg_panic("config: built-in defaults do not validate: %s", error);
	config_table_free(&config_current);
	config_current = t;
}

void config_deinit(void)
{
	config_table_free(&config_current);
}

/* config_table: the current table; the defaults if nothing was loaded (so
 * that library code and tests work before any config_load()). */
static struct config_table *config_table(void)
{
	if (config_current == NULL)
		config_load_defaults(PETREL_SYSCONFDIR);
	return config_current;
}

/* config_name_ok: a parameter name as main.cf allows one. */
bool config_name_ok(const char *name)
{
	if (*name == '\0')
		return false;
	for (const char *c = name; *c != '\0'; c++) {
		if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e || *c == '=')
			return false;
	}
	return true;
}

bool config_override(const char *name, const char *value, const char **error_r)
{
	struct config_table *t = config_table();

	if (!config_name_ok(name)) {
		*error_r = config_err("bad parameter name: \"%.60s\"", name);
		return false;
	}
	if (strlen(value) > CONFIG_LINE_MAX || strchr(value, '\n') != NULL) {
		*error_r = config_err("-o %s: value longer than %d bytes or with a newline", name,
				      CONFIG_LINE_MAX);
		return false;
	}
	struct config_entry *e = config_entry_get(t, name);
	if (e == NULL)
		e = config_entry_add(t, name, NULL);
	if (!e->set_listed && t->set_count >= CONFIG_PARAMS_MAX) {
		*error_r = config_err("more than %d parameters", CONFIG_PARAMS_MAX);
		return false;
	}
	char *old = e->override;
	e->override = xstrdup(value);
	if (!config_table_finish(t, error_r)) {
		free(e->override);
		e->override = old;
		config_refresh_dynamic(t);
		return false;
	}
	free(old);
	(void)config_entry_mark_set(t, e);
	return true;
}

bool config_check(const char **error_r)
{
	return config_table_check(config_table(), error_r);
}

bool config_validate(const char *name, const char *value, const char **error_r)
{
	struct config_table *t = config_table();
	const struct config_entry *e = config_entry_get(t, name);
	const char *reason = NULL;
	char q[CONFIG_QUOTE_MAX + 8];

	if (e == NULL || e->def == NULL)
		return true;
	char *expanded = config_expand_top(t, value, &reason);
	bool ok = expanded != NULL && config_value_check(e->def, e->values, expanded, &reason);
	free(expanded);
	if (!ok) {
		char why[512];
		str_copy(why, sizeof(why), reason);
		*error_r = config_err("invalid value for parameter %s: \"%s\": %s", name,
				      config_quote(value, q, sizeof(q)), why);
	}
	return ok;
}

/* ---- getters ---- */

const struct param_def *config_param_find(const char *name)
{
	const struct config_entry *e = config_entry_get(config_table(), name);
	return e != NULL ? e->def : NULL;
}

const char *config_dir(void)
{
	return config_table()->dir;
}

/* config_need: the entry of a table parameter; panics on other names. */
static struct config_entry *config_need(const char *name, const char *caller)
{
	struct config_entry *e = config_entry_get(config_table(), name);
	if (e == NULL || e->def == NULL)
		msg_panic("%s(%s): not a parameter in params.def", caller, name);
	return e;
}

const char *config_str(const char *name)
{
	struct config_entry *e = config_need(name, "config_str");
	const char *error;
	const char *value = config_entry_expanded(config_current, e, &error);
	if (value == NULL)
		msg_fatal("parameter %s: %s", name, error);
	return value;
}

/* config_number: the parsed value of an INT, SIZE or TIME parameter. */
static long long config_number(const char *name, const char *caller, enum param_type want,
			       enum param_type also)
{
	struct config_entry *e = config_need(name, caller);
	if (e->def->type != want && e->def->type != also)
		msg_panic("%s(%s): parameter has another type", caller, name);
	const char *value = config_str(name);
	const char *error = "not a number";
	long long n;
	bool ok = e->def->type == PARAM_TIME ? config_parse_time(value, e->def->time_unit, &n, &error)
					     : config_parse_number(value, &n);
	if (!ok)
		msg_fatal("parameter %s: bad value \"%s\": %s", name, value, error);
	return n;
}

long long config_int(const char *name)
{
	return config_number(name, "config_int", PARAM_INT, PARAM_SIZE);
}

long long config_size(const char *name)
{
	return config_number(name, "config_size", PARAM_SIZE, PARAM_INT);
}

long long config_time(const char *name)
{
	return config_number(name, "config_time", PARAM_TIME, PARAM_TIME);
}

bool config_bool(const char *name)
{
	struct config_entry *e = config_need(name, "config_bool");
	bool b;
	if (e->def->type != PARAM_BOOL)
		msg_panic("config_bool(%s): parameter has another type", name);
	if (!config_parse_bool(config_str(name), &b))
		msg_fatal("parameter %s: bad boolean \"%s\"", name, config_str(name));
	return b;
}

const char *const *config_list(const char *name)
{
	struct config_entry *e = config_need(name, "config_list");
	const char *error;
	if (e->list == NULL && !config_split_list(config_str(name), &e->list, &error))
		msg_fatal("parameter %s: %s", name, error);
	return (const char *const *)e->list;
}

const char *config_lookup_raw(const char *name)
{
	const struct config_entry *e = config_entry_get(config_table(), name);
	return e != NULL ? config_entry_raw(e) : NULL;
}

const char *config_default(const char *name)
{
	const struct config_entry *e = config_entry_get(config_table(), name);
	if (e == NULL || e->def == NULL)
		return NULL;
	return e->dynamic_default != NULL ? e->dynamic_default : e->def->default_value;
}

bool config_expand_checked(const char *text, const char **result_r, const char **error_r)
{
	struct config_table *t = config_table();
	struct config_expansion *x = config_map_get(&t->expansions, text);
	if (x != NULL) {
		*result_r = x->result;
		return true;
	}
	char *result = config_expand_top(t, text, error_r);
	if (result == NULL)
		return false;
	x = xmalloc(sizeof(*x));
	x->text = xstrdup(text);
	x->result = result;
	config_map_put(&t->expansions, x->text, x);
	*result_r = x->result;
	return true;
}

const char *config_expand(const char *text)
{
	const char *result, *error;
	if (config_expand_checked(text, &result, &error))
		return result;
	msg_warn("cannot expand \"%.100s\": %s", text, error);
	return "";
}

bool config_is_set(const char *name)
{
	const struct config_entry *e = config_entry_get(config_table(), name);
	return e != NULL && (e->override != NULL || e->file_value != NULL);
}

void config_foreach_set(config_visit_fn *fn, void *ctx)
{
	struct config_table *t = config_table();
	for (size_t i = 0; i < t->set_count; i++) {
		const struct config_entry *e = t->set_order[i];
		if (e->override != NULL || e->file_value != NULL)
			fn(e->name, config_entry_raw(e), ctx);
	}
}
