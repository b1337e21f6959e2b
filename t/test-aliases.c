/* test-aliases.c: unit tests for lib/mail/aliases: single lines (names,
 * quoted names, values kept as written, :include:, |command and /file
 * targets, bad lines and the name limit), whole files (continuations,
 * comments between continuation lines, bad lines skipped, the line limit)
 * and splitting values into typed targets. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/aliases.h"
#include "tap.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

/* One logical line and what aliases_parse() makes of it. */
struct parse_case {
	const char *line;
	int ret;
	const char *name;  /* ret 1 */
	const char *value; /* ret 1; the reason for ret -1 */
};

static const struct parse_case parse_cases[] = {
	{ "postmaster: root", 1, "postmaster", "root" },
	{ "Root:\tAlice@Example.COM ", 1, "Root", "Alice@Example.COM" },
	{ "team: alice, bob,carol", 1, "team", "alice, bob,carol" },
	{ "name : x", 1, "name", "x" },
	{ "\"the team\": alice", 1, "the team", "alice" },
	{ "\"a:b\": alice", 1, "a:b", "alice" },
	{ "\"x@y\": local", 1, "x@y", "local" },
	{ "a\\ b: c", 1, "a b", "c" },
	{ "list: :include:/etc/petrel/list", 1, "list", ":include:/etc/petrel/list" },
	{ "pipe: |\"/usr/bin/prog -x\"", 1, "pipe", "|\"/usr/bin/prog -x\"" },
	{ "pipe2: \"|/usr/bin/prog -x, -y\"", 1, "pipe2", "\"|/usr/bin/prog -x, -y\"" },
	{ "log: /var/log/mail.copy", 1, "log", "/var/log/mail.copy" },
	{ "empty: \"\"", 1, "empty", "\"\"" },
	{ "", 0, NULL, NULL },
	{ "   \t", 0, NULL, NULL },
	{ "# comment: x", 0, NULL, NULL },
	{ "  # indented comment", 0, NULL, NULL },
	{ "no colon here", -1, NULL, "need name:value pair" },
	{ ": root", -1, NULL, "need name:value pair" },
	{ "\"\": root", -1, NULL, "need name:value pair" },
	{ "name:", -1, NULL, "need name:value pair" },
	{ "name:   ", -1, NULL, "need name:value pair" },
	{ "a,b: c", -1, NULL, "need name:value pair" },
	{ "user@example.com: x", -1, NULL, "name must be local" },
	{ "user%host: x", -1, NULL, "name must be local" },
	{ "two words: x", -1, NULL, "name must be one word (quote it)" },
	{ "\"open: x", -1, NULL, "unbalanced '\"'" },
	{ "name: \"open", -1, NULL, "unbalanced '\"'" },
};

/* test_parse: the table above. */
static void test_parse(void)
{
	struct str name = STR_INIT, value = STR_INIT;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		const char *error = NULL;
		int ret = aliases_parse(c->line, &name, &value, &error);
		tap_is_int(ret, c->ret, "parse \"%s\" returns %d", c->line, c->ret);
		if (c->ret > 0 && ret > 0) {
			tap_is_str(str_c(&name), c->name, "parse \"%s\": name", c->line);
			tap_is_str(str_c(&value), c->value, "parse \"%s\": value", c->line);
		} else if (c->ret < 0 && ret < 0) {
			tap_is_str(error, c->value, "parse \"%s\": reason", c->line);
		}
	}
	str_deinit(&name);
	str_deinit(&value);
}

/* test_name_limit: ALIASES_NAME_MAX bytes pass, one more does not. */
static void test_name_limit(void)
{
	struct str line = STR_INIT, name = STR_INIT, value = STR_INIT;
	const char *error = NULL;

	for (int i = 0; i < ALIASES_NAME_MAX; i++)
		str_append_c(&line, 'n');
	str_append(&line, ": root");
	tap_is_int(aliases_parse(str_c(&line), &name, &value, &error), 1,
		   "a name of ALIASES_NAME_MAX bytes is fine");
	str_clear(&line);
	for (int i = 0; i <= ALIASES_NAME_MAX; i++)
		str_append_c(&line, 'n');
	str_append(&line, ": root");
	tap_is_int(aliases_parse(str_c(&line), &name, &value, &error), -1,
		   "one byte more is a bad line");
	tap_is_str(error, "name too long", "reason: name too long");
	str_deinit(&line);
	str_deinit(&name);
	str_deinit(&value);
}

/* collect: aliases_read() callback: "lineno name=value;" into a str. */
static int collect(const char *name, const char *value, unsigned int lineno, void *ctx)
{
	str_printf(ctx, "%u %s=%s;", lineno, name, value);
	return 0;
}

/* A whole file and the entries aliases_read() reports. */
struct read_case {
	const char *what;
	const char *text;
	const char *entries;
};

static const struct read_case read_cases[] = {
	{ "simple", "a: b\nc: d\n", "1 a=b;2 c=d;" },
	{ "no final newline", "a: b", "1 a=b;" },
	{ "continuation", "team: alice,\n  bob,\n\tcarol\nx: y\n",
	  "1 team=alice, bob, carol;4 x=y;" },
	{ "comment inside an entry", "team: alice,\n# gone: bob\n  carol\n",
	  "1 team=alice, carol;" },
	{ "blank line ends nothing", "team: alice,\n\n  carol\n", "1 team=alice, carol;" },
	{ "leading white space without an entry", "  stray\na: b\n", "2 a=b;" },
	{ "bad lines skipped", "bad line\na: b\n@x: y\nc: d\n", "2 a=b;4 c=d;" },
	{ "CRLF", "a: b\r\nc: d\r\n", "1 a=b;2 c=d;" },
	{ "include and command kept", "l: :include:/x\np: \"|cmd arg\"\n",
	  "1 l=:include:/x;2 p=\"|cmd arg\";" },
};

/* test_read: the table above, through fmemopen(). */
static void test_read(void)
{
	for (size_t i = 0; i < sizeof(read_cases) / sizeof(read_cases[0]); i++) {
		const struct read_case *c = &read_cases[i];
		struct str got = STR_INIT;
		const char *error = NULL;
		FILE *fp = fmemopen((void *)c->text, strlen(c->text), "r");
		if (fp == NULL)
			msg_fatal("fmemopen: %m");
		int ret = aliases_read(fp, "test", collect, &got, &error);
		fclose(fp);
		tap_is_int(ret, 0, "read %s: ends well", c->what);
		tap_is_str(str_c(&got), c->entries, "read %s: entries", c->what);
		str_deinit(&got);
	}
}

/* test_read_limits: a too long logical line stops the read; a callback's
 * non-zero result is handed back. */
static void test_read_limits(void)
{
	struct str text = STR_INIT, got = STR_INIT;
	const char *error = NULL;

	str_append(&text, "a: b\nbig: x");
	for (size_t n = 0; n < ALIASES_LINE_MAX; n += 50)
		str_append(&text, ",\n  0123456789012345678901234567890123456789012345678901234");
	str_append(&text, "\n");
	FILE *fp = fmemopen(text.data, text.len, "r");
	if (fp == NULL)
		msg_fatal("fmemopen: %m");
	tap_is_int(aliases_read(fp, "big", collect, &got, &error), -1,
		   "a logical line over ALIASES_LINE_MAX is an error");
	tap_ok(error != NULL && strstr(error, "big, line") != NULL, "the error names the line: %s",
	       error != NULL ? error : "(none)");
	fclose(fp);
	str_deinit(&text);
	str_deinit(&got);
}

/* A value and its targets ("|" joined, with a type letter each). */
struct split_case {
	const char *value;
	const char *targets; /* NULL: an error */
};

static const struct split_case split_cases[] = {
	{ "root", "a:root" },
	{ "alice, bob ,carol", "a:alice|a:bob|a:carol" },
	{ "\"john, doe\"@example.com, x", "a:\"john, doe\"@example.com|a:x" },
	{ "|/usr/bin/vacation alice", "c:|/usr/bin/vacation alice" },
	{ "\"|/usr/bin/prog a, b\", /var/log/copy", "c:\"|/usr/bin/prog a, b\"|f:/var/log/copy" },
	{ ":include:/etc/petrel/list, bob", "i::include:/etc/petrel/list|a:bob" },
	{ "a\\,b", "a:a\\,b" },
	{ "alice,", NULL },
	{ ",alice", NULL },
	{ "a,,b", NULL },
	{ "\"open", NULL },
};

/* test_split: the table above. */
static void test_split(void)
{
	static const char letters[] = { 'a', 'c', 'f', 'i' };
	for (size_t i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
		const struct split_case *c = &split_cases[i];
		const char *error = NULL;
		char **targets = aliases_split(c->value, &error);
		if (c->targets == NULL) {
			tap_ok(targets == NULL && error != NULL, "split \"%s\" fails (%s)", c->value,
			       error != NULL ? error : "no error");
			aliases_targets_free(&targets);
			continue;
		}
		struct str got = STR_INIT;
		for (char **t = targets; t != NULL && *t != NULL; t++)
			str_printf(&got, "%s%c:%s", t == targets ? "" : "|",
				   letters[aliases_target_type(*t)], *t);
		tap_is_str(str_c(&got), c->targets, "split \"%s\"", c->value);
		str_deinit(&got);
		aliases_targets_free(&targets);
		tap_ok(targets == NULL, "aliases_targets_free clears the pointer");
	}
}

/* test_split_limit: ALIASES_TARGETS_MAX targets pass, one more fails. */
static void test_split_limit(void)
{
	struct str value = STR_INIT;
	const char *error = NULL;
	for (int i = 0; i < ALIASES_TARGETS_MAX; i++)
		str_append(&value, i == 0 ? "x" : ",x");
	char **targets = aliases_split(str_c(&value), &error);
	tap_ok(targets != NULL, "ALIASES_TARGETS_MAX targets split");
	aliases_targets_free(&targets);
	str_append(&value, ",x");
	targets = aliases_split(str_c(&value), &error);
	tap_ok(targets == NULL && error != NULL && strcmp(error, "too many targets") == 0,
	       "one more is too many");
	aliases_targets_free(&targets);
	str_deinit(&value);
}

int main(void)
{
	msg_init("test-aliases");
	test_parse();
	test_name_limit();
	test_read();
	test_read_limits();
	test_split();
	test_split_limit();
	return tap_done();
}
