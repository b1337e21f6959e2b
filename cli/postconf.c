/* postconf.c: show and edit main.cf parameters, as Postfix's postconf(1).
 *
 * SYNOPSIS
 *	postconf [-c config_dir] [-dhnx] [name ...]
 *	postconf [-c config_dir] -e name=value ...
 *	postconf [-c config_dir] -X name ...
 *	postconf -m
 *	postconf -a
 *
 * DESCRIPTION
 *	Without options, prints every parameter Petrel knows as
 *	"name = value", sorted by name, with the value as main.cf (or the
 *	default) gives it, unexpanded. -n: only parameters set in main.cf.
 *	-d: the defaults instead. -h: values only. -x: expand $name
 *	references. Names on the command line select parameters; an unknown
 *	one gets "postconf: warning: NAME: unknown parameter" and the exit
 *	status stays 0, as with Postfix.
 *
 *	-e name=value...: set parameters in main.cf, replacing existing
 *	definitions in place (comments are kept) or appending; each value is
 *	checked against the parameter's type first. -X name...: remove
 *	definitions. -m: supported lookup table types. -a: supported SASL
 *	server types.
 *
 *	The configuration directory is -c, else $MAIL_CONFIG, else the
 *	compiled-in default. Errors print one line, "postconf: fatal: ...",
 *	and exit 1 (a main.cf value that is not valid for its parameter is
 *	an error).
 *
 * SECURITY
 *	Runs with the caller's privileges and trusts its arguments; -e and -X
 *	need write access to the configuration directory. Not set-uid. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/config.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

#ifndef PETREL_SYSCONFDIR
#define PETREL_SYSCONFDIR "/etc/petrel"
#endif

enum postconf_mode {
	POSTCONF_SHOW,
	POSTCONF_EDIT,
	POSTCONF_REMOVE,
	POSTCONF_MAPS,
	POSTCONF_SASL,
};

struct postconf_opts {
	enum postconf_mode mode;
	const char *dir;
	bool defaults;    /* -d */
	bool only_set;    /* -n */
	bool values_only; /* -h */
	bool expand;      /* -x */
};

/* Lookup table types Petrel's maps module opens (hash and btree are
 * accepted as lmdb for drop-in configurations). */
static const char *const postconf_map_types[] = { "btree", "hash", "inline", "lmdb", "static" };

/* postconf_usage: the fatal usage message, after a bad option. */
static void ATTR_NORETURN postconf_usage(int opt)
{
	msg_fatal("invalid option -%c; usage: postconf [-c config_dir] [-dhnx] [name ...] | "
		  "-e name=value ... | -X name ... | -m | -a", opt);
}

/* postconf_set_mode: one of -e, -X, -m, -a. */
static void postconf_set_mode(struct postconf_opts *o, enum postconf_mode mode)
{
	if (o->mode != POSTCONF_SHOW && o->mode != mode)
		msg_fatal("options -e, -X, -m and -a are mutually exclusive");
	o->mode = mode;
}

/* postconf_options: parse the command line; returns the index of the first
 * operand. */
static int postconf_options(int argc, char **argv, struct postconf_opts *o)
{
	int ch;
	opterr = 0; /* one "postconf: fatal:" line instead of getopt's */
	while ((ch = getopt(argc, argv, ":ac:dehmnxX")) != -1) {
		switch (ch) {
		case 'a': postconf_set_mode(o, POSTCONF_SASL); break;
		case 'c': o->dir = optarg; break;
		case 'd': o->defaults = true; break;
		case 'e': postconf_set_mode(o, POSTCONF_EDIT); break;
		case 'h': o->values_only = true; break;
		case 'm': postconf_set_mode(o, POSTCONF_MAPS); break;
		case 'n': o->only_set = true; break;
		case 'x': o->expand = true; break;
		case 'X': postconf_set_mode(o, POSTCONF_REMOVE); break;
		case ':': msg_fatal("option -%c requires an argument", optopt);
		default: postconf_usage(optopt);
		}
	}
	if (o->defaults && o->only_set)
		msg_fatal("options -d and -n are mutually exclusive");
	if (o->dir == NULL)
		o->dir = getenv("MAIL_CONFIG");
	if (o->dir == NULL || *o->dir == '\0')
		o->dir = PETREL_SYSCONFDIR;
	return optind;
}

/* postconf_print: one parameter, as "name = value" or the value alone. */
static void postconf_print(const struct postconf_opts *o, const char *name, const char *raw)
{
	const char *value = raw, *error;
	if (o->expand && !config_expand_checked(raw, &value, &error))
		msg_fatal("%s: %s", name, error);
	if (o->values_only)
		printf("%s\n", value);
	else if (*value == '\0')
		printf("%s =\n", name);
	else
		printf("%s = %s\n", name, value);
}

/* postconf_value: the value -d/-n/neither selects for name, or NULL when
 * there is none to show; *unknown_r when the name means nothing. */
static const char *postconf_value(const struct postconf_opts *o, const char *name, bool *unknown_r)
{
	bool known = config_param_find(name) != NULL;
	*unknown_r = false;
	if (o->defaults) {
		*unknown_r = !known;
		return config_default(name);
	}
	if (config_is_set(name))
		return config_lookup_raw(name);
	*unknown_r = !known;
	return o->only_set ? NULL : config_lookup_raw(name);
}

/* postconf_show_names: the parameters named on the command line, in order. */
static void postconf_show_names(const struct postconf_opts *o, char **names, int count)
{
	for (int i = 0; i < count; i++) {
		bool unknown;
		const char *value = postconf_value(o, names[i], &unknown);
		if (unknown)
			msg_warn("%s: unknown parameter", names[i]);
		else if (value != NULL)
			postconf_print(o, names[i], value);
	}
}

struct postconf_names {
	const char **names;
	size_t count;
};

/* postconf_collect: config_foreach_set() callback gathering names. */
static void postconf_collect(const char *name, const char *raw, void *ctx)
{
	struct postconf_names *list = ctx;
	list->names[list->count++] = name;
	(void)raw;
}

static int postconf_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* postconf_show_all: every table parameter, or (-n) every one main.cf
 * sets, sorted by name. */
static void postconf_show_all(const struct postconf_opts *o)
{
	size_t table = 0;
	for (const struct param_def *p = config_params; p->name != NULL; p++)
		table++;
	struct postconf_names list = { xcalloc(table + CONFIG_PARAMS_MAX, sizeof(char *)), 0 };
	if (o->only_set) {
		config_foreach_set(postconf_collect, &list);
	} else {
		for (const struct param_def *p = config_params; p->name != NULL; p++)
			list.names[list.count++] = p->name;
	}
	qsort(list.names, list.count, sizeof(*list.names), postconf_cmp);
	for (size_t i = 0; i < list.count; i++) {
		bool unknown;
		const char *value = postconf_value(o, list.names[i], &unknown);
		if (value != NULL)
			postconf_print(o, list.names[i], value);
	}
	free(list.names);
}

/* postconf_show: the default mode (with -d, -n, -h, -x). */
static void postconf_show(const struct postconf_opts *o, char **names, int count)
{
	const char *error;
	if (o->defaults)
		config_load_defaults(o->dir);
	else if (!config_load(o->dir, false, &error))
		msg_fatal("%s", error);
	if (count > 0)
		postconf_show_names(o, names, count);
	else
		postconf_show_all(o);
}

/* postconf_trim: a copy of text[0..len) without surrounding white space. */
static char *postconf_trim(const char *text, size_t len)
{
	while (len > 0 && strchr(" \t", *text) != NULL) {
		text++;
		len--;
	}
	while (len > 0 && strchr(" \t", text[len - 1]) != NULL)
		len--;
	return xstrndup(text, len);
}

/* postconf_split: "name=value" (white space around either side allowed)
 * into a name and a value, both trimmed; fatal without '='. */
static void postconf_split(const char *arg, char **name_r, char **value_r)
{
	const char *eq = strchr(arg, '=');
	if (eq == NULL)
		msg_fatal("-e: \"%s\": missing '='", arg);
	*name_r = postconf_trim(arg, (size_t)(eq - arg));
	if (**name_r == '\0')
		msg_fatal("-e: \"%s\": missing parameter name", arg);
	*value_r = postconf_trim(eq + 1, strlen(eq + 1));
}

/* postconf_edit: -e name=value ...: check every value, then write them. */
static void postconf_edit(const struct postconf_opts *o, char **args, int count)
{
	const char *error;
	if (count == 0)
		msg_fatal("-e requires name=value arguments");
	/* Values are checked against main.cf as it is, if it loads at all
	 * (an edit may be what repairs it), else against the defaults. */
	if (!config_load(o->dir, false, &error))
		config_load_defaults(o->dir);
	for (int i = 0; i < count; i++) {
		char *name, *value;
		postconf_split(args[i], &name, &value);
		if (!config_validate(name, value, &error))
			msg_fatal("%s", error);
		free(name);
		free(value);
	}
	for (int i = 0; i < count; i++) {
		char *name, *value;
		postconf_split(args[i], &name, &value);
		if (!config_edit(o->dir, name, value, &error))
			msg_fatal("%s", error);
		free(name);
		free(value);
	}
}

/* postconf_remove: -X name ... */
static void postconf_remove(const struct postconf_opts *o, char **names, int count)
{
	const char *error;
	if (count == 0)
		msg_fatal("-X requires parameter names");
	for (int i = 0; i < count; i++) {
		if (!config_remove(o->dir, names[i], &error))
			msg_fatal("%s", error);
	}
}

int main(int argc, char **argv)
{
	struct postconf_opts o = { POSTCONF_SHOW, NULL, false, false, false, false };

	msg_init("postconf");
	msg_set_target(MSG_TARGET_TTY);
	int first = postconf_options(argc, argv, &o);
	char **operands = argv + first;
	int count = argc - first;

	switch (o.mode) {
	case POSTCONF_MAPS:
		for (size_t i = 0; i < sizeof(postconf_map_types) / sizeof(*postconf_map_types); i++)
			printf("%s\n", postconf_map_types[i]);
		break;
	case POSTCONF_SASL:
		printf("dovecot\n");
		break;
	case POSTCONF_EDIT:
		postconf_edit(&o, operands, count);
		break;
	case POSTCONF_REMOVE:
		postconf_remove(&o, operands, count);
		break;
	case POSTCONF_SHOW:
		postconf_show(&o, operands, count);
		break;
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		msg_fatal("write error on standard output: %m");
	config_deinit();
	return 0;
}
