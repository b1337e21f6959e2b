/* map_build.c: table builds for postmap and postalias; see map_build.h. */
#include <config.h> /* autoconf; "config.h" here would be mail/config.h */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/aliases.h"
#include "mail/config.h"
#include "mail/dict_lmdb.h"
#include "mail/map_build.h"
#include "mail/maps.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

/* One run of a build: the writer and what to warn about. */
struct map_build {
	const struct map_build_opts *opts;
	struct dict_lmdb_writer *w;
	const char *source; /* for messages */
	const char *error;
	struct str key;
};

/* map_build_put: one entry (a reader's callback) into the writer. */
static int map_build_put(const char *key, const char *value, unsigned int lineno, void *ctx)
{
	struct map_build *b = ctx;
	str_set(&b->key, key);
	if (b->opts->aliases && b->opts->fold)
		maps_fold(b->key.data); /* aliases_read() does not fold */
	int ret = dict_lmdb_writer_put(b->w, str_c(&b->key), value,
				       b->opts->dup == MAP_BUILD_DUP_REPLACE, &b->error);
	if (ret == 0 && b->opts->dup == MAP_BUILD_DUP_WARN)
		msg_warn("%s, line %u: duplicate entry: \"%s\"", b->source, lineno, str_c(&b->key));
	return ret < 0 ? ret : 0;
}

/* map_build_read: one pass over fp into the writer; 0, or -1 with
 * *error_r. */
static int map_build_read(struct map_build *b, FILE *fp, const char **error_r)
{
	int ret;
	if (b->opts->aliases)
		ret = aliases_read(fp, b->source, map_build_put, b, error_r);
	else
		ret = maps_text_read(fp, b->source, b->opts->fold, map_build_put, b, error_r);
	if (ret < 0 && b->error != NULL)
		*error_r = b->error;
	if (ret == 0 && b->opts->aliases &&
	    (ret = dict_lmdb_writer_put(b->w, "@", "@", true, error_r)) > 0)
		ret = 0;
	return ret;
}

/* map_build_load: feed fp to the writer until it fits and is committed;
 * a restart (the map outgrew its first size) replays the input. */
static void map_build_load(struct map_build *b, FILE *fp, size_t size_hint)
{
	const char *error = NULL;
	int ret;
	do {
		if (dict_lmdb_writer_start(b->w, size_hint, &error) < 0)
			msg_fatal("%s", error);
		if (fseek(fp, 0, SEEK_SET) < 0)
			msg_fatal("seek %s: %m", b->source);
		b->error = NULL;
		ret = map_build_read(b, fp, &error);
		if (ret == 0)
			ret = dict_lmdb_writer_commit(b->w, &error);
	} while (ret == DICT_LMDB_RESTART);
	if (ret < 0)
		msg_fatal("%s", error);
}

void map_build_stream(const struct map_build_opts *o, const char *db, unsigned flags,
		      mode_t mode, FILE *fp, size_t size_hint, const char *source)
{
	struct map_build b = { o, NULL, source, NULL, STR_INIT };
	const char *error;
	b.w = dict_lmdb_writer_create(db, flags | (o->nul ? DICT_LMDB_WRITER_NUL : 0), mode, &error);
	if (b.w == NULL)
		msg_fatal("%s", error);
	map_build_load(&b, fp, size_hint);
	dict_lmdb_writer_free(&b.w);
	str_deinit(&b.key);
}

void map_build_file(const struct map_build_opts *o, const char *source)
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
	map_build_stream(o, str_c(&db), 0, mode, fp, (size_t)st.st_size, source);
	fclose(fp);
	str_deinit(&db);
}

const char *map_build_config(const char *dir)
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

char *map_build_full_name(const char *default_type, const char *arg)
{
	struct str name = STR_INIT;
	const char *colon = strchr(arg, ':'), *slash = strchr(arg, '/');
	if (colon != NULL && (slash == NULL || colon < slash))
		str_append(&name, arg);
	else
		str_printf(&name, "%s:%s", default_type, arg);
	return str_steal(&name);
}
