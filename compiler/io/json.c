/* json.c — a small strict JSON reader for untrusted files: the
 * safetensors header and tokenizer.json.  Every string is checked UTF-8,
 * nesting is bounded, duplicate keys are caught (keyset) and numbers are
 * checked against the grammar exactly.  The caller walks the document with
 * jp_open/jp_next and reads the values it wants; jp_skip checks the rest. */
#include "io/json.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int json_line(jparser *jp)
{
    size_t end = jp->pos < jp->len ? jp->pos : jp->len;
    if (end < jp->nl_pos) {  /* behind the memo: count again from the start */
        jp->nl_pos = 0;
        jp->nl_count = 0;
    }
    for (; jp->nl_pos < end; jp->nl_pos++)
        jp->nl_count += jp->s[jp->nl_pos] == '\n';
    return jp->nl_count < INT_MAX ? (int)jp->nl_count + 1 : INT_MAX;
}


/* Names come from the file: keep messages on one line and short. */
const char *json_show(const char *s, char out[80])
{
    size_t i = 0, o = 0;
    for (; s[i] && o < 64; i++, o++) {
        unsigned char c = (unsigned char)s[i];
        out[o] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (s[i]) {
        while (o > 0 && ((unsigned char)s[o] & 0xC0) == 0x80)
            o--;  /* do not cut a UTF-8 sequence in half */
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}


int jp_syntax(jparser *jp, const char *fmt, ...)
{
    char msg[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!jp->lines)  /* a safetensors header: bytes count from its start */
        return err_set(jp->err, "%s: error: header JSON: %s at byte %zu of "
                       "the header", jp->path, msg, jp->pos);
    return err_set(jp->err, "%s:%d: error: %s (byte %zu)", jp->path,
                   json_line(jp), msg, jp->pos);
}


int jp_peek(const jparser *jp)
{
    return jp->pos < jp->len ? (unsigned char)jp->s[jp->pos] : -1;
}


void jp_ws(jparser *jp)
{
    while (jp->pos < jp->len) {
        char c = jp->s[jp->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        jp->pos++;
    }
}


int jp_expect(jparser *jp, char c)
{
    jp_ws(jp);
    if (jp_peek(jp) != (unsigned char)c)
        return jp_syntax(jp, "expected '%c'", c);
    jp->pos++;
    return 0;
}


/* Length of the valid UTF-8 sequence at s, or 0 (overlongs, surrogates and
 * code points above U+10FFFF are invalid). */
size_t json_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}


static size_t utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}


/* The four hex digits at jp->pos, or -1. */
static long jp_hex4(jparser *jp)
{
    if (jp->len - jp->pos < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = jp->s[jp->pos + i];
        int d = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    jp->pos += 4;
    return v;
}


/* A JSON string at the cursor, decoded into a malloc'd NUL-terminated
 * copy.  \u0000 is refused: names must be C strings. */
int jp_string(jparser *jp, char **out)
{
    *out = NULL;
    jp_ws(jp);
    if (jp_peek(jp) != '"')
        return jp_syntax(jp, "expected a string");
    jp->pos++;
    /* Decoding never grows the text, so the raw span bounds the copy. */
    size_t end = jp->pos;
    while (end < jp->len && jp->s[end] != '"')
        end += jp->s[end] == '\\' ? 2 : 1;
    if (end >= jp->len)
        return jp_syntax(jp, "unterminated string");
    char *o = malloc(end - jp->pos + 1);
    if (!o)
        return jp_syntax(jp, "out of memory");
    size_t n = 0;
    while (jp->pos < end) {
        const unsigned char *p = (const unsigned char *)jp->s + jp->pos;
        if (*p < 0x20) {
            free(o);
            return jp_syntax(jp, "control character 0x%02x in string", *p);
        }
        if (*p != '\\') {
            size_t k = json_utf8_seq(p, end - jp->pos);
            if (!k) {
                free(o);
                return jp_syntax(jp, "invalid UTF-8 in string");
            }
            memcpy(o + n, p, k);
            n += k;
            jp->pos += k;
            continue;
        }
        jp->pos += 2;
        switch (p[1]) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            long cp = jp_hex4(jp);
            if (cp < 0) {
                free(o);
                return jp_syntax(jp, "bad \\u escape");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* A high surrogate must pair with a low one. */
                long lo = -1;
                if (jp->pos + 2 <= end && jp->s[jp->pos] == '\\'
                    && jp->s[jp->pos + 1] == 'u') {
                    jp->pos += 2;
                    lo = jp_hex4(jp);
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    free(o);
                    return jp_syntax(jp, "unpaired surrogate in \\u escape");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(o);
                return jp_syntax(jp, "unpaired surrogate in \\u escape");
            } else if (cp == 0) {
                free(o);
                return jp_syntax(jp, "\\u0000 is not allowed in strings");
            }
            n += utf8_put(o + n, (uint32_t)cp);
            break;
        }
        default:
            jp->pos -= 1;
            free(o);
            return jp_syntax(jp, "bad escape '\\%c'",
                             p[1] >= 0x20 && p[1] < 0x7f ? p[1] : '?');
        }
    }
    jp->pos = end + 1;
    o[n] = '\0';
    *out = o;
    return 0;
}


/* A JSON number; its grammar is checked exactly, its value kept only when
 * it is an integer. */
int jp_number(jparser *jp, jnum *num)
{
    jp_ws(jp);
    memset(num, 0, sizeof *num);
    num->integral = 1;
    num->at = jp->pos;
    if (jp_peek(jp) == '-') {
        num->negative = 1;
        jp->pos++;
    }
    int c = jp_peek(jp);
    if (c < '0' || c > '9')
        return jp_syntax(jp, "invalid number");
    if (c == '0') {
        jp->pos++;
        c = jp_peek(jp);
        if (c >= '0' && c <= '9')
            return jp_syntax(jp, "number with a leading zero");
    }
    while ((c = jp_peek(jp)) >= '0' && c <= '9') {
        if (num->mag > JSON_MAX_INT)
            num->big = 1;  /* stop accumulating; it is out of range */
        else
            num->mag = num->mag * 10 + (uint64_t)(c - '0');
        jp->pos++;
    }
    if (num->mag > JSON_MAX_INT)
        num->big = 1;
    if (jp_peek(jp) == '.') {
        num->integral = 0;
        jp->pos++;
        if ((c = jp_peek(jp)) < '0' || c > '9')
            return jp_syntax(jp, "invalid number");
        while ((c = jp_peek(jp)) >= '0' && c <= '9')
            jp->pos++;
    }
    if (jp_peek(jp) == 'e' || jp_peek(jp) == 'E') {
        num->integral = 0;
        jp->pos++;
        if (jp_peek(jp) == '+' || jp_peek(jp) == '-')
            jp->pos++;
        if ((c = jp_peek(jp)) < '0' || c > '9')
            return jp_syntax(jp, "invalid number");
        while ((c = jp_peek(jp)) >= '0' && c <= '9')
            jp->pos++;
    }
    if (num->mag == 0)
        num->negative = 0;  /* -0 is zero */
    num->len = jp->pos - num->at;
    return 0;
}


/* Object and array walking: after jp_open, each jp_next returns 1 with the
 * cursor at the next value (and, for objects, its key decoded into *key,
 * which the caller frees), 0 after the closing bracket, -1 on error. */
int jp_open(jparser *jp, char open, int depth)
{
    int max_depth = jp->max_depth ? jp->max_depth : JSON_MAX_DEPTH;
    if (depth > max_depth)
        return jp_syntax(jp, "nesting deeper than %d levels", max_depth);
    return jp_expect(jp, open);
}


int jp_next(jparser *jp, char close, int *first, char **key)
{
    jp_ws(jp);
    int c = jp_peek(jp);
    if (*first && c == close) {
        jp->pos++;
        return 0;
    }
    if (!*first) {
        if (c == close) {
            jp->pos++;
            return 0;
        }
        if (c != ',')
            return jp_syntax(jp, "expected ',' or '%c'", close);
        jp->pos++;
    }
    *first = 0;
    if (!key)
        return 1;
    jp_ws(jp);
    if (jp_peek(jp) != '"')
        return jp_syntax(jp, "expected a key string");
    if (jp_string(jp, key) || jp_expect(jp, ':')) {
        free(*key);
        *key = NULL;
        return -1;
    }
    return 1;
}


int keyset_add(keyset *ks, char *key)
{
    if (ks->n == ks->cap) {
        size_t cap = ks->cap ? ks->cap * 2 : 8;
        char **k = realloc(ks->keys, cap * sizeof *k);
        if (!k) {
            free(key);
            return -1;
        }
        ks->keys = k;
        ks->cap = cap;
    }
    ks->keys[ks->n++] = key;
    return 0;
}


static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}


const char *keyset_dup(keyset *ks)
{
    if (ks->n > 1)
        qsort(ks->keys, ks->n, sizeof *ks->keys, cmp_str);
    for (size_t i = 1; i < ks->n; i++)
        if (!strcmp(ks->keys[i - 1], ks->keys[i]))
            return ks->keys[i];
    return NULL;
}


void keyset_free(keyset *ks)
{
    for (size_t i = 0; i < ks->n; i++)
        free(ks->keys[i]);
    free(ks->keys);
}


int jp_literal(jparser *jp, const char *word)
{
    size_t n = strlen(word);
    if (jp->len - jp->pos < n || memcmp(jp->s + jp->pos, word, n))
        return jp_syntax(jp, "unexpected character");
    jp->pos += n;
    return 0;
}


/* Any value we do not use, checked all the same; a container opened here
 * would be at nesting level depth. */
int jp_skip(jparser *jp, int depth)
{
    jp_ws(jp);
    int c = jp_peek(jp), first = 1, r;
    char *s;
    jnum num;
    switch (c) {
    case '{': {
        keyset ks = {0};
        if (jp_open(jp, '{', depth))
            return -1;
        while ((r = jp_next(jp, '}', &first, &s)) == 1) {
            if (keyset_add(&ks, s)) {
                keyset_free(&ks);
                return jp_syntax(jp, "out of memory");
            }
            if (jp_skip(jp, depth + 1)) {
                keyset_free(&ks);
                return -1;
            }
        }
        const char *dup = r ? NULL : keyset_dup(&ks);
        if (dup) {
            char buf[80];
            r = jp_syntax(jp, "duplicate key '%s'", json_show(dup, buf));
        }
        keyset_free(&ks);
        return r;
    }
    case '[':
        if (jp_open(jp, '[', depth))
            return -1;
        while ((r = jp_next(jp, ']', &first, NULL)) == 1)
            if (jp_skip(jp, depth + 1))
                return -1;
        return r;
    case '"':
        r = jp_string(jp, &s);
        free(s);
        return r;
    case 't':
        return jp_literal(jp, "true");
    case 'f':
        return jp_literal(jp, "false");
    case 'n':
        return jp_literal(jp, "null");
    case -1:
        return jp_syntax(jp, "unexpected end of header");
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return jp_number(jp, &num);
        return jp_syntax(jp, "unexpected character");
    }
}

