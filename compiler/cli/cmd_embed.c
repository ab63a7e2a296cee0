/* cmd_embed.c — dsc embed: sentence embeddings of each line of a text
 * file, through a tokenizer.json and a BERT-style model (driver/embed.c). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include <string.h>

#include "cli/cli.h"
#include "driver/embed.h"
#include "io/fileio.h"
#include "io/npy.h"
#include "tokenizer/tokenizer.h"
#include "util/timing.h"

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
    build_options bopts = cli_build_options(c);
    embed_options o = {
        .model_path = c->model_path, .build = bopts,
        .weights_path = c->weights_path, .seed = c->seed, .threads = threads,
        .aot = c->aot, .batch = c->batch ? c->batch : 256,
        .pad_id = tok_pad_id(t), .notes = stderr,
        .text_path = c->text_path, .tokenizer_path = c->tokenizer_path,
        .tokenizer_vocab = tok_vocab_size(t),
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
    if (!rc)  /* after an error, no line that reads as success */
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
