/* pw.c: petrel-pw ("petrel pw"): hash a password for a user database, or
 * check a password against a hash, like Dovecot's "doveadm pw".
 *
 * SYNOPSIS
 *	petrel pw [-l] [-p password] [-r rounds] [-s scheme] [-u user] [-V]
 *	petrel pw -t {SCHEME}hash [-p password]
 * DESCRIPTION
 *	Prints "{SCHEME}hash" for the password, hashed with libcrypt and a
 *	random salt from getrandom(). Schemes (-l lists them):
 *		SHA512-CRYPT	$6$ (the default, as Dovecot's)
 *		SHA256-CRYPT	$5$
 *		BLF-CRYPT	bcrypt, $2y$
 *		CRYPT		yescrypt, $y$ (Dovecot's CRYPT scheme checks
 *				any crypt(3) hash, so it reads these too on
 *				a system whose libcrypt has yescrypt)
 *	Scheme names are case-insensitive. -r sets the cost: rounds for the
 *	SHA schemes (1000..999999999), log2 of the rounds for BLF-CRYPT
 *	(4..31), the yescrypt cost for CRYPT (1..11); default libcrypt's.
 *	The password is -p, else it is read from the terminal twice without
 *	echo ("Enter new password: ", "Retype new password: "; three tries),
 *	else (standard input not a terminal) one line of standard input.
 *	-V checks the new hash before printing it, followed by
 *	" (verified)". -t checks the password ("Enter password to verify: ")
 *	against an existing hash and prints "{SCHEME}hash (verified)" with
 *	exit 0 when it matches. -u is accepted for Dovecot compatibility and
 *	ignored (no scheme here needs the user name).
 * SECURITY
 *	The password lives in one buffer that is wiped before exit, as is
 *	libcrypt's work area; a -p argument is overwritten in argv at once
 *	(it was visible in ps(1) until then: prefer the prompt or a pipe).
 *	Hashes are compared in constant time. Needs no privileges.
 * DIAGNOSTICS
 *	"petrel-pw: fatal: Unknown scheme: X", "...: Passwords don't match!",
 *	"...: reverse password verification check failed: Password
 *	mismatch", ...; exit 1 after any of them, else 0. */
#include <config.h>

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <termios.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

#define PW_MAX 1024      /* password bytes */
#define PW_SALT_BYTES 16 /* random bytes for a salt */
#define PW_TRIES 3       /* typing the password twice */

struct pw_scheme {
	const char *name;
	const char *prefix; /* crypt_gensalt prefix */
};

static const struct pw_scheme pw_schemes[] = {
	{ "SHA512-CRYPT", "$6$" },
	{ "SHA256-CRYPT", "$5$" },
	{ "BLF-CRYPT", "$2y$" },
	{ "CRYPT", "$y$" },
};

/* The password and libcrypt's work area, wiped at exit. */
static char pw_password[PW_MAX + 2];
static char pw_retype[PW_MAX + 2];
static struct crypt_data *pw_crypt;

/* pw_wipe: clear every secret (also the cleanup hook of msg_fatal). */
static void pw_wipe(void)
{
	secure_zero(pw_password, sizeof(pw_password));
	secure_zero(pw_retype, sizeof(pw_retype));
	if (pw_crypt != NULL) {
		xfree_secret(pw_crypt, sizeof(*pw_crypt));
		pw_crypt = NULL;
	}
}

/* pw_usage: Dovecot's synopsis; exits. */
static void ATTR_NORETURN pw_usage(void)
{
	msg_fatal("usage: petrel pw [-l] [-p plaintext] [-r rounds] [-s scheme] [-t hash] "
		  "[-u user] [-V]");
}

/* pw_scheme_find: a scheme by name (any case), or NULL. */
static const struct pw_scheme *pw_scheme_find(const char *name)
{
	for (size_t i = 0; i < N_ELEMENTS(pw_schemes); i++)
		if (str_eq_icase(name, pw_schemes[i].name))
			return &pw_schemes[i];
	return NULL;
}

/* pw_read_line: one line from fd into buf (without the newline); false at
 * end of input before any byte. Fatal when longer than PW_MAX. Reads byte
 * by byte so that no stdio buffer keeps a copy. */
static bool pw_read_line(int fd, char *buf)
{
	size_t len = 0;
	ssize_t n;
	char c;

	while ((n = read(fd, &c, 1)) == 1 || (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		if (c == '\n')
			break;
		if (len >= PW_MAX)
			msg_fatal("password longer than %d bytes", PW_MAX);
		buf[len++] = c;
	}
	if (n < 0)
		msg_fatal("read password failed: %m");
	buf[len] = '\0';
	return n == 1 || len > 0;
}

/* pw_ask: prompt on the terminal and read a line without echo. */
static void pw_ask(const char *prompt, char *buf)
{
	struct termios old, quiet;
	bool echo_off = tcgetattr(STDIN_FILENO, &old) == 0;

	fputs(prompt, stderr);
	fflush(stderr);
	if (echo_off) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		echo_off = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
	}
	bool got = pw_read_line(STDIN_FILENO, buf);
	if (echo_off)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	if (!got)
		msg_fatal("no password given");
}

/* pw_get: the password into pw_password: from -p, the terminal or one
 * line of standard input. */
static void pw_get(char *arg, bool verify_only)
{
	if (arg != NULL) {
		if (!str_copy(pw_password, PW_MAX + 1, arg))
			msg_fatal("password longer than %d bytes", PW_MAX);
		secure_zero(arg, strlen(arg));
	} else if (!isatty(STDIN_FILENO)) {
		if (!pw_read_line(STDIN_FILENO, pw_password))
			msg_fatal("no password given");
	} else if (verify_only) {
		pw_ask("Enter password to verify: ", pw_password);
	} else {
		for (int tries = 0;; tries++) {
			pw_ask("Enter new password: ", pw_password);
			pw_ask("Retype new password: ", pw_retype);
			if (strcmp(pw_password, pw_retype) == 0)
				break;
			if (tries + 1 >= PW_TRIES)
				msg_fatal("Passwords don't match!");
			msg_error("Passwords don't match!");
		}
	}
	if (pw_password[0] == '\0')
		msg_fatal("empty password");
}

/* pw_equal: constant-time comparison of two NUL-terminated strings. */
static bool pw_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;

	for (size_t i = 0; i < la && i < lb; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

/* pw_check: the password against a crypt(3) hash. */
static bool pw_check(const char *hash)
{
	if (hash[0] == '\0' || hash[0] == '*')
		return false;
	memset(pw_crypt, 0, sizeof(*pw_crypt));
	const char *out = crypt_r(pw_password, hash, pw_crypt);
	return out != NULL && out[0] != '*' && pw_equal(out, hash);
}

/* pw_hash: hash pw_password with scheme; returns libcrypt's buffer. */
static const char *pw_hash(const struct pw_scheme *scheme, unsigned long rounds,
			   const char *rounds_text)
{
	char rbytes[PW_SALT_BYTES], setting[CRYPT_GENSALT_OUTPUT_SIZE];
	size_t got = 0;

	while (got < sizeof(rbytes)) {
		ssize_t n = getrandom(rbytes + got, sizeof(rbytes) - got, 0);
		if (n < 0 && errno != EINTR)
			msg_fatal("getrandom() failed: %m");
		got += n > 0 ? (size_t)n : 0;
	}
	if (crypt_gensalt_rn(scheme->prefix, rounds, rbytes, (int)sizeof(rbytes), setting,
			     (int)sizeof(setting)) == NULL) {
		if (rounds != 0 && errno == EINVAL)
			msg_fatal("Invalid number of rounds: %s", rounds_text);
		msg_fatal("crypt_gensalt(%s) failed: %m", scheme->name);
	}
	secure_zero(rbytes, sizeof(rbytes));
	memset(pw_crypt, 0, sizeof(*pw_crypt));
	const char *out = crypt_r(pw_password, setting, pw_crypt);
	if (out == NULL || out[0] == '*')
		msg_fatal("crypt(%s) failed: %m", scheme->name);
	return out;
}

/* pw_test: -t {SCHEME}hash; exits 0 on a match, fatal otherwise. */
static void pw_test(const char *test_hash)
{
	const char *end = test_hash[0] == '{' ? strchr(test_hash, '}') : NULL;
	char name[64];

	if (end == NULL || !str_format(name, sizeof(name), "%.*s", (int)(end - test_hash - 1),
				       test_hash + 1))
		msg_fatal("Missing {scheme} prefix from hash");
	const struct pw_scheme *scheme = pw_scheme_find(name);
	if (scheme == NULL)
		msg_fatal("Unknown scheme: %s", name);
	if (!pw_check(end + 1))
		msg_fatal("reverse password verification check failed: Password mismatch");
	printf("{%s}%s (verified)\n", scheme->name, end + 1);
}

/* pw_rounds: the -r argument. */
static unsigned long pw_rounds(const char *text)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || n == 0 ||
	    n > 999999999UL)
		msg_fatal("Invalid number of rounds: %s", text);
	return n;
}

int main(int argc, char **argv)
{
	const char *scheme_name = "SHA512-CRYPT", *test_hash = NULL, *rounds_text = NULL;
	char *plaintext = NULL;
	unsigned long rounds = 0;
	bool list = false, verify = false;
	int c;

	msg_init("petrel-pw");
	msg_set_target(MSG_TARGET_TTY);
	msg_set_cleanup(pw_wipe);
	while ((c = getopt(argc, argv, "lp:r:s:t:u:V")) != -1) {
		switch (c) {
		case 'l':
			list = true;
			break;
		case 'p':
			plaintext = optarg;
			break;
		case 'r':
			rounds = pw_rounds(rounds_text = optarg);
			break;
		case 's':
			scheme_name = optarg;
			break;
		case 't':
			test_hash = optarg;
			break;
		case 'u':
			break; /* for schemes that need the user name: none here */
		case 'V':
			verify = true;
			break;
		default:
			pw_usage();
		}
	}
	if (optind != argc)
		pw_usage();
	if (list) {
		for (size_t i = 0; i < N_ELEMENTS(pw_schemes); i++)
			printf("%s ", pw_schemes[i].name);
		printf("\n");
		return fflush(stdout) == 0 ? 0 : 1;
	}
	const struct pw_scheme *scheme = pw_scheme_find(scheme_name);
	if (scheme == NULL)
		msg_fatal("Unknown scheme: %s", scheme_name);
	pw_crypt = xcalloc(1, sizeof(*pw_crypt));
	pw_get(plaintext, test_hash != NULL);
	if (test_hash != NULL) {
		pw_test(test_hash);
	} else {
		const char *hash = pw_hash(scheme, rounds, rounds_text);
		char copy[CRYPT_OUTPUT_SIZE];
		str_copy(copy, sizeof(copy), hash);
		if (verify && !pw_check(copy))
			msg_fatal("reverse password verification check failed: Password mismatch");
		printf("{%s}%s%s\n", scheme->name, copy, verify ? " (verified)" : "");
	}
	pw_wipe();
	if (fflush(stdout) != 0 || ferror(stdout))
		msg_fatal("write error on stdout: %m");
	return 0;
}
