/* test-dns.c: unit tests for lib/mail/dns (libunbound lookups and smtpd's
 * client name lookup) against t/dns_server.py on 127.0.0.1.
 *
 * The server runs as a child process (killed by PID at the end) serving a
 * zone written to a temp directory; libunbound is pointed at it as its only
 * forwarder, so nothing else is ever asked. Note that libunbound answers
 * its default local zones itself (localhost, 127.in-addr.arpa, ::1, the
 * RFC 1918 and documentation reverse zones), which is why the test
 * addresses below are outside those ranges. They are only names in
 * queries: no traffic goes to them. */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mail/dns.h"
#include "tap.h"
#include "util/alloc.h"
#include "util/events.h"
#include "util/msg.h"
#include "util/str.h"

#define WAIT_MS 8000

static const char zone_json[] =
	"{\"records\": {"
	"\"host.petrel.example\": [[\"A\", \"11.22.33.44\"], [\"A\", \"11.22.33.43\"],"
	"  [\"AAAA\", \"2a01:4f8::1234\"]],"
	"\"mail.petrel.example\": [[\"MX\", 20, \"mx2.petrel.example\"],"
	"  [\"MX\", 10, \"mx1.petrel.example\"]],"
	"\"nullmx.petrel.example\": [[\"MX\", 0, \".\"]],"
	"\"alias.petrel.example\": [[\"CNAME\", \"host.petrel.example\"]],"
	"\"_25._tcp.mx1.petrel.example\": [[\"TLSA\", 3, 1, 1, \"0011aabbff\"]],"
	"\"txt.petrel.example\": [[\"TXT\", \"v=spf1 -all\"]],"
	"\"badptr.petrel.example\": [[\"RAW\", 12, \"03666f6f\"]],"
	"\"bada.petrel.example\": [[\"RAW\", 1, \"0102030405\"]],"
	"\"forged.petrel.example\": [[\"A\", \"11.22.33.99\"]],"
	"\"second.petrel.example\": [[\"A\", \"11.22.33.48\"]],"
	"\"v6host.petrel.example\": [[\"AAAA\", \"2a01:4f8::1234\"]],"
	"\"44.33.22.11.in-addr.arpa\": [[\"PTR\", \"host.petrel.example\"]],"
	"\"45.33.22.11.in-addr.arpa\": [[\"PTR\", \"forged.petrel.example\"]],"
	"\"47.33.22.11.in-addr.arpa\": [[\"PTR\", \"nxhost.petrel.example\"]],"
	"\"48.33.22.11.in-addr.arpa\": [[\"PTR\", \"forged.petrel.example\"],"
	"  [\"PTR\", \"second.petrel.example\"]],"
	"\"49.33.22.11.in-addr.arpa\": [[\"CNAME\", \"sf.petrel.example\"]],"
	"\"50.33.22.11.in-addr.arpa\": [[\"PTR\", \"1.2.3.4\"]],"
	"\"51.33.22.11.in-addr.arpa\": [[\"PTR\", \"host.petrel.example\"]],"
	"\"4.3.2.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.f.4.0.1.0.a.2.ip6.arpa\":"
	"  [[\"PTR\", \"v6host.petrel.example\"]],"
	"\"many.petrel.example\": [%s]"
	"},"
	"\"servfail\": [\"servfail.petrel.example\", \"sf.petrel.example\"],"
	"\"refused\": [\"refused.petrel.example\"],"
	"\"drop\": [\"drop.petrel.example\", \"drop2.petrel.example\", \"drop3.petrel.example\"]}";

static char tmpdir[] = "/tmp/test-dns.XXXXXX";
static char forwarder[64];
static pid_t server_pid = -1;
static int server_stdin = -1;
static struct event_loop *loop;

/* server_start: run dns_server.py with the zone; wait for its port. */
static bool server_start(void)
{
	struct str zone = STR_INIT, many = STR_INIT, path = STR_INIT, portfile = STR_INIT;
	const char *srcdir = getenv("PETREL_SRCDIR");
	const char *python = getenv("PYTHON");
	int pfd[2];

	for (int i = 0; i < 120; i++)
		str_printf(&many, "%s[\"A\", \"10.9.%d.%d\"]", i > 0 ? "," : "", i / 250, i % 250);
	str_printf(&zone, zone_json, str_c(&many));
	str_printf(&path, "%s/zone.json", tmpdir);
	FILE *fp = fopen(str_c(&path), "w");
	if (fp == NULL || fputs(str_c(&zone), fp) < 0 || fclose(fp) != 0)
		msg_fatal("write %s failed: %s", str_c(&path), strerror(errno));
	str_printf(&portfile, "%s/port", tmpdir);
	str_set(&zone, "@");
	str_append(&zone, str_c(&path));
	str_set(&path, srcdir != NULL ? srcdir : ".");
	str_append(&path, "/t/dns_server.py");
	if (pipe(pfd) < 0)
		msg_fatal("pipe: %s", strerror(errno));
	server_pid = fork();
	if (server_pid < 0)
		msg_fatal("fork: %s", strerror(errno));
	if (server_pid == 0) {
		dup2(pfd[0], 0);
		close(pfd[0]);
		close(pfd[1]);
		execlp(python != NULL ? python : "python3", "python3", str_c(&path), "--port-file",
		       str_c(&portfile), "--zone", str_c(&zone), "--lifetime", "300", (char *)NULL);
		_exit(127);
	}
	close(pfd[0]);
	server_stdin = pfd[1]; /* closing it (or our death) stops the server */

	bool ok = false;
	for (int i = 0; i < 200 && !ok; i++) {
		fp = fopen(str_c(&portfile), "r");
		unsigned port;
		if (fp != NULL) {
			ok = fscanf(fp, "%u", &port) == 1 &&
			     str_format(forwarder, sizeof(forwarder), "127.0.0.1@%u", port);
			fclose(fp);
		}
		if (!ok)
			usleep(50 * 1000);
	}
	str_deinit(&zone);
	str_deinit(&many);
	str_deinit(&path);
	str_deinit(&portfile);
	return ok;
}

/* server_stop: kill the server we started, by its PID. */
static void server_stop(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
		server_pid = -1;
	}
	if (server_stdin >= 0)
		close(server_stdin);
}

/* client_new: a client whose only server is the test server. */
static struct dns_client *client_new(unsigned timeout_ms, unsigned max_queries)
{
	const char *fwd[] = { forwarder, NULL };
	struct dns_client_settings set = {
		.forwarders = fwd,
		.timeout_ms = timeout_ms,
		.max_queries = max_queries,
	};
	const char *error;
	struct dns_client *c = dns_client_create(loop, &set, &error);
	if (c == NULL)
		msg_fatal("dns_client_create: %s", error);
	return c;
}

/* One lookup's outcome, flattened to text for table comparisons. */
struct outcome {
	bool done;
	int calls;
	char error[128];
	bool nxdomain;
	bool truncated;
	size_t count;
	struct str text; /* sorted records, comma separated */
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* result_text: the records of res, sorted, as "a,b,c". */
static void result_text(struct str *out, const struct dns_result *res)
{
	char **items = xcalloc(res->count + 1, sizeof(*items));
	for (size_t i = 0; i < res->count; i++) {
		struct str s = STR_INIT;
		char buf[INET6_ADDRSTRLEN];
		if (res->addrs != NULL) {
			const struct sockaddr_storage *ss = &res->addrs[i];
			const void *bin = ss->ss_family == AF_INET
						  ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
						  : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
			str_append(&s, inet_ntop(ss->ss_family, bin, buf, sizeof(buf)));
		} else if (res->prefs != NULL) {
			str_printf(&s, "%u %s", res->prefs[i], res->names[i]);
		} else if (res->names != NULL) {
			str_append(&s, res->names[i]);
		} else {
			for (size_t j = 0; j < res->rdata_len[i]; j++)
				str_printf(&s, "%02x", res->rdata[i][j]);
		}
		items[i] = str_steal(&s);
	}
	qsort(items, res->count, sizeof(*items), cmp_str);
	for (size_t i = 0; i < res->count; i++) {
		str_printf(out, "%s%s", i > 0 ? "," : "", items[i]);
		free(items[i]);
	}
	free(items);
}

/* lookup_done: record the outcome. */
static void lookup_done(void *ctx, const struct dns_result *res, const char *error)
{
	struct outcome *o = ctx;
	o->done = true;
	o->calls++;
	(void)str_copy(o->error, sizeof(o->error), error != NULL ? error : "");
	o->nxdomain = res->nxdomain;
	o->truncated = res->truncated;
	o->count = res->count;
	str_clear(&o->text);
	result_text(&o->text, res);
}

/* run_until: run the loop until *done or ms pass. */
static void run_until(const bool *done, int ms)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (done != NULL && *done)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long elapsed = (now.tv_sec - start.tv_sec) * 1000 +
			       (now.tv_nsec - start.tv_nsec) / 1000000;
		if (elapsed >= ms)
			return;
		event_loop_once(loop, (int)(ms - elapsed) < 50 ? (int)(ms - elapsed) : 50);
	}
}

static const struct lookup_case {
	const char *name;
	int rrtype;
	const char *error; /* "" for success */
	const char *text;  /* records, sorted; "NXDOMAIN" for a missing name */
} lookup_cases[] = {
	{ "host.petrel.example", DNS_TYPE_A, "", "11.22.33.43,11.22.33.44" },
	{ "HOST.petrel.example.", DNS_TYPE_A, "", "11.22.33.43,11.22.33.44" },
	{ "host.petrel.example", DNS_TYPE_AAAA, "", "2a01:4f8::1234" },
	{ "mail.petrel.example", DNS_TYPE_MX, "", "10 mx1.petrel.example,20 mx2.petrel.example" },
	{ "nullmx.petrel.example", DNS_TYPE_MX, "", "0 ." },
	{ "alias.petrel.example", DNS_TYPE_A, "", "11.22.33.43,11.22.33.44" },
	{ "alias.petrel.example", DNS_TYPE_CNAME, "", "host.petrel.example" },
	{ "44.33.22.11.in-addr.arpa", DNS_TYPE_PTR, "", "host.petrel.example" },
	{ "_25._tcp.mx1.petrel.example", DNS_TYPE_TLSA, "", "0301010011aabbff" },
	{ "txt.petrel.example", DNS_TYPE_TXT, "", "0b763d73706631202d616c6c" },
	{ "host.petrel.example", DNS_TYPE_TXT, "", "" },
	{ "nothere.petrel.example", DNS_TYPE_A, "", "NXDOMAIN" },
	{ "servfail.petrel.example", DNS_TYPE_A, "SERVFAIL", "" },
	/* libunbound turns a forwarder's REFUSED into SERVFAIL. */
	{ "refused.petrel.example", DNS_TYPE_A, "SERVFAIL", "" },
	{ "bada.petrel.example", DNS_TYPE_A, "*", "" },
	{ "badptr.petrel.example", DNS_TYPE_PTR, "*", "" },
	{ "a..b", DNS_TYPE_A, "invalid name", "" },
};

/* test_lookups: the table above, one client. */
static void test_lookups(void)
{
	struct dns_client *c = client_new(3000, 0);
	for (size_t i = 0; i < sizeof(lookup_cases) / sizeof(lookup_cases[0]); i++) {
		const struct lookup_case *lc = &lookup_cases[i];
		struct outcome o = { .text = STR_INIT };
		struct dns_query *q = dns_lookup(c, lc->name, lc->rrtype, lookup_done, &o);
		tap_ok(q != NULL && !o.done, "%s/%d: no callback before dns_lookup returns",
		       lc->name, lc->rrtype);
		run_until(&o.done, WAIT_MS);
		tap_ok(o.calls == 1, "%s/%d: one callback", lc->name, lc->rrtype);
		if (strcmp(lc->error, "*") == 0)
			tap_ok(o.error[0] != '\0', "%s/%d: fails (%s)", lc->name, lc->rrtype,
			       o.error);
		else
			tap_is_str(o.error, lc->error, "%s/%d: error", lc->name, lc->rrtype);
		if (strcmp(lc->text, "NXDOMAIN") == 0)
			tap_ok(o.nxdomain && o.count == 0, "%s/%d: NXDOMAIN", lc->name,
			       lc->rrtype);
		else
			tap_is_str(str_c(&o.text), lc->text, "%s/%d: records", lc->name,
				   lc->rrtype);
		str_deinit(&o.text);
	}

	/* 120 records, over TCP after a truncated UDP answer: 100 kept. */
	struct outcome o = { .text = STR_INIT };
	(void)dns_lookup(c, "many.petrel.example", DNS_TYPE_A, lookup_done, &o);
	run_until(&o.done, WAIT_MS);
	tap_ok(o.error[0] == '\0' && o.count == DNS_MAX_RECORDS && o.truncated,
	       "120 records: %zu kept, truncated flag (%s)", o.count, o.error);
	str_deinit(&o.text);

	/* A name over 253 characters never reaches libunbound. */
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	for (size_t i = 50; i < sizeof(longname) - 1; i += 50)
		longname[i] = '.';
	o = (struct outcome){ .text = STR_INIT };
	(void)dns_lookup(c, longname, DNS_TYPE_A, lookup_done, &o);
	run_until(&o.done, WAIT_MS);
	tap_is_str(o.error, "invalid name", "299-character name refused");
	str_deinit(&o.text);
	dns_client_free(&c);
	tap_ok(c == NULL, "dns_client_free clears the pointer");
}

/* test_timeout_cancel: a server that never answers; cancel; limits. */
static void test_timeout_cancel(void)
{
	struct dns_client *c = client_new(300, 2);
	struct outcome o1 = { .text = STR_INIT }, o2 = { .text = STR_INIT },
		       o3 = { .text = STR_INIT }, o4 = { .text = STR_INIT };

	(void)dns_lookup(c, "drop.petrel.example", DNS_TYPE_A, lookup_done, &o1);
	run_until(&o1.done, WAIT_MS);
	tap_is_str(o1.error, "timeout", "unanswered query times out");
	tap_is_int(o1.count, 0, "timeout has no records");

	/* Two in flight is the limit: the third fails at once. */
	struct dns_query *q2 = dns_lookup(c, "drop2.petrel.example", DNS_TYPE_A, lookup_done, &o2);
	struct dns_query *q3 = dns_lookup(c, "drop3.petrel.example", DNS_TYPE_A, lookup_done, &o3);
	(void)dns_lookup(c, "host.petrel.example", DNS_TYPE_A, lookup_done, &o4);
	run_until(&o4.done, 100);
	tap_is_str(o4.error, "too many outstanding queries", "query over the limit fails fast");
	dns_cancel(&q2);
	dns_cancel(&q3);
	tap_ok(q2 == NULL && q3 == NULL, "dns_cancel clears the pointer");
	run_until(NULL, 600);
	tap_ok(!o2.done && !o3.done, "cancelled queries never call back (past their timeout)");

	/* Cancel a query whose answer comes: still no callback. */
	struct outcome o5 = { .text = STR_INIT };
	struct dns_query *q5 = dns_lookup(c, "mail.petrel.example", DNS_TYPE_MX, lookup_done, &o5);
	dns_cancel(&q5);
	run_until(NULL, 300);
	tap_ok(!o5.done, "cancel before the answer: no callback");
	dns_cancel(&q5); /* NULL: no-op */

	/* Freeing the client with queries in flight calls nobody. */
	struct outcome o6 = { .text = STR_INIT };
	(void)dns_lookup(c, "drop.petrel.example", DNS_TYPE_A, lookup_done, &o6);
	(void)dns_lookup(c, "host.petrel.example", DNS_TYPE_AAAA, lookup_done, &o6);
	dns_client_free(&c);
	run_until(NULL, 100);
	tap_ok(!o6.done, "dns_client_free with queries in flight: no callback");
	str_deinit(&o1.text);
	str_deinit(&o2.text);
	str_deinit(&o3.text);
	str_deinit(&o4.text);
	str_deinit(&o5.text);
	str_deinit(&o6.text);
}

struct free_in_callback {
	struct dns_client *client;
	int calls;
};

/* free_done: free the client from inside a callback. */
static void free_done(void *ctx, const struct dns_result *res, const char *error)
{
	struct free_in_callback *f = ctx;
	f->calls++;
	dns_client_free(&f->client);
}

/* test_free_in_callback: the first answer frees the client; the second
 * query is cancelled with it. */
static void test_free_in_callback(void)
{
	struct free_in_callback f = { .client = client_new(2000, 0) };
	(void)dns_lookup(f.client, "host.petrel.example", DNS_TYPE_A, free_done, &f);
	(void)dns_lookup(f.client, "host.petrel.example", DNS_TYPE_AAAA, free_done, &f);
	for (int i = 0; i < WAIT_MS / 50 && f.calls == 0; i++)
		run_until(NULL, 50);
	run_until(NULL, 300); /* the second answer, if it were to come */
	tap_ok(f.calls == 1 && f.client == NULL, "client freed inside a callback (%d calls)",
	       f.calls);
	dns_client_free(&f.client);
}

/* One dns_peername() outcome. */
struct peer_outcome {
	bool done;
	int calls;
	char addr[64];
	char name[256];
	char reverse[256];
	int name_status;
	int reverse_status;
};

/* peer_done: record the outcome. */
static void peer_done(void *ctx, const struct dns_peer *peer)
{
	struct peer_outcome *o = ctx;
	o->done = true;
	o->calls++;
	(void)str_copy(o->addr, sizeof(o->addr), peer->addr);
	(void)str_copy(o->name, sizeof(o->name), peer->name);
	(void)str_copy(o->reverse, sizeof(o->reverse), peer->reverse_name);
	o->name_status = (int)peer->name_status;
	o->reverse_status = (int)peer->reverse_status;
}

static const struct peer_case {
	const char *addr;
	const char *want_addr;
	const char *name;
	const char *reverse;
	enum dns_peer_status name_status;
	enum dns_peer_status reverse_status;
	const char *log; /* a line the log must hold, or NULL */
} peer_cases[] = {
	{ "11.22.33.44", "11.22.33.44", "host.petrel.example", "host.petrel.example",
	  DNS_PEER_OK, DNS_PEER_OK, NULL },
	{ "11.22.33.45", "11.22.33.45", "unknown", "forged.petrel.example", DNS_PEER_FORGED,
	  DNS_PEER_OK,
	  "warning: hostname forged.petrel.example does not resolve to address 11.22.33.45" },
	{ "11.22.33.46", "11.22.33.46", "unknown", "unknown", DNS_PEER_PERM, DNS_PEER_PERM,
	  NULL },
	{ "11.22.33.47", "11.22.33.47", "unknown", "nxhost.petrel.example", DNS_PEER_FORGED,
	  DNS_PEER_OK,
	  "warning: hostname nxhost.petrel.example does not resolve to address 11.22.33.47: "
	  "Name or service not known" },
	{ "11.22.33.48", "11.22.33.48", "second.petrel.example", "*", DNS_PEER_OK, DNS_PEER_OK,
	  NULL },
	{ "11.22.33.49", "11.22.33.49", "unknown", "unknown", DNS_PEER_TEMP, DNS_PEER_TEMP,
	  NULL },
	{ "11.22.33.50", "11.22.33.50", "unknown", "unknown", DNS_PEER_PERM, DNS_PEER_PERM,
	  "warning: numeric hostname: 1.2.3.4" },
	{ "11.22.33.51", "11.22.33.51", "unknown", "host.petrel.example", DNS_PEER_FORGED,
	  DNS_PEER_OK,
	  "warning: hostname host.petrel.example does not resolve to address 11.22.33.51" },
	{ "::ffff:11.22.33.44", "11.22.33.44", "host.petrel.example", "host.petrel.example",
	  DNS_PEER_OK, DNS_PEER_OK, NULL },
	{ "2a01:4f8::1234", "2a01:4f8::1234", "v6host.petrel.example", "v6host.petrel.example",
	  DNS_PEER_OK, DNS_PEER_OK, NULL },
	/* libunbound's own localhost zones answer these. */
	{ "::1", "::1", "localhost", "localhost", DNS_PEER_OK, DNS_PEER_OK, NULL },
	{ "127.0.0.1", "127.0.0.1", "localhost", "localhost", DNS_PEER_OK, DNS_PEER_OK, NULL },
};

/* log_contains: the test log file holds text as a whole line's end. */
static bool log_contains(const char *path, const char *text)
{
	char buf[65536];
	char line[512];
	if (!str_format(line, sizeof(line), "%s\n", text))
		return false;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, line) != NULL;
}

/* peer_sockaddr: parse an address into ss. */
static void peer_sockaddr(const char *addr, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(12345);
	} else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(12345);
	} else {
		msg_fatal("bad test address %s", addr);
	}
}

/* test_peername: the forward-confirmed reverse lookup cases. */
static void test_peername(const char *logpath)
{
	struct dns_client *c = client_new(3000, 0);
	for (size_t i = 0; i < sizeof(peer_cases) / sizeof(peer_cases[0]); i++) {
		const struct peer_case *pc = &peer_cases[i];
		struct sockaddr_storage ss;
		struct peer_outcome o = { 0 };
		peer_sockaddr(pc->addr, &ss);
		struct dns_query *q = dns_peername(c, (struct sockaddr *)&ss, peer_done, &o);
		tap_ok(q != NULL && !o.done, "%s: no callback before dns_peername returns",
		       pc->addr);
		run_until(&o.done, WAIT_MS);
		tap_ok(o.calls == 1, "%s: one callback", pc->addr);
		tap_is_str(o.addr, pc->want_addr, "%s: printable address", pc->addr);
		tap_is_str(o.name, pc->name, "%s: name", pc->addr);
		if (strcmp(pc->reverse, "*") != 0)
			tap_is_str(o.reverse, pc->reverse, "%s: reverse name", pc->addr);
		tap_is_int(o.name_status, pc->name_status, "%s: name status", pc->addr);
		tap_is_int(o.reverse_status, pc->reverse_status, "%s: reverse status", pc->addr);
		if (pc->log != NULL)
			tap_ok(log_contains(logpath, pc->log), "%s: logs %s", pc->addr, pc->log);
	}

	/* A UNIX-domain client is localhost without any lookup. */
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct peer_outcome o = { 0 };
	(void)dns_peername(c, (struct sockaddr *)&sun, peer_done, &o);
	run_until(&o.done, WAIT_MS);
	tap_is_str(o.name, "localhost", "AF_UNIX client is localhost");

	/* Cancelling a peer lookup mid-way: no callback. */
	struct sockaddr_storage ss;
	peer_sockaddr("11.22.33.45", &ss);
	o = (struct peer_outcome){ 0 };
	struct dns_query *q = dns_peername(c, (struct sockaddr *)&ss, peer_done, &o);
	dns_cancel(&q);
	run_until(NULL, 300);
	tap_ok(!o.done, "cancelled dns_peername: no callback");

	/* Freeing the client with a peer lookup in flight. */
	(void)dns_peername(c, (struct sockaddr *)&ss, peer_done, &o);
	dns_client_free(&c);
	run_until(NULL, 100);
	tap_ok(!o.done, "dns_client_free with dns_peername in flight: no callback");
}

/* test_names: the wire-name decoder and the hostname check. */
static void test_names(void)
{
	static const struct name_case {
		const char *wire;
		size_t len;
		const char *text; /* NULL: malformed */
	} cases[] = {
		{ "\0", 1, "." },
		{ "\3www\7example\3com\0", 17, "www.example.com" },
		{ "\3a.b\1\\\0", 7, "a\\.b.\\\\" },
		{ "\2\x01\xff\0", 4, "\\001\\255" },
		{ "\3www\300\014", 6, NULL },	  /* compression pointer */
		{ "\3www", 4, NULL },		  /* no root label */
		{ "\3www\0\0", 6, NULL },	  /* trailing byte */
		{ "\5ab\0", 4, NULL },		  /* label past the end */
		{ "\x40" "a", 2, NULL },	  /* extended label type */
		{ "", 0, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[DNS_NAME_TEXT_MAX];
		bool ok = dns_name_decode((const uint8_t *)cases[i].wire, cases[i].len, buf,
					  sizeof(buf));
		if (cases[i].text == NULL)
			tap_ok(!ok, "name case %zu: malformed", i);
		else
			tap_ok(ok && strcmp(buf, cases[i].text) == 0, "name case %zu: %s", i,
			       ok ? buf : "(failed)");
	}
	/* 127 one-letter labels: 255 bytes, the most a name may have. */
	uint8_t wire[300];
	size_t n = 0;
	for (int i = 0; i < 127; i++) {
		wire[n++] = 1;
		wire[n++] = 'a';
	}
	wire[n++] = 0;
	char buf[DNS_NAME_TEXT_MAX];
	tap_ok(dns_name_decode(wire, n, buf, sizeof(buf)), "255-byte name decodes");
	wire[n - 1] = 1;
	wire[n++] = 'a';
	wire[n++] = 0;
	tap_ok(!dns_name_decode(wire, n, buf, sizeof(buf)), "257-byte name is malformed");

	static const struct host_case {
		const char *name;
		bool valid;
	} hosts[] = {
		{ "mail.example.com", true }, { "a-b_c.example", true }, { "x", true },
		{ "1.2.3.4", false },	      { "-a.example", false },	 { "a-.example", false },
		{ "a..b", false },	      { "a.b.", false },	 { "a\\.b", false },
		{ "", false },		      { "a b", false },
	};
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
		tap_ok(dns_hostname_valid(hosts[i].name) == hosts[i].valid, "hostname %s: %s",
		       hosts[i].name, hosts[i].valid ? "valid" : "invalid");
}

static int usr1_count;

/* usr1: the loop's SIGUSR1 handler. */
static void usr1(void *ctx, int signo)
{
	usr1_count++;
}

/* test_signals: libunbound's worker thread, started before the loop blocks
 * a signal, must not take that signal: it has to reach the signalfd. (An
 * unblocked worker would die of SIGUSR1's default action, and so would
 * the test.) */
static void test_signals(void)
{
	struct dns_client *c = client_new(2000, 0);
	struct outcome o = { .text = STR_INIT };
	(void)dns_lookup(c, "host.petrel.example", DNS_TYPE_A, lookup_done, &o);
	run_until(&o.done, WAIT_MS);
	event_signal_add(loop, SIGUSR1, usr1, NULL);
	kill(getpid(), SIGUSR1);
	run_until(NULL, 200);
	tap_is_int(usr1_count, 1, "process signal reaches the loop, not the DNS worker");
	dns_client_free(&c);
	str_deinit(&o.text);
}

/* test_dnssec: with the root's trust anchor, the test server's unsigned
 * answers cannot be validated: every answer is bogus. */
static void test_dnssec(void)
{
	static const char root_ds[] =
		". IN DS 20326 8 2 "
		"E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n";
	struct str path = STR_INIT;
	str_printf(&path, "%s/root.key", tmpdir);
	FILE *fp = fopen(str_c(&path), "w");
	if (fp == NULL || fputs(root_ds, fp) < 0 || fclose(fp) != 0)
		msg_fatal("write %s failed: %s", str_c(&path), strerror(errno));
	const char *fwd[] = { forwarder, NULL };
	struct dns_client_settings set = {
		.forwarders = fwd, .trust_anchor_file = str_c(&path), .timeout_ms = 3000
	};
	const char *error = NULL;
	struct dns_client *c = dns_client_create(loop, &set, &error);
	if (!tap_ok(c != NULL, "client with a trust anchor (%s)", error != NULL ? error : "ok")) {
		str_deinit(&path);
		return;
	}
	struct outcome o = { .text = STR_INIT };
	(void)dns_lookup(c, "host.petrel.example", DNS_TYPE_A, lookup_done, &o);
	run_until(&o.done, WAIT_MS);
	tap_ok(strncmp(o.error, "DNSSEC validation failed", 24) == 0 && o.count == 0,
	       "unsigned answer under a trust anchor is bogus: %s", o.error);
	dns_client_free(&c);
	str_deinit(&o.text);
	(void)unlink(str_c(&path));
	str_deinit(&path);
}

/* test_bad_settings: errors come back from dns_client_create. */
static void test_bad_settings(void)
{
	const char *fwd[] = { "not-an-address", NULL };
	struct dns_client_settings set = { .forwarders = fwd };
	const char *error = NULL;
	struct dns_client *c = dns_client_create(loop, &set, &error);
	tap_ok(c == NULL && error != NULL && strstr(error, "not-an-address") != NULL,
	       "bad forwarder refused: %s", error != NULL ? error : "(none)");
	dns_client_free(&c);

	struct dns_client_settings set2 = { .trust_anchor_file = "/nonexistent/root.key" };
	error = NULL;
	c = dns_client_create(loop, &set2, &error);
	tap_ok(c == NULL && error != NULL && strstr(error, "/nonexistent/root.key") != NULL,
	       "missing trust anchor refused: %s", error != NULL ? error : "(none)");
	dns_client_free(&c);

	/* A trust anchor file that does not parse fails at create time,
	 * not at the first lookup (which may be after a chroot). */
	struct str path = STR_INIT;
	str_printf(&path, "%s/garbage.key", tmpdir);
	FILE *fp = fopen(str_c(&path), "w");
	if (fp == NULL || fputs("this is not a key\n", fp) < 0 || fclose(fp) != 0)
		msg_fatal("write %s failed: %s", str_c(&path), strerror(errno));
	struct dns_client_settings set3 = { .trust_anchor_file = str_c(&path) };
	error = NULL;
	c = dns_client_create(loop, &set3, &error);
	tap_ok(c == NULL && error != NULL, "unparsable trust anchor refused: %s",
	       error != NULL ? error : "(none)");
	dns_client_free(&c);
	(void)unlink(str_c(&path));
	str_deinit(&path);

	/* Recursion and resolv.conf modes: created and freed, never asked. */
	struct dns_client_settings set4 = { 0 };
	c = dns_client_create(loop, &set4, &error);
	tap_ok(c != NULL, "recursive client created");
	dns_client_free(&c);
	if (access("/etc/resolv.conf", R_OK) == 0) {
		struct dns_client_settings set5 = { .use_resolv_conf = true };
		c = dns_client_create(loop, &set5, &error);
		tap_ok(c != NULL, "resolv.conf client created (%s)", c != NULL ? "ok" : error);
		dns_client_free(&c);
	} else {
		tap_skip("no /etc/resolv.conf");
	}
}

int main(void)
{
	struct str logpath = STR_INIT;
	const char *error;

	signal(SIGPIPE, SIG_IGN);
	msg_init("test-dns");
	if (mkdtemp(tmpdir) == NULL)
		msg_fatal("mkdtemp: %s", strerror(errno));
	str_printf(&logpath, "%s/log", tmpdir);
	if (!msg_set_file(str_c(&logpath), &error))
		msg_fatal("%s", error);
	loop = event_loop_create();

	test_names();
	test_bad_settings();
	if (!tap_ok(server_start(), "test DNS server started on %s", forwarder)) {
		server_stop();
	} else {
		test_lookups();
		test_peername(str_c(&logpath));
		test_free_in_callback();
		test_dnssec();
		test_timeout_cancel();
		test_signals();
		server_stop();
	}

	event_loop_free(&loop);
	struct str path = STR_INIT;
	const char *files[] = { "zone.json", "port", "log" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		str_printf(&path, "%s/%s", tmpdir, files[i]);
		(void)unlink(str_c(&path));
		str_clear(&path);
	}
	(void)rmdir(tmpdir);
	str_deinit(&path);
	str_deinit(&logpath);
	return tap_done();
}
