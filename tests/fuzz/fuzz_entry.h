/* fuzz_entry.h — the entry points the fuzzers and their replay test share.
 *
 * Each takes arbitrary bytes, runs them through one of dsc's readers (and,
 * for model text, everything after the frontend), and returns 0 when the
 * input was accepted or -1 with *err holding the error.  Header-only so the
 * libFuzzer harnesses (tests/fuzz/fuzz_*.c, built by `make fuzz`) and
 * tests/test_fuzz_replay.c (built by `make test`) run the very same code. */
#ifndef DSC_FUZZ_ENTRY_H
#define DSC_FUZZ_ENTRY_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/emit_c.h"
#include "frontend/frontend.h"
#include "ir/graph.h"
#include "ir/model.h"
#include "io/config_json.h"
#include "io/npy.h"
#include "io/st_index.h"
#include "passes/passes.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "io/json.h"
#include "tokenizer/tokenizer.h"

/* Small limits: a fuzzed model gets ~2e6 instructions and 16 MB. */
#define FUZZ_INSTRUCTIONS 2000000LL
#define FUZZ_MEMORY       ((size_t)16 << 20)
/* Element reads and weight blobs above this are skipped (not an error). */
#define FUZZ_MAX_FLOATS   ((int64_t)1 << 22)


static inline int fuzz_safetensors(const uint8_t *data, size_t size,
                                   const char *path, dsc_err *err)
{
    dsc_err local;
    if (!err)
        err = &local;
    st_file *f = st_open_memory(data, size, path, err);
    if (!f)
        return -1;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        if (t != st_find(f, t->name))
            abort();  /* every tensor is found by its name */
        if (t->count > FUZZ_MAX_FLOATS)
            continue;
        float *dst = malloc((size_t)(t->count ? t->count : 1) * sizeof *dst);
        if (!dst)
            continue;
        dsc_err e;
        int floating = t->dtype == ST_F32 || t->dtype == ST_F16
                    || t->dtype == ST_BF16 || t->dtype == ST_F64;
        /* A float tensor of an open file always reads; the integer dtypes
         * give a clean error. */
        if ((st_read_f32(f, t, 0, t->count, dst, &e) < 0) == floating)
            abort();
        free(dst);
    }
    st_close(f);
    return 0;
}


static inline int fuzz_npy(const uint8_t *data, size_t size,
                           const char *path, dsc_err *err)
{
    dsc_err local;
    if (!err)
        err = &local;
    npy_array a;
    if (npy_read_memory(data, size, path, &a, err))
        return -1;
    npy_free(&a);
    return 0;
}


/* A config.json (--config) and a model.safetensors.index.json: the same
 * bytes through both readers; accepted when either accepts them. */
static inline int fuzz_hf_json(const uint8_t *data, size_t size,
                               const char *path, dsc_err *err)
{
    dsc_err local, e2;
    if (!err)
        err = &local;
    frontend_define *defs;
    char **shards;
    int n, m;
    int a = config_json_read_memory((const char *)data, size, path, &defs, &n,
                                    err);
    if (a == 0) {
        for (int i = 0; i < n; i++)
            if (!defs[i].key || !defs[i].value ||
                !strchr("ifbszxo", defs[i].kind))
                abort();
        config_json_free(defs, n);
    }
    int b = st_index_shards_memory((const char *)data, size, path, &shards,
                                   &m, &e2);
    if (b == 0) {
        for (int i = 0; i < m; i++)
            free(shards[i]);
        free(shards);
    }
    return a == 0 || b == 0 ? 0 : -1;
}


typedef int (*fuzz_pass_fn)(graph *g, pass_report *report, dsc_err *err);

/* The build pipeline of build_model, from text instead of a path. */
static inline int fuzz_frontend(const uint8_t *data, size_t size,
                                const char *path, dsc_err *err)
{
    static const fuzz_pass_fn passes[] = { pass_fuse_qkv, pass_fuse_epilogue,
                                           pass_dce };
    dsc_err local;
    if (!err)
        err = &local;
    frontend_limits lim = { .instructions = FUZZ_INSTRUCTIONS,
                            .memory_bytes = FUZZ_MEMORY };
    model *m = frontend_load_string(path, (const char *)data, size, NULL, 0,
                                    &lim, err);
    if (!m)
        return -1;
    int rc = -1;
    graph *g = m->graph;
    memory_plan plan = {0}, plain = {0};
    weight_layout layout = {0};
    for (size_t i = 0; i < sizeof passes / sizeof passes[0]; i++) {
        pass_report report = {0};
        if (passes[i](g, &report, err) || graph_verify(g, path, err))
            goto out;
    }
    if (pass_plan_memory(g, 1, &plan, err) ||
        pass_plan_memory(g, 0, &plain, err) || weights_plan(g, &layout, err))
        goto out;
    if (layout.total_floats <= FUZZ_MAX_FLOATS) {
        float *blob = malloc((size_t)(layout.total_floats + 1) * sizeof *blob);
        if (blob)
            weights_fill_random(g, &layout, 1, blob);
        free(blob);
    }
    emit_options opts = { .passes = "fuzz", .inline_runtime_header = NULL };
    char *src = emit_c_source(m, &plan, &layout, &opts);
    char *hdr = emit_c_header(m, &plan, &layout, &opts);
    char entry[160];
    emit_entry_name(m, entry, sizeof entry);
    rc = src && hdr ? 0 : err_set(err, "%s: error: out of memory generating "
                                  "C", path);
    free(src);
    free(hdr);
out:
    weights_layout_free(&layout);
    memory_plan_free(&plan);
    memory_plan_free(&plain);
    model_free(m);
    return rc;
}

/* A BERT tokenizer.json small enough to reach every rule quickly. */
#define FUZZ_TOKENIZER_JSON(norm) \
    "{\"added_tokens\": [{\"id\": 3, \"content\": \"[SEP]\"}, " \
    "{\"id\": 4, \"content\": \"[MASK]\"}, {\"id\": 6, " \
    "\"content\": \"[MASK]x\"}], \"normalizer\": " norm ", " \
    "\"post_processor\": {\"type\": \"TemplateProcessing\", " \
    "\"single\": [{\"SpecialToken\": {\"id\": \"[CLS]\"}}, " \
    "{\"Sequence\": {\"id\": \"A\"}}, {\"SpecialToken\": {\"id\": " \
    "\"[SEP]\"}}]}, \"model\": {\"type\": \"WordPiece\", " \
    "\"max_input_chars_per_word\": 12, \"vocab\": {\"[PAD]\": 0, " \
    "\"[UNK]\": 1, \"[CLS]\": 2, \"[SEP]\": 3, \"a\": 5, \"##a\": 7, " \
    "\"ab\": 8, \"##b\": 9, \"\u00e9\": 10, \"\u4f60\": 11, " \
    "\"!\": 12, \"##\u0301\": 13, \"i\": 14, \"##\u0307\": 15}}}"

/* Bytes starting with '{' are a tokenizer.json (loaded, then used on a few
 * sentences); anything else is text: its first byte picks the normalizer
 * and a max length, the rest are lines for a fixed tokenizer.  Every id
 * must be in the vocabulary, each sentence [CLS] ... [SEP] within the max
 * length, and an invalid UTF-8 report must point at a byte that is. */
static inline int fuzz_tokenizer(const uint8_t *data, size_t size,
                                 const char *path, dsc_err *err)
{
    static const char *const json[4] = {
        FUZZ_TOKENIZER_JSON("{\"type\": \"BertNormalizer\", "
                            "\"lowercase\": true}"),
        FUZZ_TOKENIZER_JSON("{\"type\": \"BertNormalizer\", "
                            "\"lowercase\": true, \"strip_accents\": false}"),
        FUZZ_TOKENIZER_JSON("{\"type\": \"BertNormalizer\", "
                            "\"clean_text\": false, \"lowercase\": false, "
                            "\"handle_chinese_chars\": false}"),
        FUZZ_TOKENIZER_JSON("null"),
    };
    static const char *const probe[] = { "", "a ab!", "\xc3\xa9\xe4\xbd\xa0 [SEP]" };
    dsc_err local;
    if (!err)
        err = &local;
    int is_json = size > 0 && data[0] == '{';
    const char *text = (const char *)data;
    size_t len = size;
    tok_tokenizer *t;
    if (is_json) {
        t = tok_load_memory(text, size, path, err);
    } else {
        int mode = size ? data[0] : 0;
        t = tok_load_memory(json[mode & 3], strlen(json[mode & 3]),
                            "fuzz.json", err);
        if (!t)
            abort();  /* the fixed tokenizer always loads */
        text = size ? text + 1 : text;
        len = size ? size - 1 : 0;
    }
    if (!t)
        return -1;
    int64_t max_len = is_json ? 0 : (size ? data[0] >> 2 : 0);
    int specials = tok_special_count(t);
    if (max_len && max_len < specials)
        max_len = specials;
    int rc = 0;
    for (size_t p = 0; p < (is_json ? 3 : 1); p++) {
        const char *s = is_json ? probe[p] : text;
        size_t n = is_json ? strlen(probe[p]) : len;
        tok_batch b;
        if (tok_encode_lines(t, s, n, path, max_len, &b, err)) {
            if (is_json || !strstr(err->msg, "invalid UTF-8"))
                abort();  /* valid probes always encode */
            rc = -1;
            continue;
        }
        for (int64_t i = 0; i < b.n; i++) {
            int64_t k = b.start[i + 1] - b.start[i];
            if (k < specials || (max_len && k > max_len))
                abort();
            for (int64_t j = b.start[i]; j < b.start[i + 1]; j++)
                if (b.ids[j] < 0 || b.ids[j] >= tok_vocab_size(t))
                    abort();
        }
        tok_batch_free(&b);
    }
    /* The first invalid byte, found independently, is what was reported. */
    if (!is_json) {
        size_t at = 0;
        while (at < len) {
            size_t k = json_utf8_seq((const unsigned char *)text + at,
                                     len - at);
            if (!k)
                break;
            at += k;
        }
        if ((at < len) != (rc != 0))
            abort();
    }
    tok_free(t);
    return rc;
}

#endif
