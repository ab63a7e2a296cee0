/* embed.h — sentence embeddings: tokenized sentences through a BERT-style
 * model (models/minilm.lua) in padded batches.
 *
 * The sentences are sorted by length and cut into batches of `batch`; each
 * batch is padded to its longest sentence rounded up to a multiple of
 * EMBED_SEQ_STEP and runs through the model compiled for that (batch,
 * seq), so short sentences never pay for long ones.  Shapes are compiled
 * on first use (-D batch=B -D seq=S on top of the caller's -D); all of
 * them share one packed weight blob, one runtime context and one arena.
 *
 * The model must take int32 inputs input_ids, token_type_ids and
 * position_ids [batch, seq] and lengths [batch], and have one float32
 * output [batch, dim]. */
#ifndef DSC_EMBED_H
#define DSC_EMBED_H

#include <stdint.h>
#include <stdio.h>

#include "driver/build.h"
#include "tokenizer/tokenizer.h"
#include "util/diag.h"

#define EMBED_SEQ_STEP 8

typedef struct embed_options {
    const char *model_path;
    build_options build;       /* -D and -f flags; batch and seq are added */
    const char *weights_path;  /* NULL: seeded random weights (tests) */
    uint64_t seed;
    int threads;               /* 0: one per core */
    int aot;
    int64_t batch;             /* sentences per forward */
    int32_t pad_id;
    FILE *notes;               /* unused weight keys; may be NULL */
} embed_options;

typedef struct embed_stats {
    int shapes;                /* (batch, seq) shapes compiled */
    double compile_ms, weights_ms, forward_ms;
    int64_t padded_tokens, real_tokens;
} embed_stats;

/* Embeddings of the sentences in tokens, in their order, into a malloc'd
 * [tokens->n, *dim] array.  NULL with an error on failure. */
float *embed_sentences(const embed_options *o, const tok_batch *tokens,
                       int64_t *dim, embed_stats *stats, dsc_err *err);

#endif
