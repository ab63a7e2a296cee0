/* graph_shape.c — each op's shape rule: what it accepts, what it makes.
 * Messages name the op and every shape involved, so a user can see the
 * mismatch without opening a debugger. */
#include <stdarg.h>
#include <stdio.h>

#include "dsc_runtime.h"
#include "ir/graph.h"
#include "ir/graph_deepseek.h"

/* Name a tensor in a message: a weight by its key, else its role. */
static const char *label(const graph *g, int t, const char *role)
{
    return g->tensors[t].kind == GRAPH_WEIGHT ? g->tensors[t].name : role;
}


static int why_set(char *why, int len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, (size_t)len, fmt, ap);
    va_end(ap);
    return -1;
}


/* Per-sequence lengths must be int32 [batch]. */
static int lengths_bad(const graph *g, int t, int64_t batch, char *why,
                       int why_len, const char *op)
{
    const graph_tensor *l = &g->tensors[t];
    char s0[96];
    if (l->dtype != GRAPH_I32 || l->shape.rank != 1 ||
        l->shape.dim[0] != batch)
        return why_set(why, why_len, "%s: lengths %s %s must be int32 "
                       "[%lld], one per sequence", op,
                       graph_dtype_name(l->dtype),
                       graph_shape_str(&l->shape, s0, sizeof s0),
                       (long long)batch);
    return 0;
}


int graph_infer_shape(const graph *g, graph_op op, const int *in,
                      int n_in, const graph_attrs *attrs,
                      graph_shape *out, graph_dtype *out_dtype,
                      char *why, int why_len)
{
    const char *name = graph_op_name(op);
    char s0[96], s1[96], s2[96];
    const graph_tensor *a = &g->tensors[in[0]];
    const graph_shape *x = &a->shape;

    /* Every op but embedding reads float32 tensors only. */
    int reads_ids = op == GRAPH_OP_EMBEDDING || op == GRAPH_OP_POSITIONS;
    int ids_at = reads_ids ? 0 : op == GRAPH_OP_CROSS_ENTROPY ||
                 op == GRAPH_OP_CROSS_ENTROPY_GRAD ||
                 op == GRAPH_OP_EMBEDDING_GRAD ? 1 : -1;
    /* ... and the per-sequence lengths some ops take last. */
    int lengths_at = op == GRAPH_OP_ATTENTION ? 3
                   : op == GRAPH_OP_MEAN_POOL ? 1 : -1;
    for (int i = reads_ids ? 1 : 0; i < n_in; i++)
        if (i != ids_at && i != lengths_at && in[i] >= 0 &&
            g->tensors[in[i]].dtype != GRAPH_F32)
            return why_set(why, why_len, "%s: input %d (%s) is %s, expected "
                           "float32", name, i + 1, g->tensors[in[i]].name,
                           graph_dtype_name(g->tensors[in[i]].dtype));
    *out = *x;
    *out_dtype = GRAPH_F32;

    switch (op) {
    case GRAPH_OP_EMBEDDING: {
        const graph_shape *t = &g->tensors[in[1]].shape;
        if (a->dtype != GRAPH_I32)
            return why_set(why, why_len, "embedding: ids must be int32, "
                           "got %s", graph_dtype_name(a->dtype));
        if (t->rank != 2)
            return why_set(why, why_len, "embedding: table %s is %s, "
                           "expected [vocab, dim]", label(g, in[1], "table"),
                           graph_shape_str(t, s0, sizeof s0));
        if (x->rank + 1 > GRAPH_MAX_RANK)
            return why_set(why, why_len, "embedding: ids of rank %d give a "
                           "result above rank %d", x->rank, GRAPH_MAX_RANK);
        out->dim[out->rank++] = t->dim[1];
        return 0;
    }
    case GRAPH_OP_LINEAR: {
        const graph_shape *w = &g->tensors[in[1]].shape;
        if (x->rank < 1)
            return why_set(why, why_len, "linear: input is a scalar");
        /* Linear weights are packed when the blob is written: a computed
         * tensor never is. */
        if (g->tensors[in[1]].kind != GRAPH_WEIGHT)
            return why_set(why, why_len, "linear: the weight must be a "
                           "dsc.weight, got another tensor %s",
                           graph_shape_str(w, s0, sizeof s0));
        if (w->rank != 2)
            return why_set(why, why_len, "linear: weight %s is %s, expected "
                           "[out_features, in_features]",
                           label(g, in[1], "weight"),
                           graph_shape_str(w, s0, sizeof s0));
        if (w->dim[1] != x->dim[x->rank - 1])
            return why_set(why, why_len, "linear: input %s has %lld features "
                           "but weight %s %s expects %lld",
                           graph_shape_str(x, s0, sizeof s0),
                           (long long)x->dim[x->rank - 1],
                           label(g, in[1], "weight"),
                           graph_shape_str(w, s1, sizeof s1),
                           (long long)w->dim[1]);
        out->dim[out->rank - 1] = w->dim[0];
        if (n_in > 2 && in[2] >= 0) {
            const graph_shape *b = &g->tensors[in[2]].shape;
            if (b->rank != 1 || b->dim[0] != w->dim[0])
                return why_set(why, why_len, "linear: bias %s is %s, expected "
                               "[%lld] to match weight %s",
                               label(g, in[2], "bias"),
                               graph_shape_str(b, s0, sizeof s0),
                               (long long)w->dim[0],
                               graph_shape_str(w, s1, sizeof s1));
        }
        if (n_in > 3 && in[3] >= 0 &&
            !graph_shape_equal(&g->tensors[in[3]].shape, out))
            return why_set(why, why_len, "linear: residual %s does not match "
                           "the result %s",
                           graph_shape_str(&g->tensors[in[3]].shape, s0,
                                           sizeof s0),
                           graph_shape_str(out, s1, sizeof s1));
        if (attrs->act < RT_ACT_NONE || attrs->act > RT_ACT_GELU_TANH)
            return why_set(why, why_len, "linear: unknown activation %d",
                           attrs->act);
        return 0;
    }
    case GRAPH_OP_ADD:
        if (!graph_shape_equal(x, &g->tensors[in[1]].shape))
            return why_set(why, why_len, "add: shapes differ: %s and %s",
                           graph_shape_str(x, s0, sizeof s0),
                           graph_shape_str(&g->tensors[in[1]].shape, s1,
                                           sizeof s1));
        return 0;
    case GRAPH_OP_RELU:
        return 0;
    case GRAPH_OP_GELU:
        if (attrs->act != RT_ACT_GELU && attrs->act != RT_ACT_GELU_TANH)
            return why_set(why, why_len, "gelu: unknown form %d", attrs->act);
        return 0;
    case GRAPH_OP_LAYERNORM: {
        if (x->rank < 1)
            return why_set(why, why_len, "layernorm: input is a scalar");
        int64_t dim = x->dim[x->rank - 1];
        for (int i = 1; i <= 2; i++) {
            const graph_shape *p = &g->tensors[in[i]].shape;
            if (p->rank != 1 || p->dim[0] != dim)
                return why_set(why, why_len, "layernorm: %s %s is %s, "
                               "expected [%lld] to match input %s",
                               i == 1 ? "weight" : "bias",
                               label(g, in[i], ""),
                               graph_shape_str(p, s0, sizeof s0),
                               (long long)dim,
                               graph_shape_str(x, s1, sizeof s1));
        }
        if (!(attrs->eps > 0))
            return why_set(why, why_len, "layernorm: eps must be > 0, got %g",
                           (double)attrs->eps);
        return 0;
    }
    case GRAPH_OP_SOFTMAX:
        if (x->rank < 1)
            return why_set(why, why_len, "softmax: input is a scalar");
        return 0;
    case GRAPH_OP_ATTENTION: {
        const graph_shape *k = &g->tensors[in[1]].shape;
        const graph_shape *v = &g->tensors[in[2]].shape;
        int h = attrs->heads;
        if (n_in > 3 && in[3] >= 0 && x->rank == 2) {
            /* Packed: sequence b is the next lengths[b] rows. */
            if (!graph_shape_equal(x, k) || v->rank != 2 ||
                v->dim[0] != x->dim[0])
                return why_set(why, why_len, "attention: packed q %s, k %s, "
                               "v %s must be [tokens, heads*dim] with q and "
                               "k alike", graph_shape_str(x, s0, sizeof s0),
                               graph_shape_str(k, s1, sizeof s1),
                               graph_shape_str(v, s2, sizeof s2));
            if (h < 1 || x->dim[1] % h || v->dim[1] % h)
                return why_set(why, why_len, "attention: %d heads do not "
                               "divide q width %lld and v width %lld", h,
                               (long long)x->dim[1], (long long)v->dim[1]);
            if (!(attrs->scale > 0))
                return why_set(why, why_len, "attention: scale must be > 0");
            const graph_tensor *l = &g->tensors[in[3]];
            if (lengths_bad(g, in[3], l->shape.rank == 1 ? l->shape.dim[0]
                                                         : 0, why, why_len,
                            "attention"))
                return -1;
            out->dim[1] = v->dim[1];
            return 0;
        }
        if (x->rank != 3 || k->rank != 3 || v->rank != 3 ||
            x->dim[0] != k->dim[0] || x->dim[1] != k->dim[1] ||
            k->dim[0] != v->dim[0] || k->dim[1] != v->dim[1] ||
            x->dim[2] != k->dim[2])
            return why_set(why, why_len, "attention: q %s, k %s, v %s must be "
                           "%s with q and k of one width",
                           graph_shape_str(x, s0, sizeof s0),
                           graph_shape_str(k, s1, sizeof s1),
                           graph_shape_str(v, s2, sizeof s2),
                           attrs->batch_first ? "[batch, seq, heads*dim]"
                                              : "[seq, batch, heads*dim]");
        if (h < 1 || x->dim[2] % h || v->dim[2] % h)
            return why_set(why, why_len, "attention: %d heads do not divide "
                           "q width %lld and v width %lld", h,
                           (long long)x->dim[2], (long long)v->dim[2]);
        if (!(attrs->scale > 0))
            return why_set(why, why_len, "attention: scale must be > 0");
        if (n_in > 3 && in[3] >= 0 &&
            lengths_bad(g, in[3], x->dim[attrs->batch_first ? 0 : 1], why,
                        why_len, "attention"))
            return -1;
        out->dim[2] = v->dim[2];
        return 0;
    }
    case GRAPH_OP_POSITIONS: {
        const graph_shape *t = &g->tensors[in[1]].shape;
        if (t->rank != 2)
            return why_set(why, why_len, "positions: table %s is %s, "
                           "expected [positions, dim]", label(g, in[1], "table"),
                           graph_shape_str(t, s0, sizeof s0));
        if (x->rank != 1 || x->dim[0] > t->dim[0])
            return why_set(why, why_len, "positions: %s needs one row per "
                           "token, up to the table's %lld rows",
                           graph_shape_str(x, s0, sizeof s0),
                           (long long)t->dim[0]);
        *out = (graph_shape){ 2, { x->dim[0], t->dim[1] } };
        return 0;
    }
    case GRAPH_OP_KV_ATTENTION: {
        const graph_shape *k = &g->tensors[in[1]].shape;
        const graph_shape *v = &g->tensors[in[2]].shape;
        const graph_shape *kc = &g->tensors[in[3]].shape;
        const graph_shape *vc = &g->tensors[in[4]].shape;
        int h = attrs->heads;
        if (x->rank != 2 || !graph_shape_equal(x, k) || v->rank != 2 ||
            v->dim[0] != x->dim[0] || !graph_shape_equal(kc, k) ||
            !graph_shape_equal(vc, v))
            return why_set(why, why_len, "kv_attention: q %s, k %s, v %s "
                           "must be [tokens, heads*dim], q and k alike, with "
                           "caches of their shapes",
                           graph_shape_str(x, s0, sizeof s0),
                           graph_shape_str(k, s1, sizeof s1),
                           graph_shape_str(v, s2, sizeof s2));
        if (h < 1 || x->dim[1] % h || v->dim[1] % h)
            return why_set(why, why_len, "kv_attention: %d heads do not "
                           "divide q width %lld and v width %lld", h,
                           (long long)x->dim[1], (long long)v->dim[1]);
        if (!(attrs->scale > 0))
            return why_set(why, why_len, "kv_attention: scale must be > 0");
        out->dim[1] = v->dim[1];
        return 0;
    }
    case GRAPH_OP_LAST:
        if (x->rank < 1)
            return why_set(why, why_len, "last: input is a scalar");
        out->dim[0] = 1;
        return 0;
    case GRAPH_OP_DROPOUT:
        if (!(attrs->p >= 0 && attrs->p < 1))
            return why_set(why, why_len, "dropout: p must be in [0, 1), got "
                           "%g", (double)attrs->p);
        return 0;
    case GRAPH_OP_CROSS_ENTROPY:
    case GRAPH_OP_CROSS_ENTROPY_GRAD: {
        const graph_tensor *t = &g->tensors[in[1]];
        graph_shape rows = *x;
        rows.rank = x->rank - 1;
        if (x->rank < 1 || t->dtype != GRAPH_I32 ||
            !graph_shape_equal(&rows, &t->shape))
            return why_set(why, why_len, "cross_entropy: logits %s need "
                           "int32 targets of shape %s (all but the last "
                           "dimension), got %s %s",
                           graph_shape_str(x, s0, sizeof s0),
                           graph_shape_str(&rows, s1, sizeof s1),
                           graph_dtype_name(t->dtype),
                           graph_shape_str(&t->shape, s2, sizeof s2));
        if (op == GRAPH_OP_CROSS_ENTROPY)
            *out = (graph_shape){ 1, { 1 } };
        return 0;
    }
    case GRAPH_OP_DROPOUT_GRAD:
        return 0;
    case GRAPH_OP_RELU_GRAD:
    case GRAPH_OP_DROPOUT_RELU_GRAD:
    case GRAPH_OP_SOFTMAX_GRAD:
    case GRAPH_OP_GELU_GRAD:
        if (!graph_shape_equal(x, &g->tensors[in[1]].shape))
            return why_set(why, why_len, "%s: shapes differ", name);
        return 0;
    case GRAPH_OP_LINEAR_GRAD_X: {
        const graph_shape *w = &g->tensors[in[1]].shape;
        if (x->rank < 1 || w->rank != 2 || x->dim[x->rank - 1] != w->dim[0])
            return why_set(why, why_len, "linear_grad_x: dy %s, weight %s",
                           graph_shape_str(x, s0, sizeof s0),
                           graph_shape_str(w, s1, sizeof s1));
        out->dim[out->rank - 1] = w->dim[1];
        return 0;
    }
    case GRAPH_OP_LINEAR_GRAD_W:
    case GRAPH_OP_BIAS_GRAD:
    case GRAPH_OP_LAYERNORM_GRAD_GAMMA:
    case GRAPH_OP_EMBEDDING_GRAD:
        *out = g->tensors[in[n_in - 1]].shape;
        return 0;
    case GRAPH_OP_LAYERNORM_GRAD_X:
        if (!graph_shape_equal(x, &g->tensors[in[1]].shape))
            return why_set(why, why_len, "layernorm_grad_x: shapes differ");
        return 0;
    case GRAPH_OP_ATTENTION_GRAD: {
        const graph_shape *q = &g->tensors[in[1]].shape;
        *out = *q;
        out->dim[2] = q->dim[2] + g->tensors[in[2]].shape.dim[2] +
                      g->tensors[in[3]].shape.dim[2];
        return 0;
    }
    case GRAPH_OP_RMSNORM:
    case GRAPH_OP_SILU_MUL:
    case GRAPH_OP_MLA_ATTENTION:
    case GRAPH_OP_MOE_ROUTE:
    case GRAPH_OP_MOE_EXPERT:
        return graph_infer_shape_deepseek(g, op, in, attrs, out, why, why_len);
    case GRAPH_OP_MEAN_POOL:
        if (x->rank == 2) {  /* packed: sequence b is the next lengths[b] rows */
            const graph_tensor *l = &g->tensors[in[1]];
            int64_t b = l->shape.rank == 1 ? l->shape.dim[0] : 0;
            if (lengths_bad(g, in[1], b, why, why_len, "mean_pool"))
                return -1;
            *out = (graph_shape){ 2, { b, x->dim[1] } };
            return 0;
        }
        if (x->rank != 3)
            return why_set(why, why_len, "mean_pool: x is %s, expected "
                           "[batch, seq, dim] or packed [tokens, dim]",
                           graph_shape_str(x, s0, sizeof s0));
        if (lengths_bad(g, in[1], x->dim[0], why, why_len, "mean_pool"))
            return -1;
        *out = (graph_shape){ 2, { x->dim[0], x->dim[2] } };
        return 0;
    case GRAPH_OP_L2_NORMALIZE:
        if (x->rank < 1)
            return why_set(why, why_len, "l2_normalize: input is a scalar");
        return 0;
    case GRAPH_OP_COUNT:
        break;
    }
    return why_set(why, why_len, "unknown op %d", (int)op);
}
