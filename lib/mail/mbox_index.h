/* mbox_index.h: the per-user mailbox index (LMDB) over a Maildir++ tree,
 * shared by lmtpd (which records new mail) and imapd/pop3d (which read it).
 *
 * One LMDB environment per user: <maildir root>/petrel-index.lmdb (one file,
 * MDB_NOSUBDIR, plus its "-lock" file). Per folder it holds UIDVALIDITY,
 * UIDNEXT, HIGHESTMODSEQ and the mailbox GUID; per message UID -> base name
 * (the file name without ":2,..."), flags, keywords and MODSEQ; and base
 * name -> UID. The record layout is in mbox_index.c.
 *
 * The index is a cache. The durable record of UIDs is the folder's
 * dovecot-uidlist (Dovecot's version 3 format, so Dovecot can read the
 * mailbox back): mbox_index_sync() rewrites it when it assigns UIDs and
 * mbox_index_add() appends one line per message, as Dovecot does. The
 * environment is opened with MDB_NOMETASYNC: a crash can undo the last
 * transactions but never damages the file, and mbox_index_sync() (run by
 * every reader before it trusts a folder) puts back what was lost from the
 * Maildir and dovecot-uidlist, keeping every UID already given out. A file
 * LMDB refuses to open (damaged, other version) is removed and rebuilt.
 *
 * First open of a Dovecot Maildir adopts it: dovecot-uidlist (UIDVALIDITY,
 * next UID, GUID and every UID), dovecot-keywords ("<index> <name>" lines;
 * letters a..z in file names are keywords 0..25). The "subscriptions" file
 * is left where it is and read by imapd itself.
 *
 * Rules (LMDB's caveats): open after fork+exec, once per process and
 * user; no transaction is kept open between calls, so nothing is held
 * across an event-loop wait; mdb_reader_check() runs at open. Limits: a
 * base name is at most MBOX_INDEX_NAME_MAX bytes (longer files are not
 * indexed, with a warning), a folder name MAILDIR_FOLDER_MAX. */
#ifndef PETREL_MBOX_INDEX_H
#define PETREL_MBOX_INDEX_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define MBOX_INDEX_FILE "petrel-index.lmdb"
#define MBOX_INDEX_NAME_MAX 200
#define MBOX_INDEX_KEYWORDS_MAX 26
#define MBOX_INDEX_UIDLIST_LINE_MAX 8192
#define MBOX_INDEX_DELIVERY_ID_MAX 40 /* as SMTP_DELIVERY_ID_MAX */

/* System flags (IMAP) and their Maildir letters. */
enum mbox_flag {
	MBOX_FLAG_DRAFT = 1 << 0,    /* D */
	MBOX_FLAG_FLAGGED = 1 << 1,  /* F */
	MBOX_FLAG_FORWARDED = 1 << 2, /* P ($Forwarded) */
	MBOX_FLAG_ANSWERED = 1 << 3, /* R */
	MBOX_FLAG_SEEN = 1 << 4,     /* S */
	MBOX_FLAG_DELETED = 1 << 5,  /* T */
};

struct mbox_index;

struct mbox_index_folder {
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	char guid[33]; /* 32 hex digits */
};

/* One message; basename points into the index's buffer, valid until the
 * next call. */
struct mbox_index_rec {
	uint32_t uid;
	uint32_t flags;	   /* enum mbox_flag */
	uint32_t keywords; /* bit i = keyword i (letter 'a' + i) */
	uint64_t modseq;
	const char *basename;
};

/* mbox_index_open: open (creating or rebuilding) root/petrel-index.lmdb. */
int mbox_index_open(const char *root, struct mbox_index **index_r, const char **error_r);
void mbox_index_close(struct mbox_index **index);

/* mbox_index_sync: bring folder's records in line with its cur/ and new/
 * (adopting dovecot-uidlist and dovecot-keywords): known files keep their
 * UIDs, changed flags get a new MODSEQ, vanished files are dropped, new
 * files get UIDs in file-name time order. -1 with *error_r on failure. */
int mbox_index_sync(struct mbox_index *ix, const char *folder, const char **error_r);
/* mbox_index_add: record a message just delivered into folder's new/;
 * *uid_r is its UID (the existing one if already known). */
int mbox_index_add(struct mbox_index *ix, const char *folder, const char *basename,
		   uint32_t *uid_r, const char **error_r);
/* mbox_index_folder: the folder's header; 1, 0 (not indexed yet) or -1. */
int mbox_index_folder(struct mbox_index *ix, const char *folder, struct mbox_index_folder *f_r,
		      const char **error_r);
/* mbox_index_lookup: 1 with *rec_r, 0 when uid is not there, -1. */
int mbox_index_lookup(struct mbox_index *ix, const char *folder, uint32_t uid,
		      struct mbox_index_rec *rec_r, const char **error_r);
/* mbox_index_lookup_name: the UID of a base name; 1, 0 or -1. */
int mbox_index_lookup_name(struct mbox_index *ix, const char *folder, const char *basename,
			   uint32_t *uid_r, const char **error_r);
/* mbox_index_iterate: call fn for each message in UID order (inside one
 * read transaction: fn must not block); fn returns false to stop. */
typedef bool mbox_index_iter_fn(void *ctx, const struct mbox_index_rec *rec);
int mbox_index_iterate(struct mbox_index *ix, const char *folder, mbox_index_iter_fn *fn,
		       void *ctx, const char **error_r);
/* mbox_index_keyword: the name of keyword i in folder; 1, 0 or -1. The
 * name is valid until the next call. */
int mbox_index_keyword(struct mbox_index *ix, const char *folder, unsigned i,
		       const char **name_r, const char **error_r);

/* Delivery records: what makes a delivery from Petrel's queue idempotent
 * (doc/delivery.md, "Exactly once"). One record per folder and delivery
 * id (letters and digits, at most MBOX_INDEX_DELIVERY_ID_MAX): the file
 * name the delivery gave its message. Unlike the rest of the index these
 * records are not a cache: they are committed and synced to disk (meta
 * page included) before the file is moved into new/, and kept until
 * expire_before passes them (each new record drops a few expired ones). A
 * rebuilt index has none (a repeated delivery then stores a second copy).
 *
 * mbox_index_delivery_record: in one transaction: when folder already has
 * a record for id, return 0 with *name_r (valid until the next call) set
 * to the name recorded then; otherwise record id -> name, add name as a
 * new message (as mbox_index_add: *uid_r, or 0 when the folder is not
 * indexed yet and a later mbox_index_add must sync it), commit, sync, and
 * return 1. -1 with *error_r on failure (nothing recorded); -2 when the
 * commit went through but the sync failed: the record is visible to later
 * lookups but not known to be on disk, so the file it names must be kept
 * (a retry finishes it). */
int mbox_index_delivery_record(struct mbox_index *ix, const char *folder, const char *id,
			       const char *name, time_t now, time_t expire_before,
			       uint32_t *uid_r, const char **name_r, const char **error_r);
/* mbox_index_delivery_lookup: the recorded name of id (read only); 1 with
 * *name_r, 0 or -1. */
int mbox_index_delivery_lookup(struct mbox_index *ix, const char *folder, const char *id,
			       const char **name_r, const char **error_r);

/* mbox_index_parse_flags: the flags and keywords of a file name (after
 * ":2,"; none when absent). */
void mbox_index_parse_flags(const char *filename, uint32_t *flags_r, uint32_t *keywords_r);

#endif
