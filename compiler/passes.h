/* passes.h — transformations and analyses over the graph.
 *
 * A pass takes a graph and edits it, or computes something about it; it
 * knows nothing of Lua or of C text.  One file per pass: pass_<name>.c. */
#ifndef DSC_PASSES_H
#define DSC_PASSES_H

#include <stdint.h>

#include "diag.h"
#include "graph.h"

/* Where every intermediate tensor lives in the one arena. */
typedef struct memory_plan {
    int64_t *offset;            /* per tensor: byte offset, or -1 if none */
    int64_t arena_bytes;
    int64_t lower_bound_bytes;  /* the largest sum of live bytes at a step */
    int64_t no_reuse_bytes;     /* every tensor its own region */
} memory_plan;

/* Plan the arena over the node order: a tensor is live from the node that
 * makes it to the last node that reads it; tensors whose lives overlap
 * never share a byte; every offset is DSC_ALIGN-aligned.  With reuse off,
 * every tensor gets its own region.  Inputs, outputs and weights are not in
 * the arena. */
int pass_plan_memory(const graph *g, int reuse, memory_plan *plan,
                     dsc_err *err);
void memory_plan_free(memory_plan *plan);

#endif
