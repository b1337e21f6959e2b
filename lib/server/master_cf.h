/* master_cf.h: master.cf, in Postfix syntax, parsed into service entries.
 *
 * One entry per logical line:
 *
 *     service type private unpriv chroot wakeup maxproc command [args...]
 *
 * A line that starts with white space continues the previous one; a line
 * whose first non-blank character is '#' is a comment, anywhere. "-" in a
 * field means its default: private y (n for inet, which cannot be private),
 * unpriv y, chroot y, wakeup 0 (none), maxproc default_process_limit (the
 * caller passes it in). "0" maxproc means no limit; a wakeup "N?" fires only
 * after the service was first used. Leading options after the command:
 * "-o name=value" or "-o { name = value with spaces }" (a main.cf override
 * for this service) and "-v"; anything else is an argument for the command.
 * A token in braces may hold white space; the braces and the white space
 * just inside them are removed.
 *
 * service is, for inet, "port", "host:port" or "[host]:port" (IPv6 hosts in
 * brackets; port is a number or a name from /etc/services); for unix,
 * unix-dgram and fifo a plain name that becomes private/NAME or
 * public/NAME under queue_directory. Type "pass" is refused (not
 * supported); so is anything else unknown. Every error names the file and
 * the line: "master.cf: line 12: ...". Limits: a logical line is at most
 * MASTER_CF_LINE_MAX bytes, an entry has at most MASTER_CF_ARGS_MAX options
 * and arguments, a file at most MASTER_CF_ENTRIES_MAX entries. */
#ifndef PETREL_MASTER_CF_H
#define PETREL_MASTER_CF_H

#include <stdbool.h>
#include <stddef.h>

#define MASTER_CF_LINE_MAX (64 * 1024)
#define MASTER_CF_ARGS_MAX 1024
#define MASTER_CF_ENTRIES_MAX 10000
#define MASTER_CF_NAME_MAX 100       /* unix/fifo names: fits sun_path */
#define MASTER_CF_WAKEUP_MAX 4000000 /* seconds; fits a millisecond timer */
#define MASTER_CF_MAXPROC_MAX 100000

enum master_cf_type {
	MASTER_CF_INET,
	MASTER_CF_UNIX,
	MASTER_CF_UNIX_DGRAM,
	MASTER_CF_FIFO,
};

struct master_cf_override {
	char *name;
	char *value;
};

struct master_cf_entry {
	unsigned line;            /* where the logical line starts */
	char *service;            /* field 1 as written */
	char *host;               /* inet: host without brackets, or NULL */
	char *port;               /* inet: port number or service name */
	enum master_cf_type type;
	bool is_private;          /* unix/fifo: private/ (else public/) */
	bool unpriv;              /* drop to mail_owner */
	bool chroot;              /* chroot to queue_directory */
	unsigned wakeup;          /* seconds, 0: none */
	bool wakeup_conditional;  /* "N?" */
	unsigned maxproc;         /* 0: no limit */
	bool verbose;             /* "-v" after the command */
	char *command;            /* program name in daemon_directory */
	struct master_cf_override *overrides;
	size_t override_count;
	char **args;              /* NULL-terminated */
	size_t arg_count;
};

struct master_cf {
	struct master_cf_entry *entries;
	size_t count;
};

/* master_cf_parse: parse the whole text of a master.cf (path names it in
 * errors). Returns 0 and *cf_r, or -1 and *error_r (static storage, valid
 * until the next call). */
int master_cf_parse(const char *text, size_t len, const char *path,
		    unsigned default_maxproc, struct master_cf **cf_r, const char **error_r);
/* master_cf_load: read path and parse it. */
int master_cf_load(const char *path, unsigned default_maxproc, struct master_cf **cf_r,
		   const char **error_r);
void master_cf_free(struct master_cf **cf);

/* master_cf_type_name: "inet", "unix", "unix-dgram" or "fifo". */
const char *master_cf_type_name(enum master_cf_type type);
/* master_cf_find: the entry with this service name and type, or NULL. */
const struct master_cf_entry *master_cf_find(const struct master_cf *cf, const char *service,
					     enum master_cf_type type);

#endif
