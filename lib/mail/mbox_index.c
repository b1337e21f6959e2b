/* mbox_index.c: the per-user LMDB mailbox index; see mbox_index.h.
 *
 * One unnamed LMDB database; keys are prefixed by type (folder names
 * never hold NUL; numbers are big-endian so UID order is key order):
 *
 *     "V"                          -> "1"  (this layout's version)
 *     "F" folder                   -> uidvalidity:4 uidnext:4 modseq:8 guid:32
 *     "U" folder NUL uid:4         -> flags:4 keywords:4 modseq:8 basename
 *     "N" folder NUL basename      -> uid:4
 *     "K" folder NUL index:1       -> keyword name
 *     "D" folder NUL delivery-id   -> time:8 file name   (exactly once)
 *     "E" folder NUL time:8 id     -> ""  (the D records in time order)
 *
 * A value that is shorter than its fixed part is damage: the call fails
 * and the caller may remove the file (it is rebuilt). */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/maildir.h"
#include "mail/mbox_index.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

#define MBOX_INDEX_VERSION "1"
#define MBOX_INDEX_MAPSIZE ((size_t)1 << 30)
#define MBOX_INDEX_FILES_MAX 10000000 /* messages per folder scanned */
#define UIDLIST "dovecot-uidlist"
#define KEYWORDS "dovecot-keywords"

struct mbox_index {
	char *root;
	char *path;
	MDB_env *env;
	MDB_dbi dbi;
	struct str buf;	  /* returned base names and keyword names */
	struct str error; /* last error */
};

static const char mbox_flag_letters[] = "DFPRST";

/* ix_fail: format the index's last error; returns its text. */
static const char *ix_fail(struct mbox_index *ix, const char *fmt, ...) ATTR_FORMAT(2, 3);
static const char *ix_fail(struct mbox_index *ix, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *text = str_set_vprintf(&ix->error, fmt, ap);
	va_end(ap);
	return text;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* key_make: type letter, folder, and for all but 'F' a NUL and tail. */
static void key_make(struct str *key, char type, const char *folder, const void *tail, size_t len)
{
	str_clear(key);
	str_append_c(key, type);
	str_append(key, folder);
	if (type != 'F') {
		str_append_c(key, '\0');
		str_append_n(key, tail, len);
	}
}

static MDB_val val_of(const struct str *s)
{
	MDB_val v = { s->len, s->data };
	return v;
}

/* ix_open_env: create and open the environment; an LMDB error code. */
static int ix_open_env(struct mbox_index *ix)
{
	int rc = mdb_env_create(&ix->env);
	if (rc == 0)
		rc = mdb_env_set_mapsize(ix->env, MBOX_INDEX_MAPSIZE);
	if (rc == 0)
		rc = mdb_env_open(ix->env, ix->path, MDB_NOSUBDIR | MDB_NOMETASYNC, 0600);
	if (rc != 0) {
		mdb_env_close(ix->env);
		ix->env = NULL;
		return rc;
	}
	int dead = 0;
	mdb_reader_check(ix->env, &dead);
	return 0;
}

/* ix_check_version: open the dbi; an unknown layout is emptied (it is
 * only a cache: sync rebuilds it). */
static int ix_check_version(struct mbox_index *ix)
{
	MDB_txn *txn;
	MDB_val vk = { 1, (void *)"V" }, vv;
	/* The usual case, on every open (each delivery): a read, no writer
	 * lock. The main database's handle stays valid after the abort. */
	int rc = mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return rc;
	bool current = mdb_dbi_open(txn, NULL, 0, &ix->dbi) == 0 &&
		       mdb_get(txn, ix->dbi, &vk, &vv) == 0 && vv.mv_size == 1 &&
		       memcmp(vv.mv_data, MBOX_INDEX_VERSION, 1) == 0;
	mdb_txn_abort(txn);
	if (current)
		return 0;
	rc = mdb_txn_begin(ix->env, NULL, 0, &txn);
	if (rc != 0)
		return rc;
	rc = mdb_dbi_open(txn, NULL, 0, &ix->dbi);
	MDB_val k = { 1, (void *)"V" }, v;
	if (rc == 0) {
		rc = mdb_get(txn, ix->dbi, &k, &v);
		if (rc == 0 && v.mv_size == 1 && memcmp(v.mv_data, MBOX_INDEX_VERSION, 1) == 0) {
			mdb_txn_abort(txn);
			return 0;
		}
		if (rc == 0 || rc == MDB_NOTFOUND)
			rc = mdb_drop(txn, ix->dbi, 0);
	}
	if (rc == 0) {
		v.mv_size = 1;
		v.mv_data = (void *)MBOX_INDEX_VERSION;
		rc = mdb_put(txn, ix->dbi, &k, &v, 0);
	}
	if (rc == 0)
		return mdb_txn_commit(txn);
	mdb_txn_abort(txn);
	return rc;
}

int mbox_index_open(const char *root, struct mbox_index **index_r, const char **error_r)
{
	static struct str open_error;
	struct mbox_index *ix = xcalloc(1, sizeof(*ix));
	ix->root = xstrdup(root);
	struct str path = STR_INIT;
	str_printf(&path, "%s/%s", root, MBOX_INDEX_FILE);
	ix->path = str_steal(&path);
	int rc = ix_open_env(ix);
	if (rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH) {
		/* A damaged cache: remove it and start again from the Maildir. */
		msg_warn("%s: %s: rebuilding the index", ix->path, mdb_strerror(rc));
		str_printf(&path, "%s-lock", ix->path);
		unlink(ix->path);
		unlink(str_c(&path));
		str_deinit(&path);
		rc = ix_open_env(ix);
	}
	if (rc == 0) {
		rc = ix_check_version(ix);
		if (rc != 0) {
			mdb_env_close(ix->env);
			ix->env = NULL;
		}
	}
	if (rc != 0) {
		str_clear(&open_error);
		str_printf(&open_error, "mdb_env_open(%s) failed: %s", ix->path, mdb_strerror(rc));
		*error_r = str_c(&open_error);
		mbox_index_close(&ix);
		return -1;
	}
	*index_r = ix;
	return 0;
}

void mbox_index_close(struct mbox_index **ixp)
{
	struct mbox_index *ix = *ixp;
	if (ix == NULL)
		return;
	if (ix->env != NULL)
		mdb_env_close(ix->env);
	free(ix->root);
	free(ix->path);
	str_deinit(&ix->buf);
	str_deinit(&ix->error);
	free(ix);
	*ixp = NULL;
}

void mbox_index_parse_flags(const char *filename, uint32_t *flags_r, uint32_t *keywords_r)
{
	*flags_r = 0;
	*keywords_r = 0;
	const char *info = strstr(filename, ":2,");
	if (info == NULL)
		return;
	for (const char *p = info + 3; *p != '\0' && *p != ','; p++) {
		const char *f = strchr(mbox_flag_letters, *p);
		if (f != NULL && *p != '\0')
			*flags_r |= 1u << (f - mbox_flag_letters);
		else if (*p >= 'a' && *p <= 'z')
			*keywords_r |= 1u << (*p - 'a');
	}
}

/* folder header codec */
static void folder_encode(unsigned char out[48], const struct mbox_index_folder *f)
{
	put32(out, f->uidvalidity);
	put32(out + 4, f->uidnext);
	put64(out + 8, f->highestmodseq);
	memset(out + 16, '0', 32);
	memcpy(out + 16, f->guid, strnlen(f->guid, 32));
}

static bool folder_decode(const MDB_val *v, struct mbox_index_folder *f)
{
	if (v->mv_size != 48)
		return false;
	const unsigned char *p = v->mv_data;
	f->uidvalidity = get32(p);
	f->uidnext = get32(p + 4);
	f->highestmodseq = get64(p + 8);
	memcpy(f->guid, p + 16, 32);
	f->guid[32] = '\0';
	return true;
}

/* ix_get_folder: read the header in txn; 1, 0 or -1. */
static int ix_get_folder(struct mbox_index *ix, MDB_txn *txn, const char *folder,
			 struct mbox_index_folder *f, const char **error_r)
{
	struct str key = STR_INIT;
	key_make(&key, 'F', folder, NULL, 0);
	MDB_val k = val_of(&key), v;
	int rc = mdb_get(txn, ix->dbi, &k, &v);
	str_deinit(&key);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0 || !folder_decode(&v, f)) {
		*error_r = ix_fail(ix, "%s: folder %s: %s", ix->path, folder,
				   rc != 0 ? mdb_strerror(rc) : "damaged header");
		return -1;
	}
	return 1;
}

static int ix_put_folder(struct mbox_index *ix, MDB_txn *txn, const char *folder,
			 const struct mbox_index_folder *f)
{
	unsigned char data[48];
	struct str key = STR_INIT;
	folder_encode(data, f);
	key_make(&key, 'F', folder, NULL, 0);
	MDB_val k = val_of(&key), v = { sizeof(data), data };
	int rc = mdb_put(txn, ix->dbi, &k, &v, 0);
	str_deinit(&key);
	return rc;
}

/* ix_put_rec: write both the U and the N record of a message. */
static int ix_put_rec(struct mbox_index *ix, MDB_txn *txn, const char *folder,
		      const struct mbox_index_rec *r)
{
	unsigned char uidbuf[4];
	struct str key = STR_INIT, val = STR_INIT;
	put32(uidbuf, r->uid);
	key_make(&key, 'U', folder, uidbuf, 4);
	str_reserve(&val, 16 + strlen(r->basename));
	unsigned char head[16];
	put32(head, r->flags);
	put32(head + 4, r->keywords);
	put64(head + 8, r->modseq);
	str_append_n(&val, head, 16);
	str_append(&val, r->basename);
	MDB_val k = val_of(&key), v = val_of(&val);
	int rc = mdb_put(txn, ix->dbi, &k, &v, 0);
	if (rc == 0) {
		key_make(&key, 'N', folder, r->basename, strlen(r->basename));
		k = val_of(&key);
		v.mv_size = 4;
		v.mv_data = uidbuf;
		rc = mdb_put(txn, ix->dbi, &k, &v, 0);
	}
	str_deinit(&key);
	str_deinit(&val);
	return rc;
}

/* rec_decode: a U record's value (basename copied into ix->buf). */
static bool rec_decode(struct mbox_index *ix, uint32_t uid, const MDB_val *v,
		       struct mbox_index_rec *r)
{
	if (v->mv_size < 17 || v->mv_size > 16 + MBOX_INDEX_NAME_MAX)
		return false;
	const unsigned char *p = v->mv_data;
	r->uid = uid;
	r->flags = get32(p);
	r->keywords = get32(p + 4);
	r->modseq = get64(p + 8);
	str_clear(&ix->buf);
	str_append_n(&ix->buf, p + 16, v->mv_size - 16);
	r->basename = str_c(&ix->buf);
	return true;
}

int mbox_index_folder(struct mbox_index *ix, const char *folder, struct mbox_index_folder *f_r,
		      const char **error_r)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		*error_r = ix_fail(ix, "%s: mdb_txn_begin: %s", ix->path, mdb_strerror(rc));
		return -1;
	}
	int r = ix_get_folder(ix, txn, folder, f_r, error_r);
	mdb_txn_abort(txn);
	return r;
}

int mbox_index_lookup(struct mbox_index *ix, const char *folder, uint32_t uid,
		      struct mbox_index_rec *rec_r, const char **error_r)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		*error_r = ix_fail(ix, "%s: mdb_txn_begin: %s", ix->path, mdb_strerror(rc));
		return -1;
	}
	unsigned char uidbuf[4];
	struct str key = STR_INIT;
	put32(uidbuf, uid);
	key_make(&key, 'U', folder, uidbuf, 4);
	MDB_val k = val_of(&key), v;
	rc = mdb_get(txn, ix->dbi, &k, &v);
	int ret = 1;
	if (rc == MDB_NOTFOUND)
		ret = 0;
	else if (rc != 0 || !rec_decode(ix, uid, &v, rec_r)) {
		*error_r = ix_fail(ix, "%s: uid %u: %s", ix->path, uid,
				   rc != 0 ? mdb_strerror(rc) : "damaged record");
		ret = -1;
	}
	mdb_txn_abort(txn);
	str_deinit(&key);
	return ret;
}

/* ix_get_name: the N record in txn; 1, 0 or an LMDB failure as -1. */
static int ix_get_name(struct mbox_index *ix, MDB_txn *txn, const char *folder,
		       const char *basename, uint32_t *uid_r)
{
	struct str key = STR_INIT;
	key_make(&key, 'N', folder, basename, strlen(basename));
	MDB_val k = val_of(&key), v;
	int rc = mdb_get(txn, ix->dbi, &k, &v);
	str_deinit(&key);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0 || v.mv_size != 4)
		return -1;
	*uid_r = get32(v.mv_data);
	return 1;
}

int mbox_index_lookup_name(struct mbox_index *ix, const char *folder, const char *basename,
			   uint32_t *uid_r, const char **error_r)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		*error_r = ix_fail(ix, "%s: mdb_txn_begin: %s", ix->path, mdb_strerror(rc));
		return -1;
	}
	int r = ix_get_name(ix, txn, folder, basename, uid_r);
	mdb_txn_abort(txn);
	if (r < 0)
		*error_r = ix_fail(ix, "%s: damaged name record", ix->path);
	return r;
}

/* ix_walk: call fn on every U record of folder in txn. */
static int ix_walk(struct mbox_index *ix, MDB_txn *txn, const char *folder,
		   mbox_index_iter_fn *fn, void *ctx, const char **error_r)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, ix->dbi, &cur);
	if (rc != 0) {
		*error_r = ix_fail(ix, "%s: mdb_cursor_open: %s", ix->path, mdb_strerror(rc));
		return -1;
	}
	struct str prefix = STR_INIT;
	key_make(&prefix, 'U', folder, NULL, 0);
	MDB_val k = val_of(&prefix), v;
	int ret = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != prefix.len + 4 || memcmp(k.mv_data, prefix.data, prefix.len) != 0)
			break;
		struct mbox_index_rec r;
		uint32_t uid = get32((const unsigned char *)k.mv_data + prefix.len);
		if (!rec_decode(ix, uid, &v, &r)) {
			*error_r = ix_fail(ix, "%s: uid %u: damaged record", ix->path, uid);
			ret = -1;
			break;
		}
		if (!fn(ctx, &r))
			break;
	}
	if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND) {
		*error_r = ix_fail(ix, "%s: mdb_cursor_get: %s", ix->path, mdb_strerror(rc));
		ret = -1;
	}
	mdb_cursor_close(cur);
	str_deinit(&prefix);
	return ret;
}

int mbox_index_iterate(struct mbox_index *ix, const char *folder, mbox_index_iter_fn *fn,
		       void *ctx, const char **error_r)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		*error_r = ix_fail(ix, "%s: mdb_txn_begin: %s", ix->path, mdb_strerror(rc));
		return -1;
	}
	int r = ix_walk(ix, txn, folder, fn, ctx, error_r);
	mdb_txn_abort(txn);
	return r;
}

int mbox_index_keyword(struct mbox_index *ix, const char *folder, unsigned i,
		       const char **name_r, const char **error_r)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		*error_r = ix_fail(ix, "%s: mdb_txn_begin: %s", ix->path, mdb_strerror(rc));
		return -1;
	}
	unsigned char idx = (unsigned char)i;
	struct str key = STR_INIT;
	key_make(&key, 'K', folder, &idx, 1);
	MDB_val k = val_of(&key), v;
	rc = mdb_get(txn, ix->dbi, &k, &v);
	int ret = 1;
	if (rc == MDB_NOTFOUND)
		ret = 0;
	else if (rc != 0) {
		*error_r = ix_fail(ix, "%s: %s", ix->path, mdb_strerror(rc));
		ret = -1;
	} else {
		str_clear(&ix->buf);
		str_append_n(&ix->buf, v.mv_data, v.mv_size);
		*name_r = str_c(&ix->buf);
	}
	mdb_txn_abort(txn);
	str_deinit(&key);
	return ret;
}


/* ---- dovecot-uidlist and dovecot-keywords ---- */

/* One "<uid> [ext...] :<base>" line. */
struct uidlist_rec {
	uint32_t uid;
	char *base;
};

struct uidlist {
	bool present;
	int version; /* 1 or 3 */
	uint32_t uidvalidity, nextuid;
	char guid[33];
	struct uidlist_rec *recs; /* sorted by base after reading */
	size_t count;
};

static void uidlist_free(struct uidlist *ul)
{
	for (size_t i = 0; i < ul->count; i++)
		free(ul->recs[i].base);
	free(ul->recs);
	memset(ul, 0, sizeof(*ul));
}

static int uidlist_rec_cmp(const void *a, const void *b)
{
	return strcmp(((const struct uidlist_rec *)a)->base, ((const struct uidlist_rec *)b)->base);
}

/* read_small_file: the whole file (at most max bytes); 1, 0 (missing), -1. */
static int read_small_file(const char *path, size_t max, struct str *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	char chunk[8192];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		if (out->len + (size_t)n > max) {
			errno = EFBIG;
			n = -1;
			break;
		}
		str_append_n(out, chunk, (size_t)n);
	}
	int saved = errno;
	close(fd);
	errno = saved;
	return n < 0 ? -1 : 1;
}

/* parse_u32: a decimal number filling all of text. */
static bool parse_u32(const char *text, size_t len, uint32_t *v_r)
{
	uint64_t v = 0;
	if (len == 0 || len > 10)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(text[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*v_r = (uint32_t)v;
	return true;
}

/* uidlist_header: "3 V<uidvalidity> N<nextuid> G<guid> ..." or the old
 * "1 <uidvalidity> <nextuid>". */
static bool uidlist_header(char *line, struct uidlist *ul, int *version_r)
{
	char *save = NULL;
	char *tok = strtok_r(line, " ", &save);
	if (tok == NULL || (strcmp(tok, "3") != 0 && strcmp(tok, "1") != 0))
		return false;
	*version_r = tok[0] - '0';
	if (*version_r == 1) {
		char *v = strtok_r(NULL, " ", &save), *n = strtok_r(NULL, " ", &save);
		return v != NULL && n != NULL && parse_u32(v, strlen(v), &ul->uidvalidity) &&
		       parse_u32(n, strlen(n), &ul->nextuid);
	}
	while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
		if (tok[0] == 'V' && !parse_u32(tok + 1, strlen(tok + 1), &ul->uidvalidity))
			return false;
		if (tok[0] == 'N' && !parse_u32(tok + 1, strlen(tok + 1), &ul->nextuid))
			return false;
		if (tok[0] == 'G' && strlen(tok + 1) == 32)
			memcpy(ul->guid, tok + 1, 33);
	}
	return ul->uidvalidity != 0;
}

/* uidlist_record: "<uid> [ext ...] :<base>" (v3) or "<uid> <base>" (v1). */
static bool uidlist_record(const char *line, int version, uint32_t *uid_r, const char **base_r)
{
	size_t n = strspn(line, "0123456789");
	if (!parse_u32(line, n, uid_r) || *uid_r == 0 || line[n] != ' ')
		return false;
	const char *p = line + n + 1;
	if (version == 3) {
		p = strstr(line + n, " :");
		if (p == NULL)
			return false;
		p += 2;
	}
	if (*p == '\0' || strlen(p) > MBOX_INDEX_NAME_MAX || strchr(p, '/') != NULL)
		return false;
	*base_r = p;
	return true;
}

/* uidlist_read: parse dir/dovecot-uidlist; 0 (possibly absent) or -1. */
static int uidlist_read(struct mbox_index *ix, const char *dir, struct uidlist *ul,
			const char **error_r)
{
	struct str path = STR_INIT, data = STR_INIT;
	str_printf(&path, "%s/%s", dir, UIDLIST);
	memset(ul, 0, sizeof(*ul));
	int r = read_small_file(str_c(&path), (size_t)MBOX_INDEX_FILES_MAX * 64, &data);
	int version = 0, ret = 0;
	unsigned lineno = 0;
	uint32_t prev = 0;
	char *save = NULL;
	if (r < 0) {
		*error_r = ix_fail(ix, "read(%s) failed: %m", str_c(&path));
		ret = -1;
	}
	for (char *line = r > 0 ? strtok_r(data.data, "\n", &save) : NULL; line != NULL && ret == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		uint32_t uid;
		const char *base;
		lineno++;
		if (strlen(line) > MBOX_INDEX_UIDLIST_LINE_MAX)
			ret = -1;
		else if (lineno == 1)
			ret = uidlist_header(line, ul, &version) ? 0 : -1;
		else if (!uidlist_record(line, version, &uid, &base) || uid <= prev)
			ret = -1;
		else {
			prev = uid;
			ul->recs = xreallocarray(ul->recs, ul->count + 1, sizeof(*ul->recs));
			ul->recs[ul->count].uid = uid;
			ul->recs[ul->count++].base = xstrdup(base);
		}
		if (ret < 0)
			*error_r = ix_fail(ix, "%s: line %u: broken (not a version 1 or 3 uidlist?)",
					   str_c(&path), lineno);
	}
	if (ret == 0 && r > 0 && lineno > 0) {
		ul->present = true;
		ul->version = version;
		if (ul->nextuid <= prev)
			ul->nextuid = prev + 1; /* appended records, as Dovecot writes them */
		if (ul->count > 0)
			qsort(ul->recs, ul->count, sizeof(*ul->recs), uidlist_rec_cmp);
	}
	if (ret < 0)
		uidlist_free(ul);
	str_deinit(&path);
	str_deinit(&data);
	return ret;
}

static uint32_t uidlist_find(const struct uidlist *ul, const char *base)
{
	struct uidlist_rec key = { 0, (char *)base };
	const struct uidlist_rec *r =
		ul->count == 0 ? NULL : bsearch(&key, ul->recs, ul->count, sizeof(key), uidlist_rec_cmp);
	return r != NULL ? r->uid : 0;
}

/* keywords_adopt: dir/dovecot-keywords into K records ("<index> <name>"). */
static int keywords_adopt(struct mbox_index *ix, MDB_txn *txn, const char *dir, const char *folder)
{
	struct str path = STR_INIT, data = STR_INIT, key = STR_INIT;
	str_printf(&path, "%s/%s", dir, KEYWORDS);
	int r = read_small_file(str_c(&path), 64 * 1024, &data);
	int rc = 0;
	char *save = NULL;
	for (char *line = r > 0 ? strtok_r(data.data, "\n", &save) : NULL; line != NULL && rc == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		size_t n = strspn(line, "0123456789");
		uint32_t idx;
		if (!parse_u32(line, n, &idx) || idx >= MBOX_INDEX_KEYWORDS_MAX || line[n] != ' ' ||
		    line[n + 1] == '\0')
			continue; /* Dovecot skips such lines too */
		unsigned char i = (unsigned char)idx;
		key_make(&key, 'K', folder, &i, 1);
		MDB_val k = val_of(&key), v = { strlen(line + n + 1), line + n + 1 };
		rc = mdb_put(txn, ix->dbi, &k, &v, 0);
	}
	str_deinit(&path);
	str_deinit(&data);
	str_deinit(&key);
	return rc;
}

/* uidlist_rewrite_line: one record into the new uidlist. */
static bool uidlist_rewrite_line(void *ctx, const struct mbox_index_rec *r)
{
	str_printf(ctx, "%u :%s\n", r->uid, r->basename);
	return true;
}

/* uidlist_write: dir/dovecot-uidlist from the records in txn, replaced
 * atomically (written aside, then renamed). */
static int uidlist_write(struct mbox_index *ix, MDB_txn *txn, const char *dir, const char *folder,
			 const struct mbox_index_folder *f, const char **error_r)
{
	struct str text = STR_INIT, tmp = STR_INIT, path = STR_INIT;
	str_printf(&text, "3 V%u N%u G%s\n", f->uidvalidity, f->uidnext, f->guid);
	int ret = ix_walk(ix, txn, folder, uidlist_rewrite_line, &text, error_r);
	str_printf(&path, "%s/%s", dir, UIDLIST);
	str_printf(&tmp, "%s.petrel.%ld", str_c(&path), (long)getpid());
	if (ret == 0) {
		int fd = open(str_c(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		bool ok = fd >= 0 && write(fd, text.data, text.len) == (ssize_t)text.len &&
			  fsync(fd) == 0;
		if (fd >= 0 && close(fd) < 0)
			ok = false;
		if (!ok || rename(str_c(&tmp), str_c(&path)) < 0) {
			*error_r = ix_fail(ix, "write(%s) failed: %m", str_c(&tmp));
			unlink(str_c(&tmp));
			ret = -1;
		}
	}
	str_deinit(&text);
	str_deinit(&tmp);
	str_deinit(&path);
	return ret;
}

/* uidlist_append: one new record at the end, as Dovecot appends. */
static void uidlist_append(const char *dir, uint32_t uid, const char *base)
{
	char path[4096], line[MBOX_INDEX_NAME_MAX + 32];
	if (!str_format(path, sizeof(path), "%s/%s", dir, UIDLIST) ||
	    !str_format(line, sizeof(line), "%u :%s\n", uid, base))
		return;
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return; /* no uidlist yet: the next sync writes it whole */
	size_t len = strlen(line);
	if (write(fd, line, len) != (ssize_t)len)
		msg_warn("write(%s) failed: %m", path);
	close(fd);
}

/* ---- sync ---- */

struct scan_entry {
	char *base;
	uint32_t flags, keywords;
	long long secs, usecs;
	uint32_t uid; /* 0 until known */
};

struct scan {
	struct scan_entry *e;
	size_t count;
};

static int scan_base_cmp(const void *a, const void *b)
{
	return strcmp(((const struct scan_entry *)a)->base, ((const struct scan_entry *)b)->base);
}

/* scan_time_cmp: delivery order: "<secs>.M<usecs>..." then name. */
static int scan_time_cmp(const void *a, const void *b)
{
	const struct scan_entry *x = a, *y = b;
	if (x->secs != y->secs)
		return x->secs < y->secs ? -1 : 1;
	if (x->usecs != y->usecs)
		return x->usecs < y->usecs ? -1 : 1;
	return strcmp(x->base, y->base);
}

static void scan_free(struct scan *sc)
{
	for (size_t i = 0; i < sc->count; i++)
		free(sc->e[i].base);
	free(sc->e);
	memset(sc, 0, sizeof(*sc));
}

/* scan_dir: the messages of one new/ or cur/ directory. */
static int scan_dir(struct mbox_index *ix, const char *dir, struct scan *sc, const char **error_r)
{
	DIR *d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		*error_r = ix_fail(ix, "opendir(%s) failed: %m", dir);
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL && sc->count < MBOX_INDEX_FILES_MAX) {
		if (de->d_name[0] == '.')
			continue;
		size_t baselen = strcspn(de->d_name, ":");
		if (baselen > MBOX_INDEX_NAME_MAX) {
			msg_warn("%s/%s: name too long, not indexed", dir, de->d_name);
			continue;
		}
		sc->e = xreallocarray(sc->e, sc->count + 1, sizeof(*sc->e));
		struct scan_entry *e = &sc->e[sc->count++];
		memset(e, 0, sizeof(*e));
		e->base = xstrndup(de->d_name, baselen);
		mbox_index_parse_flags(de->d_name, &e->flags, &e->keywords);
		char *end;
		e->secs = strtoll(e->base, &end, 10);
		if (end[0] == '.' && end[1] == 'M')
			e->usecs = strtoll(end + 2, NULL, 10);
	}
	closedir(d);
	return 0;
}

/* scan_folder: new/ and cur/ sorted by base name, duplicates dropped. */
static int scan_folder(struct mbox_index *ix, const char *dir, struct scan *sc, const char **error_r)
{
	struct str path = STR_INIT;
	str_printf(&path, "%s/new", dir);
	int ret = scan_dir(ix, str_c(&path), sc, error_r);
	str_clear(&path);
	str_printf(&path, "%s/cur", dir);
	if (ret == 0)
		ret = scan_dir(ix, str_c(&path), sc, error_r);
	str_deinit(&path);
	if (sc->count > 0)
		qsort(sc->e, sc->count, sizeof(*sc->e), scan_base_cmp);
	size_t out = 0;
	for (size_t i = 0; i < sc->count; i++) {
		if (out > 0 && strcmp(sc->e[out - 1].base, sc->e[i].base) == 0) {
			/* new/ and cur/ during a rename: the cur/ one (later) wins. */
			free(sc->e[out - 1].base);
			sc->e[out - 1] = sc->e[i];
			continue;
		}
		sc->e[out++] = sc->e[i];
	}
	sc->count = out;
	return ret;
}

/* One existing record, copied out of the cursor. */
struct old_rec {
	struct mbox_index_rec r;
	char *base;
};

struct old_list {
	struct old_rec *v;
	size_t count;
};

static bool old_collect(void *ctx, const struct mbox_index_rec *r)
{
	struct old_list *l = ctx;
	l->v = xreallocarray(l->v, l->count + 1, sizeof(*l->v));
	l->v[l->count].r = *r;
	l->v[l->count++].base = xstrdup(r->basename);
	return true;
}

/* ix_delete_rec: drop both records of a vanished message. */
static int ix_delete_rec(struct mbox_index *ix, MDB_txn *txn, const char *folder,
			 const struct old_rec *o)
{
	unsigned char uidbuf[4];
	struct str key = STR_INIT;
	put32(uidbuf, o->r.uid);
	key_make(&key, 'U', folder, uidbuf, 4);
	MDB_val k = val_of(&key);
	int rc = mdb_del(txn, ix->dbi, &k, NULL);
	key_make(&key, 'N', folder, o->base, strlen(o->base));
	k = val_of(&key);
	if (rc == 0 || rc == MDB_NOTFOUND)
		rc = mdb_del(txn, ix->dbi, &k, NULL);
	str_deinit(&key);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* sync_known: records already in the index: dropped when the file went,
 * updated (new MODSEQ) when its flags changed. Sets *dirty_r on drops. */
static int sync_known(struct mbox_index *ix, MDB_txn *txn, const char *folder, struct scan *sc,
		      struct mbox_index_folder *f, bool *dirty_r, const char **error_r)
{
	struct old_list old = { NULL, 0 };
	int ret = ix_walk(ix, txn, folder, old_collect, &old, error_r);
	int rc = 0;
	for (size_t i = 0; i < old.count && ret == 0 && rc == 0; i++) {
		struct scan_entry key = { .base = old.v[i].base };
		struct scan_entry *e = sc->count == 0 ? NULL :
			bsearch(&key, sc->e, sc->count, sizeof(key), scan_base_cmp);
		if (e == NULL) {
			rc = ix_delete_rec(ix, txn, folder, &old.v[i]);
			*dirty_r = true;
			continue;
		}
		e->uid = old.v[i].r.uid;
		if (e->flags != old.v[i].r.flags || e->keywords != old.v[i].r.keywords) {
			struct mbox_index_rec r = old.v[i].r;
			r.basename = old.v[i].base;
			r.flags = e->flags;
			r.keywords = e->keywords;
			r.modseq = ++f->highestmodseq;
			rc = ix_put_rec(ix, txn, folder, &r);
		}
	}
	if (rc != 0) {
		*error_r = ix_fail(ix, "%s: %s", ix->path, mdb_strerror(rc));
		ret = -1;
	}
	for (size_t i = 0; i < old.count; i++)
		free(old.v[i].base);
	free(old.v);
	return ret;
}

/* ix_uid_free: no message has uid in txn (errors count as taken). */
static bool ix_uid_free(struct mbox_index *ix, MDB_txn *txn, const char *folder, uint32_t uid)
{
	unsigned char uidbuf[4];
	struct str key = STR_INIT;
	put32(uidbuf, uid);
	key_make(&key, 'U', folder, uidbuf, 4);
	MDB_val k = val_of(&key), v;
	int rc = mdb_get(txn, ix->dbi, &k, &v);
	str_deinit(&key);
	return rc == MDB_NOTFOUND;
}

/* sync_new: files not in the index: their dovecot-uidlist UID when they
 * have one (and it is free), else fresh UIDs in delivery order. */
static int sync_new(struct mbox_index *ix, MDB_txn *txn, const char *folder, struct scan *sc,
		    const struct uidlist *ul, struct mbox_index_folder *f, bool *dirty_r)
{
	int rc = 0;
	if (sc->count > 0)
		qsort(sc->e, sc->count, sizeof(*sc->e), scan_time_cmp);
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		for (size_t i = 0; i < sc->count && rc == 0; i++) {
			struct scan_entry *e = &sc->e[i];
			if (e->uid != 0)
				continue;
			uint32_t uid = pass == 0 ? uidlist_find(ul, e->base) : f->uidnext;
			if (pass == 1) {
				while (uid != 0 && !ix_uid_free(ix, txn, folder, uid))
					uid = ++f->uidnext;
			}
			if (uid == 0 || !ix_uid_free(ix, txn, folder, uid))
				continue;
			if (pass == 1) {
				if (f->uidnext == UINT32_MAX)
					return MDB_MAP_FULL;
				f->uidnext++;
				*dirty_r = true;
			} else if (uid >= f->uidnext)
				f->uidnext = uid + 1;
			struct mbox_index_rec r = { uid, e->flags, e->keywords, ++f->highestmodseq, e->base };
			e->uid = uid;
			rc = ix_put_rec(ix, txn, folder, &r);
		}
	}
	return rc;
}

/* folder_new_header: a folder seen for the first time: Dovecot's values
 * when it has a uidlist, else a fresh UIDVALIDITY and GUID. */
static void folder_new_header(const struct uidlist *ul, struct mbox_index_folder *f)
{
	memset(f, 0, sizeof(*f));
	f->highestmodseq = 1;
	if (ul->present) {
		f->uidvalidity = ul->uidvalidity;
		f->uidnext = ul->nextuid;
		memcpy(f->guid, ul->guid, sizeof(f->guid));
	} else {
		f->uidvalidity = (uint32_t)time(NULL);
		f->uidnext = 1;
	}
	if (f->guid[0] == '\0') {
		unsigned char rnd[16];
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			msg_fatal("getrandom failed: %m");
		for (size_t i = 0; i < 16; i++)
			snprintf(f->guid + 2 * i, 3, "%02x", rnd[i]);
	}
}

/* sync_txn: the body of mbox_index_sync inside one write transaction. */
static int sync_txn(struct mbox_index *ix, MDB_txn *txn, const char *folder, const char *dir,
		    const char **error_r)
{
	struct uidlist ul;
	struct scan sc = { NULL, 0 };
	struct mbox_index_folder f;
	bool dirty = false;
	if (uidlist_read(ix, dir, &ul, error_r) < 0)
		return -1;
	int ret = ix_get_folder(ix, txn, folder, &f, error_r);
	if (ret == 0) {
		folder_new_header(&ul, &f);
		dirty = true;
	} else if (ret > 0 && ul.present && ul.nextuid > f.uidnext)
		f.uidnext = ul.nextuid;
	if (ret >= 0)
		ret = scan_folder(ix, dir, &sc, error_r);
	if (ret >= 0)
		ret = sync_known(ix, txn, folder, &sc, &f, &dirty, error_r);
	int rc = 0;
	if (ret >= 0) {
		rc = sync_new(ix, txn, folder, &sc, &ul, &f, &dirty);
		if (rc == 0)
			rc = keywords_adopt(ix, txn, dir, folder);
		if (rc == 0)
			rc = ix_put_folder(ix, txn, folder, &f);
		if (rc != 0) {
			*error_r = ix_fail(ix, "%s: %s", ix->path, mdb_strerror(rc));
			ret = -1;
		}
	}
	/* Appends (mbox_index_add) need a version 3 file to append to. */
	if (ret >= 0 && (dirty || !ul.present || ul.version != 3))
		ret = uidlist_write(ix, txn, dir, folder, &f, error_r);
	uidlist_free(&ul);
	scan_free(&sc);
	return ret < 0 ? -1 : 0;
}

int mbox_index_sync(struct mbox_index *ix, const char *folder, const char **error_r)
{
	if (!str_eq_icase(folder, "INBOX") && !maildir_folder_valid(folder)) {
		*error_r = ix_fail(ix, "invalid folder name");
		return -1;
	}
	if (str_eq_icase(folder, "INBOX"))
		folder = "INBOX";
	struct str dir = STR_INIT;
	maildir_folder_dir(&dir, ix->root, folder);
	MDB_txn *txn;
	int rc = mdb_txn_begin(ix->env, NULL, 0, &txn);
	int ret = -1;
	if (rc != 0)
		*error_r = ix_fail(ix, "%s: mdb_txn_begin: %s", ix->path, mdb_strerror(rc));
	else if (sync_txn(ix, txn, folder, str_c(&dir), error_r) < 0)
		mdb_txn_abort(txn);
	else if ((rc = mdb_txn_commit(txn)) != 0)
		*error_r = ix_fail(ix, "%s: mdb_txn_commit: %s", ix->path, mdb_strerror(rc));
	else
		ret = 0;
	str_deinit(&dir);
	return ret;
}

/* add_txn: the new record in txn; 1 done, 0 folder not indexed yet. */
static int add_txn(struct mbox_index *ix, MDB_txn *txn, const char *folder, const char *dir,
		   const char *basename, uint32_t *uid_r, const char **error_r)
{
	struct mbox_index_folder f;
	int r = ix_get_folder(ix, txn, folder, &f, error_r);
	if (r <= 0)
		return r;
	r = ix_get_name(ix, txn, folder, basename, uid_r);
	if (r != 0)
		return r > 0 ? 1 : -1;
	while (!ix_uid_free(ix, txn, folder, f.uidnext) && f.uidnext < UINT32_MAX)
		f.uidnext++;
	uint32_t flags, keywords;
	mbox_index_parse_flags(basename, &flags, &keywords);
	struct mbox_index_rec rec = { f.uidnext, flags, keywords, ++f.highestmodseq, basename };
	if (f.uidnext == UINT32_MAX) {
		*error_r = ix_fail(ix, "%s: folder %s: out of UIDs", ix->path, folder);
		return -1;
	}
	f.uidnext++;
	int rc = ix_put_rec(ix, txn, folder, &rec);
	if (rc == 0)
		rc = ix_put_folder(ix, txn, folder, &f);
	if (rc != 0) {
		*error_r = ix_fail(ix, "%s: %s", ix->path, mdb_strerror(rc));
		return -1;
	}
	/* While we hold LMDB's writer lock, so lines go in UID order. */
	uidlist_append(dir, rec.uid, basename);
	*uid_r = rec.uid;
	return 1;
}

int mbox_index_add(struct mbox_index *ix, const char *folder, const char *basename,
		   uint32_t *uid_r, const char **error_r)
{
	if (str_eq_icase(folder, "INBOX"))
		folder = "INBOX";
	else if (!maildir_folder_valid(folder)) {
		*error_r = ix_fail(ix, "invalid folder name");
		return -1;
	}
	if (strlen(basename) > MBOX_INDEX_NAME_MAX || strchr(basename, '/') != NULL ||
	    strchr(basename, ':') != NULL) {
		*error_r = ix_fail(ix, "invalid base name");
		return -1;
	}
	struct str dir = STR_INIT;
	maildir_folder_dir(&dir, ix->root, folder);
	MDB_txn *txn;
	int rc = mdb_txn_begin(ix->env, NULL, 0, &txn);
	int r = -1;
	if (rc != 0)
		*error_r = ix_fail(ix, "%s: mdb_txn_begin: %s", ix->path, mdb_strerror(rc));
	else {
		r = add_txn(ix, txn, folder, str_c(&dir), basename, uid_r, error_r);
		if (r <= 0)
			mdb_txn_abort(txn);
		else if ((rc = mdb_txn_commit(txn)) != 0) {
			*error_r = ix_fail(ix, "%s: mdb_txn_commit: %s", ix->path, mdb_strerror(rc));
			r = -1;
		}
	}
	str_deinit(&dir);
	if (r == 0) {
		/* First message of a folder: a sync indexes it with the rest. */
		r = mbox_index_sync(ix, folder, error_r);
		if (r == 0) {
			r = mbox_index_lookup_name(ix, folder, basename, uid_r, error_r);
			if (r == 0)
				*error_r = ix_fail(ix, "%s: %s not found in the folder", ix->path, basename);
		}
	}
	return r > 0 ? 0 : -1;
}

/* ---- delivery records (exactly once) ---- */

#define DELIVERY_EXPIRE_PER_CALL 8 /* old records dropped per new one */

/* delivery_id_valid: what XDELIVERYID allows (letters and digits). */
static bool delivery_id_valid(const char *id)
{
	size_t n = strlen(id);
	return n > 0 && n <= MBOX_INDEX_DELIVERY_ID_MAX &&
	       strspn(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == n;
}

/* delivery_get: the D record of id in txn; 1 with the name in ix->buf,
 * 0, or -1. */
static int delivery_get(struct mbox_index *ix, MDB_txn *txn, const char *folder, const char *id,
			const char **name_r, const char **error_r)
{
	struct str key = STR_INIT;
	key_make(&key, 'D', folder, id, strlen(id));
	MDB_val k = val_of(&key), v;
	int rc = mdb_get(txn, ix->dbi, &k, &v);
	str_deinit(&key);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0 || v.mv_size <= 8 || v.mv_size > 8 + MBOX_INDEX_NAME_MAX) {
		*error_r = ix_fail(ix, "%s: delivery %s: %s", ix->path, id,
				   rc != 0 ? mdb_strerror(rc) : "damaged record");
		return -1;
	}
	str_clear(&ix->buf);
	str_append_n(&ix->buf, (const char *)v.mv_data + 8, v.mv_size - 8);
	*name_r = str_c(&ix->buf);
	return 1;
}

/* delivery_put: the D record and its E (expiry order) record. */
static int delivery_put(struct mbox_index *ix, MDB_txn *txn, const char *folder, const char *id,
			const char *name, time_t now)
{
	unsigned char tail[8 + MBOX_INDEX_DELIVERY_ID_MAX];
	size_t idlen = strlen(id);
	struct str key = STR_INIT, val = STR_INIT;
	put64(tail, (uint64_t)now);
	memcpy(tail + 8, id, idlen);
	str_append_n(&val, tail, 8);
	str_append(&val, name);
	key_make(&key, 'D', folder, id, idlen);
	MDB_val k = val_of(&key), v = val_of(&val);
	int rc = mdb_put(txn, ix->dbi, &k, &v, 0);
	if (rc == 0) {
		key_make(&key, 'E', folder, tail, 8 + idlen);
		k = val_of(&key);
		v.mv_size = 0;
		v.mv_data = (void *)"";
		rc = mdb_put(txn, ix->dbi, &k, &v, 0);
	}
	str_deinit(&key);
	str_deinit(&val);
	return rc;
}

/* delivery_expire: drop the oldest few records written before "before". */
static int delivery_expire(struct mbox_index *ix, MDB_txn *txn, const char *folder, time_t before)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, ix->dbi, &cur);
	if (rc != 0)
		return rc;
	struct str prefix = STR_INIT, dkey = STR_INIT;
	key_make(&prefix, 'E', folder, NULL, 0);
	MDB_val k = val_of(&prefix), v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	for (int n = 0; rc == 0 && n < DELIVERY_EXPIRE_PER_CALL; n++) {
		const unsigned char *kp = k.mv_data;
		if (k.mv_size <= prefix.len + 8 || memcmp(kp, prefix.data, prefix.len) != 0 ||
		    (time_t)get64(kp + prefix.len) >= before)
			break;
		key_make(&dkey, 'D', folder, kp + prefix.len + 8, k.mv_size - prefix.len - 8);
		MDB_val dk = val_of(&dkey);
		rc = mdb_del(txn, ix->dbi, &dk, NULL);
		if (rc == 0 || rc == MDB_NOTFOUND)
			rc = mdb_cursor_del(cur, 0);
		if (rc == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
	}
	mdb_cursor_close(cur);
	str_deinit(&prefix);
	str_deinit(&dkey);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* delivery_args_valid: folder (canonical INBOX), id and name. */
static const char *delivery_args(struct mbox_index *ix, const char *folder, const char *id,
				 const char *name, const char **error_r)
{
	if (str_eq_icase(folder, "INBOX"))
		folder = "INBOX";
	else if (!maildir_folder_valid(folder)) {
		*error_r = ix_fail(ix, "invalid folder name");
		return NULL;
	}
	if (!delivery_id_valid(id)) {
		*error_r = ix_fail(ix, "invalid delivery id");
		return NULL;
	}
	if (name != NULL && (strlen(name) > MBOX_INDEX_NAME_MAX || strchr(name, '/') != NULL ||
			     strchr(name, ':') != NULL || name[0] == '\0')) {
		*error_r = ix_fail(ix, "invalid base name");
		return NULL;
	}
	return folder;
}

int mbox_index_delivery_lookup(struct mbox_index *ix, const char *folder, const char *id,
			       const char **name_r, const char **error_r)
{
	if ((folder = delivery_args(ix, folder, id, NULL, error_r)) == NULL)
		return -1;
	MDB_txn *txn;
	int rc = mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		*error_r = ix_fail(ix, "%s: mdb_txn_begin: %s", ix->path, mdb_strerror(rc));
		return -1;
	}
	int r = delivery_get(ix, txn, folder, id, name_r, error_r);
	mdb_txn_abort(txn);
	return r;
}

/* delivery_record_txn: the body of mbox_index_delivery_record. */
static int delivery_record_txn(struct mbox_index *ix, MDB_txn *txn, const char *folder,
			       const char *id, const char *name, time_t now, time_t expire_before,
			       uint32_t *uid_r, const char **name_r, const char **error_r)
{
	int r = delivery_get(ix, txn, folder, id, name_r, error_r);
	if (r != 0)
		return r < 0 ? -1 : 0;
	int rc = delivery_expire(ix, txn, folder, expire_before);
	if (rc == 0)
		rc = delivery_put(ix, txn, folder, id, name, now);
	if (rc != 0) {
		*error_r = ix_fail(ix, "%s: %s", ix->path, mdb_strerror(rc));
		return -1;
	}
	struct str dir = STR_INIT;
	maildir_folder_dir(&dir, ix->root, folder);
	*uid_r = 0;
	r = add_txn(ix, txn, folder, str_c(&dir), name, uid_r, error_r);
	str_deinit(&dir);
	return r < 0 ? -1 : 1;
}

int mbox_index_delivery_record(struct mbox_index *ix, const char *folder, const char *id,
			       const char *name, time_t now, time_t expire_before,
			       uint32_t *uid_r, const char **name_r, const char **error_r)
{
	if ((folder = delivery_args(ix, folder, id, name, error_r)) == NULL)
		return -1;
	MDB_txn *txn;
	int rc = mdb_txn_begin(ix->env, NULL, 0, &txn);
	if (rc != 0) {
		*error_r = ix_fail(ix, "%s: mdb_txn_begin: %s", ix->path, mdb_strerror(rc));
		return -1;
	}
	int r = delivery_record_txn(ix, txn, folder, id, name, now, expire_before, uid_r, name_r,
				    error_r);
	if (r != 1) {
		mdb_txn_abort(txn);
		return r;
	}
	/* The record must be on disk before the file is moved into new/:
	 * a commit, then the meta page that MDB_NOMETASYNC leaves unsynced. */
	if ((rc = mdb_txn_commit(txn)) != 0) {
		*error_r = ix_fail(ix, "%s: mdb_txn_commit: %s", ix->path, mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_env_sync(ix->env, 1)) != 0) {
		/* Committed, so visible to the next lookup, but not known to
		 * be on disk: the caller must keep the file it names. */
		*error_r = ix_fail(ix, "%s: mdb_env_sync: %s", ix->path, mdb_strerror(rc));
		return -2;
	}
	return 1;
}
