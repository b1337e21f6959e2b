/* newaliases.c: the postalias and newaliases commands: build and query
 * alias databases. One program; the name it is run under picks the mode.
 *
 * SYNOPSIS
 *	postalias [-Nfnoprsvw] [-c config_dir] [type:]file ...
 *	postalias -q key|- [-fv] [-c config_dir] [type:]file ...
 *	postalias -s [-fv] [-c config_dir] [type:]file
 *	newaliases [-v] [-c config_dir]
 * DESCRIPTION
 *	As Postfix's postalias. Without -q or -s: compile each alias file
 *	(the /etc/aliases format, see lib/mail/aliases.h) into file.lmdb.
 *	Names are folded to lower case unless -f; values are stored as
 *	written. Of duplicate names the first wins, with a warning; -w drops
 *	the warning, -r makes the last one win. A bad line is warned about
 *	("file, line N: reason") and skipped. As Postfix does, the database
 *	also gets the entry "@" -> "@" (sendmail's "database complete" mark).
 *	-N (default) stores keys and values with a trailing NUL as Postfix
 *	does, -n without; lookups accept both.
 *	-q key prints the value of key from the first database that has it
 *	(exit 0; 1 if none has it); -q - reads keys from standard input and
 *	prints "key:<TAB>value" for each one found. -s prints every
 *	"key:<TAB>value" of the first database.
 *	newaliases rebuilds every lmdb:, hash: or btree: table named in
 *	alias_database (default hash:/etc/aliases, so /etc/aliases.lmdb);
 *	other table types there are skipped with a warning.
 *	A name without "type:" has the type default_database_type; -c names
 *	the configuration directory (default: $MAIL_CONFIG, else the
 *	compiled-in one; a missing main.cf there means the defaults). -o and
 *	-p are as in postmap; -d and -i are not supported.
 * SECURITY
 *	The database is never changed in place: the new one is written to
 *	file.lmdb.tmp, synced and renamed over file.lmdb (dict_lmdb.h), so
 *	a reader never sees a half-written table. Run as root on a file
 *	owned by another user, postalias works with that user's effective
 *	IDs (unless -o). Targets ("|command", "/file", ":include:") are
 *	stored as text; what may be delivered to is the queue manager's
 *	decision.
 * DIAGNOSTICS
 *	"postalias: warning: ..." and "postalias: fatal: ..." on stderr;
 *	exit 1 after a fatal error. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/map_tool.h"
#include "mail/maps.h"
#include "server/privs.h"
#include "util/alloc.h"
#include "util/msg.h"

enum postalias_mode {
	POSTALIAS_BUILD,
	POSTALIAS_QUERY,
	POSTALIAS_SEQ,
};

struct postalias_opts {
	enum postalias_mode mode;
	bool mode_set;
	const char *key; /* -q */
	const char *config_dir;
	struct map_tool_opts table; /* -f -n -N -o -p -r -w */
	const char *default_type;
};

/* postalias_usage: the synopsis, as Postfix prints it; exits. */
static void ATTR_NORETURN postalias_usage(void)
{
	if (strcmp(msg_program(), "newaliases") == 0)
		msg_fatal("usage: newaliases [-v] [-c config_dir]");
	msg_fatal("usage: postalias [-Nfnoprsvw] [-c config_dir] [-q key] [map_type:]file...");
}

/* postalias_set_mode: only one of -q and -s, as Postfix requires. */
static void postalias_set_mode(struct postalias_opts *o, enum postalias_mode mode,
			       const char *key)
{
	if (o->mode_set)
		msg_fatal("specify only one of -s -q or -d");
	o->mode_set = true;
	o->mode = mode;
	o->key = key;
}

/* postalias_options: parse the command line; returns the first file. */
static int postalias_options(int argc, char **argv, struct postalias_opts *o, bool newaliases)
{
	int c;

	while ((c = getopt(argc, argv, newaliases ? "c:v" : "Nc:d:finopq:rsvw")) != -1) {
		switch (c) {
		case 'c':
			o->config_dir = optarg;
			break;
		case 'q':
			postalias_set_mode(o, POSTALIAS_QUERY, optarg);
			break;
		case 's':
			postalias_set_mode(o, POSTALIAS_SEQ, NULL);
			break;
		case 'v':
			msg_verbose++;
			break;
		case 'd':
		case 'i':
			msg_fatal("option -%c is not supported", c);
		default:
			if (!map_tool_option(&o->table, c))
				postalias_usage();
		}
	}
	if (newaliases ? optind != argc : optind >= argc)
		postalias_usage();
	return optind;
}

/* postalias_build: compile one alias file into file.lmdb. */
static void postalias_build(const struct postalias_opts *o, const char *name)
{
	const char *source = maps_name_lmdb(name);
	if (source == NULL || *source == '\0')
		msg_fatal("table %s: cannot build this type (only lmdb:, hash:, btree:)", name);
	map_tool_build_file(&o->table, source);
}

/* postalias_names: the tables to work on: the arguments, or for
 * newaliases the lmdb-family entries of alias_database. */
static char **postalias_names(const struct postalias_opts *o, int argc, char **argv, int first,
			      bool newaliases, int *count_r)
{
	const char *const *db = newaliases ? config_list("alias_database") : NULL;
	size_t max = newaliases ? 0 : (size_t)(argc - first);
	int n = 0;

	while (db != NULL && db[max] != NULL)
		max++;
	char **names = xcalloc(max + 1, sizeof(*names));
	for (size_t i = 0; i < max; i++) {
		char *name = map_tool_full_name(o->default_type,
						 newaliases ? db[i] : argv[first + (int)i]);
		if (newaliases && maps_name_lmdb(name) == NULL) {
			msg_warn("alias_database: skipping %s: only lmdb:, hash:, btree: are built",
				 name);
			free(name);
			continue;
		}
		names[n++] = name;
	}
	*count_r = n;
	return names;
}

int main(int argc, char **argv)
{
	struct postalias_opts o = { .table = MAP_TOOL_OPTS_INIT };
	const char *slash = strrchr(argv[0], '/');
	bool newaliases = strcmp(slash != NULL ? slash + 1 : argv[0], "newaliases") == 0;
	int first, count, status = 0;

	umask(022);
	msg_init(newaliases ? "newaliases" : "postalias");
	msg_set_target(MSG_TARGET_TTY);
	first = postalias_options(argc, argv, &o, newaliases);
	o.table.aliases = true;
	o.table.become = privs_run_as;
	o.default_type = map_tool_config(o.config_dir);
	char **names = postalias_names(&o, argc, argv, first, newaliases, &count);
	if (o.mode == POSTALIAS_QUERY)
		status = map_tool_query(names, count, o.table.fold, o.key, ":\t") ? 0 : 1;
	else if (o.mode == POSTALIAS_SEQ)
		map_tool_list(names[0], o.table.fold, ":\t");
	else
		for (int i = 0; i < count; i++)
			postalias_build(&o, names[i]);
	map_tool_flush();
	for (int i = 0; i < count; i++)
		free(names[i]);
	free(names);
	config_deinit();
	return status;
}
