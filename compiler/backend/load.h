/* load.h — turn generated C into a callable forward, in this process.
 *
 * jit_load compiles in memory with libtcc and binds the runtime's kernels
 * from the dsc binary itself; aot_load builds a shared object with the
 * system C compiler and loads it (its runtime symbols resolve against the
 * running dsc, which exports them). */
#ifndef DSC_LOAD_H
#define DSC_LOAD_H

#include <stdint.h>

#include "util/diag.h"

/* The uniform entry point every generated model has (NAME_forward_io). */
typedef struct rt_ctx rt_ctx;
typedef int (*forward_io_fn)(rt_ctx *ctx, const float *weights,
                             void *const *io, void *arena);

/* A decoder's entry point (NAME_step_io): n tokens at positions pos.., io
 * holding the inputs, the outputs, then the cache. */
typedef int (*step_io_fn)(rt_ctx *ctx, const float *weights, void *const *io,
                          int64_t n, int64_t pos, void *arena);

typedef struct loaded_model loaded_model;

/* source: self-contained C (runtime header pasted in).  source_name names
 * it in compiler errors. */
loaded_model *jit_load(const char *source, const char *source_name,
                       const char *entry, dsc_err *err);

/* source and header: the shippable .c and .h; runtime_header: the text of
 * dsc_runtime.h.  Uses $CC (default cc). */
loaded_model *aot_load(const char *source, const char *header,
                       const char *runtime_header, const char *model_name,
                       const char *entry, dsc_err *err);

forward_io_fn loaded_entry(const loaded_model *m);
/* The same entry point, for a model whose entry is NAME_step_io. */
step_io_fn loaded_step(const loaded_model *m);
void loaded_free(loaded_model *m);

#endif
