/* embed.h — sentence embeddings: tokenized sentences through a BERT-style
 * model (models/minilm.lua), packed without padding.
 *
 * The sentences are sorted by length (longest first) and packed one after
 * another into forwards of about EMBED_TOKENS rows and at most `batch`
 * sentences; a forward's row count is rounded up to a multiple of
 * EMBED_ROW_STEP, so a whole corpus needs only a few compiled shapes (-D
 * tokens=T -D sentences=B on top of the caller's -D), all sharing one
 * packed weight blob, one runtime context and one arena.
 *
 * The model must take int32 inputs input_ids, token_type_ids and
 * position_ids [tokens] and lengths [sentences], and have one float32
 * output [sentences, dim]. */
#ifndef DSC_EMBED_H
#define DSC_EMBED_H

#include <stdint.h>
#include <stdio.h>

#include "driver/build.h"
#include "tokenizer/tokenizer.h"
#include "util/diag.h"

#define EMBED_TOKENS 1024   /* rows per forward, about */
#define EMBED_ROW_STEP 64   /* row counts compiled: multiples of this */

typedef struct embed_options {
    const char *model_path;
    build_options build;       /* -D and -f flags; tokens, sentences added */
    const char *weights_path;  /* NULL: seeded random weights (tests) */
    uint64_t seed;
    int threads;               /* 0: one per core */
    int aot;
    int64_t batch;             /* most sentences per forward */
    int64_t tokens;            /* rows per forward, about; 0: EMBED_TOKENS */
    int32_t pad_id;
    FILE *notes;               /* unused weight keys; may be NULL */
    /* Where the sentences came from, for messages; NULL or 0: unknown. */
    const char *text_path;     /* sentence i is its line i + 1 */
    const char *tokenizer_path;
    int64_t tokenizer_vocab;   /* the tokenizer's ids */
} embed_options;

typedef struct embed_stats {
    int shapes;                /* row counts compiled */
    int forwards;
    double compile_ms;         /* building and loading code, not weights */
    double weights_ms, forward_ms;
    int64_t rows, real_tokens; /* rows computed, tokens of sentences */
} embed_stats;

/* Embeddings of the sentences in tokens, in their order, into a malloc'd
 * [tokens->n, *dim] array.  NULL with an error on failure.  Before any
 * weights are read or code is run, every id (the padding id too) must be
 * in the model's vocabulary and every sentence fit its positions: an error
 * names the text's line or the tokenizer otherwise. */
float *embed_sentences(const embed_options *o, const tok_batch *tokens,
                       int64_t *dim, embed_stats *stats, dsc_err *err);

#endif
