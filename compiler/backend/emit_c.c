/* emit_c.c — write a planned graph as straight-line C11. */
#include "backend/emit_c.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/emit_names.h"
#include "dsc_runtime.h"
#include "util/ctext.h"
#include "backend/emit_deepseek.h"
#include "util/strbuf.h"

/* Names the generated code uses for tensors, weights and the model.
 *
 * Outside text becomes part of an identifier only through ctext_ident or
 * ctext_model_name, and always behind a prefix, so that it cannot reach
 * the names dsc writes itself:
 *   model M (from the file name)  functions M_forward, M_forward_io, M_step,
 *                                 M_prefill, M_decode; macros UPPER(M)_*
 *   input / output x              parameters in_x / out_x; macro
 *                                 UPPER(M)_X_COUNT in the header
 *   weight key k                  macro W_K (capitals)
 * against dsc's own: ctx, w, a, n, pos, token, cache, arena, s, io, and
 * the train step's state, gw, scratch, rc; the model's functions and the
 * intermediates OP_T_ (lowercase, ending in '_'), the runtime's rt_*, RT_*
 * and DSC_*, and <stddef.h>/<stdint.h>.  One set of names covers the .c and
 * the .h, and every name made from outside text is claimed in it: one that
 * is taken (keys differing only in punctuation, x and X) gets _2, _3, ... */
typedef emit_names names;  /* backend/emit_names.h */

/* Room for a name: a prefix, CTEXT_IDENT_MAX bytes of outside text and
 * dsc's suffixes ("_R<row>", "_CAT<n>", "_COUNT", "_<k>"). */
#define NAME_LEN (2 * CTEXT_MODEL_NAME_MAX + 96)


static char *dup_printf(const char *fmt, const char *a, int n)
{
    char buf[NAME_LEN + 64];
    snprintf(buf, sizeof buf, fmt, a, n);
    size_t len = strlen(buf) + 1;
    char *p = malloc(len);
    if (p)
        memcpy(p, buf, len);
    return p;
}


void emit_names_free(names *nm, const graph *g, const weight_layout *w)
{
    for (int i = 0; i < g->n_tensors; i++) {
        if (nm->tensor)
            free(nm->tensor[i]);
        if (nm->count)
            free(nm->count[i]);
    }
    for (int i = 0; nm->weight && i < w->n_entries; i++)
        free(nm->weight[i]);
    free(nm->tensor);
    free(nm->weight);
    free(nm->count);
}


/* Claim name (made with fmt, a and b) in used, renamed if taken; a copy. */
static char *claim(ctext_names *used, const char *fmt, const char *a,
                   const char *b)
{
    char name[NAME_LEN];
    snprintf(name, sizeof name, fmt, a, b);
    return ctext_names_claim(used, name, sizeof name)
        ? NULL : dup_printf("%s", name, 0);
}


/* "transformer_encoder.layers.0.norm1.weight" -> "W_TRANSFORMER_..." */
static char *weight_macro(ctext_names *used, const graph_weight *gw)
{
    const graph_weight_part *first = &gw->part[0];
    for (int k = 0; k < gw->n_parts && !first->key; k++)
        first = &gw->part[k];
    char key[CTEXT_IDENT_MAX + 1], suffix[64] = "";
    ctext_ident(first->key ? first->key : "zeros", 1, key, sizeof key);
    if (first->row_first > 0)
        snprintf(suffix, sizeof suffix, "_R%lld", (long long)first->row_first);
    if (gw->n_parts > 1)  /* a stack made by fuse-qkv */
        snprintf(suffix + strlen(suffix), sizeof suffix - strlen(suffix),
                 "_CAT%d", gw->n_parts);
    return claim(used, "W_%s%s", key, suffix);
}


/* Each state tensor's place in the cache, in floats, DSC_ALIGN-aligned. */
static int64_t state_floats(const graph_tensor *t)
{
    int64_t floats = graph_shape_count(&t->shape);
    return (floats + DSC_ALIGN / 4 - 1) / (DSC_ALIGN / 4) * (DSC_ALIGN / 4);
}


/* The model's identifier and its capitals. */
static void model_ident(const model *m, char *ident, char *upper)
{
    ctext_model_name(m->name, strlen(m->name), ident);
    ctext_ident(ident, 1, upper, CTEXT_MODEL_NAME_MAX + 1);
}


int emit_names_make(names *nm, const model *m, const weight_layout *w)
{
    static const char *const fixed[] = {
        "ctx", "w", "a", "n", "pos", "token", "cache", "arena", "s", "io",
        "state", "gw", "scratch", "rc", NULL
    };
    static const char *const fixed_macros[] = {
        "_H", "_ARENA_BYTES", "_WEIGHT_FLOATS", "_CONTEXT", "_CACHE_FLOATS",
        "_STATE_FLOATS", "_TRAIN_ARENA_BYTES", NULL
    };
    /* Model "in" with an input "step": in_prefill's parameter in_step
     * must not hide the function in_step it calls. */
    static const char *const functions[] = {
        "_forward", "_forward_io", "_step", "_step_io", "_prefill",
        "_decode", "_train_step", "_train_step_io", NULL
    };
    const graph *g = m->graph;
    ctext_names used = {0};
    int rc = -1;
    *nm = (names){0};
    nm->tensor = calloc((size_t)g->n_tensors + 1, sizeof(char *));
    nm->count = calloc((size_t)g->n_tensors + 1, sizeof(char *));
    nm->weight = calloc((size_t)w->n_entries + 1, sizeof(char *));
    if (!nm->tensor || !nm->count || !nm->weight)
        goto out;
    model_ident(m, nm->ident, nm->upper);
    /* dsc's own names first: they are never renamed. */
    for (int i = 0; fixed[i]; i++) {
        char name[NAME_LEN];
        snprintf(name, sizeof name, "%s", fixed[i]);
        if (ctext_names_claim(&used, name, sizeof name))
            goto out;
    }
    for (int i = 0; fixed_macros[i]; i++) {
        char name[NAME_LEN];
        snprintf(name, sizeof name, "%s%s", nm->upper, fixed_macros[i]);
        if (ctext_names_claim(&used, name, sizeof name))
            goto out;
    }
    for (int i = 0; functions[i]; i++) {
        char name[NAME_LEN];
        snprintf(name, sizeof name, "%s%s", nm->ident, functions[i]);
        if (ctext_names_claim(&used, name, sizeof name))
            goto out;
    }
    for (int t = 0; t < g->n_tensors; t++) {
        const graph_tensor *x = &g->tensors[t];
        if (x->kind == GRAPH_INPUT && x->dynamic) {
            nm->dynamic = 1;
            nm->max_tokens = x->shape.dim[0];
        }
        if (x->kind == GRAPH_STATE) {
            char expr[64];
            snprintf(expr, sizeof expr, "(cache + %lld)",
                     (long long)nm->cache_floats);
            nm->tensor[t] = dup_printf("%s", expr, 0);
            nm->cache_floats += state_floats(x);
        } else if (x->kind == GRAPH_INTERMEDIATE && x->producer >= 0) {
            /* The trailing underscore keeps these apart from API names. */
            char name[NAME_LEN];
            snprintf(name, sizeof name, "%s_%d_",
                     graph_op_name(g->nodes[x->producer].op), t);
            if (ctext_names_claim(&used, name, sizeof name))
                goto out;
            nm->tensor[t] = dup_printf("%s", name, 0);
        } else {
            continue;
        }
        if (!nm->tensor[t])
            goto out;
    }
    /* Then the names made from outside text: the weights' first, so that
     * their macros do not depend on the graph's inputs and outputs (a
     * train step has other outputs than the forward whose macros it
     * uses). */
    for (int e = 0; e < w->n_entries; e++)
        if (!(nm->weight[e] = weight_macro(
                  &used, &g->tensors[w->entries[e].tensor].weight)))
            goto out;
    for (int t = 0; t < g->n_tensors; t++) {
        const graph_tensor *x = &g->tensors[t];
        if (x->kind != GRAPH_INPUT && x->kind != GRAPH_OUTPUT)
            continue;
        char lower[CTEXT_IDENT_MAX + 1], caps[CTEXT_IDENT_MAX + 1];
        ctext_ident(x->name, 0, lower, sizeof lower);
        ctext_ident(x->name, 1, caps, sizeof caps);
        if (!(nm->tensor[t] = claim(&used, "%s%s", x->kind == GRAPH_INPUT
                                    ? "in_" : "out_", lower)) ||
            !(nm->count[t] = claim(&used, "%s_%s_COUNT", nm->upper, caps)))
            goto out;
    }
    for (int t = 0; t < g->n_tensors; t++) {
        const graph_tensor *x = &g->tensors[t];
        if (nm->tensor[t] || x->view_of >= 0)
            continue;  /* named above, or a view: named after its storage */
        int grad_of = -1;  /* a weight's gradient: the weight (the
                            * last input of the node that makes it) */
        if (x->kind == GRAPH_GRAD && x->producer >= 0) {
            const graph_node *p = &g->nodes[x->producer];
            grad_of = p->inputs[p->n_inputs - 1];
        }
        if (x->kind == GRAPH_WEIGHT && w->entry_of[t] >= 0)
            nm->tensor[t] = dup_printf("(w + %s)", nm->weight[w->entry_of[t]],
                                       0);
        else if (grad_of >= 0 && w->entry_of[grad_of] >= 0)
            nm->tensor[t] = dup_printf("(gw + %s)",
                                       nm->weight[w->entry_of[grad_of]], 0);
        else
            nm->tensor[t] = dup_printf("NULL", NULL, 0);
        if (!nm->tensor[t])
            goto out;
    }
    for (int t = 0; t < g->n_tensors; t++) {
        if (g->tensors[t].view_of < 0 || nm->tensor[t])
            continue;
        int64_t col = 0;
        int base = t;
        for (; g->tensors[base].view_of >= 0; base = g->tensors[base].view_of)
            col += g->tensors[base].view_col;
        char expr[NAME_LEN + 64];
        snprintf(expr, sizeof expr, "(%s + %lld)", nm->tensor[base],
                 (long long)col);
        if (!(nm->tensor[t] = dup_printf("%s", expr, 0)))
            goto out;
    }
    rc = 0;
out:
    ctext_names_free(&used);
    return rc;
}


/* A float as the shortest C literal that reads back to the same float. */
static const char *float_literal(float v, char *buf, size_t len)
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


static const char *act_name(int act)
{
    switch (act) {
    case RT_ACT_RELU: return "RT_ACT_RELU";
    case RT_ACT_GELU: return "RT_ACT_GELU";
    case RT_ACT_GELU_TANH: return "RT_ACT_GELU_TANH";
    default: return "RT_ACT_NONE";
    }
}


/* "models/m.lua:12" of a node, for a comment. */
static void loc_comment(strbuf *sb, graph_loc loc)
{
    ctext_comment(sb, loc.file ? loc.file : "?");
    sb_printf(sb, ":%d", loc.line);
}


void emit_node_locs(strbuf *sb, const graph_node *n)
{
    loc_comment(sb, n->user_loc);
    if (n->loc.file != n->user_loc.file) {
        sb_append(sb, " (");
        loc_comment(sb, n->loc);
        sb_append(sb, ")");
    }
}


const char *emit_float_literal(float v, char *buf, size_t len)
{
    return float_literal(v, buf, len);
}


static void header_comment(strbuf *sb, const model *m, const char *file,
                           const memory_plan *plan, const weight_layout *w,
                           const char *passes)
{
    sb_printf(sb, "/* %s — generated by dsc %s from ", file, DSC_VERSION);
    ctext_comment(sb, m->path);
    sb_append(sb, "; do not edit.\n * config:");
    for (int i = 0; i < m->n_config; i++) {
        sb_append(sb, " ");
        ctext_comment(sb, m->config[i].key);
        sb_append(sb, "=");
        ctext_comment(sb, m->config[i].value);
    }
    sb_printf(sb, "%s\n * passes: %s\n", m->n_config ? "" : " (none)",
              passes && *passes ? passes : "(none)");
    sb_printf(sb, " * arena %lld bytes (lower bound %lld, without reuse "
              "%lld); weights %lld floats,\n * linear weights %s (%s) */\n",
              (long long)plan->arena_bytes, (long long)plan->lower_bound_bytes,
              (long long)plan->no_reuse_bytes, (long long)w->total_floats,
              rt_format_name(DSC_LAYOUT_FORMAT_OF(w->packing)),
              rt_layout_name(w->packing));
}


/* The pointer parameters for inputs (pass 0) or outputs (pass 1). */
static void io_params(strbuf *sb, const graph *g, const names *nm, int pass)
{
    for (int t = 0; t < g->n_tensors; t++) {
        const graph_tensor *x = &g->tensors[t];
        if (x->kind == (pass ? GRAPH_OUTPUT : GRAPH_INPUT))
            sb_printf(sb, ", %s%s *%s", pass ? "" : "const ",
                      x->dtype == GRAPH_I32 ? "int32_t" : "float",
                      nm->tensor[t]);
    }
}


/* "int NAME_forward(rt_ctx *ctx, const float *w, <inputs>, <outputs>,
 *  void *arena)"; a decoder step is NAME_step and takes the token count n
 * and start position pos after its inputs, and its cache last. */
static void signature(strbuf *sb, const model *m, const names *nm)
{
    const graph *g = m->graph;
    sb_printf(sb, "int %s_%s(rt_ctx *ctx, const float *w", nm->ident,
              nm->dynamic ? "step" : "forward");
    io_params(sb, g, nm, 0);
    if (nm->dynamic)
        sb_append(sb, ", int64_t n, int64_t pos");
    io_params(sb, g, nm, 1);
    if (nm->cache_floats)
        sb_append(sb, ", float *cache");
    sb_append(sb, ", void *arena)");
}


/* The single int32 input a prefill/decode pair feeds, or -1. */
static int token_input(const graph *g)
{
    int found = -1;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_INPUT) {
            if (found >= 0 || g->tensors[t].dtype != GRAPH_I32 ||
                !g->tensors[t].dynamic)
                return -1;
            found = t;
        }
    return found;
}


static void prefill_decode_signatures(strbuf *sb, const model *m,
                                      const names *nm, const char *tokens,
                                      int decode)
{
    sb_printf(sb, "int %s_%s(rt_ctx *ctx, const float *w, ", nm->ident,
              decode ? "decode" : "prefill");
    if (decode)
        sb_printf(sb, "int32_t token, int64_t pos");
    else
        sb_printf(sb, "const int32_t *%s, int64_t n", tokens);
    io_params(sb, m->graph, nm, 1);
    sb_append(sb, ", float *cache, void *arena)");
}


/* Elements of t, as a C expression: a constant, or "n * 768" when its
 * first dimension is the runtime token count. */
static const char *count_expr(const graph_tensor *t, char *buf, size_t len)
{
    int64_t count = graph_shape_count(&t->shape);
    if (!t->dynamic)
        snprintf(buf, len, "%lld", (long long)count);
    else if (count == t->shape.dim[0])
        snprintf(buf, len, "n");
    else
        snprintf(buf, len, "n * %lld", (long long)(count / t->shape.dim[0]));
    return buf;
}


/* Rows of t (elements over the last dimension), as a C expression. */
static const char *rows_expr(const graph_tensor *t, char *buf, size_t len)
{
    graph_tensor rows = *t;
    if (rows.shape.rank > 0)  /* a scalar is one row of one */
        rows.shape.dim[rows.shape.rank - 1] = 1;
    return count_expr(&rows, buf, len);
}


static void emit_node(strbuf *sb, const graph *g, const graph_node *n,
                      const names *nm)
{
    const graph_tensor *out = &g->tensors[n->output];
    const graph_tensor *x = &g->tensors[n->inputs[0]];
    const char *y = nm->tensor[n->output];
    char *const *in_name = nm->tensor;
    long long last = out->shape.rank ? (long long)out->shape.dim[out->shape.rank - 1] : 1;
    char f[48], count[64], rows[64];
    count_expr(out, count, sizeof count);
    rows_expr(out, rows, sizeof rows);

    sb_append(sb, "    /* ");
    loc_comment(sb, n->user_loc);
    if (n->loc.file != n->user_loc.file) {
        sb_append(sb, " (");
        loc_comment(sb, n->loc);
        sb_append(sb, ")");
    }
    sb_append(sb, " */\n");
    switch (n->op) {
    case GRAPH_OP_EMBEDDING: {
        const graph_shape *tab = &g->tensors[n->inputs[1]].shape;
        char ids[64];
        sb_printf(sb, "    if (rt_embedding(ctx, %s, %s, %s, %s, %lld, %lld))\n"
                  "        return DSC_EBADTOKEN;\n", y,
                  in_name[n->inputs[0]], count_expr(x, ids, sizeof ids),
                  in_name[n->inputs[1]], (long long)tab->dim[0],
                  (long long)tab->dim[1]);
        break;
    }
    case GRAPH_OP_LINEAR: {
        long long k = (long long)x->shape.dim[x->shape.rank - 1];
        int has_bias = n->n_inputs > 2 && n->inputs[2] >= 0;
        int has_res = n->n_inputs > 3 && n->inputs[3] >= 0;
        sb_printf(sb, "    rt_linear(ctx, %s, %lld, %s, %lld, %s, %s,\n"
                  "              %s, %lld, %lld, %s, %s);\n",
                  y, last, in_name[n->inputs[0]],
                  (long long)graph_row_stride(g, n->inputs[0]),
                  in_name[n->inputs[1]],
                  has_bias ? in_name[n->inputs[2]] : "NULL",
                  rows, last, k, act_name(n->attrs.act),
                  has_res ? in_name[n->inputs[3]] : "NULL");
        break;
    }
    case GRAPH_OP_ADD:
        sb_printf(sb, "    rt_add(ctx, %s, %s, %s, %s);\n", y,
                  in_name[n->inputs[0]], in_name[n->inputs[1]], count);
        break;
    case GRAPH_OP_RELU:
    case GRAPH_OP_GELU:
        sb_printf(sb, "    rt_activation(ctx, %s, %s, %s, %s);\n", y,
                  in_name[n->inputs[0]], count,
                  act_name(n->op == GRAPH_OP_RELU ? RT_ACT_RELU
                                                  : n->attrs.act));
        break;
    case GRAPH_OP_LAYERNORM:
        sb_printf(sb, "    rt_layernorm(ctx, %s, %s, %s, %s, %s, %lld, %s);\n",
                  y, in_name[n->inputs[0]], in_name[n->inputs[1]],
                  in_name[n->inputs[2]], rows, last,
                  float_literal(n->attrs.eps, f, sizeof f));
        break;
    case GRAPH_OP_SOFTMAX:
        sb_printf(sb, "    rt_softmax(ctx, %s, %s, %s, %lld);\n", y,
                  in_name[n->inputs[0]], rows, last);
        break;
    case GRAPH_OP_ATTENTION: {
        const graph_shape *q = &x->shape;
        if (q->rank == 2) {  /* packed sequences, by lengths */
            const graph_tensor *len = &g->tensors[n->inputs[3]];
            const graph_shape *vs = &g->tensors[n->inputs[2]].shape;
            int hh = n->attrs.heads;
            sb_printf(sb, "    {\n        static const rt_attention_shape s = {"
                      "\n            .seq = %lld, .batch = 1, .heads = %d, "
                      ".head_dim_qk = %lld, .head_dim_v = %lld,\n"
                      "            .seq_step = 1, .batch_step = %lld,\n"
                      "            .ldq = %lld, .ldk = %lld, .ldv = %lld, "
                      ".ldo = %lld,\n            .scale = %s };\n"
                      "        rt_attention_packed(ctx, %s, %s, %s, %s, %s, "
                      "%lld, &s);\n    }\n", (long long)q->dim[0], hh,
                      (long long)q->dim[1] / hh, (long long)vs->dim[1] / hh,
                      (long long)q->dim[0],
                      (long long)graph_row_stride(g, n->inputs[0]),
                      (long long)graph_row_stride(g, n->inputs[1]),
                      (long long)graph_row_stride(g, n->inputs[2]), last,
                      float_literal(n->attrs.scale, f, sizeof f), y,
                      in_name[n->inputs[0]], in_name[n->inputs[1]],
                      in_name[n->inputs[2]], in_name[n->inputs[3]],
                      (long long)len->shape.dim[0]);
            break;
        }
        const graph_shape *v = &g->tensors[n->inputs[2]].shape;
        long long seq = n->attrs.batch_first ? q->dim[1] : q->dim[0];
        long long batch = n->attrs.batch_first ? q->dim[0] : q->dim[1];
        int h = n->attrs.heads;
        int lengths = n->n_inputs > 3 && n->inputs[3] >= 0;
        sb_printf(sb, "    {\n        static const rt_attention_shape s = {\n"
                  "            .seq = %lld, .batch = %lld, .heads = %d, "
                  ".head_dim_qk = %lld, .head_dim_v = %lld,\n"
                  "            .seq_step = %lld, .batch_step = %lld,\n"
                  "            .ldq = %lld, .ldk = %lld, .ldv = %lld, "
                  ".ldo = %lld,\n"
                  "            .scale = %s, .causal = %d };\n"
                  "        rt_attention%s(ctx, %s, %s, %s, %s%s%s, &s);\n"
                  "    }\n",
                  seq, batch, h, (long long)q->dim[2] / h,
                  (long long)v->dim[2] / h,
                  n->attrs.batch_first ? 1 : batch,
                  n->attrs.batch_first ? seq : 1,
                  (long long)graph_row_stride(g, n->inputs[0]),
                  (long long)graph_row_stride(g, n->inputs[1]),
                  (long long)graph_row_stride(g, n->inputs[2]), last,
                  float_literal(n->attrs.scale, f, sizeof f), n->attrs.causal,
                  lengths ? "_lengths" : "", y, in_name[n->inputs[0]],
                  in_name[n->inputs[1]], in_name[n->inputs[2]],
                  lengths ? ", " : "", lengths ? in_name[n->inputs[3]] : "");
        break;
    }
    case GRAPH_OP_POSITIONS:
        sb_printf(sb, "    rt_positions(ctx, %s, %s, pos, %s, %lld);\n", y,
                  in_name[n->inputs[1]], rows, last);
        break;
    case GRAPH_OP_KV_ATTENTION: {
        const graph_shape *v = &g->tensors[n->inputs[2]].shape;
        int h = n->attrs.heads;
        sb_printf(sb, "    {\n        static const rt_kv_shape s = {\n"
                  "            .heads = %d, .head_dim_qk = %lld, "
                  ".head_dim_v = %lld,\n"
                  "            .ldq = %lld, .ldk = %lld, .ldv = %lld, "
                  ".ldo = %lld, .scale = %s };\n"
                  "        rt_kv_attention(ctx, %s, %s, %s, %s, %s, %s, n, pos, "
                  "&s);\n    }\n",
                  h, (long long)x->shape.dim[1] / h, (long long)v->dim[1] / h,
                  (long long)graph_row_stride(g, n->inputs[0]),
                  (long long)graph_row_stride(g, n->inputs[1]),
                  (long long)graph_row_stride(g, n->inputs[2]), last,
                  float_literal(n->attrs.scale, f, sizeof f), y,
                  in_name[n->inputs[0]], in_name[n->inputs[1]],
                  in_name[n->inputs[2]], in_name[n->inputs[3]],
                  in_name[n->inputs[4]]);
        break;
    }
    case GRAPH_OP_LAST: {
        long long row = (long long)(graph_shape_count(&x->shape) /
                                    x->shape.dim[0]);
        if (x->dynamic)
            sb_printf(sb, "    rt_copy(ctx, %s, %s + (n - 1) * %lld, %lld);\n",
                      y, in_name[n->inputs[0]], row, row);
        else
            sb_printf(sb, "    rt_copy(ctx, %s, %s + %lld, %lld);\n", y,
                      in_name[n->inputs[0]],
                      (long long)(x->shape.dim[0] - 1) * row, row);
        break;
    }
    case GRAPH_OP_MEAN_POOL:
        if (x->shape.rank == 2) {
            sb_printf(sb, "    rt_mean_pool_packed(ctx, %s, %s, %s, %lld, "
                      "%lld, %lld);\n", y, in_name[n->inputs[0]],
                      in_name[n->inputs[1]], (long long)out->shape.dim[0],
                      (long long)x->shape.dim[0], (long long)x->shape.dim[1]);
            break;
        }
        sb_printf(sb, "    rt_mean_pool(ctx, %s, %s, %s, %lld, %lld, %lld);\n",
                  y, in_name[n->inputs[0]], in_name[n->inputs[1]],
                  (long long)x->shape.dim[0], (long long)x->shape.dim[1],
                  (long long)x->shape.dim[2]);
        break;
    case GRAPH_OP_L2_NORMALIZE:
        sb_printf(sb, "    rt_l2_normalize(ctx, %s, %s, %s, %lld);\n", y,
                  in_name[n->inputs[0]], rows, last);
        break;
    case GRAPH_OP_RMSNORM:
    case GRAPH_OP_SILU_MUL:
    case GRAPH_OP_MLA_ATTENTION:
    case GRAPH_OP_MOE_ROUTE:
    case GRAPH_OP_MOE_EXPERT:
        emit_c_deepseek(sb, g, n, in_name, rows);
        break;
    /* Training only: emit_train.c writes these. */
    case GRAPH_OP_DROPOUT: case GRAPH_OP_CROSS_ENTROPY:
    case GRAPH_OP_CROSS_ENTROPY_GRAD: case GRAPH_OP_DROPOUT_GRAD:
    case GRAPH_OP_RELU_GRAD: case GRAPH_OP_SOFTMAX_GRAD:
    case GRAPH_OP_DROPOUT_RELU_GRAD:
    case GRAPH_OP_GELU_GRAD: case GRAPH_OP_LINEAR_GRAD_X: case GRAPH_OP_LINEAR_GRAD_W:
    case GRAPH_OP_BIAS_GRAD: case GRAPH_OP_LAYERNORM_GRAD_X:
    case GRAPH_OP_LAYERNORM_GRAD_GAMMA: case GRAPH_OP_ATTENTION_GRAD:
    case GRAPH_OP_EMBEDDING_GRAD:
    case GRAPH_OP_COUNT:
        break;
    }
}


void emit_c_node(strbuf *sb, const graph *g, const graph_node *n,
                 char *const *tensor_names)
{
    names nm = { .tensor = (char **)tensor_names };
    emit_node(sb, g, n, &nm);
}


int emit_is_decoder(const graph *g, int64_t *context)
{
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_INPUT && g->tensors[t].dynamic) {
            if (context)
                *context = g->tensors[t].shape.dim[0];
            return 1;
        }
    return 0;
}


int64_t emit_cache_floats(const graph *g)
{
    int64_t total = 0;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_STATE)
            total += state_floats(&g->tensors[t]);
    return total;
}


const char *emit_entry_name(const model *m, char *buf, int len)
{
    char ident[CTEXT_MODEL_NAME_MAX + 1], upper[CTEXT_MODEL_NAME_MAX + 1];
    model_ident(m, ident, upper);
    snprintf(buf, (size_t)len, "%s_%s_io", ident,
             emit_is_decoder(m->graph, NULL) ? "step" : "forward");
    return buf;
}


/* Is v a float the C can spell: finite (1e300 became inf in float32). */
int emit_check_constant(const model *m, const graph_node *n,
                        const char *what, float v, dsc_err *err)
{
    if (isfinite(v))
        return 0;
    return err_set(err, "%s:%d: error: %s %s is %s: it must be a finite "
                   "number within float32's range (magnitude at most "
                   "3.4e38)", n->user_loc.file ? n->user_loc.file : m->path,
                   n->user_loc.line, graph_op_name(n->op), what,
                   isnan(v) ? "not a number" : "out of float32's range");
}


int emit_check(const model *m, const emit_options *opts, dsc_err *err)
{
    const graph *g = m->graph;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if ((n->op == GRAPH_OP_LAYERNORM &&
             emit_check_constant(m, n, "eps", n->attrs.eps, err)) ||
            ((n->op == GRAPH_OP_ATTENTION || n->op == GRAPH_OP_KV_ATTENTION) &&
             emit_check_constant(m, n, "scale", n->attrs.scale, err)))
            return -1;
    }
    const char *files[2] = { opts ? opts->source_name : NULL,
                             opts ? opts->header_name : NULL };
    for (int i = 0; i < 2; i++)
        if (files[i] && !ctext_is_file_name(files[i]))
            return err_set(err, "error: a generated file's name may hold "
                           "only letters, digits, '.', '_', '+' and '-' (at "
                           "most %d, not starting with '.'): the C #includes "
                           "it by that name", CTEXT_FILE_NAME_MAX);
    return 0;
}


/* The generated file's name (ext ".c" or ".h"): as given, or NAME.ext. */
static const char *file_name(const names *nm, const char *given,
                             const char *ext, char *buf, size_t len)
{
    if (given)
        return given;
    snprintf(buf, len, "%s%s", nm->ident, ext);
    return buf;
}


char *emit_c_source(const model *m, const memory_plan *plan,
                    const weight_layout *w, const emit_options *opts)
{
    const graph *g = m->graph;
    names nm;
    strbuf sb = {0};
    char file_buf[CTEXT_MODEL_NAME_MAX + 8], header_buf[sizeof file_buf];
    char shape[96];
    if (emit_check(m, opts, NULL))
        return NULL;
    if (emit_names_make(&nm, m, w)) {
        emit_names_free(&nm, g, w);
        return NULL;
    }
    const char *file = file_name(&nm, opts ? opts->source_name : NULL, ".c",
                                 file_buf, sizeof file_buf);
    const char *header = file_name(&nm, opts ? opts->header_name : NULL,
                                   ".h", header_buf, sizeof header_buf);
    header_comment(&sb, m, file, plan, w, opts ? opts->passes : NULL);
    if (opts && opts->inline_runtime_header) {
        /* Number what follows as in the shipped file (the comment, two
         * #include lines, then this), so compiler errors name its lines. */
        int line = 1;
        for (size_t i = 0; i < sb.len; i++)
            line += sb.data[i] == '\n';
        sb_append(&sb, "\n");
        sb_append(&sb, opts->inline_runtime_header);
        sb_printf(&sb, "#line %d \"%s\"\n", line + 2, file);
    } else {
        sb_printf(&sb, "#include \"dsc_runtime.h\"\n#include \"%s\"\n",
                  header);
    }

    sb_append(&sb, "\n/* Offsets, in floats, of each weight in the packed "
                   "blob. */\n");
    for (int e = 0; e < w->n_entries; e++) {
        const weight_entry *we = &w->entries[e];
        const graph_tensor *t = &g->tensors[we->tensor];
        sb_printf(&sb, "#define %s %lld  /* %s", nm.weight[e],
                  (long long)we->offset,
                  graph_shape_str(&t->shape, shape, sizeof shape));
        for (int k = 0; k < t->weight.n_parts; k++) {
            const graph_weight_part *p = &t->weight.part[k];
            sb_append(&sb, k ? " | " : " ");
            ctext_comment(&sb, p->key ? p->key : "zeros");
            int64_t all = p->key_shape.dim[p->transposed ? 1 : 0];
            if (p->key && p->rows != all)
                sb_printf(&sb, " rows %lld..%lld", (long long)p->row_first,
                          (long long)(p->row_first + p->rows));
            if (p->transposed)
                sb_append(&sb, " (stored transposed)");
        }
        int format = DSC_LAYOUT_FORMAT_OF(we->packing);
        sb_printf(&sb, "%s%s%s */\n", we->packed_linear ? ", packed" : "",
                  we->packed_linear && format != DSC_WEIGHTS_F32 ? " " : "",
                  we->packed_linear && format != DSC_WEIGHTS_F32
                  ? rt_format_name(format) : "");
    }

    sb_append(&sb, "\n");
    signature(&sb, m, &nm);
    sb_append(&sb, "\n{\n    char *a = arena;\n");
    sb_printf(&sb, "    if (rt_weights_check(ctx, w, %d) != DSC_OK)  /* %s */\n"
              "        return DSC_EBADLAYOUT;\n", w->packing,
              rt_layout_name(w->packing));
    if (nm.dynamic)
        sb_printf(&sb, "    if (n < 1 || pos < 0 || n > %lld || "
                  "pos > %lld - n)  /* %s_CONTEXT */\n"
                  "        return DSC_EBADPOS;\n", (long long)nm.max_tokens,
                  (long long)nm.max_tokens, nm.upper);
    for (int i = 0; i < g->n_nodes; i++) {  /* in the order they are made */
        const graph_node *p = &g->nodes[i];
        int t = p->output;
        if (plan->offset[t] < 0)
            continue;
        sb_printf(&sb, "    float *%s = (float *)(a + %lld);  /* %s ",
                  nm.tensor[t], (long long)plan->offset[t],
                  graph_shape_str(&g->tensors[t].shape, shape, sizeof shape));
        loc_comment(&sb, p->user_loc);
        if (p->loc.file != p->user_loc.file) {
            sb_append(&sb, " (");
            loc_comment(&sb, p->loc);
            sb_append(&sb, ")");
        }
        sb_append(&sb, " */\n");
    }
    sb_append(&sb, "    (void)a;\n\n");
    for (int i = 0; i < g->n_nodes; i++)
        emit_node(&sb, g, &g->nodes[i], &nm);
    sb_append(&sb, "    return DSC_OK;\n}\n\n");

    /* The uniform entry point for loaders. */
    const char *fn = nm.dynamic ? "step" : "forward";
    sb_printf(&sb, "/* %s_%s behind one signature: io holds the inputs, "
              "then the outputs%s. */\nint %s_%s_io(rt_ctx *ctx, "
              "const float *w, void *const *io, %svoid *arena)\n{\n",
              nm.ident, fn, nm.cache_floats ? ", then the cache" : "",
              nm.ident, fn, nm.dynamic ? "int64_t n, int64_t pos, " : "");
    sb_printf(&sb, "    return %s_%s(ctx, w", nm.ident, fn);
    int k = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int t = 0; t < g->n_tensors; t++) {
            const graph_tensor *x = &g->tensors[t];
            if (x->kind == (pass ? GRAPH_OUTPUT : GRAPH_INPUT))
                sb_printf(&sb, ", (%s%s *)io[%d]", pass ? "" : "const ",
                          x->dtype == GRAPH_I32 ? "int32_t" : "float", k++);
        }
        if (!pass && nm.dynamic)
            sb_append(&sb, ", n, pos");
    }
    if (nm.cache_floats)
        sb_printf(&sb, ", (float *)io[%d]", k);
    sb_append(&sb, ", arena);\n}\n");

    int tok = token_input(g);
    if (tok >= 0 && nm.cache_floats) {
        const char *tokens = nm.tensor[tok];
        for (int decode = 0; decode < 2; decode++) {
            sb_printf(&sb, "\n/* %s */\n", decode
                      ? "One more token at position pos, after pos tokens "
                        "in the cache."
                      : "The prompt's n tokens from position 0: fills the "
                        "cache.");
            prefill_decode_signatures(&sb, m, &nm, tokens, decode);
            sb_printf(&sb, "\n{\n    return %s_step(ctx, w, %s, %s", nm.ident,
                      decode ? "&token" : tokens,
                      decode ? "1, pos" : "n, 0");
            for (int t = 0; t < g->n_tensors; t++)
                if (g->tensors[t].kind == GRAPH_OUTPUT)
                    sb_printf(&sb, ", %s", nm.tensor[t]);
            sb_append(&sb, ", cache, arena);\n}\n");
        }
    }
    emit_names_free(&nm, g, w);
    return sb_take(&sb);
}


char *emit_c_header(const model *m, const memory_plan *plan,
                    const weight_layout *w, const emit_options *opts)
{
    const graph *g = m->graph;
    names nm;
    strbuf sb = {0};
    char file_buf[CTEXT_MODEL_NAME_MAX + 8], shape[96];
    if (emit_check(m, opts, NULL))
        return NULL;
    if (emit_names_make(&nm, m, w)) {
        emit_names_free(&nm, g, w);
        return NULL;
    }
    const char *file = file_name(&nm, opts ? opts->header_name : NULL, ".h",
                                 file_buf, sizeof file_buf);
    header_comment(&sb, m, file, plan, w, opts ? opts->passes : NULL);
    sb_printf(&sb, "#ifndef %s_H\n#define %s_H\n\n#include \"dsc_runtime.h\"\n\n",
              nm.upper, nm.upper);
    sb_printf(&sb, "/* Scratch memory the forward needs, %d-byte aligned. */\n"
              "#define %s_ARENA_BYTES %lld\n", DSC_ALIGN, nm.upper,
              (long long)plan->arena_bytes);
    sb_printf(&sb, "/* Floats in the packed weight blob (dsc compile "
              "--weights writes it). */\n#define %s_WEIGHT_FLOATS %lld\n",
              nm.upper, (long long)w->total_floats);
    sb_printf(&sb, "/* Layout the blob's linear weights are packed in (%s); "
              "the forward\n * returns DSC_EBADLAYOUT for a blob packed in "
              "another. */\n#define %s_WEIGHT_LAYOUT %d\n",
              rt_layout_name(w->packing), nm.upper, w->packing);
    static const char *const format_macro[] = {
        [DSC_WEIGHTS_F32] = "DSC_WEIGHTS_F32",
        [DSC_WEIGHTS_BF16] = "DSC_WEIGHTS_BF16",
        [DSC_WEIGHTS_Q8] = "DSC_WEIGHTS_Q8",
    };
    /* A weight may ask for a format of its own (DeepSeek's routed
     * experts: bf16 in a float32 blob); the header says so. */
    const int format = DSC_LAYOUT_FORMAT_OF(w->packing);
    int own = format;
    for (int e = 0; e < w->n_entries && own == format; e++)
        if (w->entries[e].packed_linear)
            own = DSC_LAYOUT_FORMAT_OF(w->entries[e].packing);
    /* A number, as every macro here (the emitter's checks allow no
     * other), with its DSC_WEIGHTS_ name beside it. */
    sb_printf(&sb, "/* Format the linear weights are stored in (%s; "
              "embeddings, norms and\n * biases are float32%s%s). */\n"
              "#define %s_WEIGHT_FORMAT %d  /* %s */\n",
              rt_format_name(format),
              own != format ? "; some weights ask for " : "",
              own != format ? rt_format_name(own) : "", nm.upper, format,
              format_macro[format]);
    if (nm.dynamic)
        sb_printf(&sb, "/* Tokens a step may reach: pos + n <= this. */\n"
                  "#define %s_CONTEXT %lld\n", nm.upper,
                  (long long)nm.max_tokens);
    if (nm.cache_floats)
        sb_printf(&sb, "/* Floats of state (the KV cache) the caller keeps "
                  "across steps. */\n#define %s_CACHE_FLOATS %lld\n",
                  nm.upper, (long long)nm.cache_floats);
    sb_append(&sb, "\n");
    for (int pass = 0; pass < 2; pass++)
        for (int t = 0; t < g->n_tensors; t++) {
            const graph_tensor *x = &g->tensors[t];
            if (x->kind != (pass ? GRAPH_OUTPUT : GRAPH_INPUT))
                continue;
            sb_printf(&sb, "/* %s ", pass ? "output" : "input");
            ctext_comment(&sb, x->name);
            sb_printf(&sb, ": %s %s */\n#define %s %lld\n",
                      graph_dtype_name(x->dtype),
                      graph_shape_str(&x->shape, shape, sizeof shape),
                      nm.count[t], (long long)graph_shape_count(&x->shape));
        }
    sb_printf(&sb, "\n/* Run the model.  ctx: threads and kernels (rt_ctx_new), "
              "or NULL for\n * one thread; w: the packed weights; arena: "
              "%s_ARENA_BYTES of\n * scratch.", nm.upper);
    if (nm.dynamic)
        sb_printf(&sb, "  n tokens at positions pos..pos+n-1; cache: "
                  "%s_CACHE_FLOATS\n * floats, zeroed before position 0.",
                  nm.upper);
    sb_printf(&sb, "  Returns DSC_OK (0), DSC_EBADTOKEN (-1) for a token "
              "id\n * outside the vocabulary%s, DSC_EBADLAYOUT (-3) for "
              "weights packed in\n * another layout (rt_ctx_error says "
              "which). */\n",
              nm.dynamic ? ", DSC_EBADPOS (-2) for n or pos out of range" : "");
    signature(&sb, m, &nm);
    sb_printf(&sb, ";\nint %s_%s_io(rt_ctx *ctx, const float *w, "
              "void *const *io, %svoid *arena);\n", nm.ident,
              nm.dynamic ? "step" : "forward",
              nm.dynamic ? "int64_t n, int64_t pos, " : "");
    int tok = token_input(g);
    for (int decode = 0; tok >= 0 && nm.cache_floats && decode < 2; decode++) {
        prefill_decode_signatures(&sb, m, &nm, nm.tensor[tok], decode);
        sb_append(&sb, ";\n");
    }
    sb_append(&sb, "\n#endif\n");
    emit_names_free(&nm, g, w);
    return sb_take(&sb);
}
