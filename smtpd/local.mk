# smtpd/local.mk: build lines for smtpd.
