# cli/newaliases.mk: build lines for postalias and newaliases (one program,
# see cli/newaliases.c), the alias file parser (lib/mail/aliases.c), their
# man pages and tests.
lib_mail_libmail_a_SOURCES += lib/mail/aliases.c lib/mail/aliases.h

sbin_PROGRAMS += cli/postalias
cli_postalias_SOURCES = cli/newaliases.c
cli_postalias_LDADD = $(PETREL_LIBS)
dist_man_MANS += doc/postalias.1 doc/newaliases.1

UNIT_TESTS += t/test-aliases
check_PROGRAMS += t/test-aliases
t_test_aliases_LDADD = $(UNIT_LDADD)

# newaliases is postalias under another name (it rebuilds alias_database).
install-exec-hook: newaliases-install-exec-hook
uninstall-hook: newaliases-uninstall-hook

newaliases-install-exec-hook:
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	rm -f '$(DESTDIR)$(bindir)/newaliases'
	ln -s '$(sbindir)/postalias' '$(DESTDIR)$(bindir)/newaliases'

newaliases-uninstall-hook:
	rm -f '$(DESTDIR)$(bindir)/newaliases'

.PHONY: newaliases-install-exec-hook newaliases-uninstall-hook
