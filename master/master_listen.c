/* master_listen.c: the master binds every listener itself.
 *
 * inet services listen on each address of inet_interfaces ("all": the
 * wildcard, "loopback-only": 127.0.0.1 and ::1, else the listed addresses
 * or names) for each protocol of inet_protocols ("all", "ipv4", "ipv6"),
 * or only on the host of a "host:port" service. IPv6 sockets are
 * IPV6_V6ONLY so that the wildcards of both families coexist. With
 * inet_protocols = all, IPv6 is left out (once, with a note) when the host
 * has none. unix services are sockets private/NAME or public/NAME under
 * queue_directory (the master's working directory), fifo services fifos.
 * A socket or fifo left over from an earlier master is removed first: we
 * hold the pid file lock, so nobody else owns it. Every listener is
 * non-blocking and close-on-exec (master_spawn gives it to children). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "mail/config.h"
#include "master/master.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

#define MASTER_LISTEN_BACKLOG 511

static char master_listen_error[512];

struct master_addrs {
	struct sockaddr_storage addr[MASTER_LISTEN_MAX];
	socklen_t len[MASTER_LISTEN_MAX];
	unsigned count;
};

/* master_listen_fail: format an error into the module's buffer. */
static int master_listen_fail(const char **error_r, const char *fmt, ...) ATTR_FORMAT(2, 3);
static int master_listen_fail(const char **error_r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(master_listen_error, sizeof(master_listen_error), fmt, ap);
	va_end(ap);
	*error_r = master_listen_error;
	return -1;
}

/* master_listen_ipv6_works: whether this host can bind ::1 (probed once). */
static bool master_listen_ipv6_works(void)
{
	static int works = -1;
	if (works >= 0)
		return works;
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	works = fd >= 0 && bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
	if (fd >= 0)
		close(fd);
	if (!works)
		msg_info("IPv6 is not available on this host: listening on IPv4 only");
	return works;
}

/* master_listen_protocols: which families inet_protocols asks for. */
static int master_listen_protocols(bool *v4, bool *v6, const char **error_r)
{
	const char *const *list = config_list("inet_protocols");
	*v4 = *v6 = false;
	for (; *list != NULL; list++) {
		if (strcmp(*list, "all") == 0) {
			*v4 = true;
			*v6 = master_listen_ipv6_works();
		} else if (strcmp(*list, "ipv4") == 0) {
			*v4 = true;
		} else if (strcmp(*list, "ipv6") == 0) {
			*v6 = true;
		} else {
			return master_listen_fail(error_r, "inet_protocols: unknown protocol \"%s\"",
						  *list);
		}
	}
	if (!*v4 && !*v6)
		return master_listen_fail(error_r, "inet_protocols: no protocol enabled");
	return 0;
}

/* master_listen_add: append one address with port, skipping duplicates. */
static int master_listen_add(struct master_addrs *a, const struct sockaddr *sa, socklen_t len,
			     in_port_t port, const char **error_r)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, sa, len);
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = port;
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = port;
	for (unsigned i = 0; i < a->count; i++)
		if (a->len[i] == len && memcmp(&a->addr[i], &ss, len) == 0)
			return 0;
	if (a->count == MASTER_LISTEN_MAX)
		return master_listen_fail(error_r, "more than %d listen addresses",
					  MASTER_LISTEN_MAX);
	a->addr[a->count] = ss;
	a->len[a->count] = len;
	a->count++;
	return 0;
}

/* master_listen_host: resolve one inet_interfaces item (or a service's
 * host) into addresses of the enabled families. */
static int master_listen_host(struct master_addrs *a, const char *item, bool v4, bool v6,
			      in_port_t port, const char **error_r)
{
	char host[256];
	size_t len = strlen(item);
	if (len >= 2 && item[0] == '[' && item[len - 1] == ']') {
		item++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(host))
		return master_listen_fail(error_r, "bad interface address \"%s\"", item);
	memcpy(host, item, len);
	host[len] = '\0';
	struct addrinfo hints = { .ai_family = v4 && v6 ? AF_UNSPEC : v4 ? AF_INET : AF_INET6,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	struct addrinfo *res;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0)
		return master_listen_fail(error_r, "bad hostname or network address: %s: %s", host,
					  gai_strerror(rc));
	int ret = 0;
	for (struct addrinfo *ai = res; ai != NULL && ret == 0; ai = ai->ai_next) {
		if ((ai->ai_family == AF_INET && v4) || (ai->ai_family == AF_INET6 && v6))
			ret = master_listen_add(a, ai->ai_addr, ai->ai_addrlen, port, error_r);
	}
	freeaddrinfo(res);
	return ret;
}

/* master_listen_port: a number or an /etc/services name. */
static int master_listen_port(const char *port, in_port_t *out, const char **error_r)
{
	char *end;
	unsigned long n = strtoul(port, &end, 10);
	if (*port != '\0' && *end == '\0' && n >= 1 && n <= 65535) {
		*out = htons((uint16_t)n);
		return 0;
	}
	struct servent *se = getservbyname(port, "tcp");
	if (se == NULL)
		return master_listen_fail(error_r, "unknown service port \"%s\"", port);
	*out = (in_port_t)se->s_port;
	return 0;
}

/* master_listen_inet_addrs: every address an inet entry listens on. */
static int master_listen_inet_addrs(const char *service, const char *host, const char *port_name,
				    struct master_addrs *a, const char **error_r)
{
	bool v4 = false, v6 = false;
	in_port_t port = 0;
	a->count = 0;
	if (master_listen_protocols(&v4, &v6, error_r) < 0 ||
	    master_listen_port(port_name, &port, error_r) < 0)
		return -1;
	if (host != NULL)
		return master_listen_host(a, host, v4, v6, port, error_r);
	for (const char *const *list = config_list("inet_interfaces"); *list != NULL; list++) {
		int ret;
		if (strcmp(*list, "all") == 0) {
			ret = v4 ? master_listen_host(a, "0.0.0.0", true, false, port, error_r) : 0;
			if (ret == 0 && v6)
				ret = master_listen_host(a, "::", false, true, port, error_r);
		} else if (strcmp(*list, "loopback-only") == 0) {
			ret = v4 ? master_listen_host(a, "127.0.0.1", true, false, port, error_r) : 0;
			if (ret == 0 && v6)
				ret = master_listen_host(a, "::1", false, true, port, error_r);
		} else {
			ret = master_listen_host(a, *list, v4, v6, port, error_r);
		}
		if (ret < 0)
			return -1;
	}
	if (a->count == 0)
		return master_listen_fail(error_r, "service %s: no address to listen on (check "
					  "inet_interfaces and inet_protocols)", service);
	return 0;
}

/* master_listen_addr_text: "127.0.0.1 port 25" for logs and keys. */
static void master_listen_addr_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		port = ntohs(sin6->sin6_port);
	}
	snprintf(buf, size, "%s port %u", host, port);
}


/* master_listen_key: "inet,ADDR port P,..." or "unix private/NAME". */
char *master_listen_key(const struct master_cf_entry *e, const char **error_r)
{
	struct str key = STR_INIT;
	str_printf(&key, "%s", master_cf_type_name(e->type));
	if (e->type == MASTER_CF_INET) {
		struct master_addrs a;
		if (master_listen_inet_addrs(e->service, e->host, e->port, &a, error_r) < 0) {
			str_deinit(&key);
			return NULL;
		}
		for (unsigned i = 0; i < a.count; i++) {
			char text[INET6_ADDRSTRLEN + 16];
			master_listen_addr_text(&a.addr[i], text, sizeof(text));
			str_printf(&key, ",%s", text);
		}
	} else {
		str_printf(&key, " %s/%s", e->is_private ? "private" : "public", e->service);
	}
	return str_steal(&key);
}

/* master_listen_mail_owner: chown a socket or fifo to mail_owner (root
 * only), so that unprivileged children can use it. */
static int master_listen_chown(int fd, const char *path, const char **error_r)
{
	if (!master_is_root)
		return 0;
	const char *owner = config_str("mail_owner");
	struct passwd *pw = getpwnam(owner);
	if (pw == NULL)
		return master_listen_fail(error_r, "mail_owner %s: no such user", owner);
	if (fd >= 0 ? fchown(fd, pw->pw_uid, pw->pw_gid) < 0 :
		      chown(path, pw->pw_uid, pw->pw_gid) < 0)
		return master_listen_fail(error_r, "chown(%s) failed: %s", path, strerror(errno));
	return 0;
}

/* master_listen_inet: one socket per address. */
static int master_listen_inet(struct master_service *serv, const char **error_r)
{
	struct master_addrs a;
	if (master_listen_inet_addrs(serv->name, serv->host, serv->port, &a, error_r) < 0)
		return -1;
	for (unsigned i = 0; i < a.count; i++) {
		char text[INET6_ADDRSTRLEN + 16];
		int on = 1;
		master_listen_addr_text(&a.addr[i], text, sizeof(text));
		int fd = socket(a.addr[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return master_listen_fail(error_r, "socket for %s failed: %s", text,
						  strerror(errno));
		serv->listen_fds[serv->listen_count++] = fd;
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
		    (a.addr[i].ss_family == AF_INET6 &&
		     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0))
			return master_listen_fail(error_r, "setsockopt for %s failed: %s", text,
						  strerror(errno));
		if (bind(fd, (struct sockaddr *)&a.addr[i], a.len[i]) < 0)
			return master_listen_fail(error_r, "bind %s: %s", text, strerror(errno));
		if (listen(fd, MASTER_LISTEN_BACKLOG) < 0)
			return master_listen_fail(error_r, "listen %s: %s", text, strerror(errno));
	}
	return 0;
}

/* master_listen_clear_path: remove what an earlier master left at path;
 * anything but a socket or fifo there is an error. */
static int master_listen_clear_path(const char *path, const char **error_r)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 :
		       master_listen_fail(error_r, "lstat(%s) failed: %s", path, strerror(errno));
	if (!S_ISSOCK(st.st_mode) && !S_ISFIFO(st.st_mode))
		return master_listen_fail(error_r, "%s exists and is not a socket or fifo", path);
	if (unlink(path) < 0)
		return master_listen_fail(error_r, "unlink(%s) failed: %s", path, strerror(errno));
	msg_debug("removed stale %s", path);
	return 0;
}

/* master_listen_unix: a stream or datagram socket in private/ or public/. */
static int master_listen_unix(struct master_service *serv, int socktype, const char **error_r)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (!str_copy(sun.sun_path, sizeof(sun.sun_path), serv->local_path))
		return master_listen_fail(error_r, "socket name too long: %s", serv->local_path);
	if (master_listen_clear_path(serv->local_path, error_r) < 0)
		return -1;
	int fd = socket(AF_UNIX, socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return master_listen_fail(error_r, "socket(AF_UNIX) failed: %s", strerror(errno));
	serv->listen_fds[serv->listen_count++] = fd;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return master_listen_fail(error_r, "bind %s: %s", serv->local_path, strerror(errno));
	/* Access is decided by the directory: private/ is mail_owner's only. */
	if (chmod(serv->local_path, 0666) < 0)
		return master_listen_fail(error_r, "chmod(%s) failed: %s", serv->local_path,
					  strerror(errno));
	if (master_listen_chown(-1, serv->local_path, error_r) < 0)
		return -1;
	if (socktype == SOCK_STREAM && listen(fd, MASTER_LISTEN_BACKLOG) < 0)
		return master_listen_fail(error_r, "listen %s: %s", serv->local_path,
					  strerror(errno));
	return 0;
}

/* master_listen_fifo: a fifo held open read-write, so it never reads EOF. */
static int master_listen_fifo(struct master_service *serv, const char **error_r)
{
	if (master_listen_clear_path(serv->local_path, error_r) < 0)
		return -1;
	if (mkfifo(serv->local_path, 0622) < 0)
		return master_listen_fail(error_r, "mkfifo(%s) failed: %s", serv->local_path,
					  strerror(errno));
	int fd = open(serv->local_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return master_listen_fail(error_r, "open(%s) failed: %s", serv->local_path,
					  strerror(errno));
	serv->listen_fds[serv->listen_count++] = fd;
	/* mkfifo honours the umask; the mode must be exact. */
	if (fchmod(fd, 0622) < 0)
		return master_listen_fail(error_r, "fchmod(%s) failed: %s", serv->local_path,
					  strerror(errno));
	return master_listen_chown(fd, serv->local_path, error_r);
}

/* master_listen_open: bind by type; on failure nothing stays open. */
int master_listen_open(struct master_service *serv, const char **error_r)
{
	int ret;
	if (serv->listen_count != 0)
		msg_panic("master_listen_open: service %s already has listeners", serv->name);
	switch (serv->type) {
	case MASTER_CF_INET:
		ret = master_listen_inet(serv, error_r);
		break;
	case MASTER_CF_UNIX:
		ret = master_listen_unix(serv, SOCK_STREAM, error_r);
		break;
	case MASTER_CF_UNIX_DGRAM:
		ret = master_listen_unix(serv, SOCK_DGRAM, error_r);
		break;
	case MASTER_CF_FIFO:
		ret = master_listen_fifo(serv, error_r);
		break;
	default:
		msg_panic("master_listen_open: bad type %d", (int)serv->type);
	}
	/* Nothing is unlinked on failure: the path may not be ours. */
	if (ret < 0)
		master_listen_close(serv, false);
	return ret;
}

/* master_listen_close: close the listeners, maybe remove the file. */
void master_listen_close(struct master_service *serv, bool unlink_path)
{
	master_avail_stop(serv);
	for (unsigned i = 0; i < serv->listen_count; i++)
		close(serv->listen_fds[i]);
	serv->listen_count = 0;
	if (unlink_path && serv->local_path != NULL && unlink(serv->local_path) < 0 &&
	    errno != ENOENT)
		msg_warn("unlink(%s) failed: %m", serv->local_path);
}
