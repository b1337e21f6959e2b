/* test-userdb.c: unit tests for lib/mail/userdb (Dovecot passwd-file
 * lines, quota rules and sizes, lookups, mail_location expansion). */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/userdb.h"
#include "tap.h"
#include "util/str.h"

struct line_case {
	const char *line;
	bool ok;
	const char *name, *home;
	long long uid, quota;
};

static const struct line_case line_cases[] = {
	{ "alice@example.test:{SHA512-CRYPT}$6$x:1000:1000::/home/alice::", true,
	  "alice@example.test", "/home/alice", 1000, 0 },
	{ "bob:{PLAIN}pw:1001:1001::/home/bob::userdb_quota_rule=*:storage=100M", true, "bob",
	  "/home/bob", 1001, 100LL << 20 },
	{ "carol@example.test:x:::::: quota_rule=*:bytes=2048", true, "carol@example.test", "", -1,
	  2048 },
	{ "dave@example.test:x:5:5::/h::userdb_quota_rule=*:storage=10", true, "dave@example.test",
	  "/h", 5, 10240 },
	{ "erin", true, "erin", "", -1, 0 },
	{ "frank:x:abc:1::/h::", false, NULL, NULL, 0, 0 },
	{ "gina:x:1:1::relative::", false, NULL, NULL, 0, 0 },
	{ ":x:1:1::/h::", false, NULL, NULL, 0, 0 },
	{ "hank:x:1:1::/h::userdb_quota_rule=*:storage=10Q", false, NULL, NULL, 0, 0 },
	{ "ivan:x:1:1::/h::userdb_quota_rule=*:storage=99999999999999999999", false, NULL, NULL, 0, 0 },
	{ "jane:x:1:1::/h::userdb_quota_rule=Trash:storage=1M", true, "jane", "/h", 1, 0 },
};

static void test_lines(void)
{
	for (size_t i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
		const struct line_case *c = &line_cases[i];
		struct userdb_user u;
		const char *error = NULL;
		bool ok = userdb_parse_line(c->line, &u, &error);
		if (!tap_ok(ok == c->ok, "line %zu parses: %s", i, ok ? "yes" : error))
			continue;
		if (!ok)
			continue;
		tap_is_str(u.name, c->name, "line %zu name", i);
		tap_is_str(u.home, c->home, "line %zu home", i);
		tap_is_int(u.uid, c->uid, "line %zu uid", i);
		tap_is_int(u.quota_bytes, c->quota, "line %zu quota", i);
		userdb_user_deinit(&u);
	}
}

struct size_case {
	const char *text;
	long long unit, want; /* want -1: refused */
};

static const struct size_case size_cases[] = {
	{ "0", 1, 0 }, { "100", 1, 100 }, { "100", 1024, 102400 }, { "1k", 1, 1024 },
	{ "1K", 1, 1024 }, { "2M", 1, 2LL << 20 }, { "3G", 1, 3LL << 30 }, { "1T", 1, 1LL << 40 },
	{ "5B", 1024, 5 }, { "", 1, -1 }, { "M", 1, -1 }, { "1MB", 1, -1 }, { "-1", 1, -1 },
	{ "9999999999T", 1, -1 },
};

static void test_sizes(void)
{
	for (size_t i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]); i++) {
		long long v = -1;
		bool ok = userdb_parse_size(size_cases[i].text, size_cases[i].unit, &v);
		tap_is_int(ok ? v : -1, size_cases[i].want, "size \"%s\"", size_cases[i].text);
	}
}

struct expand_case {
	const char *location, *user, *home, *want; /* want NULL: refused */
};

static const struct expand_case expand_cases[] = {
	{ "maildir:~/Maildir", "alice@example.test", "/home/alice", "/home/alice/Maildir" },
	{ "maildir:/var/mail/%d/%n", "alice@example.test", "", "/var/mail/example.test/alice" },
	{ "maildir:/m/%u:INDEX=/x", "bob", "", "/m/bob" },
	{ "maildir:~/Maildir", "bob", "", NULL },
	{ "mbox:~/mail", "bob", "/h", NULL },
	{ "maildir:/m/%z", "bob", "/h", NULL },
	{ "maildir:/m/%n", "..@example.test", "", NULL },
	{ "maildir:/m/%u", "a/b", "", NULL },
	{ "maildir:/m/%n", "..x@example.test", "", "/m/..x" },
	{ "maildir:/q/../m/%n", "x@example.test", "", "/q/../m/x" },
};

static void test_expand(void)
{
	for (size_t i = 0; i < sizeof(expand_cases) / sizeof(expand_cases[0]); i++) {
		const struct expand_case *c = &expand_cases[i];
		struct str out = STR_INIT;
		const char *error = NULL;
		bool ok = userdb_maildir(&out, c->location, c->user, c->home, &error);
		if (c->want == NULL)
			tap_ok(!ok, "location %s for %s refused", c->location, c->user);
		else
			tap_is_str(ok ? str_c(&out) : error, c->want, "location %s", c->location);
		str_deinit(&out);
	}
}

static void test_lookup(void)
{
	char path[] = "/tmp/test-userdb.XXXXXX";
	int fd = mkstemp(path);
	static const char text[] = "# users\n"
				   "\n"
				   "alice@example.test:{PLAIN}x:1000:1000::/home/alice::\r\n"
				   "bob:{PLAIN}x:1001:1001::/home/bob::userdb_quota_rule=*:storage=1M\n"
				   "broken:x:zz:1::/h::\n";
	tap_ok(fd >= 0 && write(fd, text, sizeof(text) - 1) == (ssize_t)(sizeof(text) - 1),
	       "users file written");
	if (fd >= 0)
		close(fd);
	struct userdb *db = userdb_open(path);
	struct userdb_user u;
	const char *error = NULL;
	tap_is_int(userdb_lookup(db, "alice@example.test", &u, &error), 1, "alice found");
	tap_is_str(u.home, "/home/alice", "alice's home (CRLF line)");
	userdb_user_deinit(&u);
	tap_is_int(userdb_lookup(db, "ALICE@example.test", &u, &error), 1, "lookup ignores case");
	userdb_user_deinit(&u);
	tap_is_int(userdb_lookup(db, "bob@example.test", &u, &error), 1, "bob found by local part");
	tap_is_int(u.quota_bytes, 1 << 20, "bob's quota");
	userdb_user_deinit(&u);
	tap_is_int(userdb_lookup(db, "nobody@example.test", &u, &error), 0, "unknown user");
	tap_is_int(userdb_lookup(db, "broken", &u, &error), -1, "malformed entry fails");
	tap_ok(error != NULL && strstr(error, "line 5") != NULL, "error names the line: %s",
	       error != NULL ? error : "");
	userdb_free(&db);
	tap_ok(db == NULL, "userdb_free clears the pointer");
	unlink(path);
	db = userdb_open(path);
	tap_is_int(userdb_lookup(db, "alice@example.test", &u, &error), -1, "missing file fails");
	userdb_free(&db);
}

int main(void)
{
	test_lines();
	test_sizes();
	test_expand();
	test_lookup();
	return tap_done();
}
