/* aliases.c: parse the /etc/aliases source format and split alias values
 * into targets. The grammar and limits are in aliases.h. */
#include <config.h>

#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "mail/aliases.h"
#include "util/alloc.h"
#include "util/logical_line.h"
#include "util/msg.h"
#include "util/str.h"

/* aliases_quotes_balanced: true when every '"' in text is closed. */
static bool aliases_quotes_balanced(const char *text)
{
	bool in_quotes = false;
	for (const char *p = text; *p != '\0'; p++) {
		if (*p == '\\') {
			if (*++p == '\0')
				break;
		} else if (*p == '"') {
			in_quotes = !in_quotes;
		}
	}
	return !in_quotes;
}

/* aliases_name: unquote the raw name [p, end) into *name; NULL or a reason. */
static const char *aliases_name(const char *p, const char *end, struct str *name)
{
	bool in_quotes = false;

	str_clear(name);
	for (; p < end; p++) {
		if (*p == '\\' && p + 1 < end) {
			str_append_c(name, *++p);
		} else if (*p == '"') {
			in_quotes = !in_quotes;
		} else if (!in_quotes && (*p == ',' || str_isspace(*p))) {
			return *p == ',' ? "need name:value pair" : "name must be one word (quote it)";
		} else if (!in_quotes && (*p == '@' || *p == '%')) {
			return "name must be local";
		} else {
			str_append_c(name, *p);
		}
	}
	if (name->len == 0)
		return "need name:value pair";
	if (name->len > ALIASES_NAME_MAX)
		return "name too long";
	return NULL;
}

int aliases_parse(const char *line, struct str *name, struct str *value, const char **error_r)
{
	const char *p = line, *colon = NULL, *end;
	bool in_quotes = false;

	while (str_isspace(*p))
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	for (const char *q = p; *q != '\0' && colon == NULL; q++) {
		if (*q == '\\') {
			if (q[1] == '\0')
				break;
			q++;
		} else if (*q == '"') {
			in_quotes = !in_quotes;
		} else if (*q == ':' && !in_quotes) {
			colon = q;
		}
	}
	if (colon == NULL) {
		*error_r = in_quotes ? "unbalanced '\"'" : "need name:value pair";
		return -1;
	}
	for (end = colon; end > p && str_isspace(end[-1]); end--)
		;
	if ((*error_r = aliases_name(p, end, name)) != NULL)
		return -1;
	for (p = colon + 1; str_isspace(*p); p++)
		;
	for (end = p + strlen(p); end > p && str_isspace(end[-1]); end--)
		;
	str_clear(value);
	str_append_n(value, p, (size_t)(end - p));
	if (value->len == 0) {
		*error_r = "need name:value pair";
		return -1;
	}
	if (!aliases_quotes_balanced(str_c(value))) {
		*error_r = "unbalanced '\"'";
		return -1;
	}
	return 1;
}

int aliases_read(FILE *fp, const char *path, aliases_fn *fn, void *ctx, const char **error_r)
{
	struct logical_line_reader r;
	struct str name = STR_INIT, value = STR_INIT;
	const char *reason;
	int ret;

	logical_line_init(&r, fp, path, ALIASES_LINE_MAX, true);
	while ((ret = logical_line_next(&r, error_r)) > 0) {
		int parsed = aliases_parse(str_c(&r.logical), &name, &value, &reason);
		if (parsed < 0)
			msg_warn("%s, line %u: %s", path, r.first_line, reason);
		if (parsed <= 0)
			continue;
		if ((ret = fn(str_c(&name), str_c(&value), r.first_line, ctx)) != 0)
			break;
	}
	logical_line_deinit(&r);
	str_deinit(&name);
	str_deinit(&value);
	return ret;
}

/* aliases_trim: text [p, end) without surrounding white space, copied. */
static char *aliases_trim(const char *p, const char *end)
{
	while (p < end && str_isspace(*p))
		p++;
	while (end > p && str_isspace(end[-1]))
		end--;
	return xstrndup(p, (size_t)(end - p));
}

char **aliases_split(const char *value, const char **error_r)
{
	size_t count = 0, cap = 8;
	char **targets = xcalloc(cap, sizeof(*targets));
	bool in_quotes = false;
	const char *start = value, *p;

	for (p = value;; p++) {
		if (*p == '\\' && p[1] != '\0') {
			p++;
			continue;
		}
		if (*p == '"')
			in_quotes = !in_quotes;
		if (*p != '\0' && (*p != ',' || in_quotes))
			continue;
		if (in_quotes || count >= ALIASES_TARGETS_MAX) {
			*error_r = in_quotes ? "unbalanced '\"'" : "too many targets";
			break;
		}
		if (count + 1 >= cap) {
			cap *= 2;
			targets = xreallocarray(targets, cap, sizeof(*targets));
		}
		targets[count] = aliases_trim(start, p);
		targets[count + 1] = NULL;
		if (*targets[count++] == '\0') {
			*error_r = "empty target";
			break;
		}
		if (*p == '\0')
			return targets;
		start = p + 1;
	}
	aliases_targets_free(&targets);
	return NULL;
}

void aliases_targets_free(char ***targets)
{
	if (*targets == NULL)
		return;
	for (char **t = *targets; *t != NULL; t++)
		free(*t);
	free(*targets);
	*targets = NULL;
}

enum aliases_target_type aliases_target_type(const char *target)
{
	if (*target == '"')
		target++;
	if (*target == '|')
		return ALIASES_TARGET_COMMAND;
	if (*target == '/')
		return ALIASES_TARGET_FILE;
	if (str_prefix_icase(target, ":include:"))
		return ALIASES_TARGET_INCLUDE;
	return ALIASES_TARGET_ADDRESS;
}
