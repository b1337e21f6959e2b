/* smtpd.h: the inbound ESMTP server's shared types.
 *
 * One smtpd process serves many sessions through the event loop. A session
 * reads commands (CRLF-terminated only), answers them in order (so a
 * pipelining client gets its replies in one write), and streams DATA/BDAT
 * content into a queue file that is committed (fsync'd, renamed, directory
 * fsync'd) before "250 queued as" is sent. Files:
 *   smtpd.c          main(), configuration, accepting connections
 *   smtpd_session.c  session life, line reading, dispatch, replies, limits
 *   smtpd_cmd.c      one function per SMTP verb
 *   smtpd_data.c     DATA and BDAT content, the Received: header, commit
 *   smtpd_check.c    recipient and relay checks
 *   smtpd_log.c      log lines in Postfix's format */
#ifndef PETREL_SMTPD_H
#define PETREL_SMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "mail/addr.h"
#include "util/str.h"

struct anvil_client;
struct anvil_request;
struct dns_client;
struct dns_query;
struct event_timer;
struct netconn;
struct queue_writer;
struct tls_server;
struct maps;
struct domain_list;
struct net_list;

/* smtpd_forbid_bare_newline: what a bare LF or CR in content does. Whatever
 * the mode, only CRLF "." CRLF ends DATA. */
enum smtpd_bare_newline {
	SMTPD_BARE_NL_KEEP,      /* "no": stored as received */
	SMTPD_BARE_NL_NORMALIZE, /* "normalize": a bare LF becomes CRLF */
	SMTPD_BARE_NL_REJECT,    /* "reject": the message is refused */
};

enum smtpd_tls_level {
	SMTPD_TLS_NONE,
	SMTPD_TLS_MAY,
	SMTPD_TLS_ENCRYPT,
};

/* Relay and recipient restrictions: the subset of Postfix's list that
 * smtpd understands; anything else is refused at start-up. */
enum smtpd_restriction {
	SMTPD_R_PERMIT,
	SMTPD_R_REJECT,
	SMTPD_R_PERMIT_MYNETWORKS,
	SMTPD_R_PERMIT_SASL_AUTHENTICATED,
	SMTPD_R_REJECT_UNAUTH_DESTINATION,
	SMTPD_R_DEFER_UNAUTH_DESTINATION,
	SMTPD_R_REJECT_UNLISTED_RECIPIENT,
};
#define SMTPD_RESTRICTIONS_MAX 32

struct smtpd_restrictions {
	enum smtpd_restriction items[SMTPD_RESTRICTIONS_MAX];
	size_t count;
};

/* The parameters smtpd runs with, read once per process (a reload starts
 * new processes). */
struct smtpd_config {
	const char *myhostname;
	const char *banner;
	const char *queue_directory;
	long long message_size_limit;
	long long queue_minfree;
	size_t line_length_limit;
	unsigned recipient_limit;
	unsigned hard_error_limit;
	unsigned soft_error_limit;
	unsigned junk_command_limit;
	unsigned timeout_ms;
	unsigned error_sleep_ms;
	unsigned hopcount_limit;
	bool helo_required;
	bool disable_vrfy;
	bool strict_rfc821;
	bool smtputf8;
	bool peername_lookup;
	struct dns_client *dns; /* for the client name lookup, or NULL */
	struct anvil_client *anvil; /* connection counting, or NULL (no limits) */
	unsigned conn_count_limit;
	unsigned conn_rate_limit;
	unsigned message_rate_limit;
	unsigned rcpt_rate_limit;
	struct net_list *limit_exceptions;
	enum smtpd_bare_newline bare_newline;
	int bare_newline_reject_code;
	enum smtpd_tls_level tls_level;
	struct tls_server *tls;
	int relay_reject_code;
	int unknown_local_code;
	int unknown_virtual_code;
	struct net_list *mynetworks;
	struct net_list *bare_newline_exclusions;
	struct domain_list *mydestination;
	struct domain_list *virtual_mailbox_domains;
	struct domain_list *virtual_alias_domains;
	struct domain_list *relay_domains;
	struct maps *local_recipient_maps;
	struct maps *virtual_mailbox_maps;
	struct maps *virtual_alias_maps;
	struct maps *relay_recipient_maps;
	const char *recipient_delimiter;
	struct smtpd_restrictions relay_restrictions;
	struct smtpd_restrictions recipient_restrictions;
	/* EHLO keywords dropped by smtpd_discard_ehlo_keywords, lowercase. */
	const char *const *discard_ehlo;
};

extern struct smtpd_config smtpd_config;

/* A lookup table that failed to open: every lookup is a temporary error. */
extern char smtpd_maps_unavailable;
#define SMTPD_MAPS_UNAVAILABLE ((struct maps *)(void *)&smtpd_maps_unavailable)

enum smtpd_state {
	SMTPD_STATE_COMMAND, /* reading command lines */
	SMTPD_STATE_DATA,    /* reading DATA content up to CRLF.CRLF */
	SMTPD_STATE_BDAT,    /* reading the bytes of one BDAT chunk */
	SMTPD_STATE_TLS,     /* STARTTLS handshake in progress */
	SMTPD_STATE_CLOSING, /* QUIT or a fatal error: flushing the last reply */
};

/* Per-verb counters for the "disconnect from ..." line. */
enum smtpd_counter {
	SMTPD_C_HELO,
	SMTPD_C_EHLO,
	SMTPD_C_STARTTLS,
	SMTPD_C_AUTH,
	SMTPD_C_MAIL,
	SMTPD_C_RCPT,
	SMTPD_C_DATA,
	SMTPD_C_BDAT,
	SMTPD_C_RSET,
	SMTPD_C_NOOP,
	SMTPD_C_VRFY,
	SMTPD_C_ETRN,
	SMTPD_C_QUIT,
	SMTPD_C_HELP,
	SMTPD_C_UNKNOWN,
	SMTPD_C_COUNT,
};

struct smtpd_rcpt {
	char *address; /* external form, as queued and logged */
	char *orcpt;
	unsigned notify;
};

/* Content filter state: where in a line the last byte left us. */
enum smtpd_data_state {
	SMTPD_DATA_LINE_START, /* after CRLF (or at the start of content) */
	SMTPD_DATA_DOT,        /* "." at the start of a line */
	SMTPD_DATA_DOT_CR,     /* "." CR at the start of a line */
	SMTPD_DATA_TEXT,       /* inside a line */
	SMTPD_DATA_CR,         /* CR inside a line */
	SMTPD_DATA_BARE_START, /* after a bare LF: a "." here never ends DATA */
};

struct smtpd_transaction {
	bool have_mail;
	struct smtp_addr sender;
	struct smtp_params mail_params;
	struct smtpd_rcpt *rcpts;
	size_t rcpt_count;
	size_t rcpt_alloc;
	struct queue_writer *qw;
	/* content */
	enum smtpd_data_state data_state;
	long long content_bytes;
	bool too_big;
	bool bare_newline_seen;
	bool write_failed;
	bool bdat_used;
	bool bdat_last;
	const char *bdat_error; /* the refusal for this and later chunks */
	long long bdat_remaining;
	/* header scan: Received: count and Message-ID for the log */
	bool in_headers;
	unsigned received_count;
	struct str header_line; /* current header, unfolded, capped */
	struct str header_phys; /* current physical line, capped */
	char *message_id;
};

struct smtpd_session {
	struct netconn *conn;
	enum smtpd_state state;
	char client_addr[64];
	char client_port[8];
	char client_name[256];
	char namaddr[340]; /* "name[addr]" for logs */
	struct sockaddr_storage peer;
	socklen_t peerlen;
	bool in_mynetworks;
	bool bare_newline_excluded;
	bool esmtp;
	char *helo_name;
	const char *last_command; /* for "lost connection after X" */
	unsigned error_count;
	unsigned junk_count;
	bool skip_long_line;
	bool tls_done_once;
	struct event_timer *sleep_timer;
	struct dns_query *peer_query; /* client name lookup in progress */
	struct anvil_request *anvil_req; /* connection count in progress */
	bool anvil_counted; /* anvil counts this connection: tell it the end */
	bool limits_exempt; /* smtpd_client_event_limit_exceptions */
	struct anvil_request *rate_req; /* MAIL/RCPT rate check in progress */
	char *suspended_line; /* the command waiting for rate_req */
	bool rate_checked; /* re-running suspended_line: don't ask again */
	bool sleeping;
	bool dispatching; /* inside session_input(): do not free */
	unsigned counts_ok[SMTPD_C_COUNT];
	unsigned counts_all[SMTPD_C_COUNT];
	struct smtpd_transaction tx;
	struct timeval start;
	struct smtpd_session *prev, *next; /* the live sessions */
};

/* smtpd_session.c */
void smtpd_session_start(int fd, const struct sockaddr *peer, socklen_t peerlen);
/* smtpd_sessions_free: at exit (SIGTERM, the master gone): drop every
 * live session, its unfinished queue file included. */
void smtpd_sessions_free(void);
/* smtpd_reply: send one reply line (CRLF added); counts 4xx/5xx as errors. */
void smtpd_reply(struct smtpd_session *s, const char *fmt, ...) ATTR_FORMAT(2, 3);
/* smtpd_reply_multi: a multi-line reply, lines separated by '\n'. */
void smtpd_reply_multi(struct smtpd_session *s, int code, const char *lines);
void smtpd_session_close(struct smtpd_session *s);
void smtpd_transaction_reset(struct smtpd_session *s);
/* smtpd_count: record a command's outcome for the disconnect line. */
void smtpd_count(struct smtpd_session *s, enum smtpd_counter c, bool ok);
/* smtpd_count_error: an error that got no 4xx/5xx reply (junk commands). */
void smtpd_count_error(struct smtpd_session *s);

/* smtpd_session_resume: after a suspended command: read on. */
void smtpd_session_resume(struct smtpd_session *s);

/* smtpd_cmd.c */
/* smtpd_cmd_dispatch: run one command line (no CRLF). */
void smtpd_cmd_dispatch(struct smtpd_session *s, char *line, size_t len);

/* smtpd_data.c */
void smtpd_data_begin(struct smtpd_session *s);
/* smtpd_data_feed: consume DATA bytes from in; true when the end was seen. */
bool smtpd_data_feed(struct smtpd_session *s, struct str *in);
/* smtpd_bdat_begin: a BDAT command line's argument. */
void smtpd_bdat_begin(struct smtpd_session *s, const char *arg);
/* smtpd_bdat_feed: consume chunk bytes; true when the chunk is complete. */
bool smtpd_bdat_feed(struct smtpd_session *s, struct str *in);
/* smtpd_data_open: open the queue file at the first accepted recipient. */
bool smtpd_data_open(struct smtpd_session *s);

/* smtpd_check.c */
void smtpd_check_init(void);
/* smtpd_check_rcpt: 0 = accept, else *reply_r holds the full reply text. */
int smtpd_check_rcpt(struct smtpd_session *s, const struct smtp_addr *rcpt,
		     struct str *reply_r);
/* smtpd_check_space: false when the queue file system is below its minimum. */
bool smtpd_check_space(long long message_size);

/* smtpd_log.c */
void smtpd_log_reject(struct smtpd_session *s, const char *stage, const char *reply,
		      const char *rcpt);
void smtpd_log_disconnect(struct smtpd_session *s);
const char *smtpd_log_escape(const char *text); /* escaped, capped; static buffer */

#endif
