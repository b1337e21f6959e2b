/* str.h: one growable byte string for all dynamic text.
 *
 * A struct str always holds a NUL after its len bytes, so data can be used as
 * a C string when it holds no NUL itself. Growth is bounded only by memory;
 * protocol code enforces its own limits before appending. */
#ifndef PETREL_STR_H
#define PETREL_STR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/attr.h"

struct str {
	char *data;
	size_t len;
	size_t cap;
};

#define STR_INIT { NULL, 0, 0 }

void str_init(struct str *s);
void str_deinit(struct str *s);
/* str_reserve: make room for extra more bytes (plus the NUL). */
void str_reserve(struct str *s, size_t extra);
void str_clear(struct str *s);
void str_truncate(struct str *s, size_t len);
void str_append(struct str *s, const char *text);
void str_append_n(struct str *s, const void *data, size_t len);
void str_append_c(struct str *s, char c);
void str_printf(struct str *s, const char *fmt, ...) ATTR_FORMAT(2, 3);
void str_vprintf(struct str *s, const char *fmt, va_list ap) ATTR_FORMAT(2, 0);
void str_set(struct str *s, const char *text);
/* str_set_vprintf: replace s with the formatted text and return it as a C
 * string; the arguments may point into s itself (formatted aside first).
 * For a module's "last error" buffer. */
const char *str_set_vprintf(struct str *s, const char *fmt, va_list ap) ATTR_FORMAT(2, 0);
/* str_c: the contents as a C string ("" when empty and never allocated). */
const char *str_c(const struct str *s);
/* str_steal: hand over the buffer (always allocated) and reset s. */
char *str_steal(struct str *s);
/* str_consume: drop the first n bytes. */
void str_consume(struct str *s, size_t n);

/* strlcpy-like copy into a fixed buffer: returns false on truncation. */
bool str_copy(char *dst, size_t dstsize, const char *src);
/* bounded snprintf: returns false on truncation or error. */
bool str_format(char *dst, size_t dstsize, const char *fmt, ...) ATTR_FORMAT(3, 4);

/* Case-insensitive ASCII comparisons (locale-independent). */
bool str_eq_icase(const char *a, const char *b);
bool str_prefix_icase(const char *s, const char *prefix);
/* str_isspace: white space as Postfix's ISSPACE (space, TAB, CR, LF, VT,
 * FF), whatever the locale. */
bool str_isspace(int c);
/* str_escape_log: printable, length-capped copy of client text for logs. */
void str_escape_log(struct str *out, const char *data, size_t len, size_t max);

#endif
