/* master_service.c: the running services, kept in step with master.cf.
 *
 * At start-up every entry becomes a service with its listeners and status
 * pipe. At a reload the new master.cf is matched by service name and
 * type: a service whose listener is unchanged keeps its sockets; a changed
 * one is rebound; new ones start; removed ones close their listeners and
 * let their children finish. Every existing child gets SIGHUP (finish your
 * connections, then exit) and stops counting against maxproc, so new
 * children, which read the new configuration, start right away. */
#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/config.h"
#include "master/master.h"
#include "util/alloc.h"
#include "util/events.h"
#include "util/msg.h"
#include "util/str.h"

/* Seconds between attempts to bind a listener that failed at a reload. */
#define MASTER_BIND_RETRY_MS 1000

/* master_service_argv: COMMAND -n NAME -t TYPE [-u] [-r] [-v] [-o n=v]...
 * -c CONFIG_DIR [args...], as server/master_proto.h says. */
static char **master_service_argv(const struct master_cf_entry *e)
{
	size_t max = 12 + 2 * e->override_count + e->arg_count;
	char **argv = xcalloc(max, sizeof(char *));
	size_t n = 0;
	argv[n++] = xstrdup(e->command);
	argv[n++] = xstrdup("-n");
	argv[n++] = xstrdup(e->service);
	argv[n++] = xstrdup("-t");
	argv[n++] = xstrdup(master_cf_type_name(e->type));
	if (master_is_root && e->unpriv)
		argv[n++] = xstrdup(MASTER_ARG_UNPRIV);
	if (master_is_root && e->chroot)
		argv[n++] = xstrdup(MASTER_ARG_CHROOT);
	if (msg_verbose > 0 || e->verbose)
		argv[n++] = xstrdup("-v");
	for (size_t i = 0; i < e->override_count; i++) {
		struct str o = STR_INIT;
		str_printf(&o, "%s=%s", e->overrides[i].name, e->overrides[i].value);
		argv[n++] = xstrdup("-o");
		argv[n++] = str_steal(&o);
	}
	argv[n++] = xstrdup("-c");
	argv[n++] = xstrdup(master_config_dir);
	for (size_t i = 0; i < e->arg_count; i++)
		argv[n++] = xstrdup(e->args[i]);
	argv[n] = NULL;
	return argv;
}

/* master_service_argv_free: free a command line. */
static void master_service_argv_free(char ***argv)
{
	if (*argv == NULL)
		return;
	for (char **a = *argv; *a != NULL; a++)
		free(*a);
	free(*argv);
	*argv = NULL;
}

/* master_service_configure: everything a reload may change but the
 * listeners. */
static void master_service_configure(struct master_service *serv, const struct master_cf_entry *e)
{
	struct str path = STR_INIT;
	str_printf(&path, "%s/%s", config_str("daemon_directory"), e->command);
	free(serv->path);
	serv->path = str_steal(&path);
	master_service_argv_free(&serv->argv);
	serv->argv = master_service_argv(e);
	serv->maxproc = e->maxproc;
	serv->wakeup = e->wakeup;
	serv->wakeup_conditional = e->wakeup_conditional;
}

/* master_service_set_listener: the fields master_listen_open() reads. */
static void master_service_set_listener(struct master_service *serv,
					const struct master_cf_entry *e, char *key)
{
	free(serv->host);
	free(serv->port);
	free(serv->local_path);
	free(serv->listen_key);
	serv->host = e->host != NULL ? xstrdup(e->host) : NULL;
	serv->port = e->port != NULL ? xstrdup(e->port) : NULL;
	serv->is_private = e->is_private;
	serv->local_path = NULL;
	if (e->type != MASTER_CF_INET) {
		struct str p = STR_INIT;
		str_printf(&p, "%s/%s", e->is_private ? "private" : "public", e->service);
		serv->local_path = str_steal(&p);
	}
	serv->listen_key = key;
}

/* master_service_create: a new service (listeners come later). */
static struct master_service *master_service_create(const struct master_cf_entry *e)
{
	struct master_service *serv = xcalloc(1, sizeof(*serv));
	serv->name = xstrdup(e->service);
	serv->type = e->type;
	serv->status_fd[0] = serv->status_fd[1] = -1;
	master_service_configure(serv, e);
	return serv;
}

/* master_service_free: only once no child refers to it. */
static void master_service_free(struct master_service *serv)
{
	if (serv->children != 0)
		msg_panic("master_service_free: %s still has %u children", serv->name,
			  serv->children);
	master_listen_close(serv, serv->type != MASTER_CF_INET);
	master_status_close(serv);
	master_wakeup_stop(serv);
	master_throttle_clear(serv);
	event_timer_remove(&serv->bind_timer);
	master_service_argv_free(&serv->argv);
	free(serv->name);
	free(serv->host);
	free(serv->port);
	free(serv->path);
	free(serv->local_path);
	free(serv->listen_key);
	free(serv);
}

/* master_service_free_removed: unlink and free once childless. */
void master_service_free_removed(struct master_service *serv)
{
	if (!serv->removed || serv->children > 0)
		return;
	for (struct master_service **sp = &master_services; *sp != NULL; sp = &(*sp)->next) {
		if (*sp == serv) {
			*sp = serv->next;
			break;
		}
	}
	msg_debug("service %s/%s: last child gone", serv->name, master_cf_type_name(serv->type));
	master_service_free(serv);
}

/* master_services_free: everything, at exit. */
void master_services_free(void)
{
	while (master_services != NULL) {
		struct master_service *serv = master_services;
		master_services = serv->next;
		serv->children = 0;
		master_service_free(serv);
	}
}

/* master_service_bind_retry: a listener could not be bound at a reload
 * (typically an old child still held the port); try again. */
static void master_service_bind_retry(void *ctx)
{
	struct master_service *serv = ctx;
	const char *error;
	if (master_listen_open(serv, &error) < 0) {
		event_timer_reset(serv->bind_timer, MASTER_BIND_RETRY_MS);
		return;
	}
	msg_info("service %s: listening again", serv->name);
	event_timer_remove(&serv->bind_timer);
	master_avail_update(serv, serv->type == MASTER_CF_INET);
}

/* master_service_bind: bind serv's listeners; at a reload a failure is a
 * warning and a retry, at start-up an error. */
static int master_service_bind(struct master_service *serv, bool reload, const char **error_r)
{
	if (master_listen_open(serv, error_r) == 0)
		return 0;
	if (!reload)
		return -1;
	msg_warn("service %s: %s -- will retry", serv->name, *error_r);
	if (serv->bind_timer == NULL)
		serv->bind_timer = event_timer_add(master_loop, MASTER_BIND_RETRY_MS,
						   master_service_bind_retry, serv);
	return 0;
}

/* master_service_find: the live service with this name and type. */
static struct master_service *master_service_find(const char *name, enum master_cf_type type)
{
	for (struct master_service *s = master_services; s != NULL; s = s->next)
		if (!s->removed && s->type == type && strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

/* master_service_remove: gone from master.cf: stop listening, let the
 * children finish. */
static void master_service_remove(struct master_service *serv)
{
	msg_debug("service %s/%s removed", serv->name, master_cf_type_name(serv->type));
	serv->removed = true;
	master_listen_close(serv, serv->type != MASTER_CF_INET);
	event_timer_remove(&serv->bind_timer);
	master_wakeup_stop(serv);
	master_throttle_clear(serv);
	master_signal_children(serv, SIGHUP);
}

/* master_services_keys: every entry's listener key; any error fails the
 * whole configuration. */
static char **master_services_keys(const struct master_cf *cf, const char **error_r)
{
	char **keys = xcalloc(cf->count + 1, sizeof(char *));
	for (size_t i = 0; i < cf->count; i++) {
		if ((keys[i] = master_listen_key(&cf->entries[i], error_r)) == NULL) {
			for (size_t j = 0; j < i; j++)
				free(keys[j]);
			free(keys);
			return NULL;
		}
	}
	return keys;
}

/* master_services_order: the list in master.cf order, removed services
 * (still draining) at the end. */
static void master_services_order(struct master_service **matched, size_t count)
{
	struct master_service *head = NULL, **tail = &head;
	for (size_t i = 0; i < count; i++) {
		*tail = matched[i];
		tail = &matched[i]->next;
	}
	for (struct master_service *s = master_services, *next; s != NULL; s = next) {
		next = s->next;
		if (s->removed) {
			*tail = s;
			tail = &s->next;
		}
	}
	*tail = NULL;
	master_services = head;
}

/* master_services_rebind: close changed listeners first (another service
 * may take over a port), then bind. */
static int master_services_rebind(const struct master_cf *cf, struct master_service **matched,
				  char **keys, bool reload, const char **error_r)
{
	for (size_t i = 0; i < cf->count; i++) {
		struct master_service *s = matched[i];
		if (s->listen_key != NULL && strcmp(s->listen_key, keys[i]) != 0) {
			master_listen_close(s, s->type != MASTER_CF_INET);
			event_timer_remove(&s->bind_timer);
		}
	}
	for (size_t i = 0; i < cf->count; i++) {
		struct master_service *s = matched[i];
		bool same = s->listen_key != NULL && strcmp(s->listen_key, keys[i]) == 0;
		master_service_set_listener(s, &cf->entries[i], keys[i]);
		keys[i] = NULL;
		if (!same && master_service_bind(s, reload, error_r) < 0)
			return -1;
		if (s->status_fd[0] < 0 && master_status_open(s, error_r) < 0)
			return -1;
	}
	return 0;
}

/* master_services_apply: match, reconfigure, remove, rebind. */
int master_services_apply(const struct master_cf *cf, bool reload, const char **error_r)
{
	char **keys = master_services_keys(cf, error_r);
	if (keys == NULL)
		return -1;
	struct master_service **matched = xcalloc(cf->count + 1, sizeof(*matched));
	for (struct master_service *s = master_services; s != NULL; s = s->next)
		s->marked = !s->removed;
	for (size_t i = 0; i < cf->count; i++) {
		const struct master_cf_entry *e = &cf->entries[i];
		matched[i] = master_service_find(e->service, e->type);
		if (matched[i] != NULL) {
			matched[i]->marked = false;
			master_signal_children(matched[i], SIGHUP);
			master_throttle_clear(matched[i]);
			master_wakeup_stop(matched[i]);
			master_service_configure(matched[i], e);
		} else {
			matched[i] = master_service_create(e);
		}
	}
	for (struct master_service *s = master_services; s != NULL; s = s->next)
		if (s->marked)
			master_service_remove(s);
	master_services_order(matched, cf->count);
	int ret = master_services_rebind(cf, matched, keys, reload, error_r);
	for (size_t i = 0; i < cf->count; i++)
		free(keys[i]);
	free(keys);
	free(matched);
	for (struct master_service *s = master_services, *next; s != NULL; s = next) {
		next = s->next;
		if (s->removed)
			master_service_free_removed(s);
	}
	if (ret == 0 && reload)
		master_services_start();
	return ret;
}

/* master_services_start: set every live service going. */
void master_services_start(void)
{
	for (struct master_service *s = master_services; s != NULL; s = s->next) {
		if (s->removed)
			continue;
		master_wakeup_start(s);
		master_avail_update(s, s->type == MASTER_CF_INET);
	}
}
