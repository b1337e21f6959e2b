/* master_wakeup.c: periodic wakeup triggers for fifo and unix services.
 *
 * A service with a wakeup time gets the byte 'W' every that many seconds:
 * written into its fifo, sent to its datagram socket, or written over a
 * connection to its stream socket (which also makes the master start a
 * child when none is running). A "N?" wakeup starts only once the service
 * has been used. A trigger that cannot be delivered at once is dropped:
 * the next one follows soon, and the master never blocks. When a child of
 * such a service dies abnormally (kill -9, a crash), the next trigger goes
 * out within MASTER_WAKEUP_RESTART_MS: qmgr and pickup are resident, and
 * work waiting in their queues must not wait for the next period to get a
 * new process (the delay keeps a daemon that crashes at every start from
 * being restarted in a tight loop). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "master/master.h"
#include "util/events.h"
#include "util/fsutil.h"
#include "util/msg.h"
#include "util/str.h"

/* A resident child died: its replacement's trigger goes out this soon. */
#define MASTER_WAKEUP_RESTART_MS 1000

/* master_wakeup_socket: send the trigger over a unix socket. */
static int master_wakeup_socket(const char *path, int socktype)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (!str_copy(sun.sun_path, sizeof(sun.sun_path), path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = socket(AF_UNIX, socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	char c = MASTER_TRIGGER_WAKEUP;
	int ret = -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 &&
	    send(fd, &c, 1, MSG_NOSIGNAL) == 1)
		ret = 0;
	int saved = errno;
	close(fd);
	errno = saved;
	return ret;
}

/* master_wakeup_event: deliver one trigger and re-arm. */
static void master_wakeup_event(void *ctx)
{
	struct master_service *serv = ctx;
	int ret = -1;
	if (serv->listen_count == 0)
		errno = ENOTCONN;
	else if (serv->type == MASTER_CF_FIFO)
		ret = fifo_trigger(serv->local_path, MASTER_TRIGGER_WAKEUP);
	else
		ret = master_wakeup_socket(serv->local_path, serv->type == MASTER_CF_UNIX_DGRAM ?
							     SOCK_DGRAM : SOCK_STREAM);
	if (ret < 0 && errno != EAGAIN)
		msg_warn("service %s: wakeup trigger failed: %m", serv->name);
	else
		msg_debug("service %s: wakeup sent", serv->name);
	event_timer_reset(serv->wakeup_timer, serv->wakeup * 1000u);
}

/* master_wakeup_start: arm the timer when the service has one. */
void master_wakeup_start(struct master_service *serv)
{
	if (serv->wakeup == 0 || serv->removed || serv->type == MASTER_CF_INET ||
	    serv->wakeup_timer != NULL || (serv->wakeup_conditional && !serv->used))
		return;
	/* The first trigger goes out at once, as Postfix's master does: qmgr
	 * and pickup start with the master and look at their queues. */
	serv->wakeup_timer = event_timer_add(master_loop, 0, master_wakeup_event, serv);
}

/* master_wakeup_soon: send the next trigger within a second (a resident
 * child died); nothing when the service has no wakeup timer or its period
 * is shorter anyway. */
void master_wakeup_soon(struct master_service *serv)
{
	if (serv->wakeup_timer == NULL || serv->removed ||
	    serv->wakeup <= MASTER_WAKEUP_RESTART_MS / 1000)
		return;
	msg_debug("service %s: wakeup soon", serv->name);
	event_timer_reset(serv->wakeup_timer, MASTER_WAKEUP_RESTART_MS);
}

/* master_wakeup_stop: disarm and free the timer. */
void master_wakeup_stop(struct master_service *serv)
{
	event_timer_remove(&serv->wakeup_timer);
}
