# master/local.mk: build lines for the master daemon.
