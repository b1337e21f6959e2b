# lib/server/server.mk: build lines for the daemon skeleton and the master
# protocol (see lib/server/multi_server.h and master_proto.h): the
# multi_server skeleton, the master.cf parser, the privilege drop.
lib_server_libserver_a_SOURCES += \
	lib/server/master_proto.h \
	lib/server/master_cf.c lib/server/master_cf.h \
	lib/server/multi_server.c lib/server/multi_server.h \
	lib/server/privs.c lib/server/privs.h

UNIT_TESTS += t/test-master-cf
check_PROGRAMS += t/test-master-cf
t_test_master_cf_LDADD = $(UNIT_LDADD)
