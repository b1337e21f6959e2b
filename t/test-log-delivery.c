/* test-log-delivery.c: golden tests for lib/mail/log_delivery (Postfix's
 * delivery log line and its delay formatting, format_tv with two
 * significant digits and two decimals). */
#include <config.h>

#include <string.h>

#include "mail/log_delivery.h"
#include "tap.h"
#include "util/attr.h"
#include "util/str.h"

static const struct tv_case {
	long sec, usec;
	const char *want;
} tv_cases[] = {
	{0, 0, "0"},
	{0, 4000, "0"},
	{0, 5000, "0.01"},
	{0, 10000, "0.01"},
	{0, 120000, "0.12"},
	{0, 123456, "0.12"},
	{0, 125000, "0.13"},
	{0, 300000, "0.3"},
	{0, 995000, "1"},
	{1, 0, "1"},
	{1, 234000, "1.2"},
	{1, 960000, "2"},
	{9, 960000, "10"},
	{12, 500000, "13"},
	{32, 100000, "32"},
	{123, 456000, "123"},
	{86400, 0, "86400"},
};

/* test_format_tv: the delay number format. */
static void test_format_tv(void)
{
	for (size_t i = 0; i < N_ELEMENTS(tv_cases); i++) {
		const struct tv_case *c = &tv_cases[i];
		struct str out = STR_INIT;
		log_delivery_format_tv(&out, c->sec, c->usec);
		tap_is_str(str_c(&out), c->want, "format_tv %ld.%06ld", c->sec, c->usec);
		str_deinit(&out);
	}
}

#define T0 1700000000L
static const struct line_case {
	const char *to, *orig_to, *relay, *dsn, *status, *reason;
	struct log_delivery_times t;
	const char *want;
} line_cases[] = {
	{"alice@example.test", "team@example.test", "mx.example.test[private/lmtpd]", "2.0.0",
	 "sent", "250 2.0.0 <alice@example.test> Ok: saved",
	 {{T0, 0}, {T0, 10000}, {T0, 20000}, {T0, 70000}, {T0, 120000}},
	 "ID1: to=<alice@example.test>, orig_to=<team@example.test>, "
	 "relay=mx.example.test[private/lmtpd], delay=0.12, delays=0.01/0.01/0.05/0.05, "
	 "dsn=2.0.0, status=sent (250 2.0.0 <alice@example.test> Ok: saved)"},
	/* orig_to equal but for case: left out */
	{"bob@example.test", "Bob@Example.test", "private/lmtpd", "4.2.2", "deferred",
	 "host private/lmtpd said: 452 4.2.2 Mailbox full (in reply to end of DATA command)",
	 {{T0, 0}, {T0 + 300, 0}, {T0 + 300, 0}, {T0 + 300, 500000}, {T0 + 301, 0}},
	 "ID1: to=<bob@example.test>, relay=private/lmtpd, delay=301, "
	 "delays=300/0/0.5/0.5, dsn=4.2.2, status=deferred (host private/lmtpd said: "
	 "452 4.2.2 Mailbox full (in reply to end of DATA command))"},
	/* no connection: c is 0, d runs from hand-off */
	{"carol@example.test", "", "none", "4.4.1", "deferred",
	 "connect to private/lmtpd: No such file or directory",
	 {{T0, 0}, {T0 + 1, 0}, {T0 + 1, 1000}, {0, 0}, {T0 + 1, 3000}},
	 "ID1: to=<carol@example.test>, relay=none, delay=1, delays=1/0/0/0, dsn=4.4.1, "
	 "status=deferred (connect to private/lmtpd: No such file or directory)"},
	/* no agent: b runs to done */
	{"dave@example.test", NULL, "none", "5.1.1", "bounced", "unknown user",
	 {{T0, 0}, {T0, 500000}, {0, 0}, {0, 0}, {T0 + 2, 500000}},
	 "ID1: to=<dave@example.test>, relay=none, delay=2.5, delays=0.5/2/0/0, dsn=5.1.1, "
	 "status=bounced (unknown user)"},
	/* clock went back: zero, never negative */
	{"eve@example.test", NULL, "h[192.0.2.1]:24", "2.0.0", "sent", "250 ok",
	 {{T0 + 10, 0}, {T0, 0}, {T0, 0}, {T0, 0}, {T0, 0}},
	 "ID1: to=<eve@example.test>, relay=h[192.0.2.1]:24, delay=0, delays=0/0/0/0, "
	 "dsn=2.0.0, status=sent (250 ok)"},
	/* control characters in remote text are escaped */
	{"x\ny@example.test", NULL, "none", "5.0.0", "bounced", "bad\r\ntext",
	 {{T0, 0}, {T0, 0}, {T0, 0}, {T0, 0}, {T0, 0}},
	 "ID1: to=<x\\012y@example.test>, relay=none, delay=0, delays=0/0/0/0, "
	 "dsn=5.0.0, status=bounced (bad\\015\\012text)"},
};

/* test_lines: golden delivery lines. */
static void test_lines(void)
{
	for (size_t i = 0; i < N_ELEMENTS(line_cases); i++) {
		const struct line_case *c = &line_cases[i];
		struct str out = STR_INIT;
		log_delivery_format(&out, "ID1", c->to, c->orig_to, c->relay, &c->t, c->dsn,
				    c->status, c->reason);
		tap_is_str(str_c(&out), c->want, "line %zu", i);
		str_deinit(&out);
	}
}

int main(void)
{
	test_format_tv();
	test_lines();
	return tap_done();
}
