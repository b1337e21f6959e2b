/* dict_lmdb.h: the LMDB backend of lookup tables (lmdb:, hash:, btree:).
 *
 * ON-DISK FORMAT (version: LMDB 0.9 data file, Postfix-compatible layout)
 *	One LMDB environment per table in a single file, "PATH.lmdb"
 *	(MDB_NOSUBDIR), using the unnamed main database. Each record is
 *	key = the lookup key, value = the result. By default (postmap -N) both
 *	carry one trailing NUL byte, as Postfix's postmap writes them, so files
 *	built by either program can be read by the other; postmap -n stores
 *	them without it. Readers accept both forms and learn which one a file
 *	uses, as Postfix does. A value must hold no NUL other than that final
 *	one. Keys are at most dict_lmdb_max_key() bytes (511 with stock LMDB).
 *
 * CONCURRENCY
 *	A database file is never modified in place. A writer (postmap) builds
 *	"PATH.lmdb.tmp" - serialised with other writers by flock() on that temp
 *	file - fsyncs it, renames it over PATH.lmdb and fsyncs the directory.
 *	So an open file never changes under a reader, and readers open it with
 *	MDB_RDONLY|MDB_NOLOCK: no lock file, no reader table, nothing a reader
 *	needs to write (they may run unprivileged, in a chroot). A reader
 *	notices a replaced file by its inode, mtime and size (checked at most
 *	once per dict_lmdb_set_check_interval() seconds) and reopens it.
 *
 * PROCESS RULES (house rule 20)
 *	Open after fork+exec, never before a fork. One MDB_env per file per
 *	process: dict_lmdb_open() shares a handle between all users of the same
 *	path. A lookup begins (renews) a read transaction and resets it before
 *	returning, so none is held across an event-loop wait. mdb_reader_check()
 *	runs at every open (a no-op under MDB_NOLOCK, kept so the code stays
 *	right if the flags change). Not thread-safe: one thread per process.
 *
 * Errors are returned as -1 with *error_r pointing to text that stays valid
 * until the next call into this module. */
#ifndef PETREL_DICT_LMDB_H
#define PETREL_DICT_LMDB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/str.h"

/* The suffix of database files: "hash:/etc/postfix/virtual" is
 * /etc/postfix/virtual.lmdb. */
#define DICT_LMDB_SUFFIX ".lmdb"

struct dict_lmdb;

/* dict_lmdb_open: open (or share the already open handle of) the database
 * file db_path, read-only. Fails on a missing, empty, truncated or
 * non-LMDB file. */
struct dict_lmdb *dict_lmdb_open(const char *db_path, const char **error_r);
/* dict_lmdb_close: drop one reference; the last one closes the file. */
void dict_lmdb_close(struct dict_lmdb **dict);
const char *dict_lmdb_path(const struct dict_lmdb *dict);

/* dict_lmdb_lookup: the value stored under key (exactly as given, no case
 * folding) into *value. Returns 1 found, 0 not found, -1 error. */
int dict_lmdb_lookup(struct dict_lmdb *dict, const char *key, struct str *value,
		     const char **error_r);

/* dict_lmdb_walk: call fn for every record in key order, inside one read
 * transaction (for postmap -s; never across an event-loop wait). fn returns
 * 0 to go on or a positive value to stop the walk (then returned). Returns
 * 0 at the end, -1 on error. */
typedef int dict_lmdb_walk_fn(const char *key, const char *value, void *ctx);
int dict_lmdb_walk(struct dict_lmdb *dict, dict_lmdb_walk_fn *fn, void *ctx,
		   const char **error_r);

/* dict_lmdb_set_check_interval: how often (seconds) a lookup stats the file
 * to notice a replacement; 1 by default, 0 checks on every lookup (tests). */
void dict_lmdb_set_check_interval(unsigned int seconds);
/* dict_lmdb_set_stale_hook: called once per file that was replaced while
 * its path is out of reach (a chrooted daemon): the daemon should finish its
 * clients and exit so that a fresh process opens the new file. */
void dict_lmdb_set_stale_hook(void (*hook)(const char *path));
/* dict_lmdb_max_key: the longest key LMDB can store, in bytes. */
size_t dict_lmdb_max_key(void);

/* Writer: builds a new database file and renames it over db_path. */
struct dict_lmdb_writer;

enum dict_lmdb_writer_flags {
	/* store keys and values with a trailing NUL (postmap -N, default) */
	DICT_LMDB_WRITER_NUL = 1 << 0,
	/* start from the records of the existing db_path (postmap -i, -d) */
	DICT_LMDB_WRITER_UPDATE = 1 << 1,
	/* with UPDATE: fail when db_path does not exist (postmap -d) */
	DICT_LMDB_WRITER_MUST_EXIST = 1 << 2,
};

/* Results of put and delete besides 1/0/-1: the map filled up; call
 * dict_lmdb_writer_start() again (it doubles the size) and replay every
 * put and delete from the beginning. */
#define DICT_LMDB_RESTART (-2)

/* dict_lmdb_writer_create: take the writer lock (waits for another writer
 * of the same file). mode is the new file's permission bits; with UPDATE
 * and an existing file, that file's mode (and, as root, owner) are kept. */
struct dict_lmdb_writer *dict_lmdb_writer_create(const char *db_path, unsigned int flags,
						 mode_t mode, const char **error_r);
/* dict_lmdb_writer_start: (re)start the build: an empty temp database, or
 * a copy of the existing one with UPDATE. size_hint is the expected input
 * size in bytes (0 if unknown). Returns 0 or -1. */
int dict_lmdb_writer_start(struct dict_lmdb_writer *w, size_t size_hint, const char **error_r);
/* dict_lmdb_writer_put: store key -> value. When key exists: replace it if
 * replace, else keep the old value. Returns 1 when key was new, 0 when it
 * existed, -1 error, DICT_LMDB_RESTART. */
int dict_lmdb_writer_put(struct dict_lmdb_writer *w, const char *key, const char *value,
			 bool replace, const char **error_r);
/* dict_lmdb_writer_delete: returns 1 deleted, 0 absent, -1, DICT_LMDB_RESTART. */
int dict_lmdb_writer_delete(struct dict_lmdb_writer *w, const char *key, const char **error_r);
/* dict_lmdb_writer_commit: sync the temp file, rename it over db_path, sync
 * the directory. Returns 0 or -1 (the old file is then left alone). */
int dict_lmdb_writer_commit(struct dict_lmdb_writer *w, const char **error_r);
/* dict_lmdb_writer_free: release the lock; without a commit the temp file
 * is removed and db_path is untouched. */
void dict_lmdb_writer_free(struct dict_lmdb_writer **w);

#endif
