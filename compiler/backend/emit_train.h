/* emit_train.h — a training graph (pass_autodiff's) as C: NAME_train_step,
 * written after NAME_forward in the same file.
 *
 *   int NAME_train_step(rt_ctx *ctx, float *w, float *state, <inputs>,
 *                       float *out_loss, void *arena)
 *   int NAME_train_step_io(rt_ctx *ctx, float *w, float *state,
 *                          void *const *io, float *out_loss, void *arena)
 *
 * w is the packed weight blob, updated in place; state holds
 * rt_train_state_floats(blob floats) floats set up by rt_train_init.
 * Named as emit_c.h's functions are (inputs in_x, the W_ macros of the
 * forward's part of the file); outside text only through util/ctext. */
#ifndef DSC_EMIT_TRAIN_H
#define DSC_EMIT_TRAIN_H

#include <stdint.h>

#include "ir/model.h"
#include "io/weights.h"
#include "passes/passes.h"
#include "util/diag.h"

/* Can the training graph be written as C: emit_check's checks, plus the
 * training ops' constants (dropout p, the backward's eps and scale)
 * finite, one output (the loss).  0, or -1 with an error naming the model
 * line. */
int emit_train_check(const model *m, dsc_err *err);

/* NAME_train_step_io, NAME the model's C identifier, into buf. */
const char *emit_train_entry_name(const model *m, char *buf, int len);

/* The step's text (to append to NAME.c), or NULL with an error. */
char *emit_train_source(const model *m, const memory_plan *plan,
                        const weight_layout *w, dsc_err *err);
/* Its declarations and sizes (to append to NAME.h), or NULL. */
char *emit_train_header(const model *m, const memory_plan *plan,
                        const weight_layout *w);

/* GEMM scratch the backward's linears need, and the step's whole arena
 * (the planned one, then the scratch). */
int64_t emit_train_scratch_floats(const graph *g);
int64_t emit_train_arena_bytes(const graph *g, const memory_plan *plan);

/* The blob's trained ranges [first, first + count) (keys, not rows of
 * zeros), adjacent ones merged: how many, or -1 with an error. */
int emit_train_ranges(const graph *g, const weight_layout *w,
                      int64_t *first, int64_t *count, int max, dsc_err *err);

#endif
