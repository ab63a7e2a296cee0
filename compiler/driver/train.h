/* train.h — the training pipeline: the model's forward (as dsc compile
 * builds it) and its train step, from one model file, sharing one weight
 * blob; and writing trained weights back under their keys. */
#ifndef DSC_DRIVER_TRAIN_H
#define DSC_DRIVER_TRAIN_H

#include <stdint.h>
#include <stdio.h>

#include "driver/build.h"
#include "io/safetensors.h"

/* NAME_train_step_io. */
typedef struct rt_ctx rt_ctx;
typedef int (*train_io_fn)(rt_ctx *ctx, float *w, float *state,
                           void *const *io, float *loss, void *arena);

typedef struct built_train {
    built_model fwd;     /* NAME_forward */
    /* The training graph (forward + backward) with its plan and layout
     * (equal to fwd's); source, header and jit_source hold NAME_forward
     * and NAME_train_step together; plan.arena_bytes is the step's whole
     * arena; entry is NAME_train_step_io.  runner_open takes it as is. */
    built_model train;
    int64_t state_floats;
    int targets;         /* the loss's targets tensor in train's graph */
    int64_t classes;     /* the loss's classes */
} built_train;

int build_train(const char *path, const build_options *opts, built_train *out,
                dsc_err *err);
void built_train_free(built_train *b);

/* Write blob's weights under their keys to out_path (safetensors, F32):
 * with `original` (the file the weights came from, or NULL), every key of
 * it, those the model does not train copied as they were. */
int train_save(const built_train *b, const float *blob, const st_file *original,
               const char *out_path, dsc_err *err);

/* dsc bench --train (train_bench.c): one warm-up, then opts->runs timed
 * steps on random inputs; one JSON line to out (median/min/max ms, GFLOP
 * counted as 3x the forward's, peak_rss_kb). */
struct bench_options;
int bench_train(const built_train *b, const struct bench_options *opts,
                FILE *out, dsc_err *err);

#endif
