/* alloc.c: allocation that never returns NULL; see alloc.h. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/msg.h"

/* xmalloc: malloc or die. */
void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (p == NULL)
		msg_fatal("out of memory allocating %zu bytes", size);
	return p;
}

/* xcalloc: zeroed allocation or die, with the multiplication checked. */
void *xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (p == NULL)
		msg_fatal("out of memory allocating %zu x %zu bytes", count, size);
	return p;
}

/* xrealloc: realloc or die. */
void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);
	if (p == NULL)
		msg_fatal("out of memory reallocating %zu bytes", size);
	return p;
}

/* xreallocarray: realloc of count elements, refusing overflow. */
void *xreallocarray(void *ptr, size_t count, size_t size)
{
	if (size != 0 && count > SIZE_MAX / size)
		msg_panic("xreallocarray: %zu x %zu overflows", count, size);
	return xrealloc(ptr, count * size);
}

/* xstrdup: copy a NUL-terminated string. */
char *xstrdup(const char *s)
{
	return xmemdup(s, strlen(s) + 1);
}

/* xstrndup: copy at most len bytes and terminate. */
char *xstrndup(const char *s, size_t len)
{
	size_t n = strnlen(s, len);
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* xmemdup: copy len bytes. */
void *xmemdup(const void *src, size_t len)
{
	void *p = xmalloc(len);
	memcpy(p, src, len);
	return p;
}

/* secure_zero: clear memory through a volatile pointer so it stays. */
void secure_zero(void *ptr, size_t len)
{
	volatile unsigned char *p = ptr;
	while (len-- > 0)
		*p++ = 0;
}

/* xfree_secret: wipe then free. */
void xfree_secret(void *ptr, size_t len)
{
	if (ptr == NULL)
		return;
	secure_zero(ptr, len);
	free(ptr);
}
