# master/local.mk: build lines for the master daemon (see master/master.h),
# its man pages, the echo-daemon test service and the end-to-end tests of
# master, multi_server and the petrel command.
pkglibexec_PROGRAMS += master/master
master_master_SOURCES = \
	master/master.c master/master.h \
	master/master_avail.c master/master_dirs.c master/master_listen.c \
	master/master_service.c master/master_spawn.c master/master_wakeup.c
master_master_LDADD = $(PETREL_LIBS)

dist_man_MANS += doc/master.8 doc/master.cf.5

# t/echo-daemon: a multi_server service for the tests (never installed).
check_PROGRAMS += t/echo-daemon
t_echo_daemon_LDADD = $(PETREL_LIBS)

E2E_TESTS += t/e2e-master.py
EXTRA_DIST += t/e2e-master.py t/instance.py
