# lib/mail/queue.mk: build lines for the mail queue (see lib/mail/queue.h):
# queue IDs, the directory layout, the queue file writer and reader, and
# lib/util/fsutil (fsync of a directory), which the queue needs first.
lib_mail_libmail_a_SOURCES += \
	lib/mail/queue.c lib/mail/queue.h lib/mail/queue_rec.h \
	lib/mail/queue_id.c lib/mail/queue_dirs.c lib/mail/queue_file.c
lib_util_libutil_a_SOURCES += lib/util/fsutil.c lib/util/fsutil.h

UNIT_TESTS += t/test-queue
check_PROGRAMS += t/test-queue
t_test_queue_LDADD = $(UNIT_LDADD)

# t/queue-fill writes queue files for the postqueue end-to-end test.
check_PROGRAMS += t/queue-fill
t_queue_fill_LDADD = $(UNIT_LDADD)
