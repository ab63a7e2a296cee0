/* test_passes.c — the graph passes earn their names.
 *
 *  1. each pass on small hand-built graphs: the node list before and after,
 *     the wiring, the epilogue attributes, the stacked weights' parts and
 *     the views of old results; and the cases where a pass must not fire;
 *  2. every combination of -fno-* flags computes the same outputs (JIT, in
 *     this process) as all passes together;
 *  3. the stats the issue asks for, in process and through --stats-json;
 *  4. the memory planner against liveness computed here, on thousands of
 *     random graphs and random interval sets, and on literal tables whose
 *     greedy and optimal sizes are worked out by hand;
 *  5. `dsc graph` and `-v` as a user sees them.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "driver/build.h"
#include "dsc_runtime.h"
#include "io/fileio.h"
#include "frontend/frontend.h"
#include "ir/graph.h"
#include "backend/load.h"
#include "passes/passes.h"
#include "io/weights.h"
#include "cli_test.h"

static const graph_loc L = { "t.lua", 1 };


/* ------------------------------------------------------------------ */
/* Building graphs by hand                                              */
/* ------------------------------------------------------------------ */

static graph_shape shp(int rank, ...)
{
    graph_shape s = { .rank = rank };
    va_list ap;
    va_start(ap, rank);
    for (int i = 0; i < rank; i++)
        s.dim[i] = va_arg(ap, int);
    va_end(ap);
    return s;
}


static int input(graph *g, const char *name, graph_shape s)
{
    dsc_err e;
    int t = graph_add_input(g, name, GRAPH_F32, &s, L, &e);
    cr_assert_geq(t, 0, "%s", e.msg);
    return t;
}


/* Rows [row_first, row_first + rows) of key (all of it when rows is 0). */
static int weight_rows(graph *g, const char *key, graph_shape key_shape,
                       int row_first, int rows)
{
    dsc_err e;
    graph_shape s = key_shape;
    if (rows)
        s.dim[0] = rows;
    int t = graph_add_weight(g, key, &key_shape, row_first, &s,
                             GRAPH_INIT_UNIFORM, L, &e);
    cr_assert_geq(t, 0, "%s", e.msg);
    return t;
}


static int weight(graph *g, const char *key, graph_shape s)
{
    return weight_rows(g, key, s, 0, 0);
}


static int node(graph *g, graph_op op, int n, const int *ins,
                const graph_attrs *a)
{
    dsc_err e;
    int t = graph_add_node(g, op, ins, n, a, L, L, &e);
    cr_assert_geq(t, 0, "%s", e.msg);
    return t;
}


static int linear(graph *g, int x, int w, int b)
{
    int ins[3] = { x, w, b };
    return node(g, GRAPH_OP_LINEAR, b >= 0 ? 3 : 2, ins, NULL);
}


static int add(graph *g, int a, int b)
{
    int ins[2] = { a, b };
    return node(g, GRAPH_OP_ADD, 2, ins, NULL);
}


static int relu(graph *g, int a)
{
    return node(g, GRAPH_OP_RELU, 1, &a, NULL);
}


static int gelu(graph *g, int a, int form)
{
    graph_attrs at = { .act = form };
    return node(g, GRAPH_OP_GELU, 1, &a, &at);
}


static int softmax(graph *g, int a)
{
    return node(g, GRAPH_OP_SOFTMAX, 1, &a, NULL);
}


static int layernorm(graph *g, int x, int gamma, int beta)
{
    graph_attrs at = { .eps = 1e-5f };
    int ins[3] = { x, gamma, beta };
    return node(g, GRAPH_OP_LAYERNORM, 3, ins, &at);
}


static int attention(graph *g, int q, int k, int v, int heads)
{
    graph_attrs at = { .heads = heads, .scale = 0.5f, .batch_first = 1 };
    int ins[3] = { q, k, v };
    return node(g, GRAPH_OP_ATTENTION, 3, ins, &at);
}


static void output(graph *g, int t, const char *name)
{
    dsc_err e;
    cr_assert_eq(graph_mark_output(g, t, name, L, &e), 0, "%s", e.msg);
}


/* The ops in order, space separated. */
static const char *ops(const graph *g)
{
    static char buf[1024];
    int at = 0;
    buf[0] = '\0';
    for (int i = 0; i < g->n_nodes; i++)
        at += snprintf(buf + at, sizeof buf - (size_t)at, "%s%s", i ? " " : "",
                       graph_op_name(g->nodes[i].op));
    return buf;
}


static void verify(const graph *g)
{
    dsc_err e;
    cr_assert_eq(graph_verify(g, "t.lua", &e), 0, "%s", e.msg);
    for (int i = 0; i < g->n_nodes; i++)
        cr_assert_eq(g->tensors[g->nodes[i].output].producer, i,
                     "node %d is not its output's producer", i);
}


typedef int (*pass_fn)(graph *, pass_report *, dsc_err *);

/* Run a pass, check the graph it leaves; how many things it changed. */
static int run_pass(graph *g, pass_fn pass)
{
    dsc_err e;
    pass_report r = { -1 };
    cr_assert_eq(pass(g, &r, &e), 0, "%s", e.msg);
    verify(g);
    return r.changed;
}


static void expect_part(const graph_weight_part *p, const char *key,
                        int row_first, int rows)
{
    if (key)
        cr_expect(p->key && strcmp(p->key, key) == 0, "part key %s, want %s",
                  p->key ? p->key : "(zeros)", key);
    else
        cr_expect_null(p->key, "want a part of zeros, got %s", p->key);
    cr_expect_eq(p->row_first, row_first, "%s: row_first %lld, want %d",
                 key ? key : "zeros", (long long)p->row_first, row_first);
    cr_expect_eq(p->rows, rows, "%s: rows %lld, want %d", key ? key : "zeros",
                 (long long)p->rows, rows);
}


/* ------------------------------------------------------------------ */
/* 1. fuse-qkv                                                          */
/* ------------------------------------------------------------------ */

Test(fuse_qkv, separate_weight_keys_stack_into_one_gemm)
{
    /* seed_attention style: W_Q, W_K, W_V each a key of its own. */
    graph *g = graph_new();
    int x = input(g, "x", shp(3, 2, 3, 8));
    int wq = weight(g, "q.weight", shp(2, 4, 8));
    int bq = weight(g, "q.bias", shp(1, 4));
    int wk = weight(g, "k.weight", shp(2, 4, 8));
    int bk = weight(g, "k.bias", shp(1, 4));
    int wv = weight(g, "v.weight", shp(2, 6, 8));
    int bv = weight(g, "v.bias", shp(1, 6));
    int q = linear(g, x, wq, bq);
    int k = linear(g, x, wk, bk);
    int v = linear(g, x, wv, bv);
    int a = attention(g, q, k, v, 2);
    output(g, a, "y");
    cr_assert_str_eq(ops(g), "linear linear linear attention");

    cr_assert_eq(run_pass(g, pass_fuse_qkv), 1);
    cr_assert_str_eq(ops(g), "linear attention");
    const graph_node *lin = &g->nodes[0], *att = &g->nodes[1];
    cr_expect_eq(lin->inputs[0], x);
    cr_expect_eq(lin->n_inputs, 3);
    cr_expect_eq(lin->attrs.act, RT_ACT_NONE);

    const graph_tensor *w = &g->tensors[lin->inputs[1]];
    cr_expect_eq(w->kind, GRAPH_WEIGHT);
    cr_expect(graph_shape_equal(&w->shape, &(graph_shape){ 2, { 14, 8 } }));
    cr_assert_eq(w->weight.n_parts, 3);
    expect_part(&w->weight.part[0], "q.weight", 0, 4);
    expect_part(&w->weight.part[1], "k.weight", 0, 4);
    expect_part(&w->weight.part[2], "v.weight", 0, 6);
    cr_expect(graph_shape_equal(&w->weight.part[2].key_shape,
                                &(graph_shape){ 2, { 6, 8 } }));

    cr_assert_geq(lin->inputs[2], 0);
    const graph_tensor *b = &g->tensors[lin->inputs[2]];
    cr_expect_eq(b->kind, GRAPH_WEIGHT);
    cr_expect(graph_shape_equal(&b->shape, &(graph_shape){ 1, { 14 } }));
    cr_assert_eq(b->weight.n_parts, 3);
    expect_part(&b->weight.part[0], "q.bias", 0, 4);
    expect_part(&b->weight.part[1], "k.bias", 0, 4);
    expect_part(&b->weight.part[2], "v.bias", 0, 6);

    /* The one wide result, and the old results as its column views. */
    int out = lin->output;
    cr_expect(graph_shape_equal(&g->tensors[out].shape,
                                &(graph_shape){ 3, { 2, 3, 14 } }));
    cr_expect_eq(g->tensors[out].view_of, -1);
    cr_expect_eq(g->tensors[out].producer, 0);
    int olds[3] = { q, k, v }, cols[3] = { 0, 4, 8 };
    for (int i = 0; i < 3; i++) {
        const graph_tensor *o = &g->tensors[olds[i]];
        cr_expect_eq(o->view_of, out, "result %d is a view of the stack", i);
        cr_expect_eq(o->view_col, cols[i], "result %d at col %lld", i,
                     (long long)o->view_col);
        cr_expect_eq(o->producer, -1);
        cr_expect_eq(graph_storage(g, olds[i]), out);
        cr_expect_eq(graph_row_stride(g, olds[i]), 14);
        cr_expect_eq(att->inputs[i], olds[i], "attention still reads them");
    }
    cr_expect(graph_shape_equal(&g->tensors[v].shape,
                                &(graph_shape){ 3, { 2, 3, 6 } }));
    graph_free(g);
}


Test(fuse_qkv, slices_of_one_in_proj_key_merge_back_into_one_part)
{
    const int d = 8;
    graph *g = graph_new();
    int x = input(g, "x", shp(3, 5, 2, d));
    int tq[3];
    for (int i = 0; i < 3; i++) {
        int w = weight_rows(g, "attn.in_proj_weight", shp(2, 3 * d, d), i * d, d);
        int b = weight_rows(g, "attn.in_proj_bias", shp(1, 3 * d), i * d, d);
        cr_assert_eq(g->tensors[w].weight.part[0].row_first, i * d);
        tq[i] = linear(g, x, w, b);
    }
    output(g, attention(g, tq[0], tq[1], tq[2], 4), "y");
    cr_assert_eq(run_pass(g, pass_fuse_qkv), 1);
    cr_assert_str_eq(ops(g), "linear attention");
    const graph_node *lin = &g->nodes[0];
    const graph_tensor *w = &g->tensors[lin->inputs[1]];
    const graph_tensor *b = &g->tensors[lin->inputs[2]];
    cr_assert_eq(w->weight.n_parts, 1, "rows 0..d, d..2d, 2d..3d are one run");
    expect_part(&w->weight.part[0], "attn.in_proj_weight", 0, 3 * d);
    cr_expect(graph_shape_equal(&w->weight.part[0].key_shape,
                                &(graph_shape){ 2, { 3 * d, d } }));
    cr_expect(graph_shape_equal(&w->shape, &(graph_shape){ 2, { 3 * d, d } }));
    cr_assert_eq(b->weight.n_parts, 1);
    expect_part(&b->weight.part[0], "attn.in_proj_bias", 0, 3 * d);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(g->tensors[tq[i]].view_of, lin->output);
        cr_expect_eq(g->tensors[tq[i]].view_col, i * d);
    }

    /* The weight layout stores the merged stack once, as a linear weight. */
    weight_layout lay;
    dsc_err e;
    cr_assert_eq(weights_plan(g, &lay, &e), 0, "%s", e.msg);
    cr_expect_eq(lay.n_entries, 2);
    cr_expect_geq(lay.entry_of[lin->inputs[1]], 0);
    cr_expect(lay.entries[lay.entry_of[lin->inputs[1]]].packed_linear);
    weights_layout_free(&lay);
    graph_free(g);
}


Test(fuse_qkv, out_of_order_slices_stay_separate_parts)
{
    /* K before Q in the key: rows d..2d then 0..d do not merge. */
    const int d = 4;
    graph *g = graph_new();
    int x = input(g, "x", shp(3, 2, 2, d));
    int wa = weight_rows(g, "p", shp(2, 2 * d, d), d, d);
    int wb = weight_rows(g, "p", shp(2, 2 * d, d), 0, d);
    int a = linear(g, x, wa, -1), b = linear(g, x, wb, -1);
    output(g, attention(g, a, b, b, 1), "y");
    cr_assert_eq(run_pass(g, pass_fuse_qkv), 1);
    const graph_tensor *w = &g->tensors[g->nodes[0].inputs[1]];
    cr_assert_eq(w->weight.n_parts, 2);
    expect_part(&w->weight.part[0], "p", d, d);
    expect_part(&w->weight.part[1], "p", 0, d);
    cr_expect_eq(g->nodes[0].inputs[2], -1, "no biases: no bias stack");
    graph_free(g);
}


Test(fuse_qkv, linears_on_different_inputs_do_not_fuse)
{
    graph *g = graph_new();
    int x1 = input(g, "x1", shp(2, 3, 8));
    int x2 = input(g, "x2", shp(2, 3, 8));
    int a = linear(g, x1, weight(g, "a", shp(2, 5, 8)), -1);
    int b = linear(g, x2, weight(g, "b", shp(2, 5, 8)), -1);
    int c = linear(g, a, weight(g, "c", shp(2, 4, 5)), -1);
    int d = linear(g, b, weight(g, "d", shp(2, 4, 5)), -1);
    output(g, add(g, c, d), "y");
    const char *before = "linear linear linear linear add";
    cr_assert_str_eq(ops(g), before);
    cr_expect_eq(run_pass(g, pass_fuse_qkv), 0);
    cr_expect_str_eq(ops(g), before);
    for (int t = 0; t < g->n_tensors; t++)
        cr_expect_eq(g->tensors[t].view_of, -1);
    cr_expect_eq(g->nodes[0].output, a);
    cr_expect_eq(g->nodes[1].output, b);
    graph_free(g);
}


Test(fuse_qkv, result_read_by_an_add_is_not_fused)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int q = linear(g, x, weight(g, "q", shp(2, 8, 8)), -1);
    int k = linear(g, x, weight(g, "k", shp(2, 8, 8)), -1);
    output(g, add(g, q, k), "y");
    cr_expect_eq(run_pass(g, pass_fuse_qkv), 0);
    cr_expect_str_eq(ops(g), "linear linear add");
    cr_expect_eq(g->tensors[q].view_of, -1);
    cr_expect_eq(g->tensors[k].view_of, -1);
    graph_free(g);
}


Test(fuse_qkv, only_the_stride_readers_fuse)
{
    /* q and k feed attention only; v also feeds an add: q and k stack,
     * v stays its own linear. */
    graph *g = graph_new();
    int x = input(g, "x", shp(3, 2, 3, 8));
    int q = linear(g, x, weight(g, "q", shp(2, 8, 8)), -1);
    int k = linear(g, x, weight(g, "k", shp(2, 8, 8)), -1);
    int v = linear(g, x, weight(g, "v", shp(2, 8, 8)), -1);
    int a = attention(g, q, k, v, 2);
    output(g, add(g, a, v), "y");
    cr_assert_eq(run_pass(g, pass_fuse_qkv), 1);
    cr_assert_str_eq(ops(g), "linear linear attention add");
    cr_expect_eq(g->tensors[g->nodes[0].inputs[1]].weight.n_parts, 2);
    cr_expect_eq(g->tensors[q].view_of, g->nodes[0].output);
    cr_expect_eq(g->tensors[k].view_of, g->nodes[0].output);
    cr_expect_eq(g->tensors[v].view_of, -1);
    cr_expect_eq(g->nodes[1].output, v);
    cr_expect_eq(g->tensors[v].producer, 1);
    graph_free(g);
}


Test(fuse_qkv, a_single_linear_is_left_alone)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int h = linear(g, x, weight(g, "a", shp(2, 6, 8)), weight(g, "ab", shp(1, 6)));
    output(g, linear(g, h, weight(g, "b", shp(2, 2, 6)), -1), "y");
    cr_expect_eq(run_pass(g, pass_fuse_qkv), 0);
    cr_expect_str_eq(ops(g), "linear linear");
    cr_expect_eq(g->tensors[h].view_of, -1);
    cr_expect_eq(g->tensors[g->nodes[0].inputs[1]].weight.n_parts, 1);
    graph_free(g);
}


Test(fuse_qkv, a_linear_that_is_an_output_is_left_alone)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int a = linear(g, x, weight(g, "a", shp(2, 6, 8)), -1);
    int b = linear(g, x, weight(g, "b", shp(2, 6, 8)), -1);
    output(g, a, "ya");
    output(g, b, "yb");
    cr_expect_eq(run_pass(g, pass_fuse_qkv), 0);
    cr_expect_str_eq(ops(g), "linear linear");
    graph_free(g);
}


/* n linears of widths 2, 3, ... reading x, each read by a linear. */
static void fuse_n(int n)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int res[8];
    char key[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "w%d", i);
        res[i] = linear(g, x, weight(g, key, shp(2, 2 + i, 8)), -1);
    }
    int sum = -1;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "u%d", i);
        int u = linear(g, res[i], weight(g, key, shp(2, 4, 2 + i)), -1);
        sum = sum < 0 ? u : add(g, sum, u);
    }
    output(g, sum, "y");
    int nodes_before = g->n_nodes;
    cr_assert_eq(run_pass(g, pass_fuse_qkv), 1, "%d linears: one group", n);
    cr_assert_eq(g->n_nodes, nodes_before - (n - 1));
    const graph_node *lin = &g->nodes[0];
    const graph_tensor *w = &g->tensors[lin->inputs[1]];
    cr_assert_eq(w->weight.n_parts, n);
    int col = 0;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "w%d", i);
        expect_part(&w->weight.part[i], key, 0, 2 + i);
        cr_expect_eq(g->tensors[res[i]].view_of, lin->output);
        cr_expect_eq(g->tensors[res[i]].view_col, col);
        /* Its reader, a linear, now reads the view. */
        int readers = 0;
        for (int k = 1; k < g->n_nodes; k++)
            if (g->nodes[k].inputs[0] == res[i]) {
                cr_expect_eq(g->nodes[k].op, GRAPH_OP_LINEAR);
                readers++;
            }
        cr_expect_eq(readers, 1, "result %d has one reader", i);
        col += 2 + i;
    }
    cr_expect_eq(w->shape.dim[0], col);
    cr_expect_eq(g->tensors[lin->output].shape.dim[1], col);
    cr_expect_eq(graph_row_stride(g, res[n - 1]), col);
    graph_free(g);
}


Test(fuse_qkv, two_linears_sharing_an_input) { fuse_n(2); }
Test(fuse_qkv, five_linears_sharing_an_input) { fuse_n(5); }


Test(fuse_qkv, mixed_bias_gets_a_part_of_zeros)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(3, 2, 3, 8));
    int q = linear(g, x, weight(g, "q.weight", shp(2, 4, 8)),
                   weight(g, "q.bias", shp(1, 4)));
    int k = linear(g, x, weight(g, "k.weight", shp(2, 4, 8)), -1);
    int v = linear(g, x, weight(g, "v.weight", shp(2, 6, 8)),
                   weight(g, "v.bias", shp(1, 6)));
    output(g, attention(g, q, k, v, 2), "y");
    cr_assert_eq(run_pass(g, pass_fuse_qkv), 1);
    const graph_node *lin = &g->nodes[0];
    cr_assert_geq(lin->inputs[2], 0);
    int bias = lin->inputs[2];
    const graph_weight *b = &g->tensors[bias].weight;
    cr_assert_eq(b->n_parts, 3);
    expect_part(&b->part[0], "q.bias", 0, 4);
    expect_part(&b->part[1], NULL, 0, 4);
    expect_part(&b->part[2], "v.bias", 0, 6);
    cr_expect_eq(g->tensors[bias].shape.dim[0], 14);

    /* The blob holds zeros exactly where K's bias would be. */
    weight_layout lay;
    dsc_err e;
    cr_assert_eq(weights_plan(g, &lay, &e), 0, "%s", e.msg);
    float *blob = calloc((size_t)lay.total_floats + 1, sizeof(float));
    weights_fill_random(g, &lay, 3, blob);
    cr_assert_geq(lay.entry_of[bias], 0);
    const float *bv = blob + lay.entries[lay.entry_of[bias]].offset;
    for (int i = 0; i < 14; i++) {
        if (i >= 4 && i < 8)
            cr_expect_eq(bv[i], 0.0f, "k's missing bias row %d", i);
        else
            cr_expect_neq(bv[i], 0.0f, "bias row %d is drawn", i);
    }
    free(blob);
    weights_layout_free(&lay);
    graph_free(g);
}


Test(fuse_qkv, no_bias_anywhere_means_no_bias_stack)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(3, 2, 3, 8));
    int q = linear(g, x, weight(g, "q", shp(2, 4, 8)), -1);
    int k = linear(g, x, weight(g, "k", shp(2, 4, 8)), -1);
    int v = linear(g, x, weight(g, "v", shp(2, 4, 8)), -1);
    output(g, attention(g, q, k, v, 2), "y");
    int tensors_before = g->n_tensors;
    cr_assert_eq(run_pass(g, pass_fuse_qkv), 1);
    cr_expect_eq(g->nodes[0].inputs[2], -1);
    /* A stacked weight and the wide result: nothing else is made. */
    cr_expect_eq(g->n_tensors, tensors_before + 2);
    graph_free(g);
}


Test(fuse_qkv, linears_with_an_epilogue_or_residual_do_not_stack)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int r = input(g, "r", shp(2, 3, 8));
    int wa = weight(g, "a", shp(2, 8, 8)), wb = weight(g, "b", shp(2, 8, 8));
    int ins[4] = { x, wa, -1, r };
    int a = node(g, GRAPH_OP_LINEAR, 4, ins, NULL);
    graph_attrs act = { .act = RT_ACT_RELU };
    int ins2[2] = { x, wb };
    int b = node(g, GRAPH_OP_LINEAR, 2, ins2, &act);
    int c = linear(g, a, weight(g, "c", shp(2, 2, 8)), -1);
    int d = linear(g, b, weight(g, "d", shp(2, 2, 8)), -1);
    output(g, add(g, c, d), "y");
    cr_expect_eq(run_pass(g, pass_fuse_qkv), 0);
    cr_expect_str_eq(ops(g), "linear linear linear linear add");
    graph_free(g);
}


/* ------------------------------------------------------------------ */
/* 1. fuse-epilogue                                                     */
/* ------------------------------------------------------------------ */

Test(fuse_epilogue, relu_folds_into_the_linear)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int h = linear(g, x, weight(g, "w1", shp(2, 16, 8)), weight(g, "b1", shp(1, 16)));
    int r = relu(g, h);
    int y = linear(g, r, weight(g, "w2", shp(2, 8, 16)), -1);
    output(g, y, "y");
    cr_assert_str_eq(ops(g), "linear relu linear");
    cr_assert_eq(run_pass(g, pass_fuse_epilogue), 1);
    cr_assert_str_eq(ops(g), "linear linear");
    const graph_node *n0 = &g->nodes[0], *n1 = &g->nodes[1];
    cr_expect_eq(n0->attrs.act, RT_ACT_RELU);
    cr_expect_eq(n0->output, r, "the linear writes the relu's result");
    cr_expect_eq(g->tensors[r].producer, 0);
    cr_expect_eq(g->tensors[h].producer, -1, "the plain result is unused");
    cr_expect_eq(n0->inputs[0], x);
    cr_expect_geq(n0->inputs[2], 0, "the bias stays");
    cr_expect(n0->n_inputs < 4 || n0->inputs[3] < 0, "no residual");
    cr_expect_eq(n1->inputs[0], r);
    cr_expect_eq(n1->attrs.act, RT_ACT_NONE);
    graph_free(g);
}


Test(fuse_epilogue, gelu_folds_with_its_form_into_an_output)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int h = linear(g, x, weight(g, "w", shp(2, 4, 8)), -1);
    int y = gelu(g, h, RT_ACT_GELU_TANH);
    output(g, y, "y");
    cr_assert_eq(run_pass(g, pass_fuse_epilogue), 1);
    cr_assert_str_eq(ops(g), "linear");
    cr_expect_eq(g->nodes[0].attrs.act, RT_ACT_GELU_TANH);
    cr_expect_eq(g->nodes[0].output, y);
    cr_expect_eq(g->tensors[y].kind, GRAPH_OUTPUT, "the output stays one");
    cr_expect_eq(g->tensors[y].producer, 0);
    graph_free(g);

    g = graph_new();
    x = input(g, "x", shp(2, 3, 8));
    h = linear(g, x, weight(g, "w", shp(2, 4, 8)), -1);
    output(g, softmax(g, gelu(g, h, RT_ACT_GELU)), "y");
    cr_assert_eq(run_pass(g, pass_fuse_epilogue), 1);
    cr_expect_str_eq(ops(g), "linear softmax");
    cr_expect_eq(g->nodes[0].attrs.act, RT_ACT_GELU);
    graph_free(g);
}


Test(fuse_epilogue, relu_of_a_shared_result_does_not_fold)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int h = linear(g, x, weight(g, "w", shp(2, 8, 8)), -1);
    int r = relu(g, h);
    output(g, add(g, h, r), "y");
    cr_expect_eq(run_pass(g, pass_fuse_epilogue), 0);
    cr_expect_str_eq(ops(g), "linear relu add");
    cr_expect_eq(g->nodes[0].attrs.act, RT_ACT_NONE);
    cr_expect_eq(g->nodes[0].output, h);
    graph_free(g);
}


Test(fuse_epilogue, residual_add_folds_either_side)
{
    for (int side = 0; side < 2; side++) {
        graph *g = graph_new();
        int x = input(g, "x", shp(2, 3, 8));
        int gm = weight(g, "g", shp(1, 8)), bt = weight(g, "bt", shp(1, 8));
        int b = weight(g, "b", shp(1, 8));
        int y = linear(g, x, weight(g, "w", shp(2, 8, 8)), b);
        int s = side ? add(g, y, x) : add(g, x, y);
        int n = layernorm(g, s, gm, bt);
        output(g, n, "y");
        cr_assert_eq(run_pass(g, pass_fuse_epilogue), 1, "side %d", side);
        cr_assert_str_eq(ops(g), "linear layernorm");
        const graph_node *lin = &g->nodes[0];
        cr_expect_eq(lin->n_inputs, 4);
        cr_expect_eq(lin->inputs[0], x);
        cr_expect_eq(lin->inputs[2], b, "the bias is kept");
        cr_expect_eq(lin->inputs[3], x, "x is the residual");
        cr_expect_eq(lin->attrs.act, RT_ACT_NONE);
        cr_expect_eq(lin->output, s);
        cr_expect_eq(g->nodes[1].inputs[0], s);
        cr_expect_eq(g->tensors[y].producer, -1);
        graph_free(g);
    }
}


Test(fuse_epilogue, residual_without_bias_leaves_the_bias_slot_empty)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int r = input(g, "r", shp(2, 3, 4));
    int y = linear(g, x, weight(g, "w", shp(2, 4, 8)), -1);
    output(g, add(g, r, y), "y");
    cr_assert_eq(run_pass(g, pass_fuse_epilogue), 1);
    cr_expect_eq(g->nodes[0].n_inputs, 4);
    cr_expect_eq(g->nodes[0].inputs[2], -1);
    cr_expect_eq(g->nodes[0].inputs[3], r);
    graph_free(g);
}


Test(fuse_epilogue, x_plus_x_does_not_fold)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int y = linear(g, x, weight(g, "w", shp(2, 8, 8)), -1);
    output(g, add(g, y, y), "y");
    cr_expect_eq(run_pass(g, pass_fuse_epilogue), 0);
    cr_expect_str_eq(ops(g), "linear add");
    cr_expect_eq(g->nodes[0].n_inputs, 2);
    graph_free(g);
}


Test(fuse_epilogue, a_linear_that_is_a_graph_output_does_not_fold)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int y = linear(g, x, weight(g, "w", shp(2, 8, 8)), -1);
    output(g, y, "logits");
    output(g, relu(g, y), "act");
    cr_expect_eq(run_pass(g, pass_fuse_epilogue), 0);
    cr_expect_str_eq(ops(g), "linear relu");
    cr_expect_eq(g->nodes[0].output, y);
    cr_expect_eq(g->nodes[0].attrs.act, RT_ACT_NONE);
    graph_free(g);
}


Test(fuse_epilogue, residual_computed_after_the_linear_does_not_fold)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int z = input(g, "z", shp(2, 3, 8));
    int y = linear(g, x, weight(g, "w", shp(2, 8, 8)), -1);
    int r = relu(g, z);  /* made after the linear */
    output(g, add(g, y, r), "y");
    cr_expect_eq(run_pass(g, pass_fuse_epilogue), 0);
    cr_expect_str_eq(ops(g), "linear relu add");
    graph_free(g);
}


Test(fuse_epilogue, linear_relu_add_folds_both)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int b = weight(g, "b", shp(1, 8));
    int y = linear(g, x, weight(g, "w", shp(2, 8, 8)), b);
    int r = relu(g, y);
    int s = add(g, r, x);
    output(g, s, "y");
    cr_assert_str_eq(ops(g), "linear relu add");
    cr_assert_eq(run_pass(g, pass_fuse_epilogue), 2);
    cr_assert_str_eq(ops(g), "linear");
    const graph_node *lin = &g->nodes[0];
    cr_expect_eq(lin->attrs.act, RT_ACT_RELU);
    cr_expect_eq(lin->n_inputs, 4);
    cr_expect_eq(lin->inputs[2], b);
    cr_expect_eq(lin->inputs[3], x);
    cr_expect_eq(lin->output, s);
    cr_expect_eq(g->tensors[s].kind, GRAPH_OUTPUT);
    cr_expect_eq(g->tensors[r].producer, -1);
    graph_free(g);
}


Test(fuse_epilogue, no_activation_after_a_residual)
{
    /* relu(linear + r) is not act(linear) + r: the relu must stay. */
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int y = linear(g, x, weight(g, "w", shp(2, 8, 8)), -1);
    int s = add(g, y, x);
    output(g, relu(g, s), "y");
    cr_assert_eq(run_pass(g, pass_fuse_epilogue), 1);
    cr_expect_str_eq(ops(g), "linear relu");
    cr_expect_eq(g->nodes[0].attrs.act, RT_ACT_NONE);
    cr_expect_eq(g->nodes[0].inputs[3], x);
    cr_expect_eq(g->nodes[1].inputs[0], s);
    graph_free(g);
}


Test(fuse_epilogue, two_activations_do_not_both_fold)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int y = linear(g, x, weight(g, "w", shp(2, 8, 8)), -1);
    output(g, gelu(g, relu(g, y), RT_ACT_GELU), "y");
    cr_assert_eq(run_pass(g, pass_fuse_epilogue), 1);
    cr_expect_str_eq(ops(g), "linear gelu");
    cr_expect_eq(g->nodes[0].attrs.act, RT_ACT_RELU);
    graph_free(g);
}


/* ------------------------------------------------------------------ */
/* 1. dce                                                               */
/* ------------------------------------------------------------------ */

Test(dce, unreachable_nodes_and_their_weights_go)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int wd = weight(g, "dead.weight", shp(2, 8, 8));
    int bd = weight(g, "dead.bias", shp(1, 8));
    int d1 = linear(g, x, wd, bd);
    int d2 = relu(g, d1);
    int d3 = add(g, d2, d2);
    int wu = weight(g, "used.weight", shp(2, 4, 8));
    int bu = weight(g, "used.bias", shp(1, 4));
    int y = linear(g, x, wu, bu);
    output(g, y, "y");
    int z = relu(g, y);  /* reads an output, but nothing needs it */
    (void)z;

    weight_layout lay;
    dsc_err e;
    cr_assert_eq(weights_plan(g, &lay, &e), 0, "%s", e.msg);
    cr_expect_geq(lay.entry_of[wd], 0, "before dce the dead weight is stored");
    cr_expect_eq(lay.n_entries, 4);
    int64_t floats_before = lay.total_floats;
    weights_layout_free(&lay);

    cr_assert_str_eq(ops(g), "linear relu add linear relu");
    cr_assert_eq(run_pass(g, pass_dce), 4);
    cr_assert_str_eq(ops(g), "linear");
    cr_expect_eq(g->nodes[0].output, y);
    cr_expect_eq(g->tensors[y].producer, 0, "the producer index follows");
    cr_expect_eq(g->tensors[y].kind, GRAPH_OUTPUT);
    cr_expect_eq(g->tensors[d1].producer, -1);
    cr_expect_eq(g->tensors[d2].producer, -1);
    cr_expect_eq(g->tensors[d3].producer, -1);

    cr_assert_eq(weights_plan(g, &lay, &e), 0, "%s", e.msg);
    cr_expect_eq(lay.entry_of[wd], -1, "dead weights leave the blob");
    cr_expect_eq(lay.entry_of[bd], -1);
    cr_expect_geq(lay.entry_of[wu], 0);
    cr_expect_geq(lay.entry_of[bu], 0);
    cr_expect_eq(lay.n_entries, 2);
    cr_expect_lt(lay.total_floats, floats_before);
    weights_layout_free(&lay);

    /* The memory plan has nothing of the dead nodes either. */
    memory_plan plan;
    cr_assert_eq(pass_plan_memory(g, 1, &plan, &e), 0, "%s", e.msg);
    cr_expect_eq(plan.arena_bytes, 0);
    for (int t = 0; t < g->n_tensors; t++)
        cr_expect_eq(plan.offset[t], -1);
    memory_plan_free(&plan);
    graph_free(g);
}


Test(dce, outputs_and_what_they_read_are_kept)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(2, 3, 8));
    int a = relu(g, x);
    int b = linear(g, a, weight(g, "w", shp(2, 8, 8)), -1);
    output(g, a, "first");   /* an output other nodes read */
    output(g, softmax(g, b), "second");
    cr_expect_eq(run_pass(g, pass_dce), 0);
    cr_expect_str_eq(ops(g), "relu linear softmax");
    graph_free(g);
}


Test(dce, a_fused_stack_needed_through_its_views_stays)
{
    graph *g = graph_new();
    int x = input(g, "x", shp(3, 2, 3, 8));
    int q = linear(g, x, weight(g, "q", shp(2, 8, 8)), -1);
    int k = linear(g, x, weight(g, "k", shp(2, 8, 8)), -1);
    int v = linear(g, x, weight(g, "v", shp(2, 8, 8)), -1);
    linear(g, x, weight(g, "dead", shp(2, 3, 8)), -1);  /* read by no one */
    output(g, attention(g, q, k, v, 2), "y");
    cr_assert_eq(run_pass(g, pass_fuse_qkv), 1);
    /* The dead linear's result has no readers: it stacks too. */
    cr_expect_str_eq(ops(g), "linear attention");
    cr_expect_eq(run_pass(g, pass_dce), 0);
    cr_expect_str_eq(ops(g), "linear attention");
    graph_free(g);

    /* Without fuse-qkv, dce removes just the dead linear. */
    g = graph_new();
    x = input(g, "x", shp(3, 2, 3, 8));
    q = linear(g, x, weight(g, "q", shp(2, 8, 8)), -1);
    k = linear(g, x, weight(g, "k", shp(2, 8, 8)), -1);
    int dead = linear(g, x, weight(g, "dead", shp(2, 3, 8)), -1);
    v = linear(g, x, weight(g, "v", shp(2, 8, 8)), -1);
    output(g, attention(g, q, k, v, 2), "y");
    cr_expect_eq(run_pass(g, pass_dce), 1);
    cr_expect_str_eq(ops(g), "linear linear linear attention");
    cr_expect_eq(g->tensors[dead].producer, -1);
    cr_expect_eq(g->tensors[v].producer, 2);
    cr_expect_eq(g->nodes[3].inputs[2], v);
    graph_free(g);
}


/* ------------------------------------------------------------------ */
/* 2. Every flag combination computes the same outputs                  */
/* ------------------------------------------------------------------ */

enum { NO_QKV = 1, NO_EPILOGUE = 2, NO_DCE = 4, NO_PLAN = 8 };

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}


static build_options options(const frontend_define *d, int nd, int flags)
{
    return (build_options){
        .defines = d, .n_defines = nd,
        .no_fuse_qkv = !!(flags & NO_QKV),
        .no_fuse_epilogue = !!(flags & NO_EPILOGUE),
        .no_dce = !!(flags & NO_DCE),
        .no_plan_memory = !!(flags & NO_PLAN),
    };
}


/* Build, JIT and run path once with fixed random weights and inputs; all
 * outputs one after another (*count floats). */
static float *forward(const char *path, const frontend_define *d, int nd,
                      int flags, int64_t *count, build_stats *stats)
{
    build_options o = options(d, nd, flags);
    built_model b;
    dsc_err e;
    cr_assert_eq(build_model(path, &o, &b, &e), 0, "%s", e.msg);
    const graph *g = b.model->graph;
    if (stats)
        *stats = b.stats;
    float *blob = malloc(((size_t)b.weights.total_floats + 1) * sizeof(float));
    cr_assert_not_null(blob);
    weights_fill_random(g, &b.weights, 11, blob);

    void *io[16];
    int n_io = 0;
    int64_t total = 0;
    uint64_t rng = 0x5eed;
    for (int t = 0; t < g->n_tensors; t++) {
        const graph_tensor *x = &g->tensors[t];
        if (x->kind != GRAPH_INPUT)
            continue;
        int64_t n = graph_shape_count(&x->shape), vocab = 0;
        for (int i = 0; i < g->n_nodes; i++)
            if (g->nodes[i].op == GRAPH_OP_EMBEDDING &&
                g->nodes[i].inputs[0] == t)
                vocab = g->tensors[g->nodes[i].inputs[1]].shape.dim[0];
        void *buf = malloc((size_t)n * 4);
        for (int64_t i = 0; i < n; i++) {
            uint64_t r = splitmix(&rng);
            if (x->dtype == GRAPH_I32)
                ((int32_t *)buf)[i] = (int32_t)(r % (uint64_t)vocab);
            else
                ((float *)buf)[i] = (float)(r >> 40) / (float)(1 << 23) - 1.0f;
        }
        io[n_io++] = buf;
    }
    int first_out = n_io;
    for (int t = 0; t < g->n_tensors; t++) {
        if (g->tensors[t].kind != GRAPH_OUTPUT)
            continue;
        int64_t n = graph_shape_count(&g->tensors[t].shape);
        float *buf = malloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++)
            buf[i] = NAN;
        io[n_io++] = buf;
        total += n;
    }
    size_t arena_bytes = ((size_t)b.plan.arena_bytes + DSC_ALIGN) /
                         DSC_ALIGN * DSC_ALIGN;
    void *arena = aligned_alloc(DSC_ALIGN, arena_bytes);
    cr_assert_not_null(arena);
    memset(arena, 0xff, arena_bytes);  /* NaN: stale reads show */

    loaded_model *lm = jit_load(b.jit_source, b.model->name, b.entry, &e);
    cr_assert_not_null(lm, "%s", e.msg);
    int status = loaded_entry(lm)(NULL, blob, io, arena);
    cr_assert_eq(status, DSC_OK, "%s flags %d: status %d", path, flags, status);

    float *out = malloc((size_t)total * sizeof(float)), *at = out;
    for (int i = first_out; i < n_io; i++) {
        int64_t n = 0;
        for (int t = 0, k = first_out; t < g->n_tensors; t++)
            if (g->tensors[t].kind == GRAPH_OUTPUT && k++ == i)
                n = graph_shape_count(&g->tensors[t].shape);
        memcpy(at, io[i], (size_t)n * sizeof(float));
        at += n;
    }
    for (int i = 0; i < n_io; i++)
        free(io[i]);
    loaded_free(lm);
    free(arena);
    free(blob);
    built_model_free(&b);
    *count = total;
    return out;
}


static void all_flag_combinations_agree(const char *path,
                                        const frontend_define *d, int nd,
                                        int layers)
{
    int64_t n_ref;
    build_stats st;
    float *ref = forward(path, d, nd, 0, &n_ref, &st);
    cr_assert_gt(n_ref, 0);
    double mag = 0;
    for (int64_t i = 0; i < n_ref; i++) {
        cr_assert(isfinite(ref[i]), "output %lld is %g", (long long)i, ref[i]);
        mag = fmax(mag, fabs(ref[i]));
    }
    cr_assert_gt(mag, 0.01, "outputs are not all (near) zero");
    if (layers)
        cr_expect_eq(st.gemm_calls, layers * 4 + 1);
    for (int flags = 1; flags < 16; flags++) {
        int64_t n;
        float *out = forward(path, d, nd, flags, &n, &st);
        cr_assert_eq(n, n_ref);
        if (layers)
            cr_expect_eq(st.gemm_calls, layers * (flags & NO_QKV ? 6 : 4) + 1,
                         "flags %d: %d GEMM calls", flags, st.gemm_calls);
        cr_expect_eq(st.fused_epilogue, flags & NO_EPILOGUE ? 0 : 3 * layers,
                     "flags %d", flags);
        if (flags & NO_PLAN)
            cr_expect_eq(st.arena_bytes, st.no_reuse_bytes);
        double worst = 0;
        int64_t at = 0;
        for (int64_t i = 0; i < n; i++) {
            double diff = fabs((double)out[i] - ref[i]);
            if (!(diff <= worst)) {
                worst = isnan(diff) ? INFINITY : diff;
                at = i;
            }
        }
        cr_expect_leq(worst, 1e-5, "%s flags qkv=%d epi=%d dce=%d plan=%d: "
                      "max |diff| %g at %lld", path, !(flags & NO_QKV),
                      !(flags & NO_EPILOGUE), !(flags & NO_DCE),
                      !(flags & NO_PLAN), worst, (long long)at);
        free(out);
    }
    free(ref);
}


Test(equivalence, seed_encoder_small_config, .timeout = 120)
{
    frontend_define d[] = {
        { .key = "vocab", .value = "37" }, { .key = "d_model", .value = "32" }, { .key = "heads", .value = "4" },
        { .key = "layers", .value = "2" }, { .key = "d_ff", .value = "48" }, { .key = "seq", .value = "5" }, { .key = "batch", .value = "3" },
    };
    all_flag_combinations_agree("models/seed_encoder.lua", d, 7, 2);
}


Test(equivalence, seed_encoder_odd_config, .timeout = 120)
{
    frontend_define d[] = {
        { .key = "vocab", .value = "29" }, { .key = "d_model", .value = "24" }, { .key = "heads", .value = "3" },
        { .key = "layers", .value = "3" }, { .key = "d_ff", .value = "40" }, { .key = "seq", .value = "7" }, { .key = "batch", .value = "2" },
    };
    all_flag_combinations_agree("models/seed_encoder.lua", d, 7, 3);
}


Test(equivalence, seed_attention_separate_qkv_keys, .timeout = 120)
{
    /* Separate W_Q/W_K/W_V keys, batch_first attention, a relu between
     * the feed-forward linears (no residuals: one epilogue). */
    frontend_define d[] = {
        { .key = "input_dim", .value = "24" }, { .key = "d_k", .value = "8" }, { .key = "d_v", .value = "6" },
        { .key = "d_ff", .value = "16" }, { .key = "batch", .value = "3" }, { .key = "seq", .value = "5" }, { .key = "ff_in", .value = "6" },
    };
    int64_t n_ref;
    build_stats st;
    float *ref = forward("models/seed_attention.lua", d, 7, 0, &n_ref, &st);
    cr_expect_eq(st.gemm_calls, 3);
    cr_expect_eq(st.fused_qkv, 1);
    cr_expect_eq(st.fused_epilogue, 1);
    for (int flags = 1; flags < 16; flags++) {
        int64_t n;
        float *out = forward("models/seed_attention.lua", d, 7, flags, &n, &st);
        cr_assert_eq(n, n_ref);
        cr_expect_eq(st.gemm_calls, flags & NO_QKV ? 5 : 3);
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double diff = fabs((double)out[i] - ref[i]);
            if (!(diff <= worst))
                worst = isnan(diff) ? INFINITY : diff;
        }
        cr_expect_leq(worst, 1e-5, "flags %d: max |diff| %g", flags, worst);
        free(out);
    }
    free(ref);
}


/* A model with dead nodes, so the -fno-dce half of the combinations runs
 * something dce removes: a GELU nobody reads while h is live, a wide linear
 * nobody reads while y is.  Whatever the flags, the output is the same; dce removes
 * exactly the two dead nodes, and without dce the planner must still keep
 * their results off every live buffer. */
static const char dead_model[] =
    "local cfg = dsc.config{ seq = 6, d = 24, d_ff = 40 }\n"
    "local x = dsc.input('x', {cfg.seq, cfg.d})\n"
    "local function lin(v, key, o, i)\n"
    "  return dsc.linear(v, dsc.weight(key .. '.weight', {o, i}),\n"
    "                    dsc.weight(key .. '.bias', {o}))\n"
    "end\n"
    "local h = dsc.relu(lin(x, 'up', cfg.d_ff, cfg.d))\n"
    "local also_unused = dsc.gelu(h)\n"
    "local y = lin(h, 'down', cfg.d, cfg.d_ff) + x\n"
    "local unused = lin(y, 'wide', 4 * cfg.d_ff, cfg.d)\n"
    "dsc.output('y', dsc.layernorm(y, dsc.weight('ln.weight', {cfg.d}),\n"
    "                              dsc.weight('ln.bias', {cfg.d})))\n";

Test(equivalence, dead_nodes_under_every_flag_combination, .timeout = 120)
{
    char dir[] = "/tmp/dsc-dead-XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/dead.lua", dir);
    dsc_err e;
    cr_assert_eq(file_write_atomic(path, dead_model, strlen(dead_model), &e),
                 0, "%s", e.msg);
    int64_t n_ref;
    build_stats st;
    float *ref = forward(path, NULL, 0, 0, &n_ref, &st);
    cr_expect_eq(st.dce_removed, 2);
    for (int flags = 1; flags < 16; flags++) {
        int64_t n;
        float *out = forward(path, NULL, 0, flags, &n, &st);
        cr_assert_eq(n, n_ref);
        cr_expect_eq(st.dce_removed, flags & NO_DCE ? 0 : 2, "flags %d", flags);
        cr_expect_eq(st.nodes_after, st.nodes_before - st.dce_removed -
                     st.fused_epilogue, "flags %d", flags);
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double diff = fabs((double)out[i] - ref[i]);
            if (!(diff <= worst))
                worst = isnan(diff) ? INFINITY : diff;
        }
        cr_expect_leq(worst, 1e-5, "flags qkv=%d epi=%d dce=%d plan=%d: max "
                      "|diff| %g", !(flags & NO_QKV), !(flags & NO_EPILOGUE),
                      !(flags & NO_DCE), !(flags & NO_PLAN), worst);
        free(out);
    }
    free(ref);
    unlink(path);
    rmdir(dir);
}


/* ------------------------------------------------------------------ */
/* 3. Stats                                                             */
/* ------------------------------------------------------------------ */

static build_stats stats_of(const frontend_define *d, int nd, int flags)
{
    build_options o = options(d, nd, flags);
    built_model b;
    dsc_err e;
    cr_assert_eq(build_model("models/seed_encoder.lua", &o, &b, &e), 0, "%s",
                 e.msg);
    build_stats s = b.stats;
    /* The stats say what the graph and plan are. */
    int linears = 0;
    for (int i = 0; i < b.model->graph->n_nodes; i++)
        linears += b.model->graph->nodes[i].op == GRAPH_OP_LINEAR;
    cr_expect_eq(s.gemm_calls, linears);
    cr_expect_eq(s.nodes_after, b.model->graph->n_nodes);
    cr_expect_eq(s.arena_bytes, b.plan.arena_bytes);
    cr_expect_eq(s.weight_bytes, b.weights.total_floats * 4);
    built_model_free(&b);
    return s;
}


Test(stats, seed_encoder_defaults_meet_the_issue)
{
    build_stats all = stats_of(NULL, 0, 0);
    cr_expect_eq(all.gemm_calls, 9);
    cr_expect_eq(all.fused_qkv, 2);
    cr_expect_geq(all.fused_epilogue, 2);
    cr_expect_eq(all.fused_epilogue, 6, "relu + two residuals per layer");
    cr_expect_eq(all.dce_removed, 0);
    cr_expect_eq(all.nodes_before, 26);
    cr_expect_lt(all.nodes_after, all.nodes_before);
    cr_expect_leq((double)all.arena_bytes,
                  1.10 * (double)all.arena_lower_bound_bytes,
                  "arena %lld vs lower bound %lld",
                  (long long)all.arena_bytes,
                  (long long)all.arena_lower_bound_bytes);
    cr_expect_leq((double)all.arena_bytes, 0.5 * (double)all.no_reuse_bytes,
                  "arena %lld vs without reuse %lld",
                  (long long)all.arena_bytes, (long long)all.no_reuse_bytes);
    cr_expect_geq(all.arena_bytes, all.arena_lower_bound_bytes);

    build_stats no_qkv = stats_of(NULL, 0, NO_QKV);
    cr_expect_eq(no_qkv.gemm_calls, 13);
    cr_expect_eq(no_qkv.fused_qkv, 0);
    cr_expect_eq(no_qkv.nodes_before, all.nodes_before);

    build_stats no_epi = stats_of(NULL, 0, NO_EPILOGUE);
    cr_expect_eq(no_epi.fused_epilogue, 0);
    cr_expect_eq(no_epi.gemm_calls, 9);
    cr_expect_eq(no_epi.nodes_after, all.nodes_after + 6);

    build_stats no_plan = stats_of(NULL, 0, NO_PLAN);
    cr_expect_eq(no_plan.arena_bytes, no_plan.no_reuse_bytes);
    cr_expect_eq(no_plan.no_reuse_bytes, all.no_reuse_bytes);
    cr_expect_eq(no_plan.weight_bytes, all.weight_bytes);
}


Test(stats, over_configs)
{
    static const char *const variants[][2][2] = {
        { { "seq", "1" }, { "batch", "1" } },
        { { "d_ff", "8" }, { NULL, NULL } },
        { { "heads", "1" }, { NULL, NULL } },
        { { "heads", "8" }, { NULL, NULL } },
        { { "heads", "8" }, { "d_ff", "8" } },
        { { NULL, NULL }, { NULL, NULL } },
    };
    char layers_s[16];
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        for (int layers = 1; layers <= 4; layers++) {
            frontend_define d[4];
            int nd = 0;
            snprintf(layers_s, sizeof layers_s, "%d", layers);
            d[nd++] = (frontend_define){ .key = "layers", .value = layers_s };
            for (int k = 0; k < 2; k++)
                if (variants[v][k][0])
                    d[nd++] = (frontend_define){ .key = variants[v][k][0], .value = variants[v][k][1] };
            /* Seq = batch = 1 with the rest: the smallest model there is. */
            if (v == 0) {
                d[nd++] = (frontend_define){ .key = "d_ff", .value = "8" };
            }
            build_stats s = stats_of(d, nd, 0);
            build_stats u = stats_of(d, nd, NO_QKV);
            cr_expect_eq(s.gemm_calls, layers * 4 + 1, "variant %zu layers %d",
                         v, layers);
            cr_expect_eq(u.gemm_calls, layers * 6 + 1, "variant %zu layers %d",
                         v, layers);
            cr_expect_eq(s.fused_qkv, layers);
            cr_expect_eq(s.fused_epilogue, 3 * layers);
            cr_expect_geq(s.arena_bytes, s.arena_lower_bound_bytes);
            cr_expect_leq((double)s.arena_bytes,
                          1.10 * (double)s.arena_lower_bound_bytes,
                          "variant %zu layers %d: arena %lld, bound %lld", v,
                          layers, (long long)s.arena_bytes,
                          (long long)s.arena_lower_bound_bytes);
            /* One layer cannot reuse much: what is live around attention
             * (its input, the QKV stack, its result) is more than half of
             * all there is.  There the plan must be at the bound. */
            if (layers >= 2)
                cr_expect_leq((double)s.arena_bytes,
                              0.5 * (double)s.no_reuse_bytes,
                              "variant %zu layers %d: arena %lld, no reuse "
                              "%lld", v, layers, (long long)s.arena_bytes,
                              (long long)s.no_reuse_bytes);
            else
                cr_expect_eq(s.arena_bytes, s.arena_lower_bound_bytes);
        }
    }
}


/* ------------------------------------------------------------------ */
/* Running dsc                                                          */
/* ------------------------------------------------------------------ */

static int count_of(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}


TestSuite(cli, .init = make_tmp, .fini = remove_tmp);

Test(cli, stats_json_has_every_key)
{
    cr_assert_eq(run("%s compile models/seed_encoder.lua -o %s --stats-json "
                     "%s", dsc(), tmp_file("m.c"), tmp_file("stats.json")), 0,
                 "%s", slurp(tmp_file("stderr")));
    char *json = slurp(tmp_file("stats.json"));
    static const char *const keys[] = {
        "nodes_before", "nodes_after", "gemm_calls", "fused_qkv",
        "fused_epilogue", "arena_bytes", "arena_lower_bound_bytes",
        "no_reuse_bytes", "weight_bytes",
    };
    long long v[9];
    for (int i = 0; i < 9; i++) {
        char key[64];
        snprintf(key, sizeof key, "\"%s\": ", keys[i]);
        const char *at = strstr(json, key);
        cr_assert_not_null(at, "no %s in %s", keys[i], json);
        cr_assert_eq(sscanf(at + strlen(key), "%lld", &v[i]), 1, "%s", json);
        cr_expect_geq(v[i], 0, "%s", keys[i]);
    }
    cr_expect_eq(json[0], '{');
    cr_expect(strstr(json, "}\n"), "one object, one line");
    cr_expect_eq(v[0], 26);
    cr_expect_eq(v[1], 16);
    cr_expect_eq(v[2], 9);
    cr_expect_eq(v[3], 2);
    cr_expect_geq(v[4], 2);
    cr_expect_leq((double)v[5], 1.10 * (double)v[6]);
    cr_expect_leq((double)v[5], 0.5 * (double)v[7]);
    cr_expect_gt(v[8], 0);
    free(json);

    cr_assert_eq(run("%s compile models/seed_encoder.lua -fno-fuse-qkv -o %s "
                     "--stats-json %s", dsc(), tmp_file("m.c"),
                     tmp_file("stats.json")), 0);
    json = slurp(tmp_file("stats.json"));
    cr_expect(strstr(json, "\"gemm_calls\": 13,"), "%s", json);
    cr_expect(strstr(json, "\"fused_qkv\": 0,"), "%s", json);
    free(json);
}


Test(cli, graph_after_passes_draws_fusions)
{
    cr_assert_eq(run("%s graph models/seed_encoder.lua --after-passes -o %s",
                     dsc(), tmp_file("g.dot")), 0, "%s",
                 slurp(tmp_file("stderr")));
    char *dot = slurp(tmp_file("g.dot"));
    cr_expect(strncmp(dot, "digraph ", 8) == 0, "%s", dot);
    cr_expect(strstr(dot, "fused"), "%s", dot);
    cr_expect(strstr(dot, "relu"), "%s", dot);
    cr_expect(strstr(dot, "residual"), "%s", dot);
    cr_expect(strstr(dot, "cols 256.."), "views are labelled by column: %s",
              dot);
    /* One box per op of the graph the passes leave. */
    build_stats s = stats_of(NULL, 0, 0);
    cr_expect_eq(count_of(dot, "[shape=box"), s.nodes_after, "%s", dot);
    for (int i = 0; i < s.nodes_after; i++) {
        char id[32];
        snprintf(id, sizeof id, "  n%d [shape=box", i);
        cr_expect(strstr(dot, id), "no %s", id);
    }
    cr_expect_eq(count_of(dot, "fused x3"), 2, "one per layer");
    cr_expect_eq(count_of(dot, "+ relu"), 2);
    cr_expect_eq(count_of(dot, "+ residual"), 4);
    free(dot);

    /* Before the passes: every op its own box, no fusions. */
    cr_assert_eq(run("%s graph models/seed_encoder.lua -o %s", dsc(),
                     tmp_file("raw.dot")), 0);
    dot = slurp(tmp_file("raw.dot"));
    /* The model as written: its 6 dropouts and its loss too (the forward
     * drops them: eval mode). */
    cr_expect_eq(count_of(dot, "[shape=box"), s.nodes_before + 7);
    cr_expect_eq(count_of(dot, "label=\"dropout"), 6, "%s", dot);
    cr_expect(!strstr(dot, "fused"), "%s", dot);
    cr_expect_eq(count_of(dot, "label=\"relu"), 2);
    free(dot);

    if (system("command -v dot >/dev/null 2>&1") != 0)
        cr_skip_test("graphviz's dot is not installed");
    cr_expect_eq(run("dot -Tsvg %s -o %s", tmp_file("g.dot"),
                     tmp_file("g.svg")), 0, "%s", slurp(tmp_file("stderr")));
    cr_expect_eq(run("dot -Tsvg %s -o %s", tmp_file("raw.dot"),
                     tmp_file("raw.svg")), 0, "%s", slurp(tmp_file("stderr")));
    char *svg = slurp(tmp_file("g.svg"));
    cr_expect(strstr(svg, "<svg"), "dot wrote SVG");
    free(svg);
}


Test(cli, graph_of_an_oddly_named_model_is_valid_dot)
{
    /* A path with a quote and a backslash goes into labels as text. */
    cr_assert_eq(run("cp models/seed_encoder.lua '%s/we\"ird\\m.lua'", tmp),
                 0);
    cr_assert_eq(run("%s graph '%s/we\"ird\\m.lua' -D layers=1 "
                     "--after-passes -o %s", dsc(), tmp, tmp_file("w.dot")),
                 0, "%s", slurp(tmp_file("stderr")));
    char *dot = slurp(tmp_file("w.dot"));
    cr_expect(strstr(dot, "we\\\"ird\\\\m.lua"), "quoted in labels: %s", dot);
    free(dot);
    if (system("command -v dot >/dev/null 2>&1") != 0)
        cr_skip_test("graphviz's dot is not installed");
    cr_expect_eq(run("dot -Tsvg %s -o %s", tmp_file("w.dot"),
                     tmp_file("w.svg")), 0, "%s", slurp(tmp_file("stderr")));
}


Test(cli, verbose_prints_one_line_per_pass)
{
    cr_assert_eq(run("%s compile models/seed_encoder.lua -o %s -v", dsc(),
                     tmp_file("m.c")), 0);
    char *err = slurp(tmp_file("stderr"));
    cr_expect_eq(count_of(err, "dsc: fuse-qkv "), 1, "%s", err);
    cr_expect_eq(count_of(err, "dsc: fuse-epilogue "), 1, "%s", err);
    cr_expect_eq(count_of(err, "dsc: dce "), 1, "%s", err);
    cr_expect_eq(count_of(err, "dsc: plan-memory "), 1, "%s", err);
    cr_expect(strstr(err, "fuse-qkv       2 changed, nodes 26 -> 22"), "%s",
              err);
    cr_expect(strstr(err, "fuse-epilogue  6 changed, nodes 22 -> 16"), "%s",
              err);
    /* In order. */
    const char *a = strstr(err, "dsc: fuse-qkv"), *b = strstr(err, "dsc: fuse-ep");
    const char *c = strstr(err, "dsc: dce"), *d = strstr(err, "dsc: plan-memory");
    cr_expect(a && b && c && d && a < b && b < c && c < d, "%s", err);
    free(err);

    cr_assert_eq(run("%s compile models/seed_encoder.lua -o %s -v "
                     "-fno-fuse-qkv -fno-dce -fno-plan-memory", dsc(),
                     tmp_file("m.c")), 0);
    err = slurp(tmp_file("stderr"));
    cr_expect_eq(count_of(err, "dsc: fuse-qkv"), 0, "%s", err);
    cr_expect_eq(count_of(err, "dsc: dce"), 0, "%s", err);
    cr_expect_eq(count_of(err, "dsc: fuse-epilogue "), 1, "%s", err);
    cr_expect_eq(count_of(err, "dsc: no-plan-memory "), 1, "%s", err);
    free(err);

    /* Without -v, nothing about passes. */
    cr_assert_eq(run("%s compile models/seed_encoder.lua -o %s", dsc(),
                     tmp_file("m.c")), 0);
    err = slurp(tmp_file("stderr"));
    cr_expect_eq(count_of(err, "changed"), 0, "%s", err);
    free(err);
}


/* ------------------------------------------------------------------ */
/* 4. The planner                                                       */
/* ------------------------------------------------------------------ */

typedef struct rng {
    uint64_t s;
} rng;

static int rnd(rng *r, int lo, int hi)  /* in [lo, hi] */
{
    return lo + (int)(splitmix(&r->s) % (uint64_t)(hi - lo + 1));
}


static int64_t align64(int64_t n)
{
    return (n + DSC_ALIGN - 1) / DSC_ALIGN * DSC_ALIGN;
}


/* A pick from the pool, biased to recent tensors (chains) but able to
 * reach back (branches, long lives). */
static int pick(rng *r, const int *pool, int n)
{
    if (rnd(r, 0, 9) < 6)
        return pool[rnd(r, n > 4 ? n - 4 : 0, n - 1)];
    return pool[rnd(r, 0, n - 1)];
}


/* A random graph over [s, b, d] inputs: chains and branches of linear,
 * add, relu, gelu, layernorm, softmax and q/k/v attention. */
static graph *random_graph(rng *r)
{
    graph *g = graph_new();
    int pool[512], n = 0, keys = 0;
    int s = rnd(r, 1, 4), b = rnd(r, 1, 3);
    int n_in = rnd(r, 1, 2);
    for (int i = 0; i < n_in; i++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", i);
        pool[n++] = input(g, name, shp(3, s, b, rnd(r, 1, 3) * 8));
    }
    int steps = rnd(r, 1, 30);
    char key[32];
    for (int step = 0; step < steps && n < 480; step++) {
        int t = pick(r, pool, n);
        int d = (int)g->tensors[t].shape.dim[2];
        int kind = rnd(r, 0, 99);
        if (kind < 30) {
            int out = rnd(r, 1, 6) * (rnd(r, 0, 3) ? 8 : 1);
            snprintf(key, sizeof key, "w%d", keys++);
            int w = weight(g, key, shp(2, out, d));
            int bias = -1;
            if (rnd(r, 0, 1)) {
                snprintf(key, sizeof key, "b%d", keys++);
                bias = weight(g, key, shp(1, out));
            }
            pool[n++] = linear(g, t, w, bias);
        } else if (kind < 45) {
            int cand[512], nc = 0;
            for (int i = 0; i < n; i++)
                if (graph_shape_equal(&g->tensors[pool[i]].shape,
                                      &g->tensors[t].shape))
                    cand[nc++] = pool[i];
            pool[n++] = add(g, t, cand[rnd(r, 0, nc - 1)]);
        } else if (kind < 55) {
            pool[n++] = relu(g, t);
        } else if (kind < 60) {
            pool[n++] = gelu(g, t, rnd(r, 0, 1) ? RT_ACT_GELU : RT_ACT_GELU_TANH);
        } else if (kind < 65) {
            pool[n++] = softmax(g, t);
        } else if (kind < 75) {
            snprintf(key, sizeof key, "g%d", keys++);
            int gm = weight(g, key, shp(1, d));
            snprintf(key, sizeof key, "be%d", keys++);
            int be = weight(g, key, shp(1, d));
            pool[n++] = layernorm(g, t, gm, be);
        } else if (kind < 90) {
            /* q, k, v projections of t, then attention. */
            int h = rnd(r, 1, 3), dq = h * rnd(r, 1, 3), dv = h * rnd(r, 1, 3);
            int qkv[3], width[3] = { dq, dq, dv };
            for (int i = 0; i < 3; i++) {
                snprintf(key, sizeof key, "w%d", keys++);
                int w = weight(g, key, shp(2, width[i], d));
                int bias = -1;
                if (rnd(r, 0, 2)) {
                    snprintf(key, sizeof key, "b%d", keys++);
                    bias = weight(g, key, shp(1, width[i]));
                }
                pool[n++] = qkv[i] = linear(g, t, w, bias);
            }
            pool[n++] = attention(g, qkv[0], qkv[1], qkv[2], h);
        } else {
            /* A fan of linears on t, each read by a linear: fuse-qkv food. */
            int fan = rnd(r, 2, 5), outs[5];
            for (int i = 0; i < fan; i++) {
                snprintf(key, sizeof key, "w%d", keys++);
                outs[i] = linear(g, t, weight(g, key, shp(2, rnd(r, 1, 12), d)),
                                 -1);
            }
            for (int i = 0; i < fan; i++) {
                int in = (int)g->tensors[outs[i]].shape.dim[2];
                snprintf(key, sizeof key, "w%d", keys++);
                pool[n++] = linear(g, outs[i], weight(g, key, shp(2, 8, in)),
                                   -1);
            }
        }
    }
    /* The last node's result is an output, and maybe a few others. */
    int last = g->n_nodes ? g->nodes[g->n_nodes - 1].output : -1;
    if (last < 0) {
        pool[n++] = last = relu(g, pool[0]);
    }
    output(g, last, "y0");
    int extra = rnd(r, 0, 2);
    for (int i = 0; i < extra; i++) {
        int t = g->nodes[rnd(r, 0, g->n_nodes - 1)].output;
        if (g->tensors[t].kind != GRAPH_INTERMEDIATE)
            continue;
        char name[16];
        snprintf(name, sizeof name, "y%d", i + 1);
        output(g, t, name);
    }
    verify(g);
    return g;
}


static int elementwise_op(graph_op op)
{
    return op == GRAPH_OP_ADD || op == GRAPH_OP_RELU || op == GRAPH_OP_GELU ||
           op == GRAPH_OP_LAYERNORM || op == GRAPH_OP_SOFTMAX;
}


typedef struct plan_coverage {
    int graphs, in_place, views, shared, tensors;
} plan_coverage;

/* Check plan against liveness computed here from g alone. */
static void check_plan(const graph *g, const memory_plan *plan, int reuse,
                       int id, plan_coverage *cov)
{
    int nt = g->n_tensors;
    int *first = malloc((size_t)nt * sizeof(int));
    int *last = malloc((size_t)nt * sizeof(int));
    char *arena = calloc((size_t)nt, 1);
    int64_t *bytes = calloc((size_t)nt, sizeof(int64_t));
    for (int t = 0; t < nt; t++) {
        const graph_tensor *x = &g->tensors[t];
        arena[t] = x->kind == GRAPH_INTERMEDIATE && x->producer >= 0 &&
                   x->view_of < 0;
        first[t] = last[t] = x->producer;
        bytes[t] = align64(graph_shape_count(&x->shape) * 4);
        cov->views += x->view_of >= 0;
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_inputs; j++) {
            int s = g->nodes[i].inputs[j];
            if (s < 0)
                continue;
            while (g->tensors[s].view_of >= 0)
                s = g->tensors[s].view_of;
            if (arena[s] && i > last[s])
                last[s] = i;
        }

    int64_t no_reuse = 0, top = 0;
    for (int t = 0; t < nt; t++) {
        if (!arena[t]) {
            cr_assert_eq(plan->offset[t], -1, "graph %d: tensor %d (kind %d, "
                         "view_of %d) has an arena offset", id, t,
                         g->tensors[t].kind, g->tensors[t].view_of);
            continue;
        }
        cov->tensors++;
        no_reuse += bytes[t];
        cr_assert_geq(plan->offset[t], 0, "graph %d: tensor %d", id, t);
        cr_assert_eq(plan->offset[t] % DSC_ALIGN, 0, "graph %d: tensor %d at "
                     "%lld", id, t, (long long)plan->offset[t]);
        int64_t end = plan->offset[t] + bytes[t];
        cr_assert_leq(end, plan->arena_bytes, "graph %d: tensor %d ends at "
                      "%lld past the arena %lld", id, t, (long long)end,
                      (long long)plan->arena_bytes);
        top = end > top ? end : top;
    }
    cr_assert_eq(plan->no_reuse_bytes, no_reuse, "graph %d", id);
    cr_assert_eq(plan->arena_bytes, top, "graph %d: the arena is what is used",
                 id);
    cr_assert_geq(plan->arena_bytes, plan->lower_bound_bytes, "graph %d", id);
    cr_assert_leq(plan->arena_bytes, plan->no_reuse_bytes, "graph %d", id);
    if (!reuse)
        cr_assert_eq(plan->arena_bytes, plan->no_reuse_bytes);

    /* Two tensors live together may share bytes only when one continues
     * the other in place: made by an elementwise op reading the other,
     * which dies there, same size, same offset. */
    for (int a = 0; a < nt; a++) {
        if (!arena[a])
            continue;
        for (int b = a + 1; b < nt; b++) {
            if (!arena[b])
                continue;
            int lives = first[a] <= last[b] && first[b] <= last[a];
            int bytes_meet = plan->offset[a] < plan->offset[b] + bytes[b] &&
                             plan->offset[b] < plan->offset[a] + bytes[a];
            if (bytes_meet)
                cov->shared++;
            if (!lives || !bytes_meet)
                continue;
            int in_place = 0;
            const graph_node *na = &g->nodes[first[a]];
            const graph_node *nb = &g->nodes[first[b]];
            for (int j = 0; j < nb->n_inputs; j++)
                in_place |= nb->inputs[j] == a;
            for (int j = 0; j < na->n_inputs; j++)
                in_place |= na->inputs[j] == b;
            int o = first[a] > first[b] ? a : b, s = o == a ? b : a;
            in_place = in_place && reuse &&
                       elementwise_op(g->nodes[first[o]].op) &&
                       last[s] == first[o] && bytes[o] == bytes[s] &&
                       plan->offset[o] == plan->offset[s];
            cr_assert(in_place, "graph %d: tensors %d [%d, %d] and %d [%d, "
                      "%d] are live together but share bytes (offsets %lld, "
                      "%lld; %lld and %lld bytes)", id, a, first[a], last[a],
                      b, first[b], last[b], (long long)plan->offset[a],
                      (long long)plan->offset[b], (long long)bytes[a],
                      (long long)bytes[b]);
            cov->in_place++;
        }
    }

    /* The bound: live bytes at each step, an in-place result counted once
     * with the input it overwrites. */
    int64_t bound = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        int64_t live = 0;
        for (int t = 0; t < nt; t++) {
            if (!arena[t] || first[t] > i || last[t] < i)
                continue;
            int alias = 0;
            if (reuse && first[t] == i && elementwise_op(g->nodes[i].op))
                for (int j = 0; j < g->nodes[i].n_inputs; j++) {
                    int s = g->nodes[i].inputs[j];
                    alias |= s >= 0 && arena[s] && last[s] == i &&
                             plan->offset[s] == plan->offset[t];
                }
            live += alias ? 0 : bytes[t];
        }
        bound = live > bound ? live : bound;
    }
    cr_assert_eq(plan->lower_bound_bytes, bound, "graph %d: lower bound %lld, "
                 "computed here %lld", id, (long long)plan->lower_bound_bytes,
                 (long long)bound);
    cr_assert_geq(plan->arena_bytes, bound);
    free(first);
    free(last);
    free(arena);
    free(bytes);
}


Test(planner, random_graphs_never_share_live_bytes, .timeout = 120)
{
    rng r = { 20240611 };
    plan_coverage cov = {0}, cov_off = {0};
    int fused_graphs = 0, epilogue_graphs = 0, dce_graphs = 0;
    for (int id = 0; id < 2000; id++) {
        graph *g = random_graph(&r);
        int passes = rnd(&r, 0, 7);
        if (passes & 1)
            fused_graphs += run_pass(g, pass_fuse_qkv) > 0;
        if (passes & 2)
            epilogue_graphs += run_pass(g, pass_fuse_epilogue) > 0;
        if (passes & 4)
            dce_graphs += run_pass(g, pass_dce) > 0;
        memory_plan plan;
        dsc_err e;
        cr_assert_eq(pass_plan_memory(g, 1, &plan, &e), 0, "%s", e.msg);
        check_plan(g, &plan, 1, id, &cov);
        memory_plan_free(&plan);
        cr_assert_eq(pass_plan_memory(g, 0, &plan, &e), 0, "%s", e.msg);
        check_plan(g, &plan, 0, id, &cov_off);
        memory_plan_free(&plan);
        cov.graphs++;
        graph_free(g);
    }
    /* The generator reaches what matters. */
    cr_expect_gt(fused_graphs, 200, "fuse-qkv fired in %d graphs", fused_graphs);
    cr_expect_gt(epilogue_graphs, 200, "%d", epilogue_graphs);
    cr_expect_gt(dce_graphs, 100, "%d", dce_graphs);
    cr_expect_gt(cov.views, 500, "%d views", cov.views);
    cr_expect_gt(cov.in_place, 500, "%d in-place pairs", cov.in_place);
    cr_expect_gt(cov.shared, 2000, "%d pairs share bytes", cov.shared);
    cr_expect_eq(cov_off.in_place, 0);
    cr_expect_eq(cov_off.shared, 0, "without reuse nothing shares");
}


static int64_t check_buffers(const plan_buffer *b, int n, const char *what)
{
    int64_t top = 0;
    for (int i = 0; i < n; i++) {
        cr_assert_geq(b[i].offset, 0, "%s: buffer %d", what, i);
        top = b[i].offset + b[i].bytes > top ? b[i].offset + b[i].bytes : top;
        for (int j = i + 1; j < n; j++) {
            int lives = b[i].first <= b[j].last && b[j].first <= b[i].last;
            int meet = b[i].offset < b[j].offset + b[j].bytes &&
                       b[j].offset < b[i].offset + b[i].bytes;
            cr_assert(!(lives && meet), "%s: buffers %d [%d, %d] @%lld+%lld "
                      "and %d [%d, %d] @%lld+%lld overlap", what, i,
                      b[i].first, b[i].last, (long long)b[i].offset,
                      (long long)b[i].bytes, j, b[j].first, b[j].last,
                      (long long)b[j].offset, (long long)b[j].bytes);
        }
    }
    return top;
}


Test(planner, random_interval_sets)
{
    rng r = { 77 };
    plan_buffer b[64];
    int at_bound = 0;
    for (int set = 0; set < 5000; set++) {
        int n = rnd(&r, 1, 48), steps = rnd(&r, 1, 40);
        int64_t sum = 0, biggest = 0;
        for (int i = 0; i < n; i++) {
            int a = rnd(&r, 0, steps - 1), z = rnd(&r, 0, steps - 1);
            b[i] = (plan_buffer){ a < z ? a : z, a < z ? z : a,
                                  rnd(&r, 0, 3) ? 64 * rnd(&r, 1, 40)
                                                : rnd(&r, 1, 5000), -7 };
            sum += b[i].bytes;
            biggest = b[i].bytes > biggest ? b[i].bytes : biggest;
        }
        /* The bound, computed here. */
        int64_t bound = 0;
        for (int s = 0; s < steps; s++) {
            int64_t live = 0;
            for (int i = 0; i < n; i++)
                live += b[i].first <= s && s <= b[i].last ? b[i].bytes : 0;
            bound = live > bound ? live : bound;
        }
        cr_assert_eq(plan_lower_bound(b, n, steps), bound, "set %d", set);
        int64_t arena = plan_buffers(b, n);
        char what[32];
        snprintf(what, sizeof what, "set %d", set);
        int64_t top = check_buffers(b, n, what);
        cr_assert_eq(arena, top, "set %d: arena %lld, used %lld", set,
                     (long long)arena, (long long)top);
        cr_assert_geq(arena, bound, "set %d", set);
        cr_assert_geq(arena, biggest);
        cr_assert_leq(arena, sum, "set %d", set);
        at_bound += arena == bound;

        /* Deterministic: the same set plans the same way again. */
        plan_buffer again[64];
        memcpy(again, b, sizeof(plan_buffer) * (size_t)n);
        for (int i = 0; i < n; i++)
            again[i].offset = -1;
        cr_assert_eq(plan_buffers(again, n), arena);
        for (int i = 0; i < n; i++)
            cr_assert_eq(again[i].offset, b[i].offset);
    }
    /* Greedy by size is usually at the bound on sets like these. */
    cr_expect_gt(at_bound, 2000, "%d of 5000 at the lower bound", at_bound);
    /* Edge cases: nothing, one buffer, all disjoint in time. */
    cr_expect_eq(plan_buffers(b, 0), 0);
    cr_expect_eq(plan_lower_bound(b, 0, 5), 0);
    b[0] = (plan_buffer){ 3, 3, 100, -1 };
    cr_expect_eq(plan_buffers(b, 1), 100);
    cr_expect_eq(b[0].offset, 0);
    for (int i = 0; i < 10; i++)
        b[i] = (plan_buffer){ i, i, 64 * (i + 1), -1 };
    cr_expect_eq(plan_buffers(b, 10), 640);
    for (int i = 0; i < 10; i++)
        cr_expect_eq(b[i].offset, 0);
}


/* TensorFlow Lite Micro's greedy_memory_planner_test, "TestGreedyBasics"
 * and "TestGreedyMedium": sizes and lives as there, offsets as the
 * greedy-by-size, best-fit algorithm must place them. */
Test(planner, tflite_micro_tables)
{
    plan_buffer basics[] = { { 0, 1, 10, -1 }, { 2, 3, 20, -1 } };
    cr_expect_eq(plan_buffers(basics, 2), 20);
    cr_expect_eq(basics[0].offset, 0);
    cr_expect_eq(basics[1].offset, 0);

    /* Largest first: E@0; D@0 (its life misses E's); C above D (40);
     * B meets E and C: above both (70); A meets E and B: the 20-byte
     * hole between them (50). */
    plan_buffer medium[] = {
        { 0, 1, 10, -1 },  /* A */
        { 1, 2, 20, -1 },  /* B */
        { 2, 3, 30, -1 },  /* C */
        { 3, 4, 40, -1 },  /* D */
        { 0, 1, 50, -1 },  /* E */
    };
    cr_expect_eq(plan_buffers(medium, 5), 90);
    int64_t want[] = { 50, 70, 40, 0, 0 };
    for (int i = 0; i < 5; i++)
        cr_expect_eq(medium[i].offset, want[i], "buffer %c at %lld, want %lld",
                     'A' + i, (long long)medium[i].offset,
                     (long long)want[i]);
    check_buffers(medium, 5, "medium");
    /* The optimum is 80, the bound: E, A, B at step 1 fill it exactly.
     * Greedy misses it; this packing (checked here) does not. */
    cr_expect_eq(plan_lower_bound(medium, 5, 5), 80);
    plan_buffer optimal[] = {
        { 0, 1, 10, 50 }, { 1, 2, 20, 60 }, { 2, 3, 30, 0 },
        { 3, 4, 40, 30 }, { 0, 1, 50, 0 },
    };
    cr_expect_eq(check_buffers(optimal, 5, "optimal"), 80);
    check_buffers(basics, 2, "basics");
}


/* A transformer-like table, worked by hand: greedy reaches the optimum,
 * which is the bound at step 4 (B2 + B3 + B4 + B6 = 544).
 *
 *   buffer  bytes  life     placed (largest first)
 *   B2      256    [2, 4]   0
 *   B4      192    [4, 4]   256 (above B2)
 *   B1      128    [1, 1]   0   (meets nothing placed)
 *   B5      128    [5, 6]   0   (meets nothing placed)
 *   B0       64    [0, 2]   256 (meets B1, B2)
 *   B3       64    [3, 5]   448 (meets B2, B4, B5)
 *   B6       32    [0, 6]   512 (meets all)
 */
Test(planner, hand_worked_table)
{
    plan_buffer b[] = {
        { 0, 2, 64, -1 }, { 1, 1, 128, -1 }, { 2, 4, 256, -1 },
        { 3, 5, 64, -1 }, { 4, 4, 192, -1 }, { 5, 6, 128, -1 },
        { 0, 6, 32, -1 },
    };
    cr_expect_eq(plan_lower_bound(b, 7, 7), 544);
    cr_expect_eq(plan_buffers(b, 7), 544);
    int64_t want[] = { 256, 0, 0, 448, 256, 0, 512 };
    for (int i = 0; i < 7; i++)
        cr_expect_eq(b[i].offset, want[i], "B%d at %lld, want %lld", i,
                     (long long)b[i].offset, (long long)want[i]);
    check_buffers(b, 7, "hand");

    /* Buffers alive together stack up; one that meets them both goes on
     * top, as there is no hole below. */
    plan_buffer fit[] = {
        { 0, 9, 100, -1 },  /* X */
        { 0, 9, 64, -1 },   /* Y */
        { 5, 5, 64, -1 },   /* Z */
    };
    /* Placed: X@0, Y@100; Z meets both: no hole, above them: 164. */
    cr_expect_eq(plan_buffers(fit, 3), 228);
    cr_expect_eq(fit[2].offset, 164);

    /* Short lives at different steps reuse the same bytes; a buffer alive
     * throughout goes above everything. */
    plan_buffer holes[] = {
        { 0, 0, 1000, -1 },  /* A: step 0 only */
        { 5, 5, 300, -1 },   /* W1: step 5, reuses A's bytes */
        { 5, 5, 200, -1 },   /* W2 */
        { 0, 0, 128, -1 },   /* H1 */
        { 0, 9, 64, -1 },    /* T */
    };
    /* A@0; W1 meets nothing placed: 0; W2 meets W1: 300; H1 meets A: 1000;
     * T meets A (0..1000), H1 (1000..1128), W1, W2 (0..500): above 1128. */
    cr_expect_eq(plan_buffers(holes, 5), 1192);
    cr_expect_eq(holes[4].offset, 1128);
    check_buffers(holes, 5, "holes");

    /* Buffers that never meet share an offset above a common wall. */
    plan_buffer best[] = {
        { 0, 9, 512, -1 },  /* P */
        { 0, 0, 128, -1 },  /* G1 */
        { 2, 2, 64, -1 },   /* G2 */
        { 0, 9, 64, -1 },   /* Q */
    };
    /* P@0; G1 [0,0] meets P: 512; G2 [2,2] meets P: 512; Q meets P, G1,
     * G2: above 640. */
    cr_expect_eq(plan_buffers(best, 4), 704);
    cr_expect_eq(best[1].offset, 512);
    cr_expect_eq(best[2].offset, 512);
    cr_expect_eq(best[3].offset, 640);
    check_buffers(best, 4, "best");
}


/* Best fit, not first fit: a 64-byte buffer whose life meets two walls
 * goes into the 64-byte hole between them, not the 192-byte hole below.
 * Fillers that die before it make the holes; ties in size keep input
 * order, so F2 and Wb are placed before T.
 *
 *   buffer  bytes  life     placed
 *   F1      192    [0, 0]   0
 *   Wa      100    [0, 9]   192 (above F1)
 *   F2       64    [0, 0]   292 (above F1, Wa)
 *   Wb       64    [0, 9]   356 (above F1, Wa, F2)
 *   T        64    [5, 5]   meets Wa (192..292) and Wb (356..420): holes
 *                           0..192 and 292..356; the tighter one: 292
 */
Test(planner, best_fit_picks_the_tightest_hole)
{
    plan_buffer w[] = {
        { 0, 0, 192, -1 }, { 0, 9, 100, -1 }, { 0, 0, 64, -1 },
        { 0, 9, 64, -1 }, { 5, 5, 64, -1 },
    };
    cr_expect_eq(plan_buffers(w, 5), 420);
    int64_t want[] = { 0, 192, 292, 356, 292 };
    for (int i = 0; i < 5; i++)
        cr_expect_eq(w[i].offset, want[i], "buffer %d at %lld, want %lld", i,
                     (long long)w[i].offset, (long long)want[i]);
    check_buffers(w, 5, "best fit");

    /* A hole that is large enough is used even above the first one. */
    plan_buffer b[] = {
        { 0, 9, 1024, -1 }, { 3, 3, 512, -1 }, { 0, 9, 256, -1 },
        { 6, 6, 192, -1 }, { 3, 6, 64, -1 },
    };
    /*   1024 [0,9] @0; 512 [3,3] @1024; 256 [0,9] @1536;
     *   192 [6,6] meets 1024 and 256 only: the hole 1024..1536: @1024;
     *   64 [3,6] meets all four: no hole below 1792: @1792. */
    cr_expect_eq(plan_buffers(b, 5), 1856);
    int64_t want_b[] = { 0, 1024, 1536, 1024, 1792 };
    for (int i = 0; i < 5; i++)
        cr_expect_eq(b[i].offset, want_b[i], "buffer %d at %lld", i,
                     (long long)b[i].offset);
}
