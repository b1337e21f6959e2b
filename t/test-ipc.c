/* test-ipc.c: unit tests for lib/mail/ipc (the internal IPC record codec):
 * round trips, truncation (always "need more"), malformed input (always an
 * error), the bounds, integers, ipc_expect, versions, and a random-input
 * loop for the sanitizers; then lib/mail/anvil_client, its first client
 * library, against a scripted fake anvil on a UNIX socket in a temporary
 * directory: replies in order, cancel, timeout, version mismatch, garbage,
 * reconnect, and freeing the client from inside a callback. */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "mail/anvil_client.h"
#include "mail/ipc.h"
#include "tap.h"
#include "util/events.h"
#include "util/msg.h"
#include "util/str.h"

/* ---- round trips ---- */

static const struct rt_case {
	const char *name;
	const char *value; /* NULL: an int field */
	size_t len;        /* bytes of value (NUL inside allowed) */
	long long ival;
	const char *wire;
} rt_cases[] = {
	{ "a", "", 0, 0, "a=\n\n" },
	{ "text", "hello world", 11, 0, "text=hello world\n\n" },
	{ "esc", "a\\b\nc", 5, 0, "esc=a\\\\b\\nc\n\n" },
	{ "nul", "x\0y", 3, 0, "nul=x\\0y\n\n" },
	{ "only_nul", "\0", 1, 0, "only_nul=\\0\n\n" },
	{ "tail_bs", "end\\", 4, 0, "tail_bs=end\\\\\n\n" },
	{ "utf8", "caf\xc3\xa9 \t=x", 9, 0, "utf8=caf\xc3\xa9 \t=x\n\n" },
	{ "n0_9_", "=", 1, 0, "n0_9_==\n\n" },
	{ "abcdefghijklmnopqrstuvwxyz012345", "32", 2, 0,
	  "abcdefghijklmnopqrstuvwxyz012345=32\n\n" },
	{ "zero", NULL, 0, 0, "zero=0\n\n" },
	{ "neg", NULL, 0, -1, "neg=-1\n\n" },
	{ "big", NULL, 0, 42, "big=42\n\n" },
	{ "max", NULL, 0, LLONG_MAX, "max=9223372036854775807\n\n" },
	{ "min", NULL, 0, LLONG_MIN, "min=-9223372036854775808\n\n" },
};

static void test_round_trip(void)
{
	for (size_t i = 0; i < N_ELEMENTS(rt_cases); i++) {
		const struct rt_case *c = &rt_cases[i];
		struct str out = STR_INIT;
		if (c->value != NULL)
			ipc_put_data(&out, c->name, c->value, c->len);
		else
			ipc_put_int(&out, c->name, c->ival);
		ipc_end(&out);
		tap_ok(out.len == strlen(c->wire) && memcmp(out.data, c->wire, out.len) == 0,
		       "encode %s", c->name);
		struct ipc_record *rec = NULL;
		const char *error = NULL;
		size_t used = 0;
		int ret = ipc_parse(out.data, out.len, &rec, &used, &error);
		tap_ok(ret == 1 && used == out.len, "parse %s", c->name);
		if (ret != 1) {
			tap_diag("error: %s", error);
			str_deinit(&out);
			continue;
		}
		if (c->value != NULL) {
			size_t len = 0;
			const char *v = ipc_get_data(rec, c->name, &len);
			tap_ok(v != NULL && len == c->len && memcmp(v, c->value, len) == 0,
			       "value of %s survives", c->name);
		} else {
			long long v = 0;
			tap_ok(ipc_get_int(rec, c->name, &v) && v == c->ival, "int %s survives",
			       c->name);
		}
		tap_ok(ipc_get_str(rec, "absent") == NULL, "absent field of %s is NULL", c->name);
		ipc_record_free(&rec);
		tap_ok(rec == NULL, "free resets the pointer");
		str_deinit(&out);
	}
}

/* test_bounds: the largest value, most fields and largest record pass;
 * one more of each fails. */
static void test_bounds(void)
{
	struct str out = STR_INIT;
	struct ipc_record *rec = NULL;
	const char *error = NULL;
	size_t used = 0;

	/* IPC_VALUE_MAX backslashes: 128 KiB on the wire, still legal */
	char *big = malloc(IPC_VALUE_MAX + 1);
	memset(big, '\\', IPC_VALUE_MAX + 1);
	ipc_put_data(&out, "v", big, IPC_VALUE_MAX);
	ipc_end(&out);
	tap_ok(ipc_parse(out.data, out.len, &rec, &used, &error) == 1,
	       "value of IPC_VALUE_MAX escaped bytes parses");
	size_t len = 0;
	tap_ok(rec != NULL && ipc_get_data(rec, "v", &len) != NULL && len == IPC_VALUE_MAX,
	       "and keeps its length");
	ipc_record_free(&rec);
	/* one byte more (written by hand: the encoder refuses it) */
	str_clear(&out);
	str_append(&out, "v=");
	str_append_n(&out, big, IPC_VALUE_MAX + 1);
	str_append_n(&out, big, IPC_VALUE_MAX + 1);
	str_append(&out, "\n\n");
	tap_ok(ipc_parse(out.data, out.len, &rec, &used, &error) == -1,
	       "value of IPC_VALUE_MAX+1 bytes fails: %s", error);
	free(big);

	/* IPC_FIELDS_MAX fields, then one more */
	str_clear(&out);
	for (int i = 0; i < IPC_FIELDS_MAX; i++) {
		char name[16];
		str_format(name, sizeof(name), "f%d", i);
		ipc_put_int(&out, name, i);
	}
	size_t fields_end = out.len;
	ipc_end(&out);
	tap_ok(ipc_parse(out.data, out.len, &rec, &used, &error) == 1 &&
		       ipc_field_count(rec) == IPC_FIELDS_MAX,
	       "%d fields parse", IPC_FIELDS_MAX);
	tap_is_str(rec != NULL ? ipc_field_name(rec, 63) : "", "f63", "fields keep their order");
	ipc_record_free(&rec);
	str_truncate(&out, fields_end);
	str_append(&out, "extra=1\n\n");
	tap_ok(ipc_parse(out.data, out.len, &rec, &used, &error) == -1,
	       "%d fields fail: %s", IPC_FIELDS_MAX + 1, error);

	/* a record of exactly IPC_RECORD_MAX bytes, then one more */
	str_clear(&out);
	size_t remaining = IPC_RECORD_MAX - 1; /* the final empty line */
	for (int i = 0; remaining > 0; i++) {
		size_t line = remaining > 60000 ? 60000 : remaining;
		char name[16];
		str_format(name, sizeof(name), "r%d", i);
		size_t vlen = line - strlen(name) - 2;
		char *v = malloc(vlen);
		memset(v, 'x', vlen);
		ipc_put_data(&out, name, v, vlen);
		free(v);
		remaining -= line;
	}
	ipc_end(&out);
	tap_is_int((long long)out.len, IPC_RECORD_MAX, "built a record of IPC_RECORD_MAX bytes");
	tap_ok(ipc_parse(out.data, out.len, &rec, &used, &error) == 1 && used == out.len,
	       "a record of IPC_RECORD_MAX bytes parses");
	ipc_record_free(&rec);
	{
		struct str longer = STR_INIT;
		str_append(&longer, "y");
		str_append_n(&longer, out.data, out.len);
		tap_ok(ipc_parse(longer.data, longer.len, &rec, &used, &error) == -1,
		       "one byte more fails: %s", error);
		tap_ok(ipc_parse(longer.data, longer.len - 1, &rec, &used, &error) == -1,
		       "and fails before its end arrives");
		str_deinit(&longer);
	}
	str_deinit(&out);
}

/* ---- truncation ---- */

static const char *const valid_records[] = {
	"\n",
	"a=\n\n",
	"request=connect\nservice=smtp\nclient=192.0.2.1\n\n",
	"esc=\\\\\\n\\0\nx=1\n\n",
	"v=\\\\\n\n",
	"neg=-12\nempty=\nlast=z\n\n",
};

static void test_truncation(void)
{
	for (size_t i = 0; i < N_ELEMENTS(valid_records); i++) {
		const char *r = valid_records[i];
		size_t len = strlen(r);
		bool all_zero = true;
		for (size_t n = 0; n < len; n++) {
			struct ipc_record *rec = NULL;
			const char *error = NULL;
			size_t used = 0;
			int ret = ipc_parse(r, n, &rec, &used, &error);
			if (ret != 0) {
				all_zero = false;
				tap_diag("prefix %zu of record %zu: %d (%s)", n, i, ret,
					 error != NULL ? error : "");
				ipc_record_free(&rec);
			}
		}
		tap_ok(all_zero, "every truncation of record %zu needs more", i);
		/* the record followed by the start of the next one */
		struct str two = STR_INIT;
		str_append(&two, r);
		str_append(&two, "request=disc");
		struct ipc_record *rec = NULL;
		const char *error = NULL;
		size_t used = 0;
		tap_ok(ipc_parse(two.data, two.len, &rec, &used, &error) == 1 && used == len,
		       "record %zu consumes only itself", i);
		ipc_record_free(&rec);
		tap_ok(ipc_decode(two.data, two.len, &rec, &error) == -1 && rec == NULL,
		       "ipc_decode rejects leftover bytes after record %zu", i);
		tap_ok(ipc_decode(r, len, &rec, &error) == 0, "ipc_decode takes record %zu", i);
		ipc_record_free(&rec);
		if (len > 1)
			tap_ok(ipc_decode(r, len - 1, &rec, &error) == -1,
			       "ipc_decode rejects truncated record %zu", i);
		str_deinit(&two);
	}
}

/* ---- malformed input ---- */

static const struct bad_case {
	const char *what;
	const char *wire;
	size_t len; /* 0: strlen(wire) */
} bad_cases[] = {
	{ "upper-case name", "Name=x\n\n", 0 },
	{ "empty name", "=x\n\n", 0 },
	{ "dash in name", "na-me=x\n\n", 0 },
	{ "space before name", " a=1\n\n", 0 },
	{ "space before =", "a =1\n\n", 0 },
	{ "missing =", "name\n\n", 0 },
	{ "missing = (space)", "name x\n\n", 0 },
	{ "33-byte name", "abcdefghijklmnopqrstuvwxyz0123456=1\n\n", 0 },
	{ "bad escape \\x", "a=\\x\n\n", 0 },
	{ "escaped newline", "a=\\\n\n", 0 },
	{ "bad escape \\t", "a=b\\tc\n\n", 0 },
	{ "raw NUL", "a=x\0y\n\n", 7 },
	{ "NUL in name", "a\0=1\n\n", 6 },
	{ "duplicate field", "a=1\nb=2\na=3\n\n", 0 },
	{ "duplicate empty fields", "a=\na=\n\n", 0 },
	{ "CR line end", "a=1\r\n\r\n", 0 }, /* the CR is value; "\r\n" is then no name */
	{ "8-bit name", "\xc3\xa9=1\n\n", 0 },
};

static void test_malformed(void)
{
	for (size_t i = 0; i < N_ELEMENTS(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->wire);
		struct ipc_record *rec = NULL;
		const char *error = NULL;
		size_t used = 0;
		int ret = ipc_parse(c->wire, len, &rec, &used, &error);
		tap_ok(ret == -1 && rec == NULL && error != NULL, "%s: -1 (%s)", c->what,
		       error != NULL ? error : "no error");
		ipc_record_free(&rec);
	}
	/* errors are found before the record ends */
	struct ipc_record *rec = NULL;
	const char *error = NULL;
	size_t used = 0;
	tap_ok(ipc_parse("Nam", 3, &rec, &used, &error) == -1, "bad name fails at once");
	tap_ok(ipc_parse("a=\\q", 4, &rec, &used, &error) == -1, "bad escape fails at once");
	/* a line without end longer than any record */
	size_t n = IPC_RECORD_MAX + 10;
	char *junk = malloc(n);
	memset(junk, 'a', n);
	tap_ok(ipc_parse(junk, n, &rec, &used, &error) == -1, "endless name fails: %s", error);
	memcpy(junk, "v=", 2);
	tap_ok(ipc_parse(junk, n, &rec, &used, &error) == -1, "endless value fails: %s", error);
	free(junk);
}

/* ---- integers, expect, versions ---- */

static const struct int_case {
	const char *value;
	bool ok;
	long long want;
} int_cases[] = {
	{ "0", true, 0 },
	{ "7", true, 7 },
	{ "-7", true, -7 },
	{ "9223372036854775807", true, LLONG_MAX },
	{ "-9223372036854775808", true, LLONG_MIN },
	{ "9223372036854775808", false, 0 },
	{ "-9223372036854775809", false, 0 },
	{ "99999999999999999999999", false, 0 },
	{ "", false, 0 },
	{ "-", false, 0 },
	{ "-0", false, 0 },
	{ "01", false, 0 },
	{ "+1", false, 0 },
	{ " 1", false, 0 },
	{ "1 ", false, 0 },
	{ "12a", false, 0 },
	{ "0x10", false, 0 },
};

static void test_ints(void)
{
	for (size_t i = 0; i < N_ELEMENTS(int_cases); i++) {
		const struct int_case *c = &int_cases[i];
		struct str out = STR_INIT;
		ipc_put_str(&out, "n", c->value);
		ipc_end(&out);
		struct ipc_record *rec = NULL;
		const char *error = NULL;
		if (ipc_decode(out.data, out.len, &rec, &error) < 0) {
			tap_ok(false, "decode n=%s: %s", c->value, error);
			str_deinit(&out);
			continue;
		}
		long long v = 12345;
		bool ok = ipc_get_int(rec, "n", &v);
		tap_ok(ok == c->ok && (!ok || v == c->want), "int \"%s\" %s", c->value,
		       c->ok ? "accepted" : "refused");
		ipc_record_free(&rec);
		str_deinit(&out);
	}
	struct ipc_record *rec = NULL;
	const char *error = NULL;
	(void)ipc_decode("n=1\0\n\n", 6, &rec, &error);
	tap_ok(rec == NULL, "raw NUL after digits refused");
	(void)ipc_decode("n=1\\0\n\n", 7, &rec, &error);
	long long v = 0;
	tap_ok(rec != NULL && !ipc_get_int(rec, "n", &v), "escaped NUL after digits refused");
	ipc_record_free(&rec);
}

static void test_expect(void)
{
	struct ipc_record *rec = NULL;
	const char *error = NULL;
	const char *wire = "request=connect\nservice=smtp\nclient=1.2.3.4\nfuture=x\n\n";
	if (ipc_decode(wire, strlen(wire), &rec, &error) < 0) {
		tap_ok(false, "decode: %s", error);
		return;
	}
	static const char *const req[] = { "request", "service", "client", NULL };
	static const char *const req_more[] = { "request", "service", "client", "future", NULL };
	static const char *const req_missing[] = { "request", "count", NULL };
	tap_ok(ipc_expect(rec, req, false, &error) == 0, "unknown field skipped when not strict");
	tap_ok(ipc_expect(rec, req, true, &error) == -1, "unknown field refused when strict");
	tap_is_str(error, "unexpected field \"future\"", "strict error names the field");
	tap_ok(ipc_expect(rec, req_more, true, &error) == 0, "strict with every field listed");
	tap_ok(ipc_expect(rec, req_missing, false, &error) == -1, "missing field refused");
	tap_is_str(error, "missing field \"count\"", "missing error names the field");
	ipc_record_free(&rec);
}

static const struct version_case {
	const char *wire;
	int ok;
} version_cases[] = {
	{ "protocol=anvil\nversion=1\n\n", 0 },
	{ "protocol=anvil\nversion=1\nextra=ok\n\n", 0 },
	{ "protocol=anvil\nversion=2\n\n", -1 },
	{ "protocol=other\nversion=1\n\n", -1 },
	{ "protocol=anvil\n\n", -1 },
	{ "version=1\n\n", -1 },
	{ "protocol=anvil\nversion=01\n\n", -1 },
	{ "status=0\ncount=1\n\n", -1 },
};

static void test_version(void)
{
	struct str out = STR_INIT;
	ipc_put_version(&out, "anvil", 1);
	tap_is_str(str_c(&out), "protocol=anvil\nversion=1\n\n", "greeting record");
	str_deinit(&out);
	for (size_t i = 0; i < N_ELEMENTS(version_cases); i++) {
		const struct version_case *c = &version_cases[i];
		struct ipc_record *rec = NULL;
		const char *error = NULL;
		if (ipc_decode(c->wire, strlen(c->wire), &rec, &error) < 0) {
			tap_ok(false, "decode version case %zu: %s", i, error);
			continue;
		}
		tap_ok(ipc_check_version(rec, "anvil", 1, &error) == c->ok, "version case %zu%s%s",
		       i, c->ok < 0 ? ": " : "", c->ok < 0 ? error : "");
		ipc_record_free(&rec);
	}
}

/* ---- random input ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

/* rng: xorshift64*, deterministic so failures repeat. */
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

/* check_canonical: a parsed record re-encodes to exactly the bytes it was
 * parsed from (the encoding is canonical). */
static bool check_canonical(const struct ipc_record *rec, const char *in, size_t used)
{
	struct str out = STR_INIT;
	for (unsigned i = 0; i < ipc_field_count(rec); i++) {
		size_t len = 0;
		const char *name = ipc_field_name(rec, i);
		const char *v = ipc_get_data(rec, name, &len);
		ipc_put_data(&out, name, v, len);
	}
	ipc_end(&out);
	bool same = out.len == used && memcmp(out.data, in, used) == 0;
	str_deinit(&out);
	return same;
}

static void test_random(void)
{
	static const char alphabet[] = "ab_z09=\n\n\n\\\\n0\0A-= \xff";
	unsigned parsed = 0, failed = 0, short_ = 0, bad = 0;
	char buf[256];
	for (int iter = 0; iter < 300000; iter++) {
		size_t len = (size_t)(rng() % sizeof(buf));
		bool mutate = iter % 2 == 0;
		if (mutate) {
			/* a valid record with a few bytes changed */
			const char *base = valid_records[rng() % N_ELEMENTS(valid_records)];
			len = strlen(base);
			memcpy(buf, base, len);
			for (int k = 0; k < 1 + (int)(rng() % 3); k++)
				buf[rng() % len] = alphabet[rng() % (sizeof(alphabet) - 1)];
		} else {
			for (size_t k = 0; k < len; k++)
				buf[k] = (rng() & 7) == 0 ? (char)rng()
							  : alphabet[rng() % (sizeof(alphabet) - 1)];
		}
		struct ipc_record *rec = NULL;
		const char *error = NULL;
		size_t used = 0;
		int ret = ipc_parse(buf, len, &rec, &used, &error);
		if (ret == 1) {
			parsed++;
			if (used > len || !check_canonical(rec, buf, used))
				bad++;
			ipc_record_free(&rec);
		} else if (ret == 0) {
			short_++;
		} else if (error == NULL) {
			bad++;
		} else {
			failed++;
		}
	}
	tap_ok(bad == 0, "random input: %u parsed (all canonical), %u need more, %u errors",
	       parsed, short_, failed);
	tap_ok(parsed > 1000 && failed > 1000, "the random loop reaches both outcomes");
}

/* ---- anvil_client against a fake anvil ---- */

enum fake_mode {
	FAKE_NORMAL,   /* greeting, then answers */
	FAKE_SILENT,   /* accepts, never writes */
	FAKE_VERSION2, /* greets with version 2 */
	FAKE_GARBAGE,  /* greeting, then a malformed reply */
	FAKE_HANGUP,   /* greeting, then closes on the first request */
};

struct fake_anvil {
	struct event_loop *loop;
	enum fake_mode mode;
	int lfd, cfd;
	struct event_io *lio, *cio;
	struct str in;
	struct str seen; /* every request record, as received */
	unsigned count;  /* connect counter */
	unsigned accepted;
};

/* fake_close: drop the client connection. */
static void fake_close(struct fake_anvil *f)
{
	if (f->cfd < 0)
		return;
	event_io_remove(&f->cio);
	close(f->cfd);
	f->cfd = -1;
	str_clear(&f->in);
}

/* fake_answer: the reply to one request record. */
static void fake_answer(struct fake_anvil *f, const struct ipc_record *rec, struct str *out)
{
	const char *req = ipc_get_str(rec, "request");
	if (f->mode == FAKE_GARBAGE) {
		str_append(out, "Status=0\n\n");
	} else if (strcmp(req, "connect") == 0) {
		f->count++;
		ipc_put_int(out, "status", 0);
		ipc_put_int(out, "count", f->count);
		ipc_put_int(out, "rate", f->count);
		ipc_end(out);
	} else if (strcmp(req, "message") == 0) {
		ipc_put_int(out, "status", 0);
		ipc_put_int(out, "rate", 7);
		ipc_put_str(out, "future", "ignored");
		ipc_end(out);
	} else if (strcmp(req, "disconnect") == 0) {
		ipc_put_int(out, "status", 0);
		ipc_end(out);
	} else {
		ipc_put_int(out, "status", -1);
		ipc_put_str(out, "error", "unrecognized request");
		ipc_end(out);
	}
}

/* fake_input: read requests, answer as the mode says. */
static void fake_input(void *ctx, int fd, unsigned events)
{
	struct fake_anvil *f = ctx;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n <= 0) {
		if (n == 0 || errno != EAGAIN)
			fake_close(f);
		return;
	}
	str_append_n(&f->in, buf, (size_t)n);
	struct str out = STR_INIT;
	for (;;) {
		struct ipc_record *rec = NULL;
		const char *error = NULL;
		size_t used = 0;
		if (ipc_parse(f->in.data, f->in.len, &rec, &used, &error) <= 0)
			break;
		str_append_n(&f->seen, f->in.data, used);
		str_consume(&f->in, used);
		if (f->mode != FAKE_SILENT && f->mode != FAKE_HANGUP)
			fake_answer(f, rec, &out);
		ipc_record_free(&rec);
	}
	if (out.len > 0 && write(fd, out.data, out.len) != (ssize_t)out.len)
		tap_diag("fake anvil: short write");
	str_deinit(&out);
	if (f->mode == FAKE_HANGUP && f->seen.len > 0)
		fake_close(f);
}

/* fake_accept: one client at a time; greet it. */
static void fake_accept(void *ctx, int fd, unsigned events)
{
	struct fake_anvil *f = ctx;
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	fake_close(f);
	f->cfd = cfd;
	f->accepted++;
	f->cio = event_io_add(f->loop, cfd, EVENT_READ, fake_input, f);
	struct str out = STR_INIT;
	if (f->mode == FAKE_VERSION2)
		ipc_put_version(&out, ANVIL_PROTOCOL, 2);
	else if (f->mode != FAKE_SILENT)
		ipc_put_version(&out, ANVIL_PROTOCOL, ANVIL_PROTOCOL_VERSION);
	if (out.len > 0 && write(cfd, out.data, out.len) != (ssize_t)out.len)
		tap_diag("fake anvil: short greeting write");
	str_deinit(&out);
}

/* fake_start: listen on path. */
static void fake_start(struct fake_anvil *f, struct event_loop *loop, const char *path,
		       enum fake_mode mode)
{
	memset(f, 0, sizeof(*f));
	f->loop = loop;
	f->mode = mode;
	f->cfd = -1;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	(void)str_copy(sun.sun_path, sizeof(sun.sun_path), path);
	(void)unlink(path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(f->lfd, 16) < 0)
		msg_fatal("fake anvil on %s: %m", path);
	f->lio = event_io_add(loop, f->lfd, EVENT_READ, fake_accept, f);
}

static void fake_stop(struct fake_anvil *f, const char *path)
{
	fake_close(f);
	event_io_remove(&f->lio);
	close(f->lfd);
	(void)unlink(path);
	str_deinit(&f->in);
	str_deinit(&f->seen);
}

/* One callback's results. */
struct reply {
	int calls;
	int status;
	unsigned count, rate;
	struct anvil_client **free_me; /* free the client from the callback */
};

static void reply_fn(void *ctx, int status, unsigned count, unsigned rate)
{
	struct reply *r = ctx;
	r->calls++;
	r->status = status;
	r->count = count;
	r->rate = rate;
	if (r->free_me != NULL)
		anvil_client_free(r->free_me);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* run_until_called: run the loop until r has been called (or max_ms). */
static void run_until_called(struct event_loop *loop, const struct reply *r, unsigned max_ms)
{
	uint64_t end = now_ms() + max_ms;
	while (r->calls == 0 && now_ms() < end)
		event_loop_once(loop, 10);
}

static void run_for(struct event_loop *loop, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	while (now_ms() < end)
		event_loop_once(loop, 5);
}

static void test_client_normal(struct event_loop *loop, const char *path)
{
	struct fake_anvil f;
	struct anvil_client *cl = anvil_client_create(loop, path);
	struct reply r1 = { 0 }, r2 = { 0 }, r3 = { 0 }, rc = { 0 }, rm = { 0 };

	/* nobody listens yet: -1, from the loop, not from the call */
	(void)anvil_connect(cl, "smtp", "192.0.2.1", reply_fn, &r1);
	tap_ok(r1.calls == 0, "no callback from inside anvil_connect");
	run_until_called(loop, &r1, 2000);
	tap_ok(r1.calls == 1 && r1.status == -1, "anvil down: status -1");

	/* the next request connects again */
	fake_start(&f, loop, path, FAKE_NORMAL);
	memset(&r1, 0, sizeof(r1));
	(void)anvil_connect(cl, "smtp", "192.0.2.1", reply_fn, &r1);
	struct anvil_request *cancelled = anvil_connect(cl, "smtp", "192.0.2.1", reply_fn, &rc);
	(void)anvil_connect(cl, "smtp", "192.0.2.1", reply_fn, &r2);
	anvil_cancel(&cancelled);
	tap_ok(cancelled == NULL, "anvil_cancel resets the handle");
	anvil_disconnect(cl, "smtp", "192.0.2.1");
	(void)anvil_message(cl, "smtp", "192.0.2.1", reply_fn, &rm);
	run_until_called(loop, &rm, 2000);
	run_for(loop, 50);
	tap_ok(r1.calls == 1 && r1.status == 0 && r1.count == 1 && r1.rate == 1,
	       "first connect: status 0 count 1 rate 1");
	tap_ok(rc.calls == 0, "cancelled request: no callback");
	tap_ok(r2.calls == 1 && r2.status == 0 && r2.count == 3 && r2.rate == 3,
	       "third connect: count 3 (replies in order)");
	tap_ok(rm.calls == 1 && rm.status == 0 && rm.count == 0 && rm.rate == 7,
	       "message: rate 7, unknown reply field skipped");
	static const char want[] =
		"request=connect\nservice=smtp\nclient=192.0.2.1\n\n"
		"request=connect\nservice=smtp\nclient=192.0.2.1\n\n"
		"request=connect\nservice=smtp\nclient=192.0.2.1\n\n"
		"request=disconnect\nservice=smtp\nclient=192.0.2.1\n\n"
		"request=message\nservice=smtp\nclient=192.0.2.1\n\n"
		/* the cancelled connect was counted: undone by the client */
		"request=disconnect\nservice=smtp\nclient=192.0.2.1\n\n";
	tap_is_str(str_c(&f.seen), want, "requests on the wire, cancelled connect undone");
	tap_is_int(f.accepted, 1, "one connection for all of them");

	/* names anvil would refuse are never sent */
	memset(&r3, 0, sizeof(r3));
	(void)anvil_rcpt(cl, "smtp", "bad name", reply_fn, &r3);
	run_until_called(loop, &r3, 2000);
	tap_ok(r3.calls == 1 && r3.status == -1, "client with a space: -1 without asking");
	memset(&r3, 0, sizeof(r3));
	(void)anvil_auth(cl, "", "192.0.2.1", reply_fn, &r3);
	run_until_called(loop, &r3, 2000);
	tap_ok(r3.calls == 1 && r3.status == -1, "empty service: -1 without asking");

	/* freeing the client from inside a callback */
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	r1.free_me = &cl;
	(void)anvil_connect(cl, "smtp", "192.0.2.9", reply_fn, &r1);
	(void)anvil_newtls(cl, "smtp", "192.0.2.9", reply_fn, &r2);
	run_until_called(loop, &r1, 2000);
	run_for(loop, 50);
	tap_ok(r1.calls == 1 && cl == NULL, "client freed from its callback");
	tap_ok(r2.calls == 0, "no callback after the free");
	fake_stop(&f, path);
}

static const struct client_fail_case {
	enum fake_mode mode;
	const char *what;
} client_fail_cases[] = {
	{ FAKE_SILENT, "no answer within the timeout" },
	{ FAKE_VERSION2, "protocol version 2" },
	{ FAKE_GARBAGE, "malformed reply" },
	{ FAKE_HANGUP, "anvil hangs up" },
};

static void test_client_failures(struct event_loop *loop, const char *path)
{
	for (size_t i = 0; i < N_ELEMENTS(client_fail_cases); i++) {
		const struct client_fail_case *c = &client_fail_cases[i];
		struct fake_anvil f;
		fake_start(&f, loop, path, c->mode);
		struct anvil_client *cl = anvil_client_create(loop, path);
		anvil_client_set_timeout(cl, 200);
		struct reply r1 = { 0 }, r2 = { 0 };
		uint64_t start = now_ms();
		(void)anvil_connect(cl, "smtp", "192.0.2.1", reply_fn, &r1);
		(void)anvil_message(cl, "smtp", "192.0.2.1", reply_fn, &r2);
		run_until_called(loop, &r2, 3000);
		uint64_t took = now_ms() - start;
		tap_ok(r1.calls == 1 && r1.status == -1 && r2.calls == 1 && r2.status == -1,
		       "%s: every waiting request gets -1", c->what);
		if (c->mode == FAKE_SILENT)
			tap_ok(took >= 150 && took < 2000, "%s: after the timeout (%llu ms)",
			       c->what, (unsigned long long)took);
		/* then a working anvil: the next request reconnects */
		fake_stop(&f, path);
		fake_start(&f, loop, path, FAKE_NORMAL);
		memset(&r1, 0, sizeof(r1));
		(void)anvil_connect(cl, "smtp", "192.0.2.1", reply_fn, &r1);
		run_until_called(loop, &r1, 2000);
		tap_ok(r1.calls == 1 && r1.status == 0 && r1.count == 1,
		       "%s: reconnects on the next request", c->what);
		anvil_client_free(&cl);
		fake_stop(&f, path);
	}
}

static void test_client(void)
{
	char dir[] = "/tmp/test-ipc-XXXXXX";
	if (mkdtemp(dir) == NULL)
		msg_fatal("mkdtemp: %m");
	struct str path = STR_INIT;
	str_printf(&path, "%s/anvil", dir);
	struct event_loop *loop = event_loop_create();
	test_client_normal(loop, str_c(&path));
	test_client_failures(loop, str_c(&path));
	event_loop_free(&loop);
	if (rmdir(dir) != 0)
		tap_diag("rmdir(%s): %s", dir, strerror(errno));
	str_deinit(&path);
}

int main(void)
{
	test_round_trip();
	test_bounds();
	test_truncation();
	test_malformed();
	test_ints();
	test_expect();
	test_version();
	test_random();
	test_client();
	return tap_done();
}
