/* addr.c: RFC 5321 paths and ESMTP MAIL/RCPT parameters; see addr.h.
 *
 * Grammar (RFC 5321 4.1.2, RFC 6531 3.3), as accepted here:
 *   path       = [SP...] "<" ( ">" / mailbox ">" )    ; or bare mailbox
 *   mailbox    = local-part [ "@" domain ]             ; no domain: postmaster
 *   local-part = dot-string / quoted-string            ; <= 64 octets
 *   dot-string = atom *("." atom), atom = 1*(atext / UTF-8)
 *   quoted     = DQUOTE 1*(qtext / UTF-8 / "\" %d32-126) DQUOTE
 *   domain     = label *("." label) / "[" IPv4 "]" / "[IPv6:" IPv6 "]"
 *   label      = (alnum / UTF-8) *(alnum / UTF-8 / "-"), no "-" at the end
 * A source route (<@a,@b:user@d>) is recognised only to refuse it. */
#include <config.h> /* autoconf; "config.h" here would be mail/config.h */

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/addr.h"
#include "util/alloc.h"
#include "util/attr.h"
#include "util/str.h"

/* Parser state for one path or mailbox. */
struct addr_parser {
	const unsigned char *p;	  /* cursor */
	const unsigned char *end; /* one past the last input byte */
	unsigned flags;		  /* enum addr_flags */
	bool bracketed;		  /* mailbox ends at '>', else at SP or end */
	bool utf8;		  /* saw a non-ASCII byte */
	struct str local;	  /* local part, internal form */
	const char *error;
};

/* addr_fail: remember the reply text and pass the code on. */
static enum addr_error addr_fail(struct addr_parser *ps, enum addr_error err, const char *text)
{
	ps->error = text;
	return err;
}

/* addr_is_alnum: ASCII letter or digit (locale-independent). */
static bool addr_is_alnum(unsigned c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* addr_is_atext: RFC 5322 atext, ASCII part. '%' and '!' are plain
 * characters here: Petrel never routes on them. */
static bool addr_is_atext(unsigned c)
{
	return addr_is_alnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", (int)c) != NULL);
}

/* addr_lower: ASCII lowercase of one byte, other bytes unchanged. */
static char addr_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

/* addr_utf8_len: length (2..4) of the well-formed UTF-8 sequence at p, or
 * 0 for a stray, truncated, overlong, surrogate, beyond-U+10FFFF or C1
 * control sequence (RFC 3629 with U+0080..U+009F removed). */
static size_t addr_utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	unsigned lo = 0x80, hi = 0xbf; /* range of the second byte */
	size_t n;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		if (c == 0xc2)
			lo = 0xa0; /* C1 controls */
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* beyond U+10FFFF */
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	}
	return n;
}

/* addr_take_8bit: check the non-ASCII sequence at the cursor; its length
 * goes to *n_r. */
static enum addr_error addr_take_8bit(struct addr_parser *ps, size_t *n_r)
{
	if ((ps->flags & ADDR_ALLOW_SMTPUTF8) == 0)
		return addr_fail(ps, ADDR_ERR_8BIT, "non-ASCII address without SMTPUTF8");
	size_t n = addr_utf8_len(ps->p, ps->end);
	if (n == 0)
		return addr_fail(ps, ADDR_ERR_SYNTAX, "invalid UTF-8 in address");
	ps->utf8 = true;
	*n_r = n;
	return ADDR_OK;
}

/* addr_at_term: true when the cursor is where the mailbox must end. */
static bool addr_at_term(const struct addr_parser *ps)
{
	if (ps->p >= ps->end)
		return !ps->bracketed;
	return *ps->p == (ps->bracketed ? '>' : ' ');
}

/* addr_term_error: the mailbox stopped at a byte that cannot end it. */
static enum addr_error addr_term_error(struct addr_parser *ps, const char *where)
{
	if (ps->bracketed && ps->p >= ps->end)
		return addr_fail(ps, ADDR_ERR_SYNTAX, "missing closing >");
	return addr_fail(ps, ADDR_ERR_SYNTAX, where);
}

/* addr_parse_dot_string: atoms separated by single dots. */
static enum addr_error addr_parse_dot_string(struct addr_parser *ps)
{
	const unsigned char *start = ps->p;
	bool after_dot = true; /* at the start or just after a dot */
	while (ps->p < ps->end) {
		unsigned c = *ps->p;
		size_t n = 1;
		if (c == '.') {
			if (after_dot)
				return addr_fail(ps, ADDR_ERR_SYNTAX, "misplaced dot in local part");
		} else if (c >= 0x80) {
			enum addr_error err = addr_take_8bit(ps, &n);
			if (err != ADDR_OK)
				return err;
		} else if (!addr_is_atext(c)) {
			break;
		}
		after_dot = c == '.';
		str_append_n(&ps->local, ps->p, n);
		ps->p += n;
		if (ps->p - start > ADDR_LOCAL_MAX)
			return addr_fail(ps, ADDR_ERR_TOO_LONG, "local part longer than 64 octets");
	}
	if (ps->p == start) {
		if (ps->p < ps->end && *ps->p == '@')
			return addr_fail(ps, ADDR_ERR_SYNTAX, "empty local part");
		return addr_term_error(ps, "invalid character in local part");
	}
	if (after_dot)
		return addr_fail(ps, ADDR_ERR_SYNTAX, "misplaced dot in local part");
	return ADDR_OK;
}

/* addr_parse_quoted: a quoted-string; the quotes and backslashes are
 * removed from the internal form. */
static enum addr_error addr_parse_quoted(struct addr_parser *ps)
{
	const unsigned char *start = ps->p++;
	for (;;) {
		if (ps->p - start > ADDR_LOCAL_MAX)
			return addr_fail(ps, ADDR_ERR_TOO_LONG, "local part longer than 64 octets");
		if (ps->p >= ps->end)
			return addr_fail(ps, ADDR_ERR_SYNTAX, "unterminated quoted string");
		unsigned c = *ps->p;
		size_t n = 1;
		if (c == '"') {
			ps->p++;
			break;
		}
		if (c == '\\') {
			/* quoted-pairSMTP: only printable ASCII may follow */
			if (ps->end - ps->p < 2 || ps->p[1] < 32 || ps->p[1] > 126)
				return addr_fail(ps, ADDR_ERR_SYNTAX, "invalid quoted pair");
			ps->p++;
		} else if (c >= 0x80) {
			enum addr_error err = addr_take_8bit(ps, &n);
			if (err != ADDR_OK)
				return err;
		} else if (c < 32 || c == 127) {
			return addr_fail(ps, ADDR_ERR_SYNTAX, "invalid character in quoted string");
		}
		str_append_n(&ps->local, ps->p, n);
		ps->p += n;
	}
	if (ps->p - start > ADDR_LOCAL_MAX)
		return addr_fail(ps, ADDR_ERR_TOO_LONG, "local part longer than 64 octets");
	/* Legal in RFC 5321, but no mailbox has it and tools downstream
	 * would read it as "no address". */
	if (ps->local.len == 0)
		return addr_fail(ps, ADDR_ERR_SYNTAX, "empty local part");
	return ADDR_OK;
}

/* addr_parse_literal: "[IPv4]" or "[IPv6:...]", checked with inet_pton. */
static enum addr_error addr_parse_literal(struct addr_parser *ps)
{
	char text[64];
	size_t n = 0;
	ps->p++; /* '[' */
	while (ps->p < ps->end && *ps->p != ']') {
		unsigned c = *ps->p;
		/* dcontent, and short enough for the longest IPv6 text */
		if (c < 33 || c > 126 || c == '[' || c == '\\' || n >= sizeof(text) - 1)
			return addr_fail(ps, ADDR_ERR_SYNTAX, "invalid address literal");
		text[n++] = (char)c;
		ps->p++;
	}
	if (ps->p >= ps->end)
		return addr_fail(ps, ADDR_ERR_SYNTAX, "invalid address literal");
	ps->p++; /* ']' */
	text[n] = '\0';
	unsigned char bin[16];
	int ok;
	if (str_prefix_icase(text, "IPv6:"))
		ok = inet_pton(AF_INET6, text + 5, bin);
	else
		ok = inet_pton(AF_INET, text, bin);
	if (ok != 1)
		return addr_fail(ps, ADDR_ERR_SYNTAX, "invalid address literal");
	return ADDR_OK;
}

/* addr_parse_label: one domain label; domain_start bounds the domain. */
static enum addr_error addr_parse_label(struct addr_parser *ps, const unsigned char *domain_start)
{
	size_t chars = 0; /* code points: a U-label's A-label is longer */
	bool last_hyphen = false;
	while (ps->p < ps->end) {
		unsigned c = *ps->p;
		size_t n = 1;
		if (c >= 0x80) {
			enum addr_error err = addr_take_8bit(ps, &n);
			if (err != ADDR_OK)
				return err;
		} else if (c == '-') {
			if (chars == 0)
				return addr_fail(ps, ADDR_ERR_SYNTAX, "domain label starts with a hyphen");
		} else if (!addr_is_alnum(c)) {
			break;
		}
		last_hyphen = c == '-';
		ps->p += n;
		if (++chars > ADDR_LABEL_MAX)
			return addr_fail(ps, ADDR_ERR_TOO_LONG, "domain label longer than 63 octets");
		if (ps->p - domain_start > ADDR_DOMAIN_MAX)
			return addr_fail(ps, ADDR_ERR_TOO_LONG, "domain longer than 255 octets");
	}
	if (chars == 0) {
		if (ps->p == domain_start)
			return addr_term_error(ps, "missing domain");
		return addr_fail(ps, ADDR_ERR_SYNTAX, "empty domain label");
	}
	if (last_hyphen)
		return addr_fail(ps, ADDR_ERR_SYNTAX, "domain label ends with a hyphen");
	return ADDR_OK;
}

/* addr_parse_domain: labels separated by dots, or an address literal. */
static enum addr_error addr_parse_domain(struct addr_parser *ps)
{
	if (ps->p < ps->end && *ps->p == '[')
		return addr_parse_literal(ps);
	const unsigned char *start = ps->p;
	for (;;) {
		enum addr_error err = addr_parse_label(ps, start);
		if (err != ADDR_OK)
			return err;
		if (ps->p >= ps->end || *ps->p != '.')
			return ADDR_OK;
		ps->p++;
	}
}

/* addr_is_source_route: "@a,@b:" at the cursor (up to the path's end). */
static bool addr_is_source_route(const struct addr_parser *ps)
{
	if (ps->p >= ps->end || *ps->p != '@')
		return false;
	for (const unsigned char *q = ps->p; q < ps->end && *q != '>' && *q != ' '; q++) {
		if (*q == ':')
			return true;
	}
	return false;
}

/* addr_parse_box: local-part ["@" domain] up to the terminator; on
 * success the domain (or NULL) is in *domain_r. */
static enum addr_error addr_parse_box(struct addr_parser *ps, char **domain_r)
{
	*domain_r = NULL;
	if (addr_is_source_route(ps))
		return addr_fail(ps, ADDR_ERR_SOURCE_ROUTE, "source routes are not accepted");
	enum addr_error err = ps->p < ps->end && *ps->p == '"' ? addr_parse_quoted(ps)
							     : addr_parse_dot_string(ps);
	if (err != ADDR_OK)
		return err;
	if (ps->p < ps->end && *ps->p == '@') {
		const unsigned char *start = ++ps->p;
		if ((err = addr_parse_domain(ps)) != ADDR_OK)
			return err;
		if (!addr_at_term(ps))
			return addr_term_error(ps, "invalid character in domain");
		*domain_r = xstrndup((const char *)start, (size_t)(ps->p - start));
		return ADDR_OK;
	}
	if (!addr_at_term(ps))
		return addr_term_error(ps, "invalid character in local part");
	if ((ps->flags & ADDR_POSTMASTER_OK) != 0 && str_eq_icase(str_c(&ps->local), "postmaster"))
		return ADDR_OK;
	return addr_fail(ps, ADDR_ERR_SYNTAX, "missing domain");
}

/* addr_local_is_dot_string: true when local needs no quotes. */
static bool addr_local_is_dot_string(const char *local, size_t len)
{
	if (len == 0 || local[0] == '.' || local[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)local[i];
		if (c == '.') {
			if (local[i + 1] == '.')
				return false;
		} else if (c < 0x80 && !addr_is_atext(c)) {
			return false;
		}
	}
	return true;
}

/* addr_external_local: quote when not a dot-string, escaping '"' and '\'
 * (the only bytes a canonical quoted-string escapes). */
void addr_external_local(struct str *out, const char *local, size_t len)
{
	if (addr_local_is_dot_string(local, len)) {
		str_append_n(out, local, len);
		return;
	}
	str_append_c(out, '"');
	for (size_t i = 0; i < len; i++) {
		if (local[i] == '"' || local[i] == '\\')
			str_append_c(out, '\\');
		str_append_c(out, local[i]);
	}
	str_append_c(out, '"');
}

/* addr_finish: move the parser's result into addr (takes domain). */
static void addr_finish(struct addr_parser *ps, char *domain, struct smtp_addr *addr)
{
	struct str ext = STR_INIT;
	addr_external_local(&ext, str_c(&ps->local), ps->local.len);
	if (domain != NULL) {
		str_append_c(&ext, '@');
		str_append(&ext, domain);
	}
	addr->local = str_steal(&ps->local);
	addr->domain = domain;
	addr->external = str_steal(&ext);
	addr->is_null = false;
	addr->utf8 = ps->utf8;
}

/* addr_parser_init: state for input[0..len). */
static void addr_parser_init(struct addr_parser *ps, const char *input, size_t len, unsigned flags)
{
	ps->p = (const unsigned char *)input;
	ps->end = ps->p + len;
	ps->flags = flags;
	ps->bracketed = false;
	ps->utf8 = false;
	str_init(&ps->local);
	ps->error = NULL;
}

/* addr_parse_bracketed: after "<": ">" alone or mailbox ">"; leaves the
 * cursor after the ">". */
static enum addr_error addr_parse_bracketed(struct addr_parser *ps, struct smtp_addr *addr)
{
	ps->bracketed = true;
	ps->p++; /* '<' */
	if (ps->p < ps->end && *ps->p == '>') {
		if ((ps->flags & ADDR_NULL_OK) == 0)
			return addr_fail(ps, ADDR_ERR_SYNTAX, "null address is not allowed here");
		ps->p++;
		addr->local = xstrdup("");
		addr->domain = NULL;
		addr->external = xstrdup("");
		addr->is_null = true;
		addr->utf8 = false;
		return ADDR_OK;
	}
	char *domain;
	enum addr_error err = addr_parse_box(ps, &domain);
	if (err != ADDR_OK)
		return err;
	ps->p++; /* '>', checked by addr_parse_box */
	addr_finish(ps, domain, addr);
	return ADDR_OK;
}

/* addr_parse_path: optional spaces, then "<...>" or (lenient) a bare
 * mailbox, then SP or the end. */
enum addr_error addr_parse_path(const char *arg, size_t len, unsigned flags,
				struct smtp_addr *addr_r, const char **rest_r,
				const char **error_r)
{
	struct addr_parser ps;
	enum addr_error err;
	addr_parser_init(&ps, arg, len, flags);
	memset(addr_r, 0, sizeof(*addr_r));
	/* "MAIL FROM: <a@b>": clients send it, Postfix takes it. */
	while (ps.p < ps.end && *ps.p == ' ')
		ps.p++;
	const unsigned char *start = ps.p;
	size_t punct = 0; /* "<>" counted in the path length */
	if (ps.p >= ps.end) {
		err = addr_fail(&ps, ADDR_ERR_SYNTAX, "missing address");
	} else if (*ps.p == '<') {
		err = addr_parse_bracketed(&ps, addr_r);
	} else if ((flags & ADDR_STRICT) != 0) {
		err = addr_fail(&ps, ADDR_ERR_SYNTAX, "address must be enclosed in <>");
	} else {
		char *domain;
		punct = 2;
		if ((err = addr_parse_box(&ps, &domain)) == ADDR_OK)
			addr_finish(&ps, domain, addr_r);
	}
	if (err == ADDR_OK && (size_t)(ps.p - start) + punct > ADDR_PATH_MAX)
		err = addr_fail(&ps, ADDR_ERR_TOO_LONG, "address longer than 256 octets");
	if (err == ADDR_OK && ps.p < ps.end && *ps.p != ' ')
		err = addr_fail(&ps, ADDR_ERR_SYNTAX, "garbage after address");
	str_deinit(&ps.local);
	if (err != ADDR_OK) {
		smtp_addr_deinit(addr_r);
		*error_r = ps.error;
		return err;
	}
	while (ps.p < ps.end && *ps.p == ' ')
		ps.p++;
	*rest_r = (const char *)ps.p;
	return ADDR_OK;
}

/* addr_parse_mailbox: a bare mailbox filling all of text. */
enum addr_error addr_parse_mailbox(const char *text, size_t len, unsigned flags,
				   struct smtp_addr *addr_r, const char **error_r)
{
	struct addr_parser ps;
	char *domain;
	addr_parser_init(&ps, text, len, flags);
	memset(addr_r, 0, sizeof(*addr_r));
	enum addr_error err = ADDR_OK;
	if (len == 0)
		err = addr_fail(&ps, ADDR_ERR_SYNTAX, "missing address");
	else if (len > ADDR_PATH_MAX - 2)
		err = addr_fail(&ps, ADDR_ERR_TOO_LONG, "address longer than 256 octets");
	else if ((err = addr_parse_box(&ps, &domain)) == ADDR_OK)
		addr_finish(&ps, domain, addr_r);
	if (err == ADDR_OK && ps.p != ps.end)
		err = addr_fail(&ps, ADDR_ERR_SYNTAX, "garbage after address");
	str_deinit(&ps.local);
	if (err != ADDR_OK) {
		smtp_addr_deinit(addr_r);
		*error_r = ps.error;
	}
	return err;
}

/* smtp_addr_deinit: free and zero. */
void smtp_addr_deinit(struct smtp_addr *addr)
{
	free(addr->local);
	free(addr->domain);
	free(addr->external);
	memset(addr, 0, sizeof(*addr));
}

/* addr_lookup_key: the external form, ASCII-lowercased. */
void addr_lookup_key(const struct smtp_addr *addr, struct str *out)
{
	str_clear(out);
	str_append(out, addr->external != NULL ? addr->external : "");
	/* ASCII only: Postfix without ICU folds no further. */
	for (size_t i = 0; i < out->len; i++)
		out->data[i] = addr_lower(out->data[i]);
}

/* ---- xtext (RFC 3461 4) ---- */

/* addr_hex_digit: value of an upper-case hex digit, or -1. */
static int addr_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* addr_xtext_encode: "+XX" for every byte that is not an xchar. */
void addr_xtext_encode(struct str *out, const void *data, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		if (p[i] >= 33 && p[i] <= 126 && p[i] != '+' && p[i] != '=') {
			str_append_c(out, (char)p[i]);
		} else {
			char esc[3] = { '+', hex[p[i] >> 4], hex[p[i] & 15] };
			str_append_n(out, esc, sizeof(esc));
		}
	}
}

/* addr_xtext_decode: undo "+XX"; refuse bytes outside xtext. */
bool addr_xtext_decode(struct str *out, const char *in, size_t len, const char **error_r)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '+') {
			int hi = len - i >= 3 ? addr_hex_digit(in[i + 1]) : -1;
			int lo = len - i >= 3 ? addr_hex_digit(in[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				*error_r = "bad +XX escape in xtext";
				return false;
			}
			str_append_c(out, (char)(hi * 16 + lo));
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			*error_r = "invalid character in xtext";
			return false;
		} else {
			str_append_c(out, (char)c);
		}
	}
	return true;
}

/* ---- ESMTP parameters ---- */

/* One KEYWORD[=VALUE] as cut from the command line. */
struct param_token {
	const char *key;
	size_t key_len;
	const char *value; /* NULL when there was no '=' */
	size_t value_len;
};

struct smtp_param_def {
	const char *name;
	bool rcpt;    /* a RCPT parameter, else MAIL */
	unsigned ext; /* enum smtp_ext that must be offered */
	enum addr_error (*parse)(struct smtp_params *p, const struct param_token *t,
				 unsigned ext, const char **error_r);
};

/* Reply text naming a keyword; overwritten by the next call. */
static char params_error_buf[80];

/* params_error_key: "text: KEYWORD" in the static buffer. */
static const char *params_error_key(const char *text, const char *key, size_t key_len)
{
	int n = key_len > 32 ? 32 : (int)key_len;
	if (!str_format(params_error_buf, sizeof(params_error_buf), "%s: %.*s", text, n, key))
		return text;
	return params_error_buf;
}

/* params_eq_icase: key[0..len) equals the NUL-terminated word, any case. */
static bool params_eq_icase(const char *key, size_t len, const char *word)
{
	size_t i;
	for (i = 0; i < len && word[i] != '\0'; i++) {
		if (addr_lower(key[i]) != addr_lower(word[i]))
			return false;
	}
	return i == len && word[i] == '\0';
}

/* params_is_printable: decoded DSN text must be printable ASCII. */
static bool params_is_printable(const struct str *s)
{
	for (size_t i = 0; i < s->len; i++) {
		if ((unsigned char)s->data[i] < 32 || (unsigned char)s->data[i] > 126)
			return false;
	}
	return true;
}

/* params_need_value: KEY=VALUE required. */
static enum addr_error params_need_value(const struct param_token *t, const char **error_r)
{
	if (t->value != NULL)
		return ADDR_OK;
	*error_r = params_error_key("parameter needs a value", t->key, t->key_len);
	return ADDR_ERR_PARAM_SYNTAX;
}

/* params_decode_text: xtext value -> printable string of at most max. */
static enum addr_error params_decode_text(const char *in, size_t len, size_t max, char **out_r,
					  const char *bad, const char **error_r)
{
	struct str s = STR_INIT;
	const char *why;
	if (!addr_xtext_decode(&s, in, len, &why) || s.len == 0 || s.len > max ||
	    !params_is_printable(&s)) {
		str_deinit(&s);
		*error_r = bad;
		return ADDR_ERR_PARAM_SYNTAX;
	}
	*out_r = str_steal(&s);
	return ADDR_OK;
}

/* param_size: SIZE=decimal, at most 2^53 (RFC 1870). */
static enum addr_error param_size(struct smtp_params *p, const struct param_token *t,
				  unsigned ext, const char **error_r)
{
	enum addr_error err = params_need_value(t, error_r);
	if (err != ADDR_OK)
		return err;
	long long v = 0;
	for (size_t i = 0; i < t->value_len; i++) {
		int d = t->value[i] - '0';
		if (d < 0 || d > 9) {
			*error_r = "bad SIZE value";
			return ADDR_ERR_PARAM_SYNTAX;
		}
		if (v > (SMTP_SIZE_MAX - d) / 10) {
			*error_r = "SIZE value out of range";
			return ADDR_ERR_PARAM_SYNTAX;
		}
		v = v * 10 + d;
	}
	p->size = v;
	return ADDR_OK;
}

/* param_body: BODY=7BIT|8BITMIME (RFC 6152), BINARYMIME if offered. */
static enum addr_error param_body(struct smtp_params *p, const struct param_token *t,
				  unsigned ext, const char **error_r)
{
	enum addr_error err = params_need_value(t, error_r);
	if (err != ADDR_OK)
		return err;
	if (params_eq_icase(t->value, t->value_len, "7BIT")) {
		p->body = SMTP_BODY_7BIT;
	} else if (params_eq_icase(t->value, t->value_len, "8BITMIME")) {
		p->body = SMTP_BODY_8BITMIME;
	} else if (params_eq_icase(t->value, t->value_len, "BINARYMIME")) {
		if ((ext & SMTP_EXT_BINARYMIME) == 0) {
			*error_r = "BODY=BINARYMIME is not supported";
			return ADDR_ERR_PARAM_UNKNOWN;
		}
		p->body = SMTP_BODY_BINARYMIME;
	} else {
		*error_r = "bad BODY value";
		return ADDR_ERR_PARAM_SYNTAX;
	}
	return ADDR_OK;
}

/* param_smtputf8: SMTPUTF8 alone (RFC 6531). */
static enum addr_error param_smtputf8(struct smtp_params *p, const struct param_token *t,
				      unsigned ext, const char **error_r)
{
	if (t->value != NULL) {
		*error_r = "SMTPUTF8 takes no value";
		return ADDR_ERR_PARAM_SYNTAX;
	}
	p->smtputf8 = true;
	return ADDR_OK;
}

/* param_ret: RET=FULL|HDRS (RFC 3461 4.3). */
static enum addr_error param_ret(struct smtp_params *p, const struct param_token *t,
				 unsigned ext, const char **error_r)
{
	enum addr_error err = params_need_value(t, error_r);
	if (err != ADDR_OK)
		return err;
	if (params_eq_icase(t->value, t->value_len, "FULL")) {
		p->ret = SMTP_RET_FULL;
	} else if (params_eq_icase(t->value, t->value_len, "HDRS")) {
		p->ret = SMTP_RET_HDRS;
	} else {
		*error_r = "bad RET value";
		return ADDR_ERR_PARAM_SYNTAX;
	}
	return ADDR_OK;
}

/* param_envid: ENVID=xtext, printable, at most 100 octets decoded. */
static enum addr_error param_envid(struct smtp_params *p, const struct param_token *t,
				   unsigned ext, const char **error_r)
{
	enum addr_error err = params_need_value(t, error_r);
	if (err != ADDR_OK)
		return err;
	return params_decode_text(t->value, t->value_len, SMTP_ENVID_MAX, &p->envid,
				  "bad ENVID value", error_r);
}

/* param_auth: AUTH=<> or AUTH=xtext(mailbox) (RFC 4954 5). */
static enum addr_error param_auth(struct smtp_params *p, const struct param_token *t,
				  unsigned ext, const char **error_r)
{
	enum addr_error err = params_need_value(t, error_r);
	if (err != ADDR_OK)
		return err;
	char *auth;
	err = params_decode_text(t->value, t->value_len, SMTP_AUTH_MAX, &auth, "bad AUTH value",
				 error_r);
	if (err != ADDR_OK)
		return err;
	if (strcmp(auth, "<>") != 0) {
		struct smtp_addr box;
		const char *why;
		if (addr_parse_mailbox(auth, strlen(auth), 0, &box, &why) != ADDR_OK) {
			free(auth);
			*error_r = "bad AUTH value";
			return ADDR_ERR_PARAM_SYNTAX;
		}
		smtp_addr_deinit(&box);
	}
	p->auth = auth;
	return ADDR_OK;
}

/* param_delivery_id: XDELIVERYID=1*40(ALPHA / DIGIT): the queue ID that
 * makes a delivery from Petrel's queue manager to lmtpd idempotent (see
 * doc/delivery.md, "Exactly once"). */
static enum addr_error param_delivery_id(struct smtp_params *p, const struct param_token *t,
					 unsigned ext, const char **error_r)
{
	enum addr_error err = params_need_value(t, error_r);
	if (err != ADDR_OK)
		return err;
	bool ok = t->value_len > 0 && t->value_len <= SMTP_DELIVERY_ID_MAX;
	for (size_t i = 0; ok && i < t->value_len; i++) {
		char c = t->value[i];
		ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
	}
	if (!ok) {
		*error_r = "bad XDELIVERYID value";
		return ADDR_ERR_PARAM_SYNTAX;
	}
	p->delivery_id = xstrndup(t->value, t->value_len);
	return ADDR_OK;
}

/* params_notify_word: the bit for one NOTIFY keyword, or 0. */
static unsigned params_notify_word(const char *word, size_t len)
{
	static const struct {
		const char *name;
		unsigned bit;
	} words[] = {
		{ "NEVER", SMTP_NOTIFY_NEVER },
		{ "SUCCESS", SMTP_NOTIFY_SUCCESS },
		{ "FAILURE", SMTP_NOTIFY_FAILURE },
		{ "DELAY", SMTP_NOTIFY_DELAY },
	};
	for (size_t i = 0; i < N_ELEMENTS(words); i++) {
		if (params_eq_icase(word, len, words[i].name))
			return words[i].bit;
	}
	return 0;
}

/* param_notify: NOTIFY=NEVER or a list of SUCCESS,FAILURE,DELAY
 * (RFC 3461 4.1), each at most once. */
static enum addr_error param_notify(struct smtp_params *p, const struct param_token *t,
				    unsigned ext, const char **error_r)
{
	enum addr_error err = params_need_value(t, error_r);
	if (err != ADDR_OK)
		return err;
	unsigned bits = 0;
	const char *s = t->value, *end = t->value + t->value_len;
	for (;;) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *word_end = comma != NULL ? comma : end;
		unsigned bit = params_notify_word(s, (size_t)(word_end - s));
		if (bit == 0 || (bits & bit) != 0)
			break;
		bits |= bit;
		if (comma == NULL) {
			if ((bits & SMTP_NOTIFY_NEVER) != 0 && bits != SMTP_NOTIFY_NEVER)
				break;
			p->notify = bits;
			return ADDR_OK;
		}
		s = comma + 1;
	}
	*error_r = "bad NOTIFY value";
	return ADDR_ERR_PARAM_SYNTAX;
}

/* param_orcpt: ORCPT=addr-type;xtext (RFC 3461 4.2), kept decoded as
 * "addr-type;address". */
static enum addr_error param_orcpt(struct smtp_params *p, const struct param_token *t,
				   unsigned ext, const char **error_r)
{
	enum addr_error err = params_need_value(t, error_r);
	if (err != ADDR_OK)
		return err;
	const char *semi = memchr(t->value, ';', t->value_len);
	size_t type_len = semi != NULL ? (size_t)(semi - t->value) : 0;
	bool ok = type_len > 0 && type_len <= 32;
	for (size_t i = 0; ok && i < type_len; i++)
		ok = addr_is_atext((unsigned char)t->value[i]);
	char *addr = NULL;
	if (!ok || params_decode_text(semi + 1, t->value_len - type_len - 1, SMTP_ORCPT_MAX,
				      &addr, "bad ORCPT value", error_r) != ADDR_OK) {
		*error_r = "bad ORCPT value";
		return ADDR_ERR_PARAM_SYNTAX;
	}
	struct str s = STR_INIT;
	str_append_n(&s, t->value, type_len + 1);
	str_append(&s, addr);
	free(addr);
	p->orcpt = str_steal(&s);
	return ADDR_OK;
}

static const struct smtp_param_def smtp_param_defs[] = {
	{ "SIZE", false, SMTP_EXT_SIZE, param_size },
	{ "BODY", false, SMTP_EXT_8BITMIME, param_body },
	{ "SMTPUTF8", false, SMTP_EXT_SMTPUTF8, param_smtputf8 },
	{ "RET", false, SMTP_EXT_DSN, param_ret },
	{ "ENVID", false, SMTP_EXT_DSN, param_envid },
	{ "AUTH", false, SMTP_EXT_AUTH, param_auth },
	{ "XDELIVERYID", false, SMTP_EXT_XDELIVERYID, param_delivery_id },
	{ "NOTIFY", true, SMTP_EXT_DSN, param_notify },
	{ "ORCPT", true, SMTP_EXT_DSN, param_orcpt },
};

/* params_cut_token: one KEYWORD[=VALUE] at *pp, checked against the
 * RFC 5321 4.1.2 esmtp-param grammar (values are ASCII only). */
static enum addr_error params_cut_token(const char **pp, const char *end, struct param_token *t,
					const char **error_r)
{
	const char *p = *pp;
	t->key = p;
	while (p < end && *p != ' ' && *p != '=') {
		if (!addr_is_alnum((unsigned char)*p) && (*p != '-' || p == t->key)) {
			*error_r = "bad parameter keyword";
			return ADDR_ERR_PARAM_SYNTAX;
		}
		p++;
	}
	t->key_len = (size_t)(p - t->key);
	t->value = NULL;
	t->value_len = 0;
	if (t->key_len == 0) {
		*error_r = "bad parameter keyword";
		return ADDR_ERR_PARAM_SYNTAX;
	}
	if (p < end && *p == '=') {
		t->value = ++p;
		while (p < end && *p != ' ') {
			if ((unsigned char)*p < 33 || (unsigned char)*p > 126 || *p == '=') {
				*error_r = "bad character in parameter value";
				return ADDR_ERR_PARAM_SYNTAX;
			}
			p++;
		}
		t->value_len = (size_t)(p - t->value);
		if (t->value_len == 0) {
			*error_r = params_error_key("empty parameter value", t->key, t->key_len);
			return ADDR_ERR_PARAM_SYNTAX;
		}
	}
	*pp = p;
	return ADDR_OK;
}

/* params_split: cut rest into at most SMTP_PARAMS_MAX tokens separated by
 * one or more spaces. */
static enum addr_error params_split(const char *rest, size_t len, struct param_token *tokens,
				    size_t *count_r, const char **error_r)
{
	const char *p = rest, *end = rest + len;
	size_t count = 0;
	for (;;) {
		while (p < end && *p == ' ')
			p++;
		if (p >= end)
			break;
		if (count == SMTP_PARAMS_MAX) {
			*error_r = "too many parameters";
			return ADDR_ERR_PARAM_TOO_MANY;
		}
		enum addr_error err = params_cut_token(&p, end, &tokens[count], error_r);
		if (err != ADDR_OK)
			return err;
		count++;
	}
	*count_r = count;
	return ADDR_OK;
}

/* params_find: the definition of t's keyword for this command, if offered. */
static const struct smtp_param_def *params_find(const struct param_token *t, bool rcpt, unsigned ext)
{
	for (size_t i = 0; i < N_ELEMENTS(smtp_param_defs); i++) {
		const struct smtp_param_def *def = &smtp_param_defs[i];
		if (def->rcpt == rcpt && (def->ext & ext) != 0 &&
		    params_eq_icase(t->key, t->key_len, def->name))
			return def;
	}
	return NULL;
}

/* params_parse: the work of smtp_params_parse_mail/rcpt. */
static enum addr_error params_parse(const char *rest, size_t len, unsigned ext, bool rcpt,
				    struct smtp_params *p, const char **error_r)
{
	struct param_token tokens[SMTP_PARAMS_MAX];
	size_t count = 0;
	unsigned seen = 0;
	smtp_params_init(p);
	enum addr_error err = params_split(rest, len, tokens, &count, error_r);
	for (size_t i = 0; err == ADDR_OK && i < count; i++) {
		const struct param_token *t = &tokens[i];
		const struct smtp_param_def *def = params_find(t, rcpt, ext);
		if (def == NULL) {
			*error_r = params_error_key("unsupported parameter", t->key, t->key_len);
			err = ADDR_ERR_PARAM_UNKNOWN;
			break;
		}
		unsigned bit = 1u << (def - smtp_param_defs);
		if ((seen & bit) != 0) {
			*error_r = params_error_key("duplicate parameter", def->name,
						    strlen(def->name));
			err = ADDR_ERR_PARAM_DUP;
			break;
		}
		seen |= bit;
		err = def->parse(p, t, ext, error_r);
	}
	if (err != ADDR_OK)
		smtp_params_deinit(p);
	return err;
}

/* smtp_params_init: nothing given. */
void smtp_params_init(struct smtp_params *p)
{
	memset(p, 0, sizeof(*p));
	p->size = -1;
	p->body = SMTP_BODY_UNSET;
	p->ret = SMTP_RET_UNSET;
	p->envid = NULL;
	p->auth = NULL;
	p->delivery_id = NULL;
	p->orcpt = NULL;
}

/* smtp_params_parse_mail: parameters after MAIL FROM:<...>. */
enum addr_error smtp_params_parse_mail(const char *rest, size_t len, unsigned ext,
				       struct smtp_params *p, const char **error_r)
{
	return params_parse(rest, len, ext, false, p, error_r);
}

/* smtp_params_parse_rcpt: parameters after RCPT TO:<...>. */
enum addr_error smtp_params_parse_rcpt(const char *rest, size_t len, unsigned ext,
				       struct smtp_params *p, const char **error_r)
{
	return params_parse(rest, len, ext, true, p, error_r);
}

/* smtp_params_deinit: free and reinitialise. */
void smtp_params_deinit(struct smtp_params *p)
{
	free(p->envid);
	free(p->auth);
	free(p->delivery_id);
	free(p->orcpt);
	smtp_params_init(p);
}
