/* privs.h: the one audited privilege drop.
 *
 * Every daemon that gives up root goes through privs_drop(), which does the
 * steps in a fixed order: look the user up, initgroups(), setresgid(),
 * chroot() + chdir("/"), setresuid(), then checks that setuid(0) fails.
 * Any failure is fatal (msg_fatal): a daemon never runs half-dropped. */
#ifndef PETREL_PRIVS_H
#define PETREL_PRIVS_H

/* privs_drop: become user (NULL: keep the current ids) after chrooting to
 * chroot_dir (NULL: no chroot). Requires root when either is not NULL. */
void privs_drop(const char *user, const char *chroot_dir);

#include <sys/types.h>

/* privs_run_as: for root commands that write files for their owners
 * (postmap, postalias): take uid/gid as the effective ids (groups: gid
 * only), or with uid 0 go back to root's own effective ids and groups.
 * Fatal on any failure. */
void privs_run_as(uid_t uid, gid_t gid);

#endif
