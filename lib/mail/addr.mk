# lib/mail/addr.mk: build lines for addr (see the module's header).
