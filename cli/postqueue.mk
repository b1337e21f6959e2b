# cli/postqueue.mk: build lines for postqueue (see the module's header).
