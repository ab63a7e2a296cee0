/* emit_train.c — a training graph (forward, then the autodiff pass's
 * backward) as NAME_train_step: straight-line C, one runtime call per node,
 * then torch.optim.Adam's update of every trained weight in the blob.
 *
 * The text goes after NAME_forward's in the same file; the forward half
 * of the step reuses emit_c.c's calls (emit_c_node). */
#include "backend/emit_train.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/emit_c.h"
#include "dsc_runtime.h"
#include "util/strbuf.h"


static char *dup_text(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}


static void free_names(char **names, int n)
{
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}


/* The blob entry of the weight whose gradient node i makes (its last
 * input). */
static int grad_entry(const graph *g, const weight_layout *w, int t)
{
    const graph_node *n = &g->nodes[g->tensors[t].producer];
    return w->entry_of[n->inputs[n->n_inputs - 1]];
}


/* A C expression per tensor: API names, weights and gradients at their
 * blob offsets, arena tensors by op and index, views off their base. */
static char **make_names(const graph *g, const weight_layout *w)
{
    char **nm = calloc((size_t)g->n_tensors + 1, sizeof *nm);
    char buf[256];
    if (!nm)
        return NULL;
    for (int t = 0; t < g->n_tensors; t++) {
        const graph_tensor *x = &g->tensors[t];
        if (x->view_of >= 0)
            continue;
        if (x->kind == GRAPH_INPUT || x->kind == GRAPH_OUTPUT)
            snprintf(buf, sizeof buf, "%s", x->name);
        else if (x->kind == GRAPH_WEIGHT && w->entry_of[t] >= 0)
            snprintf(buf, sizeof buf, "(w + %lld)",
                     (long long)w->entries[w->entry_of[t]].offset);
        else if (x->kind == GRAPH_GRAD && x->producer >= 0)
            snprintf(buf, sizeof buf, "(gw + %lld)",
                     (long long)w->entries[grad_entry(g, w, t)].offset);
        else if (x->producer >= 0)
            snprintf(buf, sizeof buf, "%s_%d_",
                     graph_op_name(g->nodes[x->producer].op), t);
        else
            snprintf(buf, sizeof buf, "NULL");
        if (!(nm[t] = dup_text(buf)))
            goto fail;
    }
    for (int t = 0; t < g->n_tensors; t++) {
        if (g->tensors[t].view_of < 0)
            continue;
        int64_t col = 0;
        int base = t;
        for (; g->tensors[base].view_of >= 0; base = g->tensors[base].view_of)
            col += g->tensors[base].view_col;
        snprintf(buf, sizeof buf, "(%s + %lld)", nm[base], (long long)col);
        if (!(nm[t] = dup_text(buf)))
            goto fail;
    }
    return nm;
fail:
    free_names(nm, g->n_tensors);
    return NULL;
}


static int64_t count_of(const graph *g, int t)
{
    return graph_shape_count(&g->tensors[t].shape);
}


static int64_t last_dim(const graph *g, int t)
{
    const graph_shape *s = &g->tensors[t].shape;
    return s->rank ? s->dim[s->rank - 1] : 1;
}


static const char *flt(float v, char *buf, size_t len)
{
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, len, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v)
            break;
    }
    if (!strpbrk(buf, ".en"))
        strncat(buf, ".0", len - strlen(buf) - 1);
    strncat(buf, "f", len - strlen(buf) - 1);
    return buf;
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


/* One training node's call; 0, or -1 for an op this emitter lacks. */
static int emit_train_node(strbuf *sb, const graph *g, const graph_node *n,
                           char *const *nm, int packing)
{
    const int *in = n->inputs;
    const char *y = nm[n->output];
    char f[48];
    long long rows, cols;
    if (n->loc.file == n->user_loc.file)
        sb_printf(sb, "    /* %s:%d %s */\n", n->loc.file, n->loc.line,
                  graph_op_name(n->op));
    else
        sb_printf(sb, "    /* %s:%d (%s:%d) %s */\n", n->user_loc.file,
                  n->user_loc.line, n->loc.file, n->loc.line,
                  graph_op_name(n->op));
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
        sb_printf(sb, "    if (rt_cross_entropy%s(ctx, %s, %s, %s, %lld, "
                  "%lld))\n        return DSC_EBADTOKEN;\n",
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
    case GRAPH_OP_BIAS_GRAD:
        cols = count_of(g, in[1]);
        sb_printf(sb, "    rt_bias_grad(ctx, %s, %s, %lld, %lld, %lld, %d);\n",
                  y, nm[in[0]], (long long)graph_row_stride(g, in[0]),
                  (long long)(count_of(g, in[0]) / cols), cols,
                  n->attrs.accumulate);
        return 0;
    case GRAPH_OP_LAYERNORM_GRAD_X:
        cols = last_dim(g, in[1]);
        sb_printf(sb, "    rt_layernorm_grad_x(ctx, %s, %s, %s, %s, %lld, "
                  "%lld, %s);\n", y, nm[in[0]], nm[in[1]], nm[in[2]],
                  (long long)(count_of(g, in[1]) / cols), cols,
                  flt(n->attrs.eps, f, sizeof f));
        return 0;
    case GRAPH_OP_LAYERNORM_GRAD_GAMMA:
        cols = last_dim(g, in[1]);
        sb_printf(sb, "    rt_layernorm_grad_gamma(ctx, %s, %s, %s, %lld, "
                  "%lld, %s, %d);\n", y, nm[in[0]], nm[in[1]],
                  (long long)(count_of(g, in[1]) / cols), cols,
                  flt(n->attrs.eps, f, sizeof f), n->attrs.accumulate);
        return 0;
    case GRAPH_OP_ATTENTION:  /* with dropout on its weights */
        sb_append(sb, "    {\n");
        attention_shape(sb, g, n, in[0], in[1], in[2],
                        last_dim(g, n->output));
        sb_printf(sb, "        rt_attention_train(ctx, %s, %s, %s, %s, &s, "
                  "%s, rt_dropout_key(state, %d));\n    }\n", y, nm[in[0]],
                  nm[in[1]], nm[in[2]], flt(n->attrs.p, f, sizeof f),
                  n->attrs.stream);
        return 0;
    case GRAPH_OP_ATTENTION_GRAD: {
        int64_t wq = last_dim(g, in[1]), wk = last_dim(g, in[2]);
        sb_append(sb, "    {\n");
        attention_shape(sb, g, n, in[1], in[2], in[3],
                        graph_row_stride(g, in[0]));
        sb_printf(sb, "        rt_attention_grad(ctx, %s, %s + %lld, %s + "
                  "%lld, %lld, %s, %s, %s, %s, &s, %s, "
                  "rt_dropout_key(state, %d));\n    }\n", y, y,
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


static void train_signature(strbuf *sb, const model *m)
{
    const graph *g = m->graph;
    sb_printf(sb, "int %s_train_step(rt_ctx *ctx, float *w, float *state",
              m->name);
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_INPUT)
            sb_printf(sb, ", const %s *%s", g->tensors[t].dtype == GRAPH_I32
                      ? "int32_t" : "float", g->tensors[t].name);
    sb_append(sb, ", float *loss, void *arena)");
}


char *emit_train_source(const model *m, const memory_plan *plan,
                        const weight_layout *w, dsc_err *err)
{
    const graph *g = m->graph;
    char **nm = make_names(g, w);
    strbuf sb = {0};
    char shape[96];
    enum { MAX_RANGES = 4096 };
    int64_t *first = malloc(MAX_RANGES * sizeof *first);
    int64_t *count = malloc(MAX_RANGES * sizeof *count);
    if (!nm || !first || !count) {
        err_set(err, "error: out of memory generating the train step");
        goto fail;
    }
    int n_ranges = emit_train_ranges(g, w, first, count, MAX_RANGES, err);
    if (n_ranges < 0)
        goto fail;
    int64_t arena = (plan->arena_bytes + DSC_ALIGN - 1) / DSC_ALIGN *
                    DSC_ALIGN;
    sb_printf(&sb, "\n/* One step of training: forward, backward (%d nodes "
              "in all), Adam.\n * Arena: %lld bytes planned (lower bound "
              "%lld, without reuse %lld) + %lld of GEMM scratch. */\n",
              g->n_nodes, (long long)plan->arena_bytes,
              (long long)plan->lower_bound_bytes,
              (long long)plan->no_reuse_bytes,
              (long long)emit_train_scratch_floats(g) * 4);
    train_signature(&sb, m);
    sb_printf(&sb, "\n{\n    char *a = arena;\n    float *gw = "
              "rt_train_grad(state);\n    float *scratch = (float *)(a + "
              "%lld);\n", (long long)arena);
    for (int i = 0; i < g->n_nodes; i++) {
        int t = g->nodes[i].output;
        if (plan->offset[t] < 0)
            continue;
        sb_printf(&sb, "    float *%s = (float *)(a + %lld);  /* %s */\n",
                  nm[t], (long long)plan->offset[t],
                  graph_shape_str(&g->tensors[t].shape, shape, sizeof shape));
    }
    sb_append(&sb, "    (void)a; (void)gw; (void)scratch;\n"
              "    rt_train_begin(state);\n\n");
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        int own = train_op(n->op) ||
                  (n->op == GRAPH_OP_ATTENTION && n->attrs.p > 0);
        if (!own) {
            emit_c_node(&sb, g, n, nm);
        } else if (emit_train_node(&sb, g, n, nm, w->packing)) {
            err_set(err, "%s:%d: error: %s cannot be emitted in a train step",
                    n->user_loc.file, n->user_loc.line, graph_op_name(n->op));
            goto fail;
        }
    }
    sb_append(&sb, "\n    /* torch.optim.Adam on every trained weight */\n");
    for (int r = 0; r < n_ranges; r++)
        sb_printf(&sb, "    rt_adam(ctx, w, state, %lld, %lld);\n",
                  (long long)first[r], (long long)count[r]);
    sb_append(&sb, "    return DSC_OK;\n}\n\n");
    sb_printf(&sb, "/* %s_train_step behind one signature: io holds the "
              "inputs. */\nint %s_train_step_io(rt_ctx *ctx, float *w, "
              "float *state, void *const *io, float *loss, void *arena)\n{\n"
              "    return %s_train_step(ctx, w, state", m->name, m->name,
              m->name);
    int k = 0;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_INPUT)
            sb_printf(&sb, ", (const %s *)io[%d]", g->tensors[t].dtype ==
                      GRAPH_I32 ? "int32_t" : "float", k++);
    sb_append(&sb, ", loss, arena);\n}\n");
    free_names(nm, g->n_tensors);
    free(first);
    free(count);
    char *text = sb_take(&sb);
    if (!text)
        err_set(err, "error: out of memory generating the train step");
    return text;
fail:
    free_names(nm, g->n_tensors);
    free(first);
    free(count);
    sb_free(&sb);
    return NULL;
}


char *emit_train_header(const model *m, const memory_plan *plan,
                        const weight_layout *w)
{
    strbuf sb = {0};
    char upper[128];
    size_t i = 0;
    for (; m->name[i] && i + 1 < sizeof upper; i++)
        upper[i] = (char)toupper((unsigned char)m->name[i]);
    upper[i] = '\0';
    sb_printf(&sb, "\n/* Training (dsc train): the state (rt_train_init: "
              "Adam's moments and the\n * gradients) and the arena a train "
              "step needs. */\n#define %s_STATE_FLOATS %lld\n"
              "#define %s_TRAIN_ARENA_BYTES %lld\n", upper,
              (long long)rt_train_state_floats(w->total_floats), upper,
              (long long)emit_train_arena_bytes(m->graph, plan));
    sb_append(&sb, "/* Forward, backward and one Adam step on w; *loss gets "
              "the loss before the\n * step.  DSC_OK or DSC_EBADTOKEN. */\n");
    train_signature(&sb, m);
    sb_printf(&sb, ";\nint %s_train_step_io(rt_ctx *ctx, float *w, float "
              "*state, void *const *io, float *loss, void *arena);\n",
              m->name);
    return sb_take(&sb);
}
