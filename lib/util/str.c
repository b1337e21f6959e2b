/* str.c: growable byte strings and bounded fixed-buffer helpers; see str.h. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

void str_init(struct str *s)
{
	s->data = NULL;
	s->len = 0;
	s->cap = 0;
}

void str_deinit(struct str *s)
{
	free(s->data);
	str_init(s);
}

/* str_reserve: grow geometrically so appends are amortised O(1). */
void str_reserve(struct str *s, size_t extra)
{
	if (extra > ((size_t)-1) / 2 - s->len)
		msg_panic("str_reserve: %zu more bytes overflows", extra);
	size_t need = s->len + extra + 1;
	if (need <= s->cap)
		return;
	size_t cap = s->cap ? s->cap : 64;
	while (cap < need)
		cap *= 2;
	s->data = xrealloc(s->data, cap);
	s->cap = cap;
}

void str_clear(struct str *s)
{
	str_truncate(s, 0);
}

void str_truncate(struct str *s, size_t len)
{
	if (len > s->len)
		msg_panic("str_truncate: %zu beyond length %zu", len, s->len);
	s->len = len;
	if (s->data != NULL)
		s->data[len] = '\0';
}

void str_append_n(struct str *s, const void *data, size_t len)
{
	str_reserve(s, len);
	if (len > 0)
		memcpy(s->data + s->len, data, len);
	s->len += len;
	s->data[s->len] = '\0';
}

void str_append(struct str *s, const char *text)
{
	str_append_n(s, text, strlen(text));
}

void str_append_c(struct str *s, char c)
{
	str_append_n(s, &c, 1);
}

void str_set(struct str *s, const char *text)
{
	str_clear(s);
	str_append(s, text);
}

void str_vprintf(struct str *s, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		msg_panic("str_vprintf: bad format \"%s\"", fmt);
	str_reserve(s, (size_t)n);
	vsnprintf(s->data + s->len, (size_t)n + 1, fmt, ap);
	s->len += (size_t)n;
}

void str_printf(struct str *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	str_vprintf(s, fmt, ap);
	va_end(ap);
}

const char *str_set_vprintf(struct str *s, const char *fmt, va_list ap)
{
	struct str text = STR_INIT;
	str_vprintf(&text, fmt, ap);
	str_deinit(s);
	*s = text;
	return str_c(s);
}

const char *str_c(const struct str *s)
{
	return s->data != NULL ? s->data : "";
}

char *str_steal(struct str *s)
{
	str_reserve(s, 0);
	s->data[s->len] = '\0';
	char *p = s->data;
	str_init(s);
	return p;
}

void str_consume(struct str *s, size_t n)
{
	if (n > s->len)
		msg_panic("str_consume: %zu beyond length %zu", n, s->len);
	memmove(s->data, s->data + n, s->len - n);
	str_truncate(s, s->len - n);
}

bool str_copy(char *dst, size_t dstsize, const char *src)
{
	size_t n = strlen(src);
	if (dstsize == 0)
		return false;
	if (n >= dstsize) {
		memcpy(dst, src, dstsize - 1);
		dst[dstsize - 1] = '\0';
		return false;
	}
	memcpy(dst, src, n + 1);
	return true;
}

bool str_format(char *dst, size_t dstsize, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(dst, dstsize, fmt, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < dstsize;
}

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

bool str_eq_icase(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++) {
		if (lower((unsigned char)*a) != lower((unsigned char)*b))
			return false;
	}
	return *a == *b;
}

bool str_isspace(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool str_prefix_icase(const char *s, const char *prefix)
{
	for (; *prefix != '\0'; s++, prefix++) {
		if (lower((unsigned char)*s) != lower((unsigned char)*prefix))
			return false;
	}
	return true;
}

/* str_escape_log: control and 8-bit bytes become \ooo octal (as Postfix's
 * printable() does with '?', but reversible); at most max input bytes. */
void str_escape_log(struct str *out, const char *data, size_t len, size_t max)
{
	bool cut = len > max;
	if (cut)
		len = max;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)data[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			str_append_c(out, (char)c);
		else
			str_printf(out, "\\%03o", c);
	}
	if (cut)
		str_append(out, "...");
}
