# lib/mail/mailstore.mk: build lines (see the module's header).
