/* tap.h: a tiny Test Anything Protocol emitter for the C unit tests.
 *
 * Tests are table-driven: loop over a static const array of cases and call
 * tap_ok() once per assertion; tap_done() prints the plan and returns the
 * exit status for main(). */
#ifndef PETREL_TAP_H
#define PETREL_TAP_H

#include <stdbool.h>

#include "util/attr.h"

/* tap_ok: one result line; returns cond so callers can add diagnostics. */
bool tap_ok(bool cond, const char *fmt, ...) ATTR_FORMAT(2, 3);
/* tap_is_str: equality of two strings, printing both on failure. */
bool tap_is_str(const char *got, const char *want, const char *fmt, ...) ATTR_FORMAT(3, 4);
bool tap_is_int(long long got, long long want, const char *fmt, ...) ATTR_FORMAT(3, 4);
void tap_diag(const char *fmt, ...) ATTR_FORMAT(1, 2);
void tap_skip(const char *why);
/* tap_done: print "1..N"; exit status 0 when every test passed. */
int tap_done(void);

#endif
