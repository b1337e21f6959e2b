# lib/util/local.mk: knows nothing of mail: memory, strings, logging, I/O,
# the event loop.
noinst_LIBRARIES += lib/util/libutil.a
LIBUTIL = lib/util/libutil.a
lib_util_libutil_a_SOURCES = \
	lib/util/attr.h \
	lib/util/alloc.c lib/util/alloc.h \
	lib/util/msg.c lib/util/msg.h \
	lib/util/str.c lib/util/str.h \
	lib/util/logical_line.c lib/util/logical_line.h
