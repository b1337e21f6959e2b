/* fsutil.c: file-system helpers; see fsutil.h. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fsutil.h"

/* fsync_dir: make the directory entries of path durable. */
int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fsync(fd) < 0) {
		int saved_errno = errno;
		(void)close(fd);
		errno = saved_errno;
		return -1;
	}
	/* A close error after a good fsync still means the kernel reported a
	 * problem; pass it on rather than guess. */
	return close(fd) < 0 ? -1 : 0;
}

int rename_noreplace(const char *from, const char *to)
{
#ifdef RENAME_NOREPLACE
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
#endif
	/* The file system cannot do it atomically: link() refuses an existing
	 * name too. */
	if (link(from, to) < 0)
		return -1;
	return unlink(from) < 0 ? 1 : 0;
}

int fifo_trigger(const char *path, char byte)
{
	int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	struct stat st;
	int ret = -1;
	if (fstat(fd, &st) == 0 && !S_ISFIFO(st.st_mode))
		errno = EINVAL;
	else if (write(fd, &byte, 1) == 1 || errno == EAGAIN)
		ret = 0;
	int saved = errno;
	close(fd);
	errno = saved;
	return ret;
}
