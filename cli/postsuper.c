/* postsuper.c: the postsuper command: queue maintenance for the superuser.
 *
 * SYNOPSIS
 *	postsuper [-psv] [-c config_dir] [-d queue_id] [-h queue_id]
 *		[-H queue_id] [-r queue_id] [queue ...]
 * DESCRIPTION
 *	As Postfix's postsuper, on Petrel's flat queue (doc/queue-format.md):
 *	-d ID deletes the message from the named queues (default incoming,
 *	active, deferred, hold) with its delay log defer/ID; -h ID moves it
 *	to hold/ (default from incoming, active, deferred); -H ID moves it
 *	from hold/ to deferred/ with its modification time set to now, so
 *	the queue manager retries it at once; -r ID moves it to incoming/
 *	(mtime now) so that the queue manager resolves its recipients again
 *	(Postfix re-runs cleanup through maildrop/; Petrel has no cleanup
 *	stage). Each option may be repeated; an ID of "-" reads IDs from
 *	standard input, one per line; "ALL" (upper case) means every message
 *	in the queues. IDs must have the shape of a queue ID (queue_id_valid),
 *	so no path can be smuggled in. After -H or -r the queue manager is
 *	woken ('I' on public/qmgr, non-blocking, errors ignored).
 *	-s checks the structure: temp files (".*") older than a day are
 *	removed; in the message queues (not maildrop/, whose names and
 *	format are sendmail's and pickup's), other objects that are not
 *	regular files are removed, and a file whose name is not a queue ID or
 *	that does not parse is moved to corrupt/ with a warning; a name that
 *	does not match the file's inode is warned about; defer/ logs older
 *	than a day without a message are removed; corrupt/ is listed. -p
 *	removes old temp files only. Without an action, -s and -p are done.
 *	Counts are reported as Postfix does: "Deleted: 2 messages",
 *	"Placed on hold: 1 message", "Released from hold: 1 message",
 *	"Requeued: 1 message"; each message named by ID gets "ID: removed",
 *	"ID: placed on hold", "ID: released from hold" or "ID: requeued".
 * SECURITY
 *	Runs only as root or as the owner of queue_directory; root drops to
 *	that owner's IDs before touching the queue, as Postfix drops to
 *	mail_owner. Works inside queue_directory only (chdir there first).
 * DIAGNOSTICS
 *	"postsuper: ..." lines on stderr; exit 1 after a fatal error, else
 *	0 (also when a named message was not found, as in Postfix). */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/queue.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/msg.h"
#include "util/str.h"

#define POSTSUPER_MAX_TEMP_AGE (60 * 60 * 24) /* stale temp file age */
#define POSTSUPER_DEFER_DIR "defer"
#define POSTSUPER_QMGR_FIFO "public/qmgr"

enum postsuper_op {
	POSTSUPER_DELETE,
	POSTSUPER_HOLD,
	POSTSUPER_RELEASE,
	POSTSUPER_REQUEUE,
	POSTSUPER_OP_COUNT,
};

/* Per operation: its IDs, its default queues and how it is reported. */
struct postsuper_action {
	char **ids; /* from the command line, "ALL" and "-" included */
	size_t id_count;
	bool all;
	unsigned long done;
};

static struct postsuper_action postsuper_actions[POSTSUPER_OP_COUNT];

static const char *const postsuper_all_queues[] = {
	QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED, QUEUE_HOLD, NULL,
};
static const char *const postsuper_hold_queues[] = {
	QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED, NULL,
};
static const char *const postsuper_release_queues[] = { QUEUE_HOLD, NULL };
static const char *const postsuper_struct_queues[] = {
	QUEUE_MAILDROP, QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED, QUEUE_HOLD, NULL,
};

/* What each operation says, per message and in the summary. */
static const char *const postsuper_one_text[] = { "removed", "placed on hold",
						  "released from hold", "requeued" };
static const char *const postsuper_sum_text[] = { "Deleted", "Placed on hold",
						  "Released from hold", "Requeued" };

/* postsuper_usage: Postfix's usage line; exits. */
static void ATTR_NORETURN postsuper_usage(void)
{
	msg_fatal("usage: postsuper [-c config_dir] [-d queue_id (delete)] "
		  "[-h queue_id (hold)] [-H queue_id (un-hold)] "
		  "[-p (purge temporary files)] [-r queue_id (requeue)] "
		  "[-s (structure fix)] [-v (verbose)] [queue...]");
}

/* postsuper_add: one -d/-h/-H/-r argument. */
static void postsuper_add(enum postsuper_op op, const char *id)
{
	struct postsuper_action *a = &postsuper_actions[op];
	a->ids = xreallocarray(a->ids, a->id_count + 1, sizeof(*a->ids));
	a->ids[a->id_count++] = (char *)id;
	if (strcmp(id, "ALL") == 0)
		a->all = true;
}

/* postsuper_queue_known: a queue name postsuper may work on. */
static bool postsuper_queue_known(const char *name)
{
	for (size_t i = 0; postsuper_struct_queues[i] != NULL; i++)
		if (strcmp(name, postsuper_struct_queues[i]) == 0)
			return true;
	return false;
}

/* postsuper_privileges: only root or the queue owner; root becomes the
 * queue owner (Postfix: mail_owner) so that a hostile queue cannot lead
 * it elsewhere. Then chdir into the queue. */
static void postsuper_privileges(const char *queue_dir)
{
	struct stat st;

	if (stat(queue_dir, &st) < 0)
		msg_fatal("stat(%s) failed: %m", queue_dir);
	if (getuid() != 0 && getuid() != st.st_uid)
		msg_fatal("use of this command is reserved for the superuser");
	if (getuid() == 0 && st.st_uid != 0) {
		gid_t gid = st.st_gid;
		if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(st.st_uid) < 0)
			msg_fatal("cannot run as uid %lu gid %lu: %m", (unsigned long)st.st_uid,
				  (unsigned long)gid);
		if (setuid(0) == 0)
			msg_fatal("privileges were not dropped");
	}
	if (chdir(queue_dir) < 0)
		msg_fatal("chdir(%s) failed: %m", queue_dir);
}

/* postsuper_rename: move queue/id to to/id without replacing anything.
 * Returns 0, or -1 with errno (ENOENT: not there). */
static int postsuper_rename(const char *from, const char *to)
{
	int r = rename_noreplace(from, to);
	if (r > 0) /* in both places: a message must never be in two queues */
		msg_fatal("unlink(%s) failed: %m", from);
	return r;
}

/* postsuper_touch: set the mtime (and atime) of path to now. */
static void postsuper_touch(const char *path)
{
	if (utimensat(AT_FDCWD, path, NULL, 0) < 0)
		msg_warn("%s: reset time stamps: %m", path);
}

/* postsuper_one_in: apply op to queue/id. true when done. */
static bool postsuper_one_in(enum postsuper_op op, const char *queue, const char *id)
{
	static const char *const target[] = { NULL, QUEUE_HOLD, QUEUE_DEFERRED, QUEUE_INCOMING };
	char path[64], dest[64], log[64];
	struct stat st;

	if (!str_format(path, sizeof(path), "%s/%s", queue, id) || lstat(path, &st) < 0 ||
	    !S_ISREG(st.st_mode))
		return false;
	if (op == POSTSUPER_DELETE) {
		if (str_format(log, sizeof(log), "%s/%s", POSTSUPER_DEFER_DIR, id) &&
		    unlink(log) < 0 && errno != ENOENT)
			msg_fatal("remove file %s: %m", log);
		if (unlink(path) == 0)
			return true;
		if (errno != ENOENT)
			msg_fatal("remove file %s: %m", path);
		return false;
	}
	if (!str_format(dest, sizeof(dest), "%s/%s", target[op], id))
		return false;
	if (strcmp(queue, target[op]) == 0) {
		postsuper_touch(dest); /* requeue within incoming/ */
		return true;
	}
	if (postsuper_rename(path, dest) < 0) {
		if (errno != ENOENT)
			msg_fatal("rename file %s as %s: %m", path, dest);
		return false;
	}
	if (op == POSTSUPER_RELEASE || op == POSTSUPER_REQUEUE)
		postsuper_touch(dest);
	return true;
}

/* postsuper_applies: whether op works on messages in queue (Postfix: hold
 * never takes from hold/ or maildrop/, release only from hold/, requeue
 * never from maildrop/). */
static bool postsuper_applies(enum postsuper_op op, const char *queue)
{
	if (op == POSTSUPER_RELEASE)
		return strcmp(queue, QUEUE_HOLD) == 0;
	if (op == POSTSUPER_HOLD && strcmp(queue, QUEUE_HOLD) == 0)
		return false;
	return op == POSTSUPER_DELETE || strcmp(queue, QUEUE_MAILDROP) != 0;
}

/* postsuper_one: op on the message id in the first of queues that has it. */
static void postsuper_one(enum postsuper_op op, const char *const *queues, const char *id)
{
	if (!queue_id_valid(id)) {
		msg_warn("invalid mail queue id: %s", id);
		return;
	}
	for (size_t i = 0; queues[i] != NULL; i++) {
		if (postsuper_applies(op, queues[i]) && postsuper_one_in(op, queues[i], id)) {
			msg_info("%s: %s", id, postsuper_one_text[op]);
			postsuper_actions[op].done++;
			return;
		}
	}
}

/* postsuper_stream: "-": IDs from standard input, one per line. */
static void postsuper_stream(enum postsuper_op op, const char *const *queues)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	while ((len = getline(&line, &cap, stdin)) >= 0) {
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		postsuper_one(op, queues, line);
	}
	if (ferror(stdin))
		msg_fatal("read stdin: %m");
	free(line);
}

/* postsuper_all: op on every message of queues ("ALL"). */
static void postsuper_all(enum postsuper_op op, const char *const *queues)
{
	const char *error, *id;

	for (size_t i = 0; queues[i] != NULL; i++) {
		if (!postsuper_applies(op, queues[i]))
			continue;
		struct queue_scan *scan = queue_scan_open(".", queues[i], &error);
		if (scan == NULL) {
			if (errno == ENOENT)
				continue;
			msg_fatal("%s", error);
		}
		while ((id = queue_scan_next(scan)) != NULL)
			if (postsuper_one_in(op, queues[i], id))
				postsuper_actions[op].done++;
		queue_scan_close(&scan);
	}
}

/* postsuper_run: one operation over its IDs. */
static void postsuper_run(enum postsuper_op op, const char *const *named)
{
	static const char *const *const defaults[] = {
		postsuper_all_queues, postsuper_hold_queues, postsuper_release_queues,
		postsuper_all_queues,
	};
	struct postsuper_action *a = &postsuper_actions[op];
	const char *const *queues = named != NULL ? named : defaults[op];
	static const char letters[] = "dhHr";

	if (a->id_count == 0)
		return;
	if (a->all) {
		if (a->id_count > 1)
			msg_warn("option \"-%c ALL\" will ignore other command line queue IDs",
				 letters[op]);
		postsuper_all(op, queues);
		return;
	}
	for (size_t i = 0; i < a->id_count; i++) {
		if (strcmp(a->ids[i], "-") == 0)
			postsuper_stream(op, queues);
		else
			postsuper_one(op, queues, a->ids[i]);
	}
}

/* postsuper_wake: 'I' to the queue manager's fifo; it may not run. */
static void postsuper_wake(void)
{
	if (fifo_trigger(POSTSUPER_QMGR_FIFO, 'I') < 0)
		msg_debug("write %s: %m", POSTSUPER_QMGR_FIFO);
}

/* postsuper_sync: make the renames durable (Postfix does not; house rule). */
static void postsuper_sync(void)
{
	for (size_t i = 0; postsuper_struct_queues[i] != NULL; i++)
		if (fsync_dir(postsuper_struct_queues[i]) < 0 && errno != ENOENT)
			msg_warn("fsync(%s) failed: %m", postsuper_struct_queues[i]);
}

/* postsuper_to_corrupt: move a damaged or misplaced file to corrupt/. */
static void postsuper_to_corrupt(const char *queue, const char *name, const char *why)
{
	char path[512], dest[512];

	if (!str_format(path, sizeof(path), "%s/%s", queue, name) ||
	    !str_format(dest, sizeof(dest), "%s/%s", QUEUE_CORRUPT, name))
		return;
	if (postsuper_rename(path, dest) < 0)
		msg_warn("%s: %s; cannot move it to %s/: %m", path, why, QUEUE_CORRUPT);
	else
		msg_warn("%s: %s; moved to %s/", path, why, QUEUE_CORRUPT);
}

/* postsuper_check_message: a file with an ID name: parse it, compare its
 * inode with the ID. */
static void postsuper_check_message(const char *queue, const char *name, const struct stat *st)
{
	char path[512];
	const char *error;

	if (!str_format(path, sizeof(path), "%s/%s", queue, name))
		return;
	struct queue_file *qf = queue_file_read(path, &error);
	if (qf == NULL) {
		if (errno == EBADMSG)
			postsuper_to_corrupt(queue, name, error);
		else if (errno != ENOENT)
			msg_warn("%s", error);
		return;
	}
	queue_file_free(&qf);
	/* The inode part is what follows the 13 time digits. */
	if (strtoull(name + 13, NULL, 16) != (unsigned long long)st->st_ino)
		msg_warn("name/inode mismatch: %s", path);
}

/* postsuper_check_entry: one directory entry of a queue (-s, -p). */
static void postsuper_check_entry(const char *queue, const char *name, bool structure)
{
	char path[512];
	struct stat st;

	if (!str_format(path, sizeof(path), "%s/%s", queue, name) || lstat(path, &st) < 0)
		return;
	if (name[0] == '.') {
		/* A temp file: a writer crashed, or is still writing. */
		if (S_ISREG(st.st_mode) && time(NULL) > st.st_mtime + POSTSUPER_MAX_TEMP_AGE) {
			if (unlink(path) == 0)
				msg_info("removed stale temp file %s", path);
			else if (errno != ENOENT)
				msg_warn("remove file %s: %m", path);
		}
		return;
	}
	/* maildrop/ belongs to sendmail and pickup (their own names and
	 * format): only its stale temp files are postsuper's business. */
	if (!structure || strcmp(queue, QUEUE_MAILDROP) == 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		if (rmdir(path) < 0 && errno != ENOENT)
			msg_warn("remove subdirectory %s: %m", path);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		if (unlink(path) < 0 && errno != ENOENT)
			msg_warn("remove file %s: %m", path);
		return;
	}
	if (!queue_id_valid(name))
		postsuper_to_corrupt(queue, name, "bogus file name");
	else
		postsuper_check_message(queue, name, &st);
}

/* postsuper_readdir: call fn(queue, name, flag) for every entry of queue
 * (names copied first, so fn may rename). */
static void postsuper_readdir(const char *queue, void (*fn)(const char *, const char *, bool),
			      bool flag)
{
	DIR *dir = opendir(queue);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;

	if (dir == NULL) {
		if (errno != ENOENT)
			msg_fatal("open directory %s: %m", queue);
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(dir);
	for (size_t i = 0; i < n; i++) {
		fn(queue, names[i], flag);
		free(names[i]);
	}
	free(names);
}

/* postsuper_defer_entry: a delay log without its message, a day old. */
static void postsuper_defer_entry(const char *dir, const char *name, bool unused)
{
	char path[512], msg[512];
	struct stat st;

	if (!queue_id_valid(name) || !str_format(path, sizeof(path), "%s/%s", dir, name) ||
	    lstat(path, &st) < 0 || time(NULL) <= st.st_mtime + POSTSUPER_MAX_TEMP_AGE)
		return;
	for (size_t i = 0; postsuper_struct_queues[i] != NULL; i++)
		if (str_format(msg, sizeof(msg), "%s/%s", postsuper_struct_queues[i], name) &&
		    access(msg, F_OK) == 0)
			return;
	if (unlink(path) == 0)
		msg_info("removed stale delay log %s", path);
}

/* postsuper_corrupt_entry: list one file kept in corrupt/. */
static void postsuper_corrupt_entry(const char *dir, const char *name, bool unused)
{
	msg_warn("%s/%s: damaged queue file kept for inspection", dir, name);
}

/* postsuper_structure: -s and -p over queues. */
static void postsuper_structure(const char *const *queues, bool structure)
{
	for (size_t i = 0; queues[i] != NULL; i++)
		postsuper_readdir(queues[i], postsuper_check_entry, structure);
	if (!structure)
		return;
	postsuper_readdir(POSTSUPER_DEFER_DIR, postsuper_defer_entry, false);
	postsuper_readdir(QUEUE_CORRUPT, postsuper_corrupt_entry, false);
}

/* postsuper_report: the counts, as Postfix words them. */
static void postsuper_report(void)
{
	static const enum postsuper_op order[] = { POSTSUPER_REQUEUE, POSTSUPER_DELETE,
						   POSTSUPER_HOLD, POSTSUPER_RELEASE };
	for (size_t i = 0; i < N_ELEMENTS(order); i++) {
		unsigned long n = postsuper_actions[order[i]].done;
		if (n > 0)
			msg_info("%s: %lu message%s", postsuper_sum_text[order[i]], n,
				 n > 1 ? "s" : "");
	}
}

/* postsuper_options: the command line; returns the first queue name. */
static int postsuper_options(int argc, char **argv, const char **config_dir_r, bool *structure_r,
			     bool *purge_r)
{
	int c;

	while ((c = getopt(argc, argv, "c:d:h:H:pr:sv")) != -1) {
		switch (c) {
		case 'c':
			*config_dir_r = optarg;
			break;
		case 'd':
			postsuper_add(POSTSUPER_DELETE, optarg);
			break;
		case 'h':
			postsuper_add(POSTSUPER_HOLD, optarg);
			break;
		case 'H':
			postsuper_add(POSTSUPER_RELEASE, optarg);
			break;
		case 'p':
			*purge_r = true;
			break;
		case 'r':
			postsuper_add(POSTSUPER_REQUEUE, optarg);
			break;
		case 's':
			*structure_r = true;
			break;
		case 'v':
			msg_verbose++;
			break;
		default:
			postsuper_usage();
		}
	}
	for (int i = optind; i < argc; i++)
		if (!postsuper_queue_known(argv[i]))
			msg_fatal("invalid directory name: %s", argv[i]);
	return optind;
}

int main(int argc, char **argv)
{
	const char *config_dir = getenv("MAIL_CONFIG"), *error;
	bool structure = false, purge = false, any = false;

	umask(077);
	msg_init("postsuper");
	msg_set_target(MSG_TARGET_TTY);
	int first = postsuper_options(argc, argv, &config_dir, &structure, &purge);
	const char *const *named = first < argc ? (const char *const *)argv + first : NULL;
	for (int op = 0; op < POSTSUPER_OP_COUNT; op++)
		any |= postsuper_actions[op].id_count > 0;
	if (!any && !structure && !purge)
		structure = purge = true;

	if (config_dir == NULL || *config_dir == '\0')
		config_dir = PETREL_SYSCONFDIR;
	if (!config_load(config_dir, false, &error))
		msg_fatal("%s", error);
	postsuper_privileges(config_str("queue_directory"));

	if (structure || purge)
		postsuper_structure(named != NULL ? named : postsuper_struct_queues, structure);
	/* Postfix's order: delete, requeue, hold, release. */
	postsuper_run(POSTSUPER_DELETE, named);
	postsuper_run(POSTSUPER_REQUEUE, named);
	postsuper_run(POSTSUPER_HOLD, named);
	postsuper_run(POSTSUPER_RELEASE, named);
	postsuper_sync();
	if (postsuper_actions[POSTSUPER_RELEASE].done + postsuper_actions[POSTSUPER_REQUEUE].done > 0)
		postsuper_wake();
	postsuper_report();
	for (int op = 0; op < POSTSUPER_OP_COUNT; op++)
		free(postsuper_actions[op].ids);
	config_deinit();
	return 0;
}
