/* userdb.h: Dovecot's passwd-file user database, as lmtpd reads it.
 *
 * Grammar (one user per line; '#' starts a comment line; blank lines are
 * skipped):
 *
 *     user[@domain]:password:uid:gid:gecos:home:shell:extra_fields
 *
 * Only the name, uid, gid, home and extra fields are used; the password
 * field is never looked at (lmtpd needs no secrets). Fields after the name
 * may be missing. extra_fields is a space-separated list of name=value;
 * the userdb ones are "userdb_quota_rule=*:storage=100M" (also
 * "quota_rule=..."), "userdb_mail=maildir:..." (also "mail=...") and
 * "userdb_home=..." (also "home=..."); the others are ignored.
 *
 * Quota rules: "*:storage=N[unit]" (N in KiB without a unit, as Dovecot)
 * or "*:bytes=N[unit]" (bytes without a unit); units B, k, M, G, T (powers
 * of 1024, either case); "*:storage=0" or "*:ignore" means no limit.
 * Rules for a single mailbox ("Trash:...") are not supported and ignored
 * with a warning at load time.
 *
 * Lookups: the address (lowercased) first, then, for an entry written
 * without a domain, its local part. The file is re-read when its mtime,
 * size or inode change. Limits: a line is at most USERDB_LINE_MAX bytes and
 * the file at most USERDB_FILE_MAX bytes; a malformed line makes the whole
 * file unusable (lookups fail temporarily) instead of silently skipping a
 * user who would then bounce. */
#ifndef PETREL_USERDB_H
#define PETREL_USERDB_H

#include <stdbool.h>

#include "util/str.h"

#define USERDB_LINE_MAX 4096
#define USERDB_FILE_MAX (64 * 1024 * 1024)

struct userdb;

/* One user, as lookups return it (strings owned by the struct). */
struct userdb_user {
	char *name;		 /* the name as written in the file */
	long long uid, gid;	 /* -1 when empty */
	char *home;		 /* home field (or userdb_home), "" when empty */
	char *mail;		 /* userdb_mail, or NULL */
	long long quota_bytes;	 /* 0 = no limit */
};

/* userdb_open: remember path; the file is read at the first lookup. */
struct userdb *userdb_open(const char *path);
void userdb_free(struct userdb **db);
/* userdb_lookup: 1 and *user_r filled (free with userdb_user_deinit), 0 when
 * the user does not exist, -1 with *error_r when the file cannot be read or
 * is malformed. */
int userdb_lookup(struct userdb *db, const char *address, struct userdb_user *user_r,
		  const char **error_r);
void userdb_user_deinit(struct userdb_user *user);

/* userdb_parse_line: one non-comment line; false with *error_r when it is
 * malformed. For tests and the loader. */
bool userdb_parse_line(const char *line, struct userdb_user *user_r, const char **error_r);
/* userdb_parse_size: "100M" etc. with default_unit the multiplier of a bare
 * number; false on bad syntax or overflow. */
bool userdb_parse_size(const char *text, long long default_unit, long long *bytes_r);
/* userdb_parse_quota_rule: "*:storage=100M" -> bytes (0 = none); false on
 * bad syntax. *ignored_r is set for a rule that is not for "*". */
bool userdb_parse_quota_rule(const char *rule, long long *bytes_r, bool *ignored_r);

/* userdb_expand: Dovecot's %u (user), %n (local part), %d (domain), %%
 * and a leading "~" (the home) in tmpl, appended to out. false for an
 * unknown %-variable. */
bool userdb_expand(struct str *out, const char *tmpl, const char *user, const char *home);
/* userdb_maildir: the Maildir root for user from a mail_location such as
 * "maildir:~/Maildir" or "maildir:/var/mail/%d/%n:INDEX=..." (options after
 * the second ':' are ignored). false with *error_r when it is not a maildir
 * location or does not expand to an absolute path. */
bool userdb_maildir(struct str *out, const char *location, const char *user, const char *home,
		    const char **error_r);

#endif
