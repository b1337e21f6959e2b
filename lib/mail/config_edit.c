/* config_edit.c: rewrite main.cf for "postconf -e" and "postconf -X";
 * see config_edit() and config_remove() in config.h.
 *
 * The walk over the file is Postfix's (postconf_edit.c): comment and blank
 * lines are copied, each logical line that defines the name is replaced
 * (its continuation lines dropped, comment lines among them kept), and a
 * definition not found is appended. The result goes to main.cf.tmp, which
 * is locked first so that concurrent editors take turns, then fsync'd,
 * renamed over main.cf, and the directory fsync'd. Mode and (when run as
 * root) owner of the old file are kept. */
#include <config.h> /* autoconf; "config.h" here would be mail/config.h */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/config_private.h"
#include "util/alloc.h"
#include "util/str.h"

/* config_edit_key: does physical line start a definition of name? */
static bool config_edit_key(const char *line, size_t len, const char *name)
{
	size_t n = 0;
	while (n < len && !str_isspace((unsigned char)line[n]) && line[n] != '=')
		n++;
	return n == strlen(name) && memcmp(line, name, n) == 0;
}

/* config_edit_rewrite: Postfix's postconf -e / -X walk over main.cf:
 * comments and blank lines are copied, every logical line defining name is
 * replaced by "name = value" (or dropped when value is NULL) together with
 * its continuation lines, and a definition not found is appended. */
static void config_edit_rewrite(const char *data, size_t size, const char *name,
				const char *value, struct str *out)
{
	bool inside = false, found = false;

	for (size_t pos = 0; pos < size;) {
		const char *nl = memchr(data + pos, '\n', size - pos);
		size_t len = nl != NULL ? (size_t)(nl - (data + pos)) : size - pos;
		const char *line = data + pos;
		pos += len + (nl != NULL);
		size_t skip = 0;
		while (skip < len && str_isspace((unsigned char)line[skip]))
			skip++;
		if (skip == len || line[skip] == '#' || (skip > 0 && !inside)) {
			str_append_n(out, line, len);
			str_append_c(out, '\n');
			continue;
		}
		if (skip > 0)
			continue; /* a continuation of the definition being replaced */
		inside = config_edit_key(line, len, name);
		if (!inside) {
			str_append_n(out, line, len);
			str_append_c(out, '\n');
		} else if (value != NULL) {
			str_printf(out, "%s = %s\n", name, value);
		}
		found = found || inside;
	}
	if (!found && value != NULL)
		str_printf(out, "%s = %s\n", name, value);
}

/* config_edit_open_tmp: open and lock path.tmp, retrying if another editor
 * renamed it away between our open and our lock. */
static int config_edit_open_tmp(const char *tmp, mode_t mode, const char **error_r)
{
	for (int attempt = 0; attempt < 10; attempt++) {
		int fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
		if (fd < 0) {
			*error_r = config_err("open(%s) failed: %s", tmp, strerror(errno));
			return -1;
		}
		struct stat fst, pst;
		if (flock(fd, LOCK_EX) < 0 || fstat(fd, &fst) < 0) {
			*error_r = config_err("lock(%s) failed: %s", tmp, strerror(errno));
			close(fd);
			return -1;
		}
		if (lstat(tmp, &pst) == 0 && pst.st_dev == fst.st_dev && pst.st_ino == fst.st_ino)
			return fd;
		close(fd);
	}
	*error_r = config_err("open(%s) failed: file keeps being replaced", tmp);
	return -1;
}

/* config_write_all: write len bytes or fail. */
static bool config_write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		data += n;
		len -= (size_t)n;
	}
	return true;
}

/* config_fsync_dir: make a rename in dir durable. */
static bool config_fsync_dir(const char *dir, const char **error_r)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		*error_r = config_err("fsync(%s) failed: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	close(fd);
	return true;
}

/* config_edit_file: rewrite dir/main.cf through a locked temp file. */
static bool config_edit_file(const char *dir, const char *name, const char *value,
			     const char **error_r)
{
	struct str path = STR_INIT, tmp = STR_INIT, data = STR_INIT, out = STR_INIT;
	struct stat st;
	bool ok = false;
	int fd = -1;

	str_printf(&path, "%s/%s", dir, CONFIG_FILE_NAME);
	str_printf(&tmp, "%s.tmp", str_c(&path));
	bool exists = stat(str_c(&path), &st) == 0;
	if (!exists && errno != ENOENT) {
		*error_r = config_err("stat(%s) failed: %s", str_c(&path), strerror(errno));
		goto out;
	}
	if ((fd = config_edit_open_tmp(str_c(&tmp), exists ? st.st_mode & 07777 : 0644,
				       error_r)) < 0)
		goto out;
	/* Read under the lock, so that concurrent editors serialise. */
	if (exists && !config_read_file(str_c(&path), &data, error_r))
		goto out;
	config_edit_rewrite(str_c(&data), data.len, name, value, &out);
	if (ftruncate(fd, 0) < 0 || (exists && fchmod(fd, st.st_mode & 07777) < 0) ||
	    (exists && geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) < 0) ||
	    !config_write_all(fd, out.data != NULL ? out.data : "", out.len) || fsync(fd) < 0) {
		*error_r = config_err("write(%s) failed: %s", str_c(&tmp), strerror(errno));
		goto out;
	}
	if (rename(str_c(&tmp), str_c(&path)) < 0) {
		*error_r = config_err("rename(%s, %s) failed: %s", str_c(&tmp), str_c(&path),
				      strerror(errno));
		goto out;
	}
	ok = config_fsync_dir(dir, error_r);
out:
	if (fd >= 0 && close(fd) < 0 && ok) {
		*error_r = config_err("close(%s) failed: %s", str_c(&tmp), strerror(errno));
		ok = false;
	}
	str_deinit(&path);
	str_deinit(&tmp);
	str_deinit(&data);
	str_deinit(&out);
	return ok;
}

bool config_edit(const char *dir, const char *name, const char *value, const char **error_r)
{
	if (!config_name_ok(name)) {
		*error_r = config_err("bad parameter name: \"%.60s\"", name);
		return false;
	}
	if (strlen(value) > CONFIG_LINE_MAX || strpbrk(value, "\r\n") != NULL) {
		*error_r = config_err("%s: value longer than %d bytes or with a line break", name,
				      CONFIG_LINE_MAX);
		return false;
	}
	/* Store the value as a load would read it back: trimmed. */
	while (str_isspace((unsigned char)*value))
		value++;
	size_t len = strlen(value);
	while (len > 0 && str_isspace((unsigned char)value[len - 1]))
		len--;
	char *trimmed = xstrndup(value, len);
	bool ok = config_edit_file(dir, name, trimmed, error_r);
	free(trimmed);
	return ok;
}

bool config_remove(const char *dir, const char *name, const char **error_r)
{
	if (!config_name_ok(name)) {
		*error_r = config_err("bad parameter name: \"%.60s\"", name);
		return false;
	}
	return config_edit_file(dir, name, NULL, error_r);
}
