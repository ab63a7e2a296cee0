/* fileio.h — whole-file reads and all-or-nothing writes. */
#ifndef DSC_FILEIO_H
#define DSC_FILEIO_H

#include <stddef.h>

#include "util/diag.h"

/* Read a whole file into a malloc'd buffer with a NUL after the last byte;
 * *len gets the byte count.  NULL and an error naming path on failure. */
char *file_read_all(const char *path, size_t *len, dsc_err *err);

/* Write len bytes to path atomically: to a temporary name beside it, then
 * rename, so a failure never leaves a half-written file behind. */
int file_write_atomic(const char *path, const void *data, size_t len,
                      dsc_err *err);

/* An output being assembled in pieces: bytes go to a temporary file beside
 * path, and only file_out_commit renames it into place. */
typedef struct file_out file_out;

file_out *file_out_open(const char *path, dsc_err *err);
int file_out_write(file_out *f, const void *data, size_t len);
/* Close and rename into place; on any earlier write failure, removes the
 * temporary file and reports.  Frees f either way. */
int file_out_commit(file_out *f, dsc_err *err);
/* Close and remove the temporary file.  Frees f.  NULL is fine. */
void file_out_abort(file_out *f);

#endif
