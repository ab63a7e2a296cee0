/* pass_plan_memory.c — offsets in one arena, greedy by size with best fit.
 *
 * First, elementwise ops whose input dies at them write over that input
 * (in place), so the two tensors form one buffer.  Then the largest buffers
 * are placed first (they constrain the most); each goes into the smallest
 * gap between already-placed buffers whose lives overlap its own, or above
 * them all.  This is TFLite Micro's "greedy by size" planner; on
 * transformer graphs it lands at or near the lower bound. */
#include <stdlib.h>
#include <string.h>

#include "dsc_runtime.h"
#include "passes/passes.h"


static int64_t align_up(int64_t n)
{
    return (n + DSC_ALIGN - 1) / DSC_ALIGN * DSC_ALIGN;
}


static int by_size_desc(const void *pa, const void *pb)
{
    const plan_buffer *a = *(const plan_buffer *const *)pa;
    const plan_buffer *b = *(const plan_buffer *const *)pb;
    if (a->bytes != b->bytes)
        return a->bytes < b->bytes ? 1 : -1;
    return (a > b) - (a < b);  /* deterministic ties: input order */
}


static int by_offset(const void *pa, const void *pb)
{
    const plan_buffer *a = *(const plan_buffer *const *)pa;
    const plan_buffer *b = *(const plan_buffer *const *)pb;
    return (a->offset > b->offset) - (a->offset < b->offset);
}


/* The best-fitting offset for b among the placed buffers. */
static int64_t best_fit(const plan_buffer *b, plan_buffer **placed,
                        int n_placed, plan_buffer **scratch)
{
    int n = 0;
    for (int i = 0; i < n_placed; i++)
        if (placed[i]->first <= b->last && b->first <= placed[i]->last)
            scratch[n++] = placed[i];
    qsort(scratch, (size_t)n, sizeof *scratch, by_offset);
    int64_t best = -1, best_gap = INT64_MAX, at = 0;
    for (int i = 0; i < n; i++) {
        int64_t gap = scratch[i]->offset - at;
        if (gap >= b->bytes && gap < best_gap) {
            best = at;
            best_gap = gap;
        }
        int64_t end = scratch[i]->offset + scratch[i]->bytes;
        if (end > at)
            at = end;
    }
    return best >= 0 ? best : at;
}


int64_t plan_buffers(plan_buffer *buffers, int n)
{
    plan_buffer **order = malloc(((size_t)n + 1) * sizeof *order);
    plan_buffer **scratch = malloc(((size_t)n + 1) * sizeof *scratch);
    if (!order || !scratch) {
        free(order);
        free(scratch);
        return -1;
    }
    for (int i = 0; i < n; i++)
        order[i] = &buffers[i];
    qsort(order, (size_t)n, sizeof *order, by_size_desc);
    int64_t arena = 0;
    for (int i = 0; i < n; i++) {
        order[i]->offset = best_fit(order[i], order, i, scratch);
        if (order[i]->offset + order[i]->bytes > arena)
            arena = order[i]->offset + order[i]->bytes;
    }
    free(order);
    free(scratch);
    return arena;
}


int64_t plan_lower_bound(const plan_buffer *buffers, int n, int steps)
{
    int64_t best = 0;
    for (int s = 0; s < steps; s++) {
        int64_t live = 0;
        for (int i = 0; i < n; i++)
            if (buffers[i].first <= s && s <= buffers[i].last)
                live += buffers[i].bytes;
        if (live > best)
            best = live;
    }
    return best;
}


/* Tensors with storage of their own in the arena. */
static int in_arena(const graph_tensor *t)
{
    return t->kind == GRAPH_INTERMEDIATE && t->producer >= 0 &&
           t->view_of < 0;
}


/* Ops whose kernel may write its result over its first float input. */
static int elementwise(graph_op op)
{
    return op == GRAPH_OP_ADD || op == GRAPH_OP_RELU || op == GRAPH_OP_GELU ||
           op == GRAPH_OP_LAYERNORM || op == GRAPH_OP_SOFTMAX ||
           /* training: each reads an element (or its whole row) before it
            * writes it (runtime/train.c) */
           op == GRAPH_OP_DROPOUT || op == GRAPH_OP_DROPOUT_GRAD ||
           op == GRAPH_OP_RELU_GRAD || op == GRAPH_OP_SOFTMAX_GRAD ||
           op == GRAPH_OP_DROPOUT_RELU_GRAD ||
           op == GRAPH_OP_GELU_GRAD ||
           op == GRAPH_OP_LAYERNORM_GRAD_X ||
           op == GRAPH_OP_CROSS_ENTROPY_GRAD ||
           op == GRAPH_OP_RMSNORM || op == GRAPH_OP_MOE_EXPERT;
}


static int find_root(const int *group, int t)
{
    while (group[t] != t)
        t = group[t];
    return t;
}


int pass_plan_memory(const graph *g, int reuse, memory_plan *plan,
                     dsc_err *err)
{
    size_t nt = (size_t)g->n_tensors + 1;
    *plan = (memory_plan){0};
    plan->offset = malloc(nt * sizeof(int64_t));
    int *group = malloc(nt * sizeof(int));
    int *last = malloc(nt * sizeof(int));
    int *buffer_of = malloc(nt * sizeof(int));
    plan_buffer *buffers = calloc(nt, sizeof *buffers);
    if (!plan->offset || !group || !last || !buffer_of || !buffers) {
        free(group), free(last), free(buffer_of), free(buffers);
        memory_plan_free(plan);
        return err_set(err, "error: out of memory planning the arena");
    }
    for (int t = 0; t < g->n_tensors; t++) {
        group[t] = t;
        last[t] = g->tensors[t].producer;
        plan->offset[t] = -1;
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_inputs; j++)
            if (g->nodes[i].inputs[j] >= 0)
                last[graph_storage(g, g->nodes[i].inputs[j])] = i;

    /* In place: the output joins the buffer of an input that dies here. */
    for (int i = 0; reuse && i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        const graph_tensor *out = &g->tensors[n->output];
        if (!elementwise(n->op) || !in_arena(out))
            continue;
        for (int j = 0; j < n->n_inputs; j++) {
            int s = n->inputs[j];
            if (s >= 0 && in_arena(&g->tensors[s]) && last[s] == i &&
                graph_tensor_bytes(&g->tensors[s]) == graph_tensor_bytes(out)) {
                group[n->output] = find_root(group, s);
                break;
            }
        }
    }

    /* One buffer per group: roots first, then members widen them. */
    int n = 0;
    for (int t = 0; t < g->n_tensors; t++) {
        const graph_tensor *x = &g->tensors[t];
        if (!in_arena(x))
            continue;
        int64_t bytes = align_up(graph_tensor_bytes(x));
        plan->no_reuse_bytes += bytes;
        if (!reuse || find_root(group, t) == t) {
            buffers[n] = (plan_buffer){ x->producer, last[t], bytes,
                                        plan->no_reuse_bytes - bytes };
            buffer_of[t] = n++;
        }
    }
    for (int t = 0; reuse && t < g->n_tensors; t++) {
        int root = find_root(group, t);
        if (!in_arena(&g->tensors[t]) || root == t)
            continue;
        plan_buffer *b = &buffers[buffer_of[root]];
        int64_t bytes = align_up(graph_tensor_bytes(&g->tensors[t]));
        b->last = last[t] > b->last ? last[t] : b->last;
        b->bytes = bytes > b->bytes ? bytes : b->bytes;
        buffer_of[t] = buffer_of[root];
    }
    plan->lower_bound_bytes = plan_lower_bound(buffers, n, g->n_nodes);
    if (reuse)
        plan->arena_bytes = plan_buffers(buffers, n);
    else
        plan->arena_bytes = plan->no_reuse_bytes;
    int failed = plan->arena_bytes < 0;
    for (int t = 0; t < g->n_tensors && !failed; t++)
        if (in_arena(&g->tensors[t]))
            plan->offset[t] = buffers[buffer_of[t]].offset;
    free(group), free(last), free(buffer_of), free(buffers);
    if (failed) {
        memory_plan_free(plan);
        return err_set(err, "error: out of memory planning the arena");
    }
    return 0;
}


void memory_plan_free(memory_plan *plan)
{
    free(plan->offset);
    *plan = (memory_plan){0};
}
