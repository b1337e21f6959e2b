# lib/mail/queue.mk: build lines for queue (see the module's header).
