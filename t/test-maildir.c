/* test-maildir.c: unit tests for lib/mail/maildir (folder names, file
 * names with S= and W=, the durable delivery path, ENOSPC on a tiny
 * tmpfs when the test may mount one, usage). */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/maildir.h"
#include "tap.h"
#include "util/str.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP || flag == FTW_D ? rmdir(path) : unlink(path);
}

/* rm_rf: remove a test tree. */
static void rm_rf(const char *path)
{
	(void)nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* count_dir: entries (not . and ..) in a directory; -1 if unreadable. */
static int count_dir(const char *path, char *first, size_t size)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n++ == 0 && first != NULL)
			snprintf(first, size, "%s", e->d_name);
	}
	closedir(d);
	return n;
}

struct folder_case {
	const char *name;
	bool valid;
};

static const struct folder_case folder_cases[] = {
	{ "Sent", true }, { "a.b", true }, { "Entwürfe", true }, { "", false }, { ".x", false },
	{ "x.", false }, { "a..b", false }, { "a/b", false }, { "tab\tx", false },
};

static void test_folders(void)
{
	for (size_t i = 0; i < sizeof(folder_cases) / sizeof(folder_cases[0]); i++)
		tap_ok(maildir_folder_valid(folder_cases[i].name) == folder_cases[i].valid,
		       "folder \"%s\" %s", folder_cases[i].name,
		       folder_cases[i].valid ? "valid" : "refused");
	struct str s = STR_INIT;
	maildir_folder_dir(&s, "/m", "INBOX");
	tap_is_str(str_c(&s), "/m", "INBOX is the root");
	str_clear(&s);
	maildir_folder_dir(&s, "/m", "Sent");
	tap_is_str(str_c(&s), "/m/.Sent", "Sent is .Sent");
	str_deinit(&s);
}

struct size_case {
	const char *data;
	long long size, vsize;
};

static const struct size_case size_cases[] = {
	{ "", 0, 0 }, { "a\n", 2, 3 }, { "a\nb\n\n", 5, 8 }, { "no newline", 10, 10 },
	{ "cr\r\nkept\n", 9, 10 },
};

static void test_names(void)
{
	for (size_t i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]); i++) {
		long long s, v;
		maildir_sizes(size_cases[i].data, strlen(size_cases[i].data), &s, &v);
		tap_ok(s == size_cases[i].size && v == size_cases[i].vsize, "sizes of case %zu: S=%lld W=%lld",
		       i, s, v);
	}
	struct str a = STR_INIT, b = STR_INIT;
	maildir_base_name(&a, "host/x:y", NULL);
	maildir_base_name(&b, "host/x:y", NULL);
	tap_ok(strcmp(str_c(&a), str_c(&b)) != 0, "two names in a row differ");
	char pid[32];
	snprintf(pid, sizeof(pid), "P%ld.host\\057x\\072y", (long)getpid());
	tap_ok(strstr(str_c(&a), pid) != NULL && strstr(str_c(&a), ".M") != NULL,
	       "Dovecot's form with escaped host: %s", str_c(&a));
	str_deinit(&a);
	str_deinit(&b);
}

static void test_deliver(const char *root)
{
	const char *error = NULL;
	tap_is_int(maildir_create(root, "INBOX", &error), 0, "INBOX created");
	tap_is_int(maildir_create(root, "Sent", &error), 0, "Sent created");
	tap_ok(maildir_folder_exists(root, "Sent") && !maildir_folder_exists(root, "Nope"),
	       "folder_exists");
	static const char hdr[] = "Return-Path: <a@b>\nDelivered-To: c@d\n";
	static const char body[] = "Subject: x\n\nhello\n";
	struct iovec iov[2] = { { (void *)hdr, sizeof(hdr) - 1 }, { (void *)body, sizeof(body) - 1 } };
	struct str name = STR_INIT, path = STR_INIT;
	int err;
	tap_is_int(maildir_deliver(root, "INBOX", "h", iov, 2, &name, &err, &error), 0, "delivered");
	long long size = (long long)(sizeof(hdr) + sizeof(body) - 2);
	char want[64];
	snprintf(want, sizeof(want), ",S=%lld,W=%lld", size, size + 5);
	tap_ok(strstr(str_c(&name), want) != NULL, "name %s has %s", str_c(&name), want);
	str_printf(&path, "%s/new/%s", root, str_c(&name));
	char buf[256] = "";
	int fd = open(str_c(&path), O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	tap_ok(n == size && strncmp(buf, hdr, sizeof(hdr) - 1) == 0 &&
	       strcmp(buf + sizeof(hdr) - 1, body) == 0, "content in new/");
	str_clear(&path);
	str_printf(&path, "%s/tmp", root);
	tap_is_int(count_dir(str_c(&path), NULL, 0), 0, "nothing left in tmp/");
	str_clear(&name);
	tap_is_int(maildir_deliver(root, "Sent", "h", iov, 2, &name, &err, &error), 0, "into Sent");
	tap_is_int(maildir_usage(root), 2 * size, "usage counts both folders");
	tap_is_int(maildir_deliver(root, "Missing", "h", iov, 2, &name, &err, &error), -1,
		   "a missing folder fails");
	tap_ok(err == ENOENT, "with ENOENT (%s)", error);
	str_deinit(&name);
	str_deinit(&path);
}

/* test_two_step: prepare leaves the file in tmp/ only; finish moves it
 * and may be repeated (a retry after a crash); discard removes it. */
static void test_two_step(const char *root)
{
	static const char body[] = "Subject: y\n\ntwo steps\n";
	struct iovec iov[2] = { { (void *)"", 0 }, { (void *)body, sizeof(body) - 1 } };
	struct str name = STR_INIT, tmp = STR_INIT, new = STR_INIT;
	const char *error = NULL;
	int err;
	str_printf(&tmp, "%s/tmp", root);
	str_printf(&new, "%s/new", root);
	int before = count_dir(str_c(&new), NULL, 0);
	tap_is_int(maildir_prepare(root, "INBOX", "h", iov, 2, &name, &err, &error), 0, "prepared");
	tap_ok(strstr(str_c(&name), ",S=22,W=25") != NULL, "prepared name %s", str_c(&name));
	tap_ok(count_dir(str_c(&tmp), NULL, 0) == 1 && count_dir(str_c(&new), NULL, 0) == before,
	       "prepared file only in tmp/");
	tap_is_int(maildir_finish(root, "INBOX", str_c(&name), &err, &error), 0, "finished");
	tap_ok(count_dir(str_c(&tmp), NULL, 0) == 0 && count_dir(str_c(&new), NULL, 0) == before + 1,
	       "finished file in new/");
	tap_is_int(maildir_finish(root, "INBOX", str_c(&name), &err, &error), 0,
		   "finishing again is harmless");
	tap_is_int(count_dir(str_c(&new), NULL, 0), before + 1, "still one copy");
	str_clear(&name);
	tap_is_int(maildir_prepare(root, "INBOX", "h", iov, 2, &name, &err, &error), 0,
		   "prepared another");
	maildir_discard(root, "INBOX", str_c(&name));
	tap_ok(count_dir(str_c(&tmp), NULL, 0) == 0 && count_dir(str_c(&new), NULL, 0) == before + 1,
	       "discarded: nothing in tmp/ or new/");
	str_deinit(&name);
	str_deinit(&tmp);
	str_deinit(&new);
}

/* test_enospc: a 64 KiB tmpfs; a message bigger than that must fail with
 * ENOSPC and leave nothing in new/ or tmp/. */
static void test_enospc(const char *base)
{
	struct str mnt = STR_INIT;
	str_printf(&mnt, "%s/small", base);
	mkdir(str_c(&mnt), 0700);
	if (geteuid() != 0 || mount("tmpfs", str_c(&mnt), "tmpfs", 0, "size=64k") < 0) {
		tap_skip("cannot mount a small tmpfs (not root, or refused)");
		str_deinit(&mnt);
		return;
	}
	const char *error = NULL;
	int err = 0;
	str_append(&mnt, "/Maildir");
	tap_is_int(maildir_create(str_c(&mnt), "INBOX", &error), 0, "Maildir on the tmpfs");
	size_t big = 256 * 1024;
	char *data = malloc(big);
	memset(data, 'x', big);
	struct iovec iov = { data, big };
	struct str name = STR_INIT, path = STR_INIT;
	int r = maildir_deliver(str_c(&mnt), "INBOX", "h", &iov, 1, &name, &err, &error);
	tap_ok(r == -1 && err == ENOSPC, "ENOSPC reported (%s)", r < 0 ? error : "delivered");
	str_printf(&path, "%s/new", str_c(&mnt));
	tap_is_int(count_dir(str_c(&path), NULL, 0), 0, "nothing in new/");
	str_clear(&path);
	str_printf(&path, "%s/tmp", str_c(&mnt));
	tap_is_int(count_dir(str_c(&path), NULL, 0), 0, "nothing in tmp/");
	free(data);
	str_truncate(&mnt, mnt.len - strlen("/Maildir"));
	umount(str_c(&mnt));
	str_deinit(&mnt);
	str_deinit(&name);
	str_deinit(&path);
}

int main(void)
{
	char base[] = "/tmp/test-maildir.XXXXXX";
	if (mkdtemp(base) == NULL)
		return 1;
	struct str root = STR_INIT;
	str_printf(&root, "%s/home/u/Maildir", base);
	test_folders();
	test_names();
	test_deliver(str_c(&root));
	test_two_step(str_c(&root));
	test_enospc(base);
	str_deinit(&root);
	rm_rf(base);
	return tap_done();
}
