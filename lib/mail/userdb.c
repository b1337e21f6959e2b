/* userdb.c: Dovecot passwd-file parsing and lookups; see userdb.h. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/userdb.h"
#include "util/alloc.h"
#include "util/msg.h"

struct userdb {
	char *path;
	struct stat st;	    /* of the file last loaded */
	bool loaded;
	char *data;	    /* the file, NUL-terminated */
	struct str error;   /* last error text */
};

struct userdb *userdb_open(const char *path)
{
	struct userdb *db = xcalloc(1, sizeof(*db));
	db->path = xstrdup(path);
	return db;
}

void userdb_free(struct userdb **dbp)
{
	struct userdb *db = *dbp;
	if (db == NULL)
		return;
	free(db->path);
	free(db->data);
	str_deinit(&db->error);
	free(db);
	*dbp = NULL;
}

void userdb_user_deinit(struct userdb_user *user)
{
	free(user->name);
	free(user->home);
	free(user->mail);
	memset(user, 0, sizeof(*user));
}

/* userdb_parse_size: digits then an optional unit letter. */
bool userdb_parse_size(const char *text, long long default_unit, long long *bytes_r)
{
	char *end;
	if (*text < '0' || *text > '9')
		return false;
	errno = 0;
	long long n = strtoll(text, &end, 10);
	if (errno != 0 || n < 0)
		return false;
	long long unit = default_unit;
	if (*end != '\0') {
		switch (*end) {
		case 'b': case 'B': unit = 1; break;
		case 'k': case 'K': unit = 1024LL; break;
		case 'm': case 'M': unit = 1024LL * 1024; break;
		case 'g': case 'G': unit = 1024LL * 1024 * 1024; break;
		case 't': case 'T': unit = 1024LL * 1024 * 1024 * 1024; break;
		default: return false;
		}
		if (end[1] != '\0')
			return false;
	}
	if (n > LLONG_MAX / unit)
		return false;
	*bytes_r = n * unit;
	return true;
}

/* userdb_parse_quota_rule: "mailbox:limit[:limit...]" with limits
 * storage=, bytes=, messages= (counted but not enforced) or "ignore". */
bool userdb_parse_quota_rule(const char *rule, long long *bytes_r, bool *ignored_r)
{
	const char *colon = strchr(rule, ':');
	*bytes_r = 0;
	*ignored_r = false;
	if (colon == NULL || colon == rule)
		return false;
	if (colon - rule != 1 || rule[0] != '*') {
		*ignored_r = true;
		return true;
	}
	bool ok = true;
	char *copy = xstrdup(colon + 1);
	char *save = NULL;
	for (char *item = strtok_r(copy, ":", &save); item != NULL && ok;
	     item = strtok_r(NULL, ":", &save)) {
		if (strcmp(item, "ignore") == 0 || strcmp(item, "noenforcing") == 0)
			continue;
		if (strncmp(item, "storage=", 8) == 0)
			ok = userdb_parse_size(item + 8, 1024, bytes_r);
		else if (strncmp(item, "bytes=", 6) == 0)
			ok = userdb_parse_size(item + 6, 1, bytes_r);
		else if (strncmp(item, "messages=", 9) == 0) {
			long long n;
			ok = userdb_parse_size(item + 9, 1, &n);
		} else
			ok = false;
	}
	free(copy);
	return ok;
}

/* userdb_parse_extra: the space-separated name=value list. */
static bool userdb_parse_extra(char *extra, struct userdb_user *u, const char **error_r)
{
	char *save = NULL;
	for (char *f = strtok_r(extra, " \t", &save); f != NULL; f = strtok_r(NULL, " \t", &save)) {
		if (strncmp(f, "userdb_", 7) == 0)
			f += 7;
		if (strncmp(f, "quota_rule=", 11) == 0) {
			bool ignored;
			long long bytes;
			if (!userdb_parse_quota_rule(f + 11, &bytes, &ignored)) {
				*error_r = "bad quota_rule";
				return false;
			}
			if (!ignored)
				u->quota_bytes = bytes;
		} else if (strncmp(f, "mail=", 5) == 0) {
			free(u->mail);
			u->mail = xstrdup(f + 5);
		} else if (strncmp(f, "home=", 5) == 0) {
			free(u->home);
			u->home = xstrdup(f + 5);
		}
	}
	return true;
}

/* userdb_parse_id: an empty or decimal uid/gid field. */
static bool userdb_parse_id(const char *text, long long *id_r)
{
	char *end;
	if (*text == '\0') {
		*id_r = -1;
		return true;
	}
	if (*text < '0' || *text > '9')
		return false;
	errno = 0;
	long long n = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0' || n > UINT_MAX - 1LL)
		return false;
	*id_r = n;
	return true;
}

bool userdb_parse_line(const char *line, struct userdb_user *u, const char **error_r)
{
	char *fields[8] = { NULL };
	char *copy = xstrdup(line);
	char *p = copy;
	unsigned n = 0;
	memset(u, 0, sizeof(*u));
	/* The last field (extra) may itself hold ':' (quota rules). */
	while (n < 7) {
		fields[n++] = p;
		p = strchr(p, ':');
		if (p == NULL)
			break;
		*p++ = '\0';
	}
	if (n == 7 && p != NULL)
		fields[7] = p;
	bool ok = false;
	if (fields[0][0] == '\0' || strlen(line) > USERDB_LINE_MAX) {
		*error_r = "missing or too long user name";
	} else if (!userdb_parse_id(fields[2] != NULL ? fields[2] : "", &u->uid)) {
		*error_r = "bad uid";
	} else if (!userdb_parse_id(fields[3] != NULL ? fields[3] : "", &u->gid)) {
		*error_r = "bad gid";
	} else {
		u->name = xstrdup(fields[0]);
		u->home = xstrdup(fields[5] != NULL ? fields[5] : "");
		ok = fields[7] == NULL || userdb_parse_extra(fields[7], u, error_r);
		if (ok && u->home[0] != '\0' && u->home[0] != '/') {
			*error_r = "home is not an absolute path";
			ok = false;
		}
	}
	free(copy);
	if (!ok)
		userdb_user_deinit(u);
	return ok;
}

/* userdb_load: (re)read the file when it changed. */
static int userdb_load(struct userdb *db, const char **error_r)
{
	struct stat st;
	if (stat(db->path, &st) < 0) {
		str_set(&db->error, "");
		str_printf(&db->error, "stat(%s) failed: %m", db->path);
		*error_r = str_c(&db->error);
		return -1;
	}
	if (db->loaded && st.st_ino == db->st.st_ino && st.st_size == db->st.st_size &&
	    st.st_mtim.tv_sec == db->st.st_mtim.tv_sec && st.st_mtim.tv_nsec == db->st.st_mtim.tv_nsec)
		return 0;
	if (st.st_size > USERDB_FILE_MAX) {
		str_set(&db->error, "");
		str_printf(&db->error, "%s: file too large", db->path);
		*error_r = str_c(&db->error);
		return -1;
	}
	int fd = open(db->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		str_set(&db->error, "");
		str_printf(&db->error, "open(%s) failed: %m", db->path);
		*error_r = str_c(&db->error);
		return -1;
	}
	struct str buf = STR_INIT;
	char chunk[8192];
	ssize_t r;
	while ((r = read(fd, chunk, sizeof(chunk))) > 0 && buf.len <= USERDB_FILE_MAX)
		str_append_n(&buf, chunk, (size_t)r);
	if (r < 0) {
		str_set(&db->error, "");
		str_printf(&db->error, "read(%s) failed: %m", db->path);
		close(fd);
		str_deinit(&buf);
		*error_r = str_c(&db->error);
		return -1;
	}
	close(fd);
	free(db->data);
	db->data = str_steal(&buf);
	db->st = st;
	db->loaded = true;
	return 0;
}

/* userdb_find: scan the loaded file for key; 1, 0 or -1 as lookup. */
static int userdb_find(struct userdb *db, const char *key, struct userdb_user *u,
		       const char **error_r)
{
	size_t keylen = strlen(key);
	unsigned lineno = 0;
	for (const char *line = db->data; *line != '\0';) {
		const char *nl = strchr(line, '\n');
		size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
		lineno++;
		const char *next = nl != NULL ? nl + 1 : line + len;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len > USERDB_LINE_MAX) {
			str_set(&db->error, "");
			str_printf(&db->error, "%s line %u: line too long", db->path, lineno);
			*error_r = str_c(&db->error);
			return -1;
		}
		if (len > keylen && line[keylen] == ':' && strncasecmp(line, key, keylen) == 0) {
			char *text = xstrndup(line, len);
			const char *why = NULL;
			bool ok = userdb_parse_line(text, u, &why);
			free(text);
			if (!ok) {
				str_set(&db->error, "");
				str_printf(&db->error, "%s line %u: %s", db->path, lineno, why);
				*error_r = str_c(&db->error);
				return -1;
			}
			return 1;
		}
		line = next;
	}
	return 0;
}

int userdb_lookup(struct userdb *db, const char *address, struct userdb_user *user_r,
		  const char **error_r)
{
	memset(user_r, 0, sizeof(*user_r));
	if (userdb_load(db, error_r) < 0)
		return -1;
	int r = userdb_find(db, address, user_r, error_r);
	const char *at = strrchr(address, '@');
	if (r == 0 && at != NULL && at != address) {
		char *local = xstrndup(address, (size_t)(at - address));
		r = userdb_find(db, local, user_r, error_r);
		free(local);
	}
	return r;
}

bool userdb_expand(struct str *out, const char *tmpl, const char *user, const char *home)
{
	const char *at = strrchr(user, '@');
	size_t nlen = at != NULL ? (size_t)(at - user) : strlen(user);
	const char *domain = at != NULL ? at + 1 : "";
	/* A name must not walk out of the directory it names. */
	if (strchr(user, '/') != NULL || strncmp(user, ".", nlen > 0 ? nlen : 1) == 0 ||
	    strncmp(user, "..", nlen > 1 ? nlen : 2) == 0 || strcmp(domain, ".") == 0 ||
	    strcmp(domain, "..") == 0)
		return false;
	if (tmpl[0] == '~' && (tmpl[1] == '/' || tmpl[1] == '\0')) {
		str_append(out, home);
		tmpl++;
	}
	for (const char *p = tmpl; *p != '\0'; p++) {
		if (*p != '%') {
			str_append_c(out, *p);
			continue;
		}
		switch (*++p) {
		case 'u': str_append(out, user); break;
		case 'n': str_append_n(out, user, nlen); break;
		case 'd': str_append(out, domain); break;
		case '%': str_append_c(out, '%'); break;
		default: return false;
		}
	}
	return true;
}

bool userdb_maildir(struct str *out, const char *location, const char *user, const char *home,
		    const char **error_r)
{
	if (strncmp(location, "maildir:", 8) != 0) {
		*error_r = "mail_location is not maildir:";
		return false;
	}
	if (location[8] == '~' && home[0] == '\0') {
		*error_r = "mail_location uses ~ but the user has no home";
		return false;
	}
	char *path = xstrdup(location + 8);
	char *colon = strchr(path, ':');
	if (colon != NULL)
		*colon = '\0';
	size_t start = out->len;
	bool ok = userdb_expand(out, path, user, home);
	free(path);
	if (!ok) {
		*error_r = "mail_location has an unknown %-variable, or the user name is unsafe";
		return false;
	}
	if (out->data == NULL || out->data[start] != '/') {
		*error_r = "mail location is not an absolute path (is the home set?)";
		return false;
	}
	return true;
}
