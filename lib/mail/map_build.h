/* map_build.h: compile a text table into its .lmdb, the way postmap(1)
 * and postalias(1) do, and the main.cf set-up both commands share.
 *
 * A build reads the source file (postmap's "key value" format, or the
 * aliases(5) format), writes source.lmdb through dict_lmdb's writer
 * (file.lmdb.tmp, synced, renamed over), and replays the input when the
 * map outgrows its first size. Of duplicate keys the first wins with a
 * warning ("file, line N: duplicate entry"), or silently, or the last
 * wins. An alias database also gets "@" -> "@" (sendmail's "database
 * complete" mark, as Postfix writes it). Errors are fatal: these are
 * command-line tools. */
#ifndef PETREL_MAP_BUILD_H
#define PETREL_MAP_BUILD_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

enum map_build_dup {
	MAP_BUILD_DUP_WARN,
	MAP_BUILD_DUP_IGNORE,
	MAP_BUILD_DUP_REPLACE,
};

struct map_build_opts {
	bool aliases;	/* the aliases(5) format and the "@" mark */
	bool fold;	/* keys to lower case */
	bool nul;	/* keys and values stored with a trailing NUL */
	bool as_owner;	/* run as root: work as the source file's owner */
	bool save_perm; /* the .lmdb gets no group/other read the source lacks */
	enum map_build_dup dup;
	/* become: switch to (uid, gid) (privs_run_as), or NULL. */
	void (*become)(uid_t uid, gid_t gid);
};

/* map_build_file: compile source (a path) into source.lmdb; fatal on
 * error. Run as root with as_owner, the work is done with the source
 * file's owner's IDs (back to root first for the next file). */
void map_build_file(const struct map_build_opts *o, const char *source);

/* map_build_stream: the entries of fp (source names it in messages) into
 * the table db, made with dict_lmdb_writer_create(db, flags, mode, ...)
 * (DICT_LMDB_WRITER_NUL is added when o->nul); fatal on error. */
void map_build_stream(const struct map_build_opts *o, const char *db, unsigned flags,
		      mode_t mode, FILE *fp, size_t size_hint, const char *source);

/* map_build_config: load main.cf from dir (NULL: $MAIL_CONFIG, else the
 * compiled-in directory, where a missing main.cf means the defaults; an
 * explicit directory must have one) and return default_database_type
 * ("lmdb" when empty), valid until the next call. */
const char *map_build_config(const char *dir);

/* map_build_full_name: "type:name" for arg, with default_type for a bare
 * name ("/a:b/file" is a bare path whose directory has a colon). */
char *map_build_full_name(const char *default_type, const char *arg);

#endif
