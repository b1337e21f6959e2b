/* logical_line.c: Postfix's logical lines of a text file; see
 * logical_line.h. */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/logical_line.h"
#include "util/msg.h"

static struct str logical_line_error;

void logical_line_init(struct logical_line_reader *r, FILE *fp, const char *path, size_t max,
		       bool squeeze)
{
	memset(r, 0, sizeof(*r));
	r->fp = fp;
	r->path = path;
	r->max = max;
	r->squeeze = squeeze;
	str_init(&r->logical);
}

void logical_line_deinit(struct logical_line_reader *r)
{
	free(r->line);
	r->line = NULL;
	str_deinit(&r->logical);
}

/* logical_line_physical: the next physical line without its newline;
 * false at the end of input (or on a read error, which ferror() tells). */
static bool logical_line_physical(struct logical_line_reader *r)
{
	if (r->pending) {
		r->pending = false;
		return true;
	}
	if ((r->len = getline(&r->line, &r->cap, r->fp)) < 0)
		return false;
	r->lineno++;
	if (r->len > 0 && r->line[r->len - 1] == '\n')
		r->line[--r->len] = '\0';
	if (memchr(r->line, '\0', (size_t)r->len) != NULL) {
		msg_warn("%s, line %u: text after null byte ignored", r->path, r->lineno);
		r->len = (ssize_t)strlen(r->line);
	}
	return true;
}

/* logical_line_append: one physical line (p: past its leading white
 * space) onto the logical line; false when it gets too long. */
static bool logical_line_append(struct logical_line_reader *r, const char *p)
{
	if (r->logical.len + (size_t)r->len > r->max)
		return false;
	if (r->squeeze && p != r->line) {
		str_append_c(&r->logical, ' ');
		str_append_n(&r->logical, p, (size_t)(r->len - (p - r->line)));
	} else
		str_append_n(&r->logical, r->line, (size_t)r->len);
	return true;
}

int logical_line_next(struct logical_line_reader *r, const char **error_r)
{
	str_clear(&r->logical);
	while (logical_line_physical(r)) {
		const char *p = r->line;
		while (str_isspace(*p))
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		if (p != r->line) {
			if (r->logical.len == 0) {
				msg_warn("%s, line %u: logical line must not start with whitespace: "
					 "\"%.30s\"",
					 r->path, r->lineno, r->line);
				continue;
			}
		} else if (r->logical.len > 0) {
			r->pending = true;
			break;
		} else {
			r->first_line = r->lineno;
		}
		if (!logical_line_append(r, p)) {
			str_clear(&logical_line_error);
			str_printf(&logical_line_error, "%s, line %u: line longer than %zu bytes",
				   r->path, r->lineno, r->max);
			*error_r = str_c(&logical_line_error);
			return -1;
		}
	}
	if (!r->pending && ferror(r->fp)) {
		str_clear(&logical_line_error);
		str_printf(&logical_line_error, "read(%s) failed: %s", r->path, strerror(errno));
		*error_r = str_c(&logical_line_error);
		return -1;
	}
	return r->logical.len > 0 ? 1 : 0;
}
