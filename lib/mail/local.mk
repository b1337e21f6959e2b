# lib/mail/local.mk: mail-wide code (parameters, addresses, queue files, maps,
# log formats). Each module's build lines are in its own lib/mail/*.mk.
noinst_LIBRARIES += lib/mail/libmail.a
LIBMAIL = lib/mail/libmail.a
lib_mail_libmail_a_SOURCES = lib/mail/mail_log.c lib/mail/mail_log.h \
	lib/mail/mail_date.c lib/mail/mail_date.h

# libFuzzer targets for the decoders of untrusted bytes, built by hand (see
# each file's header): IPC records and queue files.
EXTRA_DIST += fuzz/fuzz-ipc.c fuzz/fuzz-queue.c
