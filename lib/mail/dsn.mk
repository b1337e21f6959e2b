# lib/mail/dsn.mk: build lines (see the module's header).
