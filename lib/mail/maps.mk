# lib/mail/maps.mk: build lines for maps (see the module's header).
