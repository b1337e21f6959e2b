# cli/pw.mk: build lines (see the module's header).
