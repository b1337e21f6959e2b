/* aliases.h: the /etc/aliases source format (newaliases, postalias) and the
 * targets of an alias value (for the queue manager).
 *
 * SOURCE FORMAT (as Postfix's postalias reads it)
 *	name: target, target, ...
 *	- empty lines, blank lines and lines whose first non-blank is '#' are
 *	  ignored (also between the lines of one entry);
 *	- a line that starts with white space continues the logical line
 *	  (its leading white space becomes one space);
 *	- the name ends at the first ':' outside "..." (a backslash quotes
 *	  the next byte); it may be quoted ("the team": ...), and is stored
 *	  unquoted; it must be one word: unquoted white space, ',', '@' or
 *	  '%' in it make the line bad;
 *	- the value is the rest of the line with white space trimmed, kept
 *	  as written (an empty value is written "");
 *	- a bad line (no ':', no name, no value, unbalanced quotes, too long
 *	  a name) is warned about with "file, line N: reason" and skipped.
 *	Targets are kept as text: "|command", "/file", ":include:/file" and
 *	addresses alike; the queue manager decides what it delivers to.
 *
 * LIMITS
 *	A logical line is at most ALIASES_LINE_MAX bytes (longer is an error
 *	that stops the read), a name at most ALIASES_NAME_MAX bytes, a value
 *	at most ALIASES_TARGETS_MAX targets when split. */
#ifndef PETREL_ALIASES_H
#define PETREL_ALIASES_H

#include <stdbool.h>
#include <stdio.h>

#include "util/str.h"

#define ALIASES_LINE_MAX (1024 * 1024)
#define ALIASES_NAME_MAX 256
#define ALIASES_TARGETS_MAX 10000

/* aliases_parse: one logical line. Returns 1 with the unquoted name and
 * the value in *name and *value, 0 for a line with nothing in it, -1 for a
 * bad line with the reason in *error_r (static text). */
int aliases_parse(const char *line, struct str *name, struct str *value, const char **error_r);

/* aliases_read: call fn for every entry of fp (path is for messages); bad
 * lines are warned about and skipped. fn returns 0 to go on, anything else
 * stops the read and is returned. Returns 0 at the end of input, -1 on a
 * read error or too long a line (*error_r, valid until the next call). */
typedef int aliases_fn(const char *name, const char *value, unsigned int lineno, void *ctx);
int aliases_read(FILE *fp, const char *path, aliases_fn *fn, void *ctx, const char **error_r);

enum aliases_target_type {
	ALIASES_TARGET_ADDRESS,
	ALIASES_TARGET_COMMAND, /* |command */
	ALIASES_TARGET_FILE,    /* /path */
	ALIASES_TARGET_INCLUDE, /* :include:/path */
};

/* aliases_split: the comma-separated targets of a value (commas inside
 * "..." do not split), each trimmed, as a NULL-terminated list to free
 * with aliases_targets_free(). NULL with *error_r on unbalanced quotes, an
 * empty target or more than ALIASES_TARGETS_MAX targets. */
char **aliases_split(const char *value, const char **error_r);
void aliases_targets_free(char ***targets);
/* aliases_target_type: what a target names; a target quoted as a whole
 * ("|cmd arg") is looked at without its quotes. */
enum aliases_target_type aliases_target_type(const char *target);

#endif
