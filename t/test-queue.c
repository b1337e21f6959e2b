/* test-queue.c: unit tests for lib/mail/queue (queue IDs, directory
 * layout, the queue file writer and reader, the status byte, the lister)
 * and lib/util/fsutil. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/queue.h"
#include "tap.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/str.h"

static char test_root[256];

/* rm_entry: nftw callback removing one entry (depth first). */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		return rmdir(path);
	return unlink(path);
}

/* rm_rf: remove a test tree. */
static void rm_rf(const char *path)
{
	(void)nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* test_dir: a fresh queue directory under the test root. */
static char *test_dir(const char *name)
{
	struct str path = STR_INIT;
	const char *error = "";
	str_printf(&path, "%s/%s", test_root, name);
	if (queue_dirs_create(str_c(&path), &error) < 0)
		tap_diag("queue_dirs_create: %s", error);
	return str_steal(&path);
}

/* write_file: replace path with data (unlink first: ext4 flushes a file
 * truncated by O_TRUNC on close, which makes thousands of rewrites slow). */
static void write_file(const char *path, const void *data, size_t len)
{
	(void)unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		tap_diag("write_file(%s): %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* read_file: the whole file into a str. */
static void read_file(const char *path, struct str *out)
{
	char buf[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY);
	str_clear(out);
	if (fd < 0)
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		str_append_n(out, buf, (size_t)n);
	close(fd);
}

/* count_entries: names in dir; dot_only counts only temp names. */
static int count_entries(const char *dir, bool dot_only)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (!dot_only || de->d_name[0] == '.')
			n++;
	}
	closedir(d);
	return n;
}

/* count_fds: open descriptors, to catch leaks. */
static int count_fds(void)
{
	return count_entries("/proc/self/fd", false);
}

/* small_message: commit a small valid message and return its path. */
static char *small_message(const char *qdir)
{
	const char *error = "";
	int err;
	struct queue_writer *qw = queue_writer_open(qdir, &error);
	struct queue_rcpt rcpt = { "rcpt@example.org", "rfc822;rcpt@example.org",
				   QUEUE_NOTIFY_FAILURE };
	struct timeval tv = { 1763847120, 5 };
	queue_writer_arrival(qw, &tv);
	queue_writer_sender(qw, "s@example.com");
	queue_writer_attr(qw, "helo_name", "client.example");
	queue_writer_rcpt(qw, &rcpt);
	queue_writer_content(qw, "Subject: x\r\n\r\nhi\r\n", 18);
	struct str path = STR_INIT;
	str_printf(&path, "%s/incoming/%s", qdir, queue_writer_id(qw));
	if (queue_writer_commit(&qw, &err, &error) < 0)
		tap_diag("commit: %s", error);
	return str_steal(&path);
}

/* test_dirs: the layout, its modes, idempotence, fsync_dir. */
static void test_dirs(void)
{
	const char *error = "";
	struct str path = STR_INIT;
	struct stat st;
	char *qdir = test_dir("dirs");
	tap_ok(queue_dirs_create(qdir, &error) == 0, "queue_dirs_create is idempotent");
	bool all = true;
	for (size_t i = 0; queue_dirs_names[i] != NULL; i++) {
		str_clear(&path);
		str_printf(&path, "%s/%s", qdir, queue_dirs_names[i]);
		all = all && stat(str_c(&path), &st) == 0 && S_ISDIR(st.st_mode) &&
		      (st.st_mode & 07777) == 0700;
	}
	tap_ok(all, "every queue directory exists with mode 0700");
	tap_is_int(fsync_dir(qdir), 0, "fsync_dir on a directory");
	tap_ok(fsync_dir("/nonexistent/petrel") < 0 && errno == ENOENT,
	       "fsync_dir on a missing path fails with ENOENT");

	str_clear(&path);
	str_printf(&path, "%s/filler", test_root);
	write_file(str_c(&path), "x", 1);
	{
		bool ok = queue_dirs_create(str_c(&path), &error) < 0;
		tap_ok(ok, "queue_dirs_create on a file fails: %s", error);
	}
	str_deinit(&path);
	free(qdir);
}

/* The recipients of the round trip, quoted local parts included. */
static const struct queue_rcpt rt_rcpts[] = {
	{ "plain@example.org", NULL, 0 },
	{ "\"john doe\"@example.org", "rfc822;\"john doe\"@example.org",
	  QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE },
	{ "\"a\\\"b@c\"@example.org", NULL, QUEUE_NOTIFY_NEVER },
	{ "\xc3\xa9l\xc3\xa8ve@example.fr", "utf-8;\xc3\xa9l\xc3\xa8ve@example.fr",
	  QUEUE_NOTIFY_DELAY },
	{ "line\nbreak@example.org", NULL, 0 },
};

static const struct attr_case {
	const char *name;
	const char *value;
} rt_attrs[] = {
	{ "client_name", "mail.example.com" }, { "client_address", "192.0.2.1" },
	{ "helo_name", "mail.example.com" },   { "protocol_name", "ESMTP" },
	{ "envid", "QQ314159" },	       { "ret", "HDRS" },
	{ "body", "8BITMIME" },		       { "smtputf8", "" },
};

/* rt_content: 200 KiB + a bit, with NUL, CR, LF and every byte value. */
static void rt_content(struct str *content)
{
	str_append(content, "Subject: test\r\n\r\n");
	for (size_t i = 0; content->len < 200 * 1024 + 17; i++)
		str_append_c(content, (char)(i * 7 % 256));
	str_append_n(content, "\0\r\n.\r\n", 6);
}

/* rt_write: the round-trip message, content in odd-sized pieces. */
static int rt_write(const char *qdir, const struct str *content, char id[QUEUE_ID_MAX])
{
	const char *error = "";
	int err;
	struct queue_writer *qw = queue_writer_open(qdir, &error);
	if (qw == NULL)
		return -1;
	struct timeval tv = { 1763847120, 42 };
	queue_writer_arrival(qw, &tv);
	queue_writer_sender(qw, "sender@example.com");
	for (size_t i = 0; i < N_ELEMENTS(rt_attrs); i++)
		queue_writer_attr(qw, rt_attrs[i].name, rt_attrs[i].value);
	for (size_t i = 0; i < N_ELEMENTS(rt_rcpts); i++)
		queue_writer_rcpt(qw, &rt_rcpts[i]);
	for (size_t off = 0, step = 1; off < content->len; off += step, step = step * 3 + 1) {
		if (step > content->len - off)
			step = content->len - off;
		queue_writer_content(qw, content->data + off, step);
	}
	tap_is_int(queue_writer_size(qw), (long long)content->len,
		   "queue_writer_size counts content");
	str_copy(id, QUEUE_ID_MAX, queue_writer_id(qw));
	int ret = queue_writer_commit(&qw, &err, &error);
	if (ret < 0)
		tap_diag("commit: %s", error);
	tap_ok(qw == NULL, "commit frees the writer");
	return ret;
}

/* rt_check_content: the content stream and chunking. */
static void rt_check_content(struct queue_file *qf, const struct str *content)
{
	struct str got = STR_INIT;
	char buf[1000];
	const char *error = "";
	ssize_t n;
	while ((n = queue_file_content_read(qf, buf, sizeof(buf), &error)) > 0)
		str_append_n(&got, buf, (size_t)n);
	tap_ok(n == 0, "content stream ends cleanly");
	tap_ok(got.len == content->len && memcmp(got.data, content->data, got.len) == 0,
	       "content reads back byte for byte (%zu bytes)", got.len);
	tap_is_int(qf->content_size, (long long)content->len, "content size");
	bool sizes = qf->chunk_count == (content->len + QUEUE_CHUNK_MAX - 1) / QUEUE_CHUNK_MAX;
	for (size_t i = 0; sizes && i + 1 < qf->chunk_count; i++)
		sizes = qf->chunks[i].len == QUEUE_CHUNK_MAX;
	tap_ok(sizes, "content is in 64 KiB records (%zu)", qf->chunk_count);
	queue_file_content_rewind(qf);
	tap_ok(queue_file_content_read(qf, buf, 5, &error) == 5 && memcmp(buf, "Subje", 5) == 0,
	       "rewind restarts the stream");
	str_deinit(&got);
}

/* test_roundtrip: write, commit and read back every field. */
static void test_roundtrip(void)
{
	struct str content = STR_INIT, path = STR_INIT;
	const char *error = "";
	char id[QUEUE_ID_MAX];
	char *qdir = test_dir("roundtrip");
	rt_content(&content);
	tap_is_int(rt_write(qdir, &content, id), 0, "commit succeeds");
	str_printf(&path, "%s/incoming", qdir);
	tap_is_int(count_entries(str_c(&path), true), 0, "no temp file left after commit");
	str_printf(&path, "/%s", id);
	struct queue_file *qf = queue_file_read(str_c(&path), &error);
	if (!tap_ok(qf != NULL, "read back the committed file")) {
		tap_diag("%s", error);
		goto out;
	}
	tap_is_str(qf->id, id, "id from the file name");
	tap_ok(qf->arrival.tv_sec == 1763847120 && qf->arrival.tv_usec == 42, "arrival time");
	tap_is_str(qf->sender, "sender@example.com", "sender");
	tap_is_int((long long)qf->attr_count, N_ELEMENTS(rt_attrs), "attribute count");
	for (size_t i = 0; i < N_ELEMENTS(rt_attrs); i++)
		tap_is_str(queue_file_attr(qf, rt_attrs[i].name), rt_attrs[i].value, "attribute %s",
			   rt_attrs[i].name);
	tap_ok(queue_file_attr(qf, "sasl_username") == NULL, "absent attribute is NULL");
	tap_is_int((long long)qf->rcpt_count, N_ELEMENTS(rt_rcpts), "recipient count");
	tap_is_int((long long)qf->rcpt_pending, N_ELEMENTS(rt_rcpts), "all pending");
	for (size_t i = 0; i < qf->rcpt_count && i < N_ELEMENTS(rt_rcpts); i++) {
		tap_is_str(qf->rcpts[i].address, rt_rcpts[i].address, "recipient %zu address", i);
		tap_is_str(qf->rcpts[i].orcpt, rt_rcpts[i].orcpt, "recipient %zu orcpt", i);
		tap_ok(qf->rcpts[i].notify == rt_rcpts[i].notify &&
			       qf->rcpts[i].status == QUEUE_RCPT_PENDING,
		       "recipient %zu notify and status", i);
	}
	rt_check_content(qf, &content);
	struct stat st;
	tap_ok(stat(str_c(&path), &st) == 0 && st.st_size == qf->file_size &&
		       (st.st_mode & 0777) == 0600,
	       "file size reported, mode 0600");
	queue_file_free(&qf);
	tap_ok(qf == NULL, "queue_file_free clears the pointer");
out:
	str_deinit(&content);
	str_deinit(&path);
	free(qdir);
}

/* test_status_byte: the reported offset is the status byte; flip it. */
static void test_status_byte(void)
{
	const char *error = "";
	struct str data = STR_INIT;
	char *qdir = test_dir("status");
	char *path = small_message(qdir);
	struct queue_file *qf = queue_file_read(path, &error);
	if (!tap_ok(qf != NULL && qf->rcpt_count == 1, "small message reads")) {
		free(path);
		free(qdir);
		return;
	}
	off_t off = qf->rcpts[0].status_offset;
	read_file(path, &data);
	off_t type = off - 2;
	while (type > 0 && data.data[type] >= '0' && data.data[type] <= '9')
		type--;
	tap_ok(off > 0 && (size_t)off < data.len && data.data[off] == 'P' &&
		       data.data[off - 1] == ':' && data.data[type] == 'R',
	       "status offset points at the P after \"R<len>:\"");
	queue_file_free(&qf);
	tap_is_int(queue_file_mark_rcpt(path, off, QUEUE_RCPT_DONE, &error), 0, "mark done");
	qf = queue_file_read(path, &error);
	tap_ok(qf != NULL && qf->rcpts[0].status == QUEUE_RCPT_DONE && qf->rcpt_pending == 0,
	       "re-read sees the recipient done");
	queue_file_free(&qf);
	read_file(path, &data);
	tap_ok(data.data[off] == 'D', "exactly that byte changed to D");
	int ret = queue_file_mark_rcpt(path, 0, QUEUE_RCPT_DONE, &error);
	tap_ok(ret < 0 && errno == EBADMSG, "marking a non-status byte is refused: %s",
	       ret < 0 ? error : "accepted");
	ret = queue_file_mark_rcpt(path, off, 'X', &error);
	tap_ok(ret < 0, "marking an invalid status is refused");
	ret = queue_file_mark_rcpt(path, off, QUEUE_RCPT_PENDING, &error);
	tap_is_int(ret, 0, "mark pending again");
	str_deinit(&data);
	free(path);
	free(qdir);
}

/* expect_bad: reading data from a file must fail as corrupt. */
static bool expect_bad(const char *path, const void *data, size_t len)
{
	const char *error = "";
	write_file(path, data, len);
	struct queue_file *qf = queue_file_read(path, &error);
	if (qf != NULL) {
		queue_file_free(&qf);
		return false;
	}
	return errno == EBADMSG;
}

/* test_truncation: every prefix of a valid file is rejected. */
static void test_truncation(void)
{
	struct str data = STR_INIT, tmp = STR_INIT;
	char *qdir = test_dir("trunc");
	char *path = small_message(qdir);
	read_file(path, &data);
	str_printf(&tmp, "%s/deferred/0123456789ABCDEF", qdir);
	size_t bad = 0;
	for (size_t len = 0; len < data.len; len++) {
		if (expect_bad(str_c(&tmp), data.data, len))
			bad++;
		else
			tap_diag("truncation to %zu bytes accepted", len);
	}
	tap_is_int((long long)bad, (long long)data.len, "all %zu truncations rejected", data.len);
	str_append_c(&data, '\n');
	tap_ok(expect_bad(str_c(&tmp), data.data, data.len), "a byte after END is rejected");
	str_truncate(&data, data.len - 1);
	tap_ok(!expect_bad(str_c(&tmp), data.data, data.len), "the untruncated copy is accepted");
	str_deinit(&data);
	str_deinit(&tmp);
	free(path);
	free(qdir);
}

/* structural_map: mark framing bytes (type, length, ':', LF) and the
 * version data of a valid file. */
static void structural_map(const struct str *data, bool *structural)
{
	size_t i = 0;
	while (i < data->len) {
		size_t start = i, len = 0;
		i++;
		while (data->data[i] >= '0' && data->data[i] <= '9')
			len = len * 10 + (size_t)(data->data[i++] - '0');
		for (size_t j = start; j <= i; j++)
			structural[j] = true;
		if (data->data[start] == 'V')
			for (size_t j = i + 1; j <= i + len; j++)
				structural[j] = true;
		i += len + 1;
		structural[i] = true;
		i++;
	}
}

/* test_bitflips: every single-bit flip parses without a crash or leak,
 * and any flip in the framing is rejected. */
static void test_bitflips(void)
{
	struct str data = STR_INIT, tmp = STR_INIT;
	const char *error = "";
	char *qdir = test_dir("flips");
	char *path = small_message(qdir);
	read_file(path, &data);
	bool *structural = xcalloc(data.len + 1, sizeof(bool));
	structural_map(&data, structural);
	str_printf(&tmp, "%s/deferred/0123456789ABCDEF", qdir);
	size_t flips = 0, rejected = 0, structural_missed = 0;
	for (size_t i = 0; i < data.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			data.data[i] ^= (char)(1 << bit);
			write_file(str_c(&tmp), data.data, data.len);
			struct queue_file *qf = queue_file_read(str_c(&tmp), &error);
			flips++;
			if (qf == NULL)
				rejected++;
			else if (structural[i])
				structural_missed++;
			queue_file_free(&qf);
			data.data[i] ^= (char)(1 << bit);
		}
	}
	tap_is_int((long long)structural_missed, 0,
		   "every flipped framing or version bit is rejected (%zu of %zu flips rejected)",
		   rejected, flips);
	free(structural);
	str_deinit(&data);
	str_deinit(&tmp);
	free(path);
	free(qdir);
}

/* test_garbage: random bytes, raw and behind a valid version record, are
 * rejected (deterministic generator, so failures repeat). */
static void test_garbage(void)
{
	struct str path = STR_INIT, data = STR_INIT;
	unsigned long long seed = 0x9e3779b97f4a7c15ULL;
	size_t rejected = 0;
	enum { FILES = 2000 };
	str_printf(&path, "%s/garbage", test_root);
	for (int i = 0; i < FILES; i++) {
		str_clear(&data);
		if (i % 2 == 1)
			str_append(&data, "V14:petrel-queue 1\nT17:1763847120.000005\n");
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		size_t len = (size_t)(seed >> 33) % 300;
		for (size_t j = 0; j < len; j++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			/* Half the bytes from the record alphabet, to get deeper. */
			unsigned v = (unsigned)(seed >> 40);
			const char *alphabet = "VTSANORCZEP0123456789:\n=@";
			str_append_c(&data, v & 1 ? alphabet[(v >> 1) % 26] : (char)(v >> 8));
		}
		if (expect_bad(str_c(&path), data.data, data.len))
			rejected++;
	}
	tap_is_int((long long)rejected, FILES, "%d random files rejected", FILES);
	str_deinit(&path);
	str_deinit(&data);
}

/* Hand-made files; each ok=false case is one thing wrong. */
#define HDR "V14:petrel-queue 1\nT12:1763847120.5\n"
#define HDR_OK "V14:petrel-queue 1\nT17:1763847120.000005\n"
#define TAIL "C2:hi\nZ1:2\nE0:\n"
static const struct crafted_case {
	const char *name;
	const char *data;
	bool ok;
} crafted_cases[] = {
	{ "count record holding LF", HDR_OK "S0:\nN1:\nR3:P0a\n" TAIL, false },
	{ "minimal valid file", HDR_OK "S0:\nN1:1\nR3:P0a\n" TAIL, true },
	{ "no content", HDR_OK "S0:\nN1:1\nR3:P0a\nZ1:0\nE0:\n", true },
	{ "short microseconds", HDR "S0:\nN1:1\nR3:P0a\n" TAIL, false },
	{ "version 2", "V14:petrel-queue 2\nT17:1763847120.000005\nS0:\nN1:1\nR3:P0a\n" TAIL,
	  false },
	{ "missing END", HDR_OK "S0:\nN1:1\nR3:P0a\nC2:hi\nZ1:2\n", false },
	{ "two END", HDR_OK "S0:\nN1:1\nR3:P0a\n" TAIL "E0:\n", false },
	{ "END with data", HDR_OK "S0:\nN1:1\nR3:P0a\nC2:hi\nZ1:2\nE1:x\n", false },
	{ "fewer recipients than N", HDR_OK "S0:\nN1:2\nR3:P0a\n" TAIL, false },
	{ "more recipients than N", HDR_OK "S0:\nN1:1\nR3:P0a\nR3:P0b\n" TAIL, false },
	{ "N zero", HDR_OK "S0:\nN1:0\n" TAIL, false },
	{ "N over limit", HDR_OK "S0:\nN6:100001\nR3:P0a\n" TAIL, false },
	{ "N leading zero", HDR_OK "S0:\nN2:01\nR3:P0a\n" TAIL, false },
	{ "length leading zero", HDR_OK "S00:\nN1:1\nR3:P0a\n" TAIL, false },
	{ "no length", HDR_OK "S:\nN1:1\nR3:P0a\n" TAIL, false },
	{ "unknown type", HDR_OK "S0:\nX1:x\nN1:1\nR3:P0a\n" TAIL, false },
	{ "lowercase type", HDR_OK "s0:\nN1:1\nR3:P0a\n" TAIL, false },
	{ "ORCPT without R", HDR_OK "S0:\nN1:1\nO1:a\n" TAIL, false },
	{ "ORCPT twice", HDR_OK "S0:\nN1:1\nO1:a\nO1:a\nR3:P0a\n" TAIL, false },
	{ "ORCPT then R", HDR_OK "S0:\nN1:1\nO1:a\nR3:P0a\n" TAIL, true },
	{ "bad status", HDR_OK "S0:\nN1:1\nR3:X0a\n" TAIL, false },
	{ "NEVER with SUCCESS", HDR_OK "S0:\nN1:1\nR3:P3a\n" TAIL, false },
	{ "lowercase notify", HDR_OK "S0:\nN1:1\nR3:Pea\n" TAIL, false },
	{ "R too short", HDR_OK "S0:\nN1:1\nR1:P\n" TAIL, false },
	{ "NUL in sender", HDR_OK "S1:\0\nN1:1\nR3:P0a\n" TAIL, false },
	{ "size mismatch", HDR_OK "S0:\nN1:1\nR3:P0a\nC2:hi\nZ1:3\nE0:\n", false },
	{ "empty content record", HDR_OK "S0:\nN1:1\nR3:P0a\nC0:\nZ1:0\nE0:\n", false },
	{ "content before recipients", HDR_OK "S0:\nC2:hi\nN1:1\nR3:P0a\nZ1:2\nE0:\n", false },
	{ "attribute", HDR_OK "S0:\nA6:ret=HD\nN1:1\nR3:P0a\n" TAIL, true },
	{ "duplicate attribute", HDR_OK "S0:\nA6:ret=HD\nA6:ret=HD\nN1:1\nR3:P0a\n" TAIL, false },
	{ "attribute without =", HDR_OK "S0:\nA3:ret\nN1:1\nR3:P0a\n" TAIL, false },
	{ "attribute bad name", HDR_OK "S0:\nA6:Ret=HD\nN1:1\nR3:P0a\n" TAIL, false },
	{ "attribute after N", HDR_OK "S0:\nN1:1\nA6:ret=HD\nR3:P0a\n" TAIL, false },
	{ "record without LF", HDR_OK "S0:xN1:1\nR3:P0a\n" TAIL, false },
	{ "arrival missing", "V14:petrel-queue 1\nS0:\nN1:1\nR3:P0a\n" TAIL, false },
	{ "empty file", "", false },
	{ "text", "hello, world\n", false },
};

/* test_crafted: the hand-made files of crafted_cases[]. */
static void test_crafted(void)
{
	struct str path = STR_INIT;
	const char *error = "";
	str_printf(&path, "%s/crafted", test_root);
	for (size_t i = 0; i < N_ELEMENTS(crafted_cases); i++) {
		const struct crafted_case *c = &crafted_cases[i];
		/* Measure with the embedded NUL case in mind. */
		size_t len = strlen(c->data);
		if (strcmp(c->name, "NUL in sender") == 0)
			len += 1 + strlen(c->data + len + 1);
		write_file(str_c(&path), c->data, len);
		struct queue_file *qf = queue_file_read(str_c(&path), &error);
		tap_ok((qf != NULL) == c->ok, "crafted: %s %s", c->name,
		       c->ok ? "accepted" : "rejected");
		if (qf == NULL && c->ok)
			tap_diag("%s", error);
		queue_file_free(&qf);
	}
	str_deinit(&path);
}

/* test_limits: lengths at and over the limits, through the writer and by
 * hand for the reader. */
static void test_limits(void)
{
	const char *error = "";
	int err;
	char *qdir = test_dir("limits");
	char *long_addr = xmalloc(QUEUE_ADDRESS_MAX + 2);
	memset(long_addr, 'a', QUEUE_ADDRESS_MAX + 1);
	long_addr[QUEUE_ADDRESS_MAX + 1] = '\0';
	char *long_value = xmalloc(QUEUE_ATTR_VALUE_MAX + 2);
	memset(long_value, 'v', QUEUE_ATTR_VALUE_MAX + 1);
	long_value[QUEUE_ATTR_VALUE_MAX + 1] = '\0';

	struct queue_writer *qw = queue_writer_open(qdir, &error);
	struct queue_rcpt rcpt = { long_addr + 1, NULL, 0 };
	queue_writer_sender(qw, long_addr + 1);
	queue_writer_attr(qw, "helo_name", long_value + 1);
	queue_writer_rcpt(qw, &rcpt);
	tap_ok(!queue_writer_failed(qw), "1024-byte addresses and 4096-byte attributes are fine");
	int ret = queue_writer_commit(&qw, &err, &error);
	tap_is_int(ret, 0, "commit at the limits");

	static const char *const what[] = { "sender", "recipient", "attribute", "attr name",
					    "duplicate attr", "notify" };
	for (size_t i = 0; i < N_ELEMENTS(what); i++) {
		qw = queue_writer_open(qdir, &error);
		struct queue_rcpt r = { "a@b", NULL, i == 5 ? 0x3 : 0 };
		queue_writer_sender(qw, i == 0 ? long_addr : "");
		if (i == 1)
			r.address = long_addr;
		queue_writer_attr(qw, i == 3 ? "Bad-Name" : "x", i == 2 ? long_value : "1");
		if (i == 4)
			queue_writer_attr(qw, "x", "2");
		queue_writer_rcpt(qw, &r);
		queue_writer_content(qw, "x", 1);
		ret = queue_writer_commit(&qw, &err, &error);
		tap_ok(ret < 0 && err == EINVAL, "writer refuses a bad %s: %s", what[i],
		       ret < 0 ? error : "accepted");
	}
	qw = queue_writer_open(qdir, &error);
	queue_writer_sender(qw, "");
	ret = queue_writer_commit(&qw, &err, &error);
	tap_ok(ret < 0 && err == EINVAL, "writer refuses a message without recipients: %s",
	       ret < 0 ? error : "accepted");
	struct str path = STR_INIT;
	str_printf(&path, "%s/incoming", qdir);
	tap_is_int(count_entries(str_c(&path), false), 1, "only the good message is in incoming");
	str_deinit(&path);
	free(long_addr);
	free(long_value);
	free(qdir);
}

/* test_many_rcpts: the recipient limit, at and over it. */
static void test_many_rcpts(void)
{
	const char *error = "";
	int err;
	char addr[64];
	char *qdir = test_dir("many");
	struct queue_writer *qw = queue_writer_open(qdir, &error);
	queue_writer_sender(qw, "");
	for (int i = 0; i < QUEUE_RCPT_MAX; i++) {
		snprintf(addr, sizeof(addr), "user%d@example.org", i);
		struct queue_rcpt r = { addr, NULL, 0 };
		queue_writer_rcpt(qw, &r);
	}
	struct str path = STR_INIT;
	str_printf(&path, "%s/incoming/%s", qdir, queue_writer_id(qw));
	tap_is_int(queue_writer_commit(&qw, &err, &error), 0, "100000 recipients commit");
	struct queue_file *qf = queue_file_read(str_c(&path), &error);
	tap_ok(qf != NULL && qf->rcpt_count == QUEUE_RCPT_MAX &&
		       strcmp(qf->rcpts[QUEUE_RCPT_MAX - 1].address, "user99999@example.org") ==
			       0 &&
		       qf->sender[0] == '\0',
	       "100000 recipients read back, null sender");
	queue_file_free(&qf);

	qw = queue_writer_open(qdir, &error);
	queue_writer_sender(qw, "");
	for (int i = 0; i <= QUEUE_RCPT_MAX; i++) {
		struct queue_rcpt r = { "a@b", NULL, 0 };
		queue_writer_rcpt(qw, &r);
	}
	{
		bool ok = queue_writer_commit(&qw, &err, &error) < 0 && err == EINVAL;
		tap_ok(ok, "100001 recipients refused: %s", error);
	}
	str_deinit(&path);
	free(qdir);
}

/* id_cases: times and inodes in order; each ID must sort after the last. */
static const struct id_case {
	long sec, usec;
	unsigned long long ino;
	const char *want;
} id_cases[] = {
	{ 0, 0, 0, "00000000000000" },
	{ 1, 0, 1, "00000001000001" },
	{ 1, 999999, 0xabc, "00000001F423FABC" },
	{ 1763847120, 5, 12345, "69222BD000005" "3039" },
	{ 1763847121, 0, 0xffffffffffffffffULL, "69222BD100000FFFFFFFFFFFFFFFF" },
	{ 4294967295L, 999999, 7, "FFFFFFFFF423F7" },
};

static const struct valid_case {
	const char *name;
	bool ok;
} valid_cases[] = {
	{ "6922275000005303", true },    { "00000000000000", true },
	{ "0000000000000", false },      { "6922275000005FFFFFFFFFFFFFFFF", true },
	{ "6922275000005FFFFFFFFFFFFFFFF0", false },
	{ "69222750F4240A", false },     { "6922275000005a", false },
	{ ".tmp.1.2", false },           { ".6922275000005A", false },
	{ "6922275000005G", false },     { "", false },
};

/* test_ids: ID layout, order, time decoding and shape checks. */
static void test_ids(void)
{
	char id[QUEUE_ID_MAX], last[QUEUE_ID_MAX] = "";
	struct timeval tv;
	for (size_t i = 0; i < N_ELEMENTS(id_cases); i++) {
		const struct id_case *c = &id_cases[i];
		struct timeval in = { c->sec, c->usec };
		queue_id_format(id, &in, c->ino);
		tap_is_str(id, c->want, "queue_id_format case %zu", i);
		tap_ok(strcmp(id, last) > 0 && queue_id_valid(id), "case %zu sorts after the last",
		       i);
		tap_ok(queue_id_time(id, &tv) && tv.tv_sec == c->sec && tv.tv_usec == c->usec,
		       "queue_id_time decodes case %zu", i);
		str_copy(last, sizeof(last), id);
	}
	for (size_t i = 0; i < N_ELEMENTS(valid_cases); i++)
		tap_ok(queue_id_valid(valid_cases[i].name) == valid_cases[i].ok,
		       "queue_id_valid(\"%s\") is %d", valid_cases[i].name, valid_cases[i].ok);
}

/* cmp_id: qsort order of ID strings. */
static int cmp_id(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* test_id_unique: 100000 writers opened and aborted (so inodes are reused
 * at once): IDs never repeat and increase in creation order. */
static void test_id_unique(void)
{
	enum { COUNT = 100000 };
	const char *error = "";
	char *qdir = test_dir("ids");
	char **ids = xcalloc(COUNT, sizeof(*ids));
	bool increasing = true, opened = true;
	for (size_t i = 0; i < COUNT && opened; i++) {
		struct queue_writer *qw = queue_writer_open(qdir, &error);
		if (qw == NULL) {
			opened = false;
			tap_diag("%s", error);
			break;
		}
		ids[i] = xstrdup(queue_writer_id(qw));
		if (i > 0 && strncmp(ids[i - 1], ids[i], 13) >= 0)
			increasing = false;
		queue_writer_abort(&qw);
	}
	tap_ok(opened, "100000 writers opened");
	tap_ok(increasing, "each ID's time part is later than the one before");
	size_t dups = 0;
	if (opened) {
		qsort(ids, COUNT, sizeof(*ids), cmp_id);
		for (size_t i = 1; i < COUNT; i++)
			dups += strcmp(ids[i - 1], ids[i]) == 0;
	}
	tap_is_int((long long)dups, 0, "no duplicate among 100000 IDs");
	for (size_t i = 0; i < COUNT; i++)
		free(ids[i]);
	free(ids);
	struct str path = STR_INIT;
	str_printf(&path, "%s/incoming", qdir);
	tap_is_int(count_entries(str_c(&path), false), 0, "abort leaves no file");
	str_deinit(&path);
	free(qdir);
}

static void test_abort_and_lister(void)
{
	const char *error = "";
	struct str path = STR_INIT;
	char *qdir = test_dir("lister");
	char *committed = small_message(qdir);
	struct queue_writer *open_qw = queue_writer_open(qdir, &error);
	queue_writer_sender(open_qw, "");
	queue_writer_content(open_qw, "partial", 7);
	str_printf(&path, "%s/incoming/not-a-queue-id", qdir);
	write_file(str_c(&path), "x", 1);
	str_clear(&path);
	str_printf(&path, "%s/incoming/.6922275000005ABC", qdir);
	write_file(str_c(&path), "x", 1);

	struct queue_scan *scan = queue_scan_open(qdir, QUEUE_INCOMING, &error);
	const char *id = scan != NULL ? queue_scan_next(scan) : NULL;
	const char *slash = strrchr(committed, '/');
	tap_ok(scan != NULL && queue_scan_count(scan) == 1 && id != NULL &&
		       strcmp(id, slash + 1) == 0 && queue_scan_next(scan) == NULL,
	       "lister shows only the committed message, not temp or other names");
	queue_scan_close(&scan);
	tap_ok(scan == NULL, "queue_scan_close clears the pointer");
	{
		bool ok = queue_scan_open(qdir, "nonexistent", &error) == NULL && errno == ENOENT;
		tap_ok(ok, "scanning a missing queue fails with ENOENT: %s", error);
	}

	queue_writer_abort(&open_qw);
	str_clear(&path);
	str_printf(&path, "%s/incoming", qdir);
	tap_is_int(count_entries(str_c(&path), true), 1, "abort removes its temp file (only ours)");
	queue_writer_abort(&open_qw);
	tap_ok(true, "abort of NULL is fine");
	str_deinit(&path);
	free(committed);
	free(qdir);
}

/* test_write_error: a write that fails (here EFBIG from RLIMIT_FSIZE)
 * makes commit fail and leaves nothing behind. */
static void test_write_error(const char *qdir)
{
	const char *error = "";
	int err;
	struct rlimit old, small;
	struct str path = STR_INIT;
	char *big = xcalloc(1, 300 * 1024);
	getrlimit(RLIMIT_FSIZE, &old);
	small = old;
	small.rlim_cur = 100 * 1024;
	signal(SIGXFSZ, SIG_IGN);
	struct queue_writer *qw = queue_writer_open(qdir, &error);
	struct queue_rcpt r = { "a@b", NULL, 0 };
	queue_writer_sender(qw, "");
	queue_writer_rcpt(qw, &r);
	setrlimit(RLIMIT_FSIZE, &small);
	queue_writer_content(qw, big, 300 * 1024);
	setrlimit(RLIMIT_FSIZE, &old);
	tap_ok(queue_writer_failed(qw), "a failed write makes the writer dead");
	tap_is_int(queue_writer_size(qw), 300 * 1024, "size still counts what was handed over");
	int ret = queue_writer_commit(&qw, &err, &error);
	tap_ok(ret < 0 && err == EFBIG && !queue_errno_is_nospace(err),
	       "commit reports the write error: %s", ret < 0 ? error : "success");
	str_printf(&path, "%s/incoming", qdir);
	tap_is_int(count_entries(str_c(&path), false), 0, "and removes the temp file");
	tap_ok(queue_errno_is_nospace(ENOSPC) && queue_errno_is_nospace(EDQUOT) &&
		       !queue_errno_is_nospace(EIO),
	       "ENOSPC and EDQUOT are no-space errors, EIO is not");
	str_deinit(&path);
	free(big);
}

/* test_read_only: a queue we may not write to (not testable as root). */
static void test_read_only(const char *qdir)
{
	const char *error = "";
	int err;
	struct str path = STR_INIT;
	if (geteuid() == 0) {
		tap_skip("read-only queue directory: running as root");
		tap_skip("commit into a read-only directory: running as root");
		return;
	}
	str_printf(&path, "%s/incoming", qdir);
	chmod(str_c(&path), 0500);
	{
		bool ok = queue_writer_open(qdir, &error) == NULL && errno == EACCES;
		tap_ok(ok, "open in a read-only incoming/ fails: %s", error);
	}
	chmod(str_c(&path), 0700);
	struct queue_writer *qw = queue_writer_open(qdir, &error);
	struct queue_rcpt r = { "a@b", NULL, 0 };
	queue_writer_sender(qw, "");
	queue_writer_rcpt(qw, &r);
	chmod(str_c(&path), 0500);
	int ret = queue_writer_commit(&qw, &err, &error);
	chmod(str_c(&path), 0700);
	tap_ok(ret < 0 && err == EACCES && count_entries(str_c(&path), false) -
							count_entries(str_c(&path), true) == 0,
	       "commit into a read-only incoming/ fails, nothing visible: %s",
	       ret < 0 ? error : "success");
	str_deinit(&path);
}

/* test_failures: a missing queue, a queue moved away under an open
 * writer, an ID taken by someone else, a write error, a read-only queue. */
static void test_failures(void)
{
	const char *error = "";
	int err;
	struct str path = STR_INIT, moved = STR_INIT;
	char *qdir = test_dir("fail");

	str_printf(&path, "%s/nonexistent", test_root);
	{
		bool ok = queue_writer_open(str_c(&path), &error) == NULL && errno == ENOENT;
		tap_ok(ok, "open in a missing queue fails with ENOENT: %s", error);
	}

	struct queue_writer *qw = queue_writer_open(qdir, &error);
	queue_writer_sender(qw, "");
	struct queue_rcpt r = { "a@b", NULL, 0 };
	queue_writer_rcpt(qw, &r);
	queue_writer_content(qw, "x", 1);
	str_clear(&path);
	str_printf(&path, "%s/incoming", qdir);
	str_printf(&moved, "%s/incoming.moved", qdir);
	rename(str_c(&path), str_c(&moved));
	mkdir(str_c(&path), 0700);
	{
		bool ok = queue_writer_commit(&qw, &err, &error) < 0 && err == ENOENT;
		tap_ok(ok, "commit after incoming/ went away fails: %s", error);
	}
	/* The temp file went away with the old directory; only it is left. */
	tap_ok(count_entries(str_c(&path), false) == 0 &&
		       count_entries(str_c(&moved), false) == count_entries(str_c(&moved), true),
	       "and leaves no visible file in either directory");

	qw = queue_writer_open(qdir, &error);
	queue_writer_sender(qw, "");
	queue_writer_rcpt(qw, &r);
	str_clear(&moved);
	str_printf(&moved, "%s/%s", str_c(&path), queue_writer_id(qw));
	write_file(str_c(&moved), "mine", 4);
	{
		bool ok = queue_writer_commit(&qw, &err, &error) < 0 && err == EEXIST;
		tap_ok(ok, "commit never replaces an existing queue file: %s", error);
	}
	struct str data = STR_INIT;
	read_file(str_c(&moved), &data);
	tap_ok(data.len == 4 && count_entries(str_c(&path), false) == 1,
	       "the other file is intact");
	unlink(str_c(&moved));
	str_deinit(&data);

	test_write_error(qdir);
	test_read_only(qdir);
	str_deinit(&path);
	str_deinit(&moved);
	free(qdir);
}

/* main: run everything in a private temp directory. */
/* test_fifo_trigger: the wake-up byte every daemon and command sends. */
static void test_fifo_trigger(void)
{
	char fifo[512], file[512], link[512];
	str_format(fifo, sizeof(fifo), "%s/trigger", test_root);
	str_format(file, sizeof(file), "%s/trigger.file", test_root);
	str_format(link, sizeof(link), "%s/trigger.link", test_root);
	tap_ok(mkfifo(fifo, 0600) == 0, "mkfifo");
	tap_ok(fifo_trigger(fifo, 'W') < 0 && errno == ENXIO, "nobody reads: ENXIO");
	int rd = open(fifo, O_RDONLY | O_NONBLOCK);
	char c = 0;
	tap_ok(fifo_trigger(fifo, 'W') == 0 && read(rd, &c, 1) == 1 && c == 'W',
	       "a reader gets the byte");
	int n = 0;
	while (n < 70000 && fifo_trigger(fifo, 'A') == 0)
		n++;
	tap_ok(n == 70000, "a full fifo is not an error and never blocks");
	close(rd);
	int fd = open(file, O_WRONLY | O_CREAT, 0600);
	close(fd);
	tap_ok(fifo_trigger(file, 'W') < 0 && errno == EINVAL, "a regular file: EINVAL");
	tap_ok(symlink(fifo, link) == 0 && fifo_trigger(link, 'W') < 0 && errno == ELOOP,
	       "a symlink is not followed");
	tap_ok(fifo_trigger("/nonexistent/fifo", 'W') < 0 && errno == ENOENT, "missing: ENOENT");
	unlink(fifo);
	unlink(file);
	unlink(link);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	if (!str_format(test_root, sizeof(test_root), "%s/test-queue.XXXXXX",
			tmp != NULL && *tmp != '\0' ? tmp : "/tmp") ||
	    mkdtemp(test_root) == NULL) {
		tap_ok(false, "mkdtemp: %s", strerror(errno));
		return tap_done();
	}
	int fds = count_fds();
	test_dirs();
	test_ids();
	test_roundtrip();
	test_status_byte();
	test_truncation();
	test_bitflips();
	test_crafted();
	test_garbage();
	test_limits();
	test_many_rcpts();
	test_abort_and_lister();
	test_failures();
	test_id_unique();
	test_fifo_trigger();
	tap_is_int(count_fds(), fds, "no file descriptor leaked");
	rm_rf(test_root);
	return tap_done();
}
