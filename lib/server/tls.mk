# lib/server/tls.mk: build lines for tls (see the module's header).
