/* postmap.c: the postmap command: build, query, list and edit lookup tables.
 *
 * SYNOPSIS
 *	postmap [-fNnoprvw] [-c config_dir] [type:]file ...
 *	postmap -i [-fNnrvw] [-c config_dir] [type:]file ...
 *	postmap -q key|- [-fv] [-c config_dir] [type:]table ...
 *	postmap -d key|- [-fv] [-c config_dir] [type:]file ...
 *	postmap -s [-v] [-c config_dir] [type:]table
 * DESCRIPTION
 *	As Postfix's postmap. Without -i, -q, -d or -s: compile the text file
 *	"file" (Postfix table syntax, see maps.h) into file.lmdb. Keys are
 *	folded to lower case unless -f. Of duplicate keys the first wins,
 *	with a warning; -w drops the warning, -r makes the last one win.
 *	-N (default) stores keys and values with a trailing NUL as Postfix
 *	does, -n without; lookups accept both.
 *	-i adds "key value" lines read from standard input to the table.
 *	-q key prints the value from the first table that has key (exit 0;
 *	1 if none has it); -q - reads keys from standard input and prints
 *	"key<TAB>value" for each one found. -d key deletes key from every
 *	table (exit 1 if no table had it); -d - reads the keys from standard
 *	input. -s prints every "key<TAB>value" of the first table.
 *	A name without "type:" has the type default_database_type (lmdb);
 *	hash: and btree: are lmdb. -q and -s work on every table type of
 *	maps.h, building and editing only on lmdb.
 *	-c names the configuration directory (default: $MAIL_CONFIG, else the
 *	compiled-in one; a missing main.cf there means the defaults).
 *	-o, -p, -u, -U are accepted as in Postfix; -b, -h, -m, -F, -j are not
 *	supported.
 * SECURITY
 *	A table is never changed in place: the new version is written to
 *	file.lmdb.tmp (locked against other postmap runs, refused when it is
 *	a symlink or has other links), synced, and renamed over file.lmdb, so
 *	a daemon never reads a half-written table. Run as root on a source
 *	file owned by another user, postmap works with that user's effective
 *	IDs (unless -o), so the result has that owner and root writes nothing
 *	into a directory on that user's behalf. The new file gets the source
 *	file's group/other read bits (unless -p); an update (-i, -d) keeps
 *	the old file's mode and owner.
 * DIAGNOSTICS
 *	"postmap: warning: ..." and "postmap: fatal: ..." on stderr; exit 1
 *	after a fatal error. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/dict_lmdb.h"
#include "mail/map_tool.h"
#include "mail/maps.h"
#include "server/privs.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

/* The most postmap reads from standard input (kept for a map restart). */
#define POSTMAP_STDIN_MAX ((size_t)1 << 30)

enum postmap_mode {
	POSTMAP_BUILD,
	POSTMAP_INCR,
	POSTMAP_QUERY,
	POSTMAP_DELETE,
	POSTMAP_SEQ,
};

struct postmap_opts {
	enum postmap_mode mode;
	bool mode_set;
	const char *key; /* -q, -d */
	const char *config_dir;
	struct map_tool_opts table; /* -f -n -N -o -p -r -w */
	const char *default_type;
};

/* postmap_usage: the synopsis, as Postfix prints it; exits. */
static void ATTR_NORETURN postmap_usage(void)
{
	msg_fatal("usage: postmap [-finNoprsvw] [-c config_dir] [-d key] [-q key] "
		  "[map_type:]file...");
}

/* postmap_set_mode: only one of -d -i -q -s, as Postfix requires. */
static void postmap_set_mode(struct postmap_opts *o, enum postmap_mode mode, const char *key)
{
	if (o->mode_set)
		msg_fatal("specify only one of -d -i -q or -s");
	o->mode_set = true;
	o->mode = mode;
	o->key = key;
}

/* postmap_options: parse the command line; returns the first table. */
static int postmap_options(int argc, char **argv, struct postmap_opts *o)
{
	int c;

	while ((c = getopt(argc, argv, "bc:d:fFhijmnNopq:rsuUvw")) != -1) {
		switch (c) {
		case 'c':
			o->config_dir = optarg;
			break;
		case 'd':
			postmap_set_mode(o, POSTMAP_DELETE, optarg);
			break;
		case 'i':
			postmap_set_mode(o, POSTMAP_INCR, NULL);
			break;
		case 'q':
			postmap_set_mode(o, POSTMAP_QUERY, optarg);
			break;
		case 's':
			postmap_set_mode(o, POSTMAP_SEQ, NULL);
			break;
		case 'u':
		case 'U':
			break; /* SMTPUTF8 switches: keys are bytes here */
		case 'v':
			msg_verbose++;
			break;
		case 'b':
		case 'F':
		case 'h':
		case 'j':
		case 'm':
			msg_fatal("option -%c is not supported", c);
		default:
			if (!map_tool_option(&o->table, c))
				postmap_usage();
		}
	}
	if (optind >= argc)
		postmap_usage();
	return optind;
}

/* postmap_lmdb_source: the source path of an lmdb-family table, or fatal. */
static const char *postmap_lmdb_source(const char *name)
{
	const char *source = maps_name_lmdb(name);

	if (source == NULL)
		msg_fatal("table %s: cannot build or change this type (only lmdb:, hash:, btree:)",
			  name);
	if (*source == '\0')
		msg_fatal("table %s: missing file name", name);
	return source;
}

/* postmap_db_path: file.lmdb for source file. */
static char *postmap_db_path(const char *source)
{
	struct str db = STR_INIT;
	str_printf(&db, "%s%s", source, DICT_LMDB_SUFFIX);
	return str_steal(&db);
}

/* postmap_build: compile a source file into its .lmdb (default mode). */
static void postmap_build(const struct postmap_opts *o, const char *name)
{
	map_tool_build_file(&o->table, postmap_lmdb_source(name));
}

/* postmap_slurp: all of standard input, so that a restart can replay it. */
static void postmap_slurp(struct str *in)
{
	char buf[8192];
	size_t n;

	while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0) {
		if (in->len + n > POSTMAP_STDIN_MAX)
			msg_fatal("stdin: more than %zu bytes", POSTMAP_STDIN_MAX);
		str_append_n(in, buf, n);
	}
	if (ferror(stdin))
		msg_fatal("read stdin: %m");
}

/* postmap_incr: -i: add entries from standard input. */
static void postmap_incr(const struct postmap_opts *o, const char *name, const struct str *in)
{
	char *db = postmap_db_path(postmap_lmdb_source(name));
	/* fmemopen() refuses zero bytes. */
	FILE *fp = in->len > 0 ? fmemopen(in->data, in->len, "r") : fopen("/dev/null", "re");
	if (fp == NULL)
		msg_fatal("open stdin buffer: %m");
	map_tool_build_stream(&o->table, db, DICT_LMDB_WRITER_UPDATE, 0644, fp, in->len, "stdin");
	fclose(fp);
	free(db);
}

/* postmap_read_keys: "-" as a key: one key per line of standard input. */
static char **postmap_read_keys(const struct postmap_opts *o, const char *key, size_t *count_r)
{
	struct str in = STR_INIT;
	char **keys;
	size_t n = 0, cap = 16;

	keys = xcalloc(cap, sizeof(*keys));
	if (strcmp(key, "-") != 0) {
		keys[n++] = xstrdup(key);
	} else {
		postmap_slurp(&in);
		str_append(&in, ""); /* in.data is not NULL from here on */
		for (char *line = in.data, *next; *line != '\0'; line = next) {
			next = line + strcspn(line, "\n");
			if (*next != '\0')
				*next++ = '\0';
			if (n + 1 >= cap) {
				cap *= 2;
				keys = xreallocarray(keys, cap, sizeof(*keys));
			}
			keys[n++] = xstrdup(line);
		}
		str_deinit(&in);
	}
	for (size_t i = 0; i < n && o->table.fold; i++)
		maps_fold(keys[i]);
	keys[n] = NULL;
	*count_r = n;
	return keys;
}

/* postmap_delete_all: delete keys from one table; true if any was there. */
static bool postmap_delete_all(const struct postmap_opts *o, const char *name, char **keys)
{
	const char *source = postmap_lmdb_source(name), *error = NULL;
	char *db = postmap_db_path(source);
	struct dict_lmdb_writer *w;
	bool found;
	int ret;

	w = dict_lmdb_writer_create(db, DICT_LMDB_WRITER_UPDATE | DICT_LMDB_WRITER_MUST_EXIST,
				    0644, &error);
	if (w == NULL)
		msg_fatal("%s", error);
	do {
		found = false;
		if ((ret = dict_lmdb_writer_start(w, 0, &error)) < 0)
			break;
		for (char **k = keys; *k != NULL && ret >= 0; k++) {
			ret = dict_lmdb_writer_delete(w, *k, &error);
			found |= ret > 0;
		}
		/* Nothing deleted: leave the file as it is. */
		if (ret >= 0 && found)
			ret = dict_lmdb_writer_commit(w, &error);
	} while (ret == DICT_LMDB_RESTART);
	if (ret < 0)
		msg_fatal("table %s: delete error: %s", name, error);
	dict_lmdb_writer_free(&w);
	free(db);
	return found;
}

/* postmap_dispatch: run the mode over the tables; returns the exit status. */
static int postmap_dispatch(const struct postmap_opts *o, char **names, int count)
{
	struct str in = STR_INIT;
	bool found = false;

	switch (o->mode) {
	case POSTMAP_BUILD:
		for (int i = 0; i < count; i++)
			postmap_build(o, names[i]);
		return 0;
	case POSTMAP_INCR:
		postmap_slurp(&in);
		for (int i = 0; i < count; i++)
			postmap_incr(o, names[i], &in);
		str_deinit(&in);
		return 0;
	case POSTMAP_QUERY:
		return map_tool_query(names, count, o->table.fold, o->key, "\t") ? 0 : 1;
	case POSTMAP_DELETE: {
		size_t nkeys;
		char **keys = postmap_read_keys(o, o->key, &nkeys);
		for (int i = 0; i < count; i++)
			found |= nkeys > 0 && postmap_delete_all(o, names[i], keys);
		for (size_t k = 0; k < nkeys; k++)
			free(keys[k]);
		free(keys);
		return found ? 0 : 1;
	}
	case POSTMAP_SEQ:
		map_tool_list(names[0], o->table.fold, "\t");
		return 0;
	}
	msg_panic("postmap_dispatch: bad mode %d", (int)o->mode);
}

int main(int argc, char **argv)
{
	struct postmap_opts o = { .table = MAP_TOOL_OPTS_INIT };
	int first, count, status;
	char **names;

	umask(022);
	msg_init("postmap");
	msg_set_target(MSG_TARGET_TTY);
	first = postmap_options(argc, argv, &o);
	o.table.become = privs_run_as;
	o.default_type = map_tool_config(o.config_dir);
	count = argc - first;
	names = xcalloc((size_t)count + 1, sizeof(*names));
	for (int i = 0; i < count; i++)
		names[i] = map_tool_full_name(o.default_type, argv[first + i]);
	status = postmap_dispatch(&o, names, count);
	map_tool_flush();
	for (int i = 0; i < count; i++)
		free(names[i]);
	free(names);
	config_deinit();
	return status;
}
