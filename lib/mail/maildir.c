/* maildir.c: Maildir++ folders, Dovecot file names and the durable
 * tmp -> new delivery; see maildir.h. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/maildir.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/msg.h"

#define MAILDIR_LINK_TRIES 10

static struct str maildir_error;

/* maildir_fail: format the module's last error; returns its text. */
static const char *maildir_fail(const char *fmt, ...) ATTR_FORMAT(1, 2);
static const char *maildir_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *text = str_set_vprintf(&maildir_error, fmt, ap);
	va_end(ap);
	return text;
}

bool maildir_folder_valid(const char *folder)
{
	size_t len = strlen(folder);
	if (len == 0 || len > MAILDIR_FOLDER_MAX || folder[0] == '.' || folder[len - 1] == '.')
		return false;
	if (strstr(folder, "..") != NULL)
		return false;
	for (const unsigned char *p = (const unsigned char *)folder; *p != '\0'; p++) {
		if (*p == '/' || *p < 0x20 || *p == 0x7f)
			return false;
	}
	return true;
}

void maildir_folder_dir(struct str *out, const char *root, const char *folder)
{
	str_append(out, root);
	if (!str_eq_icase(folder, "INBOX")) {
		str_append(out, "/.");
		str_append(out, folder);
	}
}

bool maildir_folder_exists(const char *root, const char *folder)
{
	struct str path = STR_INIT;
	struct stat st;
	maildir_folder_dir(&path, root, folder);
	str_append(&path, "/cur");
	bool ok = stat(str_c(&path), &st) == 0 && S_ISDIR(st.st_mode);
	str_deinit(&path);
	return ok;
}

/* maildir_mkdir: mkdir that accepts an existing directory. */
static int maildir_mkdir(const char *path, const char **error_r)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		*error_r = maildir_fail("mkdir(%s) failed: %m", path);
		return -1;
	}
	return 0;
}

/* maildir_mkdir_parents: the root and the directories above it. */
static int maildir_mkdir_parents(const char *root, const char **error_r)
{
	char *copy = xstrdup(root);
	int ret = 0;
	for (char *p = copy + 1; *p != '\0' && ret == 0; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		ret = maildir_mkdir(copy, error_r);
		*p = '/';
	}
	if (ret == 0)
		ret = maildir_mkdir(copy, error_r);
	free(copy);
	return ret;
}

int maildir_create(const char *root, const char *folder, const char **error_r)
{
	static const char *const subdirs[] = { "cur", "new", "tmp" };
	struct str path = STR_INIT;
	int ret = maildir_mkdir_parents(root, error_r);
	maildir_folder_dir(&path, root, folder);
	size_t base = path.len;
	if (ret == 0 && !str_eq_icase(folder, "INBOX"))
		ret = maildir_mkdir(str_c(&path), error_r);
	for (size_t i = 0; i < 3 && ret == 0; i++) {
		str_truncate(&path, base);
		str_printf(&path, "/%s", subdirs[i]);
		ret = maildir_mkdir(str_c(&path), error_r);
	}
	if (ret == 0 && !str_eq_icase(folder, "INBOX")) {
		str_truncate(&path, base);
		str_append(&path, "/maildirfolder");
		int fd = open(str_c(&path), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			*error_r = maildir_fail("open(%s) failed: %m", str_c(&path));
			ret = -1;
		} else
			close(fd);
	}
	str_deinit(&path);
	return ret;
}

void maildir_base_name(struct str *out, const char *hostname, struct timeval *tv_r)
{
	static struct timeval last;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	/* Never reuse a time: names are unique because time moves on. */
	if (tv.tv_sec < last.tv_sec || (tv.tv_sec == last.tv_sec && tv.tv_usec <= last.tv_usec)) {
		tv = last;
		if (++tv.tv_usec == 1000000) {
			tv.tv_sec++;
			tv.tv_usec = 0;
		}
	}
	last = tv;
	str_printf(out, "%lld.M%ldP%ld.", (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid());
	for (const char *p = hostname; *p != '\0'; p++) {
		if (*p == '/')
			str_append(out, "\\057");
		else if (*p == ':')
			str_append(out, "\\072");
		else
			str_append_c(out, *p);
	}
	if (tv_r != NULL)
		*tv_r = tv;
}

void maildir_sizes(const void *data, size_t len, long long *size_r, long long *vsize_r)
{
	const char *p = data;
	long long lf = 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			lf++;
	}
	*size_r = (long long)len;
	*vsize_r = (long long)len + lf;
}

/* maildir_write_all: writev until everything is written. */
static int maildir_write_all(int fd, const struct iovec *iov, int iovcnt)
{
	for (int i = 0; i < iovcnt; i++) {
		const char *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;
		while (left > 0) {
			ssize_t n = write(fd, p, left);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -1;
			p += n;
			left -= (size_t)n;
		}
	}
	return 0;
}

/* maildir_write_tmp: tmp/<base> with the content, fsync'd and closed. */
static int maildir_write_tmp(const char *path, const struct iovec *iov, int iovcnt,
			     int *errno_r, const char **error_r)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		*errno_r = errno;
		*error_r = maildir_fail("open(%s) failed: %m", path);
		return -1;
	}
	const char *op = NULL;
	if (maildir_write_all(fd, iov, iovcnt) < 0)
		op = "write";
	else if (fsync(fd) < 0)
		op = "fsync";
	int saved = errno;
	if (close(fd) < 0 && op == NULL) {
		op = "close";
		saved = errno;
	}
	if (op != NULL) {
		*errno_r = saved;
		errno = saved;
		*error_r = maildir_fail("%s(%s) failed: %m", op, path);
		unlink(path);
		return -1;
	}
	return 0;
}

/* maildir_link_new: give the tmp file its name in new/, never replacing. */
static int maildir_link_new(const char *tmp, const char *dst, int *errno_r, const char **error_r)
{
	if (link(tmp, dst) == 0) {
		unlink(tmp);
		return 0;
	}
	if (errno == EPERM || errno == ENOSYS || errno == EOPNOTSUPP) {
		/* No hard links here (some FUSE/network file systems). */
		struct stat st;
		if (lstat(dst, &st) < 0 && errno == ENOENT && rename(tmp, dst) == 0)
			return 0;
	}
	*errno_r = errno;
	*error_r = maildir_fail("link(%s, %s) failed: %m", tmp, dst);
	return -1;
}

/* maildir_write_fresh: the content as dir/tmp/<name> under a fresh
 * name (base name, S= and W=), fsync'd and closed; the name in name_r
 * (cleared first). A name already taken is replaced by another. */
static int maildir_write_fresh(const char *dir, const char *hostname, const struct iovec *iov,
			       int iovcnt, struct str *name_r, int *errno_r, const char **error_r)
{
	long long size = 0, vsize = 0;
	for (int i = 0; i < iovcnt; i++) {
		long long s, v;
		maildir_sizes(iov[i].iov_base, iov[i].iov_len, &s, &v);
		size += s;
		vsize += v;
	}
	struct str tmp = STR_INIT;
	int ret = -1;
	*errno_r = 0;
	for (int tries = 0; tries < MAILDIR_LINK_TRIES && ret < 0; tries++) {
		str_clear(name_r);
		maildir_base_name(name_r, hostname, NULL);
		str_printf(name_r, ",S=%lld,W=%lld", size, vsize);
		str_clear(&tmp);
		str_printf(&tmp, "%s/tmp/%s", dir, str_c(name_r));
		if (maildir_write_tmp(str_c(&tmp), iov, iovcnt, errno_r, error_r) == 0)
			ret = 0;
		else if (*errno_r != EEXIST)
			break;
	}
	str_deinit(&tmp);
	return ret;
}

int maildir_deliver(const char *root, const char *folder, const char *hostname,
		    const struct iovec *iov, int iovcnt, struct str *name_r, int *errno_r,
		    const char **error_r)
{
	struct str dir = STR_INIT, tmp = STR_INIT, dst = STR_INIT, name = STR_INIT;
	maildir_folder_dir(&dir, root, folder);
	int ret = -1;
	for (int tries = 0; tries < MAILDIR_LINK_TRIES && ret < 0; tries++) {
		if (maildir_write_fresh(str_c(&dir), hostname, iov, iovcnt, &name, errno_r,
					error_r) < 0)
			break;
		str_clear(&tmp);
		str_printf(&tmp, "%s/tmp/%s", str_c(&dir), str_c(&name));
		str_clear(&dst);
		str_printf(&dst, "%s/new/%s", str_c(&dir), str_c(&name));
		if (maildir_link_new(str_c(&tmp), str_c(&dst), errno_r, error_r) == 0)
			ret = 0;
		else {
			unlink(str_c(&tmp));
			if (*errno_r != EEXIST)
				break;
		}
	}
	if (ret == 0) {
		str_append(&dir, "/new");
		if (fsync_dir(str_c(&dir)) < 0) {
			/* The name may not survive a crash: the message is not
			 * durable, so it must not be acknowledged either. */
			*errno_r = errno;
			*error_r = maildir_fail("fsync(%s) failed: %m", str_c(&dir));
			unlink(str_c(&dst));
			ret = -1;
		} else
			str_append(name_r, str_c(&name));
	}
	str_deinit(&dir);
	str_deinit(&tmp);
	str_deinit(&dst);
	str_deinit(&name);
	return ret;
}

int maildir_prepare(const char *root, const char *folder, const char *hostname,
		    const struct iovec *iov, int iovcnt, struct str *name_r, int *errno_r,
		    const char **error_r)
{
	struct str dir = STR_INIT, name = STR_INIT;
	maildir_folder_dir(&dir, root, folder);
	int ret = maildir_write_fresh(str_c(&dir), hostname, iov, iovcnt, &name, errno_r, error_r);
	if (ret == 0) {
		/* The tmp/ entry must be durable before anyone records it. */
		str_append(&dir, "/tmp");
		if (fsync_dir(str_c(&dir)) < 0) {
			*errno_r = errno;
			*error_r = maildir_fail("fsync(%s) failed: %m", str_c(&dir));
			str_printf(&dir, "/%s", str_c(&name));
			unlink(str_c(&dir));
			ret = -1;
		} else
			str_append(name_r, str_c(&name));
	}
	str_deinit(&dir);
	str_deinit(&name);
	return ret;
}

/* maildir_move_again: a file an earlier attempt moved into new/ whose
 * directory sync may have failed then: a second fsync of new/ would prove
 * nothing (a failed sync can leave the directory "clean"), so the entry
 * is made again, new/ -> tmp/ -> new/, and the caller syncs that. A crash
 * in between leaves it in tmp/, where the next finish finds it. */
static int maildir_move_again(const char *tmp, const char *dst)
{
	struct stat st;
	if (lstat(dst, &st) < 0)
		return errno == ENOENT ? 0 : -1; /* read, moved or deleted since */
	if (rename_noreplace(dst, tmp) < 0)
		return errno == ENOENT ? 0 : -1;
	return rename_noreplace(tmp, dst) < 0 ? -1 : 0;
}

/* maildir_move_new: tmp/name -> new/name unless that happened already. */
static int maildir_move_new(const char *tmp, const char *dst, int *errno_r, const char **error_r)
{
	int r = rename_noreplace(tmp, dst);
	if (r >= 0)
		return 0;
	if (errno == ENOENT) {
		/* Moved by an earlier attempt (then the user may have moved it
		 * on to cur/ or expunged it) or by a concurrent one. */
		struct stat st;
		if (lstat(tmp, &st) < 0 && errno == ENOENT && maildir_move_again(tmp, dst) == 0)
			return 0;
	}
	if (errno == EEXIST) {
		/* Both names after a crash in a link()+unlink() fallback. */
		unlink(tmp);
		return 0;
	}
	*errno_r = errno;
	*error_r = maildir_fail("rename(%s, %s) failed: %m", tmp, dst);
	return -1;
}

int maildir_finish(const char *root, const char *folder, const char *name, int *errno_r,
		   const char **error_r)
{
	struct str dir = STR_INIT, tmp = STR_INIT, dst = STR_INIT;
	maildir_folder_dir(&dir, root, folder);
	str_printf(&tmp, "%s/tmp/%s", str_c(&dir), name);
	str_printf(&dst, "%s/new/%s", str_c(&dir), name);
	*errno_r = 0;
	int ret = maildir_move_new(str_c(&tmp), str_c(&dst), errno_r, error_r);
	if (ret == 0) {
		str_append(&dir, "/new");
		if (fsync_dir(str_c(&dir)) < 0) {
			*errno_r = errno;
			*error_r = maildir_fail("fsync(%s) failed: %m", str_c(&dir));
			ret = -1;
		}
	}
	str_deinit(&dir);
	str_deinit(&tmp);
	str_deinit(&dst);
	return ret;
}

void maildir_discard(const char *root, const char *folder, const char *name)
{
	struct str path = STR_INIT;
	maildir_folder_dir(&path, root, folder);
	str_printf(&path, "/tmp/%s", name);
	unlink(str_c(&path));
	str_deinit(&path);
}

/* maildir_usage_dir: sum the message sizes in one cur/ or new/. */
static long long maildir_usage_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	long long total = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		const char *s = strstr(e->d_name, ",S=");
		if (s != NULL) {
			total += strtoll(s + 3, NULL, 10);
			continue;
		}
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, 0) == 0)
			total += st.st_size;
	}
	closedir(d);
	return total;
}

long long maildir_usage(const char *root)
{
	struct str path = STR_INIT;
	long long total = 0;
	DIR *d = opendir(root);
	if (d == NULL) {
		str_deinit(&path);
		return errno == ENOENT ? 0 : -1;
	}
	struct dirent *e;
	/* "" stands for INBOX (the root itself). */
	const char *name = "";
	do {
		if (name[0] == '\0' || (name[0] == '.' && name[1] != '\0' && name[1] != '.')) {
			static const char *const sub[] = { "cur", "new" };
			for (size_t i = 0; i < 2 && total >= 0; i++) {
				str_clear(&path);
				str_printf(&path, "%s/%s%s%s", root, name, name[0] != '\0' ? "/" : "", sub[i]);
				long long n = maildir_usage_dir(str_c(&path));
				total = n < 0 ? -1 : total + n;
			}
		}
		e = readdir(d);
		name = e != NULL ? e->d_name : NULL;
	} while (name != NULL && total >= 0);
	closedir(d);
	str_deinit(&path);
	return total;
}
