# pickup/local.mk: the pickup daemon (see pickup/pickup.c): maildrop/ ->
# incoming/. Its end-to-end test is t/e2e-sendmail.py (cli/sendmail.mk).
pkglibexec_PROGRAMS += pickup/pickup
pickup_pickup_SOURCES = pickup/pickup.c
pickup_pickup_LDADD = $(PETREL_LIBS)
dist_man_MANS += doc/pickup.8
