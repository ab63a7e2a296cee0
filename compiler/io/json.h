/* json.h — a small strict JSON reader, walked by the caller (json.c). */
#ifndef DSC_JSON_H
#define DSC_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "util/diag.h"

/* Integers above 2^53 are not exact in the doubles most writers use. */
#define JSON_MAX_INT ((uint64_t)1 << 53)
#define JSON_MAX_DEPTH 16

typedef struct jparser {
    const char *s;       /* the text, not NUL-terminated */
    size_t len, pos;
    const char *path;
    dsc_err *err;
    /* Errors say "path:LINE: error: ..." (a JSON file) instead of "path:
     * error: header JSON: ... at byte N of the header" (safetensors). */
    int lines;
    int max_depth;       /* 0: JSON_MAX_DEPTH */
    /* json_line's memo: newlines before byte nl_pos, so asking for the
     * line at each key of a file costs one pass, not one pass per key. */
    size_t nl_pos, nl_count;
} jparser;

typedef struct jnum {
    int integral;        /* no fraction, no exponent */
    int negative;        /* below zero */
    int big;             /* magnitude above 2^53 */
    uint64_t mag;        /* valid when integral and not big */
    size_t at, len;      /* its text, for messages */
} jnum;

/* Keys of one object, checked for duplicates once the object is read
 * (sorting keeps a hostile object with many keys cheap). */
typedef struct keyset {
    char **keys;
    size_t n, cap;
} keyset;

/* A name from the file made safe for a one-line message (into out). */
const char *json_show(const char *s, char out[80]);

/* The line of the cursor, from 1. */
int json_line(jparser *jp);

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0: overlongs,
 * surrogates and code points above U+10FFFF are invalid. */
size_t json_utf8_seq(const unsigned char *s, size_t n);

/* An error at the cursor; returns -1. */
int jp_syntax(jparser *jp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int jp_peek(const jparser *jp);    /* the next byte, or -1 at the end */
void jp_ws(jparser *jp);           /* skip whitespace */
int jp_expect(jparser *jp, char c);
/* A string, decoded into a malloc'd copy (\u0000 refused). */
int jp_string(jparser *jp, char **out);
/* A number: grammar checked, value kept only for integers. */
int jp_number(jparser *jp, jnum *num);
int jp_literal(jparser *jp, const char *word);
/* After jp_open, each jp_next returns 1 with the cursor at the next value
 * (and, for objects, its key in *key, which the caller frees), 0 after the
 * closing bracket, -1 on error.  depth: the container's nesting level. */
int jp_open(jparser *jp, char open, int depth);
int jp_next(jparser *jp, char close, int *first, char **key);
/* Check and skip any value. */
int jp_skip(jparser *jp, int depth);

/* keyset_add takes key (frees it on failure); keyset_dup returns a key
 * present twice, or NULL. */
int keyset_add(keyset *ks, char *key);
const char *keyset_dup(keyset *ks);
void keyset_free(keyset *ks);

#endif
