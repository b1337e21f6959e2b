/* addr.h: RFC 5321 envelope addresses and ESMTP MAIL/RCPT parameters.
 *
 * smtpd matches the verb and "FROM:" / "TO:" itself and hands the rest of
 * the command line to addr_parse_path(); the text after the path goes to
 * smtp_params_parse_mail() or smtp_params_parse_rcpt(). Everything here is
 * a decoder of client text, so it fails closed: every length has a maximum
 * and anything the grammar does not allow is an error, never a guess.
 *
 * Forms of an address:
 *   internal  the local part with quoting removed ("john doe"), as the
 *             queue manager and delivery agents compare it;
 *   external  the canonical wire text: local part quoted only when it is
 *             not a dot-string, domain in the case the client sent;
 *             what goes in queue files and log lines ("" for <>);
 *   lookup    the external form lowercased (ASCII only): the key Postfix
 *             tables see (Postfix looks up the quoted form).
 *
 * What is accepted, what is refused and why: doc/addresses.md.
 *
 * Reply codes smtpd should use: ADDR_ERR_SOURCE_ROUTE 553 5.1.0;
 * ADDR_ERR_SYNTAX, ADDR_ERR_8BIT, ADDR_ERR_TOO_LONG 501 5.1.7 (sender) or
 * 501 5.1.3 (recipient); ADDR_ERR_PARAM_UNKNOWN 555 5.5.4; the other
 * ADDR_ERR_PARAM_* 501 5.5.4.
 *
 * SMTPUTF8 (RFC 6531): a non-ASCII sender is only legal with the SMTPUTF8
 * parameter, which comes after the path. smtpd parses the path with
 * ADDR_ALLOW_SMTPUTF8 when it offers the extension, then refuses the
 * command when addr.utf8 is set and params.smtputf8 is not; recipients are
 * parsed with ADDR_ALLOW_SMTPUTF8 only when the MAIL command had it. */
#ifndef PETREL_ADDR_H
#define PETREL_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "util/str.h"

/* RFC 5321 4.5.3.1 limits, in octets of wire text. */
#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_LABEL_MAX 63
#define ADDR_PATH_MAX 256 /* including the < and > */

enum addr_flags {
	ADDR_ALLOW_SMTPUTF8 = 1 << 0, /* UTF-8 in local part and domain */
	ADDR_STRICT = 1 << 1,	      /* strict_rfc821_envelopes: require <> */
	ADDR_NULL_OK = 1 << 2,	      /* MAIL FROM:<> */
	ADDR_POSTMASTER_OK = 1 << 3,  /* RCPT TO:<postmaster> without domain */
};

enum addr_error {
	ADDR_OK = 0,
	ADDR_ERR_SYNTAX,	 /* not a path, or bytes the grammar forbids */
	ADDR_ERR_SOURCE_ROUTE,	 /* <@a,@b:user@d> */
	ADDR_ERR_8BIT,		 /* non-ASCII without ADDR_ALLOW_SMTPUTF8 */
	ADDR_ERR_TOO_LONG,	 /* local part, label, domain or path */
	ADDR_ERR_PARAM_SYNTAX,	 /* malformed parameter or bad value */
	ADDR_ERR_PARAM_UNKNOWN,	 /* keyword not known or not offered */
	ADDR_ERR_PARAM_DUP,	 /* keyword given twice */
	ADDR_ERR_PARAM_TOO_MANY, /* more than SMTP_PARAMS_MAX */
};

/* A parsed path. After success local and external are never NULL. */
struct smtp_addr {
	char *local;	/* local part, unquoted (internal form); "" for <> */
	char *domain;	/* as sent; NULL for <> and <postmaster> */
	char *external; /* canonical quoted form, "" for <> */
	bool is_null;	/* <> */
	bool utf8;	/* contains non-ASCII */
};

/* addr_parse_path: parse the path in arg[0..len) (the text after "FROM:"
 * or "TO:"; SP after the colon is skipped). flags are enum addr_flags.
 * On ADDR_OK fills *addr_r and sets *rest_r to the first parameter byte
 * (the parameters are rest_r[0 .. arg + len - *rest_r)). Otherwise
 * *addr_r is zeroed and *error_r is a short static reply text. */
enum addr_error addr_parse_path(const char *arg, size_t len, unsigned flags,
				struct smtp_addr *addr_r, const char **rest_r,
				const char **error_r);
/* addr_parse_mailbox: a bare "local@domain" (no <>, no parameters), such
 * as a configured address or a decoded AUTH= value; all of text must be
 * used. */
enum addr_error addr_parse_mailbox(const char *text, size_t len, unsigned flags,
				   struct smtp_addr *addr_r, const char **error_r);
/* smtp_addr_deinit: free the strings and zero the struct (safe twice). */
void smtp_addr_deinit(struct smtp_addr *addr);
/* addr_lookup_key: replace out with the table lookup key of addr. */
void addr_lookup_key(const struct smtp_addr *addr, struct str *out);
/* addr_external_local: append the external (quoted if needed) form of an
 * internal local part. */
void addr_external_local(struct str *out, const char *local, size_t len);

/* ESMTP parameters. */
#define SMTP_PARAMS_MAX 16
#define SMTP_SIZE_MAX 9007199254740992LL /* 2^53 */
#define SMTP_ENVID_MAX 100		 /* decoded octets (RFC 3461 4.4) */
#define SMTP_ORCPT_MAX 500		 /* decoded octets (RFC 3461 4.2) */
#define SMTP_AUTH_MAX 500		 /* decoded octets */
#define SMTP_DELIVERY_ID_MAX 40		 /* XDELIVERYID= octets */

/* The extensions smtpd offers in its EHLO reply; a keyword belonging to
 * one that is not offered is ADDR_ERR_PARAM_UNKNOWN. */
enum smtp_ext {
	SMTP_EXT_SIZE = 1 << 0,	      /* SIZE= */
	SMTP_EXT_8BITMIME = 1 << 1,   /* BODY=7BIT|8BITMIME */
	SMTP_EXT_BINARYMIME = 1 << 2, /* also BODY=BINARYMIME */
	SMTP_EXT_DSN = 1 << 3,	      /* RET= ENVID= NOTIFY= ORCPT= */
	SMTP_EXT_SMTPUTF8 = 1 << 4,   /* SMTPUTF8 */
	SMTP_EXT_AUTH = 1 << 5,	      /* AUTH= */
	SMTP_EXT_XDELIVERYID = 1 << 6, /* XDELIVERYID= (Petrel's internal LMTP) */
};
/* What smtpd offers unless configured otherwise: all but BINARYMIME. */
#define SMTP_EXT_DEFAULT                                                  \
	(SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_DSN | SMTP_EXT_SMTPUTF8 | \
	 SMTP_EXT_AUTH)

enum smtp_body {
	SMTP_BODY_UNSET = 0,
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,
	SMTP_BODY_BINARYMIME,
};

enum smtp_ret {
	SMTP_RET_UNSET = 0,
	SMTP_RET_FULL,
	SMTP_RET_HDRS,
};

enum smtp_notify {
	SMTP_NOTIFY_NEVER = 1 << 0,
	SMTP_NOTIFY_SUCCESS = 1 << 1,
	SMTP_NOTIFY_FAILURE = 1 << 2,
	SMTP_NOTIFY_DELAY = 1 << 3,
};

struct smtp_params {
	/* MAIL */
	long long size;	     /* SIZE=, -1 when not given */
	enum smtp_body body; /* BODY= */
	bool smtputf8;	     /* SMTPUTF8 */
	enum smtp_ret ret;   /* RET= */
	char *envid;	     /* ENVID=, xtext-decoded, or NULL */
	char *auth;	     /* AUTH=, decoded mailbox or "<>", or NULL */
	char *delivery_id;   /* XDELIVERYID=, letters and digits, or NULL */
	/* RCPT */
	unsigned notify; /* NOTIFY=, enum smtp_notify bits, 0 when not given */
	char *orcpt;	 /* ORCPT=, "addr-type;decoded address", or NULL */
};

/* smtp_params_init: the "nothing given" state (size -1, rest zero). */
void smtp_params_init(struct smtp_params *p);
/* smtp_params_parse_mail: parse MAIL parameters in rest[0..len) into *p
 * (initialised here; on error *p is left initialised and empty). ext is
 * enum smtp_ext bits. *error_r may point into a static buffer that the
 * next call overwrites. */
enum addr_error smtp_params_parse_mail(const char *rest, size_t len, unsigned ext,
				       struct smtp_params *p, const char **error_r);
/* smtp_params_parse_rcpt: the same for RCPT (NOTIFY, ORCPT). */
enum addr_error smtp_params_parse_rcpt(const char *rest, size_t len, unsigned ext,
				       struct smtp_params *p, const char **error_r);
/* smtp_params_deinit: free the strings and reinitialise (safe twice). */
void smtp_params_deinit(struct smtp_params *p);

/* xtext (RFC 3461 4): bytes 33..126 but '+' and '=' stand for
 * themselves, any other byte is "+XX" with two upper-case hex digits. */
void addr_xtext_encode(struct str *out, const void *data, size_t len);
/* addr_xtext_decode: append the decoded in[0..len) to out; false with
 * *error_r on a byte outside xtext or a bad "+XX". The result may hold any
 * byte, NUL included: callers check what they allow. */
bool addr_xtext_decode(struct str *out, const char *in, size_t len, const char **error_r);

#endif
