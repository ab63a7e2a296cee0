/* pass_fuse_qkv.c — one GEMM where several linears read the same tensor.
 *
 * Attention's Q, K and V projections all read x; as three linears they
 * stream x through the cache three times and call the GEMM three times for
 * a third of the work each.  Stacking their weights ([Nq+Nk+Nv, K]) makes
 * one wide GEMM; its result's column ranges become views that attention
 * reads by row stride, so nothing is copied.  The stacked weights are built
 * at compile time (the parts name their keys), never at run time. */
#include <stdlib.h>
#include <string.h>

#include "dsc_runtime.h"
#include "passes/passes.h"

#define MAX_GROUP GRAPH_MAX_PARTS


/* Can every reader of t read it as a strided view? */
static int readers_take_views(const graph *g, int t)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        for (int j = 0; j < n->n_inputs; j++)
            if (n->inputs[j] == t &&
                !((n->op == GRAPH_OP_ATTENTION && j < 3) ||
                  (n->op == GRAPH_OP_KV_ATTENTION && j < 3) ||
                  (n->op == GRAPH_OP_LINEAR && j == 0) ||
                  (n->op == GRAPH_OP_RMSNORM && j == 0) ||
                  n->op == GRAPH_OP_SILU_MUL ||
                  (n->op == GRAPH_OP_MLA_ATTENTION && j < 2)))
                return 0;
    }
    return 1;
}


/* A linear that may join a stack: plain (no epilogue yet), constant
 * weights, a result of its own that only stride-taking ops read. */
static int stackable(const graph *g, const graph_node *n)
{
    if (n->op != GRAPH_OP_LINEAR || n->attrs.act != RT_ACT_NONE ||
        (n->n_inputs > 3 && n->inputs[3] >= 0))
        return 0;
    const graph_tensor *w = &g->tensors[n->inputs[1]];
    const graph_tensor *out = &g->tensors[n->output];
    int bias = n->n_inputs > 2 ? n->inputs[2] : -1;
    return w->kind == GRAPH_WEIGHT &&
           (bias < 0 || g->tensors[bias].kind == GRAPH_WEIGHT) &&
           out->kind == GRAPH_INTERMEDIATE && out->view_of < 0 &&
           readers_take_views(g, n->output);
}


/* Append part p to w, merging it into the last part when it continues it. */
static int append_part(graph_weight *w, const graph_weight_part *p)
{
    graph_weight_part *last = w->n_parts ? &w->part[w->n_parts - 1] : NULL;
    if (last && last->key && last->key == p->key && last->init == p->init &&
        last->transposed == p->transposed &&
        last->row_first + last->rows == p->row_first) {
        last->rows += p->rows;
        return 0;
    }
    if (w->n_parts == GRAPH_MAX_PARTS)
        return -1;
    w->part[w->n_parts++] = *p;
    return 0;
}


/* Stack the weights (or biases, which == 2) of the group's linears into a
 * new weight tensor with rows rows; -1 on error.  Linears without a bias
 * contribute zeros. */
static int stack_weights(graph *g, const int *group, int n, int which,
                         int64_t rows, dsc_err *err)
{
    const graph_node *first = &g->nodes[group[0]];
    const graph_tensor *w0 = &g->tensors[first->inputs[1]];
    graph_shape shape = which == 1 ? w0->shape : (graph_shape){ 1, { 0 } };
    shape.dim[0] = rows;
    int t = graph_add_tensor(g, which == 1 ? "qkv_weight" : "qkv_bias",
                             &shape, first->loc, err);
    if (t < 0)
        return -1;
    graph_tensor *s = &g->tensors[t];
    s->kind = GRAPH_WEIGHT;
    for (int i = 0; i < n; i++) {
        const graph_node *lin = &g->nodes[group[i]];
        int src = lin->n_inputs > which ? lin->inputs[which] : -1;
        int64_t out_rows = g->tensors[lin->inputs[1]].shape.dim[0];
        if (src < 0) {
            graph_weight_part zeros = { .rows = out_rows };
            if (append_part(&s->weight, &zeros))
                return -1;
            continue;
        }
        const graph_weight *sw = &g->tensors[src].weight;
        for (int k = 0; k < sw->n_parts; k++)
            if (append_part(&s->weight, &sw->part[k]))
                return -1;
    }
    return t;
}


/* Fuse the linears in group (node indices, ascending) into group[0]. */
static int fuse_group(graph *g, const int *group, int n, char *dead,
                      dsc_err *err)
{
    int64_t rows = 0;
    int any_bias = 0;
    for (int i = 0; i < n; i++) {
        const graph_node *lin = &g->nodes[group[i]];
        rows += g->tensors[lin->inputs[1]].shape.dim[0];
        any_bias |= lin->n_inputs > 2 && lin->inputs[2] >= 0;
    }
    int w = stack_weights(g, group, n, 1, rows, err);
    if (w == -1)
        return -1;
    int b = any_bias ? stack_weights(g, group, n, 2, rows, err) : -2;
    if (b == -1)
        return -1;
    graph_node *head = &g->nodes[group[0]];
    graph_shape shape = g->tensors[head->output].shape;
    shape.dim[shape.rank - 1] = rows;
    int out = graph_add_tensor(g, "qkv", &shape, head->loc, err);
    if (out < 0)
        return -1;
    g->tensors[out].dynamic = g->tensors[head->output].dynamic;
    int64_t col = 0;
    for (int i = 0; i < n; i++) {
        graph_node *lin = &g->nodes[group[i]];
        int old = lin->output;
        graph_make_view(g, old, out, col);
        g->tensors[old].producer = -1;
        col += g->tensors[old].shape.dim[shape.rank - 1];
        dead[group[i]] = i > 0;
    }
    head->inputs[1] = w;
    head->inputs[2] = b >= 0 ? b : -1;
    head->n_inputs = 3;
    head->output = out;
    g->tensors[out].producer = group[0];
    return 0;
}


int pass_fuse_qkv(graph *g, pass_report *report, dsc_err *err)
{
    char *dead = calloc((size_t)g->n_nodes + 1, 1);
    char *taken = calloc((size_t)g->n_nodes + 1, 1);
    if (!dead || !taken) {
        free(dead);
        free(taken);
        return err_set(err, "error: out of memory in fuse-qkv");
    }
    int fused = 0, rc = 0;
    for (int i = 0; i < g->n_nodes && rc == 0; i++) {
        if (taken[i] || !stackable(g, &g->nodes[i]))
            continue;
        int group[MAX_GROUP], n = 0, parts = 0;
        for (int j = i; j < g->n_nodes && n < MAX_GROUP; j++) {
            const graph_node *c = &g->nodes[j];
            if (taken[j] || c->op != GRAPH_OP_LINEAR ||
                c->inputs[0] != g->nodes[i].inputs[0] || !stackable(g, c))
                continue;
            parts += g->tensors[c->inputs[1]].weight.n_parts;
            if (parts > GRAPH_MAX_PARTS)
                break;
            group[n++] = j;
            taken[j] = 1;
        }
        if (n < 2)
            continue;
        rc = fuse_group(g, group, n, dead, err);
        fused += rc == 0;
    }
    if (rc == 0)
        rc = graph_remove_nodes(g, dead, err);
    free(dead);
    free(taken);
    if (report)
        report->changed = fused;
    return rc;
}
