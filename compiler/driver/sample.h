/* sample.h — pick the next token from logits: greedy, or sampled with a
 * temperature, top-k and top-p (nucleus), from a seeded generator. */
#ifndef DSC_SAMPLE_H
#define DSC_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sample_options {
    double temperature;  /* <= 0: greedy (argmax) */
    int64_t top_k;       /* keep the k most likely; <= 0: all */
    double top_p;        /* keep the smallest set with this much mass; >= 1: all */
} sample_options;

/* The index of the largest logit (the first, on ties). */
int64_t sample_argmax(const float *logits, int64_t vocab);

/* The next token.  rng: splitmix64 state, advanced once per sampled token.
 * scratch: room for vocab (float, index) pairs; -1 if it is NULL. */
int64_t sample_next(const float *logits, int64_t vocab,
                    const sample_options *opts, uint64_t *rng,
                    void *scratch);

/* Bytes sample_next's scratch needs for vocab. */
size_t sample_scratch_bytes(int64_t vocab);

#endif
