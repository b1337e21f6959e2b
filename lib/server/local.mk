# lib/server/local.mk: daemon skeletons, the master protocol, TLS and network
# connections. Each module's build lines are in its own lib/server/*.mk.
noinst_LIBRARIES += lib/server/libserver.a
LIBSERVER = lib/server/libserver.a
lib_server_libserver_a_SOURCES =
