/* map_tool.h: what postmap(1) and postalias(1) share: the switches that
 * shape a table, compiling a text table into its .lmdb, queries (-q) and
 * listings (-s), and the main.cf set-up. Errors are fatal: these serve
 * command-line tools.
 *
 * A build reads the source file (postmap's "key value" format, or the
 * aliases(5) format), writes source.lmdb through dict_lmdb's writer
 * (file.lmdb.tmp, synced, renamed over), and replays the input when the
 * map outgrows its first size. Of duplicate keys the first wins with a
 * warning ("file, line N: duplicate entry"), or silently, or the last
 * wins. An alias database also gets "@" -> "@" (sendmail's "database
 * complete" mark, as Postfix writes it).
 *
 * Output of -q - and -s is "key<sep>value" per line: postmap's sep is a
 * TAB, postalias's ":" and a TAB, as in Postfix. */
#ifndef PETREL_MAP_TOOL_H
#define PETREL_MAP_TOOL_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

enum map_tool_dup {
	MAP_TOOL_DUP_WARN,
	MAP_TOOL_DUP_IGNORE,
	MAP_TOOL_DUP_REPLACE,
};

struct map_tool_opts {
	bool aliases;	/* the aliases(5) format and the "@" mark */
	bool fold;	/* keys to lower case */
	bool nul;	/* keys and values stored with a trailing NUL */
	bool as_owner;	/* run as root: work as the source file's owner */
	bool save_perm; /* the .lmdb gets no group/other read the source lacks */
	enum map_tool_dup dup;
	/* become: switch to (uid, gid) (privs_run_as), or NULL. */
	void (*become)(uid_t uid, gid_t gid);
};

/* The shaping defaults: fold, NUL, as owner, keep permissions, warn. */
#define MAP_TOOL_OPTS_INIT { .fold = true, .nul = true, .as_owner = true, .save_perm = true }

/* map_tool_option: apply one of the shared switches -f -n -N -o -p -r -w
 * (getopt's c); false when c is not one of them. */
bool map_tool_option(struct map_tool_opts *o, int c);

/* map_tool_build_file: compile source (a path) into source.lmdb; fatal on
 * error. Run as root with as_owner, the work is done with the source
 * file's owner's IDs (back to root first for the next file). */
void map_tool_build_file(const struct map_tool_opts *o, const char *source);

/* map_tool_build_stream: the entries of fp (source names it in messages)
 * into the table db, made with dict_lmdb_writer_create(db, flags, mode,
 * ...) (DICT_LMDB_WRITER_NUL is added when o->nul); fatal on error. */
void map_tool_build_stream(const struct map_tool_opts *o, const char *db, unsigned flags,
			   mode_t mode, FILE *fp, size_t size_hint, const char *source);

/* map_tool_query: -q key: print the value from the first of names[0..count)
 * that has key; with key "-", "key<sep>value" for each line of standard
 * input found. Tables are opened as needed. True when anything was found. */
bool map_tool_query(char **names, int count, bool fold, const char *key, const char *sep);
/* map_tool_list: -s: "key<sep>value" for every entry of the table name. */
void map_tool_list(const char *name, bool fold, const char *sep);
/* map_tool_flush: standard output written out, or fatal. */
void map_tool_flush(void);

/* map_tool_config: load main.cf from dir (NULL: $MAIL_CONFIG, else the
 * compiled-in directory, where a missing main.cf means the defaults; an
 * explicit directory must have one) and return default_database_type
 * ("lmdb" when empty), valid until the next call. */
const char *map_tool_config(const char *dir);

/* map_tool_full_name: "type:name" for arg, with default_type for a bare
 * name ("/a:b/file" is a bare path whose directory has a colon). */
char *map_tool_full_name(const char *default_type, const char *arg);

#endif
