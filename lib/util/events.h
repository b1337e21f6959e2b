/* events.h: the event loop (epoll), timers and signals for every daemon.
 *
 * One loop per process. Callbacks may add or remove any io, timer or signal
 * handler, including their own, while the loop dispatches: removal takes
 * effect at once (a removed handler is never called again) and memory is
 * reclaimed after the dispatch round. Timers are one-shot, millisecond
 * resolution, on CLOCK_MONOTONIC. Signals arrive through signalfd and are
 * dispatched like io, so handlers run in normal context. */
#ifndef PETREL_EVENTS_H
#define PETREL_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

enum {
	EVENT_READ = 1,  /* readable, or peer closed */
	EVENT_WRITE = 2, /* writable */
	EVENT_ERROR = 4, /* EPOLLERR/EPOLLHUP; always reported, never asked for */
};

struct event_loop;
struct event_io;
struct event_timer;

typedef void event_io_fn(void *ctx, int fd, unsigned events);
typedef void event_timer_fn(void *ctx);
typedef void event_signal_fn(void *ctx, int signo);

struct event_loop *event_loop_create(void);
void event_loop_free(struct event_loop **loop);
/* event_loop_run: dispatch until event_loop_stop(); returns 0. */
int event_loop_run(struct event_loop *loop);
void event_loop_stop(struct event_loop *loop);
/* event_loop_once: one round, waiting at most timeout_ms (-1: until an
 * event). Returns the number of handlers called. */
int event_loop_once(struct event_loop *loop, int timeout_ms);
/* event_now_ms: monotonic milliseconds, read now. */
uint64_t event_now_ms(struct event_loop *loop);

/* event_io_add: watch fd for events (EVENT_READ|EVENT_WRITE, or 0 for
 * errors only: a pipe's write end reports EVENT_ERROR when the reader
 * closes). The loop does not own fd. A handler watching for EVENT_READ also
 * gets EVENT_READ with EVENT_ERROR, so its read() sees the EOF or error.
 * One event_io per fd. */
struct event_io *event_io_add(struct event_loop *loop, int fd, unsigned events,
			      event_io_fn *fn, void *ctx);
void event_io_set(struct event_io *io, unsigned events);
/* event_io_remove: call before closing fd (epoll tracks the open file,
 * not the number). An fd whose peer is gone keeps reporting EVENT_ERROR
 * (level-triggered) until it is removed. */
void event_io_remove(struct event_io **io);

/* event_timer_add: call fn once after msecs. A timer that has fired stays
 * allocated (unarmed) until event_timer_remove(), so the owner's pointer
 * stays valid: reset it to fire again, remove it when done. */
struct event_timer *event_timer_add(struct event_loop *loop, unsigned msecs,
				    event_timer_fn *fn, void *ctx);
/* event_timer_reset: re-arm to fire msecs from now. */
void event_timer_reset(struct event_timer *timer, unsigned msecs);
void event_timer_remove(struct event_timer **timer);
/* event_timer_pending: true while armed and not yet fired. */
bool event_timer_pending(const struct event_timer *timer);

/* event_signal_add: block signo and deliver it through the loop. */
void event_signal_add(struct event_loop *loop, int signo, event_signal_fn *fn, void *ctx);
/* event_signal_unblock: restore the signal mask from before the first
 * event_signal_add; a child calls it between fork() and exec(), since the
 * blocked mask is inherited across exec. */
void event_signal_unblock(struct event_loop *loop);

#endif
