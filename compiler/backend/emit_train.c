/* emit_train.c — a training graph (forward, then the autodiff pass's
 * backward) as NAME_train_step: straight-line C, one runtime call per node,
 * and torch.optim.Adam's update of each trained weight in the blob, right
 * after the last node that reads the weight.
 *
 * The text goes after NAME_forward's in the same file; the forward half
 * of the step reuses emit_c.c's calls (emit_c_node), and every name comes
 * from emit_c.c's table (backend/emit_names.h): the model's identifier,
 * inputs as in_x, the loss as out_loss, weights and their gradients at
 * the W_ macros NAME_forward's part of the file defines.  Outside text
 * reaches the text only through util/ctext. */
#include "backend/emit_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/emit_c.h"
#include "backend/emit_names.h"
#include "dsc_runtime.h"
#include "util/strbuf.h"


static int64_t count_of(const graph *g, int t)
{
    return graph_shape_count(&g->tensors[t].shape);
}


static int64_t last_dim(const graph *g, int t)
{
    const graph_shape *s = &g->tensors[t].shape;
    return s->rank ? s->dim[s->rank - 1] : 1;
}


/* Shorter to write in the calls below. */
static const char *flt(float v, char *buf, size_t len)
{
    return emit_float_literal(v, buf, len);
}


/* "static const rt_attention_shape s = {...};" for q, k, v, out. */
static void attention_shape(strbuf *sb, const graph *g, const graph_node *n,
                            int q, int k, int v, int64_t ldo)
{
    const graph_shape *qs = &g->tensors[q].shape;
    const graph_shape *vs = &g->tensors[v].shape;
    long long seq = n->attrs.batch_first ? qs->dim[1] : qs->dim[0];
    long long batch = n->attrs.batch_first ? qs->dim[0] : qs->dim[1];
    int h = n->attrs.heads;
    char f[48];
    sb_printf(sb, "        static const rt_attention_shape s = {\n"
              "            .seq = %lld, .batch = %lld, .heads = %d, "
              ".head_dim_qk = %lld, .head_dim_v = %lld,\n"
              "            .seq_step = %lld, .batch_step = %lld,\n"
              "            .ldq = %lld, .ldk = %lld, .ldv = %lld, "
              ".ldo = %lld,\n"
              "            .scale = %s, .causal = %d };\n",
              seq, batch, h, (long long)qs->dim[2] / h,
              (long long)vs->dim[2] / h, n->attrs.batch_first ? 1 : batch,
              n->attrs.batch_first ? seq : 1,
              (long long)graph_row_stride(g, q),
              (long long)graph_row_stride(g, k),
              (long long)graph_row_stride(g, v), (long long)ldo,
              flt(n->attrs.scale, f, sizeof f), n->attrs.causal);
}


/* The bias gradient the dropout_relu_grad node drg sums as it makes its
 * result (rt_dropout_relu_grad_bias: one pass, not two): the first bias
 * gradient node reading that contiguous result, if it does not add to an
 * earlier one.  Its result is in the gradient blob, not the arena, so
 * writing it at drg overwrites nothing; its Adam comes later (the node
 * reads the bias).  NULL if none. */
static const graph_node *fused_bias_grad(const graph *g,
                                         const graph_node *drg)
{
    if (graph_row_stride(g, drg->output) != last_dim(g, drg->output))
        return NULL;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *b = &g->nodes[i];
        if (b->op == GRAPH_OP_BIAS_GRAD && b->inputs[0] == drg->output)
            return !b->attrs.accumulate &&
                   g->tensors[b->output].kind == GRAPH_GRAD ? b : NULL;
    }
    return NULL;
}


/* One training node's call; 0, or -1 for an op this emitter lacks. */
static int emit_train_node(strbuf *sb, const graph *g, const graph_node *n,
                           char *const *nm, int packing)
{
    const int *in = n->inputs;
    const char *y = nm[n->output];
    char f[48];
    long long rows, cols;
    sb_append(sb, "    /* ");
    emit_node_locs(sb, n);
    sb_printf(sb, " %s */\n", graph_op_name(n->op));
    switch (n->op) {
    case GRAPH_OP_DROPOUT:
    case GRAPH_OP_DROPOUT_GRAD:
        sb_printf(sb, "    rt_dropout(ctx, %s, %s, %lld, %s, "
                  "rt_dropout_key(state, %d));\n", y, nm[in[0]],
                  (long long)count_of(g, n->output),
                  flt(n->attrs.p, f, sizeof f), n->attrs.stream);
        return 0;
    case GRAPH_OP_CROSS_ENTROPY:
    case GRAPH_OP_CROSS_ENTROPY_GRAD:
        cols = last_dim(g, in[0]);
        sb_printf(sb, "    {\n        int rc = rt_cross_entropy%s(ctx, %s, %s, "
                  "%s, %lld, %lld);\n        if (rc)  /* DSC_EBADTOKEN, "
                  "DSC_ENOMEM */\n            return rc;\n    }\n",
                  n->op == GRAPH_OP_CROSS_ENTROPY ? "" : "_grad", y,
                  nm[in[0]], nm[in[1]],
                  (long long)(count_of(g, in[0]) / cols), cols);
        return 0;
    case GRAPH_OP_RELU_GRAD:
        sb_printf(sb, "    rt_relu_grad(ctx, %s, %s, %s, %s, %lld);\n", y,
                  nm[in[0]], nm[in[1]],
                  n->n_inputs > 2 && in[2] >= 0 ? nm[in[2]] : "NULL",
                  (long long)count_of(g, n->output));
        return 0;
    case GRAPH_OP_DROPOUT_RELU_GRAD: {
        const graph_node *b = fused_bias_grad(g, n);
        if (b) {
            cols = last_dim(g, n->output);
            sb_printf(sb, "    rt_dropout_relu_grad_bias(ctx, %s, %s, %s, "
                      "%lld, %lld, %s, %s);\n", y, nm[in[0]], nm[in[1]],
                      (long long)(count_of(g, n->output) / cols), cols,
                      flt(n->attrs.p, f, sizeof f), nm[b->output]);
            return 0;
        }
        sb_printf(sb, "    rt_dropout_relu_grad(ctx, %s, %s, %s, %lld, %s);\n",
                  y, nm[in[0]], nm[in[1]], (long long)count_of(g, n->output),
                  flt(n->attrs.p, f, sizeof f));
        return 0;
    }
    case GRAPH_OP_GELU_GRAD:
        sb_printf(sb, "    rt_gelu_grad(ctx, %s, %s, %s, %lld, %s);\n", y,
                  nm[in[0]], nm[in[1]], (long long)count_of(g, n->output),
                  n->attrs.act == RT_ACT_GELU_TANH ? "RT_ACT_GELU_TANH"
                                                   : "RT_ACT_GELU");
        return 0;
    case GRAPH_OP_SOFTMAX_GRAD:
        cols = last_dim(g, n->output);
        sb_printf(sb, "    rt_softmax_grad(ctx, %s, %s, %s, %lld, %lld);\n",
                  y, nm[in[0]], nm[in[1]],
                  (long long)(count_of(g, n->output) / cols), cols);
        return 0;
    case GRAPH_OP_LINEAR_GRAD_X: {
        const graph_shape *w = &g->tensors[in[1]].shape;
        rows = count_of(g, in[0]) / w->dim[0];
        sb_printf(sb, "    rt_linear_grad_x(ctx, %s, %s, %lld, %s, %lld, "
                  "%lld, %lld, scratch);\n", y, nm[in[0]],
                  (long long)graph_row_stride(g, in[0]), nm[in[1]], rows,
                  (long long)w->dim[0], (long long)w->dim[1]);
        return 0;
    }
    case GRAPH_OP_LINEAR_GRAD_W: {
        const graph_shape *w = &g->tensors[in[2]].shape;
        rows = count_of(g, in[0]) / w->dim[0];
        sb_printf(sb, "    rt_linear_grad_w(ctx, %s, %d, %s, %lld, %s, %lld, "
                  "%lld, %lld, %lld, %d, scratch);\n", y, packing, nm[in[0]],
                  (long long)graph_row_stride(g, in[0]), nm[in[1]],
                  (long long)graph_row_stride(g, in[1]), rows,
                  (long long)w->dim[0], (long long)w->dim[1],
                  n->attrs.accumulate);
        return 0;
    }
    case GRAPH_OP_BIAS_GRAD: {
        int p = g->tensors[in[0]].producer;
        if (p >= 0 && g->nodes[p].op == GRAPH_OP_DROPOUT_RELU_GRAD &&
            fused_bias_grad(g, &g->nodes[p]) == n) {
            sb_append(sb, "    /* (summed by rt_dropout_relu_grad_bias "
                      "above) */\n");
            return 0;
        }
        cols = count_of(g, in[1]);
        sb_printf(sb, "    rt_bias_grad(ctx, %s, %s, %lld, %lld, %lld, %d);\n",
                  y, nm[in[0]], (long long)graph_row_stride(g, in[0]),
                  (long long)(count_of(g, in[0]) / cols), cols,
                  n->attrs.accumulate);
        return 0;
    }
    case GRAPH_OP_LAYERNORM_GRAD_X:
        cols = last_dim(g, in[1]);
        sb_printf(sb, "    rt_layernorm_grad_x(ctx, %s, %s, %s, %s, %lld, "
                  "%lld, %s);\n", y, nm[in[0]], nm[in[1]], nm[in[2]],
                  (long long)(count_of(g, in[1]) / cols), cols,
                  flt(n->attrs.eps, f, sizeof f));
        return 0;
    case GRAPH_OP_LAYERNORM_GRAD_GAMMA:
        cols = last_dim(g, in[1]);
        sb_printf(sb, "    if (rt_layernorm_grad_gamma(ctx, %s, %s, %s, %lld, "
                  "%lld, %s, %d))\n        return DSC_ENOMEM;\n", y, nm[in[0]], nm[in[1]],
                  (long long)(count_of(g, in[1]) / cols), cols,
                  flt(n->attrs.eps, f, sizeof f), n->attrs.accumulate);
        return 0;
    case GRAPH_OP_ATTENTION:  /* with dropout on its weights */
        sb_append(sb, "    {\n");
        attention_shape(sb, g, n, in[0], in[1], in[2],
                        last_dim(g, n->output));
        sb_printf(sb, "        if (rt_attention_train(ctx, %s, %s, %s, %s, &s, "
                  "%s, rt_dropout_key(state, %d)))\n            return "
                  "DSC_ENOMEM;\n    }\n", y, nm[in[0]],
                  nm[in[1]], nm[in[2]], flt(n->attrs.p, f, sizeof f),
                  n->attrs.stream);
        return 0;
    case GRAPH_OP_ATTENTION_GRAD: {
        int64_t wq = last_dim(g, in[1]), wk = last_dim(g, in[2]);
        sb_append(sb, "    {\n");
        attention_shape(sb, g, n, in[1], in[2], in[3],
                        graph_row_stride(g, in[0]));
        sb_printf(sb, "        if (rt_attention_grad(ctx, %s, %s + %lld, %s + "
                  "%lld, %lld, %s, %s, %s, %s, &s, %s, "
                  "rt_dropout_key(state, %d)))\n            return "
                  "DSC_ENOMEM;\n    }\n", y, y,
                  (long long)wq, y, (long long)(wq + wk),
                  (long long)last_dim(g, n->output), nm[in[0]], nm[in[1]],
                  nm[in[2]], nm[in[3]], flt(n->attrs.p, f, sizeof f),
                  n->attrs.stream);
        return 0;
    }
    case GRAPH_OP_EMBEDDING_GRAD: {
        const graph_shape *t = &g->tensors[in[2]].shape;
        sb_printf(sb, "    if (rt_embedding_grad(ctx, %s, %s, %s, %lld, %lld, "
                  "%lld, %d))\n        return DSC_EBADTOKEN;\n", y, nm[in[0]],
                  nm[in[1]], (long long)count_of(g, in[1]),
                  (long long)t->dim[0], (long long)t->dim[1],
                  n->attrs.accumulate);
        return 0;
    }
    default:
        return -1;
    }
}


/* Ops only a train step has (emit_c.c leaves them out). */
static int train_op(graph_op op)
{
    switch (op) {
    case GRAPH_OP_DROPOUT: case GRAPH_OP_CROSS_ENTROPY:
    case GRAPH_OP_CROSS_ENTROPY_GRAD: case GRAPH_OP_DROPOUT_GRAD:
    case GRAPH_OP_RELU_GRAD: case GRAPH_OP_SOFTMAX_GRAD:
    case GRAPH_OP_DROPOUT_RELU_GRAD:
    case GRAPH_OP_GELU_GRAD: case GRAPH_OP_LINEAR_GRAD_X: case GRAPH_OP_LINEAR_GRAD_W:
    case GRAPH_OP_BIAS_GRAD: case GRAPH_OP_LAYERNORM_GRAD_X:
    case GRAPH_OP_LAYERNORM_GRAD_GAMMA: case GRAPH_OP_ATTENTION_GRAD:
    case GRAPH_OP_EMBEDDING_GRAD:
        return 1;
    default:
        return 0;
    }
}


int64_t emit_train_scratch_floats(const graph *g)
{
    int64_t most = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->op != GRAPH_OP_LINEAR_GRAD_X && n->op != GRAPH_OP_LINEAR_GRAD_W)
            continue;
        const graph_shape *w = &g->tensors[n->inputs[n->op ==
                                           GRAPH_OP_LINEAR_GRAD_X ? 1 : 2]].shape;
        int64_t rows = count_of(g, n->inputs[0]) / w->dim[0];
        int64_t s = rt_linear_grad_scratch_floats(rows, w->dim[0], w->dim[1]);
        most = s > most ? s : most;
    }
    return most;
}


int64_t emit_train_arena_bytes(const graph *g, const memory_plan *plan)
{
    int64_t a = (plan->arena_bytes + DSC_ALIGN - 1) / DSC_ALIGN * DSC_ALIGN;
    return a + emit_train_scratch_floats(g) * 4;
}


int emit_train_ranges(const graph *g, const weight_layout *w,
                      int64_t *first, int64_t *count, int max, dsc_err *err)
{
    int n = 0;
    for (int e = 0; e < w->n_entries; e++) {
        const weight_entry *we = &w->entries[e];
        const graph_tensor *t = &g->tensors[we->tensor];
        int64_t row = graph_shape_count(&t->shape) / t->shape.dim[0];
        int64_t at = we->offset;
        for (int k = 0; we->packed_linear && k < t->weight.n_parts; k++)
            if (!t->weight.part[k].key)
                return err_set(err, "error: weight '%s': a stacked linear "
                               "weight with rows of zeros cannot be trained",
                               t->name);
        for (int k = 0; k < t->weight.n_parts; k++) {
            const graph_weight_part *p = &t->weight.part[k];
            /* a packed weight's header is not trained */
            if (we->packed_linear && k == 0)
                at += RT_LINEAR_HEADER_FLOATS;
            int64_t len = we->packed_linear
                ? we->floats - RT_LINEAR_HEADER_FLOATS : p->rows * row;
            if (p->key) {
                if (n > 0 && first[n - 1] + count[n - 1] == at)
                    count[n - 1] += len;
                else if (n == max)
                    return err_set(err, "error: too many weight ranges");
                else {
                    first[n] = at;
                    count[n++] = len;
                }
            }
            at += len;
            if (we->packed_linear)
                break;
        }
    }
    return n;
}


/* The loss: the training graph's one output (pass_autodiff makes it). */
static int loss_tensor(const graph *g)
{
    int found = -1;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_OUTPUT) {
            if (found >= 0)
                return -1;
            found = t;
        }
    return found;
}


/* "int NAME_train_step(rt_ctx *ctx, float *w, float *state, <in_x...>,
 *  float *out_loss, void *arena)": parameters named as NAME_forward's. */
static void train_signature(strbuf *sb, const graph *g, const emit_names *nm,
                            int loss)
{
    sb_printf(sb, "int %s_train_step(rt_ctx *ctx, float *w, float *state",
              nm->ident);
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_INPUT)
            sb_printf(sb, ", const %s *%s", g->tensors[t].dtype == GRAPH_I32
                      ? "int32_t" : "float", nm->tensor[t]);
    sb_printf(sb, ", float *%s, void *arena)", nm->tensor[loss]);
}


int emit_train_check(const model *m, dsc_err *err)
{
    const graph *g = m->graph;
    if (emit_check(m, NULL, err))
        return -1;
    if (loss_tensor(g) < 0)
        return err_set(err, "%s: error: a training graph has one output, "
                       "the loss", m->path);
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        int eps = n->op == GRAPH_OP_LAYERNORM_GRAD_X ||
                  n->op == GRAPH_OP_LAYERNORM_GRAD_GAMMA;
        int scale = n->op == GRAPH_OP_ATTENTION_GRAD;
        int p = n->op == GRAPH_OP_DROPOUT || n->op == GRAPH_OP_DROPOUT_GRAD ||
                n->op == GRAPH_OP_DROPOUT_RELU_GRAD ||
                n->op == GRAPH_OP_ATTENTION || scale;
        if ((eps && emit_check_constant(m, n, "eps", n->attrs.eps, err)) ||
            (scale && emit_check_constant(m, n, "scale", n->attrs.scale,
                                          err)) ||
            (p && emit_check_constant(m, n, "p", n->attrs.p, err)))
            return -1;
        if (g->tensors[n->output].kind == GRAPH_GRAD) {
            int wt = n->inputs[n->n_inputs - 1];
            if (wt < 0 || g->tensors[wt].kind != GRAPH_WEIGHT)
                return err_set(err, "%s:%d: error: %s makes a weight's "
                               "gradient but reads no weight last",
                               m->path, n->user_loc.line,
                               graph_op_name(n->op));
        }
    }
    return 0;
}


/* torch.optim.Adam on the trained ranges of weight entry e. */
static int emit_adam(strbuf *sb, const graph *g, const weight_layout *w,
                     int e, int64_t *first, int64_t *count, int max,
                     dsc_err *err)
{
    weight_layout one = *w;
    one.entries = &w->entries[e];
    one.n_entries = 1;
    int n = emit_train_ranges(g, &one, first, count, max, err);
    if (n < 0)
        return -1;
    /* No name in the comment: names are the model's text (util/ctext). */
    if (n > 0)
        sb_append(sb, "    /* torch.optim.Adam on the weight read last */\n");
    for (int r = 0; r < n; r++)
        sb_printf(sb, "    rt_adam(ctx, w, state, %lld, %lld);\n",
                  (long long)first[r], (long long)count[r]);
    return 0;
}


char *emit_train_source(const model *m, const memory_plan *plan,
                        const weight_layout *w, dsc_err *err)
{
    int *last_reader = NULL;
    const graph *g = m->graph;
    emit_names nm;
    strbuf sb = {0};
    char shape[96];
    enum { MAX_RANGES = 4096 };
    int64_t *first = NULL, *count = NULL;
    if (emit_train_check(m, err))
        return NULL;
    if (emit_names_make(&nm, m, w)) {
        emit_names_free(&nm, g, w);
        err_set(err, "error: out of memory generating the train step");
        return NULL;
    }
    first = malloc(MAX_RANGES * sizeof *first);
    count = malloc(MAX_RANGES * sizeof *count);
    if (!first || !count) {
        err_set(err, "error: out of memory generating the train step");
        goto fail;
    }
    int n_ranges = emit_train_ranges(g, w, first, count, MAX_RANGES, err);
    if (n_ranges < 0)
        goto fail;
    int loss = loss_tensor(g);
    int64_t arena = (plan->arena_bytes + DSC_ALIGN - 1) / DSC_ALIGN *
                    DSC_ALIGN;
    sb_printf(&sb, "\n/* One step of training: forward, backward (%d nodes "
              "in all), Adam.\n * Arena: %lld bytes planned (lower bound "
              "%lld, without reuse %lld) + %lld of GEMM scratch. */\n",
              g->n_nodes, (long long)plan->arena_bytes,
              (long long)plan->lower_bound_bytes,
              (long long)plan->no_reuse_bytes,
              (long long)emit_train_scratch_floats(g) * 4);
    train_signature(&sb, g, &nm, loss);
    sb_printf(&sb, "\n{\n    char *a = arena;\n    float *gw = "
              "rt_train_grad(state);\n    float *scratch = (float *)(a + "
              "%lld);\n", (long long)arena);
    for (int i = 0; i < g->n_nodes; i++) {
        int t = g->nodes[i].output;
        if (plan->offset[t] < 0)
            continue;
        sb_printf(&sb, "    float *%s = (float *)(a + %lld);  /* %s */\n",
                  nm.tensor[t], (long long)plan->offset[t],
                  graph_shape_str(&g->tensors[t].shape, shape, sizeof shape));
    }
    sb_append(&sb, "    (void)a; (void)gw; (void)scratch;\n"
              "    rt_train_begin(state);\n\n");
    /* Each weight's Adam update right after the last node that reads it
     * (its last gradient node reads it last of all): its gradient and the
     * weight are still in cache, which halves the update's memory
     * traffic.  Nothing reads a weight after that node. */
    last_reader = malloc((size_t)(w->n_entries + 1) * sizeof *last_reader);
    if (!last_reader) {
        err_set(err, "error: out of memory generating the train step");
        goto fail;
    }
    for (int e = 0; e < w->n_entries; e++)
        last_reader[e] = -1;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int t = g->nodes[i].inputs[k];
            if (t >= 0 && w->entry_of[t] >= 0)
                last_reader[w->entry_of[t]] = i;
        }
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        int own = train_op(n->op) ||
                  (n->op == GRAPH_OP_ATTENTION && n->attrs.p > 0);
        if (!own) {
            emit_c_node(&sb, g, n, nm.tensor);
        } else if (emit_train_node(&sb, g, n, nm.tensor, w->packing)) {
            err_set(err, "%s:%d: error: %s cannot be emitted in a train step",
                    m->path, n->user_loc.line, graph_op_name(n->op));
            goto fail;
        }
        for (int e = 0; e < w->n_entries; e++)
            if (last_reader[e] == i &&
                emit_adam(&sb, g, w, e, first, count, MAX_RANGES, err))
                goto fail;
    }
    for (int e = 0; e < w->n_entries; e++)
        if (last_reader[e] < 0 &&
            emit_adam(&sb, g, w, e, first, count, MAX_RANGES, err))
            goto fail;
    sb_append(&sb, "    return DSC_OK;\n}\n\n");
    sb_printf(&sb, "/* %s_train_step behind one signature: io holds the "
              "inputs. */\nint %s_train_step_io(rt_ctx *ctx, float *w, "
              "float *state, void *const *io, float *%s, void *arena)\n{\n"
              "    return %s_train_step(ctx, w, state", nm.ident, nm.ident,
              nm.tensor[loss], nm.ident);
    int k = 0;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_INPUT)
            sb_printf(&sb, ", (const %s *)io[%d]", g->tensors[t].dtype ==
                      GRAPH_I32 ? "int32_t" : "float", k++);
    sb_printf(&sb, ", %s, arena);\n}\n", nm.tensor[loss]);
    emit_names_free(&nm, g, w);
    free(first);
    free(count);
    free(last_reader);
    char *text = sb_take(&sb);
    if (!text)
        err_set(err, "error: out of memory generating the train step");
    return text;
fail:
    emit_names_free(&nm, g, w);
    free(first);
    free(count);
    free(last_reader);
    sb_free(&sb);
    return NULL;
}


char *emit_train_header(const model *m, const memory_plan *plan,
                        const weight_layout *w)
{
    const graph *g = m->graph;
    emit_names nm;
    strbuf sb = {0};
    int loss = loss_tensor(g);
    if (loss < 0 || emit_train_check(m, NULL))
        return NULL;
    if (emit_names_make(&nm, m, w)) {
        emit_names_free(&nm, g, w);
        return NULL;
    }
    sb_printf(&sb, "\n/* Training (dsc train): the state (rt_train_init: "
              "Adam's moments and the\n * gradients) and the arena a train "
              "step needs. */\n#define %s_STATE_FLOATS %lld\n"
              "#define %s_TRAIN_ARENA_BYTES %lld\n", nm.upper,
              (long long)rt_train_state_floats(w->total_floats), nm.upper,
              (long long)emit_train_arena_bytes(g, plan));
    sb_append(&sb, "/* Forward, backward and one Adam step on w; *out_loss "
              "gets the loss before\n * the step.  DSC_OK, DSC_EBADTOKEN or "
              "DSC_ENOMEM. */\n");
    train_signature(&sb, g, &nm, loss);
    sb_printf(&sb, ";\nint %s_train_step_io(rt_ctx *ctx, float *w, float "
              "*state, void *const *io, float *%s, void *arena);\n",
              nm.ident, nm.tensor[loss]);
    emit_names_free(&nm, g, w);
    return sb_take(&sb);
}


const char *emit_train_entry_name(const model *m, char *buf, int len)
{
    char ident[CTEXT_MODEL_NAME_MAX + 1];
    ctext_model_name(m->name, strlen(m->name), ident);
    snprintf(buf, (size_t)len, "%s_train_step_io", ident);
    return buf;
}
