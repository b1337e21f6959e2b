# lib/mail/config.mk: build lines for config (see the module's header).
