/* graph_deepseek.h — shape rules of the DeepSeek-V3 ops (rmsnorm,
 * silu_mul, mla_attention, moe_route, moe_expert), kept apart from
 * graph_shape.c's switch, which hands them here. */
#ifndef DSC_GRAPH_DEEPSEEK_H
#define DSC_GRAPH_DEEPSEEK_H

#include "ir/graph.h"

int graph_infer_shape_deepseek(const graph *g, graph_op op, const int *in,
                               const graph_attrs *attrs, graph_shape *out,
                               char *why, int why_len);

/* mla_attention's head sizes, from its inputs' shapes. */
typedef struct mla_dims {
    int64_t heads, d_nope, d_rope, d_v, rank;
} mla_dims;
void graph_mla_dims(const graph *g, const graph_node *n, mla_dims *d);

#endif
