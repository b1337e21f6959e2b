/* map_tool.c: what postmap and postalias share; see map_tool.h. */
#include <config.h> /* autoconf; "config.h" here would be mail/config.h */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/aliases.h"
#include "mail/config.h"
#include "mail/dict_lmdb.h"
#include "mail/map_tool.h"
#include "mail/maps.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

/* One run of a build: the writer and what to warn about. */
struct map_tool_build {
	const struct map_tool_opts *opts;
	struct dict_lmdb_writer *w;
	const char *source; /* for messages */
	const char *error;
	struct str key;
};

/* map_tool_put: one entry (a reader's callback) into the writer. */
static int map_tool_put(const char *key, const char *value, unsigned int lineno, void *ctx)
{
	struct map_tool_build *b = ctx;
	str_set(&b->key, key);
	if (b->opts->aliases && b->opts->fold)
		maps_fold(b->key.data); /* aliases_read() does not fold */
	int ret = dict_lmdb_writer_put(b->w, str_c(&b->key), value,
				       b->opts->dup == MAP_TOOL_DUP_REPLACE, &b->error);
	if (ret == 0 && b->opts->dup == MAP_TOOL_DUP_WARN)
		msg_warn("%s, line %u: duplicate entry: \"%s\"", b->source, lineno, str_c(&b->key));
	return ret < 0 ? ret : 0;
}

/* map_tool_read: one pass over fp into the writer; 0, or -1 with
 * *error_r. */
static int map_tool_read(struct map_tool_build *b, FILE *fp, const char **error_r)
{
	int ret;
	if (b->opts->aliases)
		ret = aliases_read(fp, b->source, map_tool_put, b, error_r);
	else
		ret = maps_text_read(fp, b->source, b->opts->fold, map_tool_put, b, error_r);
	if (ret < 0 && b->error != NULL)
		*error_r = b->error;
	if (ret == 0 && b->opts->aliases &&
	    (ret = dict_lmdb_writer_put(b->w, "@", "@", true, error_r)) > 0)
		ret = 0;
	return ret;
}

/* map_tool_load: feed fp to the writer until it fits and is committed;
 * a restart (the map outgrew its first size) replays the input. */
static void map_tool_load(struct map_tool_build *b, FILE *fp, size_t size_hint)
{
	const char *error = NULL;
	int ret;
	do {
		if (dict_lmdb_writer_start(b->w, size_hint, &error) < 0)
			msg_fatal("%s", error);
		if (fseek(fp, 0, SEEK_SET) < 0)
			msg_fatal("seek %s: %m", b->source);
		b->error = NULL;
		ret = map_tool_read(b, fp, &error);
		if (ret == 0)
			ret = dict_lmdb_writer_commit(b->w, &error);
	} while (ret == DICT_LMDB_RESTART);
	if (ret < 0)
		msg_fatal("%s", error);
}

void map_tool_build_stream(const struct map_tool_opts *o, const char *db, unsigned flags,
			   mode_t mode, FILE *fp, size_t size_hint, const char *source)
{
	struct map_tool_build b = { o, NULL, source, NULL, STR_INIT };
	const char *error;
	b.w = dict_lmdb_writer_create(db, flags | (o->nul ? DICT_LMDB_WRITER_NUL : 0), mode, &error);
	if (b.w == NULL)
		msg_fatal("%s", error);
	map_tool_load(&b, fp, size_hint);
	dict_lmdb_writer_free(&b.w);
	str_deinit(&b.key);
}

void map_tool_build_file(const struct map_tool_opts *o, const char *source)
{
	struct str db = STR_INIT;
	struct stat st;
	mode_t mode = 0644;
	FILE *fp;

	if (o->become != NULL && getuid() == 0 && geteuid() != 0)
		o->become(0, 0); /* back from the previous file's owner */
	if ((fp = fopen(source, "re")) == NULL)
		msg_fatal("open %s: %m", source);
	if (fstat(fileno(fp), &st) < 0)
		msg_fatal("fstat %s: %m", source);
	if (o->save_perm && S_ISREG(st.st_mode))
		mode &= st.st_mode | 0700; /* no group/other read the source lacks */
	if (o->become != NULL && o->as_owner && getuid() == 0 && st.st_uid != 0)
		o->become(st.st_uid, st.st_gid);
	str_printf(&db, "%s%s", source, DICT_LMDB_SUFFIX);
	map_tool_build_stream(o, str_c(&db), 0, mode, fp, (size_t)st.st_size, source);
	fclose(fp);
	str_deinit(&db);
}

bool map_tool_option(struct map_tool_opts *o, int c)
{
	switch (c) {
	case 'f':
		o->fold = false;
		return true;
	case 'n':
		o->nul = false;
		return true;
	case 'N':
		o->nul = true;
		return true;
	case 'o':
		o->as_owner = false;
		return true;
	case 'p':
		o->save_perm = false;
		return true;
	case 'r':
		o->dup = MAP_TOOL_DUP_REPLACE;
		return true;
	case 'w':
		o->dup = MAP_TOOL_DUP_IGNORE;
		return true;
	default:
		return false;
	}
}

/* map_tool_open: one table for -q and -s; fatal if it cannot be opened. */
static struct maps *map_tool_open(const char *name, bool fold)
{
	const char *names[] = { name, NULL }, *error;
	struct maps *maps = maps_create_flags(name, names, fold ? 0 : MAPS_FLAG_NO_FOLD, &error);
	if (maps == NULL)
		msg_fatal("%s", error);
	return maps;
}

/* map_tool_lookup: key in the first of names that has it; NULL if none.
 * maps[] holds the tables opened so far (opened lazily, as Postfix). */
static const char *map_tool_lookup(char **names, int count, bool fold, struct maps **maps,
				   const char *key)
{
	const char *value, *error;
	for (int i = 0; i < count; i++) {
		if (maps[i] == NULL)
			maps[i] = map_tool_open(names[i], fold);
		int ret = maps_lookup(maps[i], key, &value, &error);
		if (ret < 0)
			msg_fatal("table %s: query error: %s", names[i], error);
		if (ret > 0)
			return value;
	}
	return NULL;
}

/* map_tool_query_stdin: -q -: one key per line of standard input. */
static bool map_tool_query_stdin(char **names, int count, bool fold, struct maps **maps,
				 const char *sep)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	bool found = false;
	const char *value;
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		if (len > 0 && line[len - 1] == '\n')
			line[len - 1] = '\0';
		if ((value = map_tool_lookup(names, count, fold, maps, line)) != NULL) {
			printf("%s%s%s\n", line, sep, value);
			found = true;
		}
	}
	if (ferror(stdin))
		msg_fatal("read stdin: %m");
	free(line);
	return found;
}

bool map_tool_query(char **names, int count, bool fold, const char *key, const char *sep)
{
	struct maps **maps = xcalloc((size_t)count + 1, sizeof(*maps));
	const char *value;
	bool found;
	if (strcmp(key, "-") == 0)
		found = map_tool_query_stdin(names, count, fold, maps, sep);
	else if ((found = (value = map_tool_lookup(names, count, fold, maps, key)) != NULL))
		printf("%s\n", value);
	for (int i = 0; i < count; i++)
		maps_free(&maps[i]);
	free(maps);
	return found;
}

/* map_tool_print: maps_walk() callback for -s; ctx is the separator. */
static int map_tool_print(const char *key, const char *value, void *ctx)
{
	printf("%s%s%s\n", key, (const char *)ctx, value);
	return 0;
}

void map_tool_list(const char *name, bool fold, const char *sep)
{
	struct maps *maps = map_tool_open(name, fold);
	const char *error;
	if (maps_walk(maps, map_tool_print, (void *)sep, &error) < 0)
		msg_fatal("table %s: sequence error: %s", name, error);
	maps_free(&maps);
}

void map_tool_flush(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		msg_fatal("write error on stdout: %m");
}

const char *map_tool_config(const char *dir)
{
	static char *type_copy;
	const char *error, *type;
	bool explicit = dir != NULL;
	struct str path = STR_INIT;

	if (dir == NULL && (dir = getenv("MAIL_CONFIG")) != NULL && *dir != '\0')
		explicit = true;
	if (dir == NULL || *dir == '\0')
		dir = PETREL_SYSCONFDIR;
	str_printf(&path, "%s/main.cf", dir);
	if (!explicit && access(str_c(&path), F_OK) < 0)
		config_load_defaults(dir);
	else if (!config_load(dir, false, &error))
		msg_fatal("%s", error);
	str_deinit(&path);
	type = config_param_find("default_database_type") != NULL
		       ? config_str("default_database_type")
		       : config_lookup_raw("default_database_type");
	/* Copied: the table's strings go away at config_deinit(). */
	free(type_copy);
	type_copy = xstrdup(type != NULL && *type != '\0' ? config_expand(type) : "lmdb");
	return type_copy;
}

char *map_tool_full_name(const char *default_type, const char *arg)
{
	struct str name = STR_INIT;
	const char *colon = strchr(arg, ':'), *slash = strchr(arg, '/');
	if (colon != NULL && (slash == NULL || colon < slash))
		str_append(&name, arg);
	else
		str_printf(&name, "%s:%s", default_type, arg);
	return str_steal(&name);
}
