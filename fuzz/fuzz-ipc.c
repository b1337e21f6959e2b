/* fuzz-ipc.c: libFuzzer target for the IPC record decoder (lib/mail/ipc).
 * Not built by make; from a configured build directory BUILD and the
 * source tree SRC:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c17 \
 *       -I SRC/lib -I BUILD -o fuzz-ipc SRC/fuzz/fuzz-ipc.c \
 *       SRC/lib/mail/ipc.c SRC/lib/util/str.c SRC/lib/util/alloc.c \
 *       SRC/lib/util/msg.c
 *   mkdir -p corpus && ./fuzz-ipc -max_len=4096 corpus
 *
 * The input is fed to ipc_parse() as a stream, record after record, the
 * way a daemon reads its socket. Besides memory errors it aborts when an
 * invariant breaks: a record that claims to consume more bytes than it
 * was given or none at all, or an error without a message. */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "mail/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	size_t left = size;
	while (left > 0) {
		struct ipc_record *rec = NULL;
		size_t used = 0;
		const char *error = NULL;
		int r = ipc_parse(in, left, &rec, &used, &error);
		if (r < 0) {
			if (error == NULL)
				abort();
			break;
		}
		if (r == 0)
			break;
		if (used == 0 || used > left)
			abort();
		ipc_record_free(&rec);
		in += used;
		left -= used;
	}
	return 0;
}
