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
    int borrowed;          /* weights and code belong to another runner */
} runner;

int runner_open(runner *r, const built_model *b, const runner_options *opts,
                dsc_err *err);

/* runner_open without the per-call state: weights and code only (ctx,
 * arena and cache stay NULL), for runner_clone to share. */
int runner_load(runner *r, const built_model *b, const runner_options *opts,
                dsc_err *err);

/* A runner for the same model sharing src's weights and code (src must
 * outlive it) with its own runtime context of `threads` threads, arena and
 * cache: one per thread that calls the model. */
int runner_clone(runner *dst, const runner *src, int threads, dsc_err *err);

/* Call the model: io holds the inputs, then the outputs, and room for one
 * more pointer (a decoder's cache goes there).  n and pos matter for a decoder only.  Returns the
 * generated code's status (DSC_OK, DSC_EBADTOKEN, DSC_EBADPOS). */
int runner_call(runner *r, void **io, int n_io, int64_t n, int64_t pos);

/* Zero a decoder's cache: a new sequence. */
void runner_reset(runner *r);

void runner_close(runner *r);

/* After DSC_EBADTOKEN: an error naming the first bad id and where it is,
 * "SOURCE: error: tokens[0, 3] = 5000 is not a token id in [0, 1000)".
 * sources[i] names graph input i's origin (a file), or is NULL for
 * source; sources may be NULL. */
int runner_bad_token(const graph *g, void *const *io, int64_t tokens,
                     const char *const *sources, const char *source,
                     dsc_err *err);

/* count random values for graph input t: token ids in [0, vocab) of the
 * embedding that reads it, or floats in [-1, 1). */
void runner_random_input(const graph *g, int t, void *buf, int64_t count,
                         uint64_t *rng);

#endif
