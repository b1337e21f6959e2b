/* master.h: the master daemon's shared state and its modules.
 *
 *   master.c          main(): options, daemon set-up, pid file, signals,
 *                     start-up, reload and shutdown
 *   master_service.c  services from master.cf: create, update on reload,
 *                     remove, the child command line
 *   master_listen.c   binding listeners: inet (interfaces x protocols),
 *                     unix sockets and fifos under queue_directory
 *   master_spawn.c    fork+exec of children, reaping, the throttle
 *   master_avail.c    the status pipes and the process creation policy
 *   master_wakeup.c   wakeup timers for fifo/unix services
 *   master_dirs.c     the queue directory layout
 *
 * Counting: a child counts against its service's maxproc from spawn until
 * it is reaped, except after a reload: children of the old configuration
 * ("retiring") finish their connections without being counted, so that new
 * children can start at once. */
#ifndef PETREL_MASTER_H
#define PETREL_MASTER_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "server/master_cf.h"
#include "server/master_proto.h"

struct event_loop;
struct event_io;
struct event_timer;

struct master_service {
	struct master_service *next;
	char *name;                 /* master.cf service field */
	enum master_cf_type type;
	char *host;                 /* inet: from "host:port", or NULL */
	char *port;                 /* inet: port number or name */
	bool is_private;
	char *path;                 /* daemon_directory/command */
	char **argv;                /* the child's command line */
	unsigned maxproc;           /* 0: no limit */
	unsigned wakeup;            /* seconds, 0: none */
	bool wakeup_conditional;
	char *local_path;           /* unix/fifo: private/NAME or public/NAME */
	char *listen_key;           /* what is bound, compared on reload */
	int listen_fds[MASTER_LISTEN_MAX];
	struct event_io *listen_io[MASTER_LISTEN_MAX];
	unsigned listen_count;
	bool listening;             /* the master watches the listeners */
	int status_fd[2];           /* [0] read by the master, [1] children's */
	struct event_io *status_io;
	unsigned total;             /* counted children */
	unsigned avail;             /* counted children that are idle */
	unsigned children;          /* all children, retiring ones too */
	bool throttled;
	struct event_timer *throttle_timer;
	struct event_timer *wakeup_timer;
	struct event_timer *bind_timer; /* retry a bind that failed at reload */
	bool used;                  /* some child has reported BUSY */
	bool removed;               /* gone from master.cf; waits for children */
	bool marked;                /* reload bookkeeping */
};

struct master_proc {
	struct master_proc *next;
	pid_t pid;
	struct master_service *serv;
	enum master_stat state;
	unsigned use_count;         /* BUSY reports */
	bool reported;              /* has sent a status record: started fine */
	bool retiring;              /* old configuration: not counted */
	bool killed;                /* we sent SIGTERM: no warning */
};

/* master.c */
extern struct event_loop *master_loop;
extern struct master_service *master_services;
extern struct master_proc *master_procs;
extern char *master_config_dir;  /* absolute */
extern bool master_foreground;   /* -d */
extern bool master_is_root;
extern bool master_stopping;     /* shutting down: start nothing */

/* master_service.c */
/* master_services_apply: make the running services match cf (start-up and
 * reload). At start-up any error is fatal; at reload the old services are
 * kept when the new configuration does not work. */
int master_services_apply(const struct master_cf *cf, bool reload, const char **error_r);
/* master_services_start: wakeup timers, listener watches, and one child
 * ahead for each inet service (after start-up and after a reload). */
void master_services_start(void);
/* master_service_free_removed: free a removed service once its last child
 * is gone. */
void master_service_free_removed(struct master_service *serv);
/* master_services_free: at exit, close and free everything. */
void master_services_free(void);

/* master_listen.c */
/* master_listen_key: the listener identity for e under the current
 * inet_interfaces/inet_protocols, or NULL and *error_r. Caller frees. */
char *master_listen_key(const struct master_cf_entry *e, const char **error_r);
/* master_listen_open: bind serv's listeners into serv->listen_fds. */
int master_listen_open(struct master_service *serv, const char **error_r);
/* master_listen_close: close the listeners (and remove a socket or fifo
 * file when unlink_path). */
void master_listen_close(struct master_service *serv, bool unlink_path);

/* master_spawn.c */
void master_spawn(struct master_service *serv);
/* master_reap: collect every dead child (SIGCHLD). */
void master_reap(void);
/* master_signal_children: send signo to the children of serv (NULL: all);
 * SIGHUP makes them retiring, SIGTERM marks them killed. */
void master_signal_children(struct master_service *serv, int signo);
/* master_stop_children: SIGTERM everyone, wait up to timeout_ms, then
 * SIGKILL what is left and reap it. */
void master_stop_children(unsigned timeout_ms);
struct master_proc *master_proc_find(pid_t pid);
void master_throttle_clear(struct master_service *serv);

/* master_avail.c */
int master_status_open(struct master_service *serv, const char **error_r);
void master_status_close(struct master_service *serv);
/* master_status_drain: read every pending status record (before reaping,
 * so that a child's last BUSY is seen before its death). */
void master_status_drain(void);
/* master_avail_update: watch the listeners when a connection would find no
 * idle child; prespawn also starts a child at once in that case. */
void master_avail_update(struct master_service *serv, bool prespawn);
void master_avail_stop(struct master_service *serv);

/* master_wakeup.c */
void master_wakeup_start(struct master_service *serv);
/* master_wakeup_soon: the next trigger within a second (a resident child
 * died), so that its replacement starts without waiting a whole period. */
void master_wakeup_soon(struct master_service *serv);
void master_wakeup_stop(struct master_service *serv);

/* master_dirs.c */
/* master_dirs_create: queue_directory and its subdirectories. */
void master_dirs_create(const char *queue_dir);
/* master_dirs_clean_temp: drop unfinished queue files (start-up only). */
void master_dirs_clean_temp(const char *queue_dir);

#endif
