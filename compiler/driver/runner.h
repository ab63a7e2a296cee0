/* runner.h — a built model made ready to call: weights packed, code loaded
 * (JIT or AOT), runtime context, arena and, for a decoder, its cache.  dsc
 * run, generate and bench all go through here. */
#ifndef DSC_RUNNER_H
#define DSC_RUNNER_H

#include <stdint.h>
#include <stdio.h>

#include "driver/build.h"
#include "util/diag.h"
#include "backend/load.h"

typedef struct runner_options {
    const char *weights_path;  /* safetensors, or NULL for random weights */
    uint64_t seed;             /* for random weights */
    int threads;               /* 0: one per core */
    int aot;                   /* cc-built shared object instead of libtcc */
    FILE *notes;               /* unused keys, NaN warnings; may be NULL */
} runner_options;

typedef struct runner {
    const built_model *built;
    float *weights;
    rt_ctx *ctx;
    void *arena;
    float *cache;          /* a decoder's state, or NULL */
    int64_t cache_floats;
    loaded_model *code;
    int decoder;           /* entry is NAME_step_io: takes n and pos */
    int64_t context;       /* a decoder's most tokens */
    double load_ms;        /* tcc or cc, and dlopen */
} runner;

int runner_open(runner *r, const built_model *b, const runner_options *opts,
                dsc_err *err);

/* Call the model: io holds the inputs, then the outputs, and room for one
 * more pointer (a decoder's cache goes there).  n and pos matter for a decoder only.  Returns the
 * generated code's status (DSC_OK, DSC_EBADTOKEN, DSC_EBADPOS). */
int runner_call(runner *r, void **io, int n_io, int64_t n, int64_t pos);

/* Zero a decoder's cache: a new sequence. */
void runner_reset(runner *r);

void runner_close(runner *r);

/* count random values for graph input t: token ids in [0, vocab) of the
 * embedding that reads it, or floats in [-1, 1). */
void runner_random_input(const graph *g, int t, void *buf, int64_t count,
                         uint64_t *rng);

#endif
