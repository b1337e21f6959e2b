/* alloc.h: allocation that never returns NULL.
 *
 * Out of memory is fatal (msg_fatal), so callers never check. Secrets are
 * wiped with xfree_secret() before their memory goes back. */
#ifndef PETREL_ALLOC_H
#define PETREL_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
/* xreallocarray: xrealloc of count*size, fatal on overflow. */
void *xreallocarray(void *ptr, size_t count, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t len);
void *xmemdup(const void *p, size_t len);
/* xfree_secret: wipe len bytes then free. */
void xfree_secret(void *ptr, size_t len);
/* secure_zero: memset that the compiler may not drop. */
void secure_zero(void *ptr, size_t len);

#endif
