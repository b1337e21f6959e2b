/* test-resolve.c: unit tests for lib/mail/resolve: virtual aliases (with
 * recursion, a self reference, a loop and the limits), local aliases with
 * several targets and refused command/file targets, virtual mailboxes,
 * unknown users, transport_maps and relayhost. Tables are texthash: files
 * in a temp dir it removes. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/resolve.h"
#include "tap.h"
#include "util/msg.h"
#include "util/str.h"

static char tmpdir[] = "/tmp/test-resolve.XXXXXX";

static void write_file(const char *name, const char *text)
{
	char path[512];
	if (!str_format(path, sizeof(path), "%s/%s", tmpdir, name))
		msg_fatal("path too long");
	FILE *fp = fopen(path, "w");
	if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0)
		msg_fatal("write %s failed", path);
}

static void set(const char *name, const char *value)
{
	const char *error = NULL;
	if (!config_override(name, value, &error))
		msg_fatal("override %s: %s", name, error);
}

static void set_map(const char *param, const char *file)
{
	char value[512];
	if (!str_format(value, sizeof(value), "texthash:%s/%s", tmpdir, file))
		msg_fatal("path too long");
	set(param, value);
}

struct case_ {
	const char *address;
	/* the results, one "action address transport nexthop" or "action
	 * address dsn" per result, joined by "; " */
	const char *want;
	const char *reason_has; /* a substring of the first reason, or NULL */
};

static const struct case_ cases[] = {
	{ "alice@example.test", "deliver alice@example.test lmtp unix:private/lmtpd", NULL },
	{ "ALICE@Example.Test", "deliver ALICE@Example.Test lmtp unix:private/lmtpd", NULL },
	{ "nobody@example.test", "bounce nobody@example.test 5.1.1", "User unknown in virtual" },
	/* virtual alias, two levels */
	{ "team@example.test",
	  "deliver bob@example.test lmtp unix:private/lmtpd; "
	  "deliver alice@example.test lmtp unix:private/lmtpd",
	  NULL },
	{ "all@example.test",
	  "deliver bob@example.test lmtp unix:private/lmtpd; "
	  "deliver alice@example.test lmtp unix:private/lmtpd; "
	  "deliver carol@example.test lmtp unix:private/lmtpd",
	  NULL },
	/* a self reference keeps the address */
	{ "dave@example.test",
	  "deliver dave@example.test lmtp unix:private/lmtpd; "
	  "deliver archive@example.test lmtp unix:private/lmtpd",
	  NULL },
	{ "loop1@example.test", "bounce loop1@example.test 5.4.6", "forwarding loop" },
	{ "wide@example.test", "defer wide@example.test 4.3.0", "exceeds" },
	{ "deep0@example.test", "defer deep5@example.test 4.3.0", "nesting" },
	{ "@example.test", "bounce @example.test 5.1.1", NULL },
	/* local domain: aliases */
	{ "postmaster@localhost", "deliver root@localhost lmtp unix:private/lmtpd", NULL },
	{ "staff@localhost",
	  "deliver root@localhost lmtp unix:private/lmtpd; "
	  "deliver alice@example.test lmtp unix:private/lmtpd; "
	  "deliver user1@localhost lmtp unix:private/lmtpd",
	  NULL },
	{ "prog@localhost", "bounce prog@localhost 5.3.5", "command" },
	{ "inc@localhost", "bounce inc@localhost 5.3.5", "file" },
	{ "file@localhost", "bounce file@localhost 5.3.5", "file" },
	{ "ghost@localhost", "bounce ghost@localhost 5.1.1", "User unknown in local recipient" },
	{ "user1@localhost", "deliver user1@localhost lmtp unix:private/lmtpd", NULL },
	/* virtual alias domain without the address */
	{ "x@alias.test", "bounce x@alias.test 5.1.1", "virtual alias table" },
	{ "info@alias.test", "deliver alice@example.test lmtp unix:private/lmtpd", NULL },
	/* transport_maps and relayhost */
	{ "u@remote.test", "deliver u@remote.test smtp [relay.test]:2525", NULL },
	{ "u@routed.test", "deliver u@routed.test smtp [mx.routed.test]", NULL },
	{ "u@sub.parent.test", "deliver u@sub.parent.test relay parent.test", NULL },
	{ "special@remote.test", "deliver special@remote.test lmtp inet:127.0.0.1:24", NULL },
	{ "u@closed.test", "bounce u@closed.test 5.7.1", "closed for good" },
	{ "u@partial.test", "deliver u@partial.test slow [relay.test]:2525", NULL },
	{ "", "bounce  5.1.3", NULL },
	/* unqualified: @$myorigin (here localhost) */
	{ "postmaster", "deliver root@localhost lmtp unix:private/lmtpd", NULL },
};

static void setup(void)
{
	write_file("virtual", "team@example.test bob@example.test, alice@example.test\n"
			      "all@example.test team@example.test carol@example.test\n"
			      "dave@example.test dave@example.test, archive@example.test\n"
			      "loop1@example.test loop2@example.test\n"
			      "loop2@example.test loop1@example.test\n"
			      "wide@example.test a1@example.test a2@example.test a3@example.test "
			      "a4@example.test\n"
			      "deep0@example.test deep1@example.test\n"
			      "deep1@example.test deep2@example.test\n"
			      "deep2@example.test deep3@example.test\n"
			      "deep3@example.test deep4@example.test\n"
			      "deep4@example.test deep5@example.test\n"
			      "info@alias.test alice@example.test\n");
	write_file("vmailbox", "alice@example.test x\nbob@example.test x\ncarol@example.test x\n"
			       "archive@example.test x\ndave@example.test x\na1@example.test x\na2@example.test x\n"
			       "a3@example.test x\na4@example.test x\n");
	write_file("aliases", "postmaster root\n"
			      "staff root, alice@example.test, user1\n"
			      "prog \"|/usr/bin/vacation\"\n"
			      "inc :include:/etc/staff\n"
			      "file /var/log/mail.copy\n");
	write_file("users", "root x\nuser1 x\n");
	write_file("transport", "routed.test smtp:[mx.routed.test]\n"
				".parent.test relay:parent.test\n"
				"special@remote.test lmtp:inet:127.0.0.1:24\n"
				"closed.test error:5.7.1 closed for good\n"
				"partial.test slow:\n");
	config_load_defaults(tmpdir);
	set("myhostname", "mx.example.test");
	set("mydestination", "localhost");
	set("myorigin", "localhost");
	set("virtual_mailbox_domains", "example.test");
	set_map("virtual_mailbox_maps", "vmailbox");
	set("virtual_alias_domains", "alias.test");
	set_map("virtual_alias_maps", "virtual");
	set_map("alias_maps", "aliases");
	set_map("local_recipient_maps", "users");
	set_map("transport_maps", "transport");
	set("relayhost", "[relay.test]:2525");
	set("virtual_alias_expansion_limit", "3");
	set("virtual_alias_recursion_limit", "4");
}

/* describe: the results as the cases write them. */
static void describe(struct str *out, const struct resolve_result *r, size_t count)
{
	static const char *const names[] = { "deliver", "bounce", "defer" };
	str_clear(out);
	for (size_t i = 0; i < count; i++) {
		if (i > 0)
			str_append(out, "; ");
		if (r[i].action == RESOLVE_DELIVER)
			str_printf(out, "%s %s %s %s", names[r[i].action], r[i].address,
				   r[i].transport, r[i].nexthop);
		else
			str_printf(out, "%s %s %s", names[r[i].action], r[i].address, r[i].dsn);
	}
}

int main(void)
{
	const char *error = NULL;
	if (mkdtemp(tmpdir) == NULL)
		msg_fatal("mkdtemp failed: %m");
	setup();
	struct resolver *res = resolver_create(&error);
	if (!tap_ok(res != NULL, "resolver_create"))
		tap_diag("%s", error);
	struct str got = STR_INIT;
	for (size_t i = 0; res != NULL && i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct case_ *c = &cases[i];
		struct resolve_result *results = NULL;
		size_t count = resolver_resolve(res, c->address, &results);
		describe(&got, results, count);
		tap_is_str(str_c(&got), c->want, "resolve <%s>", c->address);
		if (c->reason_has != NULL) {
			const char *reason = results[0].reason != NULL ? results[0].reason : "";
			if (!tap_ok(strstr(reason, c->reason_has) != NULL, "reason of <%s>",
				    c->address))
				tap_diag("reason: %s", reason);
		}
		resolve_results_free(&results, count);
	}
	str_deinit(&got);
	resolver_free(&res);
	config_deinit();
	static const char *const files[] = { "virtual", "vmailbox", "aliases", "users",
					     "transport" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[512];
		if (str_format(path, sizeof(path), "%s/%s", tmpdir, files[i]))
			(void)unlink(path);
	}
	(void)rmdir(tmpdir);
	return tap_done();
}
