/* ctext.h — text from outside made safe to write into generated C and DOT.
 *
 * Every string a model file, a weight file, a config or the command line
 * supplies (names, keys, values, paths) goes through here before it reaches
 * a generated file, and nothing else in the backend writes such text:
 *   - as part of a C identifier it is mapped onto [A-Za-z0-9_] and cut;
 *   - inside a C comment it is escaped so that no comment end or start,
 *     no newline, no backslash, no trigraph and no byte outside printable
 *     ASCII survives, and cut;
 *   - inside a DOT quoted string it is escaped likewise, and cut.
 * A model file is untrusted: `dsc run` compiles and runs what the emitter
 * writes, so text that escaped a comment would run on the user's machine. */
#ifndef DSC_CTEXT_H
#define DSC_CTEXT_H

#include <stddef.h>

#include "util/strbuf.h"

/* Bytes of outside text kept in one identifier (a longer one is cut). */
#define CTEXT_IDENT_MAX 48
/* Bytes of outside text kept in one comment or label ("..." follows). */
#define CTEXT_TEXT_MAX 160
/* A model's identifier: at most this many bytes. */
#define CTEXT_MODEL_NAME_MAX CTEXT_IDENT_MAX
/* A generated file's name (what an #include names): at most this long. */
#define CTEXT_FILE_NAME_MAX 128

/* Append text for the inside of a C block comment.  Printable ASCII stays
 * as it is, except a backslash, a '*', '/' or '?' next to one of its kind
 * that could pair up ("*" "/", "/" "*", "??") or at either end; those and
 * every other byte are written as \xHH.  At most CTEXT_TEXT_MAX bytes of
 * text are kept; "..." marks a cut. */
void ctext_comment(strbuf *sb, const char *text);

/* Append text for the inside of a DOT quoted string (a label): '"' and
 * '\' escaped, a newline as \n, any other byte outside printable ASCII as
 * the four characters \xHH (drawn as such); cut as ctext_comment. */
void ctext_dot(strbuf *sb, const char *text);

/* text mapped onto an identifier fragment into out (cap bytes): ASCII
 * letters and digits stay (in capitals if upper), every other byte becomes
 * '_'; at most CTEXT_IDENT_MAX bytes of text are used.  May be empty and
 * may start with a digit: callers put it after a prefix. */
void ctext_ident(const char *text, int upper, char *out, size_t cap);

/* A model's C identifier from the file's base name (len bytes, ".lua"
 * already removed): mapped as ctext_ident, prefixed "m_" if it would not
 * start with a letter or would start the runtime's names ("rt", "dsc" in
 * any case), cut to CTEXT_MODEL_NAME_MAX.  out holds
 * CTEXT_MODEL_NAME_MAX + 1 bytes.  Applied to its own result it gives the
 * same name back. */
void ctext_model_name(const char *text, size_t len, char *out);

/* Is name fit to be a generated file's name, written into `#include "..."`
 * and `#line N "..."`: 1 to CTEXT_FILE_NAME_MAX bytes of letters, digits,
 * '.', '_', '+' and '-', not starting with '.'. */
int ctext_is_file_name(const char *name);

/* A set of names in use, so that each name made from outside text is
 * unique in the file it goes into. */
typedef struct ctext_names {
    char **slot;   /* open addressing; NULL = free */
    size_t cap, n;
} ctext_names;

/* Take the name in buf (cap bytes, cap >= 16), or, if it is taken, the
 * first free of name_2, name_3, ... (cut first if the suffix needs room),
 * written back into buf.  -1 when out of memory. */
int ctext_names_claim(ctext_names *s, char *buf, size_t cap);
int ctext_names_has(const ctext_names *s, const char *name);
void ctext_names_free(ctext_names *s);

#endif
