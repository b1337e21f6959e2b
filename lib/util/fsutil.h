/* fsutil.h: small file-system helpers: durable writes, fifo triggers.
 *
 * A file that must survive a crash is written, fsync'd, closed (checked) and
 * renamed; the rename itself is durable only once the directory holding the
 * new name is fsync'd too. fsync_dir() is that last step. */
#ifndef PETREL_FSUTIL_H
#define PETREL_FSUTIL_H

/* fsync_dir: open path as a directory and fsync it. Returns 0, or -1 with
 * errno set (the directory's open, fsync or close error). */
int fsync_dir(const char *path);

/* rename_noreplace: rename from to to, failing with EEXIST instead of
 * replacing an existing file (renameat2 RENAME_NOREPLACE, or link + unlink
 * where the file system cannot). Returns 0; 1 when to is in place but the
 * old name could not be removed (link fallback; errno from unlink); -1
 * with errno when nothing was moved. */
int rename_noreplace(const char *from, const char *to);

/* fifo_trigger: write byte into the fifo at path without ever waiting
 * (a daemon's wake-up: qmgr's public/qmgr, pickup's public/pickup).
 * Returns 0 when the byte went in, or when the fifo is full (EAGAIN: it
 * holds a wake-up already); -1 with errno otherwise: ENXIO (nobody
 * reads it), ENOENT, ELOOP (a symlink), EINVAL (not a fifo), ... */
int fifo_trigger(const char *path, char byte);

#endif
