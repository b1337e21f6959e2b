# lib/mail/maps.mk: lookup tables (maps, the LMDB backend) and domain and
# network lists, with their unit tests.
lib_mail_libmail_a_SOURCES += \
	lib/mail/dict_lmdb.c lib/mail/dict_lmdb.h \
	lib/mail/maps.c lib/mail/maps.h \
	lib/mail/map_tool.c lib/mail/map_tool.h \
	lib/mail/match_list.c lib/mail/match_list.h

UNIT_TESTS += t/test-maps t/test-match-list
check_PROGRAMS += t/test-maps t/test-match-list
t_test_maps_LDADD = $(UNIT_LDADD)
t_test_match_list_LDADD = $(UNIT_LDADD)
