# lib/mail/delivery.mk: build lines (see the module's header).
