# lib/util/events.mk: build lines for events (see the module's header).
