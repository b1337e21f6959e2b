/* test-addr.c: unit tests for lib/mail/addr (RFC 5321 paths, ESMTP
 * parameters, xtext), plus a seeded random-input loop that must never
 * crash or leak under ASan/UBSan. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/addr.h"
#include "tap.h"
#include "util/attr.h"
#include "util/str.h"

/* A literal and its length, so cases can hold NUL bytes. */
#define IN(s) s, sizeof(s) - 1

#define X10 "aaaaaaaaaa"
#define L63 X10 X10 X10 X10 X10 X10 "aaa"
#define L64 L63 "a"
#define LOCAL64 X10 X10 X10 X10 X10 X10 "bbbb"
#define LOCAL65 LOCAL64 "c"
#define DOM252 L63 "." L63 "." L63 "." X10 X10 X10 X10 X10 X10 /* 252 octets */
#define DOM256 L63 "." L63 "." L63 "." X10 X10 X10 X10 X10 X10 "aa.a" /* 256 octets */

#define MAILF (ADDR_NULL_OK)
#define RCPTF (ADDR_POSTMASTER_OK)
#define UTF8F (ADDR_ALLOW_SMTPUTF8)

static const struct path_case {
	const char *in;
	size_t len;
	unsigned flags;
	enum addr_error err;
	const char *local; /* internal form; for errors unused */
	const char *domain;
	const char *external;
	const char *rest;
	bool utf8;
} path_cases[] = {
	/* valid: plain forms */
	{ IN("<alice@example.test>"), 0, ADDR_OK, "alice", "example.test", "alice@example.test", "", false },
	{ IN("<alice@example.test> SIZE=1000 BODY=8BITMIME"), MAILF, ADDR_OK, "alice", "example.test",
	  "alice@example.test", "SIZE=1000 BODY=8BITMIME", false },
	{ IN(" <alice@example.test>"), ADDR_STRICT, ADDR_OK, "alice", "example.test", "alice@example.test", "", false },
	{ IN("alice@example.test"), 0, ADDR_OK, "alice", "example.test", "alice@example.test", "", false },
	{ IN(" alice@example.test SIZE=10"), 0, ADDR_OK, "alice", "example.test", "alice@example.test", "SIZE=10", false },
	{ IN("<a@b>   "), 0, ADDR_OK, "a", "b", "a@b", "", false },
	{ IN("<a@b>  SIZE=1  "), 0, ADDR_OK, "a", "b", "a@b", "SIZE=1  ", false },
	{ IN("<first.last@example.test>"), 0, ADDR_OK, "first.last", "example.test", "first.last@example.test", "", false },
	{ IN("<a.b.c.d@example.test>"), 0, ADDR_OK, "a.b.c.d", "example.test", "a.b.c.d@example.test", "", false },
	{ IN("<user@mail-1.ex-am--ple.test>"), 0, ADDR_OK, "user", "mail-1.ex-am--ple.test",
	  "user@mail-1.ex-am--ple.test", "", false },
	{ IN("<Alice@Example.TEST>"), 0, ADDR_OK, "Alice", "Example.TEST", "Alice@Example.TEST", "", false },
	{ IN("<user%evil@example.test>"), 0, ADDR_OK, "user%evil", "example.test", "user%evil@example.test", "", false },
	{ IN("<evil!user@example.test>"), 0, ADDR_OK, "evil!user", "example.test", "evil!user@example.test", "", false },
	{ IN("<user+tag@example.test>"), 0, ADDR_OK, "user+tag", "example.test", "user+tag@example.test", "", false },
	{ IN("<!#$%&'*+-/=?^_`{|}~@example.test>"), 0, ADDR_OK, "!#$%&'*+-/=?^_`{|}~", "example.test",
	  "!#$%&'*+-/=?^_`{|}~@example.test", "", false },
	{ IN("<user@localhost>"), 0, ADDR_OK, "user", "localhost", "user@localhost", "", false },
	{ IN("<user@123.456.test>"), 0, ADDR_OK, "user", "123.456.test", "user@123.456.test", "", false },
	{ IN("<user@xn--bcher-kva.test>"), 0, ADDR_OK, "user", "xn--bcher-kva.test", "user@xn--bcher-kva.test", "", false },
	{ IN("<" LOCAL64 "@example.test>"), 0, ADDR_OK, LOCAL64, "example.test", LOCAL64 "@example.test", "", false },
	{ IN("<a@" DOM252 ">"), 0, ADDR_OK, "a", DOM252, "a@" DOM252, "", false },
	{ IN("<a@" L63 ".test>"), 0, ADDR_OK, "a", L63 ".test", "a@" L63 ".test", "", false },
	/* valid: quoted local parts */
	{ IN("<\"john doe\"@example.test>"), 0, ADDR_OK, "john doe", "example.test", "\"john doe\"@example.test", "", false },
	{ IN("<\"john\\\"doe\"@example.test>"), 0, ADDR_OK, "john\"doe", "example.test",
	  "\"john\\\"doe\"@example.test", "", false },
	{ IN("<\"alice\"@example.test>"), 0, ADDR_OK, "alice", "example.test", "alice@example.test", "", false },
	{ IN("<\"a\\b\"@x.test>"), 0, ADDR_OK, "ab", "x.test", "ab@x.test", "", false },
	{ IN("<\"a\\\\b\"@x.test>"), 0, ADDR_OK, "a\\b", "x.test", "\"a\\\\b\"@x.test", "", false },
	{ IN("<\"a\\ b\"@x.test>"), 0, ADDR_OK, "a b", "x.test", "\"a b\"@x.test", "", false },
	{ IN("<\"a..b\"@x.test>"), 0, ADDR_OK, "a..b", "x.test", "\"a..b\"@x.test", "", false },
	{ IN("<\".a\"@x.test>"), 0, ADDR_OK, ".a", "x.test", "\".a\"@x.test", "", false },
	{ IN("<\"a@b\"@x.test>"), 0, ADDR_OK, "a@b", "x.test", "\"a@b\"@x.test", "", false },
	{ IN("<\"<>\"@x.test>"), 0, ADDR_OK, "<>", "x.test", "\"<>\"@x.test", "", false },
	{ IN("\"john doe\"@example.test NOTIFY=NEVER"), 0, ADDR_OK, "john doe", "example.test",
	  "\"john doe\"@example.test", "NOTIFY=NEVER", false },
	/* valid: address literals */
	{ IN("<user@[192.0.2.1]>"), 0, ADDR_OK, "user", "[192.0.2.1]", "user@[192.0.2.1]", "", false },
	{ IN("<user@[IPv6:2001:db8::1]>"), 0, ADDR_OK, "user", "[IPv6:2001:db8::1]", "user@[IPv6:2001:db8::1]", "", false },
	{ IN("<user@[ipv6:2001:DB8::1]>"), 0, ADDR_OK, "user", "[ipv6:2001:DB8::1]", "user@[ipv6:2001:DB8::1]", "", false },
	{ IN("<user@[IPv6:::ffff:192.0.2.1]>"), 0, ADDR_OK, "user", "[IPv6:::ffff:192.0.2.1]",
	  "user@[IPv6:::ffff:192.0.2.1]", "", false },
	/* valid: postmaster and null */
	{ IN("<postmaster>"), RCPTF, ADDR_OK, "postmaster", NULL, "postmaster", "", false },
	{ IN("<PostMaster> NOTIFY=NEVER"), RCPTF, ADDR_OK, "PostMaster", NULL, "PostMaster", "NOTIFY=NEVER", false },
	{ IN("postmaster"), RCPTF, ADDR_OK, "postmaster", NULL, "postmaster", "", false },
	{ IN("<postmaster@example.test>"), 0, ADDR_OK, "postmaster", "example.test", "postmaster@example.test", "", false },
	{ IN("<>"), MAILF, ADDR_OK, "", NULL, "", "", false },
	{ IN(" <> SIZE=10"), MAILF | ADDR_STRICT, ADDR_OK, "", NULL, "", "SIZE=10", false },
	/* valid: SMTPUTF8 */
	{ IN("<j\xc3\xb6hn@ex\xc3\xa4mple.test>"), UTF8F, ADDR_OK, "j\xc3\xb6hn", "ex\xc3\xa4mple.test",
	  "j\xc3\xb6hn@ex\xc3\xa4mple.test", "", true },
	{ IN("<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test>"), UTF8F, ADDR_OK,
	  "\xe7\x94\xa8\xe6\x88\xb7", "\xe4\xbe\x8b\xe5\xad\x90.test",
	  "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test", "", true },
	{ IN("<\xf0\x9f\x98\x80@example.test>"), UTF8F, ADDR_OK, "\xf0\x9f\x98\x80", "example.test",
	  "\xf0\x9f\x98\x80@example.test", "", true },
	{ IN("<\"j\xc3\xb6 hn\"@example.test>"), UTF8F, ADDR_OK, "j\xc3\xb6 hn", "example.test",
	  "\"j\xc3\xb6 hn\"@example.test", "", true },
	{ IN("<alice@example.test>"), UTF8F, ADDR_OK, "alice", "example.test", "alice@example.test", "", false },

	/* invalid: source routes */
	{ IN("<@a,@b:user@d>"), 0, ADDR_ERR_SOURCE_ROUTE, NULL, NULL, NULL, NULL, false },
	{ IN("<@a.test:user@d.test>"), MAILF, ADDR_ERR_SOURCE_ROUTE, NULL, NULL, NULL, NULL, false },
	{ IN("@a:user@d"), 0, ADDR_ERR_SOURCE_ROUTE, NULL, NULL, NULL, NULL, false },
	/* invalid: brackets and framing */
	{ IN("alice@example.test"), ADDR_STRICT, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<alice@example.test"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<postmaster"), RCPTF, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<<alice@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<alice@example.test>>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("alice@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<alice@example.test>x"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<alice@example.test>SIZE=1"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<alice@example.test>\r\n"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<alice@example.test>\t"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("Alice <alice@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN(""), MAILF, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("   "), MAILF, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<> "), RCPTF, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<postmaster>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<user>"), RCPTF, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("user"), RCPTF, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	/* invalid: spaces and controls */
	{ IN("< alice@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<alice @example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<alice@ example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<alice@example.test >"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<john doe@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a\0b@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<ab@exa\0mple.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<\"a\0b\"@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a\rb@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a\nb@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<ab@example.test\r>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a\tb@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<\"a\tb\"@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<\"a\rb\"@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<\"a\\\nb\"@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<\"a\\\x7f\"@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<ab\x7f@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<ab@example.test\x01>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	/* invalid: local part */
	{ IN("<a..b@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<.a@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a.@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<\"\"@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<\"unterminated@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<\"a\"b@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a\"b\"@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a,b@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a(comment)@example.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	/* invalid: domain */
	{ IN("<a@>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("a@"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@b..c>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@.b>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@b.>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@-b.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@b-.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@b_c.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@b@c.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@b,c.test>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	/* invalid: address literals */
	{ IN("<a@[IPv6:2001:db8:::1]>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@[IPv6:2001:db8::g]>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@[IPv6:192.0.2.1]>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@[2001:db8::1]>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@[300.1.1.1]>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@[1.2.3]>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@[1.2.3.4>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@[1.2.3.4]x>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@[x-tag:abc]>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@[]>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@[010.0.0.1]>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@[IPv6:fe80::1%eth0]>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@[IPv6:" X10 X10 X10 X10 X10 X10 X10 "]>"), 0, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	/* invalid: lengths */
	{ IN("<" LOCAL65 "@example.test>"), 0, ADDR_ERR_TOO_LONG, NULL, NULL, NULL, NULL, false },
	{ IN("<\"" X10 X10 X10 X10 X10 X10 "abc\"@example.test>"), 0, ADDR_ERR_TOO_LONG, NULL, NULL, NULL, NULL, false },
	{ IN("<a@" DOM256 ">"), 0, ADDR_ERR_TOO_LONG, NULL, NULL, NULL, NULL, false },
	{ IN("<a@" L64 ".test>"), 0, ADDR_ERR_TOO_LONG, NULL, NULL, NULL, NULL, false },
	{ IN("<ab@" DOM252 ">"), 0, ADDR_ERR_TOO_LONG, NULL, NULL, NULL, NULL, false },
	{ IN("ab@" DOM252), 0, ADDR_ERR_TOO_LONG, NULL, NULL, NULL, NULL, false },
	/* invalid: 8-bit */
	{ IN("<j\xc3\xb6hn@example.test>"), 0, ADDR_ERR_8BIT, NULL, NULL, NULL, NULL, false },
	{ IN("<john@ex\xc3\xa4mple.test>"), MAILF, ADDR_ERR_8BIT, NULL, NULL, NULL, NULL, false },
	{ IN("<\"j\xc3\xb6hn\"@example.test>"), 0, ADDR_ERR_8BIT, NULL, NULL, NULL, NULL, false },
	{ IN("<\xff@example.test>"), 0, ADDR_ERR_8BIT, NULL, NULL, NULL, NULL, false },
	{ IN("<\xff@example.test>"), UTF8F, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a\xc0\xaf@example.test>"), UTF8F, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a\xe0\x80\xaf@example.test>"), UTF8F, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a\xf0\x80\x80\xaf@example.test>"), UTF8F, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a\xed\xa0\x80@example.test>"), UTF8F, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a\xf4\x90\x80\x80@example.test>"), UTF8F, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a\xc2\x85@example.test>"), UTF8F, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a\xc3@example.test>"), UTF8F, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@example.test\xc3"), UTF8F, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a\x80@example.test>"), UTF8F, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<\"a\\\xc3\xb6\"@example.test>"), UTF8F, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
	{ IN("<a@[192.0.2.\xc3\xb6]>"), UTF8F, ADDR_ERR_SYNTAX, NULL, NULL, NULL, NULL, false },
};

/* escaped: a printable copy of a case's input for test names. */
static const char *escaped(struct str *buf, const char *in, size_t len)
{
	str_clear(buf);
	str_escape_log(buf, in, len, 60);
	return str_c(buf);
}

/* check_ok_case: the fields of a successful parse. */
static void check_ok_case(const struct path_case *c, const struct smtp_addr *a, const char *rest,
			  const char *name)
{
	tap_is_str(a->local, c->local, "%s: local part", name);
	tap_is_str(a->domain, c->domain, "%s: domain", name);
	tap_is_str(a->external, c->external, "%s: external form", name);
	tap_is_str(rest, c->rest, "%s: rest", name);
	tap_ok(a->utf8 == c->utf8, "%s: utf8 flag", name);
	tap_ok(a->is_null == (c->external[0] == '\0'), "%s: null flag", name);
}

/* check_round_trip: "<external>" parses back to the same address. */
static void check_round_trip(const struct path_case *c, const struct smtp_addr *a, const char *name)
{
	struct str wire = STR_INIT;
	struct smtp_addr b;
	const char *rest, *error;
	str_printf(&wire, "<%s>", a->external);
	enum addr_error err = addr_parse_path(wire.data, wire.len, c->flags, &b, &rest, &error);
	if (tap_ok(err == ADDR_OK, "%s: external form parses again", name)) {
		tap_ok(strcmp(b.external, a->external) == 0 && strcmp(b.local, a->local) == 0 &&
			       (a->domain == NULL ? b.domain == NULL
						  : b.domain != NULL && strcmp(a->domain, b.domain) == 0),
		       "%s: round trip is stable", name);
	}
	smtp_addr_deinit(&b);
	str_deinit(&wire);
}

static void test_paths(void)
{
	struct str name = STR_INIT;
	for (size_t i = 0; i < N_ELEMENTS(path_cases); i++) {
		const struct path_case *c = &path_cases[i];
		struct smtp_addr a;
		const char *rest = NULL, *error = NULL;
		escaped(&name, c->in, c->len);
		enum addr_error err = addr_parse_path(c->in, c->len, c->flags, &a, &rest, &error);
		if (!tap_is_int(err, c->err, "path %zu %s: result", i, str_c(&name))) {
			if (err != ADDR_OK)
				tap_diag("error: %s", error);
		}
		if (err == ADDR_OK && c->err == ADDR_OK) {
			check_ok_case(c, &a, rest, str_c(&name));
			check_round_trip(c, &a, str_c(&name));
		} else if (err != ADDR_OK) {
			tap_ok(error != NULL && *error != '\0' && a.local == NULL && a.external == NULL,
			       "path %zu: error text \"%s\", nothing kept", i, error != NULL ? error : "");
		}
		smtp_addr_deinit(&a);
	}
	str_deinit(&name);
}

/* test_error_texts: the replies smtpd passes on. */
static void test_error_texts(void)
{
	static const struct {
		const char *in;
		unsigned flags;
		const char *want;
	} cases[] = {
		{ "<@a,@b:user@d>", 0, "source routes are not accepted" },
		{ "alice@example.test", ADDR_STRICT, "address must be enclosed in <>" },
		{ "<alice@example.test", 0, "missing closing >" },
		{ "<j\xc3\xb6hn@example.test>", 0, "non-ASCII address without SMTPUTF8" },
		{ "<" LOCAL65 "@example.test>", 0, "local part longer than 64 octets" },
		{ "<a@" L64 ">", 0, "domain label longer than 63 octets" },
		{ "<a@" DOM256 ">", 0, "domain longer than 255 octets" },
		{ "<ab@" DOM252 ">", 0, "address longer than 256 octets" },
		{ "<>", 0, "null address is not allowed here" },
		{ "<user>", 0, "missing domain" },
		{ "<a..b@c>", 0, "misplaced dot in local part" },
	};
	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		struct smtp_addr a;
		const char *rest, *error = NULL;
		(void)addr_parse_path(cases[i].in, strlen(cases[i].in), cases[i].flags, &a, &rest, &error);
		tap_is_str(error, cases[i].want, "error text %zu", i);
		smtp_addr_deinit(&a);
	}
}

static void test_lookup_keys(void)
{
	static const struct {
		const char *in;
		unsigned flags;
		const char *want;
	} cases[] = {
		{ "<Alice@Example.TEST>", 0, "alice@example.test" },
		{ "<\"John Doe\"@Example.Test>", 0, "\"john doe\"@example.test" },
		{ "<\"JOHN\"@EXAMPLE.TEST>", 0, "john@example.test" },
		{ "<PostMaster>", ADDR_POSTMASTER_OK, "postmaster" },
		{ "<>", ADDR_NULL_OK, "" },
		{ "<J\xc3\x96hn@EXAMPLE.test>", ADDR_ALLOW_SMTPUTF8, "j\xc3\x96hn@example.test" },
		{ "<User@[IPv6:2001:DB8::1]>", 0, "user@[ipv6:2001:db8::1]" },
		{ "<User%Evil@Example.Test>", 0, "user%evil@example.test" },
	};
	struct str key = STR_INIT;
	str_set(&key, "stale");
	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		struct smtp_addr a;
		const char *rest, *error;
		if (addr_parse_path(cases[i].in, strlen(cases[i].in), cases[i].flags, &a, &rest, &error) !=
		    ADDR_OK) {
			tap_ok(false, "lookup key %zu: parse failed: %s", i, error);
			continue;
		}
		addr_lookup_key(&a, &key);
		tap_is_str(str_c(&key), cases[i].want, "lookup key of %s", cases[i].in);
		smtp_addr_deinit(&a);
	}
	str_deinit(&key);
}

static void test_mailbox(void)
{
	static const struct {
		const char *in;
		enum addr_error err;
		const char *external;
	} cases[] = {
		{ "alice@example.test", ADDR_OK, "alice@example.test" },
		{ "\"a b\"@example.test", ADDR_OK, "\"a b\"@example.test" },
		{ "<alice@example.test>", ADDR_ERR_SYNTAX, NULL },
		{ "alice@example.test ", ADDR_ERR_SYNTAX, NULL },
		{ "", ADDR_ERR_SYNTAX, NULL },
		{ "alice", ADDR_ERR_SYNTAX, NULL },
	};
	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		struct smtp_addr a;
		const char *error;
		enum addr_error err = addr_parse_mailbox(cases[i].in, strlen(cases[i].in), 0, &a, &error);
		tap_is_int(err, cases[i].err, "mailbox \"%s\"", cases[i].in);
		if (err == ADDR_OK)
			tap_is_str(a.external, cases[i].external, "mailbox \"%s\" external", cases[i].in);
		smtp_addr_deinit(&a);
	}
}

#define DSN_ALL (SMTP_EXT_DEFAULT)
#define NO_SIZE (-1)

static const struct param_case {
	bool rcpt;
	const char *in;
	size_t len;
	unsigned ext;
	enum addr_error err;
	long long size;
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	const char *envid;
	const char *auth;
	unsigned notify;
	const char *orcpt;
} param_cases[] = {
	/* MAIL, valid */
	{ false, IN(""), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("   "), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SIZE=1000"), DSN_ALL, ADDR_OK, 1000, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("size=0"), DSN_ALL, ADDR_OK, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SIZE=0009"), DSN_ALL, ADDR_OK, 9, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SIZE=9007199254740992"), DSN_ALL, ADDR_OK, SMTP_SIZE_MAX, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("BODY=7BIT"), DSN_ALL, ADDR_OK, NO_SIZE, SMTP_BODY_7BIT, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("body=8bitmime"), DSN_ALL, ADDR_OK, NO_SIZE, SMTP_BODY_8BITMIME, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("BODY=BINARYMIME"), DSN_ALL | SMTP_EXT_BINARYMIME, ADDR_OK, NO_SIZE, SMTP_BODY_BINARYMIME,
	  false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SMTPUTF8"), DSN_ALL, ADDR_OK, NO_SIZE, 0, true, 0, NULL, NULL, 0, NULL },
	{ false, IN("smtputf8"), DSN_ALL, ADDR_OK, NO_SIZE, 0, true, 0, NULL, NULL, 0, NULL },
	{ false, IN("RET=FULL"), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, SMTP_RET_FULL, NULL, NULL, 0, NULL },
	{ false, IN("ret=hdrs"), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, SMTP_RET_HDRS, NULL, NULL, 0, NULL },
	{ false, IN("ENVID=QQ314159"), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, 0, "QQ314159", NULL, 0, NULL },
	{ false, IN("ENVID=a+2Bb+3Dc+20d"), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, 0, "a+b=c d", NULL, 0, NULL },
	{ false, IN("AUTH=<>"), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, 0, NULL, "<>", 0, NULL },
	{ false, IN("AUTH=e+3D+3Dmc2@example.com"), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, 0, NULL,
	  "e==mc2@example.com", 0, NULL },
	{ false, IN("AUTH=alice+2Btag@example.test"), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, 0, NULL,
	  "alice+tag@example.test", 0, NULL },
	{ false, IN("SIZE=1 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=abc AUTH=<>"), DSN_ALL, ADDR_OK, 1,
	  SMTP_BODY_8BITMIME, true, SMTP_RET_HDRS, "abc", "<>", 0, NULL },
	{ false, IN("  SIZE=1    BODY=7BIT  "), DSN_ALL, ADDR_OK, 1, SMTP_BODY_7BIT, false, 0, NULL, NULL, 0, NULL },
	/* MAIL, invalid values */
	{ false, IN("SIZE=9007199254740993"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SIZE=99999999999999999999999"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SIZE=-1"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SIZE=1k"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SIZE"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SIZE="), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SIZE=1=2"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("BODY=BINARYMIME"), DSN_ALL, ADDR_ERR_PARAM_UNKNOWN, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("BODY=8BIT"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("BODY"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SMTPUTF8=yes"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("RET=ALL"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("RET"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("ENVID=a+2bb"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("ENVID=a+2"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("ENVID=a+"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("ENVID=a+ZZ"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("ENVID=+00"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("ENVID=a+0Ab"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("ENVID=" X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 "a"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0,
	  false, 0, NULL, NULL, 0, NULL },
	{ false, IN("AUTH=notanaddress"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("AUTH=a+20b@example.test"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("AUTH"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	/* MAIL, keyword problems */
	{ false, IN("SIZE=1 SIZE=2"), DSN_ALL, ADDR_ERR_PARAM_DUP, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("ENVID=a size=1 Size=2"), DSN_ALL, ADDR_ERR_PARAM_DUP, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SMTPUTF8 SMTPUTF8"), DSN_ALL, ADDR_ERR_PARAM_DUP, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("FOO=bar"), DSN_ALL, ADDR_ERR_PARAM_UNKNOWN, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("X-FOO"), DSN_ALL, ADDR_ERR_PARAM_UNKNOWN, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("NOTIFY=NEVER"), DSN_ALL, ADDR_ERR_PARAM_UNKNOWN, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SIZE=1"), 0, ADDR_ERR_PARAM_UNKNOWN, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("RET=FULL"), DSN_ALL & ~SMTP_EXT_DSN, ADDR_ERR_PARAM_UNKNOWN, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SMTPUTF8"), DSN_ALL & ~SMTP_EXT_SMTPUTF8, ADDR_ERR_PARAM_UNKNOWN, 0, 0, false, 0, NULL, NULL, 0,
	  NULL },
	{ false, IN("=x"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("-X=1"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SI_ZE=1"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SIZE=1\tBODY=7BIT"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SIZE=1\0"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SIZE=1\r\n"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("ENVID=\xc3\xa9"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 "
		    "SIZE=1 SIZE=1 SIZE=1"),
	  DSN_ALL, ADDR_ERR_PARAM_DUP, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ false, IN("A B C D E F G H I J K L M N O P Q"), DSN_ALL, ADDR_ERR_PARAM_TOO_MANY, 0, 0, false, 0, NULL, NULL,
	  0, NULL },
	{ false, IN("SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 SIZE=1 "
		    "SIZE=1 SIZE=1 SIZE=1 SIZE=1"),
	  DSN_ALL, ADDR_ERR_PARAM_TOO_MANY, 0, 0, false, 0, NULL, NULL, 0, NULL },
	/* RCPT, valid */
	{ true, IN(""), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, 0, NULL, NULL, 0, NULL },
	{ true, IN("NOTIFY=NEVER"), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, 0, NULL, NULL, SMTP_NOTIFY_NEVER, NULL },
	{ true, IN("NOTIFY=SUCCESS,FAILURE"), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, 0, NULL, NULL,
	  SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE, NULL },
	{ true, IN("notify=delay,success,Failure"), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, 0, NULL, NULL,
	  SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY, NULL },
	{ true, IN("ORCPT=rfc822;bob@example.test"), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, 0, NULL, NULL, 0,
	  "rfc822;bob@example.test" },
	{ true, IN("ORCPT=rfc822;bob+2Btag@example.test"), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, 0, NULL, NULL, 0,
	  "rfc822;bob+tag@example.test" },
	{ true, IN("NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.test"), DSN_ALL, ADDR_OK, NO_SIZE, 0, false, 0,
	  NULL, NULL, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE, "rfc822;bob@example.test" },
	/* RCPT, invalid */
	{ true, IN("NOTIFY=NEVER,SUCCESS"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ true, IN("NOTIFY=SUCCESS,NEVER"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ true, IN("NOTIFY=SUCCESS,SUCCESS"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ true, IN("NOTIFY=SUCCESS,"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ true, IN("NOTIFY=,SUCCESS"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ true, IN("NOTIFY=ALWAYS"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ true, IN("NOTIFY"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ true, IN("ORCPT=rfc822;"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ true, IN("ORCPT=;bob@example.test"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ true, IN("ORCPT=bob@example.test"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ true, IN("ORCPT=rfc822;bob+4"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ true, IN("ORCPT=rfc822;bob+0D+0A"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ true, IN("ORCPT=rfc(822);bob@example.test"), DSN_ALL, ADDR_ERR_PARAM_SYNTAX, 0, 0, false, 0, NULL, NULL, 0,
	  NULL },
	{ true, IN("NOTIFY=NEVER notify=never"), DSN_ALL, ADDR_ERR_PARAM_DUP, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ true, IN("SIZE=1"), DSN_ALL, ADDR_ERR_PARAM_UNKNOWN, 0, 0, false, 0, NULL, NULL, 0, NULL },
	{ true, IN("NOTIFY=NEVER"), DSN_ALL & ~SMTP_EXT_DSN, ADDR_ERR_PARAM_UNKNOWN, 0, 0, false, 0, NULL, NULL, 0,
	  NULL },
};

/* check_params: every field of a successful parse. */
static void check_params(const struct param_case *c, const struct smtp_params *p, const char *name)
{
	tap_ok(p->size == c->size && p->body == c->body && p->smtputf8 == c->smtputf8 &&
		       p->ret == c->ret && p->notify == c->notify,
	       "%s: scalar fields", name);
	tap_is_str(p->envid, c->envid, "%s: ENVID", name);
	tap_is_str(p->auth, c->auth, "%s: AUTH", name);
	tap_is_str(p->orcpt, c->orcpt, "%s: ORCPT", name);
}

static void test_params(void)
{
	struct str name = STR_INIT;
	for (size_t i = 0; i < N_ELEMENTS(param_cases); i++) {
		const struct param_case *c = &param_cases[i];
		struct smtp_params p;
		const char *error = NULL;
		escaped(&name, c->in, c->len);
		enum addr_error err = c->rcpt ? smtp_params_parse_rcpt(c->in, c->len, c->ext, &p, &error)
					      : smtp_params_parse_mail(c->in, c->len, c->ext, &p, &error);
		if (!tap_is_int(err, c->err, "%s params %zu \"%s\"", c->rcpt ? "RCPT" : "MAIL", i,
				str_c(&name)) &&
		    err != ADDR_OK)
			tap_diag("error: %s", error);
		if (err == ADDR_OK && c->err == ADDR_OK)
			check_params(c, &p, str_c(&name));
		else if (err != ADDR_OK)
			tap_ok(error != NULL && *error != '\0' && p.envid == NULL && p.auth == NULL &&
				       p.orcpt == NULL && p.size == -1,
			       "params %zu: error text \"%s\", nothing kept", i, error != NULL ? error : "");
		smtp_params_deinit(&p);
	}
	str_deinit(&name);
}

/* test_param_limits: ENVID 100 and ORCPT 500 decoded octets, and the
 * keyword named in the reply. */
static void test_param_limits(void)
{
	static const struct {
		bool rcpt;
		const char *prefix;
		size_t n;
		enum addr_error err;
	} cases[] = {
		{ false, "ENVID=", 100, ADDR_OK },
		{ false, "ENVID=", 101, ADDR_ERR_PARAM_SYNTAX },
		{ true, "ORCPT=rfc822;", 500, ADDR_OK },
		{ true, "ORCPT=rfc822;", 501, ADDR_ERR_PARAM_SYNTAX },
	};
	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		struct str in = STR_INIT;
		struct smtp_params p;
		const char *error;
		str_append(&in, cases[i].prefix);
		for (size_t j = 0; j < cases[i].n; j++)
			str_append(&in, j % 2 == 0 ? "+2B" : "x"); /* encoded is longer */
		enum addr_error err = cases[i].rcpt ? smtp_params_parse_rcpt(in.data, in.len, DSN_ALL, &p, &error)
						    : smtp_params_parse_mail(in.data, in.len, DSN_ALL, &p, &error);
		tap_is_int(err, cases[i].err, "%s%zu decoded octets", cases[i].prefix, cases[i].n);
		smtp_params_deinit(&p);
		str_deinit(&in);
	}
	struct smtp_params p;
	const char *error;
	(void)smtp_params_parse_mail(IN("SIZE=1 foo=bar"), DSN_ALL, &p, &error);
	tap_is_str(error, "unsupported parameter: foo", "unknown keyword named in the reply");
	(void)smtp_params_parse_mail(IN("size=1 Size=2"), DSN_ALL, &p, &error);
	tap_is_str(error, "duplicate parameter: SIZE", "duplicate keyword named in the reply");
	smtp_params_deinit(&p);
	smtp_params_deinit(&p);
}

static void test_xtext(void)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
	} enc[] = {
		{ IN("plain@example.test"), "plain@example.test" },
		{ IN("a+b=c d"), "a+2Bb+3Dc+20d" },
		{ IN("\x01\x7f\xff"), "+01+7F+FF" },
		{ IN("\xc3\xa9"), "+C3+A9" },
		{ IN(""), "" },
	};
	struct str s = STR_INIT;
	for (size_t i = 0; i < N_ELEMENTS(enc); i++) {
		str_clear(&s);
		addr_xtext_encode(&s, enc[i].in, enc[i].len);
		tap_is_str(str_c(&s), enc[i].want, "xtext encode %zu", i);
	}
	static const char *const bad[] = { "+", "+4", "+4g", "+g4", "a b", "a=b", "\x7f", "\xc3\xa9", "+2b" };
	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		const char *error = NULL;
		str_clear(&s);
		tap_ok(!addr_xtext_decode(&s, bad[i], strlen(bad[i]), &error) && error != NULL,
		       "xtext decode refuses bad input %zu", i);
	}
	/* every byte value survives encode + decode */
	unsigned char all[256];
	for (size_t i = 0; i < sizeof(all); i++)
		all[i] = (unsigned char)i;
	struct str dec = STR_INIT;
	const char *error;
	str_clear(&s);
	addr_xtext_encode(&s, all, sizeof(all));
	tap_ok(addr_xtext_decode(&dec, s.data, s.len, &error) && dec.len == sizeof(all) &&
		       memcmp(dec.data, all, sizeof(all)) == 0,
	       "xtext round trip of all 256 byte values");
	str_deinit(&dec);
	str_deinit(&s);
}

/* rand_next: a small seeded generator, the same on every platform. */
static unsigned rand_next(unsigned long long *state)
{
	*state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (unsigned)(*state >> 33);
}

/* fuzz_one: parse buf as a path, then its rest as both parameter sets;
 * returns false when an invariant breaks. */
static bool fuzz_one(const char *buf, size_t len, unsigned flags)
{
	struct smtp_addr a;
	struct smtp_params p;
	const char *rest, *error = NULL;
	bool ok = true;
	if (addr_parse_path(buf, len, flags, &a, &rest, &error) == ADDR_OK) {
		ok = a.local != NULL && a.external != NULL && rest >= buf && rest <= buf + len &&
		     strlen(a.external) <= ADDR_PATH_MAX - 2;
		struct str wire = STR_INIT, key = STR_INIT;
		struct smtp_addr b;
		str_printf(&wire, "<%s>", a.external);
		if (addr_parse_path(wire.data, wire.len, flags, &b, &rest, &error) != ADDR_OK ||
		    strcmp(b.external, a.external) != 0)
			ok = false;
		addr_lookup_key(&a, &key);
		smtp_addr_deinit(&b);
		str_deinit(&wire);
		str_deinit(&key);
	} else if (error == NULL) {
		ok = false;
	}
	smtp_addr_deinit(&a);
	error = NULL;
	if (smtp_params_parse_mail(buf, len, SMTP_EXT_DEFAULT | SMTP_EXT_BINARYMIME, &p, &error) != ADDR_OK &&
	    error == NULL)
		ok = false;
	smtp_params_deinit(&p);
	if (smtp_params_parse_rcpt(buf, len, SMTP_EXT_DEFAULT, &p, &error) != ADDR_OK && error == NULL)
		ok = false;
	smtp_params_deinit(&p);
	struct str dec = STR_INIT;
	(void)addr_xtext_decode(&dec, buf, len, &error);
	str_deinit(&dec);
	return ok;
}

/* test_random: random and mutated inputs never crash, leak or break the
 * round trip (ASan/UBSan watch the memory side). */
static void test_random(void)
{
	static const char alphabet[] = "<>@.\"\\[]:;,+=- abcXYZ019IPv6\r\n\t\x80\xc3\xa9\xff";
	unsigned long long state = 20241122;
	char buf[320];
	bool ok = true;
	for (int iter = 0; iter < 6000; iter++) {
		size_t len = rand_next(&state) % sizeof(buf);
		if (iter % 3 == 0) {
			/* mutate a table case: flip, drop or insert a few bytes */
			const struct path_case *c = &path_cases[rand_next(&state) % N_ELEMENTS(path_cases)];
			len = c->len < sizeof(buf) ? c->len : sizeof(buf);
			memcpy(buf, c->in, len);
			for (unsigned k = rand_next(&state) % 4; k > 0 && len > 0; k--)
				buf[rand_next(&state) % len] = alphabet[rand_next(&state) % (sizeof(alphabet) - 1)];
		} else {
			for (size_t j = 0; j < len; j++) {
				unsigned r = rand_next(&state);
				buf[j] = (r & 256) != 0 ? (char)r : alphabet[r % (sizeof(alphabet) - 1)];
			}
			if (len > 0 && iter % 2 == 0)
				buf[0] = '<';
		}
		unsigned flags = rand_next(&state) % 16;
		if (!fuzz_one(buf, len, flags)) {
			struct str name = STR_INIT;
			tap_diag("invariant broken for %s", escaped(&name, buf, len));
			str_deinit(&name);
			ok = false;
		}
	}
	tap_ok(ok, "6000 random and mutated inputs: no crash, stable round trips");
}

int main(void)
{
	test_paths();
	test_error_texts();
	test_lookup_keys();
	test_mailbox();
	test_params();
	test_param_limits();
	test_xtext();
	test_random();
	return tap_done();
}
