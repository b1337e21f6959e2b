/* lmtpd.h: the layout of lmtpd, the LMTP server that writes Maildirs.
 *
 *   lmtpd.c          main(): parameters, user database, the skeleton
 *   lmtpd_session.c  one LMTP connection: lines, LHLO/MAIL/RCPT/RSET/...
 *   lmtpd_deliver.c  DATA: content, then one Maildir delivery and one
 *                    reply per accepted recipient, the index, the logs
 *
 * A session is driven by its netconn input callback; delivery (write,
 * fsync, rename, fsync) runs synchronously in that callback, as in
 * Dovecot's lmtp: parallelism comes from master running more processes. */
#ifndef PETREL_LMTPD_H
#define PETREL_LMTPD_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/addr.h"
#include "util/str.h"

#define LMTPD_LINE_MAX 2048	      /* bytes of one command line */
#define LMTPD_CONTENT_HARD_MAX (1LL << 30) /* when message_size_limit is 0 */
#define LMTPD_ID_LEN 22		      /* base64 of 128 random bits */

struct userdb;

struct lmtpd_config {
	const char *myhostname;
	long long size_limit;	    /* bytes of content */
	unsigned timeout_ms;
	unsigned recipient_limit;
	const char *recipient_delimiter;
	const char *mail_location;
	const char *default_home;
	bool save_to_detail;
	long delivery_record_ttl; /* seconds a delivery record is kept */
	struct userdb *userdb;
};

extern struct lmtpd_config lmtpd_config;

enum lmtpd_state {
	LMTPD_STATE_COMMAND,
	LMTPD_STATE_DATA,
	LMTPD_STATE_CLOSING,
};

enum lmtpd_data_state {
	LMTPD_DATA_LINE_START,
	LMTPD_DATA_TEXT,
	LMTPD_DATA_CR,
	LMTPD_DATA_DOT,
	LMTPD_DATA_DOT_CR,
};

/* One accepted recipient. */
struct lmtpd_rcpt {
	char *address;	/* external form, as the client sent it */
	char *user;	/* the userdb name it matched */
	char *maildir;	/* the user's Maildir root */
	char *folder;	/* "INBOX" or the +detail folder */
	long long quota; /* bytes, 0 = none */
	long long uid, gid; /* from the userdb; -1 when empty */
};

struct lmtpd_session {
	struct netconn *conn;
	enum lmtpd_state state;
	bool dispatching;
	bool local;	      /* unix socket: "local" in logs */
	bool end_logged;      /* the Disconnect line is written once */
	char client_addr[64]; /* numeric address or "local" */
	char *lhlo;
	char id[LMTPD_ID_LEN + 1];
	/* the transaction */
	bool have_mail;
	struct smtp_addr sender;
	struct smtp_params mail_params;
	struct lmtpd_rcpt *rcpts;
	size_t rcpt_count;
	enum lmtpd_data_state data_state;
	struct str content; /* unstuffed, LF line ends */
	bool too_big;
	unsigned deliveries; /* for per-recipient session ids */
	struct lmtpd_session *prev, *next; /* the live sessions */
};

/* lmtpd_session.c */
void lmtpd_session_start(int fd, bool local, const char *addr);
/* lmtpd_sessions_free: at exit: drop every live session. */
void lmtpd_sessions_free(void);
void lmtpd_reply(struct lmtpd_session *s, const char *fmt, ...) ATTR_FORMAT(2, 3);
void lmtpd_transaction_reset(struct lmtpd_session *s);
const char *lmtpd_state_name(const struct lmtpd_session *s);
/* lmtpd_new_id: 22 characters of base64 randomness, as Dovecot's ids. */
void lmtpd_new_id(char id[LMTPD_ID_LEN + 1]);

/* lmtpd_deliver.c */
/* lmtpd_rcpt_resolve: the user, Maildir and folder of a recipient; 1 ok,
 * 0 unknown user, -1 temporary failure; *reply_r is set for 0 and -1 and
 * for a quota refusal (then 0 with quota text; only with check_quota: a
 * delivery with a delivery id is checked at DATA, unless it is a repeat). */
int lmtpd_rcpt_resolve(const struct smtp_addr *addr, long long size, bool check_quota,
		       struct lmtpd_rcpt *r, char *reply, size_t reply_size);
void lmtpd_rcpt_free(struct lmtpd_rcpt *r);
void lmtpd_data_begin(struct lmtpd_session *s);
/* lmtpd_data_feed: consume DATA bytes; true at the end (replies sent). */
bool lmtpd_data_feed(struct lmtpd_session *s, struct str *in);

#endif
