# bench/local.mk: build lines for bench/.
