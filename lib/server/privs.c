/* privs.c: the privilege drop; see privs.h. The order matters: groups
 * before the uid (afterwards we may not change them), chroot while still
 * root, the uid last, then proof that root cannot come back. */
#include <config.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "server/privs.h"
#include "util/alloc.h"
#include "util/msg.h"

/* privs_drop: user, groups, chroot, uid, proof; fatal on failure. */
void privs_drop(const char *user, const char *chroot_dir)
{
	uid_t uid = 0;
	gid_t gid = 0;

	if (user == NULL && chroot_dir == NULL)
		return;
	if (geteuid() != 0)
		msg_fatal("privs_drop: need root privileges to %s", user != NULL ?
			  "change user" : "chroot");
	if (user != NULL) {
		errno = 0;
		struct passwd *pw = getpwnam(user);
		if (pw == NULL)
			msg_fatal("getpwnam(%s) failed: %s", user,
				  errno != 0 ? strerror(errno) : "no such user");
		if (pw->pw_uid == 0)
			msg_fatal("user %s has uid 0: refusing to run a daemon as root", user);
		uid = pw->pw_uid;
		gid = pw->pw_gid;
		if (initgroups(user, gid) < 0)
			msg_fatal("initgroups(%s, %ld) failed: %m", user, (long)gid);
		if (setresgid(gid, gid, gid) < 0)
			msg_fatal("setresgid(%ld) failed: %m", (long)gid);
	}
	if (chroot_dir != NULL) {
		if (chroot(chroot_dir) < 0)
			msg_fatal("chroot(%s) failed: %m", chroot_dir);
		if (chdir("/") < 0)
			msg_fatal("chdir(/) in %s failed: %m", chroot_dir);
	}
	if (user != NULL) {
		if (setresuid(uid, uid, uid) < 0)
			msg_fatal("setresuid(%ld) failed: %m", (long)uid);
		/* The proof: with every uid dropped, root must be out of reach. */
		if (setuid(0) == 0 || geteuid() == 0 || getuid() == 0)
			msg_fatal("privs_drop: root privileges could be regained after dropping "
				  "to %s", user);
	}
	msg_debug("privs_drop: user=%s chroot=%s", user != NULL ? user : "(unchanged)",
		  chroot_dir != NULL ? chroot_dir : "(none)");
}

static gid_t *privs_root_groups;
static int privs_root_ngroups = -1;

void privs_run_as(uid_t uid, gid_t gid)
{
	if (privs_root_ngroups < 0) {
		int n = getgroups(0, NULL);
		if (n < 0)
			msg_fatal("getgroups failed: %m");
		privs_root_groups = xcalloc((size_t)n + 1, sizeof(gid_t));
		if ((privs_root_ngroups = getgroups(n, privs_root_groups)) < 0)
			msg_fatal("getgroups failed: %m");
	}
	if (geteuid() != 0 && seteuid(0) < 0)
		msg_fatal("seteuid(0) failed: %m");
	if (uid == 0) {
		if (setgroups((size_t)privs_root_ngroups, privs_root_groups) < 0 ||
		    setegid(getgid()) < 0)
			msg_fatal("cannot restore root's groups: %m");
		return;
	}
	if (setgroups(1, &gid) < 0 || setegid(gid) < 0 || seteuid(uid) < 0)
		msg_fatal("cannot run as uid %lu gid %lu: %m", (unsigned long)uid,
			  (unsigned long)gid);
}
