/* fsync_fail_shim.c: an LD_PRELOAD shim for the fsync-failure tests
 * (t/e2e-fsync-fail.py). It wraps fsync() and fdatasync(): while the file
 * named by $PETREL_FSYNC_FAIL exists and the path of the descriptor
 * (readlink /proc/self/fd/N) contains the text on the first line of that
 * file (trailing white space stripped; empty text matches every path), the
 * call fails with EIO and the real function is not called, as when the
 * kernel reports a write-back error. Otherwise it calls through.
 *
 * An optional second line "skip N" lets the first N matching calls pass
 * (through to the real function); the count is kept in the file itself
 * (rewritten under flock), so it spans processes: "fail the second sync of
 * the index" is "petrel-index\nskip 1\n".
 *
 * Built by the test at run time:
 *     cc -shared -fPIC -o shim.so t/fsync_fail_shim.c -ldl
 * Only system calls are used in the wrappers (no stdio, no allocation),
 * so the shim is safe in any process and under the sanitizers. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define SHIM_TEXT_MAX 512
#define SHIM_PATH_MAX 4096

int fsync(int fd);
int fdatasync(int fd);

/* shim_skip: the "skip N" of the trigger text after its first line: when
 * N > 0, write N - 1 back (the caller holds the lock) and return 1. */
static int shim_skip(int tfd, const char *text, size_t first_len)
{
	const char *p = text + first_len;
	while (*p == '\n' || *p == '\r')
		p++;
	if (strncmp(p, "skip ", 5) != 0)
		return 0;
	long n = strtol(p + 5, NULL, 10);
	if (n <= 0)
		return 0;
	char out[SHIM_TEXT_MAX + 32];
	int len = snprintf(out, sizeof(out), "%.*s\nskip %ld\n", (int)first_len, text, n - 1);
	if (len < 0 || len >= (int)sizeof(out))
		return 0;
	if (pwrite(tfd, out, (size_t)len, 0) != len || ftruncate(tfd, len) < 0)
		return 0;
	return 1;
}

/* shim_path_matches: whether fd's path contains want. */
static int shim_path_matches(int fd, const char *want)
{
	char link[64], path[SHIM_PATH_MAX + 1];
	if (snprintf(link, sizeof(link), "/proc/self/fd/%d", fd) >= (int)sizeof(link))
		return 0;
	ssize_t len = readlink(link, path, SHIM_PATH_MAX);
	if (len < 0)
		return 0;
	path[len] = '\0';
	return strstr(path, want) != NULL;
}

/* shim_should_fail: whether the trigger file exists and names fd's path
 * (and no skip is left). */
static int shim_should_fail(int fd)
{
	const char *trigger = getenv("PETREL_FSYNC_FAIL");
	if (trigger == NULL || trigger[0] == '\0')
		return 0;
	int saved_errno = errno;
	int tfd = open(trigger, O_RDWR | O_CLOEXEC);
	if (tfd < 0)
		tfd = open(trigger, O_RDONLY | O_CLOEXEC);
	if (tfd < 0) {
		errno = saved_errno;
		return 0;
	}
	(void)flock(tfd, LOCK_EX);
	char text[SHIM_TEXT_MAX + 1], want[SHIM_TEXT_MAX + 1];
	ssize_t n = pread(tfd, text, SHIM_TEXT_MAX, 0);
	if (n < 0)
		n = 0;
	text[n] = '\0';
	size_t first_len = strcspn(text, "\n");
	size_t w = first_len;
	while (w > 0 && (text[w - 1] == '\r' || text[w - 1] == ' ' || text[w - 1] == '\t'))
		w--;
	memcpy(want, text, w);
	want[w] = '\0';
	int fail = shim_path_matches(fd, want) && !shim_skip(tfd, text, first_len);
	close(tfd); /* drops the lock */
	errno = saved_errno;
	return fail;
}

/* fsync: EIO while triggered, else the real fsync. */
int fsync(int fd)
{
	if (shim_should_fail(fd)) {
		errno = EIO;
		return -1;
	}
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return real(fd);
}

/* fdatasync: EIO while triggered, else the real fdatasync. */
int fdatasync(int fd)
{
	if (shim_should_fail(fd)) {
		errno = EIO;
		return -1;
	}
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return real(fd);
}
