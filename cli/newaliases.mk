# cli/newaliases.mk: build lines (see the module's header).
