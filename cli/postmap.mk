# cli/postmap.mk: build lines for postmap (see the module's header).
