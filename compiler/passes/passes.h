/* passes.h — transformations and analyses over the graph.
 *
 * A pass takes a graph and edits it, or computes something about it; it
 * knows nothing of Lua or of C text.  One file per pass: pass_<name>.c. */
#ifndef DSC_PASSES_H
#define DSC_PASSES_H

#include <stdint.h>

#include "util/diag.h"
#include "ir/graph.h"

/* What a pass did, for -v and --stats-json. */
typedef struct pass_report {
    int changed;  /* nodes fused, removed, ... */
} pass_report;

/* Merge linears that read the same tensor with the same in-features into
 * one linear over stacked weights; the old results become column views of
 * the wide one.  Fires only where every reader of those results takes a
 * row stride (attention, a linear's input). */
int pass_fuse_qkv(graph *g, pass_report *report, dsc_err *err);

/* Fold relu/gelu and a residual add into the linear before them. */
int pass_fuse_epilogue(graph *g, pass_report *report, dsc_err *err);

/* PyTorch's eval mode: dropout becomes the identity and the loss goes,
 * tensors and all (the forward's graph is the one without them). */
int pass_eval_mode(graph *g, pass_report *report, dsc_err *err);

/* Reverse-mode autodiff (pass_autodiff.c): append to a graph whose loss is
 * declared (dsc.loss) the nodes computing the gradient of the loss for
 * every weight, each by its op's rule (ops.def's GRAD lines).  Weight
 * gradients become GRAPH_GRAD tensors; the loss becomes the graph's only
 * output, "loss"; the forward's outputs become intermediates. */
int pass_autodiff(graph *g, pass_report *report, dsc_err *err);

/* Remove nodes no output needs. */
int pass_dce(graph *g, pass_report *report, dsc_err *err);

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

/* The planner's core, on its own for tests: a buffer lives over steps
 * [first, last] and needs bytes.  plan_buffers sets every offset (greedy by
 * size, best fit) and returns the arena size, or -1 when out of memory. */
typedef struct plan_buffer {
    int first, last;
    int64_t bytes;
    int64_t offset;
} plan_buffer;

int64_t plan_buffers(plan_buffer *buffers, int n);

/* The largest sum of bytes live at any step in [0, steps). */
int64_t plan_lower_bound(const plan_buffer *buffers, int n, int steps);

#endif
