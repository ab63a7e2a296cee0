/* emit_deepseek.c — the runtime calls of rmsnorm, silu_mul, mla_attention,
 * moe_route and moe_expert. */
#include "backend/emit_deepseek.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/graph_deepseek.h"


/* A float as a C literal that reads back to the same float. */
static const char *flit(float v, char *buf, size_t len)
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


static long long width(const graph *g, int t)
{
    const graph_shape *s = &g->tensors[t].shape;
    return (long long)(s->rank ? s->dim[s->rank - 1] : 1);
}


void emit_c_deepseek(strbuf *sb, const graph *g, const graph_node *n,
                     char *const *name, const char *rows)
{
    const char *y = name[n->output];
    const int *in = n->inputs;
    const graph_attrs *a = &n->attrs;
    char f[6][48];
    switch (n->op) {
    case GRAPH_OP_RMSNORM:
        sb_printf(sb, "    rt_rmsnorm(ctx, %s, %s, %lld, %s, %s, %lld, %s);\n",
                  y, name[in[0]], (long long)graph_row_stride(g, in[0]),
                  name[in[1]], rows, width(g, in[0]),
                  flit(a->eps, f[0], sizeof f[0]));
        break;
    case GRAPH_OP_SILU_MUL:
        sb_printf(sb, "    rt_silu_mul(ctx, %s, %s, %lld, %s, %lld, %s, %lld);\n",
                  y, name[in[0]], (long long)graph_row_stride(g, in[0]),
                  name[in[1]], (long long)graph_row_stride(g, in[1]), rows,
                  width(g, in[0]));
        break;
    case GRAPH_OP_MLA_ATTENTION: {
        mla_dims d;
        graph_mla_dims(g, n, &d);
        sb_printf(sb, "    {\n        static const rt_mla_shape s = {\n"
                  "            .heads = %lld, .d_nope = %lld, .d_rope = %lld, "
                  ".d_v = %lld, .rank = %lld,\n"
                  "            .ldq = %lld, .ldkv = %lld, .ldo = %lld, "
                  ".scale = %s, .eps = %s,\n",
                  (long long)d.heads, (long long)d.d_nope, (long long)d.d_rope,
                  (long long)d.d_v, (long long)d.rank,
                  (long long)graph_row_stride(g, in[0]),
                  (long long)graph_row_stride(g, in[1]),
                  (long long)graph_row_stride(g, n->output),
                  flit(a->scale, f[0], sizeof f[0]),
                  flit(a->eps, f[1], sizeof f[1]));
        sb_printf(sb, "            .rope_theta = %s, .rope_factor = %s, "
                  ".rope_low = %s, .rope_high = %s,\n"
                  "            .rope_attn = %s, .rope_yarn = %d, "
                  ".rope_interleave = %d };\n",
                  flit(a->rope_theta, f[2], sizeof f[2]),
                  flit(a->rope_factor, f[3], sizeof f[3]),
                  flit(a->rope_low, f[4], sizeof f[4]),
                  flit(a->rope_high, f[5], sizeof f[5]),
                  flit(a->rope_attn, f[0], sizeof f[0]), a->rope_yarn,
                  a->rope_interleave);
        sb_printf(sb, "        rt_mla_attention(ctx, %s, %s, %s, %s, %s, %s, "
                  "n, pos, &s);\n    }\n", y, name[in[0]], name[in[1]],
                  name[in[2]], name[in[3]], name[in[4]]);
        break;
    }
    case GRAPH_OP_MOE_ROUTE:
        sb_printf(sb, "    {\n        static const rt_moe_shape s = {\n"
                  "            .experts = %lld, .n_group = %d, "
                  ".topk_group = %d, .top_k = %d, .norm = %d, .scale = %s };\n"
                  "        if (rt_moe_route(ctx, %s, %s, %s, %s, &s))\n"
                  "            return DSC_ENOMEM;\n    }\n",
                  width(g, in[0]), a->n_group, a->topk_group,
                  a->experts_per_tok, a->norm_topk,
                  flit(a->routed_scale, f[0], sizeof f[0]), y, name[in[0]],
                  name[in[1]], rows);
        break;
    case GRAPH_OP_MOE_EXPERT:
        sb_printf(sb, "    if (rt_moe_expert(ctx, %s, %s, %s, %s, %s, %s, %s, "
                  "%lld, %lld, %d, %d))\n        return DSC_ENOMEM;\n",
                  y, name[in[0]], name[in[1]], name[in[2]], name[in[3]],
                  name[in[4]], rows, width(g, in[0]), width(g, in[4]),
                  a->experts_per_tok, a->expert);
        break;
    default:
        break;
    }
}
