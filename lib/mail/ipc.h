/* ipc.h: the record codec every internal protocol speaks, and the names of
 * its fields (all protocols' field names live here, in one place).
 *
 * Grammar (one request or one reply is one record):
 *
 *	record := field* "\n"
 *	field  := name "=" value "\n"
 *	name   := [a-z0-9_]{1,32}
 *	value  := any bytes except "\n", "\\" and NUL, plus the escapes
 *	          "\\\\" (backslash), "\\n" (newline), "\\0" (NUL)
 *
 * Integers are written in decimal ("-" then digits, no "+", no leading
 * zeros), so a record reads the same in strace as on paper:
 *
 *	request=connect
 *	service=smtp
 *	client=192.0.2.1
 *	<empty line>
 *
 * Decoders fail closed: a name outside the grammar, a line without "=", a
 * bad escape, a raw NUL, a duplicate field, a value over IPC_VALUE_MAX
 * bytes (decoded), more than IPC_FIELDS_MAX fields or a record over
 * IPC_RECORD_MAX bytes (as sent) is an error, found as soon as the bytes
 * that show it have arrived. A truncated valid record is never an error:
 * ipc_parse() asks for more. Receivers skip fields they do not know unless
 * they ask ipc_expect() to be strict.
 *
 * Versions: on a new connection the server's first record is
 *
 *	protocol=NAME
 *	version=N
 *	<empty line>
 *
 * (ipc_put_version); the client checks it (ipc_check_version) before it
 * trusts any reply. A change that old peers would misread bumps N. */
#ifndef PETREL_IPC_H
#define PETREL_IPC_H

#include <stdbool.h>
#include <stddef.h>

#include "util/str.h"

/* Bounds (see above). */
#define IPC_NAME_MAX 32
#define IPC_VALUE_MAX (64 * 1024)
#define IPC_FIELDS_MAX 64
#define IPC_RECORD_MAX (256 * 1024)

/* Fields every protocol uses. status is 0 for success, negative for a
 * failure described by error. */
#define IPC_F_PROTOCOL "protocol"
#define IPC_F_VERSION "version"
#define IPC_F_REQUEST "request"
#define IPC_F_STATUS "status"
#define IPC_F_ERROR "error"

/* anvil(8): connection counts and rates per (service, client); see
 * doc/anvil.8 for the requests and replies. */
#define ANVIL_PROTOCOL "anvil"
#define ANVIL_PROTOCOL_VERSION 1
/* service and client values: 1..MAX bytes of printable ASCII, no space */
#define ANVIL_SERVICE_MAX 100
#define ANVIL_CLIENT_MAX 255
/* anvil_name_valid: s[0..len) is such a value (at most max bytes). */
bool anvil_name_valid(const char *s, size_t len, size_t max);
#define ANVIL_F_SERVICE "service"
#define ANVIL_F_CLIENT "client"
#define ANVIL_F_COUNT "count"
#define ANVIL_F_RATE "rate"
#define ANVIL_F_MESSAGE "message"
#define ANVIL_F_RCPT "rcpt"
#define ANVIL_F_NEWTLS "newtls"
#define ANVIL_F_AUTH "auth"
#define ANVIL_F_ENTRIES "entries"
#define ANVIL_F_LIMIT "limit"
#define ANVIL_REQ_CONNECT "connect"
#define ANVIL_REQ_DISCONNECT "disconnect"
#define ANVIL_REQ_MESSAGE "message"
#define ANVIL_REQ_RCPT "rcpt"
#define ANVIL_REQ_NEWTLS "newtls"
#define ANVIL_REQ_AUTH "auth"
#define ANVIL_REQ_LOOKUP "lookup"
#define ANVIL_REQ_STATS "stats"

struct ipc_record;

/* Encoding: append one field to out; ipc_end() closes the record. A name
 * outside the grammar or a value over IPC_VALUE_MAX is a programming error
 * (panic): callers bound what they send. */
void ipc_put_str(struct str *out, const char *name, const char *value);
void ipc_put_data(struct str *out, const char *name, const void *value, size_t len);
void ipc_put_int(struct str *out, const char *name, long long value);
void ipc_end(struct str *out);
/* ipc_put_version: the whole greeting record of a protocol. */
void ipc_put_version(struct str *out, const char *protocol, int version);

/* ipc_parse: one record from the front of in (say, a connection's input
 * buffer). Returns 1 with *rec_r and *consumed_r (the bytes to drop) when
 * a whole record is there, 0 when more bytes are needed, -1 with *error_r
 * (static storage) when what is there can never become a valid record. */
int ipc_parse(const char *in, size_t len, struct ipc_record **rec_r, size_t *consumed_r,
	      const char **error_r);
/* ipc_decode: in must be exactly one record: an incomplete record or
 * bytes after it are errors. Returns 0 or -1 with *error_r. */
int ipc_decode(const char *in, size_t len, struct ipc_record **rec_r, const char **error_r);
void ipc_record_free(struct ipc_record **rec);

/* ipc_get_str: the decoded value, or NULL when absent. A value with a NUL
 * in it reads as its text up to the NUL: use ipc_get_data for those. */
const char *ipc_get_str(const struct ipc_record *rec, const char *name);
/* ipc_get_data: the decoded value and its length, or NULL. */
const char *ipc_get_data(const struct ipc_record *rec, const char *name, size_t *len_r);
/* ipc_get_int: false when absent or not an integer in the grammar above
 * within the range of long long. */
bool ipc_get_int(const struct ipc_record *rec, const char *name, long long *value_r);
/* ipc_field_count, ipc_field_name: the fields in the order sent. */
unsigned ipc_field_count(const struct ipc_record *rec);
const char *ipc_field_name(const struct ipc_record *rec, unsigned i);

/* ipc_expect: every name in required (NULL-terminated) is present; when
 * strict, no other field is. Returns 0, or -1 with *error_r. */
int ipc_expect(const struct ipc_record *rec, const char *const *required, bool strict,
	       const char **error_r);
/* ipc_check_version: rec is protocol's greeting with exactly version.
 * Returns 0, or -1 with *error_r. */
int ipc_check_version(const struct ipc_record *rec, const char *protocol, int version,
		      const char **error_r);

#endif
