/* master_proto.h: the contract between master(8) and the programs it runs.
 *
 * This header is the only place that both sides read. The master fork+execs
 * every child (never a bare fork) as
 *
 *     daemon_directory/COMMAND -n SERVICE -t TYPE [-u] [-r] [-v]
 *                              [-o name=value ...] -c CONFIG_DIR [args...]
 *
 * where SERVICE and TYPE are the first two master.cf fields, -u asks the
 * child to drop to mail_owner, -r to chroot to queue_directory (both only
 * when the master runs as root), -v raises verbosity, each -o overrides a
 * main.cf parameter for this service, and CONFIG_DIR is absolute. Any
 * arguments after the command in master.cf follow.
 *
 * Descriptors (every other descriptor is closed on exec):
 *   0, 1, 2                  /dev/null, or the master's stderr under "-d"
 *   MASTER_STATUS_FD         write end of the service's status pipe, shared
 *                            by all children of the service
 *   MASTER_LISTEN_FD + i     listener i, 0 <= i < PETREL_LISTEN_FDS, already
 *                            bound, listening and non-blocking
 *
 * Status: a child writes one struct master_status record (pid and state)
 * with a single write(2) each time its state changes. The record is smaller
 * than PIPE_BUF, so records from many children never interleave. A child
 * starts out counted as AVAIL and says AVAIL itself once its initialization
 * is done (configuration, privileges, post_init); it says BUSY when it has
 * at least one client
 * (the master then starts another child, within maxproc, so that the next
 * connection does not wait for an exec), AVAIL when it is idle again, and
 * EXITING once it has stopped accepting for good (max_use reached, max_idle,
 * a reload) and before any exit. A child that exits before its first record
 * counts as a failed start (a broken command or configuration): the master
 * then throttles the service for service_throttle_time.
 *
 * Master death: the kernel kills every child with the master
 * (PR_SET_PDEATHSIG SIGKILL, set before exec and again after the
 * privilege drop), so no orphan works on the queue beside the children of
 * the next master; every step of the mail path survives kill -9. As a
 * backstop the read end of the status pipe closes and the child's
 * MASTER_STATUS_FD reports an error (EPOLLERR on a pipe's write end): a
 * child that watches it exits at once.
 *
 * Signals from the master: SIGHUP means "configuration reloaded": stop
 * accepting, finish the connections in progress, exit. SIGTERM means exit
 * now. */
#ifndef PETREL_MASTER_PROTO_H
#define PETREL_MASTER_PROTO_H

#include <stdint.h>

/* Fixed descriptor numbers in the child. */
#define MASTER_STATUS_FD 3
#define MASTER_LISTEN_FD 4
/* At most this many listeners per service (addresses x families). */
#define MASTER_LISTEN_MAX 64

/* Environment the master sets in every child. */
#define MASTER_ENV_LISTEN_FDS "PETREL_LISTEN_FDS"   /* decimal listener count */
#define MASTER_ENV_MASTER_PID "PETREL_MASTER_PID"   /* decimal pid of the master */
#define MASTER_ENV_LOG_STDERR "PETREL_LOG_STDERR"   /* "1": master runs with -d */

/* Child command-line flags that only the master sets. */
#define MASTER_ARG_UNPRIV "-u" /* drop privileges to mail_owner */
#define MASTER_ARG_CHROOT "-r" /* chroot to queue_directory */

/* Status record states. */
enum master_stat {
	MASTER_STAT_AVAIL = 1,   /* idle: no clients */
	MASTER_STAT_BUSY = 2,    /* serving at least one client */
	MASTER_STAT_EXITING = 3, /* accepts no more; exits when its clients are done */
};

/* Version 1 of the record; the magic makes a stray writer or a future
 * format show up as a warning rather than as a wrong state. */
#define MASTER_STATUS_MAGIC 0x50535431u /* "PST1" */

struct master_status {
	uint32_t magic;  /* MASTER_STATUS_MAGIC */
	int32_t pid;     /* the child's pid */
	int32_t status;  /* enum master_stat */
};

/* Listener transport names, as in master.cf's type field. */
#define MASTER_TYPE_INET "inet"
#define MASTER_TYPE_UNIX "unix"
#define MASTER_TYPE_UNIX_DGRAM "unix-dgram"
#define MASTER_TYPE_FIFO "fifo"

/* The byte a wakeup timer writes to a fifo or unix service. */
#define MASTER_TRIGGER_WAKEUP 'W'

/* Where the master keeps its pid (relative to queue_directory). */
#define MASTER_PID_FILE "pid/master.pid"

#endif
