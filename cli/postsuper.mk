# cli/postsuper.mk: build lines (see the module's header).
