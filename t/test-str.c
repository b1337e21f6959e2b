/* test-str.c: unit tests for lib/util/str (growable strings, bounded copies,
 * log escaping). */
#include <config.h>

#include <string.h>

#include "tap.h"
#include "util/str.h"

static void test_append(void)
{
	struct str s = STR_INIT;
	tap_is_str(str_c(&s), "", "empty string reads as \"\"");
	for (int i = 0; i < 1000; i++)
		str_append(&s, "ab");
	tap_is_int((long long)s.len, 2000, "2000 bytes after 1000 appends");
	str_truncate(&s, 3);
	tap_is_str(str_c(&s), "aba", "truncate keeps the prefix");
	str_printf(&s, "-%d-%s", 42, "x");
	tap_is_str(str_c(&s), "aba-42-x", "printf appends");
	str_consume(&s, 4);
	tap_is_str(str_c(&s), "42-x", "consume drops the head");
	str_append_n(&s, "\0z", 2);
	tap_is_int((long long)s.len, 6, "embedded NUL counted");
	str_deinit(&s);
}

static const struct copy_case {
	size_t size;
	const char *src;
	bool ok;
	const char *want;
} copy_cases[] = {
	{ 8, "short", true, "short" },
	{ 6, "short", true, "short" },
	{ 5, "short", false, "shor" },
	{ 1, "short", false, "" },
};

static void test_copy(void)
{
	for (size_t i = 0; i < sizeof(copy_cases) / sizeof(copy_cases[0]); i++) {
		const struct copy_case *c = &copy_cases[i];
		char buf[16];
		bool ok = str_copy(buf, c->size, c->src);
		tap_ok(ok == c->ok, "str_copy(%zu, %s) returns %d", c->size, c->src, c->ok);
		tap_is_str(buf, c->want, "str_copy(%zu, %s) result", c->size, c->src);
	}
	char buf[4];
	tap_ok(!str_format(buf, sizeof(buf), "%d", 12345), "str_format reports truncation");
}

static const struct escape_case {
	const char *in;
	size_t len;
	size_t max;
	const char *want;
} escape_cases[] = {
	{ "plain", 5, 100, "plain" },
	{ "a\r\nb", 4, 100, "a\\015\\012b" },
	{ "back\\slash", 10, 100, "back\\134slash" },
	{ "\xff\x01", 2, 100, "\\377\\001" },
	{ "abcdef", 6, 3, "abc..." },
};

static void test_escape(void)
{
	for (size_t i = 0; i < sizeof(escape_cases) / sizeof(escape_cases[0]); i++) {
		const struct escape_case *c = &escape_cases[i];
		struct str out = STR_INIT;
		str_escape_log(&out, c->in, c->len, c->max);
		tap_is_str(str_c(&out), c->want, "escape case %zu", i);
		str_deinit(&out);
	}
}

static void test_icase(void)
{
	tap_ok(str_eq_icase("EHLO", "ehlo"), "eq_icase matches across case");
	tap_ok(!str_eq_icase("EHLO", "ehl"), "eq_icase needs equal length");
	tap_ok(str_prefix_icase("MAIL FROM:<a>", "mail from:"), "prefix_icase");
	tap_ok(!str_prefix_icase("MAI", "mail"), "prefix_icase on short input");
}

int main(void)
{
	test_append();
	test_copy();
	test_escape();
	test_icase();
	return tap_done();
}
