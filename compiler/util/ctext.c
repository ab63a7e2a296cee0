/* ctext.c — escaping and mapping of outside text for generated files. */
#include "util/ctext.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ASCII only: isalnum would follow the locale. */
static int is_letter(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}


static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}


static int is_printable(unsigned char c)
{
    return c >= 0x20 && c <= 0x7e;
}


static void append_hex(strbuf *sb, const char *prefix, unsigned char c)
{
    sb_printf(sb, "%sx%02x", prefix, c);
}


/* The character that c must not touch inside a comment: '*' and '/' make
 * a comment's end or a nested start, "??" a trigraph.  0 for any other. */
static char partner(char c)
{
    return c == '*' ? '/' : c == '/' ? '*' : c == '?' ? '?' : 0;
}


void ctext_comment(strbuf *sb, const char *text)
{
    size_t len = strlen(text);
    size_t n = len > CTEXT_TEXT_MAX ? CTEXT_TEXT_MAX : len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        char p = partner((char)c);
        /* Both ends count as touching: the text around it is not ours to
         * see, so it may end in '/' or begin with '*'. */
        int touching = p && (i == 0 || i + 1 == n || text[i - 1] == p ||
                             text[i + 1] == p);
        if (!is_printable(c) || c == '\\' || touching) {
            append_hex(sb, "\\", c);
        } else {
            char one[2] = { (char)c, 0 };
            sb_append(sb, one);
        }
    }
    if (n < len)
        sb_append(sb, "...");
}


void ctext_dot(strbuf *sb, const char *text)
{
    size_t len = strlen(text);
    size_t n = len > CTEXT_TEXT_MAX ? CTEXT_TEXT_MAX : len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            char esc[3] = { '\\', (char)c, 0 };
            sb_append(sb, esc);
        } else if (c == '\n') {
            sb_append(sb, "\\n");
        } else if (!is_printable(c)) {
            append_hex(sb, "\\\\", c);  /* drawn as the text \xHH */
        } else {
            char one[2] = { (char)c, 0 };
            sb_append(sb, one);
        }
    }
    if (n < len)
        sb_append(sb, "...");
}


static void map_ident(const char *text, size_t len, int upper, char *out,
                      size_t cap)
{
    size_t at = 0;
    for (size_t i = 0; i < len && i < CTEXT_IDENT_MAX && at + 1 < cap; i++) {
        unsigned char c = (unsigned char)text[i];
        if (upper && c >= 'a' && c <= 'z')
            c = (unsigned char)(c - 'a' + 'A');
        out[at++] = is_letter(c) || is_digit(c) ? (char)c : '_';
    }
    if (cap)
        out[at] = '\0';
}


void ctext_ident(const char *text, int upper, char *out, size_t cap)
{
    map_ident(text, strlen(text), upper, out, cap);
}


/* "rt", "RT_x", "dsc", "Dsc_y": names the runtime's own begin with. */
static int reserved_prefix(const char *name)
{
    static const char *const prefixes[] = { "RT", "DSC" };
    for (size_t k = 0; k < sizeof prefixes / sizeof prefixes[0]; k++) {
        size_t n = strlen(prefixes[k]), i = 0;
        for (; i < n && name[i]; i++)
            if ((name[i] & ~0x20) != prefixes[k][i])
                break;
        if (i == n && (name[n] == '\0' || name[n] == '_'))
            return 1;
    }
    return 0;
}


void ctext_model_name(const char *text, size_t len, char *out)
{
    char mapped[CTEXT_MODEL_NAME_MAX + 1];
    map_ident(text, len, 0, mapped, sizeof mapped);
    int prefix = !is_letter((unsigned char)mapped[0]) ||
                 reserved_prefix(mapped);
    size_t at = 0;
    if (prefix) {
        out[at++] = 'm';
        out[at++] = '_';
    }
    for (size_t i = 0; mapped[i] && at < CTEXT_MODEL_NAME_MAX; i++)
        out[at++] = mapped[i];
    out[at] = '\0';
}


int ctext_is_file_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CTEXT_FILE_NAME_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!is_letter(c) && !is_digit(c) && !strchr("._+-", c))
            return 0;
    }
    return 1;
}


/* ---- the set of names in use ---- */

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;  /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}


static size_t find_slot(char *const *slot, size_t cap, const char *name)
{
    size_t i = (size_t)hash(name) & (cap - 1);
    while (slot[i] && strcmp(slot[i], name) != 0)
        i = (i + 1) & (cap - 1);
    return i;
}


int ctext_names_has(const ctext_names *s, const char *name)
{
    return s->cap && s->slot[find_slot(s->slot, s->cap, name)] != NULL;
}


static int insert(ctext_names *s, const char *name)
{
    if (2 * (s->n + 1) > s->cap) {  /* at most half full */
        size_t cap = s->cap ? 2 * s->cap : 64;
        char **slot = calloc(cap, sizeof *slot);
        if (!slot)
            return -1;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i])
                slot[find_slot(slot, cap, s->slot[i])] = s->slot[i];
        free(s->slot);
        s->slot = slot;
        s->cap = cap;
    }
    size_t len = strlen(name) + 1;
    char *copy = malloc(len);
    if (!copy)
        return -1;
    memcpy(copy, name, len);
    s->slot[find_slot(s->slot, s->cap, name)] = copy;
    s->n++;
    return 0;
}


int ctext_names_claim(ctext_names *s, char *buf, size_t cap)
{
    size_t base = strlen(buf);
    for (unsigned k = 2; ctext_names_has(s, buf); k++) {
        char suffix[16];
        size_t m = (size_t)snprintf(suffix, sizeof suffix, "_%u", k);
        size_t keep = base + m + 1 <= cap ? base : cap - m - 1;
        memcpy(buf + keep, suffix, m + 1);
    }
    return insert(s, buf);
}


void ctext_names_free(ctext_names *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slot[i]);
    free(s->slot);
    *s = (ctext_names){0};
}
