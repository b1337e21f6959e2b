/* master_dirs.c: the queue directory layout, made at start-up.
 *
 * queue_dirs_create() (lib/mail/queue_dirs.c) makes queue_directory and its
 * subdirectories (incoming active deferred hold corrupt maildrop pickup pid
 * private public) if they are missing. When the master runs as root the
 * daemons are mail_owner, so every subdirectory but pid/ (the master's
 * own) is handed to mail_owner; maildrop/ (1733) and public/ (0711) are
 * open to local users, since Petrel's sendmail is not setgid. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/queue.h"
#include "master/master.h"
#include "util/msg.h"
#include "util/str.h"

/* master_dirs_owner: hand one subdirectory to mail_owner. */
static void master_dirs_owner(const char *queue_dir, const char *name, uid_t uid, gid_t gid)
{
	struct str path = STR_INIT;
	str_printf(&path, "%s/%s", queue_dir, name);
	/* Local submission without a setgid program: any user may drop a
	 * file into maildrop/ (sticky, so nobody can remove another's file)
	 * and reach the trigger fifos in public/ (their own modes decide who
	 * may write). pickup treats maildrop files as untrusted input. */
	mode_t mode = 0;
	if (strcmp(name, "public") == 0)
		mode = 0711;
	else if (strcmp(name, "maildrop") == 0)
		mode = 01733;
	if (mode != 0 && chmod(str_c(&path), mode) < 0)
		msg_fatal("chmod(%s) failed: %m", str_c(&path));
	if (chown(str_c(&path), uid, gid) < 0)
		msg_fatal("chown(%s) failed: %m", str_c(&path));
	str_deinit(&path);
}

/* master_dirs_create: the layout, then ownership when root. */
void master_dirs_create(const char *queue_dir)
{
	const char *error;
	if (queue_dirs_create(queue_dir, &error) < 0)
		msg_fatal("%s", error);
	/* pid/ is root's, but anyone may read the pid (petrel status). */
	struct str pid_dir = STR_INIT;
	str_printf(&pid_dir, "%s/pid", queue_dir);
	if (chmod(str_c(&pid_dir), 0755) < 0)
		msg_fatal("chmod(%s) failed: %m", str_c(&pid_dir));
	str_deinit(&pid_dir);
	if (!master_is_root)
		return;
	const char *owner = config_str("mail_owner");
	struct passwd *pw = getpwnam(owner);
	if (pw == NULL)
		msg_fatal("mail_owner %s: no such user", owner);
	if (pw->pw_uid == 0)
		msg_fatal("mail_owner %s has uid 0: it must be an unprivileged user", owner);
	for (size_t i = 0; queue_dirs_names[i] != NULL; i++)
		if (strcmp(queue_dirs_names[i], "pid") != 0)
			master_dirs_owner(queue_dir, queue_dirs_names[i], pw->pw_uid, pw->pw_gid);
}

/* master_dirs_clean_temp: remove the temporary files ("incoming/.tmp.*")
 * that writers killed mid-message left behind. Called at start-up only,
 * when no writer can be running: such a file was never acknowledged. */
void master_dirs_clean_temp(const char *queue_dir)
{
	char path[4096];
	if (!str_format(path, sizeof(path), "%s/incoming", queue_dir))
		return;
	DIR *dir = opendir(path);
	if (dir == NULL)
		return;
	struct dirent *de;
	unsigned removed = 0;
	while ((de = readdir(dir)) != NULL) {
		if (strncmp(de->d_name, ".tmp.", 5) != 0)
			continue;
		if (unlinkat(dirfd(dir), de->d_name, 0) == 0)
			removed++;
		else
			msg_warn("unlink(%s/%s) failed: %m", path, de->d_name);
	}
	closedir(dir);
	if (removed > 0)
		msg_info("removed %u unfinished queue file%s from %s", removed,
			 removed == 1 ? "" : "s", path);
}
