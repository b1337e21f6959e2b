# lib/util/events.mk: build lines for events (see the module's header).
lib_util_libutil_a_SOURCES += lib/util/events.c lib/util/events.h

UNIT_TESTS += t/test-events
check_PROGRAMS += t/test-events
t_test_events_LDADD = $(UNIT_LDADD)
