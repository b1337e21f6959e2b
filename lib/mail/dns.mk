# lib/mail/dns.mk: build lines for dns (asynchronous lookups on libunbound
# and smtpd's client name lookup; see lib/mail/dns.h).
lib_mail_libmail_a_SOURCES += lib/mail/dns.c lib/mail/dns.h
AM_CPPFLAGS += $(UNBOUND_CFLAGS)
# Every program that links libmail may pull in dns.o.
PETREL_LIBS += $(UNBOUND_LIBS)

UNIT_TESTS += t/test-dns
check_PROGRAMS += t/test-dns
t_test_dns_LDADD = $(UNIT_LDADD)
# The test's DNS server, started by t/test-dns.
EXTRA_DIST += t/dns_server.py
