/* test-delivery.c: unit tests for lib/mail/delivery (the qmgr <-> agent
 * codec): request and reply round trips fed byte by byte, malformed
 * records (always errors, never crashes), and the limits. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/delivery.h"
#include "mail/ipc.h"
#include "tap.h"
#include "util/attr.h"
#include "util/str.h"

static struct delivery_rcpt rt_rcpts[] = {
	{"alice@example.test", "team@example.test", 1234, 6, "rfc822;team@example.test"},
	{"bob@example.test", "", 1300, 0, NULL},
	{"\"odd \\\\ name\"@example.test", "x", 0, 15, NULL},
};

static const char rt_wire[] = "request=deliver\n"
			      "queue_id=6B036E842727DA76006\n"
			      "queue_file=active/6B036E842727DA76006\n"
			      "nexthop=unix:private/lmtpd\n"
			      "rcpt_count=3\n"
			      "\n"
			      "address=alice@example.test\n"
			      "orig_rcpt=team@example.test\n"
			      "offset=1234\n"
			      "notify=6\n"
			      "orcpt=rfc822;team@example.test\n"
			      "\n"
			      "address=bob@example.test\n"
			      "orig_rcpt=\n"
			      "offset=1300\n"
			      "notify=0\n"
			      "\n"
			      "address=\"odd \\\\\\\\ name\"@example.test\n"
			      "orig_rcpt=x\n"
			      "offset=0\n"
			      "notify=15\n"
			      "\n";

/* test_request_round_trip: write, compare with the wire text, parse back
 * one byte at a time. */
static void test_request_round_trip(void)
{
	struct delivery_request req = {"6B036E842727DA76006", "active/6B036E842727DA76006",
				       "unix:private/lmtpd", rt_rcpts, N_ELEMENTS(rt_rcpts)};
	struct str out = STR_INIT, in = STR_INIT;
	const char *error = NULL;
	delivery_request_write(&out, &req);
	tap_is_str(str_c(&out), rt_wire, "request wire text");

	struct delivery_request_parser *p = delivery_request_parser_create();
	struct delivery_request *got = NULL;
	int r = 0;
	for (size_t i = 0; i < out.len && r == 0; i++) {
		str_append_n(&in, out.data + i, 1);
		r = delivery_request_parser_feed(p, &in, &got, &error);
	}
	tap_is_int(r, 1, "request parsed");
	tap_is_int((long long)in.len, 0, "request consumed whole");
	if (got != NULL) {
		tap_is_str(got->queue_id, req.queue_id, "queue_id");
		tap_is_str(got->queue_file, req.queue_file, "queue_file");
		tap_is_str(got->nexthop, req.nexthop, "nexthop");
		tap_is_int(got->rcpt_count, 3, "rcpt_count");
		for (unsigned i = 0; i < got->rcpt_count && i < 3; i++) {
			tap_is_str(got->rcpts[i].address, rt_rcpts[i].address, "address %u", i);
			tap_is_str(got->rcpts[i].orig_rcpt, rt_rcpts[i].orig_rcpt, "orig %u", i);
			tap_is_int(got->rcpts[i].offset, rt_rcpts[i].offset, "offset %u", i);
			tap_is_int(got->rcpts[i].notify, rt_rcpts[i].notify, "notify %u", i);
			tap_ok((got->rcpts[i].orcpt == NULL) == (rt_rcpts[i].orcpt == NULL) &&
				       (got->rcpts[i].orcpt == NULL ||
					strcmp(got->rcpts[i].orcpt, rt_rcpts[i].orcpt) == 0),
			       "orcpt %u", i);
		}
	}
	delivery_request_free(&got);
	/* a second request on the same parser */
	str_append_n(&in, out.data, out.len);
	tap_is_int(delivery_request_parser_feed(p, &in, &got, &error), 1, "second request");
	delivery_request_free(&got);
	/* a partial request is freed with the parser */
	str_append_n(&in, out.data, out.len - 20);
	tap_is_int(delivery_request_parser_feed(p, &in, &got, &error), 0, "partial request");
	delivery_request_parser_free(&p);
	tap_ok(p == NULL, "parser freed");
	str_deinit(&out);
	str_deinit(&in);
}

#define HDR(count) "request=deliver\nqueue_id=6B036E842727DA76006\n" \
		   "queue_file=active/6B036E842727DA76006\nnexthop=unix:private/lmtpd\n" \
		   "rcpt_count=" count "\n\n"
#define RCPT "address=a@b\norig_rcpt=\noffset=1\nnotify=0\n\n"

static const struct bad_case {
	const char *what;
	const char *wire;
} bad_requests[] = {
	{"unknown request", "request=frob\nqueue_id=6B036E842727DA76006\n\n"},
	{"no request", "queue_id=6B036E842727DA76006\n\n"},
	{"bad queue id", "request=deliver\nqueue_id=../x\nqueue_file=active/x\nnexthop=a\n"
			 "rcpt_count=1\n\n"},
	{"absolute file", "request=deliver\nqueue_id=6B036E842727DA76006\nqueue_file=/etc/x\n"
			  "nexthop=a\nrcpt_count=1\n\n"},
	{"dotdot file", "request=deliver\nqueue_id=6B036E842727DA76006\n"
			"queue_file=active/../../x\nnexthop=a\nrcpt_count=1\n\n"},
	{"empty nexthop", "request=deliver\nqueue_id=6B036E842727DA76006\n"
			  "queue_file=active/x\nnexthop=\nrcpt_count=1\n\n"},
	{"zero rcpts", HDR("0")},
	{"too many rcpts", HDR("1001")},
	{"negative rcpts", HDR("-1")},
	{"rcpt count text", HDR("two")},
	{"missing address", HDR("1") "orig_rcpt=\noffset=1\nnotify=0\n\n"},
	{"empty address", HDR("1") "address=\norig_rcpt=\noffset=1\nnotify=0\n\n"},
	{"newline in address", HDR("1") "address=a\\nb\norig_rcpt=\noffset=1\nnotify=0\n\n"},
	{"nul in address", HDR("1") "address=a\\0b\norig_rcpt=\noffset=1\nnotify=0\n\n"},
	{"cr in address", HDR("1") "address=a\rb\norig_rcpt=\noffset=1\nnotify=0\n\n"},
	{"negative offset", HDR("1") "address=a@b\norig_rcpt=\noffset=-1\nnotify=0\n\n"},
	{"missing offset", HDR("1") "address=a@b\norig_rcpt=\nnotify=0\n\n"},
	{"notify too big", HDR("1") "address=a@b\norig_rcpt=\noffset=1\nnotify=16\n\n"},
	{"missing orig", HDR("1") "address=a@b\noffset=1\nnotify=0\n\n"},
	{"empty orcpt", HDR("1") "address=a@b\norig_rcpt=\noffset=1\nnotify=0\norcpt=\n\n"},
	{"bad ipc", HDR("2") RCPT "Address=x\n\n"},
	{"second rcpt bad", HDR("2") RCPT "address=a@b\n\n"},
};

/* test_bad_requests: every malformed request is an error. */
static void test_bad_requests(void)
{
	for (size_t i = 0; i < N_ELEMENTS(bad_requests); i++) {
		struct delivery_request_parser *p = delivery_request_parser_create();
		struct delivery_request *req = NULL;
		struct str in = STR_INIT;
		const char *error = NULL;
		str_append(&in, bad_requests[i].wire);
		int r = delivery_request_parser_feed(p, &in, &req, &error);
		tap_ok(r == -1 && req == NULL && error != NULL, "bad request: %s (%s)",
		       bad_requests[i].what, error != NULL ? error : "no error");
		delivery_request_parser_free(&p);
		str_deinit(&in);
	}
}

/* test_limits: address length and the recipient count at the bounds. */
static void test_limits(void)
{
	struct str in = STR_INIT, addr = STR_INIT;
	const char *error = NULL;
	struct delivery_request *req = NULL;
	for (int i = 0; i < DELIVERY_ADDRESS_MAX - 2; i++)
		str_append_c(&addr, 'a');
	str_append(&addr, "@b");
	for (int extra = 0; extra <= 1; extra++) {
		struct delivery_request_parser *p = delivery_request_parser_create();
		str_clear(&in);
		str_append(&in, HDR("1"));
		str_printf(&in, "address=%s%s\norig_rcpt=\noffset=1\nnotify=0\n\n", str_c(&addr),
			   extra ? "x" : "");
		int r = delivery_request_parser_feed(p, &in, &req, &error);
		tap_is_int(r, extra ? -1 : 1, "address of %d bytes", (int)addr.len + extra);
		delivery_request_free(&req);
		delivery_request_parser_free(&p);
	}
	struct delivery_request_parser *p = delivery_request_parser_create();
	str_clear(&in);
	str_append(&in, HDR("1000"));
	for (int i = 0; i < DELIVERY_RCPT_MAX; i++)
		str_append(&in, RCPT);
	tap_is_int(delivery_request_parser_feed(p, &in, &req, &error), 1, "1000 recipients");
	tap_ok(req != NULL && req->rcpt_count == 1000, "1000 recipients kept");
	delivery_request_free(&req);
	delivery_request_parser_free(&p);
	str_deinit(&in);
	str_deinit(&addr);
}

/* test_reply_round_trip: results then done, parsed one byte at a time. */
static void test_reply_round_trip(void)
{
	static const struct delivery_result results[] = {
		{1234, "alice@example.test", "2.0.0", DELIVERY_DELIVERED,
		 "250 2.0.0 <alice@example.test> Ok", "mx.example.test[private/lmtpd]"},
		{1300, "bob@example.test", "4.2.2", DELIVERY_DEFERRED, "452 4.2.2 full",
		 "private/lmtpd"},
		{1400, "carol@example.test", "5.1.1", DELIVERY_BOUNCED, "550 5.1.1 no\r\nsuch",
		 "none"},
	};
	struct str out = STR_INIT, in = STR_INIT;
	for (size_t i = 0; i < N_ELEMENTS(results); i++)
		delivery_result_write(&out, &results[i]);
	delivery_done_write(&out);
	size_t pos = 0, n = 0;
	bool done = false;
	const char *error = NULL;
	while (pos < out.len && !done) {
		str_append_n(&in, out.data + pos++, 1);
		struct delivery_reply reply;
		size_t used = 0;
		int r = delivery_reply_parse(in.data, in.len, &reply, &used, &error);
		if (r < 0) {
			tap_ok(false, "reply parse: %s", error);
			break;
		}
		if (r == 0)
			continue;
		str_consume(&in, used);
		if (reply.done) {
			done = true;
			continue;
		}
		const struct delivery_result *want = &results[n++];
		tap_is_int(reply.result.offset, want->offset, "result offset");
		tap_is_str(reply.result.address, want->address, "result address");
		tap_is_str(reply.result.status, want->status, "result status");
		tap_is_int(reply.result.action, want->action, "result action");
		/* control characters in replies become spaces on the wire */
		tap_is_str(reply.result.reply,
			   n == 3 ? "550 5.1.1 no  such" : want->reply, "result reply");
		tap_is_str(reply.result.relay, want->relay, "result relay");
		delivery_reply_clear(&reply);
	}
	tap_ok(done && n == 3 && pos == out.len && in.len == 0, "reply stream ends with done");
	str_deinit(&out);
	str_deinit(&in);
}

#define RES(status, action) "offset=1\naddress=a@b\nstatus=" status "\naction=" action \
			    "\nreply=x\nrelay=none\n\n"
static const struct bad_case bad_replies[] = {
	{"class mismatch", RES("2.0.0", "deferred")},
	{"class 3", RES("3.0.0", "deferred")},
	{"bad status", RES("4.0", "deferred")},
	{"long detail", RES("4.0.1234", "deferred")},
	{"unknown action", RES("2.0.0", "sent")},
	{"done 2", "done=2\n\n"},
	{"done with more", "done=1\nx=1\n\n"},
	{"no offset", "address=a@b\nstatus=2.0.0\naction=delivered\nreply=x\nrelay=y\n\n"},
	{"empty reply", "offset=1\naddress=a@b\nstatus=2.0.0\naction=delivered\nreply=\n"
			"relay=y\n\n"},
	{"no relay", "offset=1\naddress=a@b\nstatus=2.0.0\naction=delivered\nreply=x\n\n"},
	{"ipc garbage", "offset\n\n"},
};

/* test_bad_replies: every malformed reply is an error. */
static void test_bad_replies(void)
{
	for (size_t i = 0; i < N_ELEMENTS(bad_replies); i++) {
		struct delivery_reply reply;
		size_t used = 0;
		const char *error = NULL;
		const char *w = bad_replies[i].wire;
		int r = delivery_reply_parse(w, strlen(w), &reply, &used, &error);
		tap_ok(r == -1 && error != NULL, "bad reply: %s (%s)", bad_replies[i].what,
		       error != NULL ? error : "none");
		delivery_reply_clear(&reply);
	}
}

/* test_version: the greeting round trip. */
static void test_version(void)
{
	struct str out = STR_INIT;
	struct ipc_record *rec = NULL;
	const char *error = NULL;
	delivery_version_write(&out);
	tap_is_str(str_c(&out), "protocol=delivery\nversion=1\n\n", "greeting");
	tap_is_int(ipc_decode(out.data, out.len, &rec, &error), 0, "greeting decodes");
	tap_is_int(delivery_check_version(rec, &error), 0, "greeting checks");
	ipc_record_free(&rec);
	str_deinit(&out);
}

/* test_random: random bytes and mutated valid requests never crash the
 * parsers (the sanitizers watch); whatever parses is within the limits. */
static void test_random(void)
{
	unsigned seed = 12345;
	bool sane = true;
	struct str in = STR_INIT;
	for (int round = 0; round < 3000; round++) {
		str_clear(&in);
		str_append(&in, rt_wire);
		size_t flips = 1 + (size_t)(rand_r(&seed) % 4);
		for (size_t i = 0; i < flips; i++)
			in.data[(size_t)rand_r(&seed) % in.len] = (char)(rand_r(&seed) & 0xff);
		struct delivery_request_parser *p = delivery_request_parser_create();
		struct delivery_request *req = NULL;
		const char *error = NULL;
		int r = delivery_request_parser_feed(p, &in, &req, &error);
		if (r == 1 && (req->rcpt_count < 1 || req->rcpt_count > DELIVERY_RCPT_MAX ||
			       req->queue_file[0] == '/' || strstr(req->queue_file, "..") != NULL))
			sane = false;
		delivery_request_free(&req);
		delivery_request_parser_free(&p);
		struct delivery_reply reply;
		size_t used = 0;
		if (delivery_reply_parse(in.data, in.len, &reply, &used, &error) == 1)
			delivery_reply_clear(&reply);
	}
	tap_ok(sane, "random mutations: no crash, nothing out of bounds accepted");
	str_deinit(&in);
}

int main(void)
{
	test_request_round_trip();
	test_bad_requests();
	test_limits();
	test_reply_round_trip();
	test_bad_replies();
	test_version();
	test_random();
	return tap_done();
}
