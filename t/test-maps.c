/* test-maps.c: unit tests for lib/mail/maps and lib/mail/dict_lmdb: table
 * types, case folding, Postfix's address lookup order, reopening a replaced
 * LMDB file, the writer (duplicates, deletes, updates, map growth) and
 * damaged or missing files. Works in a temp dir it removes. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/dict_lmdb.h"
#include "mail/maps.h"
#include "tap.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

static char tmpdir[] = "/tmp/test-maps.XXXXXX";

/* tpath: a path in the temp dir (static buffer, one at a time per slot). */
static const char *tpath(int slot, const char *name)
{
	static char buf[4][256];
	if (!str_format(buf[slot], sizeof(buf[slot]), "%s/%s", tmpdir, name))
		msg_fatal("path too long");
	return buf[slot];
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0)
		msg_fatal("write %s failed", path);
}

struct build_ctx {
	struct dict_lmdb_writer *w;
	bool replace;
	int dups;
};

/* build_put: maps_text_read() callback feeding the writer. */
static int build_put(const char *key, const char *value, unsigned int lineno, void *ctx)
{
	struct build_ctx *b = ctx;
	const char *error;
	int ret = dict_lmdb_writer_put(b->w, key, value, b->replace, &error);
	if (ret == 0)
		b->dups++;
	return ret < 0 ? ret : 0;
}

/* build_table: what postmap does: src text -> src.lmdb, atomically. */
static int build_table(const char *src, const char *text, unsigned int flags)
{
	struct build_ctx b = { NULL, false, 0 };
	struct str db = STR_INIT;
	const char *error;
	int ret;

	write_file(src, text);
	str_printf(&db, "%s.lmdb", src);
	b.w = dict_lmdb_writer_create(str_c(&db), flags, 0644, &error);
	str_deinit(&db);
	if (b.w == NULL)
		return -1;
	do {
		FILE *fp = fopen(src, "r");
		b.dups = 0;
		ret = dict_lmdb_writer_start(b.w, 0, &error);
		if (ret == 0)
			ret = maps_text_read(fp, src, true, build_put, &b, &error);
		if (ret == 0)
			ret = dict_lmdb_writer_commit(b.w, &error);
		fclose(fp);
	} while (ret == DICT_LMDB_RESTART);
	dict_lmdb_writer_free(&b.w);
	return ret < 0 ? -1 : b.dups;
}

static const char virtual_text[] =
	"# virtual mailboxes\n"
	"User@Example.COM   mailbox1\n"
	"joe@example.com    joe-box\n"
	"\n"
	"   # an indented comment\n"
	"@example.com       catchall\n"
	"multi   first part\n"
	"   continued\n"
	"\"quoted key\"@example.com  quoted\n"
	"novalue\n"
	"joe@example.com    second-joe\n";

static const struct lookup_case {
	const char *key;
	int ret;
	const char *value;
} lmdb_cases[] = {
	{ "user@example.com", 1, "mailbox1" },
	{ "USER@EXAMPLE.COM", 1, "mailbox1" },
	{ "joe@example.com", 1, "joe-box" },
	{ "@example.com", 1, "catchall" },
	{ "multi", 1, "first part   continued" },
	{ "\"quoted key\"@example.com", 1, "quoted" },
	{ "novalue", 0, NULL },
	{ "nobody@example.com", 0, NULL },
	{ "", 0, NULL },
};

/* check_cases: run a table of lookups against maps. */
static void check_cases(struct maps *maps, const struct lookup_case *cases, size_t n,
			const char *what)
{
	for (size_t i = 0; i < n; i++) {
		const char *value = NULL, *error = NULL;
		int ret = maps_lookup(maps, cases[i].key, &value, &error);
		tap_is_int(ret, cases[i].ret, "%s: lookup \"%s\" returns %d", what, cases[i].key,
			   cases[i].ret);
		if (cases[i].ret == 1 && ret == 1)
			tap_is_str(value, cases[i].value, "%s: value of \"%s\"", what, cases[i].key);
	}
}

static void test_lmdb(void)
{
	const char *error = NULL;
	int dups = build_table(tpath(0, "virtual"), virtual_text, DICT_LMDB_WRITER_NUL);
	tap_is_int(dups, 1, "building virtual: one duplicate, first wins");

	static const char *const types[] = { "lmdb", "hash", "btree", "proxy:hash" };
	for (size_t t = 0; t < N_ELEMENTS(types); t++) {
		struct str name = STR_INIT;
		str_printf(&name, "%s:%s", types[t], tpath(0, "virtual"));
		const char *names[] = { str_c(&name), NULL };
		struct maps *maps = maps_create("virtual_mailbox_maps", names, &error);
		if (tap_ok(maps != NULL, "open %s", str_c(&name)))
			check_cases(maps, lmdb_cases, N_ELEMENTS(lmdb_cases), types[t]);
		else
			tap_diag("%s", error);
		maps_free(&maps);
		tap_ok(maps == NULL, "maps_free clears the pointer");
		str_deinit(&name);
	}

	/* One environment per file per process. */
	struct dict_lmdb *a = dict_lmdb_open(tpath(0, "virtual.lmdb"), &error);
	struct dict_lmdb *b = dict_lmdb_open(tpath(0, "virtual.lmdb"), &error);
	tap_ok(a != NULL && a == b, "two opens of one file share a handle");
	char other[300];
	snprintf(other, sizeof(other), "%s/.//virtual.lmdb", tmpdir);
	struct dict_lmdb *c = dict_lmdb_open(other, &error);
	tap_ok(c != NULL && c == a, "another name for the same file shares it too");
	dict_lmdb_close(&a);
	dict_lmdb_close(&b);
	dict_lmdb_close(&c);
}

/* No NUL in keys and values (postmap -n) reads the same; NO_FOLD keeps case. */
static void test_lmdb_plain(void)
{
	const char *error, *value = NULL;
	build_table(tpath(0, "plain"), "Key value-plain\nother x\n", 0);
	struct str name = STR_INIT;
	str_printf(&name, "lmdb:%s", tpath(0, "plain"));
	const char *names[] = { str_c(&name), NULL };
	struct maps *maps = maps_create("plain", names, &error);
	tap_ok(maps != NULL && maps_lookup(maps, "KEY", &value, &error) == 1 &&
		       strcmp(value, "value-plain") == 0,
	       "table without NULs: folded lookup finds it");
	maps_free(&maps);
	maps = maps_create_flags("plain", names, MAPS_FLAG_NO_FOLD, &error);
	tap_ok(maps != NULL && maps_lookup(maps, "KEY", &value, &error) == 0 &&
		       maps_lookup(maps, "key", &value, &error) == 1,
	       "MAPS_FLAG_NO_FOLD looks keys up as given");
	maps_free(&maps);
	str_deinit(&name);
}

static const struct lookup_case simple_cases[] = {
	{ "a", 1, "1" },
	{ "B", 1, "two words" },
	{ "c", 1, "three" },
	{ "d", 0, NULL },
};

static void test_static_inline(void)
{
	const char *error = NULL, *value = NULL;
	const char *stat1[] = { "static:OK", NULL };
	struct maps *maps = maps_create("t", stat1, &error);
	tap_ok(maps != NULL && maps_lookup(maps, "anything", &value, &error) == 1 &&
		       strcmp(value, "OK") == 0,
	       "static:OK answers OK");
	maps_free(&maps);
	const char *stat2[] = { "static:{", "a", "b", "c", "}", NULL };
	maps = maps_create("t", stat2, &error);
	tap_ok(maps != NULL && maps_lookup(maps, "x", &value, &error) == 1 &&
		       strcmp(value, "a b c") == 0,
	       "static:{ a b c } (split by the list parser) answers \"a b c\"");
	maps_free(&maps);

	const char *inl1[] = { "inline:{ a=1, { b = two words }, c = three }", NULL };
	const char *inl2[] = { "inline:{ a=1, { b = two words }, {c=three} }", NULL };
	const char *inl3[] = { "inline:{", "a=1,", "{", "B", "=", "two", "words", "}", "c=three", "}",
			       NULL };
	maps = maps_create("t", inl1, &error);
	tap_ok(maps == NULL, "inline: \"c = three\" without braces is bad syntax");
	maps = maps_create("t", inl2, &error);
	if (tap_ok(maps != NULL, "inline: with braces opens"))
		check_cases(maps, simple_cases, N_ELEMENTS(simple_cases), "inline");
	maps_free(&maps);
	maps = maps_create("t", inl3, &error);
	if (tap_ok(maps != NULL, "inline: split into items by the list parser opens"))
		check_cases(maps, simple_cases, N_ELEMENTS(simple_cases), "inline split");
	maps_free(&maps);
}

static void test_texthash(void)
{
	const char *error = NULL;
	write_file(tpath(0, "text"), "a 1\nB two words\n# c 0\nc three\nc four\n");
	struct str name = STR_INIT;
	str_printf(&name, "texthash:%s", tpath(0, "text"));
	const char *names[] = { str_c(&name), NULL };
	struct maps *maps = maps_create("t", names, &error);
	if (tap_ok(maps != NULL, "texthash: opens"))
		check_cases(maps, simple_cases, N_ELEMENTS(simple_cases), "texthash");
	maps_free(&maps);
	str_deinit(&name);
}

/* Several tables: the first that has the key answers. */
static void test_order(void)
{
	const char *error = NULL, *value = NULL;
	const char *names[] = { "inline:{k=first}", "static:second", NULL };
	struct maps *maps = maps_create("t", names, &error);
	tap_ok(maps != NULL && maps_lookup(maps, "k", &value, &error) == 1 &&
		       strcmp(value, "first") == 0,
	       "first table answers");
	tap_ok(maps != NULL && maps_lookup(maps, "other", &value, &error) == 1 &&
		       strcmp(value, "second") == 0,
	       "second table answers what the first lacks");
	maps_free(&maps);
	const char *none[] = { NULL };
	maps = maps_create("t", none, &error);
	tap_ok(maps != NULL && maps_is_empty(maps) && maps_lookup(maps, "k", &value, &error) == 0,
	       "an empty list finds nothing");
	maps_free(&maps);
}

static const struct addr_case {
	const char *local, *domain, *delim;
	unsigned int flags;
	int ret;
	const char *value;
} addr_cases[] = {
	{ "joe", "example.com", "+", 0, 1, "joe" },
	{ "JOE", "Example.COM", "+", 0, 1, "joe" },
	{ "joe+foo", "example.com", "+", 0, 1, "joe" },
	{ "joe+foo", "example.com", "", 0, 1, "catchall" },
	{ "joe+foo", "example.com", NULL, 0, 1, "catchall" },
	{ "joe-foo", "example.com", "+-", 0, 1, "joe" },
	{ "special+tag", "example.com", "+", 0, 1, "special-tag" },
	{ "special+other", "example.com", "+", 0, 1, "special" },
	{ "bob", "example.com", "+", 0, 1, "catchall" },
	{ "bob", "example.com", "+", MAPS_ADDR_LOCAL, 1, "localbob" },
	{ "bob+x", "example.com", "+", MAPS_ADDR_LOCAL, 1, "localbob" },
	{ "carl+x", "example.com", "+", MAPS_ADDR_LOCAL, 1, "localcarlx" },
	{ "carl+y", "example.com", "+", MAPS_ADDR_LOCAL, 1, "catchall" },
	{ "+foo", "example.com", "+", 0, 1, "catchall" },
	{ "owner-joe", "example.com", "-", 0, 1, "catchall" },
	{ "joe-request", "example.com", "-", 0, 1, "catchall" },
	{ "bob", NULL, "+", 0, 1, "localbob" },
	{ "bob", "", "+", 0, 1, "localbob" },
	{ "nobody", "other.org", "+", MAPS_ADDR_LOCAL, 0, NULL },
	{ "joe", "other.org", "+", 0, 0, NULL },
};

static void test_lookup_addr(void)
{
	const char *error = NULL;
	const char *names[] = { "inline:{ joe@example.com=joe, @example.com=catchall,",
				"special@example.com=special,",
				"special+tag@example.com=special-tag, bob=localbob,",
				"carl+x=localcarlx }", NULL };
	struct maps *maps = maps_create("virtual_mailbox_maps", names, &error);
	if (!tap_ok(maps != NULL, "address table opens")) {
		tap_diag("%s", error);
		return;
	}
	for (size_t i = 0; i < N_ELEMENTS(addr_cases); i++) {
		const struct addr_case *c = &addr_cases[i];
		const char *value = NULL;
		int ret = maps_lookup_addr(maps, c->local, c->domain, c->delim, c->flags, &value,
					   &error);
		tap_is_int(ret, c->ret, "addr %s@%s delim=%s flags=%u: found=%d", c->local,
			   c->domain ? c->domain : "(null)", c->delim ? c->delim : "(null)",
			   c->flags, c->ret);
		if (c->ret == 1 && ret == 1)
			tap_is_str(value, c->value, "addr %s@%s: value", c->local,
				   c->domain ? c->domain : "(null)");
	}
	maps_free(&maps);
}

static void test_reopen(void)
{
	const char *error = NULL, *value = NULL;
	struct str name = STR_INIT;

	dict_lmdb_set_check_interval(0);
	build_table(tpath(0, "live"), "key v1\n", DICT_LMDB_WRITER_NUL);
	str_printf(&name, "lmdb:%s", tpath(0, "live"));
	const char *names[] = { str_c(&name), NULL };
	struct maps *maps = maps_create("t", names, &error);
	tap_ok(maps != NULL && maps_lookup(maps, "key", &value, &error) == 1 &&
		       strcmp(value, "v1") == 0,
	       "before replacement: v1");
	if (maps == NULL) {
		str_deinit(&name);
		return;
	}
	build_table(tpath(0, "live"), "key v2\nnew yes\n", DICT_LMDB_WRITER_NUL);
	tap_ok(maps_lookup(maps, "key", &value, &error) == 1 && strcmp(value, "v2") == 0,
	       "after postmap replaced the file: v2");
	tap_ok(maps_lookup(maps, "new", &value, &error) == 1, "a new key is seen");

	/* A damaged replacement is a temporary error, not stale data. */
	write_file(tpath(1, "live.lmdb.new"), "this is not an lmdb file at all\n");
	rename(tpath(1, "live.lmdb.new"), tpath(0, "live.lmdb"));
	tap_is_int(maps_lookup(maps, "key", &value, &error), -1,
		   "replaced by garbage: temporary error");
	tap_ok(error != NULL && strstr(error, "live.lmdb") != NULL, "error names the file: %s",
	       error ? error : "");
	build_table(tpath(0, "live"), "key v3\n", DICT_LMDB_WRITER_NUL);
	tap_ok(maps_lookup(maps, "key", &value, &error) == 1 && strcmp(value, "v3") == 0,
	       "repaired: v3");

	/* The default: the file is looked at no more than once a second.
	 * Start just after a second begins, so the rebuild stays inside it. */
	struct timespec clock_now, to_next;
	clock_gettime(CLOCK_REALTIME, &clock_now);
	to_next.tv_sec = 0;
	to_next.tv_nsec = 1000000000L - clock_now.tv_nsec + 20 * 1000 * 1000;
	if (to_next.tv_nsec >= 1000000000L)
		to_next.tv_nsec -= 1000000000L;
	nanosleep(&to_next, NULL);
	dict_lmdb_set_check_interval(1);
	tap_ok(maps_lookup(maps, "key", &value, &error) == 1, "lookup starts the second");
	build_table(tpath(0, "live"), "key v4\n", DICT_LMDB_WRITER_NUL);
	tap_ok(maps_lookup(maps, "key", &value, &error) == 1 && strcmp(value, "v3") == 0,
	       "within the second: still v3 (no stat)");
	struct timespec pause = { 1, 100 * 1000 * 1000 };
	nanosleep(&pause, NULL);
	tap_ok(maps_lookup(maps, "key", &value, &error) == 1 && strcmp(value, "v4") == 0,
	       "a second later: v4");
	maps_free(&maps);
	str_deinit(&name);
}

static const struct bad_case {
	const char *name;
	const char *want; /* substring of the error */
} bad_cases[] = {
	{ "foo:bar", "\"foo\"" },
	{ "virtual", "type:name" },
	{ "lmdb:", "missing file name" },
	{ "inline:{a}", "missing '='" },
	{ "inline:{}", "empty table" },
	{ "inline:a=b", "inline:{" },
	{ "inline:{a=b", "unbalanced" },
	{ "static:{a", "unbalanced" },
	{ "unix:shadow.byname", "shadow.byname" },
	{ "texthash:/nonexistent/x", "No such file" },
	{ "lmdb:/nonexistent/x", "No such file" },
};

static void test_errors(void)
{
	for (size_t i = 0; i < N_ELEMENTS(bad_cases); i++) {
		const char *error = NULL;
		const char *names[] = { bad_cases[i].name, NULL };
		struct maps *maps = maps_create("smtpd_test_maps", names, &error);
		tap_ok(maps == NULL, "\"%s\" fails to open", bad_cases[i].name);
		tap_ok(error != NULL && strstr(error, bad_cases[i].want) != NULL &&
			       strstr(error, "smtpd_test_maps") != NULL,
		       "error for \"%s\" says %s: %s", bad_cases[i].name, bad_cases[i].want,
		       error ? error : "(null)");
		maps_free(&maps);
	}
}

/* Damaged files fail at open, never crash. */
static void test_damaged(void)
{
	const char *error = NULL;
	struct str data = STR_INIT;

	for (int i = 0; i < 20000; i++)
		str_append_c(&data, (char)(i * 7 + 3));
	write_file(tpath(0, "bin.lmdb"), str_c(&data));
	str_deinit(&data);
	write_file(tpath(0, "empty.lmdb"), "");
	build_table(tpath(0, "big"), "a b\n", DICT_LMDB_WRITER_NUL);
	struct stat st;
	if (stat(tpath(0, "big.lmdb"), &st) == 0 && truncate(tpath(0, "big.lmdb"), st.st_size / 2) < 0)
		tap_diag("truncate failed");
	static const char *const files[] = { "bin", "empty", "big" };
	for (size_t i = 0; i < N_ELEMENTS(files); i++) {
		struct str name = STR_INIT;
		str_printf(&name, "lmdb:%s/%s", tmpdir, files[i]);
		const char *names[] = { str_c(&name), NULL };
		struct maps *maps = maps_create("t", names, &error);
		tap_ok(maps == NULL && error != NULL, "damaged %s: error: %s", str_c(&name),
		       error ? error : "(null)");
		maps_free(&maps);
		str_deinit(&name);
	}
}

static void test_unix(void)
{
	const char *error = NULL, *value = NULL;
	const char *names[] = { "proxy:unix:passwd.byname", NULL };
	struct maps *maps = maps_create("local_recipient_maps", names, &error);
	tap_ok(maps != NULL, "proxy:unix:passwd.byname opens");
	if (maps == NULL)
		return;
	tap_ok(maps_lookup(maps, "ROOT", &value, &error) == 1 && strncmp(value, "root:", 5) == 0,
	       "root is found, as a passwd line: %s", value ? value : "");
	tap_is_int(maps_lookup(maps, "no-such-user-petrel", &value, &error), 0,
		   "unknown user is not found");
	tap_is_int(maps_lookup_addr(maps, "root", "example.com", "+", MAPS_ADDR_LOCAL, &value,
				    &error),
		   1, "root@local-domain found by the bare local part");
	maps_free(&maps);
}

/* The writer: duplicates, replace, delete, update, growth beyond 1 MiB. */
static int count_fn(const char *key, const char *value, void *ctx)
{
	(*(int *)ctx)++;
	return 0;
}

static void test_writer(void)
{
	const char *error = NULL;
	const char *db = tpath(0, "w.lmdb");
	struct dict_lmdb_writer *w = dict_lmdb_writer_create(db, DICT_LMDB_WRITER_NUL, 0640, &error);
	int ret;

	if (!tap_ok(w != NULL, "writer created"))
		return;
	do {
		ret = dict_lmdb_writer_start(w, 0, &error);
		for (int i = 0; i < 30000 && ret == 0; i++) {
			char key[32], val[128];
			snprintf(key, sizeof(key), "key%05d", i);
			memset(val, 'v', sizeof(val) - 1);
			val[sizeof(val) - 1] = '\0';
			ret = dict_lmdb_writer_put(w, key, val, false, &error);
			ret = ret > 0 ? 0 : ret == 0 ? -1 : ret;
		}
		if (ret == 0)
			ret = dict_lmdb_writer_put(w, "key00001", "dup", false, &error) == 0 ? 0 : -1;
		if (ret == 0)
			ret = dict_lmdb_writer_commit(w, &error);
	} while (ret == DICT_LMDB_RESTART);
	tap_is_int(ret, 0, "30000 records (> 1 MiB, so the map grew) committed");
	dict_lmdb_writer_free(&w);
	struct stat st;
	tap_ok(stat(db, &st) == 0 && (st.st_mode & 0777) == 0640, "file mode as asked");
	tap_ok(access(tpath(1, "w.lmdb.tmp"), F_OK) < 0, "no temp file left behind");

	struct dict_lmdb *d = dict_lmdb_open(db, &error);
	struct str v = STR_INIT;
	int count = 0;
	tap_ok(d != NULL && dict_lmdb_lookup(d, "key00001", &v, &error) == 1 && v.len == 127,
	       "duplicate put kept the first value");
	tap_ok(d != NULL && dict_lmdb_walk(d, count_fn, &count, &error) == 0 && count == 30000,
	       "walk sees 30000 records (%d)", count);
	dict_lmdb_close(&d);
	str_deinit(&v);
}

/* Update: replace one, delete one, add one; the rest is kept. */
static void test_writer_update(void)
{
	const char *error = NULL, *value = NULL;
	const char *db = tpath(0, "w.lmdb");
	struct stat st;
	int count = 0;
	struct dict_lmdb_writer *w = dict_lmdb_writer_create(
		db, DICT_LMDB_WRITER_NUL | DICT_LMDB_WRITER_UPDATE, 0600, &error);
	tap_ok(w != NULL && dict_lmdb_writer_start(w, 0, &error) == 0, "update started");
	if (w != NULL) {
		tap_is_int(dict_lmdb_writer_put(w, "key00002", "replaced", true, &error), 0,
			   "replace reports an existing key");
		tap_is_int(dict_lmdb_writer_delete(w, "key00003", &error), 1, "delete existing");
		tap_is_int(dict_lmdb_writer_delete(w, "nokey", &error), 0, "delete absent");
		tap_is_int(dict_lmdb_writer_put(w, "added", "yes", false, &error), 1, "add new");
		tap_is_int(dict_lmdb_writer_commit(w, &error), 0, "update committed");
		dict_lmdb_writer_free(&w);
	}
	tap_ok(stat(db, &st) == 0 && (st.st_mode & 0777) == 0640, "update kept the file mode");
	const char *names[] = { "lmdb:", NULL };
	struct str name = STR_INIT;
	str_printf(&name, "lmdb:%s/w", tmpdir);
	names[0] = str_c(&name);
	dict_lmdb_set_check_interval(0);
	struct maps *maps = maps_create("t", names, &error);
	tap_ok(maps != NULL && maps_lookup(maps, "key00002", &value, &error) == 1 &&
		       strcmp(value, "replaced") == 0,
	       "replaced value");
	tap_ok(maps != NULL && maps_lookup(maps, "key00003", &value, &error) == 0, "deleted key");
	tap_ok(maps != NULL && maps_lookup(maps, "key29999", &value, &error) == 1, "kept key");
	count = 0;
	tap_ok(maps != NULL && maps_walk(maps, count_fn, &count, &error) == 0 && count == 30000,
	       "maps_walk: 30000 records after -1 +1");
	maps_free(&maps);
	str_deinit(&name);
	dict_lmdb_set_check_interval(1);
}

/* What the writer refuses, and what it leaves behind when abandoned. */
static void test_writer_refusals(void)
{
	const char *error = NULL;
	struct dict_lmdb_writer *w = dict_lmdb_writer_create(tpath(0, "absent.lmdb"),
				    DICT_LMDB_WRITER_UPDATE | DICT_LMDB_WRITER_MUST_EXIST, 0644,
				    &error);
	tap_ok(w == NULL && strstr(error, "No such file") != NULL,
	       "update of a missing file that must exist fails: %s", w ? "" : error);
	dict_lmdb_writer_free(&w);
	w = dict_lmdb_writer_create(tpath(0, "k.lmdb"), DICT_LMDB_WRITER_NUL, 0644, &error);
	char longkey[1024];
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	tap_ok(w != NULL && dict_lmdb_writer_start(w, 0, &error) == 0 &&
		       dict_lmdb_writer_put(w, longkey, "v", false, &error) == -1 &&
		       dict_lmdb_writer_put(w, "", "v", false, &error) == -1,
	       "too long and empty keys are refused");
	dict_lmdb_writer_free(&w);
	tap_ok(access(tpath(0, "k.lmdb"), F_OK) < 0 && access(tpath(1, "k.lmdb.tmp"), F_OK) < 0,
	       "an abandoned build leaves nothing behind");
}

/* maps_text_read: the parser's edge cases. */
struct collect {
	struct str out;
};

static int collect_fn(const char *key, const char *value, unsigned int lineno, void *ctx)
{
	struct collect *c = ctx;
	str_printf(&c->out, "%u[%s]=[%s];", lineno, key, value);
	return 0;
}

static const struct text_case {
	const char *in;
	const char *want;
} text_cases[] = {
	{ "a b\n", "1[a]=[b];" },
	{ "A  B  \n", "1[a]=[B];" },
	{ "a\tb c\n  d\n#x\n\te\nf g", "1[a]=[b c  d\te];5[f]=[g];" },
	{ " lead x\nk v\n", "2[k]=[v];" },
	{ "\"a b\" c\n", "1[\"a b\"]=[c];" },
	{ "a\\ b c\n", "1[a\\ b]=[c];" },
	{ "\"a b c\n", "" },
	{ "nokey\n\nk v\r\n", "3[k]=[v];" },
	{ "", "" },
};

static void test_text(void)
{
	for (size_t i = 0; i < N_ELEMENTS(text_cases); i++) {
		struct collect c = { STR_INIT };
		const char *error;
		write_file(tpath(0, "parse"), text_cases[i].in);
		FILE *fp = fopen(tpath(0, "parse"), "r");
		int ret = maps_text_read(fp, "parse", true, collect_fn, &c, &error);
		fclose(fp);
		tap_ok(ret == 0, "text case %zu parses", i);
		tap_is_str(str_c(&c.out), text_cases[i].want, "text case %zu", i);
		str_deinit(&c.out);
	}
}

/* cleanup: remove the temp dir's files and the dir. */
static void cleanup(void)
{
	static const char *const names[] = {
		"virtual",  "virtual.lmdb", "plain",	 "plain.lmdb", "text",	 "live",
		"live.lmdb", "bin.lmdb",    "empty.lmdb", "big",	"big.lmdb", "w.lmdb",
		"parse",    "k.lmdb",	    "live.lmdb.new",
	};
	for (size_t i = 0; i < N_ELEMENTS(names); i++)
		(void)unlink(tpath(0, names[i]));
	if (rmdir(tmpdir) < 0)
		tap_diag("rmdir %s failed", tmpdir);
}

int main(void)
{
	msg_init("test-maps");
	if (mkdtemp(tmpdir) == NULL)
		msg_fatal("mkdtemp failed");
	test_lmdb();
	test_lmdb_plain();
	test_static_inline();
	test_texthash();
	test_order();
	test_lookup_addr();
	test_reopen();
	test_errors();
	test_damaged();
	test_unix();
	test_writer();
	test_writer_update();
	test_writer_refusals();
	test_text();
	cleanup();
	return tap_done();
}
