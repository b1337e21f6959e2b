/* master_cf.c: the master.cf parser; see master_cf.h for the syntax. */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/master_cf.h"
#include "util/alloc.h"
#include "util/str.h"

/* A master.cf larger than this is refused rather than read. */
#define MASTER_CF_FILE_MAX (16 * 1024 * 1024)
/* Braces may nest ("{ a { b } }"), but not without end. */
#define MASTER_CF_BRACE_DEPTH_MAX 16

static char master_cf_error[1024];

struct master_cf_token {
	char *text;
	bool braced;
};

struct master_cf_tokens {
	struct master_cf_token *items;
	size_t count;
	size_t cap;
};

struct master_cf_parser {
	const char *path;
	unsigned line;
	unsigned default_maxproc;
	struct master_cf *cf;
};

/* master_cf_fail: format "path: line N: text" into the error buffer. */
static int master_cf_fail(const struct master_cf_parser *p, const char *fmt, ...)
	ATTR_FORMAT(2, 3);
static int master_cf_fail(const struct master_cf_parser *p, const char *fmt, ...)
{
	char text[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(master_cf_error, sizeof(master_cf_error), "%s: line %u: %s", p->path, p->line,
		 text);
	return -1;
}

/* master_cf_type_name: the master.cf spelling of a type. */
const char *master_cf_type_name(enum master_cf_type type)
{
	switch (type) {
	case MASTER_CF_INET:
		return "inet";
	case MASTER_CF_UNIX:
		return "unix";
	case MASTER_CF_UNIX_DGRAM:
		return "unix-dgram";
	case MASTER_CF_FIFO:
		return "fifo";
	}
	return "unknown";
}

/* master_cf_tokens_add: append one token (text is copied). */
static void master_cf_tokens_add(struct master_cf_tokens *t, const char *text, size_t len,
				 bool braced)
{
	if (t->count == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->items = xreallocarray(t->items, t->cap, sizeof(*t->items));
	}
	t->items[t->count].text = xstrndup(text, len);
	t->items[t->count].braced = braced;
	t->count++;
}

/* master_cf_tokens_free: free the tokens of one line. */
static void master_cf_tokens_free(struct master_cf_tokens *t)
{
	for (size_t i = 0; i < t->count; i++)
		free(t->items[i].text);
	free(t->items);
	t->items = NULL;
	t->count = t->cap = 0;
}

/* master_cf_brace_end: index of the '}' that closes the '{' at s[0], or
 * -1 when there is none (or nesting is too deep). */
static long master_cf_brace_end(const char *s, size_t len)
{
	unsigned depth = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '{') {
			if (++depth > MASTER_CF_BRACE_DEPTH_MAX)
				return -1;
		} else if (s[i] == '}') {
			if (--depth == 0)
				return (long)i;
		}
	}
	return -1;
}

/* master_cf_tokenize: split a logical line at white space; "{ ... }" is one
 * token with the braces and the blanks just inside them removed. */
static int master_cf_tokenize(const struct master_cf_parser *p, const char *line,
			      struct master_cf_tokens *t)
{
	size_t len = strlen(line);
	size_t i = 0;
	while (i < len) {
		if (isspace((unsigned char)line[i])) {
			i++;
			continue;
		}
		if (line[i] == '{') {
			long end = master_cf_brace_end(line + i, len - i);
			if (end < 0)
				return master_cf_fail(p, "missing '}' (or braces nested too deep)");
			size_t a = i + 1, b = i + (size_t)end;
			while (a < b && isspace((unsigned char)line[a]))
				a++;
			while (b > a && isspace((unsigned char)line[b - 1]))
				b--;
			master_cf_tokens_add(t, line + a, b - a, true);
			i += (size_t)end + 1;
			if (i < len && !isspace((unsigned char)line[i]))
				return master_cf_fail(p, "text after '}' must be separated by white space");
			continue;
		}
		size_t start = i;
		while (i < len && !isspace((unsigned char)line[i]))
			i++;
		master_cf_tokens_add(t, line + start, i - start, false);
	}
	return 0;
}

/* master_cf_bool: a y/n field, '-' giving the default. */
static int master_cf_bool(const struct master_cf_parser *p, const char *field, const char *value,
			  bool def, bool *out)
{
	if (strcmp(value, "-") == 0)
		*out = def;
	else if (strcmp(value, "y") == 0)
		*out = true;
	else if (strcmp(value, "n") == 0)
		*out = false;
	else
		return master_cf_fail(p, "field \"%s\": bad value: \"%s\"", field, value);
	return 0;
}

/* master_cf_number: a decimal field within [0, max]; a trailing '?' is
 * accepted only when question is not NULL. */
static int master_cf_number(const struct master_cf_parser *p, const char *field, const char *value,
			    unsigned def, unsigned max, unsigned *out, bool *question)
{
	if (strcmp(value, "-") == 0) {
		*out = def;
		return 0;
	}
	size_t len = strlen(value);
	if (question != NULL && len > 1 && value[len - 1] == '?') {
		*question = true;
		len--;
	}
	if (len == 0 || len > 10)
		return master_cf_fail(p, "field \"%s\": bad value: \"%s\"", field, value);
	unsigned long long n = 0;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)value[i]))
			return master_cf_fail(p, "field \"%s\": bad value: \"%s\"", field, value);
		n = n * 10 + (unsigned)(value[i] - '0');
	}
	if (n > max)
		return master_cf_fail(p, "field \"%s\": value %s is larger than %u", field, value,
				      max);
	*out = (unsigned)n;
	return 0;
}

/* master_cf_port_ok: a port number 1-65535 or an /etc/services name. */
static bool master_cf_port_ok(const char *port)
{
	if (*port == '\0' || strlen(port) > 32)
		return false;
	if (isdigit((unsigned char)*port)) {
		char *end;
		errno = 0;
		unsigned long n = strtoul(port, &end, 10);
		return *end == '\0' && errno == 0 && n >= 1 && n <= 65535;
	}
	for (const char *s = port; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return false;
	return true;
}

/* master_cf_inet_service: split "[host]:port", "host:port" or "port". */
static int master_cf_inet_service(const struct master_cf_parser *p, struct master_cf_entry *e)
{
	const char *s = e->service;
	const char *port;
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close == s + 1 || close[1] != ':')
			return master_cf_fail(p, "bad inet service \"%s\": want [host]:port", s);
		e->host = xstrndup(s + 1, (size_t)(close - s - 1));
		port = close + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon != NULL && strchr(s, ':') != colon)
			return master_cf_fail(p, "bad inet service \"%s\": put an IPv6 address in "
					      "brackets, as in [::1]:25", s);
		if (colon != NULL && colon != s)
			e->host = xstrndup(s, (size_t)(colon - s));
		port = colon != NULL ? colon + 1 : s;
	}
	if (e->host != NULL && strpbrk(e->host, "[]/ \t") != NULL)
		return master_cf_fail(p, "bad host in inet service \"%s\"", s);
	if (!master_cf_port_ok(port))
		return master_cf_fail(p, "bad port in inet service \"%s\"", s);
	e->port = xstrdup(port);
	return 0;
}

/* master_cf_local_name_ok: a unix/fifo service name is one path component. */
static bool master_cf_local_name_ok(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > MASTER_CF_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (const char *s = name; *s; s++)
		if (*s == '/' || !isgraph((unsigned char)*s))
			return false;
	return true;
}

/* master_cf_type: the type field; "pass" and unknown types are refused. */
static int master_cf_type(const struct master_cf_parser *p, const char *value,
			  enum master_cf_type *out)
{
	static const struct {
		const char *name;
		enum master_cf_type type;
	} types[] = {
		{ "inet", MASTER_CF_INET },
		{ "unix", MASTER_CF_UNIX },
		{ "unix-dgram", MASTER_CF_UNIX_DGRAM },
		{ "fifo", MASTER_CF_FIFO },
	};
	for (size_t i = 0; i < N_ELEMENTS(types); i++) {
		if (strcmp(value, types[i].name) == 0) {
			*out = types[i].type;
			return 0;
		}
	}
	if (strcmp(value, "pass") == 0)
		return master_cf_fail(p, "service type \"pass\" is not supported (no postscreen); "
				      "use an inet service");
	return master_cf_fail(p, "bad transport type: %s", value);
}

/* master_cf_override_add: parse "name=value" (white space around '=' is
 * dropped, as in main.cf) into the entry's overrides. */
static int master_cf_override_add(const struct master_cf_parser *p, struct master_cf_entry *e,
				  const char *text)
{
	const char *eq = strchr(text, '=');
	if (eq == NULL)
		return master_cf_fail(p, "-o \"%s\": want name=value", text);
	const char *ne = eq;
	while (ne > text && isspace((unsigned char)ne[-1]))
		ne--;
	if (ne == text)
		return master_cf_fail(p, "-o \"%s\": missing parameter name", text);
	for (const char *s = text; s < ne; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return master_cf_fail(p, "-o \"%s\": bad parameter name", text);
	const char *v = eq + 1;
	while (isspace((unsigned char)*v))
		v++;
	size_t vlen = strlen(v);
	while (vlen > 0 && isspace((unsigned char)v[vlen - 1]))
		vlen--;
	e->overrides = xreallocarray(e->overrides, e->override_count + 1, sizeof(*e->overrides));
	e->overrides[e->override_count].name = xstrndup(text, (size_t)(ne - text));
	e->overrides[e->override_count].value = xstrndup(v, vlen);
	e->override_count++;
	return 0;
}

/* master_cf_options: the leading -o/-v options after the command, then the
 * command's own arguments. */
static int master_cf_options(const struct master_cf_parser *p, struct master_cf_entry *e,
			     const struct master_cf_tokens *t, size_t i)
{
	if (t->count - i > MASTER_CF_ARGS_MAX)
		return master_cf_fail(p, "more than %d options and arguments", MASTER_CF_ARGS_MAX);
	for (; i < t->count; i++) {
		const struct master_cf_token *tok = &t->items[i];
		if (tok->braced || tok->text[0] != '-' || strcmp(tok->text, "-") == 0)
			break;
		if (strcmp(tok->text, "-o") == 0) {
			if (++i == t->count)
				return master_cf_fail(p, "-o without a value");
			if (master_cf_override_add(p, e, t->items[i].text) < 0)
				return -1;
		} else if (strncmp(tok->text, "-o", 2) == 0) {
			if (master_cf_override_add(p, e, tok->text + 2) < 0)
				return -1;
		} else if (strcmp(tok->text, "-v") == 0) {
			e->verbose = true;
		} else {
			return master_cf_fail(p, "unsupported option \"%s\" (only -o and -v)",
					      tok->text);
		}
	}
	e->args = xcalloc(t->count - i + 1, sizeof(char *));
	for (; i < t->count; i++)
		e->args[e->arg_count++] = xstrdup(t->items[i].text);
	return 0;
}

static const char *const master_cf_fields[] = {
	"service", "type", "private", "unpriv", "chroot", "wakeup", "maxproc", "command",
};

/* master_cf_service: the service name and type fields, checked together. */
static int master_cf_service(const struct master_cf_parser *p, struct master_cf_entry *e,
			     const struct master_cf_tokens *t)
{
	e->service = xstrdup(t->items[0].text);
	if (master_cf_type(p, t->items[1].text, &e->type) < 0)
		return -1;
	if (e->type == MASTER_CF_INET)
		return master_cf_inet_service(p, e);
	if (!master_cf_local_name_ok(e->service))
		return master_cf_fail(p, "bad %s service name \"%s\": want a file name of at most "
				      "%d characters", master_cf_type_name(e->type), e->service,
				      MASTER_CF_NAME_MAX);
	return 0;
}

/* master_cf_entry_parse: one logical line's tokens into an entry. */
static int master_cf_entry_parse(const struct master_cf_parser *p, struct master_cf_entry *e,
				 const struct master_cf_tokens *t)
{
	for (size_t i = 0; i < N_ELEMENTS(master_cf_fields); i++) {
		if (i >= t->count)
			return master_cf_fail(p, "missing \"%s\" field", master_cf_fields[i]);
		if (t->items[i].braced)
			return master_cf_fail(p, "field \"%s\" must not be in braces",
					      master_cf_fields[i]);
	}
	e->line = p->line;
	if (master_cf_service(p, e, t) < 0)
		return -1;
	bool is_inet = e->type == MASTER_CF_INET;
	if (master_cf_bool(p, "private", t->items[2].text, !is_inet, &e->is_private) < 0)
		return -1;
	if (is_inet && e->is_private)
		return master_cf_fail(p, "inet service cannot be private");
	if (master_cf_bool(p, "unpriv", t->items[3].text, true, &e->unpriv) < 0 ||
	    master_cf_bool(p, "chroot", t->items[4].text, true, &e->chroot) < 0)
		return -1;
	if (master_cf_number(p, "wakeup", t->items[5].text, 0, MASTER_CF_WAKEUP_MAX, &e->wakeup,
			     &e->wakeup_conditional) < 0)
		return -1;
	if (e->wakeup > 0 && is_inet)
		return master_cf_fail(p, "wakeup timer is not supported for inet services");
	if (master_cf_number(p, "maxproc", t->items[6].text, p->default_maxproc,
			     MASTER_CF_MAXPROC_MAX, &e->maxproc, NULL) < 0)
		return -1;
	const char *cmd = t->items[7].text;
	if (strcmp(cmd, "-") == 0)
		return master_cf_fail(p, "field \"command\" has no default value");
	if (strchr(cmd, '/') != NULL || cmd[0] == '.' || !master_cf_local_name_ok(cmd))
		return master_cf_fail(p, "command \"%s\": want a program name in daemon_directory",
				      cmd);
	e->command = xstrdup(cmd);
	return master_cf_options(p, e, t, N_ELEMENTS(master_cf_fields));
}

/* master_cf_entry_clear: free an entry's strings. */
static void master_cf_entry_clear(struct master_cf_entry *e)
{
	free(e->service);
	free(e->host);
	free(e->port);
	free(e->command);
	for (size_t i = 0; i < e->override_count; i++) {
		free(e->overrides[i].name);
		free(e->overrides[i].value);
	}
	free(e->overrides);
	for (size_t i = 0; i < e->arg_count; i++)
		free(e->args[i]);
	free(e->args);
	memset(e, 0, sizeof(*e));
}

/* master_cf_find: linear search by name and type. */
const struct master_cf_entry *master_cf_find(const struct master_cf *cf, const char *service,
					     enum master_cf_type type)
{
	for (size_t i = 0; i < cf->count; i++)
		if (cf->entries[i].type == type && strcmp(cf->entries[i].service, service) == 0)
			return &cf->entries[i];
	return NULL;
}

/* master_cf_logical: parse one complete logical line and add its entry. */
static int master_cf_logical(struct master_cf_parser *p, const char *line)
{
	struct master_cf_tokens t = { 0 };
	struct master_cf_entry e;
	memset(&e, 0, sizeof(e));
	int ret = master_cf_tokenize(p, line, &t);
	if (ret == 0)
		ret = master_cf_entry_parse(p, &e, &t);
	master_cf_tokens_free(&t);
	if (ret == 0 && master_cf_find(p->cf, e.service, e.type) != NULL)
		ret = master_cf_fail(p, "duplicate service \"%s\" of type %s", e.service,
				     master_cf_type_name(e.type));
	if (ret == 0 && p->cf->count >= MASTER_CF_ENTRIES_MAX)
		ret = master_cf_fail(p, "more than %d services", MASTER_CF_ENTRIES_MAX);
	if (ret < 0) {
		master_cf_entry_clear(&e);
		return -1;
	}
	p->cf->entries = xreallocarray(p->cf->entries, p->cf->count + 1, sizeof(e));
	p->cf->entries[p->cf->count++] = e;
	return 0;
}

/* master_cf_blank_or_comment: true for a line that is only white space or
 * whose first non-blank character is '#'. */
static bool master_cf_blank_or_comment(const char *s, size_t len)
{
	size_t i = 0;
	while (i < len && isspace((unsigned char)s[i]))
		i++;
	return i == len || s[i] == '#';
}

/* master_cf_lines: join physical lines into logical ones and parse each. */
static int master_cf_lines(struct master_cf_parser *p, const char *text, size_t len)
{
	struct str logical = STR_INIT;
	unsigned line_no = 0, start_line = 0;
	size_t pos = 0;
	int ret = 0;
	while (ret == 0 && pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
		const char *s = text + pos;
		pos += n + (nl != NULL);
		line_no++;
		p->line = line_no;
		if (memchr(s, '\0', n) != NULL) {
			ret = master_cf_fail(p, "NUL character in line");
		} else if (master_cf_blank_or_comment(s, n)) {
			continue;
		} else if (isspace((unsigned char)s[0])) {
			if (logical.len == 0)
				ret = master_cf_fail(p, "continuation line without a service entry "
						     "before it");
		} else if (logical.len > 0) {
			p->line = start_line;
			ret = master_cf_logical(p, str_c(&logical));
			str_clear(&logical);
		}
		if (ret == 0 && logical.len == 0)
			start_line = line_no;
		if (ret == 0 && logical.len + n + 1 > MASTER_CF_LINE_MAX) {
			p->line = start_line;
			ret = master_cf_fail(p, "logical line longer than %d bytes",
					     MASTER_CF_LINE_MAX);
		}
		if (ret == 0) {
			str_append_c(&logical, ' ');
			str_append_n(&logical, s, n);
		}
	}
	if (ret == 0 && logical.len > 0) {
		p->line = start_line;
		ret = master_cf_logical(p, str_c(&logical));
	}
	str_deinit(&logical);
	return ret;
}

/* master_cf_parse: text to entries, or the first error. */
int master_cf_parse(const char *text, size_t len, const char *path, unsigned default_maxproc,
		    struct master_cf **cf_r, const char **error_r)
{
	struct master_cf_parser p = { path, 0, default_maxproc, xcalloc(1, sizeof(struct master_cf)) };
	if (master_cf_lines(&p, text, len) < 0) {
		master_cf_free(&p.cf);
		*error_r = master_cf_error;
		return -1;
	}
	*cf_r = p.cf;
	return 0;
}

/* master_cf_load: read the whole file (bounded), then parse. */
int master_cf_load(const char *path, unsigned default_maxproc, struct master_cf **cf_r,
		   const char **error_r)
{
	struct str text = STR_INIT;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(master_cf_error, sizeof(master_cf_error), "open(%s) failed: %s", path,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		*error_r = master_cf_error;
		return -1;
	}
	for (;;) {
		char buf[8192];
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || text.len + (size_t)(n > 0 ? n : 0) > MASTER_CF_FILE_MAX) {
			if (n < 0)
				snprintf(master_cf_error, sizeof(master_cf_error),
					 "read(%s) failed: %s", path, strerror(errno));
			else
				snprintf(master_cf_error, sizeof(master_cf_error),
					 "%s: larger than %d bytes", path, MASTER_CF_FILE_MAX);
			close(fd);
			str_deinit(&text);
			*error_r = master_cf_error;
			return -1;
		}
		if (n == 0)
			break;
		str_append_n(&text, buf, (size_t)n);
	}
	close(fd);
	int ret = master_cf_parse(str_c(&text), text.len, path, default_maxproc, cf_r, error_r);
	str_deinit(&text);
	return ret;
}

/* master_cf_free: every entry, then the table. */
void master_cf_free(struct master_cf **cf)
{
	if (*cf == NULL)
		return;
	for (size_t i = 0; i < (*cf)->count; i++)
		master_cf_entry_clear(&(*cf)->entries[i]);
	free((*cf)->entries);
	free(*cf);
	*cf = NULL;
}
