/* compare.h — how far a build with reduced weights (-fweights=bf16, q8) is
 * from the float32 build of the same model on the same inputs: dsc run
 * --compare-f32 and dsc bench. */
#ifndef DSC_COMPARE_H
#define DSC_COMPARE_H

#include <stdint.h>

#include "driver/build.h"
#include "driver/runner.h"
#include "util/diag.h"

typedef struct compare_stats {
    double max_abs_diff;  /* over every element compared */
    double max_abs_ref;   /* the float32 output's largest |value|, for scale */
    int64_t values;       /* elements compared */
    int64_t rows, agree;  /* rows whose argmax was compared; those agreeing */
    int classes;          /* the last dimension scores classes (a linear's
                             output: logits), so argmax means something */
} compare_stats;

/* opts for the float32 twin: the same panel width and passes, -fweights=f32. */
build_options compare_f32_options(const build_options *opts);

/* Is graph output t a linear's output, scores over its last dimension? */
int compare_is_classes(const graph *g, int t);

/* Fold rows x dim values of got against want into s. */
void compare_rows(compare_stats *s, const float *got, const float *want,
                  int64_t rows, int64_t dim);

/* ref (the float32 build, opened) on the inputs in io (the graph's inputs,
 * then the outputs another build wrote, then room for a cache pointer, as
 * runner_call takes them); stats[i] compares output i.  tokens: a
 * decoder's token count.  -1 with err if ref fails. */
int compare_forward(runner *ref, const graph *g, void **io, int n_io,
                    int64_t tokens, compare_stats *stats, dsc_err *err);

/* A decoder (one token input, one logits output): the prompt, then steps
 * one-token steps each feeding the token r picks (greedy), run through r
 * and through ref alike; every position's logits compared, so the two see
 * the same tokens and differences do not compound. */
int compare_decode(runner *r, runner *ref, const graph *g,
                   const int32_t *prompt, int64_t n_prompt, int64_t steps,
                   compare_stats *s, dsc_err *err);

/* "max |diff| 0.0123 (of max |value| 9.87), argmax agrees on 318 of 320
 * rows (99.4%)" into buf. */
void compare_describe(const compare_stats *s, char *buf, size_t len);

#endif
