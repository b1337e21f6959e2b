# cli/sendmail.mk: build lines (see the module's header).
