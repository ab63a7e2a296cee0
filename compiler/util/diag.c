#include "util/diag.h"

#include <stdarg.h>
#include <stdio.h>


int err_set(dsc_err *e, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}


int err_file(dsc_err *e, const char *path, const char *fmt, ...)
{
    if (e) {
        char msg[900];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        err_set(e, "%s: error: %s", path, msg);
    }
    return -1;
}
