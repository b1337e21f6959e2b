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

#endif
