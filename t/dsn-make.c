/* dsn-make.c: test helper for t/e2e-dsn.py. Queues an original message
 * into QUEUE_DIR/active/ and asks lib/mail/dsn for a notice about it.
 *
 * SYNOPSIS
 *	dsn-make [-o name=value]... [-e envid] [-r FULL|HDRS] [-n notify]
 *		[-u] [-a notice] QUEUE_DIR failed|delayed|delivered CONTENT_FILE
 *		SENDER RCPT...
 *
 * DESCRIPTION
 *	Each RCPT is "address|status|diagnostic|remote-mta" (empty fields are
 *	NULL). -n gives the NOTIFY bits (decimal) of every recipient, -u marks
 *	the original SMTPUTF8, -a sets its "notice" attribute. Prints
 *	"queued ID" (the notice is QUEUE_DIR/incoming/ID) or "none"; exits 1
 *	with a message on an error. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/config.h"
#include "mail/dsn.h"
#include "mail/queue.h"
#include "util/alloc.h"
#include "util/str.h"

/* Options for the original. */
struct make_opts {
	const char *envid, *ret, *notice;
	unsigned notify;
	bool utf8;
};

/* make_field: the next '|'-separated field of *p (NULL when empty). */
static char *make_field(char **p)
{
	char *f = *p;
	if (f == NULL)
		return NULL;
	char *bar = strchr(f, '|');
	*p = bar != NULL ? bar + 1 : NULL;
	if (bar != NULL)
		*bar = '\0';
	return f[0] != '\0' ? f : NULL;
}

/* make_original: queue the original; its path in path_r. */
static bool make_original(const char *qdir, const struct make_opts *o, const char *content_file,
			  const char *sender, char **rcpts, int count, struct str *path_r)
{
	const char *error = "";
	int err = 0;
	struct str content = STR_INIT;
	char buf[8192];
	size_t n;
	FILE *f = fopen(content_file, "rb");
	if (f == NULL) {
		perror(content_file);
		return false;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		str_append_n(&content, buf, n);
	fclose(f);
	struct queue_writer *qw = queue_writer_open(qdir, &error);
	if (qw == NULL) {
		fprintf(stderr, "%s\n", error);
		str_deinit(&content);
		return false;
	}
	char id[QUEUE_ID_MAX];
	str_copy(id, sizeof(id), queue_writer_id(qw));
	queue_writer_sender(qw, sender);
	if (o->envid != NULL)
		queue_writer_attr(qw, "envid", o->envid);
	if (o->ret != NULL)
		queue_writer_attr(qw, "ret", o->ret);
	if (o->notice != NULL)
		queue_writer_attr(qw, "notice", o->notice);
	if (o->utf8)
		queue_writer_attr(qw, "smtputf8", "yes");
	for (int i = 0; i < count; i++) {
		char *end = strchr(rcpts[i], '|');
		struct str a = STR_INIT;
		size_t len = end != NULL ? (size_t)(end - rcpts[i]) : strlen(rcpts[i]);
		str_append_n(&a, rcpts[i], len);
		struct queue_rcpt r = { str_c(&a), NULL, o->notify };
		queue_writer_rcpt(qw, &r);
		str_deinit(&a);
	}
	queue_writer_content(qw, content.data, content.len);
	str_deinit(&content);
	if (queue_writer_commit(&qw, &err, &error) < 0) {
		fprintf(stderr, "%s\n", error);
		return false;
	}
	struct str from = STR_INIT;
	str_printf(&from, "%s/incoming/%s", qdir, id);
	str_printf(path_r, "%s/active/%s", qdir, id);
	bool ok = rename(str_c(&from), str_c(path_r)) == 0;
	str_deinit(&from);
	return ok;
}

/* make_notice: parse the RCPT arguments and call dsn_queue_notice(). */
static int make_notice(const char *qdir, const char *path, const char *kind_name, char **args,
		       int count)
{
	enum dsn_action kind = strcmp(kind_name, "delayed") == 0	  ? DSN_DELAYED
			       : strcmp(kind_name, "delivered") == 0 ? DSN_DELIVERED
								     : DSN_FAILED;
	struct dsn_rcpt *r = xcalloc((size_t)count + 1, sizeof(*r));
	for (int i = 0; i < count; i++) {
		char *p = args[i];
		r[i].address = make_field(&p);
		r[i].orig_rcpt = r[i].address;
		r[i].status = make_field(&p);
		r[i].diagnostic = make_field(&p);
		r[i].remote_mta = make_field(&p);
		r[i].action = kind;
		r[i].last_attempt = 1763847120;
	}
	char id[QUEUE_ID_MAX];
	const char *error = "";
	int ret = dsn_queue_notice(qdir, path, kind, r, (size_t)count, id, &error);
	free(r);
	if (ret < 0) {
		fprintf(stderr, "dsn_queue_notice: %s\n", error);
		return 1;
	}
	if (ret == 0)
		printf("none\n");
	else
		printf("queued %s\n", id);
	return 0;
}

int main(int argc, char **argv)
{
	struct make_opts o = { 0 };
	const char *error = "";
	int c;
	config_load_defaults(".");
	while ((c = getopt(argc, argv, "o:e:r:n:ua:")) != -1) {
		char *eq;
		switch (c) {
		case 'o':
			eq = strchr(optarg, '=');
			if (eq == NULL)
				return 2;
			*eq = '\0';
			if (!config_override(optarg, eq + 1, &error)) {
				fprintf(stderr, "%s\n", error);
				return 2;
			}
			break;
		case 'e':
			o.envid = optarg;
			break;
		case 'r':
			o.ret = optarg;
			break;
		case 'n':
			o.notify = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'u':
			o.utf8 = true;
			break;
		case 'a':
			o.notice = optarg;
			break;
		default:
			return 2;
		}
	}
	if (argc - optind < 5) {
		fprintf(stderr, "usage: dsn-make [options] QUEUE_DIR KIND FILE SENDER RCPT...\n");
		return 2;
	}
	char **a = argv + optind;
	struct str path = STR_INIT;
	int status = 1;
	if (queue_dirs_create(a[0], &error) < 0)
		fprintf(stderr, "%s\n", error);
	else if (make_original(a[0], &o, a[2], a[3], a + 4, argc - optind - 4, &path))
		status = make_notice(a[0], str_c(&path), a[1], a + 4, argc - optind - 4);
	str_deinit(&path);
	config_deinit();
	return status;
}
