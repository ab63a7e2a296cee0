#include "driver/sample.h"

#include <math.h>
#include <stdlib.h>

#include "util/rng.h"

typedef struct candidate {
    double p;
    int64_t id;
} candidate;


int64_t sample_argmax(const float *logits, int64_t vocab)
{
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}


size_t sample_scratch_bytes(int64_t vocab)
{
    return (size_t)vocab * sizeof(candidate);
}


static int by_p_desc(const void *pa, const void *pb)
{
    const candidate *a = pa, *b = pb;
    if (a->p != b->p)
        return a->p < b->p ? 1 : -1;
    return (a->id > b->id) - (a->id < b->id);  /* a total order: reproducible */
}


int64_t sample_next(const float *logits, int64_t vocab,
                    const sample_options *opts, uint64_t *rng, void *scratch)
{
    if (!(opts->temperature > 0))
        return sample_argmax(logits, vocab);
    if (!scratch)
        return -1;
    candidate *c = scratch;
    double max = logits[sample_argmax(logits, vocab)], sum = 0;
    for (int64_t i = 0; i < vocab; i++) {
        c[i].id = i;
        c[i].p = exp((logits[i] - max) / opts->temperature);
        sum += c[i].p;
    }
    qsort(c, (size_t)vocab, sizeof *c, by_p_desc);
    int64_t keep = opts->top_k > 0 && opts->top_k < vocab ? opts->top_k
                                                          : vocab;
    double mass = 0, kept = 0;
    for (int64_t i = 0; i < keep; i++) {
        kept += c[i].p;
        mass = kept / sum;
        if (opts->top_p < 1 && mass >= opts->top_p) {
            keep = i + 1;
            break;
        }
    }
    /* A uniform draw in [0, kept) picks the candidate. */
    double u = (double)(rng_next(rng) >> 11) / 9007199254740992.0 * kept;
    for (int64_t i = 0; i < keep; i++) {
        u -= c[i].p;
        if (u < 0)
            return c[i].id;
    }
    return c[keep - 1].id;
}
