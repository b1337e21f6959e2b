# lib/server/tls.mk: build lines for tls (see the module's header): server
# TLS credentials (tls_server) and buffered connections (netconn).
lib_server_libserver_a_SOURCES += \
	lib/server/tls_server.c lib/server/tls_server.h \
	lib/server/netconn.c lib/server/netconn.h

UNIT_TESTS += t/test-netconn
check_PROGRAMS += t/test-netconn
t_test_netconn_SOURCES = t/test-netconn.c t/tls-test-util.c t/tls-test-util.h
t_test_netconn_LDADD = $(UNIT_LDADD)
