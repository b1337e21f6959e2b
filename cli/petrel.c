/* petrel.c: the petrel control command.
 *
 * SYNOPSIS
 *	petrel [-c config_dir] [-v] start | stop | reload | status | start-fg
 *
 * DESCRIPTION
 *	start	run daemon_directory/master -w in the background and wait
 *		until it is up (its pid file locked)
 *	stop	SIGTERM to the master, then wait until it has exited
 *	reload	SIGHUP to the master: re-read main.cf and master.cf
 *	status	"the Petrel mail system is running: PID: N" (exit 0) or
 *		"... is not running" (exit 1), as postfix status says it
 *	start-fg  run master -d in the foreground (for containers and
 *		service managers)
 *
 *	The master's pid comes from queue_directory/pid/master.pid, which the
 *	master keeps locked while it runs: a file whose lock is free is stale.
 *	Progress lines go to stderr as "petrel/master: ..."; errors are one
 *	line, "petrel: fatal: ...", with exit status 1.
 *
 * SECURITY
 *	Needs the rights of whoever runs the mail system (root in
 *	production) to signal the master. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mail/config.h"
#include "server/master_proto.h"
#include "util/msg.h"
#include "util/str.h"

#ifndef PETREL_SYSCONFDIR
#define PETREL_SYSCONFDIR "/etc/petrel"
#endif

/* How long stop waits for the master to exit. */
#define PETREL_STOP_TIMEOUT_MS 60000

static const char *petrel_config_dir = PETREL_SYSCONFDIR;
static int petrel_verbose;

/* petrel_say: a progress line, as postfix-script prints them. */
static void petrel_say(const char *text)
{
	fprintf(stderr, "petrel/master: %s\n", text);
}

/* petrel_usage: a bad command line is fatal. */
static void petrel_usage(void)
{
	msg_fatal("usage: petrel [-c config_dir] [-v] start|stop|reload|status|start-fg");
}

/* petrel_master_pid: the running master's pid, or 0 when none holds the
 * pid file lock. */
static pid_t petrel_master_pid(void)
{
	struct str path = STR_INIT;
	str_printf(&path, "%s/%s", config_str("queue_directory"), MASTER_PID_FILE);
	int fd = open(str_c(&path), O_RDONLY | O_CLOEXEC);
	str_deinit(&path);
	if (fd < 0)
		return 0;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	pid_t pid = 0;
	if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
		char buf[64];
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		long file_pid = 0;
		if (n > 0) {
			buf[n] = '\0';
			file_pid = strtol(buf, NULL, 10);
		}
		/* The file, unless it is being rewritten; the lock holder else. */
		pid = file_pid > 0 ? (pid_t)file_pid : fl.l_pid;
	}
	close(fd);
	return pid;
}

/* petrel_sleep_ms: poll interval while waiting for the master. */
static void petrel_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* petrel_master_path: daemon_directory/master. */
static void petrel_master_path(struct str *path)
{
	str_printf(path, "%s/master", config_str("daemon_directory"));
}

/* petrel_start: master -w, which returns once the daemon is up. */
static int petrel_start(void)
{
	if (petrel_master_pid() > 0)
		msg_fatal("the Petrel mail system is already running");
	petrel_say("starting the Petrel mail system");
	struct str path = STR_INIT;
	petrel_master_path(&path);
	char *argv[] = { "master", "-c", (char *)petrel_config_dir, "-w",
			 petrel_verbose ? "-v" : NULL, NULL };
	pid_t pid = fork();
	if (pid < 0)
		msg_fatal("fork() failed: %m");
	if (pid == 0) {
		execv(str_c(&path), argv);
		msg_error("execv(%s) failed: %m", str_c(&path));
		_exit(1);
	}
	str_deinit(&path);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			msg_fatal("waitpid() failed: %m");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || petrel_master_pid() == 0)
		msg_fatal("mail system startup failed");
	return 0;
}

/* petrel_start_fg: become master -d. */
static int petrel_start_fg(void)
{
	if (petrel_master_pid() > 0)
		msg_fatal("the Petrel mail system is already running");
	struct str path = STR_INIT;
	petrel_master_path(&path);
	char *argv[] = { "master", "-c", (char *)petrel_config_dir, "-d",
			 petrel_verbose ? "-v" : NULL, NULL };
	execv(str_c(&path), argv);
	msg_fatal("execv(%s) failed: %m", str_c(&path));
}

/* petrel_signal: send signo to the running master. */
static pid_t petrel_signal(int signo)
{
	pid_t pid = petrel_master_pid();
	if (pid <= 0)
		msg_fatal("the Petrel mail system is not running");
	if (kill(pid, signo) < 0)
		msg_fatal("kill(%ld) failed: %m", (long)pid);
	return pid;
}

/* petrel_process_gone: pid has exited (a zombie counts as gone: its
 * parent may not be us). */
static bool petrel_process_gone(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kill(pid, 0) < 0 && errno == ESRCH;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	const char *paren = strrchr(buf, ')');
	return paren != NULL && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

/* petrel_stop: SIGTERM, then wait for the pid file lock to go and the
 * process to exit. */
static int petrel_stop(void)
{
	petrel_say("stopping the Petrel mail system");
	pid_t pid = petrel_signal(SIGTERM);
	for (unsigned waited = 0; petrel_master_pid() > 0 || !petrel_process_gone(pid);
	     waited += 50) {
		if (waited >= PETREL_STOP_TIMEOUT_MS)
			msg_fatal("master pid %ld did not stop", (long)pid);
		petrel_sleep_ms(50);
	}
	return 0;
}

/* petrel_reload: SIGHUP. */
static int petrel_reload(void)
{
	petrel_say("refreshing the Petrel mail system");
	petrel_signal(SIGHUP);
	return 0;
}

/* petrel_status: exit 0 when running. */
static int petrel_status(void)
{
	pid_t pid = petrel_master_pid();
	char text[128];
	if (pid <= 0) {
		petrel_say("the Petrel mail system is not running");
		return 1;
	}
	snprintf(text, sizeof(text), "the Petrel mail system is running: PID: %ld", (long)pid);
	petrel_say(text);
	return 0;
}

/* main: options, main.cf, then one command. */
int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(void);
	} commands[] = {
		{ "start", petrel_start },   { "stop", petrel_stop },
		{ "reload", petrel_reload }, { "status", petrel_status },
		{ "start-fg", petrel_start_fg },
	};
	const char *error;
	int ch;

	msg_init("petrel");
	msg_set_target(MSG_TARGET_TTY);
	if (argc > 1 && strcmp(argv[1], "pw") == 0 && execv(PETREL_SBINDIR "/petrel-pw", argv + 1) < 0)
		msg_fatal("execv(%s/petrel-pw) failed: %m", PETREL_SBINDIR); /* petrel pw: cli/pw.c */
	if (getenv("MAIL_CONFIG") != NULL)
		petrel_config_dir = getenv("MAIL_CONFIG");
	while ((ch = getopt(argc, argv, "c:v")) != -1) {
		if (ch == 'c')
			petrel_config_dir = optarg;
		else if (ch == 'v')
			petrel_verbose = 1;
		else
			petrel_usage();
	}
	if (argc - optind != 1)
		petrel_usage();
	if (!config_load(petrel_config_dir, false, &error))
		msg_fatal("%s", error);
	for (size_t i = 0; i < N_ELEMENTS(commands); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			return commands[i].fn();
	petrel_usage();
}
