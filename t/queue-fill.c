/* queue-fill.c: test helper for t/e2e-postqueue.py: write one queue file
 * with the real writer and move it to the queue named.
 *
 * SYNOPSIS
 *	queue-fill queue_dir queue_name arrival sender size rcpt...
 * DESCRIPTION
 *	Creates the queue layout if needed, writes a message with the given
 *	arrival time (Unix seconds), sender ("" for <>), content of size
 *	bytes and recipients, commits it to incoming/ and renames it to
 *	queue_name/ (incoming, active, deferred or hold). A recipient
 *	written as "done:address" is then marked delivered in place. Prints
 *	the queue ID. Exits 1 on any failure. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/queue.h"
#include "util/msg.h"
#include "util/str.h"

/* queue_fill_content: size bytes of short text lines. */
static void queue_fill_content(struct queue_writer *qw, long long size)
{
	static const char line[] = "Subject: queue-fill\r\n";
	while (size > 0) {
		size_t n = size < (long long)(sizeof(line) - 1) ? (size_t)size : sizeof(line) - 1;
		queue_writer_content(qw, line, n);
		size -= (long long)n;
	}
}

/* queue_fill_mark: mark the "done:" recipients of the file at path. */
static void queue_fill_mark(const char *path, char **rcpts, int count)
{
	const char *error;
	struct queue_file *qf = queue_file_read(path, &error);
	if (qf == NULL)
		msg_fatal("%s", error);
	for (int i = 0; i < count; i++) {
		if (strncmp(rcpts[i], "done:", 5) == 0 &&
		    queue_file_mark_rcpt(path, qf->rcpts[i].status_offset, QUEUE_RCPT_DONE,
					 &error) < 0)
			msg_fatal("%s", error);
	}
	queue_file_free(&qf);
}

int main(int argc, char **argv)
{
	const char *error;
	int err;
	msg_init("queue-fill");
	msg_set_target(MSG_TARGET_TTY);
	if (argc < 7)
		msg_fatal("usage: queue-fill queue_dir queue_name arrival sender size rcpt...");
	const char *qdir = argv[1], *queue = argv[2];
	if (queue_dirs_create(qdir, &error) < 0)
		msg_fatal("%s", error);
	struct queue_writer *qw = queue_writer_open(qdir, &error);
	if (qw == NULL)
		msg_fatal("%s", error);
	struct timeval tv = { (time_t)strtoll(argv[3], NULL, 10), 0 };
	queue_writer_arrival(qw, &tv);
	queue_writer_sender(qw, argv[4]);
	queue_writer_attr(qw, "protocol_name", "ESMTP");
	for (int i = 6; i < argc; i++) {
		const char *addr = strncmp(argv[i], "done:", 5) == 0 ? argv[i] + 5 : argv[i];
		struct queue_rcpt rcpt = { addr, NULL, 0 };
		queue_writer_rcpt(qw, &rcpt);
	}
	queue_fill_content(qw, strtoll(argv[5], NULL, 10));
	char id[QUEUE_ID_MAX];
	str_copy(id, sizeof(id), queue_writer_id(qw));
	if (queue_writer_commit(&qw, &err, &error) < 0)
		msg_fatal("%s", error);
	struct str from = STR_INIT, to = STR_INIT;
	str_printf(&from, "%s/%s/%s", qdir, QUEUE_INCOMING, id);
	str_printf(&to, "%s/%s/%s", qdir, queue, id);
	if (strcmp(queue, QUEUE_INCOMING) != 0 && rename(str_c(&from), str_c(&to)) < 0)
		msg_fatal("rename(%s, %s) failed: %m", str_c(&from), str_c(&to));
	queue_fill_mark(str_c(&to), argv + 6, argc - 6);
	printf("%s\n", id);
	str_deinit(&from);
	str_deinit(&to);
	return 0;
}
