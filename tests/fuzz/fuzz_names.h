/* fuzz_names.h — outside text against the emitter: the names harness and
 * the checks it shares with tests/test_emit_safety.c and the replay test.
 *
 * A model file is untrusted, and `dsc run` compiles and runs the C that the
 * emitter writes from it.  emit_verify builds a model and checks that the C
 * holds nothing the text could have put there:
 *   - every byte is printable ASCII or a newline (or the em dash of dsc's
 *     header line); no "??" (trigraphs), no backslash before a newline;
 *   - outside comments: no "//", no quote except in the #include/#line
 *     lines dsc writes, no character literal, no backslash, no digraph,
 *     no identifier beginning with "__" and no asm or _Pragma;
 *   - every preprocessor line is one dsc writes: #include of the runtime
 *     header and of the model's own header, #define of a W_ or MODEL_ macro
 *     to an integer (each macro once over the .c and the .h), the header
 *     guard, #line in the JIT's source;
 *   - at file scope, only the model's own functions are declared or
 *     defined;
 *   - the JIT's source compiles with libtcc (-Wall -Werror) and defines no
 *     global symbol but the model's functions (tcc_list_symbols), and the
 *     shippable .c with its .h compiles too.
 * A model that declares a loss is then built again with its train step
 * (driver/train.c, as `dsc train` and `dsc compile --train` build it) and
 * those texts, forward and NAME_train_step together, get the same checks.
 * fuzz_names (the libFuzzer entry) splits its bytes into the strings of a
 * small model (F_* below) — weight keys, input and output names, a config
 * key, its value and a -D override, eps and scale, the model's file name,
 * the -o file name, the mode (encoder, "d..." decoder, "t..." encoder
 * with a loss) — and aborts on any finding. */
#ifndef DSC_FUZZ_NAMES_H
#define DSC_FUZZ_NAMES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libtcc.h>

#include "backend/emit_c.h"
#include "driver/build.h"
#include "driver/train.h"
#include "dsc_runtime.h"
#include "frontend/frontend.h"
#include "ir/model.h"
#include "passes/passes.h"
#include "util/ctext.h"
#include "util/strbuf.h"

#define NAMES_INSTRUCTIONS 2000000LL
#define NAMES_MEMORY       ((size_t)16 << 20)

enum { VERDICT_OK, VERDICT_REFUSED, VERDICT_BROKEN };

typedef struct emit_verdict {
    int status;
    dsc_err err;        /* REFUSED: the error dsc gave */
    char why[600];      /* BROKEN: what is wrong */
    char ident[CTEXT_MODEL_NAME_MAX + 1];  /* the model's identifier */
    char *source, *header, *jit;   /* the generated texts, when made */
    int trained;        /* they hold the train step too */
} emit_verdict;


static inline void verdict_free(emit_verdict *v)
{
    free(v->source);
    free(v->header);
    free(v->jit);
    v->source = v->header = v->jit = NULL;
}


static inline int verdict_broken(emit_verdict *v, const char *what,
                                 const char *detail)
{
    if (v->status != VERDICT_BROKEN) {  /* keep the first finding */
        v->status = VERDICT_BROKEN;
        snprintf(v->why, sizeof v->why, "%s: %.400s", what,
                 detail ? detail : "");
    }
    return -1;
}


/* text with every comment replaced by one space (as the compiler sees
 * it).  An unterminated comment runs to the end. */
static inline char *names_strip_comments(const char *text)
{
    size_t n = strlen(text), at = 0;
    char *out = malloc(n + 1);
    if (!out)
        abort();
    for (size_t i = 0; i < n;) {
        if (text[i] == '/' && text[i + 1] == '*') {
            const char *end = strstr(text + i + 2, "*/");
            i = end ? (size_t)(end - text) + 2 : n;
            out[at++] = ' ';
        } else {
            out[at++] = text[i++];
        }
    }
    out[at] = '\0';
    return out;
}


static inline int names_is_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_';
}


/* The bytes of a whole generated text (comments included). */
static inline int names_check_bytes(const char *text, const char *which,
                                    emit_verdict *v)
{
    for (const char *p = text; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == 0xe2 && (unsigned char)p[1] == 0x80 &&
            (unsigned char)p[2] == 0x94) {
            p += 2;  /* "—" in dsc's first line */
            continue;
        }
        if (c != '\n' && (c < 0x20 || c > 0x7e))
            return verdict_broken(v, which, "a byte outside printable ASCII");
        if (c == '?' && p[1] == '?')
            return verdict_broken(v, which, "\"??\" (a trigraph's start)");
        if (c == '\\' && p[1] == '\n')
            return verdict_broken(v, which, "a backslash before a newline");
    }
    return 0;
}


/* Is s "W_..." or "UPPER_..." in capitals, digits and '_'. */
static inline int names_is_macro(const char *s, size_t len, const char *upper)
{
    size_t u = strlen(upper);
    if (!((len > 2 && strncmp(s, "W_", 2) == 0) ||
          (len > u + 1 && strncmp(s, upper, u) == 0 && s[u] == '_')))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_'))
            return 0;
    return 1;
}


/* One preprocessor line (comments stripped, '#' first). */
static inline int names_check_directive(const char *line, size_t len,
                                        const char *upper, const char *header,
                                        const char *source, int jit,
                                        ctext_names *defined, emit_verdict *v)
{
    char buf[400];
    if (len >= sizeof buf)
        return verdict_broken(v, "a long preprocessor line", line);
    memcpy(buf, line, len);
    buf[len] = '\0';
    while (len && buf[len - 1] == ' ')  /* a stripped trailing comment */
        buf[--len] = '\0';
    char want[300];
    if (strcmp(buf, "#include \"dsc_runtime.h\"") == 0 || strcmp(buf, "#endif")
        == 0)
        return 0;
    snprintf(want, sizeof want, "#include \"%s\"", header ? header : "");
    if (header && strcmp(buf, want) == 0)
        return 0;
    snprintf(want, sizeof want, "#ifndef %s_H", upper);
    if (strcmp(buf, want) == 0)
        return 0;
    if (jit && strncmp(buf, "#line ", 6) == 0) {
        const char *p = buf + 6;
        while (*p >= '0' && *p <= '9')
            p++;
        snprintf(want, sizeof want, " \"%s\"", source);
        if (p > buf + 6 && strcmp(p, want) == 0)
            return 0;
    }
    if (strncmp(buf, "#define ", 8) == 0) {
        const char *name = buf + 8, *end = name;
        while (names_is_ident_char(*end))
            end++;
        size_t n = (size_t)(end - name);
        snprintf(want, sizeof want, "%s_H", upper);
        int guard = n == strlen(want) && strncmp(name, want, n) == 0;
        const char *body = end;
        if (*body == ' ')
            body++;
        while (*body == ' ')
            body++;
        const char *digits = body + (*body == '-');
        while (*digits >= '0' && *digits <= '9')
            digits++;
        int number = digits > body + (*body == '-') && *digits == '\0';
        char macro[300];
        snprintf(macro, sizeof macro, "%.*s", (int)n, name);
        if (names_is_macro(name, n, upper) && (guard ? !*body : number)) {
            if (ctext_names_has(defined, macro))
                return verdict_broken(v, "a macro defined twice", macro);
            ctext_names_claim(defined, macro, sizeof macro);
            return 0;
        }
    }
    return verdict_broken(v, "a preprocessor line dsc does not write", buf);
}


/* Is name one of the model's functions. */
static inline int names_is_model_function(const char *name, size_t len,
                                          const char *ident)
{
    static const char *const suffixes[] = { "_forward", "_forward_io",
        "_step", "_step_io", "_prefill", "_decode", "_train_step",
        "_train_step_io", NULL };
    size_t k = strlen(ident);
    if (len <= k || strncmp(name, ident, k) != 0)
        return 0;
    for (int i = 0; suffixes[i]; i++)
        if (len - k == strlen(suffixes[i]) &&
            strncmp(name + k, suffixes[i], len - k) == 0)
            return 1;
    return 0;
}


/* The code of one generated text, comments stripped: its directives, its
 * tokens and its file-scope declarations. */
static inline int names_check_code(const char *text, const char *which,
                                   const char *ident, const char *header,
                                   const char *source, int jit,
                                   ctext_names *defined, emit_verdict *v)
{
    char upper[CTEXT_MODEL_NAME_MAX + 1];
    ctext_ident(ident, 1, upper, sizeof upper);
    char *code = names_strip_comments(text);
    int rc = 0, depth = 0, paren = 0;
    const char *decl_name = NULL;  /* the identifier before a depth-0 '(' */
    size_t decl_len = 0;
    const char *last_ident = NULL;
    size_t last_len = 0;
    for (const char *p = code; *p && rc == 0;) {
        /* A line's first non-blank '#': a directive to the line's end. */
        const char *bol = p;
        while (*bol == ' ')
            bol++;
        if ((p == code || p[-1] == '\n') && *bol == '#') {
            const char *eol = strchr(bol, '\n');
            size_t len = eol ? (size_t)(eol - bol) : strlen(bol);
            rc = names_check_directive(bol, len, upper, header, source, jit,
                                       defined, v);
            p = bol + len;
            continue;
        }
        char c = *p;
        if (c == '/' && p[1] == '/')
            rc = verdict_broken(v, which, "\"//\" outside comments");
        else if (c == '"' || c == '\'' || c == '\\' || c == '#')
            rc = verdict_broken(v, which, "a quote, backslash or '#' in code");
        else if ((c == '%' && (p[1] == ':' || p[1] == '>')) ||
                 (c == '<' && (p[1] == '%' || p[1] == ':')) ||
                 (c == ':' && p[1] == '>'))
            rc = verdict_broken(v, which, "a digraph (%: is #, <% is {)");
        if (rc)
            break;
        if (names_is_ident_char(c) && !(c >= '0' && c <= '9')) {
            const char *s = p;
            while (names_is_ident_char(*p))
                p++;
            size_t len = (size_t)(p - s);
            if ((len >= 2 && s[0] == '_' && s[1] == '_') ||
                (len == 3 && strncmp(s, "asm", 3) == 0) ||
                (len == 7 && strncmp(s, "_Pragma", 7) == 0)) {
                char word[64];
                snprintf(word, sizeof word, "%.*s", (int)(len < 60 ? len : 60),
                         s);
                rc = verdict_broken(v, "a word dsc does not write", word);
            }
            last_ident = s;
            last_len = len;
            continue;
        }
        if (names_is_ident_char(c)) {  /* a number */
            while (names_is_ident_char(*p) || *p == '.')
                p++;
            continue;
        }
        if (depth == 0 && c == '(' && paren++ == 0 && !decl_name) {
            decl_name = last_ident;
            decl_len = last_len;
        } else if (depth == 0 && c == ')') {
            paren--;
        } else if (c == '{' || (depth == 0 && c == ';')) {
            if (depth == 0 && (!decl_name ||
                !names_is_model_function(decl_name, decl_len, ident))) {
                char what[80];
                snprintf(what, sizeof what, "%.*s", decl_name ? (int)(
                         decl_len < 60 ? decl_len : 60) : 0,
                         decl_name ? decl_name : "");
                rc = verdict_broken(v, "a file-scope declaration other than "
                                    "the model's functions", what);
            }
            depth += c == '{';
            decl_name = NULL;
            paren = 0;
        } else if (c == '}') {
            depth--;
            if (depth < 0)
                rc = verdict_broken(v, which, "unbalanced braces");
        }
        p++;
    }
    if (rc == 0 && depth != 0)
        rc = verdict_broken(v, which, "unbalanced braces");
    free(code);
    return rc;
}


static inline void names_tcc_error(void *opaque, const char *msg)
{
    strbuf *sb = opaque;
    sb_printf(sb, "%s%s", sb->len ? "\n" : "", msg);
}


/* The linker's own symbols in tcc's list: section bounds.  The
 * constructor, destructor and preinit arrays must be empty (start equals
 * end): a constructor would run when the code is loaded. */
static const char *const names_linker_symbols[] = {
    "_etext", "_edata", "_GLOBAL_OFFSET_TABLE_",
    "__preinit_array_start", "__preinit_array_end",
    "__init_array_start", "__init_array_end",
    "__fini_array_start", "__fini_array_end", "_end", NULL
};

typedef struct names_symbols {
    const char *ident;
    emit_verdict *v;
    int model_functions;
    const void *linker[11];
} names_symbols;


static inline void names_symbol(void *ctx, const char *name, const void *val)
{
    names_symbols *s = ctx;
    /* The runtime's functions, bound by name, and their PLT entries: the
     * only functions the code may call. */
    size_t n = strlen(name);
    if (n > 4 && strcmp(name + n - 4, "@plt") == 0)
        n -= 4;
#define NAMES_IS_RT(sym) || (n == strlen(#sym) && strncmp(name, #sym, n) == 0)
    int known = 0 DSC_RUNTIME_SYMBOLS(NAMES_IS_RT);
#undef NAMES_IS_RT
    for (int i = 0; names_linker_symbols[i]; i++)
        if (strcmp(name, names_linker_symbols[i]) == 0) {
            s->linker[i] = val;
            known = 1;
        }
    if (names_is_model_function(name, n, s->ident))
        s->model_functions++;
    else if (!known)
        verdict_broken(s->v, "a symbol dsc does not define", name);
}


/* Compile text with libtcc (-Wall -Werror); if symbols, relocate with the
 * runtime bound and check every global symbol against the model's own. */
static inline int names_tcc(const char *text, const char *which,
                            const char *ident, int symbols, emit_verdict *v)
{
    TCCState *s = tcc_new();
    if (!s)
        abort();
    strbuf messages = {0};
    tcc_set_error_func(s, &messages, names_tcc_error);
    tcc_set_options(s, "-Wall -Werror");
    tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
#define NAMES_BIND(sym) tcc_add_symbol(s, #sym, (const void *)sym);
    DSC_RUNTIME_SYMBOLS(NAMES_BIND)
#undef NAMES_BIND
    int rc = 0;
    if (tcc_compile_string(s, text) < 0) {
        rc = verdict_broken(v, which, messages.data ? messages.data
                            : "tcc rejected it");
    } else if (symbols) {
#ifdef TCC_RELOCATE_AUTO
        int relocated = tcc_relocate(s, TCC_RELOCATE_AUTO);
#else
        int relocated = tcc_relocate(s);
#endif
        names_symbols list = { .ident = ident, .v = v };
        if (relocated < 0)
            rc = verdict_broken(v, which, messages.data ? messages.data
                                : "tcc could not link it");
        else
            tcc_list_symbols(s, &list, names_symbol);
        if (rc == 0 && list.model_functions < 2)
            rc = verdict_broken(v, which, "the model's functions are missing");
        for (int i = 3; rc == 0 && i < 9; i += 2)
            if (list.linker[i] != list.linker[i + 1])
                rc = verdict_broken(v, which, names_linker_symbols[i]);
        if (v->status == VERDICT_BROKEN)
            rc = -1;
    }
    sb_free(&messages);
    tcc_delete(s);
    return rc;
}


/* text with each line that starts with "#include" blanked. */
static inline void names_append_without_includes(strbuf *sb, const char *text)
{
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p + 1) : strlen(p);
        if (strncmp(p, "#include", 8) == 0)
            sb_append(sb, "\n");
        else {
            char *line = malloc(len + 1);
            if (!line)
                abort();
            memcpy(line, p, len);
            line[len] = '\0';
            sb_append(sb, line);
            free(line);
        }
        p += len;
    }
}


/* Every check above on texts already made. */
static inline int names_check_texts(emit_verdict *v, const char *source_name,
                                    const char *header_name)
{
    char src_buf[CTEXT_MODEL_NAME_MAX + 8], hdr_buf[sizeof src_buf];
    snprintf(src_buf, sizeof src_buf, "%s.c", v->ident);
    snprintf(hdr_buf, sizeof hdr_buf, "%s.h", v->ident);
    const char *src = source_name ? source_name : src_buf;
    const char *hdr = header_name ? header_name : hdr_buf;
    /* The JIT's source holds the runtime header (trusted) verbatim. */
    const char *runtime = build_runtime_header();
    const char *at = strstr(v->jit, runtime);
    if (!at)
        return verdict_broken(v, "the JIT source", "no runtime header");
    size_t head = (size_t)(at - v->jit);
    char *jit_own = malloc(strlen(v->jit) + 1);
    if (!jit_own)
        abort();
    memcpy(jit_own, v->jit, head);
    strcpy(jit_own + head, at + strlen(runtime));
    ctext_names defined = {0}, jit_defined = {0};
    int rc = names_check_bytes(v->source, "the .c", v) ||
             names_check_bytes(v->header, "the .h", v) ||
             names_check_bytes(jit_own, "the JIT source", v) ||
             names_check_code(v->header, "the .h", v->ident, NULL, src, 0,
                              &defined, v) ||
             names_check_code(v->source, "the .c", v->ident, hdr, src, 0,
                              &defined, v) ||
             names_check_code(jit_own, "the JIT source", v->ident, NULL, src,
                              1, &jit_defined, v);
    ctext_names_free(&defined);
    ctext_names_free(&jit_defined);
    free(jit_own);
    if (rc)
        return -1;
    if (names_tcc(v->jit, "the JIT source", v->ident, 1, v))
        return -1;
    /* The shippable pair, its two #include lines (checked above) replaced
     * by what they include. */
    strbuf tu = {0};
    sb_append(&tu, runtime);
    names_append_without_includes(&tu, v->header);
    names_append_without_includes(&tu, v->source);
    char *text = sb_take(&tu);
    if (!text)
        abort();
    rc = names_tcc(text, "the .c with its .h", v->ident, 0, v);
    free(text);
    return rc;
}


typedef int (*names_pass_fn)(graph *g, pass_report *report, dsc_err *err);

/* The model text at path, whose forward passed, built with its train step
 * (build_train): its texts replace the forward's in v and are checked. */
static inline void names_verify_train(const char *path, const char *lua,
                                      size_t len,
                                      const frontend_define *defines,
                                      int n_defines, const char *source_name,
                                      const char *header_name,
                                      emit_verdict *v)
{
    build_options opts = { .defines = defines, .n_defines = n_defines,
                           .source_name = source_name,
                           .header_name = header_name, .text = lua,
                           .text_len = len };
    built_train bt;
    if (build_train(path, &opts, &bt, &v->err)) {
        v->status = VERDICT_REFUSED;
        return;
    }
    verdict_free(v);
    v->source = bt.train.source;
    v->header = bt.train.header;
    v->jit = bt.train.jit_source;
    bt.train.source = bt.train.header = bt.train.jit_source = NULL;
    v->trained = 1;
    char entry[sizeof bt.train.entry];
    snprintf(entry, sizeof entry, "%s_train_step_io", v->ident);
    if (strcmp(bt.train.entry, entry) != 0)
        verdict_broken(v, "the train step's entry is not named after the "
                       "model's identifier", bt.train.entry);
    else if (!strstr(v->source, entry))
        verdict_broken(v, "the .c", "no train step");
    else
        names_check_texts(v, source_name, header_name);
    built_train_free(&bt);
}


/* Build the model text at path as build_model does (with -D defines),
 * with the generated
 * files named source_name and header_name (NULL: the defaults), and check
 * what it makes.  v->status says how it went. */
static inline void emit_verify(const char *path, const char *lua, size_t len,
                               const frontend_define *defines, int n_defines,
                               const char *source_name,
                               const char *header_name, emit_verdict *v)
{
    static const names_pass_fn passes[] = { pass_eval_mode, pass_fuse_qkv,
                                            pass_fuse_epilogue, pass_dce };
    memset(v, 0, sizeof *v);
    v->status = VERDICT_REFUSED;
    frontend_limits lim = { .instructions = NAMES_INSTRUCTIONS,
                            .memory_bytes = NAMES_MEMORY };
    model *m = frontend_load_string(path, lua, len, defines, n_defines, &lim,
                                    &v->err);
    if (!m)
        return;
    graph *g = m->graph;
    int trains = g->loss_plus1 != 0;
    memory_plan plan = {0};
    weight_layout layout = {0};
    for (size_t i = 0; i < sizeof passes / sizeof passes[0]; i++) {
        pass_report report = {0};
        if (passes[i](g, &report, &v->err) || graph_verify(g, path, &v->err))
            goto out;
    }
    if (pass_plan_memory(g, 1, &plan, &v->err) ||
        weights_plan(g, &layout, &v->err))
        goto out;
    emit_options shipped = { .passes = "p", .source_name = source_name,
                             .header_name = header_name };
    if (emit_check(m, &shipped, &v->err))
        goto out;
    emit_options jit = shipped;
    jit.inline_runtime_header = build_runtime_header();
    ctext_model_name(m->name, strlen(m->name), v->ident);
    v->status = VERDICT_OK;
    v->source = emit_c_source(m, &plan, &layout, &shipped);
    v->header = emit_c_header(m, &plan, &layout, &shipped);
    v->jit = emit_c_source(m, &plan, &layout, &jit);
    if (!v->source || !v->header || !v->jit)
        verdict_broken(v, "the emitter", "made no text for a checked model");
    else if (strcmp(v->ident, m->name) != 0)
        verdict_broken(v, "the model's name is not its identifier", m->name);
    else if (names_check_texts(v, source_name, header_name) == 0 && trains)
        names_verify_train(path, lua, len, defines, n_defines, source_name,
                           header_name, v);
out:
    weights_layout_free(&layout);
    memory_plan_free(&plan);
    model_free(m);
}


/* ---- the libFuzzer entry ---------------------------------------------- */

/* The strings of the fuzzed model, split at 0x1f in this order. */
enum {
    F_PATH, F_TOKENS, F_X, F_OUT1, F_OUT2, F_OUT3, F_EMB, F_W, F_B, F_G,
    F_BETA, F_CONFIG_KEY, F_CONFIG_VALUE, F_EPS, F_SCALE, F_FILE, F_MODE,
    F_DEFINE,  /* non-empty: -D CONFIG_KEY=this */
    F_COUNT
};

static const char *const names_defaults[F_COUNT] = {
    "fuzz.lua", "tokens", "x", "y", "p", "att", "emb.weight", "fc.weight",
    "fc.bias", "norm.weight", "norm.bias", "d_model", "4", "1e-5", "0.5",
    "", "", "",
};


/* s as a Lua string literal: letters and digits as they are, every other
 * byte as a three-digit decimal escape. */
static inline void names_lua_string(strbuf *sb, const char *s, size_t len)
{
    sb_append(sb, "\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (names_is_ident_char((char)c) && c != '_')
            sb_printf(sb, "%c", c);
        else
            sb_printf(sb, "\\%03u", c);
    }
    sb_append(sb, "\"");
}


/* The model: an encoder-like graph, or (mode "d...") a decoder step, with
 * every string from the fields. */
static inline char *names_model_text(const char *const *field,
                                     const size_t *len)
{
    strbuf sb = {0};
#define S(i) names_lua_string(&sb, field[i], len[i])
    sb_append(&sb, "local c = dsc.config{[");
    S(F_CONFIG_KEY);
    sb_append(&sb, "] = ");
    S(F_CONFIG_VALUE);
    sb_append(&sb, "}\nlocal eps = tonumber(");
    S(F_EPS);
    sb_append(&sb, ") or 1e-5\nlocal scale = tonumber(");
    S(F_SCALE);
    sb_append(&sb, ") or 0.5\n");
    if (len[F_MODE] && field[F_MODE][0] == 'd') {
        sb_append(&sb, "local t = dsc.input(");
        S(F_TOKENS);
        sb_append(&sb, ", {8}, \"int32\", {dynamic = true})\n"
                  "local h = dsc.embedding(t, dsc.weight(");
        S(F_EMB);
        sb_append(&sb, ", {10, 4})) + dsc.positions(t, dsc.weight(");
        S(F_X);
        sb_append(&sb, ", {8, 4}))\nlocal function lin(k)\n"
                  "  return dsc.linear(h, dsc.weight(");
        S(F_W);
        sb_append(&sb, ", {12, 4}, {rows = {k * 4, 4}}), dsc.weight(");
        S(F_B);
        sb_append(&sb, ", {12}, {rows = {k * 4, 4}}))\nend\n"
                  "local a = dsc.kv_attention(lin(0), lin(1), lin(2), "
                  "{heads = 2, scale = scale})\n"
                  "local y = dsc.layernorm(dsc.last(a), dsc.weight(");
        S(F_G);
        sb_append(&sb, ", {4}), dsc.weight(");
        S(F_BETA);
        sb_append(&sb, ", {4}), {eps = eps})\ndsc.output(");
        S(F_OUT1);
        sb_append(&sb, ", y)\n");
    } else {
        sb_append(&sb, "local t = dsc.input(");
        S(F_TOKENS);
        sb_append(&sb, ", {3, 1}, \"int32\")\nlocal x = dsc.input(");
        S(F_X);
        sb_append(&sb, ", {3, 1, 4})\nlocal e = dsc.embedding(t, dsc.weight(");
        S(F_EMB);
        sb_append(&sb, ", {10, 4}))\nlocal h = dsc.linear(e + x, dsc.weight(");
        S(F_W);
        sb_append(&sb, ", {4, 4}), dsc.weight(");
        S(F_B);
        sb_append(&sb, ", {4}))\nlocal y = dsc.layernorm(dsc.relu(h), "
                  "dsc.weight(");
        S(F_G);
        sb_append(&sb, ", {4}, {init = \"ones\"}), dsc.weight(");
        S(F_BETA);
        sb_append(&sb, ", {4}, {init = \"zeros\"}), {eps = eps})\n"
                  "dsc.output(");
        S(F_OUT1);
        sb_append(&sb, ", y)\ndsc.output(");
        S(F_OUT2);
        sb_append(&sb, ", dsc.softmax(h))\n");
        /* "t...": trained (dsc.loss), with dropout in and after the
         * attention, against the tokens as targets; its q, k and v one
         * stacked linear (autodiff trains attention through fuse-qkv's
         * views), its weights keyed after the linear's. */
        int train = len[F_MODE] && field[F_MODE][0] == 't';
        if (train) {
            sb_append(&sb, "local function lin(k)\n"
                      "  return dsc.linear(h, dsc.weight(");
            S(F_W);
            sb_append(&sb, " .. \"_qkv\", {12, 4}, {rows = {k * 4, 4}}), "
                      "dsc.weight(");
            S(F_B);
            sb_append(&sb, " .. \"_qkv\", {12}, {rows = {k * 4, 4}}))\n"
                      "end\n");
        }
        sb_printf(&sb, "local att = dsc.attention(%s, {heads = 2, "
                  "scale = scale%s})\ndsc.output(", train
                  ? "lin(0), lin(1), lin(2)" : "h, h, h",
                  train ? ", dropout = 0.125" : "");
        S(F_OUT3);
        sb_append(&sb, ", att)\n");
        if (train)
            sb_append(&sb, "dsc.loss(dsc.cross_entropy(dsc.dropout(y + att, "
                      "0.25), t))\n");
    }
#undef S
    char *text = sb_take(&sb);
    if (!text)
        abort();
    return text;
}


/* The model above with these fields, built and checked (fallback_path
 * names it when the first field is empty): the verdict. */
static inline void names_verdict_of_fields(const char *const *field,
                                           const size_t *len,
                                           const char *fallback_path,
                                           emit_verdict *v)
{
    char *lua = names_model_text(field, len);
    /* C strings from here: a NUL ends them, as it ends a C path. */
    const char *model_path = *field[F_PATH] ? field[F_PATH] : fallback_path;
    char source[300], header[300];
    const char *stem = field[F_FILE];
    snprintf(source, sizeof source, "%.200s.c", stem);
    snprintf(header, sizeof header, "%.200s.h", stem);
    frontend_define define = { .key = field[F_CONFIG_KEY], .value = field[F_DEFINE] };
    emit_verify(model_path, lua, strlen(lua), &define, *field[F_DEFINE] != 0,
                *stem ? source : NULL, *stem ? header : NULL, v);
    if (v->status == VERDICT_OK && *stem &&
        !(ctext_is_file_name(source) && ctext_is_file_name(header)))
        verdict_broken(v, "a file name that cannot be #included", stem);
    if (v->status == VERDICT_BROKEN)
        fprintf(stderr, "fuzz_names: %s\n--- model %s\n%s\n--- .c\n%s\n",
                v->why, model_path, lua, v->source ? v->source : "");
    free(lua);
}


/* Any bytes as the fields of the model above, built and checked: the
 * verdict (path names the model when the first field is empty). */
static inline void fuzz_names_verdict(const uint8_t *data, size_t size,
                                      const char *path, emit_verdict *v)
{
    char *copy = malloc(size + 1);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    copy[size] = '\0';
    /* Fields in order; those the input does not reach keep a default. */
    const char *field[F_COUNT];
    size_t len[F_COUNT];
    size_t at = 0;
    for (int i = 0; i < F_COUNT; i++) {
        if (at > size) {
            field[i] = names_defaults[i];
            len[i] = strlen(field[i]);
            continue;
        }
        char *start = copy + at;
        char *sep = memchr(start, 0x1f, size - at);
        len[i] = sep ? (size_t)(sep - start) : size - at;
        start[len[i]] = '\0';
        field[i] = start;
        at += len[i] + 1;
    }
    names_verdict_of_fields(field, len, path, v);
    free(copy);
}


/* The libFuzzer entry: aborts on a finding, or on a refusal that is not
 * an error message.  0 when the C was clean or the model cleanly refused
 * (err is not used: the message names the fuzzed path). */
static inline int fuzz_names(const uint8_t *data, size_t size,
                             const char *path, dsc_err *err)
{
    emit_verdict v;
    (void)err;
    fuzz_names_verdict(data, size, path, &v);
    if (v.status == VERDICT_BROKEN)
        abort();
    if (v.status == VERDICT_REFUSED && !strstr(v.err.msg, "error: ")) {
        fprintf(stderr, "fuzz_names: refused without an error: '%s'\n",
                v.err.msg);
        abort();
    }
    verdict_free(&v);
    return 0;
}

#endif
