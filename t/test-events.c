/* test-events.c: unit tests for lib/util/events (timers, io, signals, and
 * removal while dispatching). */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "util/events.h"
#include "util/msg.h"

/* test_clock_ms: the same clock the loop uses. */
static uint64_t test_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* test_sleep_ms: let timers come due without running the loop. */
static void test_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Fired timers append their id here. */
static int fired[64];
static size_t fired_count;

static void record_fn(void *ctx)
{
	if (fired_count < N_ELEMENTS(fired))
		fired[fired_count++] = (int)(intptr_t)ctx;
}

/* run_until: loop until *count reaches want or max_ms passes. */
static void run_until(struct event_loop *loop, const size_t *count, size_t want, unsigned max_ms)
{
	uint64_t end = test_clock_ms() + max_ms;
	while (*count < want && test_clock_ms() < end)
		event_loop_once(loop, 10);
}

static const struct order_case {
	unsigned msecs;
	int id;
} order_cases[] = {
	{ 120, 1 }, { 30, 2 }, { 75, 3 }, { 30, 4 }, { 0, 5 }, { 180, 6 },
};
static const int order_want[] = { 5, 2, 4, 3, 1, 6 };

static void test_timer_order(void)
{
	struct event_loop *loop = event_loop_create();
	struct event_timer *timers[N_ELEMENTS(order_cases)];
	uint64_t start = 0;
	/* The deadlines are 15+ ms apart; on an overloaded machine the
	 * arming itself can stall that long, so arm again until it was quick. */
	for (int attempt = 0; attempt < 5; attempt++) {
		fired_count = 0;
		start = test_clock_ms();
		for (size_t i = 0; i < N_ELEMENTS(order_cases); i++)
			timers[i] = event_timer_add(loop, order_cases[i].msecs, record_fn,
						    (void *)(intptr_t)order_cases[i].id);
		if (test_clock_ms() - start <= 5 || attempt == 4)
			break;
		for (size_t i = 0; i < N_ELEMENTS(order_cases); i++)
			event_timer_remove(&timers[i]);
	}
	run_until(loop, &fired_count, N_ELEMENTS(order_cases), 2000);
	tap_is_int((long long)fired_count, N_ELEMENTS(order_cases), "all timers fired");
	for (size_t i = 0; i < N_ELEMENTS(order_want); i++)
		tap_is_int(fired[i], order_want[i], "timer %zu in deadline order", i);
	tap_ok(test_clock_ms() - start >= 180, "the 180 ms timer did not fire early");
	for (size_t i = 0; i < N_ELEMENTS(order_cases); i++) {
		tap_ok(!event_timer_pending(timers[i]), "fired timer %zu is no longer pending", i);
		event_timer_remove(&timers[i]);
	}
	tap_ok(timers[0] == NULL, "event_timer_remove clears the pointer");
	event_loop_free(&loop);
	tap_ok(loop == NULL, "event_loop_free clears the pointer");
}

static void test_timer_reset(void)
{
	struct event_loop *loop = event_loop_create();
	fired_count = 0;
	struct event_timer *a = event_timer_add(loop, 10, record_fn, (void *)1);
	struct event_timer *b = event_timer_add(loop, 30, record_fn, (void *)2);
	event_timer_reset(a, 60);
	tap_ok(event_timer_pending(a), "reset timer is pending");
	run_until(loop, &fired_count, 2, 2000);
	tap_is_int((long long)fired_count, 2, "both fired");
	tap_is_int(fired[0], 2, "the 30 ms timer first");
	tap_is_int(fired[1], 1, "the timer reset to 60 ms second");
	/* a fired timer can be armed again */
	event_timer_reset(b, 0);
	run_until(loop, &fired_count, 3, 2000);
	tap_is_int(fired_count == 3 ? fired[2] : 0, 2, "a fired timer re-armed fires again");
	event_timer_remove(&a);
	event_timer_remove(&b);
	event_loop_free(&loop);
}

/* Removal during dispatch: the first timer removes a sibling due in the
 * same round, and itself. */
struct remove_ctx {
	struct event_timer *self;
	struct event_timer *other;
	int calls;
};

static void remove_fn(void *ctx)
{
	struct remove_ctx *rc = ctx;
	rc->calls++;
	event_timer_remove(&rc->other);
	event_timer_remove(&rc->self);
}

struct rearm_ctx {
	struct event_timer *timer;
	int calls;
};

static void rearm_fn(void *ctx)
{
	struct rearm_ctx *rc = ctx;
	rc->calls++;
	event_timer_reset(rc->timer, 0);
}

static void test_timer_remove_in_dispatch(void)
{
	struct event_loop *loop = event_loop_create();
	struct remove_ctx first = { 0 }, second = { 0 };
	first.self = event_timer_add(loop, 1, remove_fn, &first);
	second.self = event_timer_add(loop, 2, remove_fn, &second);
	first.other = second.self;
	second.other = first.self;
	test_sleep_ms(10);
	int calls = event_loop_once(loop, 0);
	tap_is_int(calls, 1, "one handler called in the round");
	tap_is_int(first.calls, 1, "the first timer ran");
	tap_is_int(second.calls, 0, "the removed sibling never ran");
	tap_ok(first.self == NULL && first.other == NULL, "both pointers cleared");
	event_loop_once(loop, 0);
	tap_is_int(second.calls, 0, "nor in the next round");

	/* a timer re-armed from its own callback waits for the next round */
	struct rearm_ctx rc = { 0 };
	rc.timer = event_timer_add(loop, 0, rearm_fn, &rc);
	test_sleep_ms(2);
	event_loop_once(loop, 0);
	tap_is_int(rc.calls, 1, "self re-arming 0 ms timer fired once in a round");
	event_loop_once(loop, 0);
	tap_is_int(rc.calls, 2, "and once more in the next round");
	struct event_timer *t = rc.timer;
	event_timer_remove(&t);
	event_loop_free(&loop);
}

/* Many timers, half removed: the heap keeps its order. */
#define MANY_TIMERS 4000
struct many_ctx {
	struct event_timer *timer;
	uint64_t due_lo, due_hi; /* the loop's deadline lies in between */
	bool removed;
	bool fired;
};
static uint64_t many_last_due;
static bool many_in_order = true;
static size_t many_fired;

static void many_fn(void *ctx)
{
	struct many_ctx *m = ctx;
	/* a timer firing after another cannot be due before it */
	if (m->due_hi < many_last_due)
		many_in_order = false;
	if (m->due_lo > many_last_due)
		many_last_due = m->due_lo;
	m->fired = true;
	many_fired++;
}

static void test_many_timers(void)
{
	struct event_loop *loop = event_loop_create();
	struct many_ctx *m = calloc(MANY_TIMERS, sizeof(*m));
	unsigned seed = 12345;
	size_t kept = 0;
	for (size_t i = 0; i < MANY_TIMERS; i++) {
		seed = seed * 1103515245 + 12345;
		unsigned msecs = (seed >> 16) % 80;
		m[i].due_lo = test_clock_ms() + msecs;
		m[i].timer = event_timer_add(loop, msecs, many_fn, &m[i]);
		m[i].due_hi = test_clock_ms() + msecs;
	}
	for (size_t i = 0; i < MANY_TIMERS; i++) {
		seed = seed * 1103515245 + 12345;
		if (((seed >> 16) & 1) != 0) {
			m[i].removed = true;
			event_timer_remove(&m[i].timer);
		} else {
			kept++;
		}
	}
	run_until(loop, &many_fired, kept, 5000);
	bool removed_fired = false;
	for (size_t i = 0; i < MANY_TIMERS; i++) {
		if (m[i].removed && m[i].fired)
			removed_fired = true;
		event_timer_remove(&m[i].timer);
	}
	tap_is_int((long long)many_fired, (long long)kept, "every kept timer of %d fired", MANY_TIMERS);
	tap_ok(!removed_fired, "no removed timer fired");
	tap_ok(many_in_order, "timers fired in deadline order");
	free(m);
	event_loop_free(&loop);
}

/* io */
struct io_ctx {
	struct event_io *io;
	struct event_io *other;
	int fd;
	unsigned events;
	int calls;
	bool remove;
};

static void io_fn(void *ctx, int fd, unsigned events)
{
	struct io_ctx *ic = ctx;
	ic->calls++;
	ic->events = events;
	char buf[16];
	if ((events & EVENT_READ) != 0)
		(void)read(fd, buf, sizeof(buf));
	if (ic->remove) {
		event_io_remove(&ic->other);
		event_io_remove(&ic->io);
	}
}

static void test_io_pipe(void)
{
	struct event_loop *loop = event_loop_create();
	int p[2];
	if (pipe(p) < 0)
		msg_fatal("pipe: %m");
	struct io_ctx rd = { .fd = p[0] };
	rd.io = event_io_add(loop, p[0], EVENT_READ, io_fn, &rd);
	tap_is_int(event_loop_once(loop, 0), 0, "nothing to read yet");
	tap_ok(write(p[1], "x", 1) == 1, "wrote a byte");
	tap_is_int(event_loop_once(loop, 100), 1, "one handler called");
	tap_ok(rd.calls == 1 && rd.events == EVENT_READ, "reader saw EVENT_READ");

	/* write interest on the write end */
	struct io_ctx wr = { .fd = p[1] };
	wr.io = event_io_add(loop, p[1], EVENT_WRITE, io_fn, &wr);
	event_loop_once(loop, 100);
	tap_ok(wr.calls == 1 && wr.events == EVENT_WRITE, "writer saw EVENT_WRITE");
	/* errors only: nothing while the reader lives */
	event_io_set(wr.io, 0);
	wr.calls = 0;
	event_loop_once(loop, 20);
	tap_is_int(wr.calls, 0, "events 0: silent while the read end is open");
	event_io_remove(&rd.io);
	close(p[0]);
	event_loop_once(loop, 100);
	tap_ok(wr.calls == 1 && wr.events == EVENT_ERROR,
	       "events 0: EVENT_ERROR when the read end closes (got %u)", wr.events);
	event_io_remove(&wr.io);
	close(p[1]);
	event_loop_free(&loop);
}

static void test_io_remove_in_dispatch(void)
{
	struct event_loop *loop = event_loop_create();
	int p1[2], p2[2];
	if (pipe(p1) < 0 || pipe(p2) < 0)
		msg_fatal("pipe: %m");
	struct io_ctx a = { .fd = p1[0], .remove = true };
	struct io_ctx b = { .fd = p2[0], .remove = true };
	a.io = event_io_add(loop, p1[0], EVENT_READ, io_fn, &a);
	b.io = event_io_add(loop, p2[0], EVENT_READ, io_fn, &b);
	a.other = b.io;
	b.other = a.io;
	tap_ok(write(p1[1], "a", 1) == 1 && write(p2[1], "b", 1) == 1, "both pipes readable");
	int calls = event_loop_once(loop, 100);
	tap_is_int(calls, 1, "only one handler ran");
	tap_is_int(a.calls + b.calls, 1, "the removed one never ran");
	event_loop_once(loop, 10);
	tap_is_int(a.calls + b.calls, 1, "nor in the next round");
	for (int i = 0; i < 2; i++) {
		close(p1[i]);
		close(p2[i]);
	}
	event_loop_free(&loop);
}

/* signals and stop */
static int signals_seen[3];

static void signal_fn(void *ctx, int signo)
{
	struct event_loop *loop = ctx;
	if (signo == SIGUSR1)
		signals_seen[0]++;
	else if (signo == SIGUSR2)
		signals_seen[1]++;
	else if (signo == SIGHUP)
		signals_seen[2]++;
	if (signals_seen[0] > 0 && signals_seen[1] > 0 && signals_seen[2] > 0)
		event_loop_stop(loop);
}

static const int signal_cases[] = { SIGUSR1, SIGUSR2, SIGHUP };

static void stop_fn(void *ctx)
{
	event_loop_stop(ctx);
}

static void test_signals(void)
{
	struct event_loop *loop = event_loop_create();
	for (size_t i = 0; i < N_ELEMENTS(signal_cases); i++)
		event_signal_add(loop, signal_cases[i], signal_fn, loop);
	for (size_t i = 0; i < N_ELEMENTS(signal_cases); i++)
		raise(signal_cases[i]);
	struct event_timer *guard = event_timer_add(loop, 2000, stop_fn, loop);
	tap_is_int(event_loop_run(loop), 0, "event_loop_run returns 0 after stop");
	for (size_t i = 0; i < N_ELEMENTS(signal_cases); i++)
		tap_is_int(signals_seen[i], 1, "signal %s delivered once through the loop",
			   strsignal(signal_cases[i]));
	event_timer_remove(&guard);

	sigset_t mask;
	sigprocmask(SIG_BLOCK, NULL, &mask);
	tap_ok(sigismember(&mask, SIGUSR1), "SIGUSR1 blocked while the loop handles it");
	event_signal_unblock(loop);
	sigprocmask(SIG_BLOCK, NULL, &mask);
	tap_ok(!sigismember(&mask, SIGUSR1), "event_signal_unblock restores the mask");
	uint64_t a = event_now_ms(loop);
	test_sleep_ms(5);
	event_loop_once(loop, 0);
	tap_ok(event_now_ms(loop) >= a + 5, "event_now_ms advances per round");
	event_loop_free(&loop);
}

int main(void)
{
	msg_init("test-events");
	test_timer_order();
	test_timer_reset();
	test_timer_remove_in_dispatch();
	test_many_timers();
	test_io_pipe();
	test_io_remove_in_dispatch();
	test_signals();
	return tap_done();
}
