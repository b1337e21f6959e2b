/* lmtpd_deliver.c: recipients (user database, +detail, quota) and DATA:
 * the content, then one Maildir delivery and one reply per recipient.
 *
 * DATA ends at CRLF "." CRLF only (as in smtpd). The content is kept
 * with LF line ends (Dovecot's mail_save_crlf = no): CRLF becomes LF, a
 * bare LF stays, a bare CR stays; a leading stuffed dot is removed. Each
 * recipient's file starts with Dovecot's LMTP headers (Return-Path,
 * Delivered-To, Received). The reply for a recipient is sent only after
 * its file is fsync'd, linked into new/ and new/ fsync'd. */
#include <config.h>

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lmtpd/lmtpd.h"
#include "mail/mail_date.h"
#include "mail/maildir.h"
#include "mail/mbox_index.h"
#include "mail/userdb.h"
#include "server/netconn.h"
#include "util/alloc.h"
#include "util/msg.h"

#define LMTPD_MSGID_MAX 200

void lmtpd_rcpt_free(struct lmtpd_rcpt *r)
{
	free(r->address);
	free(r->user);
	free(r->maildir);
	free(r->folder);
	memset(r, 0, sizeof(*r));
}

/* rcpt_split_detail: the address without "+detail" (NULL when the
 * local part has no delimiter) and the detail. */
static char *rcpt_split_detail(const struct smtp_addr *addr, char **detail_r)
{
	const char *delims = lmtpd_config.recipient_delimiter;
	*detail_r = NULL;
	if (*delims == '\0')
		return NULL;
	size_t n = strcspn(addr->local, delims);
	if (addr->local[n] == '\0' || n == 0)
		return NULL;
	*detail_r = xstrdup(addr->local + n + 1);
	struct str s = STR_INIT;
	str_append_n(&s, addr->local, n);
	if (addr->domain != NULL)
		str_printf(&s, "@%s", addr->domain);
	return str_steal(&s);
}

/* rcpt_lookup: the full address, then without its detail. */
static int rcpt_lookup(const struct smtp_addr *addr, struct userdb_user *u, char **detail_r,
		       const char **error_r)
{
	struct str key = STR_INIT;
	addr_lookup_key(addr, &key);
	int r = userdb_lookup(lmtpd_config.userdb, str_c(&key), u, error_r);
	str_deinit(&key);
	*detail_r = NULL;
	if (r != 0)
		return r;
	char *detail;
	char *base = rcpt_split_detail(addr, &detail);
	if (base == NULL)
		return 0;
	for (char *p = base; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	r = userdb_lookup(lmtpd_config.userdb, base, u, error_r);
	free(base);
	if (r > 0)
		*detail_r = detail;
	else
		free(detail);
	return r;
}

/* rcpt_place: the Maildir and folder of a found user. */
static int rcpt_place(const struct smtp_addr *addr, const struct userdb_user *u, char *detail,
		      struct lmtpd_rcpt *r, const char **error_r)
{
	struct str home = STR_INIT, root = STR_INIT;
	if (u->home[0] != '\0')
		str_append(&home, u->home);
	else
		userdb_expand(&home, lmtpd_config.default_home, u->name, "");
	const char *location = u->mail != NULL ? u->mail : lmtpd_config.mail_location;
	if (!userdb_maildir(&root, location, u->name, str_c(&home), error_r)) {
		str_deinit(&home);
		str_deinit(&root);
		return -1;
	}
	r->address = xstrdup(addr->external);
	r->user = xstrdup(u->name);
	r->maildir = str_steal(&root);
	r->quota = u->quota_bytes;
	r->uid = u->uid;
	r->gid = u->gid;
	if (lmtpd_config.save_to_detail && detail != NULL && maildir_folder_valid(detail) &&
	    maildir_folder_exists(r->maildir, detail))
		r->folder = xstrdup(detail);
	else
		r->folder = xstrdup("INBOX");
	str_deinit(&home);
	return 0;
}

/* rcpt_over_quota: usage (plus size when known) beyond the limit. */
static bool rcpt_over_quota(const struct lmtpd_rcpt *r, long long size)
{
	if (r->quota <= 0)
		return false;
	long long usage = maildir_usage(r->maildir);
	if (usage < 0)
		return false; /* the delivery itself will report the problem */
	return usage >= r->quota || (size > 0 && usage + size > r->quota);
}

int lmtpd_rcpt_resolve(const struct smtp_addr *addr, long long size, bool check_quota,
		       struct lmtpd_rcpt *r, char *reply, size_t reply_size)
{
	struct userdb_user u;
	const char *error = NULL;
	char *detail = NULL;
	memset(r, 0, sizeof(*r));
	int ret = rcpt_lookup(addr, &u, &detail, &error);
	if (ret < 0) {
		msg_error("lmtp(%s): user lookup failed: %s", addr->external, error);
		snprintf(reply, reply_size, "451 4.3.0 <%s> Temporary user lookup failure",
			 addr->external);
		return -1;
	}
	if (ret == 0) {
		snprintf(reply, reply_size, "550 5.1.1 <%s> User doesn't exist: %s", addr->external,
			 addr->external);
		return 0;
	}
	ret = rcpt_place(addr, &u, detail, r, &error);
	userdb_user_deinit(&u);
	free(detail);
	if (ret < 0) {
		msg_error("lmtp(%s): %s", addr->external, error);
		snprintf(reply, reply_size, "451 4.3.0 <%s> Temporary internal error", addr->external);
		return -1;
	}
	if (check_quota && rcpt_over_quota(r, size)) {
		snprintf(reply, reply_size,
			 "552 5.2.2 <%s> Quota exceeded (mailbox for user is full)", r->address);
		lmtpd_rcpt_free(r);
		return 0;
	}
	return 1;
}

void lmtpd_data_begin(struct lmtpd_session *s)
{
	s->state = LMTPD_STATE_DATA;
	s->data_state = LMTPD_DATA_LINE_START;
	s->too_big = false;
	str_clear(&s->content);
}

static void emit(struct lmtpd_session *s, char c)
{
	if (s->content.len >= (size_t)lmtpd_config.size_limit) {
		s->too_big = true;
		return;
	}
	str_append_c(&s->content, c);
}

/* data_step: one DATA byte; true at CRLF "." CRLF. */
static bool data_step(struct lmtpd_session *s, char c)
{
	switch (s->data_state) {
	case LMTPD_DATA_LINE_START:
		if (c == '.') {
			s->data_state = LMTPD_DATA_DOT;
			return false;
		}
		/* fall through */
	case LMTPD_DATA_TEXT:
		if (c == '\r')
			s->data_state = LMTPD_DATA_CR;
		else {
			emit(s, c);
			s->data_state = LMTPD_DATA_TEXT;
		}
		return false;
	case LMTPD_DATA_CR:
		if (c == '\n') {
			emit(s, '\n');
			s->data_state = LMTPD_DATA_LINE_START;
			return false;
		}
		emit(s, '\r');
		s->data_state = LMTPD_DATA_TEXT;
		return data_step(s, c);
	case LMTPD_DATA_DOT:
		if (c == '\r') {
			s->data_state = LMTPD_DATA_DOT_CR;
			return false;
		}
		if (c == '\n' || c == '.')
			emit(s, '.');
		s->data_state = LMTPD_DATA_TEXT;
		return c == '.' ? false : data_step(s, c);
	case LMTPD_DATA_DOT_CR:
		if (c == '\n')
			return true;
		emit(s, '.');
		s->data_state = LMTPD_DATA_CR;
		return data_step(s, c);
	}
	return false;
}

/* data_message_id: the Message-ID header's value, escaped for the log. */
static void data_message_id(const struct str *content, struct str *out)
{
	const char *p = str_c(content);
	while (*p != '\0' && *p != '\n') {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (str_prefix_icase(p, "Message-ID:")) {
			const char *v = p + 11;
			v += strspn(v, " \t");
			size_t n = len - (size_t)(v - p);
			while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
				n--;
			str_escape_log(out, v, n, LMTPD_MSGID_MAX);
			return;
		}
		if (nl == NULL)
			break;
		p = nl + 1;
	}
}

/* data_delivered_to: true when the header section already has a
 * Delivered-To: for address, i.e. the message has been here for this
 * recipient before (an alias or forwarding loop), as Postfix's local(8)
 * checks. Content is stored with LF line ends. */
static bool data_delivered_to(const struct str *content, const char *address)
{
	const char *p = str_c(content);
	size_t want = strlen(address);
	while (*p != '\0' && *p != '\n') {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (str_prefix_icase(p, "Delivered-To:")) {
			const char *v = p + 13;
			v += strspn(v, " \t");
			size_t n = len - (size_t)(v - p);
			while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
				n--;
			if (n == want && strncasecmp(v, address, n) == 0)
				return true;
		}
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return false;
}

/* data_headers: what Dovecot's LMTP puts before the message. */
static void data_headers(struct lmtpd_session *s, const struct lmtpd_rcpt *r, const char *id,
			 struct str *h)
{
	char date[MAIL_DATE_MAX];
	mail_date(date, sizeof(date), time(NULL), false);
	str_printf(h, "Return-Path: <%s>\n", s->sender.external);
	str_printf(h, "Delivered-To: %s\n", r->address);
	if (s->local)
		str_printf(h, "Received: from %s\n", s->lhlo);
	else
		str_printf(h, "Received: from %s ([%s])\n", s->lhlo, s->client_addr);
	str_printf(h, "\tby %s with LMTP\n\tid %s\n\t(envelope-from <%s>)\n\tfor <%s>; %s\n",
		   lmtpd_config.myhostname, id, s->sender.external, r->address, date);
}

/* The credentials to return to after a delivery as the user. */
struct deliver_creds {
	gid_t egid;
	gid_t groups[64];
	int ngroups;
};

/* deliver_become: when lmtpd runs as root and the user has a uid, act as
 * that user (and gid) for the delivery, as Dovecot's lmtp does; so the
 * files and any folders made belong to the user. 1 switched, 0 nothing
 * to do, -1 failed (nothing changed). */
static int deliver_become(const struct lmtpd_rcpt *r, struct deliver_creds *c)
{
	if (getuid() != 0 || geteuid() != 0 || r->uid < 0)
		return 0;
	c->egid = getegid();
	c->ngroups = getgroups(64, c->groups);
	if (c->ngroups < 0)
		return -1;
	gid_t gid = r->gid >= 0 ? (gid_t)r->gid : c->egid;
	if (setgroups(1, &gid) < 0)
		return -1;
	if (setegid(gid) < 0 || seteuid((uid_t)r->uid) < 0) {
		if (setegid(c->egid) < 0 || setgroups((size_t)c->ngroups, c->groups) < 0)
			msg_fatal("cannot restore privileges: %m");
		return -1;
	}
	return 1;
}

/* deliver_unbecome: back to root; failing that, the process must die. */
static void deliver_unbecome(const struct deliver_creds *c)
{
	if (seteuid(0) < 0 || setegid(c->egid) < 0 ||
	    setgroups((size_t)c->ngroups, c->groups) < 0)
		msg_fatal("cannot restore privileges: %m");
}

/* deliver_file: the Maildir file (as the user when possible). */
static int deliver_file(const struct lmtpd_rcpt *r, const struct iovec *iov, struct str *name,
			int *err_r, const char **error_r)
{
	struct deliver_creds creds;
	int become = deliver_become(r, &creds);
	if (become < 0) {
		*err_r = errno;
		*error_r = "cannot switch to the user's uid/gid";
		return -1;
	}
	int ret = maildir_create(r->maildir, "INBOX", error_r);
	if (ret < 0)
		*err_r = errno;
	else
		ret = maildir_deliver(r->maildir, r->folder, lmtpd_config.myhostname, iov, 2, name,
				      err_r, error_r);
	if (become > 0)
		deliver_unbecome(&creds);
	return ret;
}

/* deliver_index: record the new file; a failure only costs a rebuild. */
static void deliver_index(const struct lmtpd_rcpt *r, const char *name, const char *id)
{
	struct mbox_index *ix = NULL;
	const char *error = NULL;
	uint32_t uid;
	struct deliver_creds creds;
	int become = deliver_become(r, &creds);
	if (become < 0)
		error = "cannot switch to the user's uid/gid";
	if (become < 0 || mbox_index_open(r->maildir, &ix, &error) < 0 ||
	    mbox_index_add(ix, r->folder, name, &uid, &error) < 0)
		msg_warn("lmtp(%s)<%ld><%s>: index update failed (rebuilt on next sync): %s",
			 r->user, (long)getpid(), id, error);
	mbox_index_close(&ix);
	if (become > 0)
		deliver_unbecome(&creds);
}

/* once_finish: move a recorded delivery's file into new/ if it is still
 * in tmp/, then index it when the record could not (uid 0). */
static int once_finish(const struct lmtpd_rcpt *r, struct mbox_index *ix, const char *name,
		       uint32_t uid, int *err_r, const char **error_r)
{
	if (maildir_finish(r->maildir, r->folder, name, err_r, error_r) < 0)
		return -1;
	const char *ix_error = NULL;
	if (uid == 0 && mbox_index_add(ix, r->folder, name, &uid, &ix_error) < 0)
		msg_warn("lmtp(%s): index update failed (rebuilt on next sync): %s", r->user,
			 ix_error);
	return 0;
}

/* once_store: prepare, record, finish; 1 stored, 0 a concurrent attempt
 * recorded it first (finished here too), -1 failed (the tmp/ file is kept
 * when a record may name it). */
static int once_store(const struct lmtpd_rcpt *r, struct mbox_index *ix, const char *delivery_id,
		      const struct iovec *iov, struct str *name, int *err_r, const char **error_r)
{
	if (maildir_prepare(r->maildir, r->folder, lmtpd_config.myhostname, iov, 2, name, err_r,
			    error_r) < 0)
		return -1;
	time_t now = time(NULL);
	uint32_t uid = 0;
	const char *earlier;
	int ret = mbox_index_delivery_record(ix, r->folder, delivery_id, str_c(name), now,
					     now - lmtpd_config.delivery_record_ttl, &uid, &earlier,
					     error_r);
	if (ret == -2) {
		/* The record is visible: a retry finds it and finishes
		 * tmp/<name>, so that file must stay. */
		*err_r = 0;
		return -1;
	}
	if (ret <= 0) {
		maildir_discard(r->maildir, r->folder, str_c(name));
		if (ret < 0) {
			*err_r = 0;
			return -1;
		}
		str_clear(name);
		str_append(name, earlier);
	}
	if (once_finish(r, ix, str_c(name), ret > 0 ? uid : 1, err_r, error_r) < 0)
		return -1;
	return ret;
}

/* deliver_reply_failure: the log line and the temporary reply. */
static void deliver_reply_failure(struct lmtpd_session *s, const struct lmtpd_rcpt *r,
				  const char *id, const char *msgid, int err, const char *error)
{
	msg_error("lmtp(%s)<%ld><%s>: msgid=%s: save failed to %s: %s", r->user, (long)getpid(),
		  id, msgid, r->folder, error);
	if (err == EDQUOT)
		lmtpd_reply(s, "452 4.2.2 <%s> Mailbox is full", r->address);
	else if (err == ENOSPC)
		lmtpd_reply(s, "452 4.3.1 <%s> Insufficient system storage", r->address);
	else
		lmtpd_reply(s, "451 4.3.0 <%s> Temporary internal error", r->address);
}

/* deliver_refused: the loop and quota checks; true when refused. */
static bool deliver_refused(struct lmtpd_session *s, const struct lmtpd_rcpt *r, const char *id,
			    const char *msgid)
{
	if (data_delivered_to(&s->content, r->address)) {
		msg_info("lmtp(%s)<%ld><%s>: msgid=%s: save failed to %s: mail forwarding loop",
			 r->user, (long)getpid(), id, msgid, r->folder);
		lmtpd_reply(s, "554 5.4.6 <%s> mail forwarding loop for %s", r->address, r->address);
		return true;
	}
	if (rcpt_over_quota(r, (long long)s->content.len)) {
		msg_info("lmtp(%s)<%ld><%s>: msgid=%s: save failed to %s: Quota exceeded "
			 "(mailbox for user is full)", r->user, (long)getpid(), id, msgid, r->folder);
		lmtpd_reply(s, "552 5.2.2 <%s> Quota exceeded (mailbox for user is full)", r->address);
		return true;
	}
	return false;
}

/* deliver_once: a delivery that carries a delivery id: stored at most
 * once in this mailbox however often it is repeated. As the user (like
 * deliver_file): a repeat of a delivery saved before is finished if a
 * crash left it in tmp/ and not checked again (the first copy may be what
 * fills the quota now); a new one is checked, then stored. 1 stored now,
 * 0 stored before (name is that file), 2 refused (replied), -1 failed
 * (*err_r, *error_r). */
static int deliver_once(struct lmtpd_session *s, const struct lmtpd_rcpt *r, const char *id,
			const char *msgid, const struct iovec *iov, struct str *name,
			struct str *error_text, int *err_r, const char **error_r)
{
	struct deliver_creds creds;
	int become = deliver_become(r, &creds);
	if (become < 0) {
		*err_r = errno;
		*error_r = "cannot switch to the user's uid/gid";
		return -1;
	}
	const char *delivery_id = s->mail_params.delivery_id, *earlier;
	struct mbox_index *ix = NULL;
	*err_r = 0;
	int ret = maildir_create(r->maildir, "INBOX", error_r);
	if (ret < 0)
		*err_r = errno;
	else if ((ret = mbox_index_open(r->maildir, &ix, error_r)) == 0 &&
		 (ret = mbox_index_delivery_lookup(ix, r->folder, delivery_id, &earlier,
						   error_r)) > 0) {
		str_append(name, earlier);
		ret = once_finish(r, ix, str_c(name), 1, err_r, error_r) < 0 ? -1 : 0;
	} else if (ret == 0 && deliver_refused(s, r, id, msgid))
		ret = 2;
	else if (ret == 0)
		ret = once_store(r, ix, delivery_id, iov, name, err_r, error_r);
	if (ret < 0 && *error_r != NULL) {
		/* *error_r may point into ix, which is freed next. */
		str_append(error_text, *error_r);
		*error_r = str_c(error_text);
	}
	mbox_index_close(&ix);
	if (become > 0)
		deliver_unbecome(&creds);
	return ret;
}

/* deliver_one: one recipient's file, its index entry, log and reply. */
static void deliver_one(struct lmtpd_session *s, const struct lmtpd_rcpt *r, const char *msgid)
{
	char id[LMTPD_ID_LEN + 1];
	lmtpd_new_id(id);
	const char *delivery_id = s->mail_params.delivery_id;
	if (delivery_id == NULL && deliver_refused(s, r, id, msgid))
		return;
	struct str h = STR_INIT, name = STR_INIT, error_text = STR_INIT;
	data_headers(s, r, id, &h);
	struct iovec iov[2] = { { h.data, h.len }, { s->content.data, s->content.len } };
	const char *error = NULL;
	int err = 0;
	int ret;
	if (delivery_id != NULL)
		ret = deliver_once(s, r, id, msgid, iov, &name, &error_text, &err, &error);
	else if ((ret = deliver_file(r, iov, &name, &err, &error)) == 0) {
		deliver_index(r, str_c(&name), id);
		ret = 1;
	}
	if (ret < 0)
		deliver_reply_failure(s, r, id, msgid, err, error);
	else if (ret == 2)
		; /* refused: deliver_refused replied */
	else if (ret == 0) {
		msg_info("lmtp(%s)<%ld><%s>: msgid=%s: delivery %s was saved to %s before: "
			 "not saved again", r->user, (long)getpid(), id, msgid, delivery_id,
			 r->folder);
		lmtpd_reply(s, "250 2.0.0 <%s> %s Saved before", r->address, id);
	} else {
		msg_info("lmtp(%s)<%ld><%s>: msgid=%s: saved mail to %s", r->user, (long)getpid(),
			 id, msgid, r->folder);
		lmtpd_reply(s, "250 2.0.0 <%s> %s Saved", r->address, id);
	}
	str_deinit(&h);
	str_deinit(&name);
	str_deinit(&error_text);
}

/* data_finish: the message is complete: one reply per recipient. */
static void data_finish(struct lmtpd_session *s)
{
	s->state = LMTPD_STATE_COMMAND;
	if (s->too_big) {
		for (size_t i = 0; i < s->rcpt_count; i++)
			lmtpd_reply(s, "552 5.3.4 <%s> Message size exceeds fixed limit",
				    s->rcpts[i].address);
	} else {
		struct str msgid = STR_INIT;
		data_message_id(&s->content, &msgid);
		if (msgid.len == 0)
			str_append(&msgid, "<>");
		for (size_t i = 0; i < s->rcpt_count; i++) {
			deliver_one(s, &s->rcpts[i], str_c(&msgid));
			/* Each reply goes out as soon as its file is durable. */
			netconn_flush(s->conn);
		}
		str_deinit(&msgid);
	}
	lmtpd_transaction_reset(s);
}

bool lmtpd_data_feed(struct lmtpd_session *s, struct str *in)
{
	size_t i;
	bool end = false;
	for (i = 0; i < in->len && !end; i++)
		end = data_step(s, in->data[i]);
	str_consume(in, i);
	if (end)
		data_finish(s);
	return end;
}
