# lib/mail/local.mk: mail-wide code (parameters, addresses, queue files, maps,
# log formats). Each module's build lines are in its own lib/mail/*.mk.
noinst_LIBRARIES += lib/mail/libmail.a
LIBMAIL = lib/mail/libmail.a
lib_mail_libmail_a_SOURCES = lib/mail/mail_log.c lib/mail/mail_log.h
