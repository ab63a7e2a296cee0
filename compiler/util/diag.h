/* diag.h — how every module of the compiler reports an error.
 *
 * A failing function fills a dsc_err with one complete, user-facing line
 * that names the place ("model.lua:12: error: ...", "w.safetensors: error:
 * ...") and returns nonzero; the command line prints it and exits with 1.
 */
#ifndef DSC_DIAG_H
#define DSC_DIAG_H

#include <stddef.h>

typedef struct dsc_err {
    char msg[1024];
} dsc_err;

/* Format msg (printf-style) into e; returns -1 so callers can
 * `return err_set(e, ...);`.  e may be NULL. */
int err_set(dsc_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The same, prefixed "path: error: " — for errors about a whole file. */
int err_file(dsc_err *e, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
