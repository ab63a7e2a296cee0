/* strbuf.h — a growable text buffer for building generated files. */
#ifndef DSC_STRBUF_H
#define DSC_STRBUF_H

#include <stddef.h>

typedef struct strbuf {
    char *data;   /* NUL-terminated while not failed */
    size_t len, cap;
    int failed;   /* an allocation failed; later appends do nothing */
} strbuf;

void sb_printf(strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sb_append(strbuf *sb, const char *text);
/* Hand over the text (NULL if an allocation failed); sb is reset. */
char *sb_take(strbuf *sb);
void sb_free(strbuf *sb);

#endif
