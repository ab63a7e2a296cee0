/* graph_shape_deepseek.c — what the DeepSeek-V3 ops accept and make. */
#include <stdarg.h>
#include <stdio.h>

#include "dsc_runtime.h"
#include "ir/graph_deepseek.h"


static int why_set(char *why, int len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, (size_t)len, fmt, ap);
    va_end(ap);
    return -1;
}


static const graph_shape *shape_of(const graph *g, int t)
{
    return &g->tensors[t].shape;
}


static int64_t last_dim(const graph_shape *s)
{
    return s->rank ? s->dim[s->rank - 1] : 1;
}


void graph_mla_dims(const graph *g, const graph_node *n, mla_dims *d)
{
    const graph_shape *q = shape_of(g, n->inputs[0]);
    const graph_shape *kv = shape_of(g, n->inputs[1]);
    const graph_shape *kvb = shape_of(g, n->inputs[3]);
    d->heads = n->attrs.heads > 0 ? n->attrs.heads : 1;
    d->rank = shape_of(g, n->inputs[2])->dim[0];
    d->d_rope = last_dim(kv) - d->rank;
    d->d_nope = last_dim(q) / d->heads - d->d_rope;
    d->d_v = kvb->dim[0] / d->heads - d->d_nope;
}


static int mla_shape(const graph *g, const int *in, const graph_attrs *a,
                     graph_shape *out, char *why, int why_len)
{
    char s0[96], s1[96], s2[96], s3[96];
    const graph_shape *q = shape_of(g, in[0]), *kv = shape_of(g, in[1]);
    const graph_shape *nw = shape_of(g, in[2]), *kvb = shape_of(g, in[3]);
    const graph_shape *c = shape_of(g, in[4]);
    int64_t h = a->heads;
    if (q->rank != 2 || kv->rank != 2 || nw->rank != 1 || kvb->rank != 2 ||
        c->rank != 2 || kv->dim[0] != q->dim[0] || h < 1 ||
        q->dim[1] % h || kvb->dim[0] % h)
        return why_set(why, why_len, "mla_attention: q %s, kv %s, kv_norm %s, "
                       "kv_b %s must be [tokens, heads*(nope+rope)], "
                       "[tokens, rank+rope], [rank], [heads*(nope+v), rank] "
                       "with %lld heads", graph_shape_str(q, s0, sizeof s0),
                       graph_shape_str(kv, s1, sizeof s1),
                       graph_shape_str(nw, s2, sizeof s2),
                       graph_shape_str(kvb, s3, sizeof s3), (long long)h);
    if (g->tensors[in[3]].kind != GRAPH_WEIGHT)  /* packed, as a linear's */
        return why_set(why, why_len, "mla_attention: kv_b must be a "
                       "dsc.weight, got another tensor %s",
                       graph_shape_str(kvb, s0, sizeof s0));
    int64_t rank = nw->dim[0], rope = kv->dim[1] - rank;
    int64_t nope = q->dim[1] / h - rope, v = kvb->dim[0] / h - nope;
    if (rank > RT_MLA_MAX_RANK || rope < 2 || rope % 2 ||
        rope > RT_MLA_MAX_ROPE || nope < 0 || v < 1 || kvb->dim[1] != rank)
        return why_set(why, why_len, "mla_attention: rank %lld (at most %d), "
                       "rope %lld (even, 2..%d), nope %lld, v %lld from q %s, "
                       "kv %s, kv_b %s do not fit", (long long)rank,
                       RT_MLA_MAX_RANK, (long long)rope, RT_MLA_MAX_ROPE,
                       (long long)nope, (long long)v,
                       graph_shape_str(q, s0, sizeof s0),
                       graph_shape_str(kv, s1, sizeof s1),
                       graph_shape_str(kvb, s2, sizeof s2));
    if (c->dim[1] != rank + rope || c->dim[0] < q->dim[0])
        return why_set(why, why_len, "mla_attention: cache %s must be "
                       "[context, %lld]", graph_shape_str(c, s0, sizeof s0),
                       (long long)(rank + rope));
    if (!(a->scale > 0) || !(a->eps > 0) || !(a->rope_theta > 1) ||
        (a->rope_yarn && !(a->rope_factor > 0)))
        return why_set(why, why_len, "mla_attention: scale, eps, rope_theta "
                       "and the YaRN factor must be positive");
    *out = (graph_shape){ 2, { q->dim[0], h * v } };
    return 0;
}


int graph_infer_shape_deepseek(const graph *g, graph_op op, const int *in,
                               const graph_attrs *a, graph_shape *out,
                               char *why, int why_len)
{
    char s0[96], s1[96], s2[96];
    const graph_shape *x = shape_of(g, in[0]);
    *out = *x;
    switch (op) {
    case GRAPH_OP_RMSNORM: {
        const graph_shape *w = shape_of(g, in[1]);
        if (x->rank < 1 || w->rank != 1 || w->dim[0] != last_dim(x))
            return why_set(why, why_len, "rmsnorm: weight %s does not match "
                           "input %s", graph_shape_str(w, s0, sizeof s0),
                           graph_shape_str(x, s1, sizeof s1));
        if (!(a->eps > 0))
            return why_set(why, why_len, "rmsnorm: eps must be > 0");
        return 0;
    }
    case GRAPH_OP_SILU_MUL:
        if (x->rank != 2 || !graph_shape_equal(x, shape_of(g, in[1])))
            return why_set(why, why_len, "silu_mul: a %s and b %s must be one "
                           "[rows, dim] shape", graph_shape_str(x, s0, sizeof s0),
                           graph_shape_str(shape_of(g, in[1]), s1, sizeof s1));
        return 0;
    case GRAPH_OP_MLA_ATTENTION:
        if (!g->tensors[in[0]].dynamic)
            return why_set(why, why_len, "mla_attention needs inputs with a "
                           "runtime token count (dsc.input(..., {dynamic = "
                           "true}))");
        return mla_shape(g, in, a, out, why, why_len);
    case GRAPH_OP_MOE_ROUTE: {
        const graph_shape *b = shape_of(g, in[1]);
        int64_t e = last_dim(x);
        if (x->rank != 2 || b->rank != 1 || b->dim[0] != e)
            return why_set(why, why_len, "moe_route: logits %s and bias %s "
                           "must be [tokens, experts] and [experts]",
                           graph_shape_str(x, s0, sizeof s0),
                           graph_shape_str(b, s1, sizeof s1));
        if (a->n_group < 1 || e % a->n_group || a->topk_group < 1 ||
            a->topk_group > a->n_group || a->experts_per_tok < 1 ||
            a->experts_per_tok > a->topk_group * (e / a->n_group))
            return why_set(why, why_len, "moe_route: %lld experts in n_group "
                           "%d groups, topk_group %d, num_experts_per_tok %d: "
                           "the groups must divide the experts and the kept "
                           "groups hold at least num_experts_per_tok",
                           (long long)e, a->n_group, a->topk_group,
                           a->experts_per_tok);
        out->dim[1] = 2 * (int64_t)a->experts_per_tok;
        return 0;
    }
    case GRAPH_OP_MOE_EXPERT: {
        const graph_shape *xs = shape_of(g, in[1]), *r = shape_of(g, in[2]);
        const graph_shape *gu = shape_of(g, in[3]), *d = shape_of(g, in[4]);
        if (x->rank != 2 || !graph_shape_equal(x, xs) || r->rank != 2 ||
            r->dim[0] != x->dim[0] || r->dim[1] != 2 * (int64_t)a->experts_per_tok ||
            gu->rank != 2 || d->rank != 2 || gu->dim[1] != x->dim[1] ||
            d->dim[0] != x->dim[1] || gu->dim[0] != 2 * d->dim[1] ||
            a->expert < 0)
            return why_set(why, why_len, "moe_expert: acc/x %s, route %s, "
                           "gate_up %s, down %s do not fit together",
                           graph_shape_str(x, s0, sizeof s0),
                           graph_shape_str(r, s1, sizeof s1),
                           graph_shape_str(gu, s2, sizeof s2),
                           graph_shape_str(d, s0, sizeof s0));
        return 0;
    }
    default:
        return why_set(why, why_len, "unknown op %d", (int)op);
    }
}
