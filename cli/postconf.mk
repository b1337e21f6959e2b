# cli/postconf.mk: build lines for postconf (see the module's header).
