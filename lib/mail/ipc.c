/* ipc.c: the internal IPC record codec (grammar and bounds in ipc.h).
 *
 * Parsing is two passes over the input: ipc_scan() checks the grammar and
 * every bound and finds the end of the record without writing anything,
 * so a partial record costs no allocation; ipc_build() then copies the
 * names and the unescaped values of a record known to be valid into one
 * allocation. */
#include <config.h>

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/ipc.h"
#include "util/alloc.h"
#include "util/msg.h"

struct ipc_field {
	const char *name;
	const char *value; /* NUL-terminated; len bytes before it */
	size_t len;
};

struct ipc_record {
	unsigned count;
	struct ipc_field fields[IPC_FIELDS_MAX];
	char data[]; /* names and values, each NUL-terminated */
};

/* What ipc_scan() learned: where each name starts and how long it is. */
struct ipc_scan {
	unsigned count;
	size_t name_at[IPC_FIELDS_MAX];
	size_t name_len[IPC_FIELDS_MAX];
};

static char ipc_error_buf[160];

/* ipc_error: format an error into the static buffer for *error_r. */
static const char *ipc_error(const char *fmt, ...) ATTR_FORMAT(1, 2);
static const char *ipc_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	(void)vsnprintf(ipc_error_buf, sizeof(ipc_error_buf), fmt, ap);
	va_end(ap);
	return ipc_error_buf;
}

/* ipc_name_char: may c appear in a field name? */
static bool ipc_name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* ipc_name_valid: a whole name in the grammar (for the encoder and the
 * lookups, which take C strings). */
static bool ipc_name_valid(const char *name)
{
	size_t n = 0;
	for (; name[n] != '\0'; n++) {
		if (!ipc_name_char((unsigned char)name[n]) || n == IPC_NAME_MAX)
			return false;
	}
	return n > 0;
}

/* ---- encoding ---- */

/* ipc_put_name: "name=", checked. */
static void ipc_put_name(struct str *out, const char *name, const char *caller)
{
	if (!ipc_name_valid(name))
		msg_panic("%s: invalid field name \"%.40s\"", caller, name);
	str_append(out, name);
	str_append_c(out, '=');
}

void ipc_put_data(struct str *out, const char *name, const void *value, size_t len)
{
	const char *p = value;
	if (len > IPC_VALUE_MAX)
		msg_panic("ipc_put_data: value of %s is %zu bytes (limit %d)", name, len,
			  IPC_VALUE_MAX);
	ipc_put_name(out, name, "ipc_put_data");
	str_reserve(out, len + 1);
	size_t run = 0; /* plain bytes not yet appended */
	for (size_t i = 0; i < len; i++) {
		const char *esc = NULL;
		if (p[i] == '\\')
			esc = "\\\\";
		else if (p[i] == '\n')
			esc = "\\n";
		else if (p[i] == '\0')
			esc = "\\0";
		if (esc == NULL) {
			run++;
			continue;
		}
		str_append_n(out, p + i - run, run);
		str_append_n(out, esc, 2);
		run = 0;
	}
	str_append_n(out, p + len - run, run);
	str_append_c(out, '\n');
}

bool anvil_name_valid(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return false;
	}
	return true;
}

void ipc_put_str(struct str *out, const char *name, const char *value)
{
	ipc_put_data(out, name, value, strlen(value));
}

void ipc_put_int(struct str *out, const char *name, long long value)
{
	ipc_put_name(out, name, "ipc_put_int");
	str_printf(out, "%lld\n", value);
}

/* ipc_end: the empty line that ends a record. */
void ipc_end(struct str *out)
{
	str_append_c(out, '\n');
}

void ipc_put_version(struct str *out, const char *protocol, int version)
{
	ipc_put_str(out, IPC_F_PROTOCOL, protocol);
	ipc_put_int(out, IPC_F_VERSION, version);
	ipc_end(out);
}

/* ---- decoding ---- */

/* ipc_scan_short: the bytes ran out before the record ended. */
static int ipc_scan_short(size_t len, const char **error_r)
{
	if (len < IPC_RECORD_MAX)
		return 0;
	*error_r = ipc_error("record longer than %d bytes", IPC_RECORD_MAX);
	return -1;
}

/* ipc_scan_name: the name of the field at *pos_r, up to and over its
 * "=". Returns 1, 0 (need more) or -1. */
static int ipc_scan_name(const char *in, size_t avail, size_t len, size_t *pos_r,
			 struct ipc_scan *sc, const char **error_r)
{
	size_t start = *pos_r, pos = start;
	while (pos < avail && ipc_name_char((unsigned char)in[pos])) {
		if (++pos - start > IPC_NAME_MAX) {
			*error_r = ipc_error("field name longer than %d bytes", IPC_NAME_MAX);
			return -1;
		}
	}
	if (pos >= avail)
		return ipc_scan_short(len, error_r);
	if (in[pos] != '=') {
		*error_r = pos == start ? ipc_error("bad character 0x%02x in field name",
						    (unsigned char)in[pos])
					: ipc_error("missing '=' after field name");
		return -1;
	}
	if (pos == start) {
		*error_r = "empty field name";
		return -1;
	}
	if (sc->count == IPC_FIELDS_MAX) {
		*error_r = ipc_error("more than %d fields", IPC_FIELDS_MAX);
		return -1;
	}
	size_t n = pos - start;
	for (unsigned i = 0; i < sc->count; i++) {
		if (sc->name_len[i] == n && memcmp(in + sc->name_at[i], in + start, n) == 0) {
			*error_r = ipc_error("duplicate field \"%.*s\"", (int)n, in + start);
			return -1;
		}
	}
	sc->name_at[sc->count] = start;
	sc->name_len[sc->count] = n;
	sc->count++;
	*pos_r = pos + 1;
	return 1;
}

/* ipc_scan_value: the value at *pos_r, up to and over its newline.
 * Returns 1, 0 (need more) or -1. */
static int ipc_scan_value(const char *in, size_t avail, size_t len, size_t *pos_r,
			  const char **error_r)
{
	size_t pos = *pos_r, vlen = 0;
	for (;;) {
		if (pos >= avail)
			return ipc_scan_short(len, error_r);
		char c = in[pos];
		if (c == '\n')
			break;
		if (c == '\0') {
			*error_r = "NUL byte in value";
			return -1;
		}
		if (c == '\\') {
			if (pos + 1 >= avail)
				return ipc_scan_short(len, error_r);
			char e = in[pos + 1];
			if (e != '\\' && e != 'n' && e != '0') {
				*error_r = ipc_error("bad escape \"\\%c\" in value",
						     e >= 0x20 && e < 0x7f ? e : '?');
				return -1;
			}
			pos += 2;
		} else {
			pos++;
		}
		if (++vlen > IPC_VALUE_MAX) {
			*error_r = ipc_error("value longer than %d bytes", IPC_VALUE_MAX);
			return -1;
		}
	}
	*pos_r = pos + 1;
	return 1;
}

/* ipc_scan: check the record at the front of in; 1 with *end_r (bytes
 * up to and including the empty line), 0 or -1. */
static int ipc_scan(const char *in, size_t len, struct ipc_scan *sc, size_t *end_r,
		    const char **error_r)
{
	size_t avail = len < IPC_RECORD_MAX ? len : IPC_RECORD_MAX;
	size_t pos = 0;
	sc->count = 0;
	for (;;) {
		if (pos >= avail)
			return ipc_scan_short(len, error_r);
		if (in[pos] == '\n') {
			*end_r = pos + 1;
			return 1;
		}
		int ret = ipc_scan_name(in, avail, len, &pos, sc, error_r);
		if (ret <= 0)
			return ret;
		ret = ipc_scan_value(in, avail, len, &pos, error_r);
		if (ret <= 0)
			return ret;
	}
}

/* ipc_build: the record that ipc_scan() accepted, names and unescaped
 * values copied out. end bytes always suffice: a field's line is at least
 * its name, value and two more bytes, the two NULs here. */
static struct ipc_record *ipc_build(const char *in, size_t end, const struct ipc_scan *sc)
{
	struct ipc_record *rec = xmalloc(sizeof(*rec) + end);
	char *d = rec->data;
	rec->count = sc->count;
	for (unsigned i = 0; i < sc->count; i++) {
		struct ipc_field *f = &rec->fields[i];
		memcpy(d, in + sc->name_at[i], sc->name_len[i]);
		d[sc->name_len[i]] = '\0';
		f->name = d;
		d += sc->name_len[i] + 1;
		f->value = d;
		for (const char *p = in + sc->name_at[i] + sc->name_len[i] + 1; *p != '\n'; p++) {
			if (*p != '\\') {
				*d++ = *p;
				continue;
			}
			p++;
			*d++ = *p == 'n' ? '\n' : *p == '0' ? '\0' : '\\';
		}
		f->len = (size_t)(d - f->value);
		*d++ = '\0';
	}
	return rec;
}

int ipc_parse(const char *in, size_t len, struct ipc_record **rec_r, size_t *consumed_r,
	      const char **error_r)
{
	struct ipc_scan sc;
	size_t end = 0;
	int ret = ipc_scan(in, len, &sc, &end, error_r);
	if (ret <= 0)
		return ret;
	*rec_r = ipc_build(in, end, &sc);
	*consumed_r = end;
	return 1;
}

int ipc_decode(const char *in, size_t len, struct ipc_record **rec_r, const char **error_r)
{
	size_t used = 0;
	int ret = ipc_parse(in, len, rec_r, &used, error_r);
	if (ret == 0)
		*error_r = "truncated record";
	if (ret <= 0)
		return -1;
	if (used != len) {
		ipc_record_free(rec_r);
		*error_r = ipc_error("%zu bytes after the end of the record", len - used);
		return -1;
	}
	return 0;
}

void ipc_record_free(struct ipc_record **rec)
{
	free(*rec);
	*rec = NULL;
}

/* ---- access ---- */

/* ipc_find: the field called name, or NULL. */
static const struct ipc_field *ipc_find(const struct ipc_record *rec, const char *name)
{
	for (unsigned i = 0; i < rec->count; i++) {
		if (strcmp(rec->fields[i].name, name) == 0)
			return &rec->fields[i];
	}
	return NULL;
}

const char *ipc_get_str(const struct ipc_record *rec, const char *name)
{
	const struct ipc_field *f = ipc_find(rec, name);
	return f == NULL ? NULL : f->value;
}

const char *ipc_get_data(const struct ipc_record *rec, const char *name, size_t *len_r)
{
	const struct ipc_field *f = ipc_find(rec, name);
	if (f == NULL)
		return NULL;
	*len_r = f->len;
	return f->value;
}

/* ipc_parse_int: strict decimal as ipc_put_int writes it: no sign but
 * "-", no leading zeros, no "-0", no white space, no overflow. */
static bool ipc_parse_int(const char *s, size_t len, long long *value_r)
{
	size_t i = 0;
	bool neg = len > 0 && s[0] == '-';
	if (neg)
		i++;
	if (i == len || (s[i] == '0' && (len - i > 1 || neg)))
		return false;
	long long v = 0;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		int digit = s[i] - '0';
		/* accumulate negatively so LLONG_MIN fits */
		if (v < (LLONG_MIN + digit) / 10)
			return false;
		v = v * 10 - digit;
	}
	if (!neg) {
		if (v == LLONG_MIN)
			return false;
		v = -v;
	}
	*value_r = v;
	return true;
}

bool ipc_get_int(const struct ipc_record *rec, const char *name, long long *value_r)
{
	const struct ipc_field *f = ipc_find(rec, name);
	return f != NULL && ipc_parse_int(f->value, f->len, value_r);
}

unsigned ipc_field_count(const struct ipc_record *rec)
{
	return rec->count;
}

const char *ipc_field_name(const struct ipc_record *rec, unsigned i)
{
	if (i >= rec->count)
		msg_panic("ipc_field_name: field %u of %u", i, rec->count);
	return rec->fields[i].name;
}

int ipc_expect(const struct ipc_record *rec, const char *const *required, bool strict,
	       const char **error_r)
{
	for (const char *const *n = required; *n != NULL; n++) {
		if (ipc_find(rec, *n) == NULL) {
			*error_r = ipc_error("missing field \"%s\"", *n);
			return -1;
		}
	}
	if (!strict)
		return 0;
	for (unsigned i = 0; i < rec->count; i++) {
		const char *const *n = required;
		while (*n != NULL && strcmp(*n, rec->fields[i].name) != 0)
			n++;
		if (*n == NULL) {
			*error_r = ipc_error("unexpected field \"%s\"", rec->fields[i].name);
			return -1;
		}
	}
	return 0;
}

int ipc_check_version(const struct ipc_record *rec, const char *protocol, int version,
		      const char **error_r)
{
	const char *got = ipc_get_str(rec, IPC_F_PROTOCOL);
	long long v = 0;
	if (got == NULL || !ipc_get_int(rec, IPC_F_VERSION, &v)) {
		*error_r = ipc_error("expected a %s protocol greeting", protocol);
		return -1;
	}
	if (strcmp(got, protocol) != 0 || v != version) {
		char shown[41];
		size_t i = 0;
		/* the peer's text goes into logs: printable ASCII only */
		for (; got[i] != '\0' && i < sizeof(shown) - 1; i++)
			shown[i] = got[i] >= 0x20 && got[i] < 0x7f ? got[i] : '?';
		shown[i] = '\0';
		*error_r = ipc_error("protocol mismatch: want %s version %d, got %s version %lld",
				     protocol, version, shown, v);
		return -1;
	}
	return 0;
}
