# conf/local.mk: the default main.cf and master.cf, installed as examples
# in $(pkgdatadir) (never over an admin's files in $(sysconfdir)).
dist_pkgdata_DATA = conf/main.cf conf/master.cf
