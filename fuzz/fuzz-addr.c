/* fuzz-addr.c: libFuzzer target for lib/mail/addr (paths, ESMTP
 * parameters, xtext). Not built by make; from a configured build
 * directory BUILD (for its config.h) and the source tree SRC:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c17 \
 *       -I SRC/lib -I BUILD -o fuzz-addr SRC/fuzz/fuzz-addr.c \
 *       SRC/lib/mail/addr.c SRC/lib/util/str.c SRC/lib/util/alloc.c \
 *       SRC/lib/util/msg.c
 *   mkdir -p corpus && ./fuzz-addr -max_len=600 corpus
 *
 * The first input byte picks the enum addr_flags (low four bits) and
 * whether BINARYMIME is offered; the rest is the text after "FROM:".
 * Besides memory errors it aborts when an invariant breaks: an error
 * without a reply text, a parsed address whose external form does not
 * parse back to itself, or an xtext round trip that changes the bytes. */
#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/addr.h"
#include "util/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_path: parse as a path, check the external round trip, then parse
 * the rest as MAIL and RCPT parameters. */
static void fuzz_path(const char *text, size_t len, unsigned flags, unsigned ext)
{
	struct smtp_addr a, b;
	struct smtp_params p;
	const char *rest, *rest2, *error = NULL;
	if (addr_parse_path(text, len, flags, &a, &rest, &error) != ADDR_OK) {
		if (error == NULL)
			abort();
		return;
	}
	struct str wire = STR_INIT, key = STR_INIT;
	str_printf(&wire, "<%s>", a.external);
	if (addr_parse_path(wire.data, wire.len, flags, &b, &rest2, &error) != ADDR_OK ||
	    strcmp(a.external, b.external) != 0 || strcmp(a.local, b.local) != 0)
		abort();
	addr_lookup_key(&a, &key);
	size_t rest_len = (size_t)(text + len - rest);
	if (smtp_params_parse_mail(rest, rest_len, ext, &p, &error) != ADDR_OK && error == NULL)
		abort();
	smtp_params_deinit(&p);
	if (smtp_params_parse_rcpt(rest, rest_len, ext, &p, &error) != ADDR_OK && error == NULL)
		abort();
	smtp_params_deinit(&p);
	smtp_addr_deinit(&a);
	smtp_addr_deinit(&b);
	str_deinit(&wire);
	str_deinit(&key);
}

/* fuzz_xtext: decode, and encode + decode gives the input back. */
static void fuzz_xtext(const char *text, size_t len)
{
	struct str enc = STR_INIT, dec = STR_INIT;
	const char *error;
	(void)addr_xtext_decode(&dec, text, len, &error);
	str_clear(&dec);
	addr_xtext_encode(&enc, text, len);
	if (!addr_xtext_decode(&dec, enc.data != NULL ? enc.data : "", enc.len, &error) ||
	    dec.len != len || (len > 0 && memcmp(dec.data, text, len) != 0))
		abort();
	str_deinit(&enc);
	str_deinit(&dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	unsigned flags = data[0] & 15;
	unsigned ext = SMTP_EXT_DEFAULT | ((data[0] & 16) != 0 ? SMTP_EXT_BINARYMIME : 0);
	/* a private copy, so reads past the end are caught */
	char *text = malloc(size - 1 > 0 ? size - 1 : 1);
	if (text == NULL)
		return 0;
	memcpy(text, data + 1, size - 1);
	fuzz_path(text, size - 1, flags, ext);
	fuzz_xtext(text, size - 1);
	struct smtp_addr a;
	const char *error;
	if (addr_parse_mailbox(text, size - 1, flags, &a, &error) == ADDR_OK)
		smtp_addr_deinit(&a);
	free(text);
	return 0;
}
