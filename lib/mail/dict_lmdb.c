/* dict_lmdb.c: read-only LMDB tables shared per process, reopened when
 * replaced, and the writer that builds a new file beside the old one and
 * renames it into place; see dict_lmdb.h for the format and the rules. */
#include <config.h> /* autoconf; "config.h" here would be mail/config.h */

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/dict_lmdb.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

/* A writer starts with a map of at least this size, grows it by doubling
 * on MDB_MAP_FULL, and gives up beyond the maximum. */
#define DICT_LMDB_MAP_MIN ((size_t)1 << 20)
#define DICT_LMDB_MAP_MAX ((size_t)1 << 40)
/* Records per write transaction while building. */
#define DICT_LMDB_BATCH 10000
/* Attempts to lock a temp file that other writers keep renaming away. */
#define DICT_LMDB_LOCK_TRIES 100

/* Which key form a file uses: learned from the first hit, as Postfix does. */
enum dict_lmdb_form {
	DICT_LMDB_FORM_UNKNOWN,
	DICT_LMDB_FORM_NUL,
	DICT_LMDB_FORM_PLAIN,
};

/* What identifies one version of a database file. */
struct dict_lmdb_stamp {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

/* One open version of the file. */
struct dict_lmdb_env {
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn; /* reset between lookups; renewed by each */
	struct dict_lmdb_stamp stamp;
	enum dict_lmdb_form form;
	size_t file_size; /* no key or value can be longer */
};

struct dict_lmdb {
	struct dict_lmdb *next;
	unsigned int refcount;
	char *path;
	struct dict_lmdb_env e;
	pid_t pid;
	time_t next_check;
	/* the last check failed: lookups fail until a check succeeds */
	bool broken;
	bool stale_reported; /* replaced while out of reach; said so once */
	struct str broken_error;
};

struct dict_lmdb_writer {
	char *path;
	char *tmp_path;
	unsigned int flags;
	mode_t mode;
	bool set_owner;
	uid_t uid;
	gid_t gid;
	bool exists; /* path existed when the lock was taken */
	off_t old_size;
	int fd; /* the temp file, flock()ed */
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn;
	size_t mapsize;
	bool full; /* the last attempt ran out of map */
	unsigned int pending;
	bool committed;
};

static struct dict_lmdb *dict_lmdb_list;
static unsigned int dict_lmdb_interval = 1;
static struct str dict_lmdb_error_buf;

static const char *dict_lmdb_err(const char *fmt, ...) ATTR_FORMAT(1, 2);

/* dict_lmdb_err: format the module's current error text. */
static const char *dict_lmdb_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *text = str_set_vprintf(&dict_lmdb_error_buf, fmt, ap);
	va_end(ap);
	return text;
}

static void (*dict_lmdb_stale_hook)(const char *path);

void dict_lmdb_set_stale_hook(void (*hook)(const char *path))
{
	dict_lmdb_stale_hook = hook;
}

void dict_lmdb_set_check_interval(unsigned int seconds)
{
	dict_lmdb_interval = seconds;
}

size_t dict_lmdb_max_key(void)
{
	static size_t max;
	MDB_env *env;

	if (max == 0) {
		if (mdb_env_create(&env) != 0)
			msg_fatal("mdb_env_create failed");
		max = (size_t)mdb_env_get_maxkeysize(env);
		mdb_env_close(env);
	}
	return max;
}

const char *dict_lmdb_path(const struct dict_lmdb *dict)
{
	return dict->path;
}

/* dict_lmdb_stamp_of: the identity of a stat()ed file. */
static void dict_lmdb_stamp_of(const struct stat *st, struct dict_lmdb_stamp *stamp)
{
	stamp->dev = st->st_dev;
	stamp->ino = st->st_ino;
	stamp->size = st->st_size;
	stamp->mtime = st->st_mtim;
}

/* dict_lmdb_stamp_eq: the same version of the same file. */
static bool dict_lmdb_stamp_eq(const struct dict_lmdb_stamp *a, const struct dict_lmdb_stamp *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* dict_lmdb_env_close: close one version (and its reset transaction). */
static void dict_lmdb_env_close(struct dict_lmdb_env *e)
{
	if (e->txn != NULL)
		mdb_txn_abort(e->txn);
	if (e->env != NULL)
		mdb_env_close(e->env);
	memset(e, 0, sizeof(*e));
}

/* dict_lmdb_env_verify: after open, check that the file holds every page
 * its meta page claims, so that a truncated file fails here instead of
 * raising SIGBUS at the first lookup; record the file's identity. */
static int dict_lmdb_env_verify(struct dict_lmdb_env *e, const char *path, const char **error_r)
{
	MDB_envinfo info;
	MDB_stat mst;
	struct stat st;
	int fd, rc;

	if ((rc = mdb_env_get_fd(e->env, &fd)) != 0 || fstat(fd, &st) < 0) {
		*error_r = dict_lmdb_err("fstat(%s) failed: %s", path,
					 rc != 0 ? mdb_strerror(rc) : strerror(errno));
		return -1;
	}
	if ((rc = mdb_env_info(e->env, &info)) != 0 || (rc = mdb_env_stat(e->env, &mst)) != 0) {
		*error_r = dict_lmdb_err("%s: %s", path, mdb_strerror(rc));
		return -1;
	}
	if (st.st_size < 0 || (unsigned long long)st.st_size <
				      ((unsigned long long)info.me_last_pgno + 1) * mst.ms_psize) {
		*error_r = dict_lmdb_err("%s: file is truncated (%lld bytes, %llu pages of %u)",
					 path, (long long)st.st_size,
					 (unsigned long long)info.me_last_pgno + 1, mst.ms_psize);
		return -1;
	}
	dict_lmdb_stamp_of(&st, &e->stamp);
	e->file_size = (size_t)st.st_size;
	return 0;
}

/* dict_lmdb_env_dbi: open the main database and keep a reset read
 * transaction for lookups to renew. */
static int dict_lmdb_env_dbi(struct dict_lmdb_env *e, const char *path, const char **error_r)
{
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn)) != 0) {
		*error_r = dict_lmdb_err("%s: %s", path, mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_dbi_open(txn, NULL, 0, &e->dbi)) != 0) {
		mdb_txn_abort(txn);
		*error_r = dict_lmdb_err("%s: %s", path, mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_txn_commit(txn)) != 0 ||
	    (rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &e->txn)) != 0) {
		*error_r = dict_lmdb_err("%s: %s", path, mdb_strerror(rc));
		return -1;
	}
	mdb_txn_reset(e->txn);
	return 0;
}

/* dict_lmdb_env_open: open the current version of path read-only. */
static int dict_lmdb_env_open(const char *path, struct dict_lmdb_env *e, const char **error_r)
{
	struct stat st;
	int rc, dead;

	memset(e, 0, sizeof(*e));
	if (stat(path, &st) < 0) {
		*error_r = dict_lmdb_err("open(%s) failed: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0) {
		*error_r = dict_lmdb_err("open(%s) failed: %s", path,
					 S_ISREG(st.st_mode) ? "empty file" : "not a regular file");
		return -1;
	}
	if ((rc = mdb_env_create(&e->env)) != 0) {
		*error_r = dict_lmdb_err("mdb_env_create failed: %s", mdb_strerror(rc));
		return -1;
	}
	/* Map only what the file holds (LMDB raises this to the size the
	 * meta page says is in use): the writer's map size is not our business. */
	(void)mdb_env_set_mapsize(e->env, (size_t)st.st_size);
	rc = mdb_env_open(e->env, path, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK, 0);
	if (rc != 0) {
		*error_r = dict_lmdb_err("open(%s) failed: %s", path, mdb_strerror(rc));
		dict_lmdb_env_close(e);
		return -1;
	}
	/* Rule 20: clear stale reader slots at open (none exist under NOLOCK). */
	(void)mdb_reader_check(e->env, &dead);
	if (dict_lmdb_env_verify(e, path, error_r) < 0 || dict_lmdb_env_dbi(e, path, error_r) < 0) {
		dict_lmdb_env_close(e);
		return -1;
	}
	return 0;
}

struct dict_lmdb *dict_lmdb_open(const char *db_path, const char **error_r)
{
	struct dict_lmdb *d;
	struct stat st;
	bool have_st = stat(db_path, &st) == 0;

	/* Share by name, or by inode when two names reach one file. */
	for (d = dict_lmdb_list; d != NULL; d = d->next) {
		if (strcmp(d->path, db_path) == 0 ||
		    (have_st && d->e.stamp.dev == st.st_dev && d->e.stamp.ino == st.st_ino)) {
			d->refcount++;
			return d;
		}
	}
	d = xcalloc(1, sizeof(*d));
	if (dict_lmdb_env_open(db_path, &d->e, error_r) < 0) {
		free(d);
		return NULL;
	}
	d->path = xstrdup(db_path);
	d->refcount = 1;
	d->pid = getpid();
	d->next_check = time(NULL) + dict_lmdb_interval;
	str_init(&d->broken_error);
	d->next = dict_lmdb_list;
	dict_lmdb_list = d;
	return d;
}

void dict_lmdb_close(struct dict_lmdb **dict)
{
	struct dict_lmdb *d = *dict, **pp;

	if (d == NULL)
		return;
	*dict = NULL;
	if (--d->refcount > 0)
		return;
	for (pp = &dict_lmdb_list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	}
	dict_lmdb_env_close(&d->e);
	str_deinit(&d->broken_error);
	free(d->path);
	free(d);
}

/* dict_lmdb_set_broken: remember why the current file cannot be used. */
static int dict_lmdb_set_broken(struct dict_lmdb *d, const char *error, const char **error_r)
{
	d->broken = true;
	str_set(&d->broken_error, error); /* error may be the module buffer */
	*error_r = dict_lmdb_err("%s", str_c(&d->broken_error));
	return -1;
}

/* dict_lmdb_unreachable: the path cannot be seen (a chrooted daemon opened
 * the file before its chroot). The open file is still good unless it was
 * replaced (no links left): then, as Postfix does, keep answering from it
 * and ask the process to make way for a fresh one that opens the new file. */
static bool dict_lmdb_unreachable(struct dict_lmdb *d)
{
	struct stat st;
	int fd;
	if (mdb_env_get_fd(d->e.env, &fd) != 0 || fstat(fd, &st) < 0)
		return false;
	if (st.st_nlink == 0 && !d->stale_reported) {
		d->stale_reported = true;
		msg_info("table %s has changed -- restarting", d->path);
		if (dict_lmdb_stale_hook != NULL)
			dict_lmdb_stale_hook(d->path);
	}
	return true;
}

/* dict_lmdb_check: at most once per interval, stat the path and reopen when
 * the file was replaced (or when this is a forked child). */
static int dict_lmdb_check(struct dict_lmdb *d, bool force, const char **error_r)
{
	struct dict_lmdb_env fresh;
	struct dict_lmdb_stamp now_stamp;
	struct stat st;
	time_t now = time(NULL);

	if (!force && now < d->next_check) {
		if (d->broken) {
			*error_r = dict_lmdb_err("%s", str_c(&d->broken_error));
			return -1;
		}
		return 0;
	}
	d->next_check = now + dict_lmdb_interval;
	if (stat(d->path, &st) < 0) {
		if (d->pid == getpid() && dict_lmdb_unreachable(d))
			return 0;
		return dict_lmdb_set_broken(
			d, dict_lmdb_err("open(%s) failed: %s", d->path, strerror(errno)), error_r);
	}
	dict_lmdb_stamp_of(&st, &now_stamp);
	if (!force && d->pid == getpid() && dict_lmdb_stamp_eq(&now_stamp, &d->e.stamp)) {
		d->broken = false;
		return 0;
	}
	if (dict_lmdb_env_open(d->path, &fresh, error_r) < 0)
		return dict_lmdb_set_broken(d, *error_r, error_r);
	msg_debug("%s: file changed, reopened", d->path);
	dict_lmdb_env_close(&d->e);
	d->e = fresh;
	d->pid = getpid();
	d->broken = false;
	return 0;
}

/* dict_lmdb_begin: a current file and a renewed read transaction. */
static int dict_lmdb_begin(struct dict_lmdb *d, const char **error_r)
{
	int rc;

	if (dict_lmdb_check(d, false, error_r) < 0)
		return -1;
	rc = mdb_txn_renew(d->e.txn);
	if (rc == MDB_MAP_RESIZED) {
		/* Grown in place by some other program: map it again. */
		if (dict_lmdb_check(d, true, error_r) < 0)
			return -1;
		rc = mdb_txn_renew(d->e.txn);
	}
	if (rc != 0) {
		*error_r = dict_lmdb_err("%s: %s", d->path, mdb_strerror(rc));
		return -1;
	}
	return 0;
}

/* dict_lmdb_decode: a stored key or value as a C string: one trailing NUL
 * is dropped, any other NUL means the record is damaged. */
static int dict_lmdb_decode(const struct dict_lmdb *d, const MDB_val *val, struct str *out,
			    const char **error_r)
{
	size_t len = val->mv_size;
	const char *p = val->mv_data;

	/* LMDB trusts its file (see dict_lmdb.h); a length beyond the file
	 * at least is caught before it is read. */
	if (len > d->e.file_size) {
		*error_r = dict_lmdb_err("%s: damaged record (%zu bytes)", d->path, len);
		return -1;
	}
	if (len > 0 && p[len - 1] == '\0')
		len--;
	if (len > 0 && memchr(p, '\0', len) != NULL) {
		*error_r = dict_lmdb_err("%s: damaged record (embedded NUL byte)", d->path);
		return -1;
	}
	str_clear(out);
	str_append_n(out, p, len);
	return 0;
}

/* dict_lmdb_get: try the key with and without its NUL, as the file's form
 * allows; learn the form from the first hit. */
static int dict_lmdb_get(struct dict_lmdb *d, const char *key, struct str *value,
			 const char **error_r)
{
	static const enum dict_lmdb_form forms[] = { DICT_LMDB_FORM_NUL, DICT_LMDB_FORM_PLAIN };
	size_t len = strlen(key);

	for (size_t i = 0; i < N_ELEMENTS(forms); i++) {
		if (d->e.form != DICT_LMDB_FORM_UNKNOWN && d->e.form != forms[i])
			continue;
		MDB_val k = { len + (forms[i] == DICT_LMDB_FORM_NUL ? 1 : 0), (void *)key };
		MDB_val v;
		if (k.mv_size == 0 || k.mv_size > dict_lmdb_max_key())
			continue;
		int rc = mdb_get(d->e.txn, d->e.dbi, &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0) {
			*error_r = dict_lmdb_err("%s: lookup failed: %s", d->path, mdb_strerror(rc));
			return -1;
		}
		d->e.form = forms[i];
		return dict_lmdb_decode(d, &v, value, error_r) < 0 ? -1 : 1;
	}
	return 0;
}

int dict_lmdb_lookup(struct dict_lmdb *dict, const char *key, struct str *value,
		     const char **error_r)
{
	if (dict_lmdb_begin(dict, error_r) < 0)
		return -1;
	int ret = dict_lmdb_get(dict, key, value, error_r);
	/* Never keep a snapshot between lookups (rule 20). */
	mdb_txn_reset(dict->e.txn);
	return ret;
}

/* dict_lmdb_raw_fn: one record, as stored. */
typedef int dict_lmdb_raw_fn(const MDB_val *key, const MDB_val *value, void *ctx);

/* dict_lmdb_walk_raw: every record in key order, in one read transaction. */
static int dict_lmdb_walk_raw(struct dict_lmdb *d, dict_lmdb_raw_fn *fn, void *ctx,
			      const char **error_r)
{
	MDB_cursor *cursor;
	MDB_val k, v;
	int rc, ret = 0;

	if (dict_lmdb_begin(d, error_r) < 0)
		return -1;
	if ((rc = mdb_cursor_open(d->e.txn, d->e.dbi, &cursor)) != 0) {
		mdb_txn_reset(d->e.txn);
		*error_r = dict_lmdb_err("%s: %s", d->path, mdb_strerror(rc));
		return -1;
	}
	while ((rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) == 0) {
		if ((ret = fn(&k, &v, ctx)) != 0)
			break;
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		*error_r = dict_lmdb_err("%s: sequence error: %s", d->path, mdb_strerror(rc));
		ret = -1;
	}
	mdb_cursor_close(cursor);
	mdb_txn_reset(d->e.txn);
	return ret;
}

struct dict_lmdb_walk_ctx {
	struct dict_lmdb *dict;
	dict_lmdb_walk_fn *fn;
	void *ctx;
	struct str key, value;
	const char *error;
};

/* dict_lmdb_walk_one: decode one record and hand it on. */
static int dict_lmdb_walk_one(const MDB_val *key, const MDB_val *value, void *context)
{
	struct dict_lmdb_walk_ctx *w = context;

	if (dict_lmdb_decode(w->dict, key, &w->key, &w->error) < 0 ||
	    dict_lmdb_decode(w->dict, value, &w->value, &w->error) < 0)
		return -1;
	return w->fn(str_c(&w->key), str_c(&w->value), w->ctx);
}

int dict_lmdb_walk(struct dict_lmdb *dict, dict_lmdb_walk_fn *fn, void *ctx, const char **error_r)
{
	struct dict_lmdb_walk_ctx w = { dict, fn, ctx, STR_INIT, STR_INIT, NULL };

	int ret = dict_lmdb_walk_raw(dict, dict_lmdb_walk_one, &w, error_r);
	if (ret == -1 && w.error != NULL)
		*error_r = w.error;
	str_deinit(&w.key);
	str_deinit(&w.value);
	return ret;
}

/* ---- writer ---- */

/* dict_lmdb_writer_lock: open and flock() path.tmp, making sure the file we
 * locked is still the one at that name (a writer that held the lock before
 * renamed it away). */
static int dict_lmdb_writer_lock(struct dict_lmdb_writer *w, const char **error_r)
{
	struct stat fst, pst;

	for (int tries = 0; tries < DICT_LMDB_LOCK_TRIES; tries++) {
		int fd = open(w->tmp_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			*error_r = dict_lmdb_err("open(%s) failed: %s", w->tmp_path, strerror(errno));
			return -1;
		}
		while (flock(fd, LOCK_EX) < 0) {
			if (errno != EINTR) {
				*error_r = dict_lmdb_err("flock(%s) failed: %s", w->tmp_path,
							 strerror(errno));
				close(fd);
				return -1;
			}
		}
		if (fstat(fd, &fst) == 0 && lstat(w->tmp_path, &pst) == 0 &&
		    fst.st_dev == pst.st_dev && fst.st_ino == pst.st_ino) {
			/* Refuse to truncate a file that is linked elsewhere, or
			 * to publish one that somebody else prepared. */
			if (!S_ISREG(fst.st_mode) || fst.st_nlink != 1 ||
			    fst.st_uid != geteuid()) {
				*error_r = dict_lmdb_err("%s: not a regular file with one link "
							 "owned by uid %lu; remove it",
							 w->tmp_path, (unsigned long)geteuid());
				close(fd);
				return -1;
			}
			w->fd = fd;
			return 0;
		}
		close(fd);
	}
	*error_r = dict_lmdb_err("%s: could not lock, too much contention", w->tmp_path);
	return -1;
}

struct dict_lmdb_writer *dict_lmdb_writer_create(const char *db_path, unsigned int flags,
						 mode_t mode, const char **error_r)
{
	struct dict_lmdb_writer *w = xcalloc(1, sizeof(*w));
	struct str tmp = STR_INIT;
	struct stat st;

	w->path = xstrdup(db_path);
	str_printf(&tmp, "%s.tmp", db_path);
	w->tmp_path = str_steal(&tmp);
	w->flags = flags;
	w->mode = mode & 07777;
	w->fd = -1;
	if (dict_lmdb_writer_lock(w, error_r) < 0) {
		dict_lmdb_writer_free(&w);
		return NULL;
	}
	if (stat(db_path, &st) == 0) {
		w->exists = true;
		w->old_size = st.st_size;
		if ((flags & DICT_LMDB_WRITER_UPDATE) != 0) {
			/* An update keeps the file's permissions and owner. */
			w->mode = st.st_mode & 07777;
			w->set_owner = geteuid() == 0;
			w->uid = st.st_uid;
			w->gid = st.st_gid;
		}
	} else if (errno != ENOENT || (flags & DICT_LMDB_WRITER_MUST_EXIST) != 0) {
		*error_r = dict_lmdb_err("open(%s) failed: %s", db_path, strerror(errno));
		dict_lmdb_writer_free(&w);
		return NULL;
	}
	return w;
}

/* dict_lmdb_writer_close_env: drop the current attempt's environment. */
static void dict_lmdb_writer_close_env(struct dict_lmdb_writer *w)
{
	if (w->txn != NULL)
		mdb_txn_abort(w->txn);
	w->txn = NULL;
	if (w->env != NULL)
		mdb_env_close(w->env);
	w->env = NULL;
}

/* dict_lmdb_writer_rc: turn an LMDB failure into -1 or RESTART. */
static int dict_lmdb_writer_rc(struct dict_lmdb_writer *w, int rc, const char *what,
			       const char **error_r)
{
	if (rc == MDB_MAP_FULL) {
		dict_lmdb_writer_close_env(w);
		w->full = true;
		*error_r = dict_lmdb_err("%s: map full", w->tmp_path);
		return DICT_LMDB_RESTART;
	}
	*error_r = dict_lmdb_err("%s: %s failed: %s", w->tmp_path, what, mdb_strerror(rc));
	return -1;
}

/* dict_lmdb_writer_batch: count one change; commit every BATCH changes so
 * that no transaction gets large. */
static int dict_lmdb_writer_batch(struct dict_lmdb_writer *w, const char **error_r)
{
	int rc;

	if (++w->pending < DICT_LMDB_BATCH)
		return 0;
	w->pending = 0;
	rc = mdb_txn_commit(w->txn);
	w->txn = NULL;
	if (rc == 0)
		rc = mdb_txn_begin(w->env, NULL, 0, &w->txn);
	return rc == 0 ? 0 : dict_lmdb_writer_rc(w, rc, "commit", error_r);
}

/* dict_lmdb_writer_copy_one: append one record of the old file. */
static int dict_lmdb_writer_copy_one(const MDB_val *key, const MDB_val *value, void *ctx)
{
	struct dict_lmdb_writer *w = ctx;
	MDB_val k = *key, v = *value;
	const char *error;
	int rc;

	if ((rc = mdb_put(w->txn, w->dbi, &k, &v, MDB_APPEND)) != 0)
		return dict_lmdb_writer_rc(w, rc, "copy", &error);
	return dict_lmdb_writer_batch(w, &error);
}

/* dict_lmdb_writer_copy: with UPDATE, start from the existing records. */
static int dict_lmdb_writer_copy(struct dict_lmdb_writer *w, const char **error_r)
{
	struct dict_lmdb *old;
	int ret;

	if ((w->flags & DICT_LMDB_WRITER_UPDATE) == 0 || !w->exists)
		return 0;
	if ((old = dict_lmdb_open(w->path, error_r)) == NULL)
		return -1;
	/* A shared handle may be up to an interval old: stat the file now. */
	old->next_check = 0;
	ret = dict_lmdb_walk_raw(old, dict_lmdb_writer_copy_one, w, error_r);
	dict_lmdb_close(&old);
	if (ret == DICT_LMDB_RESTART || w->full)
		return DICT_LMDB_RESTART;
	if (ret != 0) {
		/* Whoever failed left the text in the module buffer. */
		*error_r = str_c(&dict_lmdb_error_buf);
		return -1;
	}
	return 0;
}

/* dict_lmdb_writer_attempt: an empty temp database of the current size. */
static int dict_lmdb_writer_attempt(struct dict_lmdb_writer *w, const char **error_r)
{
	int rc;

	if (ftruncate(w->fd, 0) < 0) {
		*error_r = dict_lmdb_err("ftruncate(%s) failed: %s", w->tmp_path, strerror(errno));
		return -1;
	}
	w->pending = 0;
	w->full = false;
	if ((rc = mdb_env_create(&w->env)) != 0 ||
	    (rc = mdb_env_set_mapsize(w->env, w->mapsize)) != 0 ||
	    (rc = mdb_env_open(w->env, w->tmp_path, MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOSYNC,
			       0600)) != 0 ||
	    (rc = mdb_txn_begin(w->env, NULL, 0, &w->txn)) != 0 ||
	    (rc = mdb_dbi_open(w->txn, NULL, 0, &w->dbi)) != 0) {
		*error_r = dict_lmdb_err("open(%s) failed: %s", w->tmp_path, mdb_strerror(rc));
		dict_lmdb_writer_close_env(w);
		return -1;
	}
	return dict_lmdb_writer_copy(w, error_r);
}

int dict_lmdb_writer_start(struct dict_lmdb_writer *w, size_t size_hint, const char **error_r)
{
	dict_lmdb_writer_close_env(w);
	if (w->mapsize == 0) {
		/* Generous: text grows by LMDB's per-record overhead and page
		 * slack; the file only takes the pages it uses. */
		size_t want = DICT_LMDB_MAP_MIN;
		if (size_hint < DICT_LMDB_MAP_MAX / 8)
			want += size_hint * 4;
		if ((unsigned long long)w->old_size < DICT_LMDB_MAP_MAX / 8)
			want += (size_t)w->old_size * 2;
		w->mapsize = (want + DICT_LMDB_MAP_MIN - 1) & ~(DICT_LMDB_MAP_MIN - 1);
	} else if (w->full) {
		w->mapsize *= 2;
	}
	for (;;) {
		if (w->mapsize > DICT_LMDB_MAP_MAX) {
			*error_r = dict_lmdb_err("%s: database would exceed %zu bytes", w->tmp_path,
						 (size_t)DICT_LMDB_MAP_MAX);
			return -1;
		}
		int ret = dict_lmdb_writer_attempt(w, error_r);
		if (ret != DICT_LMDB_RESTART)
			return ret;
		w->mapsize *= 2;
	}
}

/* dict_lmdb_writer_key: the key as stored; false when it cannot be. */
static bool dict_lmdb_writer_key(struct dict_lmdb_writer *w, const char *key, bool nul,
				 MDB_val *k, const char **error_r)
{
	k->mv_size = strlen(key) + (nul ? 1 : 0);
	k->mv_data = (void *)key;
	if (*key == '\0') {
		*error_r = dict_lmdb_err("%s: empty key", w->path);
		return false;
	}
	if (k->mv_size > dict_lmdb_max_key()) {
		*error_r = dict_lmdb_err("%s: key is longer than %zu bytes: \"%.40s...\"", w->path,
					 dict_lmdb_max_key() - (nul ? 1 : 0), key);
		return false;
	}
	return true;
}

int dict_lmdb_writer_put(struct dict_lmdb_writer *w, const char *key, const char *value,
			 bool replace, const char **error_r)
{
	bool nul = (w->flags & DICT_LMDB_WRITER_NUL) != 0;
	MDB_val k, v = { strlen(value) + (nul ? 1 : 0), (void *)value };
	int rc, ret = 1;

	if (w->txn == NULL)
		msg_panic("dict_lmdb_writer_put: no dict_lmdb_writer_start");
	if (!dict_lmdb_writer_key(w, key, nul, &k, error_r))
		return -1;
	rc = mdb_put(w->txn, w->dbi, &k, &v, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST) {
		ret = 0;
		v.mv_size = strlen(value) + (nul ? 1 : 0);
		v.mv_data = (void *)value;
		rc = replace ? mdb_put(w->txn, w->dbi, &k, &v, 0) : 0;
	}
	if (rc != 0)
		return dict_lmdb_writer_rc(w, rc, "put", error_r);
	rc = dict_lmdb_writer_batch(w, error_r);
	return rc < 0 ? rc : ret;
}

int dict_lmdb_writer_delete(struct dict_lmdb_writer *w, const char *key, const char **error_r)
{
	int ret = 0;

	if (w->txn == NULL)
		msg_panic("dict_lmdb_writer_delete: no dict_lmdb_writer_start");
	/* Delete both forms: a file may hold either. */
	for (int nul = 1; nul >= 0; nul--) {
		MDB_val k = { strlen(key) + (size_t)nul, (void *)key };
		if (k.mv_size == 0 || k.mv_size > dict_lmdb_max_key())
			continue;
		int rc = mdb_del(w->txn, w->dbi, &k, NULL);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0)
			return dict_lmdb_writer_rc(w, rc, "delete", error_r);
		ret = 1;
		if ((rc = dict_lmdb_writer_batch(w, error_r)) < 0)
			return rc;
	}
	return ret;
}

/* dict_lmdb_writer_fsync_dir: make the rename durable. */
static int dict_lmdb_writer_fsync_dir(struct dict_lmdb_writer *w, const char **error_r)
{
	const char *slash = strrchr(w->path, '/');
	char *dir = slash == NULL ? xstrdup(".")
				  : xstrndup(w->path, slash == w->path ? 1 : (size_t)(slash - w->path));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0 || fsync(fd) < 0) {
		*error_r = dict_lmdb_err("fsync(%s) failed: %s", dir, strerror(errno));
		ret = -1;
	}
	if (fd >= 0)
		close(fd);
	free(dir);
	return ret;
}

int dict_lmdb_writer_commit(struct dict_lmdb_writer *w, const char **error_r)
{
	int rc;

	if (w->txn == NULL)
		msg_panic("dict_lmdb_writer_commit: no dict_lmdb_writer_start");
	rc = mdb_txn_commit(w->txn);
	w->txn = NULL;
	if (rc != 0)
		return dict_lmdb_writer_rc(w, rc, "commit", error_r);
	/* MDB_NOSYNC during the build; one forced sync of the result. */
	if ((rc = mdb_env_sync(w->env, 1)) != 0)
		return dict_lmdb_writer_rc(w, rc, "sync", error_r);
	dict_lmdb_writer_close_env(w);
	if (fchmod(w->fd, w->mode) < 0 ||
	    (w->set_owner && fchown(w->fd, w->uid, w->gid) < 0) || fsync(w->fd) < 0) {
		*error_r = dict_lmdb_err("%s: chmod/chown/fsync failed: %s", w->tmp_path,
					 strerror(errno));
		return -1;
	}
	if (rename(w->tmp_path, w->path) < 0) {
		*error_r = dict_lmdb_err("rename(%s, %s) failed: %s", w->tmp_path, w->path,
					 strerror(errno));
		return -1;
	}
	w->committed = true;
	return dict_lmdb_writer_fsync_dir(w, error_r);
}

void dict_lmdb_writer_free(struct dict_lmdb_writer **writer)
{
	struct dict_lmdb_writer *w = *writer;

	if (w == NULL)
		return;
	*writer = NULL;
	dict_lmdb_writer_close_env(w);
	if (w->fd >= 0) {
		/* Still holding the lock, so the temp file is ours to remove. */
		if (!w->committed)
			(void)unlink(w->tmp_path);
		close(w->fd);
	}
	free(w->path);
	free(w->tmp_path);
	free(w);
}
