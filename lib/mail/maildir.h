/* maildir.h: Maildir++ layout, Dovecot's file names, durable delivery.
 *
 * Layout (Maildir++, as Dovecot): the root holds INBOX's cur/ new/ tmp/;
 * a folder "Sent" is the subdirectory ".Sent" with its own cur/ new/ tmp/
 * and an empty "maildirfolder" file; hierarchy uses '.' ("a.b" -> ".a.b").
 * Directories are created on demand with mode 0700.
 *
 * File names, byte for byte Dovecot's (maildir-filename.c):
 *
 *     <secs>.M<usecs>P<pid>.<host>,S=<size>,W=<vsize>[:2,<flags>]
 *
 * "<secs>.M<usecs>P<pid>.<host>" is unique per process because the time
 * never repeats (a repeated microsecond is bumped), '/' and ':' in the
 * host name are written "\057" and "\072". S is the file size, W the size
 * with CRLF line ends (the file has LF ends: Dovecot's mail_save_crlf=no).
 * New mail goes to new/ without ":2,"; flags (sorted letters: D F P R S T,
 * then keywords a..z) exist only for files in cur/. The "base name" is the
 * file name without ":2,..." (what dovecot-uidlist records).
 *
 * Delivery: write tmp/<base>,S=..,W=.., fsync, close (checked), link into
 * new/<base>,S=..,W=.. (never replacing a file), unlink the tmp name, fsync
 * new/. On any failure the tmp file is removed and nothing is in new/. */
#ifndef PETREL_MAILDIR_H
#define PETREL_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "util/str.h"

#define MAILDIR_FOLDER_MAX 255 /* bytes of a folder name */

/* maildir_folder_valid: a name usable as a folder: not empty, at most
 * MAILDIR_FOLDER_MAX bytes, no '/', no NUL, no leading or trailing '.',
 * no "..", no control characters. "INBOX" (any case) is the root. */
bool maildir_folder_valid(const char *folder);
/* maildir_folder_dir: append the directory of folder under root to out
 * (root itself for INBOX). The folder must be valid. */
void maildir_folder_dir(struct str *out, const char *root, const char *folder);
/* maildir_folder_exists: the folder's directory with cur/ new/ tmp/. */
bool maildir_folder_exists(const char *root, const char *folder);
/* maildir_create: make root (and folder, unless INBOX) with cur/ new/
 * tmp/ (0700; parents of root too). -1 with *error_r on failure. */
int maildir_create(const char *root, const char *folder, const char **error_r);

/* maildir_base_name: a fresh base name "<secs>.M<usecs>P<pid>.<host>"
 * appended to out; *tv_r (optional) gets the time it holds. */
void maildir_base_name(struct str *out, const char *hostname, struct timeval *tv_r);
/* maildir_sizes: the S= and W= values of content with LF line ends. */
void maildir_sizes(const void *data, size_t len, long long *size_r, long long *vsize_r);

/* maildir_deliver: write the concatenation of iov[] (LF line ends) as a
 * new message in folder's new/. On success returns 0 and appends the file
 * name (= base name, with ,S= and ,W=) to name_r. On failure returns -1,
 * *errno_r (ENOSPC, EDQUOT, ...) and *error_r; nothing is left behind. */
int maildir_deliver(const char *root, const char *folder, const char *hostname,
		    const struct iovec *iov, int iovcnt, struct str *name_r, int *errno_r,
		    const char **error_r);

/* Delivery in two steps, for a delivery that must happen once however
 * often it is retried (lmtpd with a delivery identity; doc/delivery.md):
 *
 * maildir_prepare: write the content as tmp/<name>, where name is the
 * final file name (base name with ,S= and ,W=), fsync it, close it and
 * fsync tmp/; append name to name_r. Then the caller records name
 * durably, and calls
 * maildir_finish: rename tmp/<name> to new/<name> (never replacing) and
 * fsync new/. A tmp/<name> that is gone counts as moved: the caller
 * records name only once its tmp file is durable, so after any crash the
 * file is either still in tmp/ (finish moves it) or was moved (and the
 * user may have read or deleted it since): finish can be called again
 * after a crash, by a retry, and does the right thing.
 * maildir_discard: remove tmp/<name> (prepare succeeded, recording did
 * not). */
int maildir_prepare(const char *root, const char *folder, const char *hostname,
		    const struct iovec *iov, int iovcnt, struct str *name_r, int *errno_r,
		    const char **error_r);
int maildir_finish(const char *root, const char *folder, const char *name, int *errno_r,
		   const char **error_r);
void maildir_discard(const char *root, const char *folder, const char *name);

/* maildir_usage: bytes of the messages in cur/ and new/ of every folder
 * (from S= where the name has it, else from stat); -1 on a read error. */
long long maildir_usage(const char *root);

#endif
