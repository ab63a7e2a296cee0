/* config_json.c — read a config.json into frontend settings with
 * io/json.c's strict reader. */
#include "io/config_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileio.h"
#include "io/json.h"

typedef struct reader {
    jparser jp;
    frontend_define *defs;
    int n, cap;
} reader;


static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}


/* Take key and value (malloc'd; freed on failure). */
static int add(reader *r, char *key, char *value, char kind)
{
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 32;
        frontend_define *d = realloc(r->defs, (size_t)cap * sizeof *d);
        if (!d) {
            free(key);
            free(value);
            return err_set(r->jp.err, "%s: error: out of memory", r->jp.path);
        }
        r->defs = d;
        r->cap = cap;
    }
    if (!key || !value) {
        free(key);
        free(value);
        return err_set(r->jp.err, "%s: error: out of memory", r->jp.path);
    }
    r->defs[r->n++] = (frontend_define){ .key = key, .value = value,
                                         .source = r->jp.path, .kind = kind,
                                         .line = json_line(&r->jp) };
    return 0;
}


static int read_object(reader *r, const char *prefix, int depth)
{
    jparser *jp = &r->jp;
    keyset seen = {0};
    int first = 1, rc = 0, more;
    if (jp_open(jp, '{', depth))
        return -1;
    char *name = NULL;
    while (rc == 0 && (more = jp_next(jp, '}', &first, &name)) == 1) {
        size_t plen = strlen(prefix), nlen = strlen(name);
        char *key = malloc(plen + nlen + 2);
        if (!key || keyset_add(&seen, dup_n(name, nlen))) {
            free(key);
            free(name);
            rc = err_set(jp->err, "%s: error: out of memory", jp->path);
            break;
        }
        snprintf(key, plen + nlen + 2, "%s%s%s", prefix, plen ? "." : "", name);
        free(name);
        name = NULL;
        jp_ws(jp);
        int c = jp_peek(jp);
        if (c == '{') {
            int before = r->n;
            rc = read_object(r, key, depth + 1);
            /* An empty object still says the key is an object: a model
             * that declares it as a value must hear of it. */
            if (rc == 0 && r->n == before)
                rc = add(r, key, dup_n("{}", 2), 'o');
            else
                free(key);
            continue;
        }
        char *value = NULL, kind;
        jnum num;
        if (c == '[') {
            kind = 'x';
            rc = jp_skip(jp, depth + 1);
            value = dup_n("", 0);
        } else if (c == '"') {
            kind = 's';
            rc = jp_string(jp, &value);
        } else if (c == 't' || c == 'f') {
            kind = 'b';
            value = dup_n(c == 't' ? "true" : "false", c == 't' ? 4 : 5);
            rc = jp_literal(jp, c == 't' ? "true" : "false");
        } else if (c == 'n') {
            kind = 'z';
            value = dup_n("", 0);
            rc = jp_literal(jp, "null");
        } else {
            rc = jp_number(jp, &num);
            kind = num.integral && !num.big ? 'i' : 'f';
            value = rc ? NULL : dup_n(jp->s + num.at, num.len);
        }
        if (rc) {
            free(key);
            free(value);
        } else {
            rc = add(r, key, value, kind);
        }
    }
    if (rc == 0 && more < 0)
        rc = -1;
    if (rc == 0 && keyset_dup(&seen))
        rc = err_set(jp->err, "%s: error: key '%s' appears twice in one "
                     "object", jp->path, keyset_dup(&seen));
    keyset_free(&seen);
    return rc;
}


int config_json_read(const char *path, frontend_define **defs, int *n,
                     dsc_err *err)
{
    size_t len;
    char *text = file_read_all(path, &len, err);
    *defs = NULL;
    *n = 0;
    if (!text)
        return -1;
    int rc = config_json_read_memory(text, len, path, defs, n, err);
    free(text);
    return rc;
}


int config_json_read_memory(const char *text, size_t len, const char *path,
                            frontend_define **defs, int *n, dsc_err *err)
{
    *defs = NULL;
    *n = 0;
    reader r = { .jp = { .s = text, .len = len, .path = path, .err = err,
                         .lines = 1 } };
    int rc = read_object(&r, "", 1);
    if (rc == 0) {
        jp_ws(&r.jp);
        if (jp_peek(&r.jp) != -1)
            rc = jp_syntax(&r.jp, "text after the top-level object");
    }
    if (rc) {
        config_json_free(r.defs, r.n);
        return -1;
    }
    *defs = r.defs;
    *n = r.n;
    return 0;
}


void config_json_free(frontend_define *defs, int n)
{
    for (int i = 0; i < n; i++) {
        free((char *)defs[i].key);
        free((char *)defs[i].value);
    }
    free(defs);
}
