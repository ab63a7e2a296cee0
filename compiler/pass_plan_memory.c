/* pass_plan_memory.c — offsets in one arena, greedy by size with best fit.
 *
 * The largest tensors are placed first (they constrain the most); each
 * goes into the smallest gap between already-placed tensors whose lives
 * overlap its own, or above them all.  This is TFLite Micro's
 * "greedy by size" planner; on transformer graphs it lands within a few
 * percent of the lower bound. */
#include <stdlib.h>
#include <string.h>

#include "dsc_runtime.h"
#include "passes.h"

typedef struct interval {
    int tensor;
    int first, last;     /* node indices, inclusive */
    int64_t bytes;       /* rounded up to DSC_ALIGN */
    int64_t offset;
} interval;


static int64_t align_up(int64_t n)
{
    return (n + DSC_ALIGN - 1) / DSC_ALIGN * DSC_ALIGN;
}


static int by_size_desc(const void *pa, const void *pb)
{
    const interval *a = pa, *b = pb;
    if (a->bytes != b->bytes)
        return a->bytes < b->bytes ? 1 : -1;
    return a->tensor - b->tensor;  /* deterministic ties */
}


static int by_offset(const void *pa, const void *pb)
{
    const interval *a = *(const interval *const *)pa;
    const interval *b = *(const interval *const *)pb;
    return (a->offset > b->offset) - (a->offset < b->offset);
}


/* The best-fitting offset for iv among the placed intervals. */
static int64_t best_fit(const interval *iv, interval **placed, int n_placed,
                        interval **scratch)
{
    int n = 0;
    for (int i = 0; i < n_placed; i++)
        if (placed[i]->first <= iv->last && iv->first <= placed[i]->last)
            scratch[n++] = placed[i];
    qsort(scratch, (size_t)n, sizeof *scratch, by_offset);
    int64_t best = -1, best_gap = INT64_MAX, at = 0;
    for (int i = 0; i < n; i++) {
        int64_t gap = scratch[i]->offset - at;
        if (gap >= iv->bytes && gap < best_gap) {
            best = at;
            best_gap = gap;
        }
        int64_t end = scratch[i]->offset + scratch[i]->bytes;
        if (end > at)
            at = end;
    }
    return best >= 0 ? best : at;
}


int pass_plan_memory(const graph *g, int reuse, memory_plan *plan,
                     dsc_err *err)
{
    *plan = (memory_plan){0};
    plan->offset = malloc(((size_t)g->n_tensors + 1) * sizeof(int64_t));
    interval *iv = calloc((size_t)g->n_tensors + 1, sizeof *iv);
    interval **placed = calloc((size_t)g->n_tensors + 1, sizeof *placed);
    interval **scratch = calloc((size_t)g->n_tensors + 1, sizeof *scratch);
    int64_t *live = calloc((size_t)g->n_nodes + 1, sizeof *live);
    if (!plan->offset || !iv || !placed || !scratch || !live) {
        free(iv), free(placed), free(scratch), free(live);
        memory_plan_free(plan);
        return err_set(err, "error: out of memory planning the arena");
    }
    int n = 0;
    for (int t = 0; t < g->n_tensors; t++) {
        plan->offset[t] = -1;
        const graph_tensor *x = &g->tensors[t];
        if (x->kind != GRAPH_INTERMEDIATE)
            continue;
        interval *v = &iv[n++];
        *v = (interval){ .tensor = t, .first = x->producer,
                         .last = x->producer,
                         .bytes = align_up(graph_tensor_bytes(x)) };
        for (int i = x->producer + 1; i < g->n_nodes; i++)
            for (int j = 0; j < g->nodes[i].n_inputs; j++)
                if (g->nodes[i].inputs[j] == t)
                    v->last = i;
        for (int i = v->first; i <= v->last; i++)
            live[i] += v->bytes;
        plan->no_reuse_bytes += v->bytes;
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (live[i] > plan->lower_bound_bytes)
            plan->lower_bound_bytes = live[i];

    if (reuse) {
        qsort(iv, (size_t)n, sizeof *iv, by_size_desc);
        for (int i = 0; i < n; i++) {
            iv[i].offset = best_fit(&iv[i], placed, i, scratch);
            placed[i] = &iv[i];
        }
    } else {
        int64_t at = 0;
        for (int i = 0; i < n; i++) {
            iv[i].offset = at;
            at += iv[i].bytes;
        }
    }
    for (int i = 0; i < n; i++) {
        plan->offset[iv[i].tensor] = iv[i].offset;
        if (iv[i].offset + iv[i].bytes > plan->arena_bytes)
            plan->arena_bytes = iv[i].offset + iv[i].bytes;
    }
    free(iv), free(placed), free(scratch), free(live);
    return 0;
}


void memory_plan_free(memory_plan *plan)
{
    free(plan->offset);
    *plan = (memory_plan){0};
}
