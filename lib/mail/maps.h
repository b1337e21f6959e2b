/* maps.h: Postfix-style lookup tables ("type:name") and lists of them.
 *
 * A parameter such as virtual_mailbox_maps names tables that are searched
 * in order; the first one that has the key answers. Table types:
 *
 *	lmdb:/path	the LMDB file /path.lmdb that "postmap /path" builds
 *	hash:/path	the same (Postfix's Berkeley DB names, for drop-in
 *	btree:/path	main.cf files: run "postmap hash:/path" once)
 *	texthash:/path	the text file /path itself, read at open time (as in
 *			Postfix, a change needs a reload or restart)
 *	static:value	always value; static:{ text with spaces }
 *	inline:{ k1=v1, { k2 = value with spaces } }
 *	unix:passwd.byname, unix:group.byname
 *			getpwnam()/getgrnam(); the value is the passwd (group)
 *			line "name:passwd:uid:gid:gecos:home:shell"
 *
 * A "proxy:" prefix is accepted and dropped (Petrel has no proxymap). An
 * unknown type fails maps_create() with a message naming it. LMDB tables
 * are reopened by themselves when postmap replaces the file (dict_lmdb.h).
 *
 * Keys are folded to lower case (ASCII) before the lookup unless the maps
 * were created with MAPS_FLAG_NO_FOLD; postmap folds keys the same way when
 * it builds a table, so mixed-case keys in the source still match.
 *
 * Values returned through value_r are owned by the maps and stay valid
 * until the next call on the same maps. Error texts returned through
 * error_r stay valid until the next call into this module. Not thread-safe. */
#ifndef PETREL_MAPS_H
#define PETREL_MAPS_H

#include <stdbool.h>
#include <stdio.h>

struct maps;

enum maps_flags {
	MAPS_FLAG_NO_FOLD = 1 << 0, /* look keys up exactly as given */
};

/* maps_create: open every table in names (a NULL-terminated list such as
 * config_list() returns; items that list splitting cut inside { } are
 * joined again). title is the parameter name, used in messages. An empty
 * list is valid and finds nothing. */
struct maps *maps_create(const char *title, const char *const *names, const char **error_r);
struct maps *maps_create_flags(const char *title, const char *const *names, unsigned int flags,
			       const char **error_r);
void maps_free(struct maps **maps);
const char *maps_title(const struct maps *maps);
bool maps_is_empty(const struct maps *maps);

/* maps_lookup: the value of key in the first table that has it. Returns 1
 * found, 0 not found, -1 temporary error (*error_r; the search stops there,
 * as in Postfix). */
int maps_lookup(struct maps *maps, const char *key, const char **value_r, const char **error_r);

enum maps_addr_flags {
	MAPS_ADDR_LOCAL = 1 << 0, /* the domain is local: also try bare local parts */
};

/* maps_lookup_addr: Postfix's order for recipient-style tables. With
 * local "user+ext", domain "example.com" and delimiters "+":
 *	user+ext@example.com, user@example.com,
 *	user+ext, user		(only with MAPS_ADDR_LOCAL or no domain)
 *	@example.com
 * The extension starts at the first byte of local that is in delimiters
 * (NULL or "" for none); a local part that would be left empty is not
 * split, nor, with '-', "owner-..." and "...-request". local is looked up
 * as given (quote it first if it needs quoting). Returns as maps_lookup. */
int maps_lookup_addr(struct maps *maps, const char *local, const char *domain,
		     const char *delimiters, unsigned int flags, const char **value_r,
		     const char **error_r);

/* maps_walk: every (key, value) of every table, in order (postmap -s);
 * static: and unix: tables cannot be listed and fail. fn returns 0 to go
 * on or a positive value to stop the walk (then returned). Returns 0 at
 * the end, -1 on error. */
typedef int maps_walk_fn(const char *key, const char *value, void *ctx);
int maps_walk(struct maps *maps, maps_walk_fn *fn, void *ctx, const char **error_r);

/* maps_name_lmdb: when name is an lmdb:, hash: or btree: table (with or
 * without "proxy:"), return its source path (the part after the type);
 * else NULL. The result points into name. */
const char *maps_name_lmdb(const char *name);

/* maps_items_regroup: copy a NULL-terminated item list, joining items with
 * a space while a '{' is unclosed ("inline:{", "a=b", "}" -> one item).
 * Returns NULL and *error_r on unbalanced braces. Free with
 * maps_items_free(). */
char **maps_items_regroup(const char *const *items, const char **error_r);
void maps_items_free(char ***items);

/* Postfix table source text (postmap input, texthash:):
 *	- empty lines, blank lines and lines whose first non-blank is '#'
 *	  are ignored;
 *	- a line starting with white space continues the logical line;
 *	- the key ends at the first white space outside "..." (a backslash
 *	  quotes the next byte; quotes stay in the key); the value is the rest
 *	  with white space trimmed; a line without key or value is warned
 *	  about and skipped, as is one with an unbalanced '"';
 *	- with fold, the key is folded to lower case.
 * A logical line longer than MAPS_TEXT_LINE_MAX bytes is an error. */
#define MAPS_TEXT_LINE_MAX (1024 * 1024)
typedef int maps_text_fn(const char *key, const char *value, unsigned int lineno, void *ctx);
/* maps_text_read: call fn for each entry of fp (path is for messages); fn
 * returns 0 to go on, anything else stops the read and is returned.
 * Returns 0 at the end of input, -1 on a read error or too long a line. */
int maps_text_read(FILE *fp, const char *path, bool fold, maps_text_fn *fn, void *ctx,
		   const char **error_r);
/* maps_fold: lower-case ASCII letters in place. */
void maps_fold(char *text);

#endif
