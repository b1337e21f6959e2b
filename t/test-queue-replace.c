/* test-queue-replace.c: unit tests for queue_writer_commit_replace()
 * (lib/mail/queue.c), pickup's atomic "converted file in place of the raw
 * one": the target replaced or created, the file's ID its own, and on a
 * failed rename the temp file gone and the target untouched. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/queue.h"
#include "tap.h"
#include "util/str.h"

/* What is at the target before the commit. */
enum target_kind {
	TARGET_FILE,    /* a regular file: replaced */
	TARGET_NONE,    /* nothing: created */
	TARGET_DIR,     /* a non-empty directory: rename fails, left alone */
	TARGET_NO_PARENT, /* the target's directory is missing: fails */
};

static const struct replace_case {
	const char *name;
	enum target_kind kind;
	bool ok;
} cases[] = {
	{ "replaces a file", TARGET_FILE, true },
	{ "creates a missing name", TARGET_NONE, true },
	{ "refuses a directory", TARGET_DIR, false },
	{ "fails without the directory", TARGET_NO_PARENT, false },
};

static char test_root[256];

/* rm_entry: nftw callback removing one entry (depth first). */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP || flag == FTW_D ? rmdir(path) : unlink(path);
}

/* temp_count: the ".tmp.*" files left in dir. */
static int temp_count(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL)
		n += strncmp(de->d_name, ".tmp.", 5) == 0;
	if (d != NULL)
		closedir(d);
	return n;
}

/* setup_target: make what the case puts at path. */
static void setup_target(enum target_kind kind, const char *path)
{
	struct str inner = STR_INIT;
	if (kind == TARGET_FILE) {
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0444);
		if (fd < 0 || write(fd, "raw", 3) != 3)
			tap_diag("create %s: %s", path, strerror(errno));
		if (fd >= 0)
			(void)close(fd);
	} else if (kind == TARGET_DIR) {
		str_printf(&inner, "%s/inner", path);
		if (mkdir(path, 0700) < 0 || mkdir(str_c(&inner), 0700) < 0)
			tap_diag("mkdir %s: %s", path, strerror(errno));
	}
	str_deinit(&inner);
}

/* run_case: one commit_replace onto the case's target. */
static void run_case(const struct replace_case *c, size_t i)
{
	struct str qdir = STR_INIT, target = STR_INIT, incoming = STR_INIT;
	const char *error = "";
	int err = 0;
	struct stat st;
	str_printf(&qdir, "%s/q%zu", test_root, i);
	if (queue_dirs_create(str_c(&qdir), &error) < 0)
		tap_diag("queue_dirs_create: %s", error);
	str_printf(&incoming, "%s/%s", str_c(&qdir), QUEUE_INCOMING);
	str_printf(&target, "%s/%s/M.0123", str_c(&qdir),
		   c->kind == TARGET_NO_PARENT ? "missing" : QUEUE_PICKUP);
	setup_target(c->kind, str_c(&target));

	struct queue_writer *qw = queue_writer_open(str_c(&qdir), &error);
	char id[QUEUE_ID_MAX] = "";
	if (qw != NULL) {
		(void)snprintf(id, sizeof(id), "%s", queue_writer_id(qw));
		queue_writer_sender(qw, "a@example.test");
		queue_writer_attr(qw, "pickup_id", id);
		queue_writer_rcpt(qw, &(struct queue_rcpt){ .address = "b@example.test" });
		queue_writer_content(qw, "hi\r\n", 4);
	}
	int ret = qw != NULL ? queue_writer_commit_replace(&qw, str_c(&target), &err, &error) : -1;
	tap_ok(qw == NULL, "%s: writer freed", c->name);
	tap_is_int(ret, c->ok ? 0 : -1, "%s: result (%s)", c->name, ret < 0 ? error : "ok");
	tap_is_int(temp_count(str_c(&incoming)), 0, "%s: no temp file left", c->name);
	if (c->ok) {
		struct queue_file *qf = queue_file_read(str_c(&target), &error);
		tap_ok(qf != NULL, "%s: the target is the new queue file", c->name);
		char want[QUEUE_ID_MAX] = "";
		struct timeval tv;
		if (stat(str_c(&target), &st) == 0 && queue_id_time(id, &tv))
			queue_id_format(want, &tv, (unsigned long long)st.st_ino);
		tap_is_str(want, id, "%s: its inode is the one in its ID", c->name);
		tap_is_int((long long)(st.st_mode & 07777), 0600, "%s: mode 0600", c->name);
		queue_file_free(&qf);
	} else {
		tap_ok(err != 0, "%s: errno handed back", c->name);
		tap_ok(c->kind != TARGET_DIR ||
			       (lstat(str_c(&target), &st) == 0 && S_ISDIR(st.st_mode)),
		       "%s: the target is untouched", c->name);
	}
	str_deinit(&qdir);
	str_deinit(&target);
	str_deinit(&incoming);
}

int main(void)
{
	(void)snprintf(test_root, sizeof(test_root), "%s/petrel-test-qreplace-XXXXXX",
		       getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(test_root) == NULL) {
		tap_diag("mkdtemp: %s", strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i], i);
	(void)nftw(test_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
