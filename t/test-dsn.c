/* test-dsn.c: unit tests for lib/mail/dsn: which recipients get a notice
 * (NOTIFY, the null sender, double bounces), the queued notice's envelope
 * and content, the limits, and write errors leaving nothing visible. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/dsn.h"
#include "mail/queue.h"
#include "tap.h"
#include "util/alloc.h"
#include "util/str.h"

#define HOST "mx.example.test"
#define DBL "postmaster@example.test"

static char test_root[256];

/* rm_entry: nftw callback removing one entry (depth first). */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		return rmdir(path);
	return unlink(path);
}

/* count_incoming: entries in qdir/incoming (temp names too). */
static int count_incoming(const char *qdir)
{
	char path[512];
	int n = 0;
	snprintf(path, sizeof(path), "%s/incoming", qdir);
	DIR *d = opendir(path);
	if (d == NULL)
		return -1;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* An original message. */
struct orig {
	const char *sender;
	const char *ret;   /* "FULL", "HDRS" or NULL */
	const char *envid; /* or NULL */
	const char *notice; /* the "notice" attribute, or NULL */
	unsigned notify;
	const char *content;
};

/* write_orig: queue the original into qdir/active; its path in path_r. */
static bool write_orig(const char *qdir, const struct orig *o, const char *const *rcpts,
		       const unsigned *notifies, size_t count, struct str *path_r)
{
	const char *error = "";
	int err = 0;
	struct queue_writer *qw = queue_writer_open(qdir, &error);
	if (qw == NULL)
		return tap_ok(false, "queue_writer_open: %s", error);
	char id[QUEUE_ID_MAX];
	str_copy(id, sizeof(id), queue_writer_id(qw));
	queue_writer_sender(qw, o->sender);
	if (o->envid != NULL)
		queue_writer_attr(qw, "envid", o->envid);
	if (o->ret != NULL)
		queue_writer_attr(qw, "ret", o->ret);
	if (o->notice != NULL)
		queue_writer_attr(qw, "notice", o->notice);
	for (size_t i = 0; i < count; i++) {
		struct queue_rcpt r = { rcpts[i], i == 0 ? "rfc822;orig@example.test" : NULL,
					notifies != NULL ? notifies[i] : o->notify };
		queue_writer_rcpt(qw, &r);
	}
	queue_writer_content(qw, o->content, strlen(o->content));
	if (queue_writer_commit(&qw, &err, &error) < 0)
		return tap_ok(false, "queue_writer_commit: %s", error);
	struct str from = STR_INIT;
	str_printf(&from, "%s/incoming/%s", qdir, id);
	str_clear(path_r);
	str_printf(path_r, "%s/active/%s", qdir, id);
	bool ok = rename(str_c(&from), str_c(path_r)) == 0;
	str_deinit(&from);
	return ok;
}

/* read_notice: the notice incoming/id: envelope and content. */
static struct queue_file *read_notice(const char *qdir, const char *id, struct str *content)
{
	struct str path = STR_INIT;
	const char *error = "";
	char buf[8192];
	ssize_t n;
	str_printf(&path, "%s/incoming/%s", qdir, id);
	struct queue_file *qf = queue_file_read(str_c(&path), &error);
	str_deinit(&path);
	str_clear(content);
	if (qf == NULL) {
		tap_diag("queue_file_read: %s", error);
		return NULL;
	}
	while ((n = queue_file_content_read(qf, buf, sizeof(buf), &error)) > 0)
		str_append_n(content, buf, (size_t)n);
	return qf;
}

struct dsn_case {
	const char *name;
	struct orig orig;
	enum dsn_action kind;
	int want_ret;
	const char *want_rcpt;
	const char *want[6];   /* substrings of the notice */
	const char *unwant[3]; /* must not occur */
};

#define A "a@example.org"
#define MSG "Subject: hello\r\nFrom: a@example.org\r\n\r\nbody line\r\n"

static const struct dsn_case cases[] = {
	{ "failed, no NOTIFY", { "a@example.org", NULL, "ENV-1", NULL, 0, MSG }, DSN_FAILED, 1,
	  "a@example.org",
	  { "Subject: Undelivered Mail Returned to Sender", "Action: failed",
	    "Original-Envelope-Id: ENV-1", "Content-Type: message/rfc822", "\r\nbody line\r\n",
	    "Original-Recipient: rfc822;orig@example.test" },
	  { NULL } },
	{ "failed, RET=HDRS", { "a@example.org", "HDRS", NULL, NULL, 0, MSG }, DSN_FAILED, 1,
	  "a@example.org", { "text/rfc822-headers", "Subject: hello\r\n" }, { "body line" } },
	{ "failed, NOTIFY=FAILURE", { A, NULL, NULL, NULL, QUEUE_NOTIFY_FAILURE, MSG },
	  DSN_FAILED, 1, "a@example.org", { "Status: 5.1.1" }, { NULL } },
	{ "failed, NOTIFY=NEVER", { A, NULL, NULL, NULL, QUEUE_NOTIFY_NEVER, MSG },
	  DSN_FAILED, 0, NULL, { NULL }, { NULL } },
	{ "failed, NOTIFY=SUCCESS only", { A, NULL, NULL, NULL, QUEUE_NOTIFY_SUCCESS, MSG },
	  DSN_FAILED, 0, NULL, { NULL }, { NULL } },
	{ "delayed, no NOTIFY", { A, NULL, NULL, NULL, 0, MSG }, DSN_DELAYED, 1,
	  "a@example.org",
	  { "Subject: Delayed Mail (still being retried)", "Action: delayed", "Will-Retry-Until: ",
	    "text/rfc822-headers" },
	  { "body line" } },
	{ "delayed, NOTIFY=FAILURE", { A, NULL, NULL, NULL, QUEUE_NOTIFY_FAILURE, MSG },
	  DSN_DELAYED, 0, NULL, { NULL }, { NULL } },
	{ "delayed, NOTIFY=DELAY", { A, NULL, NULL, NULL, QUEUE_NOTIFY_DELAY, MSG },
	  DSN_DELAYED, 1, "a@example.org", { "Action: delayed" }, { NULL } },
	{ "delivered, no NOTIFY", { A, NULL, NULL, NULL, 0, MSG }, DSN_DELIVERED, 0,
	  NULL, { NULL }, { NULL } },
	{ "delivered, NOTIFY=SUCCESS",
	  { A, NULL, NULL, NULL, QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE, MSG },
	  DSN_DELIVERED, 1, "a@example.org",
	  { "Subject: Successful Mail Delivery Report", "Action: delivered" }, { NULL } },
	{ "null sender, failed: double bounce", { "", NULL, NULL, "bounce", 0, MSG }, DSN_FAILED, 1,
	  DBL, { "Subject: Postmaster Copy: Undelivered Notice", "To: " DBL }, { NULL } },
	{ "null sender, delayed", { "", NULL, NULL, NULL, 0, MSG }, DSN_DELAYED, 0, NULL, { NULL },
	  { NULL } },
	{ "failed double bounce", { "", NULL, NULL, "2bounce", 0, MSG }, DSN_FAILED, 0, NULL,
	  { NULL }, { NULL } },
	{ "no header at all", { A, NULL, NULL, NULL, 0, "just a body line\r\n" },
	  DSN_FAILED, 1, "a@example.org",
	  { "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n"
	    "\r\n\r\njust a body" },
	  { NULL } },
	{ "8-bit header",
	  { A, NULL, NULL, NULL, 0, "Subject: caf\xc3\xa9\r\n\r\nx\r\n" },
	  DSN_FAILED, 1, "a@example.org", { "Content-Transfer-Encoding: 8bit", "caf\xc3\xa9" },
	  { NULL } },
};

/* check_case: run one table row. */
static void check_case(const char *qdir, const struct dsn_case *c)
{
	static const char *const rcpts[] = { "bob@example.net" };
	struct str path = STR_INIT, content = STR_INIT;
	if (!write_orig(qdir, &c->orig, rcpts, NULL, 1, &path)) {
		str_deinit(&path);
		return;
	}
	struct dsn_rcpt r = { "bob@example.net", "bob@example.net", NULL,
			      c->kind == DSN_FAILED	 ? "5.1.1"
			      : c->kind == DSN_DELAYED ? "4.4.1"
						       : "2.0.0",
			      "smtp; 550 5.1.1 <bob@example.net>: no such user",
			      "dns; mx.example.net",
			      c->kind, 1763847120 };
	char id[QUEUE_ID_MAX] = "";
	const char *error = "";
	int before = count_incoming(qdir);
	int ret = dsn_queue_notice(qdir, str_c(&path), c->kind, &r, 1, id, &error);
	if (!tap_is_int(ret, c->want_ret, "%s: result", c->name))
		tap_diag("error: %s", error);
	if (ret != 1) {
		tap_is_int(count_incoming(qdir), before, "%s: nothing queued", c->name);
		str_deinit(&path);
		return;
	}
	struct queue_file *qf = read_notice(qdir, id, &content);
	tap_ok(qf != NULL, "%s: notice readable", c->name);
	if (qf != NULL) {
		tap_is_str(qf->sender, "", "%s: null sender", c->name);
		tap_is_int((long long)qf->rcpt_count, 1, "%s: one recipient", c->name);
		tap_is_str(qf->rcpts[0].address, c->want_rcpt, "%s: recipient", c->name);
	}
	struct str esc = STR_INIT;
	for (size_t i = 0; i < 6 && c->want[i] != NULL; i++) {
		str_clear(&esc);
		str_escape_log(&esc, c->want[i], strlen(c->want[i]), 40);
		tap_ok(strstr(str_c(&content), c->want[i]) != NULL, "%s: has \"%s\"", c->name,
		       str_c(&esc));
	}
	for (size_t i = 0; i < 3 && c->unwant[i] != NULL; i++) {
		str_clear(&esc);
		str_escape_log(&esc, c->unwant[i], strlen(c->unwant[i]), 40);
		tap_ok(strstr(str_c(&content), c->unwant[i]) == NULL, "%s: lacks \"%s\"",
		       c->name, str_c(&esc));
	}
	str_deinit(&esc);
	tap_ok(strstr(str_c(&content), "\r\n--") != NULL &&
		       strstr(str_c(&content), "Content-Type: multipart/report; "
					       "report-type=delivery-status;") != NULL,
	       "%s: multipart/report", c->name);
	queue_file_free(&qf);
	str_deinit(&path);
	str_deinit(&content);
}

/* count_str: occurrences of needle in hay. */
static size_t count_str(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* test_limits: 1200 recipients, a hostile diagnostic, a big original. */
static void test_limits(const char *qdir)
{
	enum { N = 1200 };
	const char **addrs = xcalloc(N, sizeof(*addrs));
	struct dsn_rcpt *r = xcalloc(N, sizeof(*r));
	char (*names)[32] = xcalloc(N, sizeof(*names));
	for (size_t i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "u%zu@example.net", i);
		addrs[i] = names[i];
		r[i] = (struct dsn_rcpt){ names[i], NULL, NULL, "5.1.1",
					  "smtp; 550 bad\r\nX-Injected: yes", NULL, DSN_FAILED, 0 };
	}
	struct str big = STR_INIT, path = STR_INIT, content = STR_INIT;
	str_append(&big, "Subject: big\r\n\r\n");
	while (big.len < 60000)
		str_append(&big, "0123456789012345678901234567890123456789\r\n");
	struct orig o = { "a@example.org", "FULL", NULL, NULL, 0, str_c(&big) };
	char id[QUEUE_ID_MAX];
	const char *error = "";
	if (write_orig(qdir, &o, addrs, NULL, N, &path)) {
		int ret = dsn_queue_notice(qdir, str_c(&path), DSN_FAILED, r, N, id, &error);
		tap_is_int(ret, 1, "1200 recipients: queued");
		struct queue_file *qf = ret == 1 ? read_notice(qdir, id, &content) : NULL;
		const char *s = str_c(&content);
		tap_is_int((long long)count_str(s, "Final-Recipient:"), DSN_RCPT_MAX,
			   "1200 recipients: 1000 blocks");
		tap_ok(strstr(s, "200 more recipients") != NULL, "1200 recipients: rest counted");
		tap_ok(strstr(s, "\nX-Injected") == NULL, "no CR/LF injection");
		tap_ok(strstr(s, "text/rfc822-headers") != NULL && strstr(s, "0123456789") == NULL,
		       "original over bounce_size_limit: header only");
		queue_file_free(&qf);
	}
	free(addrs);
	free(r);
	free(names);
	str_deinit(&big);
	str_deinit(&path);
	str_deinit(&content);
}

/* test_mixed_notify: each recipient's NOTIFY comes from the file, found
 * by orig_rcpt (the address delivered to may differ after aliases). */
static void test_mixed_notify(const char *qdir)
{
	static const char *const rcpts[] = { "c@example.net", "a@example.net", "b@example.net",
					     "team@example.net" };
	static const unsigned notifies[] = { QUEUE_NOTIFY_NEVER, QUEUE_NOTIFY_FAILURE, 0,
					     QUEUE_NOTIFY_NEVER };
	struct dsn_rcpt r[5];
	for (size_t i = 0; i < 3; i++)
		r[i] = (struct dsn_rcpt){ rcpts[i], NULL, NULL, "5.1.1", "smtp; 550 no", NULL,
					  DSN_FAILED, 0 };
	/* An alias expansion of team@ (NEVER) and an unknown recipient. */
	r[3] = (struct dsn_rcpt){ "x@example.org", "team@example.net", NULL, "5.1.1", NULL, NULL,
				  DSN_FAILED, 0 };
	r[4] = (struct dsn_rcpt){ "zz@example.net", NULL, NULL, "5.1.1", NULL, NULL,
				  DSN_FAILED, 0 };
	struct orig o = { A, NULL, NULL, NULL, 0, MSG };
	struct str path = STR_INIT, content = STR_INIT;
	char id[QUEUE_ID_MAX];
	const char *error = "";
	if (write_orig(qdir, &o, rcpts, notifies, 4, &path) &&
	    tap_is_int(dsn_queue_notice(qdir, str_c(&path), DSN_FAILED, r, 5, id, &error), 1,
		       "mixed NOTIFY: queued")) {
		struct queue_file *qf = read_notice(qdir, id, &content);
		const char *s = str_c(&content);
		tap_is_int((long long)count_str(s, "Final-Recipient:"), 3,
			   "mixed NOTIFY: 3 blocks");
		tap_ok(strstr(s, "rfc822; c@example.net") == NULL &&
			       strstr(s, "x@example.org") == NULL,
		       "mixed NOTIFY: NEVER recipients left out");
		tap_ok(strstr(s, "rfc822; a@example.net") != NULL &&
			       strstr(s, "rfc822; zz@example.net") != NULL,
		       "mixed NOTIFY: FAILURE, default and unknown included");
		tap_ok(strstr(s, "Status: 5.0.0") == NULL, "mixed NOTIFY: status kept");
		queue_file_free(&qf);
	}
	str_deinit(&path);
	str_deinit(&content);
}

/* test_errors: unreadable original, unwritable queue, a write error. */
static void test_errors(const char *qdir)
{
	static const char *const rcpts[] = { "bob@example.net" };
	struct dsn_rcpt r = { "bob@example.net", NULL, NULL, "5.1.1", NULL, NULL, DSN_FAILED, 0 };
	char id[QUEUE_ID_MAX];
	const char *error = NULL;
	struct str path = STR_INIT, missing = STR_INIT;
	str_printf(&missing, "%s/active/NOSUCHFILE", qdir);
	tap_is_int(dsn_queue_notice(qdir, str_c(&missing), DSN_FAILED, &r, 1, id, &error), -1,
		   "missing original: -1");
	tap_ok(error != NULL && error[0] != '\0', "missing original: error given");
	struct orig o = { A, NULL, NULL, NULL, 0, MSG };
	if (write_orig(qdir, &o, rcpts, NULL, 1, &path)) {
		int before = count_incoming(qdir);
		struct rlimit old, small = { 200, 200 };
		signal(SIGXFSZ, SIG_IGN);
		getrlimit(RLIMIT_FSIZE, &old);
		small.rlim_max = old.rlim_max;
		setrlimit(RLIMIT_FSIZE, &small);
		error = NULL;
		int ret = dsn_queue_notice(qdir, str_c(&path), DSN_FAILED, &r, 1, id, &error);
		setrlimit(RLIMIT_FSIZE, &old);
		tap_is_int(ret, -1, "write error: -1");
		tap_ok(error != NULL, "write error: %s", error != NULL ? error : "(none)");
		tap_is_int(count_incoming(qdir), before, "write error: nothing left in incoming/");
		str_clear(&missing);
		str_printf(&missing, "%s/nonexistent", test_root);
		tap_is_int(dsn_queue_notice(str_c(&missing), str_c(&path), DSN_FAILED, &r, 1, id,
					    &error),
			   -1, "no queue directory: -1");
	}
	str_deinit(&path);
	str_deinit(&missing);
}

int main(void)
{
	const char *error = "";
	snprintf(test_root, sizeof(test_root), "%s/test-dsn.XXXXXX",
		 getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(test_root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	config_load_defaults(test_root);
	if (!config_override("myhostname", HOST, &error) ||
	    !config_override("2bounce_notice_recipient", DBL, &error))
		tap_diag("config_override: %s", error);
	struct str qdir = STR_INIT;
	str_printf(&qdir, "%s/queue", test_root);
	if (queue_dirs_create(str_c(&qdir), &error) < 0)
		tap_diag("queue_dirs_create: %s", error);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(str_c(&qdir), &cases[i]);
	test_limits(str_c(&qdir));
	test_mixed_notify(str_c(&qdir));
	test_errors(str_c(&qdir));
	str_deinit(&qdir);
	config_deinit();
	(void)nftw(test_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
