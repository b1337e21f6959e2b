/* test-master-cf.c: unit tests for lib/server/master_cf (the master.cf
 * parser): fields and defaults, continuation and comments, -o overrides
 * with and without braces, inet service syntax, and errors with line
 * numbers. */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "server/master_cf.h"
#include "tap.h"
#include "util/str.h"

/* A one-line summary of an entry, so that one string compares a case. */
static void summarize(const struct master_cf_entry *e, struct str *out)
{
	str_printf(out, "L%u %s/%s host=%s port=%s p=%d u=%d c=%d w=%u%s m=%u cmd=%s%s",
		   e->line, e->service, master_cf_type_name(e->type), e->host ? e->host : "-",
		   e->port ? e->port : "-", e->is_private, e->unpriv, e->chroot, e->wakeup,
		   e->wakeup_conditional ? "?" : "", e->maxproc, e->command, e->verbose ? " -v" : "");
	for (size_t i = 0; i < e->override_count; i++)
		str_printf(out, " o[%s]=[%s]", e->overrides[i].name, e->overrides[i].value);
	for (size_t i = 0; i < e->arg_count; i++)
		str_printf(out, " a[%s]", e->args[i]);
}

static const struct parse_case {
	const char *name;
	const char *text;
	const char *want; /* entries joined by "\n", or the error's start */
	bool ok;
} parse_cases[] = {
	{ "defaults", "smtp inet n - n - - smtpd\n",
	  "L1 smtp/inet host=- port=smtp p=0 u=1 c=0 w=0 m=100 cmd=smtpd", true },
	{ "inet '-' private means n", "2525 inet - - - - 5 smtpd",
	  "L1 2525/inet host=- port=2525 p=0 u=1 c=1 w=0 m=5 cmd=smtpd", true },
	{ "unix defaults private", "qmgr unix n - n 300 1 qmgr\npickup fifo - - - 60? 1 pickup",
	  "L1 qmgr/unix host=- port=- p=0 u=1 c=0 w=300 m=1 cmd=qmgr\n"
	  "L2 pickup/fifo host=- port=- p=1 u=1 c=1 w=60? m=1 cmd=pickup", true },
	{ "host:port and [v6]:port", "127.0.0.1:2525 inet n - n - - smtpd\n"
	  "[::1]:25 inet n - n - 0 smtpd\nmx.example:smtp inet n - n - - smtpd",
	  "L1 127.0.0.1:2525/inet host=127.0.0.1 port=2525 p=0 u=1 c=0 w=0 m=100 cmd=smtpd\n"
	  "L2 [::1]:25/inet host=::1 port=25 p=0 u=1 c=0 w=0 m=0 cmd=smtpd\n"
	  "L3 mx.example:smtp/inet host=mx.example port=smtp p=0 u=1 c=0 w=0 m=100 cmd=smtpd",
	  true },
	{ "continuation, comments, blank lines",
	  "# header\n\nsubmission inet n - n - - smtpd\n"
	  "  -o syslog_name=postfix/submission\n"
	  "# a comment inside the entry\n"
	  "\t-o smtpd_tls_security_level=encrypt\n"
	  "   \n"
	  "lmtp unix - - n - - lmtp\n",
	  "L3 submission/inet host=- port=submission p=0 u=1 c=0 w=0 m=100 cmd=smtpd"
	  " o[syslog_name]=[postfix/submission] o[smtpd_tls_security_level]=[encrypt]\n"
	  "L8 lmtp/unix host=- port=- p=1 u=1 c=0 w=0 m=100 cmd=lmtp", true },
	{ "attached -o with a brace", "smtp inet n - n - - smtpd -o{x=1}",
	  "master.cf: line 1: -o \"{x=1}\": bad parameter name", false },
	{ "text glued after a brace", "smtp inet n - n - - smtpd -o { x=1 }y",
	  "master.cf: line 1: text after '}' must be separated by white space", false },
	{ "braced -o with spaces", "smtp inet n - n - - smtpd -o { smtpd_banner = a b  c }"
	  " -o x= -v extra { arg with spaces }",
	  "L1 smtp/inet host=- port=smtp p=0 u=1 c=0 w=0 m=100 cmd=smtpd -v"
	  " o[smtpd_banner]=[a b  c] o[x]=[] a[extra] a[arg with spaces]", true },
	{ "pipe-style args keep their options", "bar unix - n n - - pipe flags=R "
	  "argv=/bin/cat -o x",
	  "L1 bar/unix host=- port=- p=1 u=0 c=0 w=0 m=100 cmd=pipe a[flags=R] a[argv=/bin/cat]"
	  " a[-o] a[x]", true },
	{ "pass refused", "smtpd pass - - n - - smtpd",
	  "master.cf: line 1: service type \"pass\" is not supported", false },
	{ "unknown type", "x tcp - - n - - smtpd", "master.cf: line 1: bad transport type: tcp",
	  false },
	{ "inet cannot be private", "\n\n25 inet y - n - - smtpd",
	  "master.cf: line 3: inet service cannot be private", false },
	{ "bad bool", "x unix maybe - n - - smtpd",
	  "master.cf: line 1: field \"private\": bad value: \"maybe\"", false },
	{ "missing field", "x unix - - n - -", "master.cf: line 1: missing \"command\" field",
	  false },
	{ "bad maxproc", "x unix - - n - 1x smtpd",
	  "master.cf: line 1: field \"maxproc\": bad value: \"1x\"", false },
	{ "maxproc too big", "x unix - - n - 99999999 smtpd",
	  "master.cf: line 1: field \"maxproc\": value 99999999 is larger than", false },
	{ "question mark only on wakeup", "x unix - - n - 1? smtpd",
	  "master.cf: line 1: field \"maxproc\": bad value: \"1?\"", false },
	{ "wakeup on inet refused", "25 inet n - n 60 - smtpd",
	  "master.cf: line 1: wakeup timer is not supported for inet services", false },
	{ "command without default", "x unix - - n - - -",
	  "master.cf: line 1: field \"command\" has no default value", false },
	{ "command with slash", "x unix - - n - - ../bin/sh",
	  "master.cf: line 1: command \"../bin/sh\": want a program name", false },
	{ "unix name with slash", "a/b unix - - n - - smtpd",
	  "master.cf: line 1: bad unix service name \"a/b\"", false },
	{ "v6 without brackets", "::1:25 inet n - n - - smtpd",
	  "master.cf: line 1: bad inet service \"::1:25\": put an IPv6 address in brackets", false },
	{ "bad port", "127.0.0.1:99999 inet n - n - - smtpd",
	  "master.cf: line 1: bad port in inet service \"127.0.0.1:99999\"", false },
	{ "empty brackets", "[]:25 inet n - n - - smtpd",
	  "master.cf: line 1: bad inet service \"[]:25\"", false },
	{ "continuation first", "  -o x=y\nsmtp inet n - n - - smtpd",
	  "master.cf: line 1: continuation line without a service entry before it", false },
	{ "unbalanced brace", "smtp inet n - n - - smtpd\n  -o { x = y\n",
	  "master.cf: line 1: missing '}'", false },
	{ "-o without value", "smtp inet n - n - - smtpd -o",
	  "master.cf: line 1: -o without a value", false },
	{ "-o without =", "smtp inet n - n - - smtpd -o foo",
	  "master.cf: line 1: -o \"foo\": want name=value", false },
	{ "unknown option", "smtp inet n - n - - smtpd -S",
	  "master.cf: line 1: unsupported option \"-S\"", false },
	{ "duplicate", "smtp inet n - n - - smtpd\nsmtp unix - - n - - smtpd\n"
	  "smtp inet n - n - - smtpd",
	  "master.cf: line 3: duplicate service \"smtp\" of type inet", false },
	{ "empty file", "", "", true },
	{ "only comments", "# nothing\n   # indented comment\n", "", true },
};

/* test_parse: every case through master_cf_parse. */
static void test_parse(void)
{
	for (size_t i = 0; i < N_ELEMENTS(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		size_t len = strlen(c->text);
		struct master_cf *cf = NULL;
		const char *error = NULL;
		int ret = master_cf_parse(c->text, len, "master.cf", 100, &cf, &error);
		if (!c->ok) {
			tap_ok(ret < 0 && error != NULL && strncmp(error, c->want, strlen(c->want)) == 0,
			       "%s: error", c->name);
			if (ret == 0 || error == NULL || strncmp(error, c->want, strlen(c->want)) != 0)
				tap_diag("got: %s", ret < 0 && error ? error : "(success)");
			master_cf_free(&cf);
			continue;
		}
		struct str got = STR_INIT;
		if (ret == 0) {
			for (size_t j = 0; j < cf->count; j++) {
				if (j > 0)
					str_append_c(&got, '\n');
				summarize(&cf->entries[j], &got);
			}
		}
		tap_is_str(ret == 0 ? str_c(&got) : error, c->want, "%s", c->name);
		str_deinit(&got);
		master_cf_free(&cf);
		tap_ok(cf == NULL, "%s: free sets NULL", c->name);
	}
}

/* test_limits: the bounds in master_cf.h are enforced. */
static void test_limits(void)
{
	struct str text = STR_INIT;
	struct master_cf *cf = NULL;
	const char *error = NULL;
	str_append(&text, "smtp inet n - n - - smtpd");
	for (int i = 0; i < MASTER_CF_ARGS_MAX + 1; i++)
		str_append(&text, " a");
	tap_ok(master_cf_parse(text.data, text.len, "m", 100, &cf, &error) < 0 &&
	       strstr(error, "more than") != NULL, "too many arguments refused");
	str_clear(&text);
	str_append(&text, "smtp inet n - n - - smtpd\n");
	while (text.len <= MASTER_CF_LINE_MAX)
		str_append(&text, "  -o x=yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\n");
	tap_ok(master_cf_parse(text.data, text.len, "m", 100, &cf, &error) < 0 &&
	       strstr(error, "longer than") != NULL, "overlong logical line refused");
	str_clear(&text);
	str_append(&text, "smtp inet n - n - - smtpd -o ");
	for (int i = 0; i < 20; i++)
		str_append(&text, "{ ");
	tap_ok(master_cf_parse(text.data, text.len, "m", 100, &cf, &error) < 0,
	       "deep braces refused");
	str_deinit(&text);
}

/* test_nul: a NUL byte inside the text is an error, not a truncation. */
static void test_nul(void)
{
	static const char text[] = "smtp inet n - n - - smtpd\nx\0y unix - - n - - a";
	struct master_cf *cf = NULL;
	const char *error = NULL;
	tap_ok(master_cf_parse(text, sizeof(text) - 1, "m", 100, &cf, &error) < 0 &&
	       strcmp(error, "m: line 2: NUL character in line") == 0, "NUL byte refused");
}

/* test_find_and_load: lookup by name and type; a missing file. */
static void test_find_and_load(void)
{
	const char *text = "smtp inet n - n - - smtpd\nsmtp unix - - n - - lmtp\n";
	struct master_cf *cf = NULL;
	const char *error = NULL;
	tap_ok(master_cf_parse(text, strlen(text), "m", 7, &cf, &error) == 0, "parse for find");
	const struct master_cf_entry *e = master_cf_find(cf, "smtp", MASTER_CF_UNIX);
	tap_ok(e != NULL && strcmp(e->command, "lmtp") == 0 && e->maxproc == 7,
	       "find by name and type");
	tap_ok(master_cf_find(cf, "smtp", MASTER_CF_FIFO) == NULL, "find misses other types");
	master_cf_free(&cf);
	tap_ok(master_cf_load("/nonexistent/master.cf", 100, &cf, &error) < 0 &&
	       strstr(error, "open(/nonexistent/master.cf) failed") != NULL, "missing file");
}

/* main: run every group, print the plan. */
int main(void)
{
	test_parse();
	test_limits();
	test_nul();
	test_find_and_load();
	return tap_done();
}
