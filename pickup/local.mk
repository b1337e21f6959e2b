# pickup/local.mk: build lines (see the module's header).
