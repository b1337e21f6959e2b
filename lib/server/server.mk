# lib/server/server.mk: build lines for server (see the module's header).
