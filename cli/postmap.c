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
#include "mail/map_build.h"
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
	bool fold, nul, as_owner, save_perm;
	enum map_build_dup dup;
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
		case 'f':
			o->fold = false;
			break;
		case 'i':
			postmap_set_mode(o, POSTMAP_INCR, NULL);
			break;
		case 'n':
			o->nul = false;
			break;
		case 'N':
			o->nul = true;
			break;
		case 'o':
			o->as_owner = false;
			break;
		case 'p':
			o->save_perm = false;
			break;
		case 'q':
			postmap_set_mode(o, POSTMAP_QUERY, optarg);
			break;
		case 'r':
			o->dup = MAP_BUILD_DUP_REPLACE;
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
		case 'w':
			o->dup = MAP_BUILD_DUP_IGNORE;
			break;
		case 'b':
		case 'F':
		case 'h':
		case 'j':
		case 'm':
			msg_fatal("option -%c is not supported", c);
		default:
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

/* postmap_build_opts: what a build needs of the command line. */
static struct map_build_opts postmap_build_opts(const struct postmap_opts *o)
{
	struct map_build_opts b = { .fold = o->fold, .nul = o->nul, .as_owner = o->as_owner,
				    .save_perm = o->save_perm, .dup = o->dup,
				    .become = privs_run_as };
	return b;
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
	struct map_build_opts b = postmap_build_opts(o);
	map_build_file(&b, postmap_lmdb_source(name));
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
	struct map_build_opts b = postmap_build_opts(o);
	char *db = postmap_db_path(postmap_lmdb_source(name));
	/* fmemopen() refuses zero bytes. */
	FILE *fp = in->len > 0 ? fmemopen(in->data, in->len, "r") : fopen("/dev/null", "re");
	if (fp == NULL)
		msg_fatal("open stdin buffer: %m");
	map_build_stream(&b, db, DICT_LMDB_WRITER_UPDATE, 0644, fp, in->len, "stdin");
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
	for (size_t i = 0; i < n && o->fold; i++)
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

/* postmap_open: one table for -q and -s; fatal if it cannot be opened. */
static struct maps *postmap_open(const struct postmap_opts *o, const char *name)
{
	const char *names[] = { name, NULL }, *error;
	struct maps *maps = maps_create_flags(name, names, o->fold ? 0 : MAPS_FLAG_NO_FOLD, &error);

	if (maps == NULL)
		msg_fatal("%s", error);
	return maps;
}

/* postmap_query: -q key: print the first value found. */
static bool postmap_query(const struct postmap_opts *o, char **names, int count)
{
	const char *value, *error;

	for (int i = 0; i < count; i++) {
		struct maps *maps = postmap_open(o, names[i]);
		int ret = maps_lookup(maps, o->key, &value, &error);
		if (ret < 0)
			msg_fatal("table %s: query error: %s", names[i], error);
		if (ret > 0)
			printf("%s\n", value);
		maps_free(&maps);
		if (ret > 0)
			return true;
	}
	return false;
}

/* postmap_queries: -q -: "key<TAB>value" for each key on stdin found. */
static bool postmap_queries(const struct postmap_opts *o, char **names, int count)
{
	struct maps **maps = xcalloc((size_t)count, sizeof(*maps));
	const char *value, *error;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	bool found = false;

	while ((len = getline(&line, &cap, stdin)) >= 0) {
		if (len > 0 && line[len - 1] == '\n')
			line[len - 1] = '\0';
		for (int i = 0; i < count; i++) {
			if (maps[i] == NULL)
				maps[i] = postmap_open(o, names[i]);
			int ret = maps_lookup(maps[i], line, &value, &error);
			if (ret < 0)
				msg_fatal("table %s: query error: %s", names[i], error);
			if (ret > 0) {
				printf("%s\t%s\n", line, value);
				found = true;
				break;
			}
		}
	}
	if (ferror(stdin))
		msg_fatal("read stdin: %m");
	for (int i = 0; i < count; i++)
		maps_free(&maps[i]);
	free(maps);
	free(line);
	return found;
}

/* postmap_print: maps_walk() callback for -s. */
static int postmap_print(const char *key, const char *value, void *ctx)
{
	printf("%s\t%s\n", key, value);
	return 0;
}

/* postmap_seq: -s: every entry of the first table. */
static void postmap_seq(const struct postmap_opts *o, const char *name)
{
	struct maps *maps = postmap_open(o, name);
	const char *error;

	if (maps_walk(maps, postmap_print, NULL, &error) < 0)
		msg_fatal("table %s: sequence error: %s", name, error);
	maps_free(&maps);
}

/* postmap_flush: report a failed write to stdout as a failure. */
static void postmap_flush(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		msg_fatal("write error on stdout: %m");
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
		found = strcmp(o->key, "-") == 0 ? postmap_queries(o, names, count)
						 : postmap_query(o, names, count);
		return found ? 0 : 1;
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
		postmap_seq(o, names[0]);
		return 0;
	}
	msg_panic("postmap_dispatch: bad mode %d", (int)o->mode);
}

int main(int argc, char **argv)
{
	struct postmap_opts o = { .fold = true, .nul = true, .as_owner = true, .save_perm = true };
	int first, count, status;
	char **names;

	umask(022);
	msg_init("postmap");
	msg_set_target(MSG_TARGET_TTY);
	first = postmap_options(argc, argv, &o);
	o.default_type = map_build_config(o.config_dir);
	count = argc - first;
	names = xcalloc((size_t)count + 1, sizeof(*names));
	for (int i = 0; i < count; i++)
		names[i] = map_build_full_name(o.default_type, argv[first + i]);
	status = postmap_dispatch(&o, names, count);
	postmap_flush();
	for (int i = 0; i < count; i++)
		free(names[i]);
	free(names);
	config_deinit();
	return status;
}
