/* fuzz-queue.c: libFuzzer target for the queue file reader
 * (lib/mail/queue_file.c), which must reject any damaged file without
 * crashing: qmgr moves such files to corrupt/. Not built by make; from a
 * configured build directory BUILD and the source tree SRC:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c17 \
 *       -I SRC/lib -I BUILD -o fuzz-queue SRC/fuzz/fuzz-queue.c \
 *       SRC/lib/mail/queue*.c SRC/lib/util/*.c
 *   mkdir -p corpus && ./fuzz-queue -max_len=65536 corpus
 *
 * Each input is written to a file and read back with queue_file_read(); a
 * file that parses must have its content readable to the end. */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mail/queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/fuzz-queue-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		abort();
	if (write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	const char *error = NULL;
	struct queue_file *qf = queue_file_read(path, &error);
	if (qf == NULL) {
		if (error == NULL)
			abort();
	} else {
		char buf[4096];
		while (queue_file_content_read(qf, buf, sizeof(buf), &error) > 0)
			;
		queue_file_free(&qf);
	}
	unlink(path);
	return 0;
}
