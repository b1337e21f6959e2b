/* queue_dirs.c: the queue directory layout and listing queue IDs; see
 * queue.h.
 *
 * queue_directory/ (0755) holds one directory per queue state plus the
 * rendezvous directories. A message moves between states by rename(), so
 * they all live on one file system. Names starting with '.' inside a
 * queue are temp files: never listed, never read as messages. */
#include <config.h> /* autoconf; "config.h" here would be mail/config.h */

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mail/queue.h"
#include "mail/queue_rec.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/str.h"

const char *const queue_dirs_names[] = {
	QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED, QUEUE_HOLD, QUEUE_CORRUPT,
	QUEUE_MAILDROP, QUEUE_PICKUP, "defer", "pid", "private", "public", NULL,
};

const char *const queue_dirs_message_queues[] = {
	QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED, QUEUE_HOLD, NULL,
};

struct queue_scan {
	char **ids;
	size_t count;
	size_t next;
};

/* queue_dirs_mkdir: mkdir, accepting a directory that is already there. */
static int queue_dirs_mkdir(const char *path, mode_t mode, const char **error_r)
{
	struct stat st;
	if (mkdir(path, mode) == 0)
		return 0;
	if (errno != EEXIST) {
		*error_r = queue_error("mkdir(%s) failed: %s", path, strerror(errno));
		return -1;
	}
	if (stat(path, &st) < 0) {
		*error_r = queue_error("stat(%s) failed: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		*error_r = queue_error("mkdir(%s) failed: %s", path, strerror(ENOTDIR));
		return -1;
	}
	return 0;
}

/* queue_dirs_create: the whole layout, made durable. */
int queue_dirs_create(const char *queue_dir, const char **error_r)
{
	struct str path = STR_INIT;
	int ret = 0;
	if (queue_dirs_mkdir(queue_dir, 0755, error_r) < 0)
		return -1;
	for (size_t i = 0; ret == 0 && queue_dirs_names[i] != NULL; i++) {
		str_clear(&path);
		str_printf(&path, "%s/%s", queue_dir, queue_dirs_names[i]);
		ret = queue_dirs_mkdir(str_c(&path), 0700, error_r);
	}
	str_deinit(&path);
	if (ret == 0 && fsync_dir(queue_dir) < 0) {
		*error_r = queue_error("fsync(%s) failed: %s", queue_dir, strerror(errno));
		ret = -1;
	}
	return ret;
}

/* queue_scan_cmp: qsort order for IDs (string order is time order). */
static int queue_scan_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* queue_scan_open: read all IDs of one queue, then sort them. */
struct queue_scan *queue_scan_open(const char *queue_dir, const char *queue_name,
				   const char **error_r)
{
	struct str path = STR_INIT;
	str_printf(&path, "%s/%s", queue_dir, queue_name);
	DIR *dir = opendir(str_c(&path));
	if (dir == NULL) {
		int saved_errno = errno;
		*error_r = queue_error("opendir(%s) failed: %s", str_c(&path), strerror(errno));
		str_deinit(&path);
		errno = saved_errno;
		return NULL;
	}
	struct queue_scan *scan = xcalloc(1, sizeof(*scan));
	size_t cap = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(dir)) != NULL) {
		if (!queue_id_valid(de->d_name))
			continue;
		if (scan->count == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			scan->ids = xreallocarray(scan->ids, cap, sizeof(*scan->ids));
		}
		scan->ids[scan->count++] = xstrdup(de->d_name);
		errno = 0;
	}
	int saved_errno = errno;
	(void)closedir(dir);
	if (saved_errno != 0) {
		*error_r = queue_error("readdir(%s) failed: %s", str_c(&path),
				       strerror(saved_errno));
		str_deinit(&path);
		queue_scan_close(&scan);
		errno = saved_errno;
		return NULL;
	}
	str_deinit(&path);
	if (scan->count > 1)
		qsort(scan->ids, scan->count, sizeof(*scan->ids), queue_scan_cmp);
	return scan;
}

/* queue_scan_next: the next ID in order, NULL when done. */
const char *queue_scan_next(struct queue_scan *scan)
{
	return scan->next < scan->count ? scan->ids[scan->next++] : NULL;
}

/* queue_scan_count: how many IDs the scan found. */
size_t queue_scan_count(const struct queue_scan *scan)
{
	return scan->count;
}

/* queue_scan_close: free the list. */
void queue_scan_close(struct queue_scan **scanp)
{
	struct queue_scan *scan = *scanp;
	if (scan == NULL)
		return;
	*scanp = NULL;
	for (size_t i = 0; i < scan->count; i++)
		free(scan->ids[i]);
	free(scan->ids);
	free(scan);
}
