/* events.c: the event loop: epoll for io, a binary heap of one-shot timers on
 * CLOCK_MONOTONIC, and signals through one signalfd; see events.h.
 *
 * Removal while dispatching: a removed io or timer is marked dead at once
 * (so it is never called again, even if epoll already returned an event for
 * it in this round) and its memory goes on a list freed when the outermost
 * dispatch round ends. Outside a round it is freed immediately.
 *
 * Timers that come due in a round are fired in (deadline, arming order)
 * order. A timer armed during the round is never fired in that same round,
 * so a callback that re-arms a 0 ms timer cannot starve io. */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/events.h"
#include "util/msg.h"

/* Events fetched per epoll_wait; more simply wait for the next round. */
#define EVENT_BATCH 256
#define TIMER_UNARMED ((size_t)-1)

struct event_io {
	struct event_loop *loop;
	int fd;
	unsigned events;
	bool removed;
	event_io_fn *fn;
	void *ctx;
	struct event_io *next_dead;
};

struct event_timer {
	struct event_loop *loop;
	uint64_t when;
	uint64_t seq;
	size_t heap_index; /* TIMER_UNARMED when not in the heap */
	bool removed;
	event_timer_fn *fn;
	void *ctx;
	struct event_timer *next_dead;
};

struct event_signal {
	event_signal_fn *fn;
	void *ctx;
};

struct event_loop {
	int epfd;
	bool stop;
	unsigned depth; /* nested dispatch rounds */
	uint64_t now;
	uint64_t next_seq;
	unsigned io_count;

	struct event_timer **heap;
	size_t heap_len;
	size_t heap_cap;

	struct event_io *dead_ios;
	struct event_timer *dead_timers;

	int sigfd;
	struct event_io *sig_io;
	sigset_t sigmask;
	sigset_t old_sigmask;
	bool sigmask_saved;
	struct event_signal signals[_NSIG];
	int handlers_called;
};

/* event_clock_ms: the monotonic clock in milliseconds. */
static uint64_t event_clock_ms(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		msg_fatal("clock_gettime(CLOCK_MONOTONIC) failed: %m");
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* event_loop_create: a new loop with its epoll instance. */
struct event_loop *event_loop_create(void)
{
	struct event_loop *loop = xcalloc(1, sizeof(*loop));
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		msg_fatal("epoll_create1() failed: %m");
	loop->sigfd = -1;
	sigemptyset(&loop->sigmask);
	loop->now = event_clock_ms();
	return loop;
}

/* event_reap: free what was removed during the round that just ended. */
static void event_reap(struct event_loop *loop)
{
	while (loop->dead_ios != NULL) {
		struct event_io *io = loop->dead_ios;
		loop->dead_ios = io->next_dead;
		free(io);
	}
	while (loop->dead_timers != NULL) {
		struct event_timer *t = loop->dead_timers;
		loop->dead_timers = t->next_dead;
		free(t);
	}
}

/* event_loop_free: close the loop. Handlers still registered are reported,
 * not freed: their owners hold pointers to them. The signal mask is left
 * as it is (see event_signal_unblock). */
void event_loop_free(struct event_loop **loopp)
{
	struct event_loop *loop = *loopp;
	if (loop == NULL)
		return;
	*loopp = NULL;
	if (loop->sig_io != NULL) {
		loop->io_count++; /* event_signal_add did not count it */
		event_io_remove(&loop->sig_io);
	}
	if (loop->sigfd >= 0)
		close(loop->sigfd);
	event_reap(loop);
	if (loop->io_count > 0 || loop->heap_len > 0)
		msg_warn("event_loop_free: %u io handlers and %zu timers still registered",
			 loop->io_count, loop->heap_len);
	for (size_t i = 0; i < loop->heap_len; i++)
		loop->heap[i]->heap_index = TIMER_UNARMED;
	free(loop->heap);
	close(loop->epfd);
	free(loop);
}

/* event_now_ms: the monotonic clock now (a vDSO call, cheap). Reading it
 * fresh, not the round's start, keeps deadlines computed from it (idle
 * timeouts) from coming early after a long round. */
uint64_t event_now_ms(struct event_loop *loop)
{
	loop->now = event_clock_ms();
	return loop->now;
}

/* event_loop_stop: make event_loop_run return after this round. */
void event_loop_stop(struct event_loop *loop)
{
	loop->stop = true;
}

/* event_loop_run: dispatch until stopped. */
int event_loop_run(struct event_loop *loop)
{
	while (!loop->stop)
		event_loop_once(loop, -1);
	loop->stop = false;
	return 0;
}

/* --- timer heap, ordered by (when, seq) --- */

/* timer_before: heap order: earlier deadline, then earlier arming. */
static bool timer_before(const struct event_timer *a, const struct event_timer *b)
{
	return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

/* heap_place: put t at slot i and remember where it is. */
static void heap_place(struct event_loop *loop, size_t i, struct event_timer *t)
{
	loop->heap[i] = t;
	t->heap_index = i;
}

/* heap_sift_up: move the timer at i towards the root while it is earlier. */
static void heap_sift_up(struct event_loop *loop, size_t i)
{
	struct event_timer *t = loop->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!timer_before(t, loop->heap[parent]))
			break;
		heap_place(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_place(loop, i, t);
}

/* heap_sift_down: move the timer at i towards the leaves while it is later. */
static void heap_sift_down(struct event_loop *loop, size_t i)
{
	struct event_timer *t = loop->heap[i];
	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= loop->heap_len)
			break;
		if (child + 1 < loop->heap_len && timer_before(loop->heap[child + 1], loop->heap[child]))
			child++;
		if (!timer_before(loop->heap[child], t))
			break;
		heap_place(loop, i, loop->heap[child]);
		i = child;
	}
	heap_place(loop, i, t);
}

/* heap_insert: add an unarmed timer to the heap. */
static void heap_insert(struct event_loop *loop, struct event_timer *t)
{
	if (loop->heap_len == loop->heap_cap) {
		loop->heap_cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
		loop->heap = xreallocarray(loop->heap, loop->heap_cap, sizeof(*loop->heap));
	}
	heap_place(loop, loop->heap_len++, t);
	heap_sift_up(loop, t->heap_index);
}

/* heap_delete: take t out of the heap; it stays allocated. */
static void heap_delete(struct event_loop *loop, struct event_timer *t)
{
	size_t i = t->heap_index;
	if (i == TIMER_UNARMED)
		return;
	t->heap_index = TIMER_UNARMED;
	struct event_timer *last = loop->heap[--loop->heap_len];
	if (last == t)
		return;
	heap_place(loop, i, last);
	if (i > 0 && timer_before(last, loop->heap[(i - 1) / 2]))
		heap_sift_up(loop, i);
	else
		heap_sift_down(loop, i);
}

/* timer_arm: (re)insert t to fire msecs from the current clock. The clock
 * is read afresh so a timer armed late in a long round is not early. */
static void timer_arm(struct event_timer *t, unsigned msecs)
{
	struct event_loop *loop = t->loop;
	heap_delete(loop, t);
	t->when = event_clock_ms() + msecs;
	t->seq = loop->next_seq++;
	heap_insert(loop, t);
}

/* event_timer_add: a one-shot timer. After it fires it stays allocated
 * (unarmed) until event_timer_remove(); event_timer_reset re-arms it. */
struct event_timer *event_timer_add(struct event_loop *loop, unsigned msecs, event_timer_fn *fn,
				    void *ctx)
{
	struct event_timer *t = xcalloc(1, sizeof(*t));
	t->loop = loop;
	t->fn = fn;
	t->ctx = ctx;
	t->heap_index = TIMER_UNARMED;
	timer_arm(t, msecs);
	return t;
}

/* event_timer_reset: re-arm, whether pending or already fired. */
void event_timer_reset(struct event_timer *timer, unsigned msecs)
{
	if (timer->removed)
		msg_panic("event_timer_reset: timer already removed");
	timer_arm(timer, msecs);
}

/* event_timer_pending: whether the timer is armed and has not fired yet. */
bool event_timer_pending(const struct event_timer *timer)
{
	return timer->heap_index != TIMER_UNARMED;
}

/* event_timer_remove: disarm and free (after the round, if dispatching). */
void event_timer_remove(struct event_timer **timerp)
{
	struct event_timer *t = *timerp;
	if (t == NULL)
		return;
	*timerp = NULL;
	struct event_loop *loop = t->loop;
	heap_delete(loop, t);
	t->removed = true;
	if (loop->depth > 0) {
		t->next_dead = loop->dead_timers;
		loop->dead_timers = t;
	} else {
		free(t);
	}
}

/* event_fire_timers: call every timer due now that was armed before
 * first_new_seq (the round's start). */
static void event_fire_timers(struct event_loop *loop, uint64_t first_new_seq)
{
	while (loop->heap_len > 0) {
		struct event_timer *t = loop->heap[0];
		if (t->when > loop->now || t->seq >= first_new_seq)
			break;
		heap_delete(loop, t);
		loop->handlers_called++;
		t->fn(t->ctx);
	}
}

/* --- io --- */

/* event_epoll_mask: EVENT_* interest as epoll flags. */
static uint32_t event_epoll_mask(unsigned events)
{
	uint32_t mask = 0;
	if ((events & EVENT_READ) != 0)
		mask |= EPOLLIN | EPOLLRDHUP;
	if ((events & EVENT_WRITE) != 0)
		mask |= EPOLLOUT;
	return mask;
}

/* event_epoll_failed: out of memory or of epoll watches (fs.epoll.
 * max_user_watches) is the environment's fault; anything else is ours. */
static void event_epoll_failed(const char *op, int fd)
{
	if (errno == ENOMEM || errno == ENOSPC)
		msg_fatal("epoll_ctl(%s, %d) failed: %m", op, fd);
	msg_panic("epoll_ctl(%s, %d) failed: %m", op, fd);
}

/* event_io_add: register fd; EPOLLERR and EPOLLHUP come whatever events is. */
struct event_io *event_io_add(struct event_loop *loop, int fd, unsigned events, event_io_fn *fn,
			      void *ctx)
{
	struct event_io *io = xcalloc(1, sizeof(*io));
	io->loop = loop;
	io->fd = fd;
	io->events = events & (EVENT_READ | EVENT_WRITE);
	io->fn = fn;
	io->ctx = ctx;
	struct epoll_event ev = { .events = event_epoll_mask(io->events), .data.ptr = io };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		event_epoll_failed("ADD", fd);
	loop->io_count++;
	return io;
}

/* event_io_set: change what fd is watched for. */
void event_io_set(struct event_io *io, unsigned events)
{
	if (io->removed)
		msg_panic("event_io_set: io already removed");
	events &= EVENT_READ | EVENT_WRITE;
	if (events == io->events)
		return;
	io->events = events;
	struct epoll_event ev = { .events = event_epoll_mask(events), .data.ptr = io };
	if (epoll_ctl(io->loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		event_epoll_failed("MOD", io->fd);
}

/* event_io_remove: stop watching; call it before closing the fd, or a new
 * fd with the same number could lose its registration. */
void event_io_remove(struct event_io **iop)
{
	struct event_io *io = *iop;
	if (io == NULL)
		return;
	*iop = NULL;
	struct event_loop *loop = io->loop;
	/* EBADF/ENOENT: the owner already closed fd, which left the epoll set. */
	if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0 && errno != EBADF &&
	    errno != ENOENT)
		msg_panic("epoll_ctl(DEL, %d) failed: %m", io->fd);
	io->removed = true;
	loop->io_count--;
	if (loop->depth > 0) {
		io->next_dead = loop->dead_ios;
		loop->dead_ios = io;
	} else {
		free(io);
	}
}

/* event_io_dispatch: translate one epoll event and call the handler. A
 * hangup or error is also reported as readable to a reader, so that its
 * read() sees the EOF or the error. */
static void event_io_dispatch(struct event_loop *loop, struct event_io *io, uint32_t revents)
{
	unsigned events = 0;
	if ((revents & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0)
		events |= EVENT_READ;
	if ((revents & EPOLLOUT) != 0)
		events |= EVENT_WRITE;
	/* what the handler no longer asks for (changed earlier this round) is
	 * not reported */
	events &= io->events;
	if ((revents & (EPOLLERR | EPOLLHUP)) != 0)
		events |= EVENT_ERROR;
	if (events == 0)
		return;
	loop->handlers_called++;
	io->fn(io->ctx, io->fd, events);
}

/* event_loop_wait_ms: how long epoll_wait may sleep. */
static int event_loop_wait_ms(struct event_loop *loop, int timeout_ms)
{
	if (loop->heap_len == 0)
		return timeout_ms;
	uint64_t now = event_clock_ms();
	uint64_t when = loop->heap[0]->when;
	uint64_t delta = when > now ? when - now : 0;
	if (delta > INT32_MAX)
		delta = INT32_MAX;
	if (timeout_ms >= 0 && (uint64_t)timeout_ms < delta)
		return timeout_ms;
	return (int)delta;
}

/* event_loop_once: one round: wait, dispatch io, fire due timers. */
int event_loop_once(struct event_loop *loop, int timeout_ms)
{
	struct epoll_event evs[EVENT_BATCH];
	int wait_ms = event_loop_wait_ms(loop, timeout_ms);
	int n = epoll_wait(loop->epfd, evs, EVENT_BATCH, wait_ms);
	if (n < 0) {
		if (errno != EINTR)
			msg_fatal("epoll_wait() failed: %m");
		n = 0;
	}
	loop->now = event_clock_ms();
	uint64_t first_new_seq = loop->next_seq;
	int saved_calls = loop->handlers_called;
	loop->handlers_called = 0;
	loop->depth++;
	for (int i = 0; i < n; i++) {
		struct event_io *io = evs[i].data.ptr;
		if (!io->removed)
			event_io_dispatch(loop, io, evs[i].events);
	}
	event_fire_timers(loop, first_new_seq);
	int calls = loop->handlers_called;
	loop->handlers_called = saved_calls + calls;
	if (--loop->depth == 0)
		event_reap(loop);
	return calls;
}

/* --- signals --- */

/* event_signal_read: drain the signalfd and call each signal's handler. */
static void event_signal_read(void *ctx, int fd, unsigned events)
{
	struct event_loop *loop = ctx;
	struct signalfd_siginfo si;
	/* The io call itself was counted; count the handlers instead. */
	loop->handlers_called--;
	for (;;) {
		ssize_t n = read(fd, &si, sizeof(si));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				msg_fatal("read(signalfd) failed: %m");
			return;
		}
		if ((size_t)n != sizeof(si))
			msg_panic("read(signalfd) returned %zd bytes", n);
		int signo = (int)si.ssi_signo;
		if (signo <= 0 || signo >= _NSIG || loop->signals[signo].fn == NULL)
			continue;
		loop->handlers_called++;
		loop->signals[signo].fn(loop->signals[signo].ctx, signo);
	}
}

/* event_signal_add: block signo and deliver it via the loop; a second call
 * for the same signal replaces the handler. */
void event_signal_add(struct event_loop *loop, int signo, event_signal_fn *fn, void *ctx)
{
	if (signo <= 0 || signo >= _NSIG)
		msg_panic("event_signal_add: bad signal %d", signo);
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, signo);
	sigset_t old;
	if (sigprocmask(SIG_BLOCK, &one, &old) < 0)
		msg_fatal("sigprocmask() failed: %m");
	if (!loop->sigmask_saved) {
		loop->old_sigmask = old;
		loop->sigmask_saved = true;
	}
	sigaddset(&loop->sigmask, signo);
	loop->signals[signo].fn = fn;
	loop->signals[signo].ctx = ctx;
	int fd = signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		msg_fatal("signalfd() failed: %m");
	if (loop->sigfd < 0) {
		loop->sigfd = fd;
		loop->sig_io = event_io_add(loop, fd, EVENT_READ, event_signal_read, loop);
		/* the loop's own handler is not the owner's to remove */
		loop->io_count--;
	}
}

/* event_signal_unblock: restore the signal mask from before the first
 * event_signal_add, e.g. in a child between fork() and exec(), which
 * would otherwise inherit the blocked signals. */
void event_signal_unblock(struct event_loop *loop)
{
	if (loop->sigmask_saved && sigprocmask(SIG_SETMASK, &loop->old_sigmask, NULL) < 0)
		msg_fatal("sigprocmask() failed: %m");
}
