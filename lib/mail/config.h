/* config.h: main.cf, in Postfix syntax, as one process-wide table.
 *
 * Every parameter is defined once, in params.def (name, type, default,
 * bounds). config_load() reads main.cf: "name = value" lines, continuation
 * lines starting with white space, '#' comments, later definitions win.
 * Values are expanded on use: $name, ${name}, $(name), and Postfix's
 * ${name?value} / ${name:value} conditionals. A name that is not in the
 * table is kept (so $name can refer to it) and warned about once.
 *
 * Typed getters validate: a value that does not parse or is out of bounds
 * for its type fails config_load() (or config_check()) with a message naming
 * the parameter, so a daemon never starts on a bad value. Getters panic on a
 * name that is not in params.def: that is a programming error.
 *
 * Units, as Postfix: time values take a suffix s, m, h, d or w (default
 * unit per parameter, seconds unless the table says otherwise); sizes are
 * bytes. */
#ifndef PETREL_CONFIG_H
#define PETREL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum param_type {
	PARAM_STR,  /* any text, expanded */
	PARAM_INT,  /* decimal integer within [min, max] */
	PARAM_BOOL, /* yes/no (also true/false, 1/0) */
	PARAM_TIME, /* integer + optional unit s/m/h/d/w; stored in seconds */
	PARAM_SIZE, /* bytes, integer within [min, max] */
	PARAM_LIST, /* words separated by white space and/or commas */
};

struct param_def {
	const char *name;
	enum param_type type;
	const char *default_value; /* unexpanded, as "postconf -d" shows it */
	long long min, max;        /* for INT, TIME (seconds), SIZE */
	char time_unit;            /* TIME: unit of a bare number ('s', 'm', 'h', 'd') */
	const char *summary;       /* one line, for docs and postconf */
};

/* The table, in params.def order; terminated by a NULL name. */
extern const struct param_def config_params[];
const struct param_def *config_param_find(const char *name);

/* config_load: (re)read config_dir/main.cf. Overrides set before are kept
 * only if keep_overrides. Returns false with *error_r (static storage) on
 * an unreadable file or an invalid value. */
bool config_load(const char *config_dir, bool keep_overrides, const char **error_r);
/* config_load_defaults: a table with only the defaults (no main.cf). */
void config_load_defaults(const char *config_dir);
/* config_override: "-o name=value" from master.cf or the command line;
 * wins over main.cf. Returns false when value is invalid for the type. */
bool config_override(const char *name, const char *value, const char **error_r);
/* config_check: validate every defined parameter's current value. */
bool config_check(const char **error_r);

const char *config_dir(void);
/* config_str: expanded value of a table parameter (never NULL). */
const char *config_str(const char *name);
long long config_int(const char *name);
bool config_bool(const char *name);
long long config_time(const char *name); /* seconds */
long long config_size(const char *name); /* bytes */
/* config_list: expanded, split on white space and commas; NULL-terminated,
 * owned by the table until the next load. */
const char *const *config_list(const char *name);

/* config_lookup_raw: the unexpanded value for any name (table or not) as
 * main.cf or an override set it, else the default, else NULL. */
const char *config_lookup_raw(const char *name);
/* config_expand: expand $name references in text; the result is owned by
 * the table until the next load. Undefined names expand to "". */
const char *config_expand(const char *text);
/* config_is_set: true when main.cf or an override set name. */
bool config_is_set(const char *name);

/* Iteration for postconf: every name main.cf or an override set (in file
 * order), with its raw value. */
typedef void config_visit_fn(const char *name, const char *raw_value, void *ctx);
void config_foreach_set(config_visit_fn *fn, void *ctx);

/* config_edit: rewrite config_dir/main.cf setting name = value (postconf -e):
 * replaces the existing definition in place (with its continuation lines) or
 * appends; written to a temp file, fsync'd and renamed. */
bool config_edit(const char *config_dir, const char *name, const char *value,
		 const char **error_r);

/* ---- Additions beyond the original interface ---- */

/* Bounds (fail closed): a physical or logical main.cf line, and a value
 * given to config_override()/config_edit(); names set by main.cf and
 * overrides together; the size of main.cf; nesting of $name expansion
 * (a loop such as a = $b, b = $a fails here); one expansion's result. */
#define CONFIG_LINE_MAX 65536
#define CONFIG_PARAMS_MAX 10000
#define CONFIG_FILE_MAX (64 * 1024 * 1024)
#define CONFIG_EXPAND_DEPTH 20
#define CONFIG_EXPAND_MAX (1024 * 1024)

/* Lifetimes: before any config_load() or config_load_defaults(), the
 * getters load the built-in defaults (directory PETREL_SYSCONFDIR), so
 * library code and tests work without a main.cf. Strings and lists returned
 * by the getters and config_expand() stay valid until the next
 * config_load(), config_load_defaults() or config_deinit(), also across
 * config_override(), which keeps the stale copies until then: call it at
 * start-up, not per connection. Words of PARAM_VALUES parameters (such as
 * smtpd_forbid_bare_newline) are accepted in any case: compare them with
 * str_eq_icase(). */

/* config_default: a table parameter's default as "postconf -d" shows it,
 * including the computed ones (myhostname, mydomain, config_directory);
 * NULL for a name not in params.def. */
const char *config_default(const char *name);
/* config_validate: would value (expanded against the current table) be a
 * valid value for name? Always true for names not in params.def. */
bool config_validate(const char *name, const char *value, const char **error_r);
/* config_expand_checked: config_expand() that reports a syntax error or a
 * loop instead of logging it and returning "". */
bool config_expand_checked(const char *text, const char **result_r, const char **error_r);
/* config_deinit: free the table (tests, clean exits). */
void config_deinit(void);

/* The value parsers behind the typed getters. config_parse_number: a
 * decimal integer, optional '-', nothing else. config_parse_time: digits
 * plus an optional unit s/m/h/d/w; a bare number is in unit ('s' if 0).
 * config_parse_bool: yes/no, true/false, 1/0, any case. */
bool config_parse_number(const char *text, long long *value_r);
bool config_parse_time(const char *text, char unit, long long *secs_r, const char **error_r);
bool config_parse_bool(const char *text, bool *value_r);
/* config_split_list: split text as config_list() does (white space and
 * commas; a {...} group stays one word, braces included). *words_r is one
 * allocation, NULL-terminated; free with config_list_free(). Fails on an
 * unbalanced brace. */
bool config_split_list(const char *text, char ***words_r, const char **error_r);
void config_list_free(char ***words);

/* config_remove: delete every definition of name from config_dir/main.cf,
 * continuation lines included (postconf -X); same durability as
 * config_edit(). Removing a name that is not there is not an error. */
bool config_remove(const char *config_dir, const char *name, const char **error_r);

#endif
