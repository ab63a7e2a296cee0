/* cmd_embed.c — dsc embed: sentence embeddings of each line of a text
 * file, through a tokenizer.json and a BERT-style model (driver/embed.c). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include <string.h>

#include "cli/cli.h"
#include "driver/embed.h"
#include "io/fileio.h"
#include "io/json.h"
#include "io/npy.h"
#include "tokenizer/tokenizer.h"
#include "util/timing.h"

/* The config.json keys models/minilm.lua takes, as -D. */
static const char *const bert_keys[] = {
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
    "intermediate_size", "max_position_embeddings", "type_vocab_size",
    "layer_norm_eps", NULL
};

typedef struct bert_config {
    char values[8][32];
    int have[8];
} bert_config;


/* A transformers BERT config.json: the sizes, and a check that the rest is
 * what the model computes (exact GELU, absolute positions). */
static int read_bert_config(const char *path, bert_config *bc, dsc_err *err)
{
    size_t len;
    char *text = file_read_all(path, &len, err);
    if (!text)
        return -1;
    jparser jp = { .s = text, .len = len, .path = path, .err = err,
                   .lines = 1 };
    keyset ks = {0};
    int first = 1, r;
    char *key, *str;
    memset(bc, 0, sizeof *bc);
    jp_ws(&jp);
    if (jp_peek(&jp) != '{') {
        free(text);
        return jp_syntax(&jp, "config.json must be an object");
    }
    if (jp_open(&jp, '{', 1)) {
        free(text);
        return -1;
    }
    while ((r = jp_next(&jp, '}', &first, &key)) == 1) {
        r = keyset_add(&ks, key) ? jp_syntax(&jp, "out of memory") : 0;
        int k = 0;
        while (bert_keys[k] && strcmp(bert_keys[k], key))
            k++;
        jp_ws(&jp);
        size_t at = jp.pos;
        if (r) {
        } else if (bert_keys[k]) {
            jnum n;
            if (!(r = jp_number(&jp, &n)))
                snprintf(bc->values[k], sizeof bc->values[k], "%.*s",
                         (int)n.len, jp.s + n.at);
            bc->have[k] = 1;
        } else if ((!strcmp(key, "hidden_act") ||
                    !strcmp(key, "position_embedding_type")) &&
                   jp_peek(&jp) == '"') {
            if (!(r = jp_string(&jp, &str))) {
                const char *want = key[0] == 'h' ? "gelu" : "absolute";
                if (strcmp(str, want)) {
                    jp.pos = at;
                    r = jp_syntax(&jp, "%s is \"%.40s\": models/minilm.lua "
                                  "computes \"%s\"", key, str, want);
                }
                free(str);
            }
        } else {
            r = jp_skip(&jp, 2);
        }
        if (r)
            break;
    }
    const char *dup = r ? NULL : keyset_dup(&ks);
    if (dup)
        r = jp_syntax(&jp, "duplicate key '%.60s'", dup);
    keyset_free(&ks);
    free(text);
    return r ? -1 : 0;
}


int cmd_embed(const cli *c)
{
    if (!c->tokenizer_path || !c->text_path)
        return cli_usage_error("%s needs --tokenizer FILE and --text FILE",
                               "embed");
    int threads = cli_thread_count(c);
    if (threads < 0)
        return 1;
    dsc_err err;
    double t0 = timing_now_ms();
    tok_tokenizer *t = tok_load(c->tokenizer_path, &err);
    if (!t) {
        cli_print_err(&err);
        return 1;
    }
    size_t len;
    tok_batch b = {0};
    char *text = file_read_all(c->text_path, &len, &err);
    double t_read = timing_now_ms();
    if (!text || tok_encode_lines(t, text, len, c->text_path,
                                  c->max_length ? c->max_length : 256, &b,
                                  &err)) {
        cli_print_err(&err);
        free(text);
        tok_free(t);
        return 1;
    }
    double tok_ms = timing_now_ms() - t_read;
    /* --config first, then the explicit -D (which win). */
    bert_config bc;
    frontend_define defs[CLI_MAX_DEFINES + 8];
    int n_defs = 0;
    if (c->config_path) {
        if (read_bert_config(c->config_path, &bc, &err)) {
            cli_print_err(&err);
            tok_batch_free(&b);
            free(text);
            tok_free(t);
            return 1;
        }
        for (int k = 0; bert_keys[k]; k++) {
            int explicit = 0;
            for (int i = 0; i < c->n_defines; i++)
                explicit |= !strcmp(c->defines[i].key, bert_keys[k]);
            if (bc.have[k] && !explicit)
                defs[n_defs++] = (frontend_define){ bert_keys[k],
                                                    bc.values[k] };
        }
    }
    for (int i = 0; i < c->n_defines; i++)
        defs[n_defs++] = c->defines[i];
    build_options bopts = cli_build_options(c);
    bopts.defines = defs;
    bopts.n_defines = n_defs;
    embed_options o = {
        .model_path = c->model_path, .build = bopts,
        .weights_path = c->weights_path, .seed = c->seed, .threads = threads,
        .aot = c->aot, .batch = c->batch ? c->batch : 256,
        .pad_id = tok_pad_id(t), .notes = stderr,
    };
    if (!c->weights_path)
        fprintf(stderr, "dsc: embed: no --weights: random weights (seed "
                "%llu)\n", (unsigned long long)c->seed);
    embed_stats st;
    int64_t dim = 0;
    float *e = embed_sentences(&o, &b, &dim, &st, &err);
    int rc = 0;
    if (!e) {
        cli_print_err(&err);
        rc = 1;
    } else if (c->out_path) {
        int64_t shape[2] = { b.n, dim };
        if (npy_write(c->out_path, NPY_F32, 2, shape, e, &err)) {
            cli_print_err(&err);
            rc = 1;
        }
    } else {
        for (int64_t i = 0; i < b.n; i++) {
            printf("%lld:", (long long)i);
            for (int64_t k = 0; k < dim && k < 6; k++)
                printf(" %.6f", (double)e[i * dim + k]);
            printf("%s\n", dim > 6 ? " ..." : "");
        }
    }
    if (e)
        fprintf(stderr, "dsc: embed: %lld sentences, %lld tokens (%lld rows) "
                "in %d forwards of %d shapes; tokenize %.1f ms, compile %.1f "
                "ms, weights %.1f ms, forward %.1f ms, total %.1f ms\n",
                (long long)b.n, (long long)st.real_tokens,
                (long long)st.rows, st.forwards, st.shapes, tok_ms,
                st.compile_ms,
                st.weights_ms, st.forward_ms, timing_now_ms() - t0);
    free(e);
    tok_batch_free(&b);
    free(text);
    tok_free(t);
    return rc;
}
