# cli/postqueue.mk: build lines for postqueue and mailq (see cli/postqueue.c).
sbin_PROGRAMS += cli/postqueue
cli_postqueue_LDADD = $(PETREL_LIBS)
dist_man_MANS += doc/postqueue.1 doc/mailq.1

E2E_TESTS += t/e2e-postqueue.py
EXTRA_DIST += t/e2e-postqueue.py

# mailq is postqueue under another name (it lists the queue like
# "postqueue -p"). The hooks get their own names so that other fragments can
# hang theirs on install-exec-hook and uninstall-hook too.
install-exec-hook: postqueue-install-exec-hook
uninstall-hook: postqueue-uninstall-hook

postqueue-install-exec-hook:
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	rm -f '$(DESTDIR)$(bindir)/mailq'
	ln -s '$(sbindir)/postqueue' '$(DESTDIR)$(bindir)/mailq'

postqueue-uninstall-hook:
	rm -f '$(DESTDIR)$(bindir)/mailq'

.PHONY: postqueue-install-exec-hook postqueue-uninstall-hook
