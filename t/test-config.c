/* test-config.c: unit tests for lib/mail/config (main.cf parsing, $name
 * expansion, typed validation, list splitting, config_edit). Every main.cf
 * is written into a fresh mkdtemp() directory that is removed at the end. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/config.h"
#include "tap.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/str.h"

static char test_dir[] = "/tmp/test-config.XXXXXX";

/* write_file: dir/name with exactly len bytes. */
static void write_file(const char *name, const char *data, size_t len)
{
	char path[512];
	if (!str_format(path, sizeof(path), "%s/%s", test_dir, name))
		msg_fatal("path too long");
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) != 0)
		msg_fatal("write(%s) failed: %m", path);
}

static void write_main_cf(const char *text)
{
	write_file("main.cf", text, strlen(text));
}

/* read_file: dir/name into out; false if it cannot be read. */
static bool read_file(const char *name, struct str *out)
{
	char path[512], buf[4096];
	str_clear(out);
	if (!str_format(path, sizeof(path), "%s/%s", test_dir, name))
		return false;
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		return false;
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		str_append_n(out, buf, n);
	fclose(fp);
	return true;
}

/* load: write text as main.cf and load it. */
static bool load(const char *text, const char **error_r)
{
	write_main_cf(text);
	return config_load(test_dir, false, error_r);
}

/* ---- parsing ---- */

static const struct parse_case {
	const char *what;
	const char *file;
	const char *name[3];
	const char *want[3]; /* NULL: not set */
} parse_cases[] = {
	{ "simple definition", "relayhost = [mx.example.com]\n",
	  { "relayhost" }, { "[mx.example.com]" } },
	{ "white space around = and at the end trimmed", "myhostname   =\t  mx.example.com  \t \n",
	  { "myhostname" }, { "mx.example.com" } },
	{ "no spaces around =", "relayhost=x\nmail_owner=y", { "relayhost", "mail_owner" },
	  { "x", "y" } },
	{ "empty value", "relayhost =\n", { "relayhost" }, { "" } },
	{ "continuation lines joined", "mydestination = a,\n  b,\n\tc\nrelayhost = r\n",
	  { "mydestination", "relayhost" }, { "a,  b,\tc", "r" } },
	{ "comment inside a continued value skipped",
	  "mynetworks = 10.0.0.0/8\n# trusted\n  192.168.0.0/16\n", { "mynetworks" },
	  { "10.0.0.0/8  192.168.0.0/16" } },
	{ "blank line does not end a value", "alias_maps = hash:/a\n\n   \n  hash:/b\n",
	  { "alias_maps" }, { "hash:/a  hash:/b" } },
	{ "indented comment line ignored", "  # note\n\t# more\nrelayhost = x\n", { "relayhost" },
	  { "x" } },
	{ "# after text is part of the value", "smtpd_banner = hi # there\n", { "smtpd_banner" },
	  { "hi # there" } },
	{ "later definition wins", "relayhost = a\nmail_name = m\nrelayhost = b\n",
	  { "relayhost", "mail_name" }, { "b", "m" } },
	{ "CRLF line ends trimmed", "relayhost = x\r\nmail_name = y\r\n", { "relayhost", "mail_name" },
	  { "x", "y" } },
	{ "leading continuation ignored", "  stray text\nrelayhost = y\n", { "relayhost" }, { "y" } },
	{ "unknown names kept", "my_rbl = zen.example\nsmtpd_banner = $my_rbl\n",
	  { "my_rbl", "no_such_name" }, { "zen.example", NULL } },
};

static void test_parse(void)
{
	for (size_t i = 0; i < N_ELEMENTS(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		const char *error = NULL;
		if (!tap_ok(load(c->file, &error), "parse: %s: loads", c->what)) {
			tap_diag("error: %s", error);
			continue;
		}
		for (size_t j = 0; j < N_ELEMENTS(c->name) && c->name[j] != NULL; j++) {
			const char *raw = config_is_set(c->name[j]) ? config_lookup_raw(c->name[j]) : NULL;
			tap_is_str(raw, c->want[j], "parse: %s: %s", c->what, c->name[j]);
		}
	}
}

static const struct error_case {
	const char *what;
	const char *file;
	const char *want[3]; /* substrings of the error */
} error_cases[] = {
	{ "missing =", "relayhost = a\nno equals here\n", { "main.cf, line 2", "missing '='" } },
	{ "missing name", "= value\n", { "missing '='" } },
	{ "bad time", "mail_name = x\nsmtpd_timeout = banana\n",
	  { "main.cf, line 2", "smtpd_timeout", "\"banana\"" } },
	{ "bad value through $name", "t = soon\nsmtpd_timeout = $t\n",
	  { "smtpd_timeout", "\"$t\"", "expands to \"soon\"" } },
	{ "bad bool", "disable_vrfy_command = maybe\n", { "disable_vrfy_command", "yes or no" } },
	{ "int out of range", "smtpd_recipient_limit = 0\n", { "smtpd_recipient_limit", "range" } },
	{ "loop", "smtpd_banner = $l1\nl1 = $l2\nl2 = $l1\n", { "smtpd_banner", "levels deep" } },
	{ "self reference", "relayhost = $relayhost\n", { "relayhost", "levels deep" } },
	{ "stray $", "smtpd_banner = costs $ 5\n", { "smtpd_banner", "'$'" } },
	{ "truncated ${", "smtpd_banner = ${mail_name\n", { "smtpd_banner", "truncated" } },
	{ "unbalanced brace in a list", "mynetworks = { 10.0.0.0/8\n", { "mynetworks", "'}'" } },
	{ "word not allowed", "smtpd_forbid_bare_newline = sometimes\n",
	  { "smtpd_forbid_bare_newline", "normalize" } },
};

static void test_errors(void)
{
	for (size_t i = 0; i < N_ELEMENTS(error_cases); i++) {
		const struct error_case *c = &error_cases[i];
		const char *error = "";
		tap_ok(!load(c->file, &error), "error: %s: load fails", c->what);
		for (size_t j = 0; j < N_ELEMENTS(c->want) && c->want[j] != NULL; j++) {
			if (!tap_ok(strstr(error, c->want[j]) != NULL, "error: %s: mentions %s",
				    c->what, c->want[j]))
				tap_diag("error: %s", error);
		}
	}
	const char *error = "";
	tap_ok(!config_load("/nonexistent-petrel-dir", false, &error) &&
		       strstr(error, "open(/nonexistent-petrel-dir/main.cf) failed") != NULL,
	       "error: missing main.cf names the file");
}

/* test_limits: line, value, parameter-count and NUL-byte bounds. */
static void test_limits(void)
{
	struct str text = STR_INIT;
	const char *error = "";

	str_append(&text, "smtpd_banner = ");
	for (int i = 0; i < CONFIG_LINE_MAX; i++)
		str_append_c(&text, 'x');
	str_append_c(&text, '\n');
	tap_ok(!load(str_c(&text), &error) && strstr(error, "longer than") != NULL,
	       "limit: a line over 64 KiB is an error");

	str_set(&text, "smtpd_banner = x\n");
	for (int i = 0; i < 70; i++) {
		str_append_c(&text, ' ');
		for (int j = 0; j < 1000; j++)
			str_append_c(&text, 'y');
		str_append_c(&text, '\n');
	}
	tap_ok(!load(str_c(&text), &error) && strstr(error, "value longer than") != NULL,
	       "limit: a continued value over 64 KiB is an error");

	str_clear(&text);
	for (int i = 0; i <= CONFIG_PARAMS_MAX; i++)
		str_printf(&text, "p%d = %d\n", i, i);
	tap_ok(!load(str_c(&text), &error) && strstr(error, "more than 10000") != NULL,
	       "limit: more than 10,000 parameters is an error");

	/* 10,000 names of our own, each referred to by the next (so that
	 * only one is warned about as unused). */
	str_clear(&text);
	for (int i = 0; i < CONFIG_PARAMS_MAX; i++)
		str_printf(&text, "p%d = $p%d\n", i, i + 1);
	tap_ok(load(str_c(&text), &error), "limit: exactly 10,000 parameters load");

	write_file("main.cf", "relayhost = a\0b\n", 16);
	tap_ok(!config_load(test_dir, false, &error) && strstr(error, "NUL") != NULL,
	       "limit: a NUL byte is an error");

	/* Exponential expansion: each level doubles; stops at the size cap. */
	str_clear(&text);
	str_append(&text, "e0 = 0123456789abcdef0123456789abcdef0123456789abcdef\n");
	for (int i = 1; i < 19; i++)
		str_printf(&text, "e%d = $e%d$e%d$e%d\n", i, i - 1, i - 1, i - 1);
	str_append(&text, "smtpd_banner = $e18\n");
	tap_ok(!load(str_c(&text), &error) && strstr(error, "smtpd_banner") != NULL,
	       "limit: exponential expansion is an error, not a hang");
	str_deinit(&text);
}

/* ---- expansion ---- */

static const char expand_file[] =
	"myhostname = mx.example.com\n"
	"full = value\n"
	"empty =\n"
	"chain = <$full>\n"
	"loop_a = $loop_b\n"
	"loop_b = $loop_a\n"
	"smtpd_banner = $myhostname ESMTP $mail_name\n";

static const struct expand_case {
	const char *text;
	const char *want; /* NULL: expansion fails */
} expand_cases[] = {
	{ "plain text", "plain text" },
	{ "$full", "value" },
	{ "${full}", "value" },
	{ "$(full)", "value" },
	{ "a${full}b$(full)c", "avaluebvaluec" },
	{ "$full.$full", "value.value" },
	{ "${full?yes}", "yes" },
	{ "${empty?yes}", "" },
	{ "${undefined_name?yes}", "" },
	{ "${full:no}", "" },
	{ "${empty:no}", "no" },
	{ "${undefined_name:no}", "no" },
	{ "${full?{T}:{F}}", "T" },
	{ "${empty?{T}:{F}}", "F" },
	{ "${empty?{T}:F}", "F" },
	{ "${full?$chain}", "<value>" },
	{ "${ full }", "value" },
	{ "$undefined_name", "" },
	{ "$$full", "$full" },
	{ "$$$full", "$value" },
	{ "$chain", "<value>" },
	{ "$smtpd_banner", "mx.example.com ESMTP Petrel" },
	{ "$mydomain", "example.com" },
	{ "$loop_a", NULL },
	{ "${loop_a?x}", "x" },
	{ "${loop_a}", NULL },
	{ "$", NULL },
	{ "a $ b", NULL },
	{ "${full", NULL },
	{ "${bad name}", NULL },
	{ "${{$full} == {value} ? {a} : {b}}", NULL },
	{ "${full?{T} junk}", NULL },
};

static void test_expand(void)
{
	const char *error = "";
	if (!tap_ok(load(expand_file, &error), "expand: main.cf loads"))
		tap_diag("error: %s", error);
	for (size_t i = 0; i < N_ELEMENTS(expand_cases); i++) {
		const struct expand_case *c = &expand_cases[i];
		const char *result = NULL;
		bool ok = config_expand_checked(c->text, &result, &error);
		if (c->want == NULL) {
			tap_ok(!ok, "expand: \"%s\" fails", c->text);
			continue;
		}
		tap_ok(ok, "expand: \"%s\" succeeds", c->text);
		tap_is_str(ok ? result : error, c->want, "expand: \"%s\"", c->text);
	}
	tap_is_str(config_expand("$loop_a"), "", "expand: config_expand gives \"\" on a loop");
	tap_is_str(config_str("smtpd_banner"), "mx.example.com ESMTP Petrel",
		   "expand: config_str expands");
	tap_is_str(config_str("mydestination"), "mx.example.com, localhost.example.com, localhost",
		   "expand: defaults refer to main.cf values");
}

static const struct domain_case {
	const char *myhostname;
	const char *mydomain;
} domain_cases[] = {
	{ "mx.example.com", "example.com" },
	{ "a.b.c.example.org", "b.c.example.org" },
	{ "localhost", "localdomain" },
	{ "trailing.", "localdomain" },
};

/* test_dynamic: mydomain follows myhostname; config_directory is the dir. */
static void test_dynamic(void)
{
	const char *error;
	for (size_t i = 0; i < N_ELEMENTS(domain_cases); i++) {
		char text[256];
		str_format(text, sizeof(text), "myhostname = %s\n", domain_cases[i].myhostname);
		load(text, &error);
		tap_is_str(config_str("mydomain"), domain_cases[i].mydomain, "mydomain of %s",
			   domain_cases[i].myhostname);
	}
	tap_is_str(config_str("config_directory"), test_dir, "config_directory is the loaded dir");
	config_load_defaults(test_dir);
	char host[256];
	gethostname(host, sizeof(host));
	host[sizeof(host) - 1] = '\0';
	tap_is_str(config_default("myhostname"), host, "myhostname defaults to gethostname()");
	tap_ok(!config_is_set("myhostname"), "defaults table sets nothing");
	tap_is_str(config_str("mail_name"), "Petrel", "mail_name default");
	tap_ok(config_default("no_such_param") == NULL, "config_default of unknown name is NULL");
}

/* ---- types ---- */

static const struct type_case {
	const char *name;
	const char *value;
	bool ok;
	long long want; /* INT/SIZE/TIME (seconds)/BOOL (0/1) when ok */
} type_cases[] = {
	{ "smtpd_timeout", "300s", true, 300 },
	{ "smtpd_timeout", "5m", true, 300 },
	{ "smtpd_timeout", "2h", true, 7200 },
	{ "smtpd_timeout", "1w", true, 604800 },
	{ "smtpd_timeout", "300", true, 300 },
	{ "smtpd_timeout", "5M", true, 300 },
	{ "smtpd_timeout", "5x", false, 0 },
	{ "smtpd_timeout", "5ms", false, 0 },
	{ "smtpd_timeout", "abc", false, 0 },
	{ "smtpd_timeout", "-5s", false, 0 },
	{ "smtpd_timeout", "0s", false, 0 },
	{ "smtpd_timeout", "", false, 0 },
	{ "smtpd_timeout", "s", false, 0 },
	{ "smtpd_timeout", "1.5h", false, 0 },
	{ "smtpd_timeout", "99999999999999999999", false, 0 },
	{ "smtpd_timeout", "9999999999999999w", false, 0 },
	{ "maximal_queue_lifetime", "5", true, 5 * 86400 },
	{ "maximal_queue_lifetime", "0", true, 0 },
	{ "maximal_queue_lifetime", "101d", false, 0 },
	{ "delay_warning_time", "4", true, 4 * 3600 },
	{ "smtpd_error_sleep_time", "0", true, 0 },
	{ "message_size_limit", "10240000", true, 10240000 },
	{ "message_size_limit", "0", true, 0 },
	{ "message_size_limit", "10M", false, 0 },
	{ "message_size_limit", "-1", false, 0 },
	{ "smtpd_recipient_limit", "1", true, 1 },
	{ "smtpd_recipient_limit", "0", false, 0 },
	{ "smtpd_recipient_limit", "2147483648", false, 0 },
	{ "smtpd_recipient_limit", "12abc", false, 0 },
	{ "smtpd_recipient_limit", " 12", false, 0 },
	{ "smtpd_tls_loglevel", "4", true, 4 },
	{ "smtpd_tls_loglevel", "5", false, 0 },
	{ "relay_domains_reject_code", "399", false, 0 },
	{ "disable_vrfy_command", "yes", true, 1 },
	{ "disable_vrfy_command", "YES", true, 1 },
	{ "disable_vrfy_command", "true", true, 1 },
	{ "disable_vrfy_command", "No", true, 0 },
	{ "disable_vrfy_command", "false", true, 0 },
	{ "disable_vrfy_command", "maybe", false, 0 },
	{ "disable_vrfy_command", "", false, 0 },
	{ "smtpd_forbid_bare_newline", "reject", true, 0 },
	{ "smtpd_forbid_bare_newline", "Normalize", true, 0 },
	{ "smtpd_forbid_bare_newline", "no", true, 0 },
	{ "smtpd_forbid_bare_newline", "sometimes", false, 0 },
	{ "smtpd_tls_security_level", "may", true, 0 },
	{ "smtpd_tls_security_level", "dane", false, 0 },
	{ "inet_protocols", "ipv4, ipv6", true, 0 },
	{ "inet_protocols", "ipv5", false, 0 },
	{ "mynetworks", "{ 10.0.0.0/8", false, 0 },
	{ "mynetworks", "10.0.0.0/8}", false, 0 },
	{ "smtpd_banner", "$mail_name ready", true, 0 },
	{ "smtpd_banner", "${mail_name", false, 0 },
	{ "no_such_param", "anything", true, 0 },
};

/* type_getter: the typed getter's result for a valid case. */
static long long type_getter(const char *name)
{
	const struct param_def *def = config_param_find(name);
	switch (def->type) {
	case PARAM_INT: return config_int(name);
	case PARAM_SIZE: return config_size(name);
	case PARAM_TIME: return config_time(name);
	case PARAM_BOOL: return config_bool(name);
	default: return 0;
	}
}

static void test_types(void)
{
	config_load_defaults(test_dir);
	for (size_t i = 0; i < N_ELEMENTS(type_cases); i++) {
		const struct type_case *c = &type_cases[i];
		const char *error = NULL;
		bool ok = config_validate(c->name, c->value, &error);
		tap_ok(ok == c->ok, "type: %s = \"%s\" is %s", c->name, c->value,
		       c->ok ? "valid" : "invalid");
		bool set = config_override(c->name, c->value, &error);
		tap_ok(set == c->ok, "type: override %s = \"%s\" %s", c->name, c->value,
		       c->ok ? "accepted" : "refused");
		if (c->ok && set && config_param_find(c->name) != NULL)
			tap_is_int(type_getter(c->name), c->want, "type: %s = \"%s\" reads back",
				   c->name, c->value);
		if (!c->ok && error != NULL && config_param_find(c->name) != NULL)
			tap_ok(strstr(error, c->name) != NULL, "type: error names %s", c->name);
	}
	/* A refused override leaves the previous value in force. */
	const char *error;
	config_override("smtpd_timeout", "7s", &error);
	config_override("smtpd_timeout", "junk", &error);
	tap_is_int(config_time("smtpd_timeout"), 7, "type: refused override keeps the old value");
	/* An override that breaks another parameter is refused too. */
	config_override("timeout_base", "9", &error);
	config_override("smtpd_proxy_timeout", "${timeout_base}s", &error);
	tap_is_int(config_time("smtpd_proxy_timeout"), 9, "type: override refers to an override");
	tap_ok(!config_override("timeout_base", "x", &error) &&
		       strstr(error, "smtpd_proxy_timeout") != NULL,
	       "type: override that breaks a dependent parameter is refused");
	tap_is_int(config_time("smtpd_proxy_timeout"), 9, "type: dependent value unchanged");

	long long secs = 0;
	tap_ok(config_parse_time("90", 'm', &secs, &error) && secs == 5400,
	       "type: parse_time bare number in the given unit");
	tap_ok(config_check(&error), "type: config_check passes");
}

/* ---- overrides ---- */

static void test_overrides(void)
{
	const char *error;
	load("relayhost = file\nmail_name = FromFile\n", &error);
	tap_ok(config_override("relayhost", "override", &error), "override accepted");
	tap_is_str(config_str("relayhost"), "override", "override wins over main.cf");
	tap_ok(config_override("restriction_class_x", "permit", &error),
	       "override of an unknown name accepted");
	tap_ok(config_load(test_dir, true, &error), "reload keeping overrides");
	tap_is_str(config_str("relayhost"), "override", "override kept over reload");
	tap_is_str(config_lookup_raw("restriction_class_x"), "permit", "unknown override kept");
	tap_ok(config_load(test_dir, false, &error), "reload dropping overrides");
	tap_is_str(config_str("relayhost"), "file", "main.cf value back after reload");
	tap_ok(!config_override("bad name", "x", &error), "override with a bad name refused");
}

/* ---- lists ---- */

static const struct list_case {
	const char *text;
	const char *want; /* words joined with '|'; NULL: error */
} list_cases[] = {
	{ "a, b ,c", "a|b|c" },
	{ "  a\tb\n c  ", "a|b|c" },
	{ "a,,b,", "a|b" },
	{ "", "" },
	{ " , ,", "" },
	{ "check_policy_service { inet:127.0.0.1:9998, timeout=10s }, permit",
	  "check_policy_service|{ inet:127.0.0.1:9998, timeout=10s }|permit" },
	{ "inline:{ a=b, c=d } static:x", "inline:{ a=b, c=d }|static:x" },
	{ "{ {nested, braces} }, z", "{ {nested, braces} }|z" },
	{ "[::1]/128 127.0.0.0/8", "[::1]/128|127.0.0.0/8" },
	{ "{ unclosed", NULL },
	{ "closed }", NULL },
};

static void test_lists(void)
{
	for (size_t i = 0; i < N_ELEMENTS(list_cases); i++) {
		const struct list_case *c = &list_cases[i];
		char **words = NULL;
		const char *error;
		bool ok = config_split_list(c->text, &words, &error);
		if (c->want == NULL) {
			tap_ok(!ok, "list: case %zu is an error", i);
			continue;
		}
		struct str joined = STR_INIT;
		for (size_t j = 0; ok && words[j] != NULL; j++)
			str_printf(&joined, "%s%s", j > 0 ? "|" : "", words[j]);
		tap_is_str(ok ? str_c(&joined) : error, c->want, "list: case %zu", i);
		str_deinit(&joined);
		if (ok)
			config_list_free(&words);
		tap_ok(words == NULL, "list: free clears the pointer");
	}
	const char *error;
	load("mynetworks = 10.0.0.0/8, [::1]/128\n  192.168.0.0/16\n", &error);
	const char *const *nets = config_list("mynetworks");
	tap_ok(nets[0] != NULL && nets[1] != NULL && nets[2] != NULL && nets[3] == NULL &&
		       strcmp(nets[2], "192.168.0.0/16") == 0,
	       "list: config_list of a continued value");
	tap_ok(config_list("relay_domains")[0] == NULL, "list: empty default is an empty list");
}

/* ---- unused-parameter warnings (asserted on the log) ---- */

static void test_unused(void)
{
	char logpath[512];
	const char *error;
	struct str log = STR_INIT;
	str_format(logpath, sizeof(logpath), "%s/log", test_dir);
	if (!msg_set_file(logpath, &error))
		msg_fatal("%s", error);
	load("relayhost = x\nfoo_unused = bar\nmy_class = permit\n"
	     "smtpd_client_restrictions = $my_class\nfoo_unused = baz\n",
	     &error);
	msg_set_target(MSG_TARGET_STDERR);
	read_file("log", &log);
	tap_ok(strstr(str_c(&log), "/main.cf, line 5: unused parameter: foo_unused=baz") != NULL,
	       "unused: warning names file, line, name and value");
	const char *first = strstr(str_c(&log), "unused parameter: foo_unused");
	tap_ok(first != NULL && strstr(first + 1, "unused parameter: foo_unused") == NULL,
	       "unused: warned once");
	tap_ok(strstr(str_c(&log), "my_class") == NULL, "unused: a referenced name is not warned");
	tap_ok(strstr(str_c(&log), "relayhost") == NULL, "unused: table names are not warned");
	str_deinit(&log);
}

/* ---- iteration ---- */

static void visit(const char *name, const char *raw, void *ctx)
{
	str_printf(ctx, "%s=%s;", name, raw);
}

static void test_foreach(void)
{
	const char *error;
	struct str seen = STR_INIT;
	load("relayhost = a\nzz_custom = 1\nmail_name = M\nrelayhost = b\n", &error);
	config_override("myorigin", "o", &error);
	config_foreach_set(visit, &seen);
	tap_is_str(str_c(&seen), "relayhost=b;zz_custom=1;mail_name=M;myorigin=o;",
		   "foreach: set names in file order, then overrides");
	str_deinit(&seen);
}

/* ---- the table itself ---- */

static void test_table(void)
{
	size_t n = 0;
	bool unique = true, documented = true;
	for (const struct param_def *p = config_params; p->name != NULL; p++, n++) {
		for (const struct param_def *q = p + 1; q->name != NULL; q++)
			unique = unique && strcmp(p->name, q->name) != 0;
		documented = documented && p->summary != NULL && p->summary[0] != '\0';
	}
	tap_ok(n >= 80, "table: %zu parameters", n);
	tap_ok(unique, "table: names are unique");
	tap_ok(documented, "table: every parameter has a summary");
	config_load_defaults(test_dir);
	const char *error;
	tap_ok(config_check(&error), "table: every default validates");
	tap_is_str(config_default("mynetworks"), "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128",
		   "table: mynetworks default");
	tap_is_int(config_size("message_size_limit"), 10240000, "table: message_size_limit default");
	tap_is_int(config_time("maximal_queue_lifetime"), 5 * 86400, "table: 5d default");
	tap_is_str(config_str("smtpd_forbid_bare_newline"), "normalize",
		   "table: smtpd_forbid_bare_newline default");
	tap_is_str(config_str("syslog_name"), "postfix", "table: syslog_name default");
	tap_is_int(config_int("lmtp_destination_concurrency_limit"), 20,
		   "table: an INT default that refers to another parameter");
}

/* ---- config_edit ---- */

static const struct edit_case {
	const char *what;
	const char *before; /* NULL: no main.cf */
	const char *name;
	const char *value; /* NULL: config_remove */
	const char *after;
} edit_cases[] = {
	{ "replace, comments kept", "# top\nrelayhost = a\n# tail\n", "relayhost", "b",
	  "# top\nrelayhost = b\n# tail\n" },
	{ "replace a continued definition", "mydestination = a,\n  b,\n  c\nrelayhost = x\n",
	  "mydestination", "d", "mydestination = d\nrelayhost = x\n" },
	{ "comment inside a definition kept", "mynetworks = a\n# note\n  b\nx = 1\n", "mynetworks",
	  "n", "mynetworks = n\n# note\nx = 1\n" },
	{ "append", "relayhost = a\n", "myhostname", "h", "relayhost = a\nmyhostname = h\n" },
	{ "append after a last line without newline", "relayhost = a", "myhostname", "h",
	  "relayhost = a\nmyhostname = h\n" },
	{ "a longer name is not a match", "relayhost_x = 1\n", "relayhost", "y",
	  "relayhost_x = 1\nrelayhost = y\n" },
	{ "name=value without spaces replaced", "relayhost=a\nb = 2\n", "relayhost", "c",
	  "relayhost = c\nb = 2\n" },
	{ "every duplicate replaced", "relayhost = a\nx = 1\nrelayhost = b\n", "relayhost", "c",
	  "relayhost = c\nx = 1\nrelayhost = c\n" },
	{ "value trimmed", "", "relayhost", "  spaced out \t", "relayhost = spaced out\n" },
	{ "empty value", "relayhost = a\n", "relayhost", "", "relayhost = \n" },
	{ "missing main.cf created", NULL, "relayhost", "r", "relayhost = r\n" },
	{ "remove with continuation", "a = 1\nrelayhost = x\n  y\nb = 2\n", "relayhost", NULL,
	  "a = 1\nb = 2\n" },
	{ "remove absent name", "a = 1\n", "relayhost", NULL, "a = 1\n" },
	{ "blank lines and indented comments kept", "a = 1\n\n  # indented\nb = 2\n", "b", "3",
	  "a = 1\n\n  # indented\nb = 3\n" },
};

static void test_edit(void)
{
	char path[512];
	str_format(path, sizeof(path), "%s/main.cf", test_dir);
	for (size_t i = 0; i < N_ELEMENTS(edit_cases); i++) {
		const struct edit_case *c = &edit_cases[i];
		const char *error = NULL;
		struct str after = STR_INIT;
		if (c->before != NULL)
			write_main_cf(c->before);
		else
			unlink(path);
		bool ok = c->value != NULL ? config_edit(test_dir, c->name, c->value, &error)
					   : config_remove(test_dir, c->name, &error);
		if (!tap_ok(ok, "edit: %s: succeeds", c->what))
			tap_diag("error: %s", error);
		read_file("main.cf", &after);
		tap_is_str(str_c(&after), c->after, "edit: %s: result", c->what);
		str_deinit(&after);
	}
	struct str dummy = STR_INIT;
	tap_ok(!read_file("main.cf.tmp", &dummy), "edit: no temp file left behind");
	str_deinit(&dummy);

	write_main_cf("relayhost = a\n");
	chmod(path, 0640);
	const char *error;
	config_edit(test_dir, "relayhost", "b", &error);
	struct stat st;
	tap_ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0640, "edit: file mode kept");
	tap_ok(!config_edit(test_dir, "relayhost", "a\nb = c", &error), "edit: newline refused");
	tap_ok(!config_edit(test_dir, "bad name", "x", &error), "edit: bad name refused");
	tap_ok(!config_edit("/nonexistent-petrel-dir", "relayhost", "x", &error) &&
		       strstr(error, "/nonexistent-petrel-dir/main.cf.tmp") != NULL,
	       "edit: unwritable directory is an error naming the file");

	/* What config_edit writes, config_load reads back. */
	write_main_cf("# keep me\nsmtpd_banner = old\n  continued\n");
	config_edit(test_dir, "smtpd_banner", "$myhostname says hi", &error);
	tap_ok(config_load(test_dir, false, &error) &&
		       strcmp(config_lookup_raw("smtpd_banner"), "$myhostname says hi") == 0,
	       "edit: result loads back");
}

/* cleanup: remove the files the tests created, then the directory. */
static void cleanup(void)
{
	static const char *const files[] = { "main.cf", "main.cf.tmp", "log" };
	char path[512];
	for (size_t i = 0; i < N_ELEMENTS(files); i++) {
		str_format(path, sizeof(path), "%s/%s", test_dir, files[i]);
		unlink(path);
	}
	if (rmdir(test_dir) != 0)
		tap_diag("rmdir(%s) failed: %s", test_dir, strerror(errno));
}

int main(void)
{
	msg_init("test-config");
	if (mkdtemp(test_dir) == NULL)
		msg_fatal("mkdtemp failed: %m");
	test_parse();
	test_errors();
	test_limits();
	test_expand();
	test_dynamic();
	test_types();
	test_overrides();
	test_lists();
	test_unused();
	test_foreach();
	test_table();
	test_edit();
	config_deinit();
	cleanup();
	return tap_done();
}
