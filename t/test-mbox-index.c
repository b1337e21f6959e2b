/* test-mbox-index.c: unit tests for lib/mail/mbox_index (add and lookup,
 * rebuild after the index is deleted or damaged keeps UIDs, flag changes
 * and expunges, adopting a Dovecot Maildir with dovecot-uidlist v3 and
 * dovecot-keywords). */
#include <config.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/maildir.h"
#include "mail/mbox_index.h"
#include "tap.h"
#include "util/str.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP || flag == FTW_D ? rmdir(path) : unlink(path);
}

static void rm_rf(const char *path)
{
	(void)nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		tap_diag("cannot write %s", path);
	if (fd >= 0)
		close(fd);
}

/* deliver: one message into INBOX; its base name goes to name. */
static void deliver(const char *root, struct str *name)
{
	struct iovec iov = { (void *)"Subject: t\n\nbody\n", 17 };
	const char *error = NULL;
	int err;
	str_clear(name);
	if (maildir_deliver(root, "INBOX", "host", &iov, 1, name, &err, &error) < 0)
		tap_diag("deliver: %s", error);
}

struct collect {
	uint32_t uids[16];
	unsigned n;
};

static bool collect_uid(void *ctx, const struct mbox_index_rec *r)
{
	struct collect *c = ctx;
	if (c->n < 16)
		c->uids[c->n++] = r->uid;
	return true;
}

static void test_rebuild(const char *root, struct str *names, uint32_t uidvalidity);

/* test_fresh: a Maildir Petrel delivered into: sync, add, lookups. */
static void test_fresh(const char *root)
{
	const char *error = NULL;
	struct str names[4] = { STR_INIT, STR_INIT, STR_INIT, STR_INIT };
	maildir_create(root, "INBOX", &error);
	for (int i = 0; i < 3; i++)
		deliver(root, &names[i]);
	struct mbox_index *ix = NULL;
	tap_is_int(mbox_index_open(root, &ix, &error), 0, "open: %s", error != NULL ? error : "ok");
	if (ix == NULL)
		return;
	tap_is_int(mbox_index_sync(ix, "INBOX", &error), 0, "sync");
	uint32_t uid = 0;
	for (int i = 0; i < 3; i++) {
		tap_is_int(mbox_index_lookup_name(ix, "INBOX", str_c(&names[i]), &uid, &error), 1,
			   "message %d found", i);
		tap_is_int(uid, i + 1, "in delivery order");
	}
	deliver(root, &names[3]);
	tap_is_int(mbox_index_add(ix, "INBOX", str_c(&names[3]), &uid, &error), 0, "add");
	tap_is_int(uid, 4, "next UID");
	tap_is_int(mbox_index_add(ix, "INBOX", str_c(&names[3]), &uid, &error), 0, "add again");
	tap_is_int(uid, 4, "same UID");
	struct mbox_index_rec rec;
	tap_is_int(mbox_index_lookup(ix, "INBOX", 4, &rec, &error), 1, "lookup 4");
	tap_is_str(rec.basename, str_c(&names[3]), "its base name");
	tap_is_int(mbox_index_lookup(ix, "INBOX", 9, &rec, &error), 0, "no UID 9");
	struct mbox_index_folder f;
	tap_is_int(mbox_index_folder(ix, "INBOX", &f, &error), 1, "folder header");
	uint32_t uidvalidity = f.uidvalidity;
	tap_is_int(f.uidnext, 5, "UIDNEXT");
	mbox_index_close(&ix);
	tap_ok(ix == NULL, "close clears the pointer");
	test_rebuild(root, names, uidvalidity);
	for (int i = 0; i < 4; i++)
		str_deinit(&names[i]);
}

/* test_rebuild: a deleted index, flag changes and an expunge, then a
 * damaged file: UIDs survive each. */
static void test_rebuild(const char *root, struct str *names, uint32_t uidvalidity)
{
	const char *error = NULL;
	struct mbox_index *ix = NULL;
	struct mbox_index_folder f;
	struct mbox_index_rec rec;
	uint32_t uid = 0;
	struct str path = STR_INIT;
	str_printf(&path, "%s/%s", root, MBOX_INDEX_FILE);
	unlink(str_c(&path));
	tap_is_int(mbox_index_open(root, &ix, &error), 0, "reopen");
	tap_is_int(mbox_index_sync(ix, "INBOX", &error), 0, "rebuild");
	tap_is_int(mbox_index_folder(ix, "INBOX", &f, &error), 1, "header again");
	tap_is_int(f.uidvalidity, uidvalidity, "same UIDVALIDITY");
	struct collect c = { { 0 }, 0 };
	tap_is_int(mbox_index_iterate(ix, "INBOX", collect_uid, &c, &error), 0, "iterate");
	tap_ok(c.n == 4 && c.uids[0] == 1 && c.uids[3] == 4, "UIDs 1..4 kept (%u)", c.n);
	tap_is_int(mbox_index_lookup_name(ix, "INBOX", str_c(&names[3]), &uid, &error), 1, "4th");
	tap_is_int(uid, 4, "keeps UID 4");

	/* Flags from cur/, and an expunge. */
	struct str from = STR_INIT, to = STR_INIT;
	str_printf(&from, "%s/new/%s", root, str_c(&names[0]));
	str_printf(&to, "%s/cur/%s:2,FS", root, str_c(&names[0]));
	rename(str_c(&from), str_c(&to));
	str_clear(&from);
	str_printf(&from, "%s/new/%s", root, str_c(&names[1]));
	unlink(str_c(&from));
	uint64_t modseq = f.highestmodseq;
	tap_is_int(mbox_index_sync(ix, "INBOX", &error), 0, "sync after changes");
	tap_is_int(mbox_index_lookup(ix, "INBOX", 1, &rec, &error), 1, "UID 1");
	tap_ok(rec.flags == (MBOX_FLAG_FLAGGED | MBOX_FLAG_SEEN) && rec.modseq > modseq,
	       "flags \\Flagged \\Seen with a new MODSEQ");
	tap_is_int(mbox_index_lookup(ix, "INBOX", 2, &rec, &error), 0, "UID 2 expunged");
	mbox_index_close(&ix);

	/* A damaged file is replaced. */
	write_file(root, MBOX_INDEX_FILE, "this is not an LMDB file, not at all........................");
	tap_is_int(mbox_index_open(root, &ix, &error), 0, "damaged index reopened");
	if (ix != NULL) {
		tap_is_int(mbox_index_sync(ix, "INBOX", &error), 0, "rebuilt");
		tap_is_int(mbox_index_lookup_name(ix, "INBOX", str_c(&names[2]), &uid, &error), 1,
			   "3rd found");
		tap_is_int(uid, 3, "keeps UID 3");
		mbox_index_close(&ix);
	}
	str_deinit(&path);
	str_deinit(&from);
	str_deinit(&to);
}

/* test_dovecot: a Maildir as Dovecot left it. */
static void test_dovecot(const char *root)
{
	const char *error = NULL;
	maildir_create(root, "INBOX", &error);
	maildir_create(root, "Work", &error);
	struct str dir = STR_INIT;
	str_printf(&dir, "%s/.Work", root);
	write_file(str_c(&dir), "dovecot-uidlist",
		   "3 V1234567 N10 G0123456789abcdef0123456789abcdef\n"
		   "3 :1700000000.M1P1.old,S=10,W=11\n"
		   "7 W99 S98 :1700000001.M2P1.old,S=20,W=22\n");
	write_file(str_c(&dir), "dovecot-keywords", "0 $Junk\n1 work\nbad line\n");
	write_file(str_c(&dir), "cur/1700000000.M1P1.old,S=10,W=11:2,Sa", "x");
	write_file(str_c(&dir), "new/1700000001.M2P1.old,S=20,W=22", "x");
	write_file(str_c(&dir), "new/1700000002.M3P1.old,S=30,W=33", "x");
	write_file(root, "subscriptions", "Work\n");
	struct mbox_index *ix = NULL;
	tap_is_int(mbox_index_open(root, &ix, &error), 0, "open the Dovecot Maildir");
	if (ix == NULL)
		return;
	tap_is_int(mbox_index_sync(ix, "Work", &error), 0, "adopt: %s", error != NULL ? error : "ok");
	struct mbox_index_folder f;
	tap_is_int(mbox_index_folder(ix, "Work", &f, &error), 1, "folder header");
	tap_is_int(f.uidvalidity, 1234567, "Dovecot's UIDVALIDITY");
	tap_is_str(f.guid, "0123456789abcdef0123456789abcdef", "Dovecot's GUID");
	uint32_t uid = 0;
	struct mbox_index_rec rec;
	mbox_index_lookup_name(ix, "Work", "1700000000.M1P1.old,S=10,W=11", &uid, &error);
	tap_is_int(uid, 3, "UID 3 kept");
	tap_is_int(mbox_index_lookup(ix, "Work", 3, &rec, &error), 1, "lookup 3");
	tap_ok(rec.flags == MBOX_FLAG_SEEN && rec.keywords == 1, "flags S and keyword a");
	mbox_index_lookup_name(ix, "Work", "1700000001.M2P1.old,S=20,W=22", &uid, &error);
	tap_is_int(uid, 7, "UID 7 kept");
	mbox_index_lookup_name(ix, "Work", "1700000002.M3P1.old,S=30,W=33", &uid, &error);
	tap_is_int(uid, 10, "an unlisted file gets next_uid");
	const char *kw = NULL;
	tap_is_int(mbox_index_keyword(ix, "Work", 0, &kw, &error), 1, "keyword 0");
	tap_is_str(kw, "$Junk", "keyword 0 name");
	tap_is_int(mbox_index_keyword(ix, "Work", 5, &kw, &error), 0, "no keyword 5");
	mbox_index_close(&ix);

	/* The rewritten uidlist is still Dovecot's v3. */
	char buf[512] = "";
	str_append(&dir, "/dovecot-uidlist");
	int fd = open(str_c(&dir), O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	tap_ok(strncmp(buf, "3 V1234567 N11 G0123456789abcdef0123456789abcdef\n3 :", 52) == 0 &&
	       strstr(buf, "\n10 :1700000002.M3P1.old,S=30,W=33\n") != NULL,
	       "dovecot-uidlist rewritten in v3");
	str_deinit(&dir);

	/* A version 1 uidlist is adopted and rewritten as version 3, so
	 * that later appends are valid. */
	maildir_create(root, "Old", &error);
	str_clear(&dir);
	str_printf(&dir, "%s/.Old", root);
	write_file(str_c(&dir), "dovecot-uidlist", "1 555 5\n2 1700000000.M1P1.h\n");
	write_file(str_c(&dir), "new/1700000000.M1P1.h", "x");
	tap_is_int(mbox_index_open(root, &ix, &error), 0, "open again");
	tap_is_int(mbox_index_sync(ix, "Old", &error), 0, "adopt v1");
	mbox_index_lookup_name(ix, "Old", "1700000000.M1P1.h", &uid, &error);
	tap_is_int(uid, 2, "v1 UID kept");
	mbox_index_close(&ix);
	str_append(&dir, "/dovecot-uidlist");
	fd = open(str_c(&dir), O_RDONLY);
	buf[0] = '\0';
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	tap_ok(strncmp(buf, "3 V555 N5 G", 11) == 0 && strstr(buf, "\n2 :1700000000.M1P1.h\n"),
	       "rewritten as v3: %.40s", buf);

	/* A broken uidlist is an error, not a renumbering. */
	str_clear(&dir);
	str_printf(&dir, "%s", root);
	write_file(str_c(&dir), "dovecot-uidlist", "3 V5 N2\n2 :a\n1 :b\n");
	tap_is_int(mbox_index_open(root, &ix, &error), 0, "open");
	tap_is_int(mbox_index_sync(ix, "INBOX", &error), -1, "UIDs out of order refused");
	mbox_index_close(&ix);
	str_deinit(&dir);
}

/* test_delivery_records: record, repeat, lookup, per folder, expiry. */
static void test_delivery_records(const char *root)
{
	const char *error = NULL, *name = NULL;
	struct mbox_index *ix = NULL;
	uint32_t uid = 0;
	maildir_create(root, "INBOX", &error);
	tap_is_int(mbox_index_open(root, &ix, &error), 0, "records: open");
	tap_is_int(mbox_index_sync(ix, "INBOX", &error), 0, "records: sync");
	tap_is_int(mbox_index_delivery_lookup(ix, "INBOX", "Q1", &name, &error), 0,
		   "unknown id: not found");
	tap_is_int(mbox_index_delivery_record(ix, "INBOX", "Q1", "100.M1P1.h,S=1,W=1", 1000, 0,
					      &uid, &name, &error), 1, "recorded");
	tap_ok(uid > 0, "recorded with a UID (%u)", uid);
	uint32_t found = 0;
	tap_ok(mbox_index_lookup_name(ix, "INBOX", "100.M1P1.h,S=1,W=1", &found, &error) == 1 &&
	       found == uid, "the name has that UID");
	tap_is_int(mbox_index_delivery_record(ix, "inbox", "Q1", "200.M2P2.h,S=1,W=1", 1001, 0,
					      &uid, &name, &error), 0, "a repeat is not recorded");
	tap_is_str(name, "100.M1P1.h,S=1,W=1", "the repeat gets the first name");
	tap_ok(mbox_index_delivery_lookup(ix, "INBOX", "Q1", &name, &error) == 1 &&
	       strcmp(name, "100.M1P1.h,S=1,W=1") == 0, "lookup finds it");
	tap_is_int(mbox_index_delivery_lookup(ix, "Sent", "Q1", &name, &error), 0,
		   "records are per folder");
	tap_is_int(mbox_index_delivery_lookup(ix, "INBOX", "bad-id", &name, &error), -1,
		   "a bad id is refused");
	/* A record from time 2000 expires Q1 (time 1000, before 1500). */
	tap_is_int(mbox_index_delivery_record(ix, "INBOX", "Q2", "300.M3P3.h,S=1,W=1", 2000, 1500,
					      &uid, &name, &error), 1, "second id recorded");
	tap_is_int(mbox_index_delivery_lookup(ix, "INBOX", "Q1", &name, &error), 0,
		   "the old record expired");
	tap_is_int(mbox_index_delivery_lookup(ix, "INBOX", "Q2", &name, &error), 1,
		   "the new one stays");
	mbox_index_close(&ix);
	tap_is_int(mbox_index_open(root, &ix, &error), 0, "reopened");
	tap_is_int(mbox_index_delivery_lookup(ix, "INBOX", "Q2", &name, &error), 1,
		   "the record survives a reopen");
	mbox_index_close(&ix);
}

int main(void)
{
	char base[] = "/tmp/test-mbox-index.XXXXXX";
	if (mkdtemp(base) == NULL)
		return 1;
	struct str root = STR_INIT;
	str_printf(&root, "%s/fresh/Maildir", base);
	test_fresh(str_c(&root));
	str_clear(&root);
	str_printf(&root, "%s/dovecot/Maildir", base);
	test_dovecot(str_c(&root));
	str_clear(&root);
	str_printf(&root, "%s/records/Maildir", base);
	test_delivery_records(str_c(&root));
	str_deinit(&root);
	rm_rf(base);
	return tap_done();
}
