# petrel_deps.m4: one check per library Petrel links against. Each failure
# names the Debian package to install.
AC_DEFUN([PETREL_CHECK_DEPS], [
  PKG_CHECK_MODULES([GNUTLS], [gnutls >= 3.7], [],
    [AC_MSG_ERROR([GnuTLS >= 3.7 not found: apt-get install libgnutls28-dev])])
  PKG_CHECK_MODULES([GNUTLS_DANE], [gnutls-dane >= 3.7], [],
    [AC_MSG_ERROR([gnutls-dane not found: apt-get install libgnutls28-dev])])
  PKG_CHECK_MODULES([UNBOUND], [libunbound], [],
    [AC_CHECK_LIB([unbound], [ub_ctx_create], [UNBOUND_LIBS=-lunbound],
      [AC_MSG_ERROR([libunbound not found: apt-get install libunbound-dev])])])
  PKG_CHECK_MODULES([SASL], [libsasl2], [],
    [AC_CHECK_LIB([sasl2], [sasl_server_init], [SASL_LIBS=-lsasl2],
      [AC_MSG_ERROR([Cyrus SASL not found: apt-get install libsasl2-dev])])])
  # LMDB ships no .pc file on Debian 12.
  PKG_CHECK_MODULES([LMDB], [lmdb], [], [
    AC_CHECK_HEADER([lmdb.h], [],
      [AC_MSG_ERROR([lmdb.h not found: apt-get install liblmdb-dev])])
    petrel_save_LIBS=$LIBS
    AC_SEARCH_LIBS([mdb_env_create], [lmdb], [],
      [AC_MSG_ERROR([liblmdb not found: apt-get install liblmdb-dev])])
    LMDB_LIBS=$LIBS
    LIBS=$petrel_save_LIBS
  ])
  AC_CHECK_HEADER([crypt.h], [],
    [AC_MSG_ERROR([crypt.h not found: apt-get install libcrypt-dev])])
  petrel_save_LIBS=$LIBS
  AC_SEARCH_LIBS([crypt_gensalt_rn], [crypt], [],
    [AC_MSG_ERROR([libcrypt not found: apt-get install libcrypt-dev])])
  CRYPT_LIBS=$LIBS
  LIBS=$petrel_save_LIBS
  AC_SUBST([LMDB_LIBS])
  AC_SUBST([CRYPT_LIBS])
])
