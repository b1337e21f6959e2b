/* fsutil.h: small file-system helpers for durable writes.
 *
 * A file that must survive a crash is written, fsync'd, closed (checked) and
 * renamed; the rename itself is durable only once the directory holding the
 * new name is fsync'd too. fsync_dir() is that last step. */
#ifndef PETREL_FSUTIL_H
#define PETREL_FSUTIL_H

/* fsync_dir: open path as a directory and fsync it. Returns 0, or -1 with
 * errno set (the directory's open, fsync or close error). */
int fsync_dir(const char *path);

#endif
