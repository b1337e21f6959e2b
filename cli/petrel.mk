# cli/petrel.mk: build lines for petrel (see the module's header).
