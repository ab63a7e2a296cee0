/* pass_fuse_epilogue.c — fold what follows a linear into its GEMM.
 *
 * relu(linear(x)) and gelu(linear(x)) become the linear's activation;
 * add(linear(x), r) becomes the linear's residual input.  The runtime then
 * applies bias, activation and residual to each output tile while it is
 * still in cache, instead of streaming the whole result through memory
 * again per op.  A linear whose result is also read elsewhere (or is a graph
 * output) keeps its plain form: the others need the value before the
 * epilogue. */
#include <stdlib.h>

#include "dsc_runtime.h"
#include "passes/passes.h"


/* The one node reading tensor t, or -1 if none or several do. */
static int sole_consumer(const graph *g, int t)
{
    int node;
    return graph_consumers(g, t, &node, 1) == 1 ? node : -1;
}


/* Linear node i whose output may take an epilogue from its consumer:
 * the consumer, else -1. */
static int fusable_consumer(const graph *g, int i)
{
    const graph_node *n = &g->nodes[i];
    if (n->op != GRAPH_OP_LINEAR ||
        g->tensors[n->output].kind != GRAPH_INTERMEDIATE)
        return -1;
    return sole_consumer(g, n->output);
}


int pass_fuse_epilogue(graph *g, pass_report *report, dsc_err *err)
{
    char *dead = calloc((size_t)g->n_nodes + 1, 1);
    if (!dead)
        return err_set(err, "error: out of memory in fuse-epilogue");
    int fused = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (dead[i])
            continue;
        int c = fusable_consumer(g, i);
        if (c < 0)
            continue;
        graph_node *lin = &g->nodes[i];
        graph_node *next = &g->nodes[c];
        int has_res = lin->n_inputs > 3 && lin->inputs[3] >= 0;
        int act = next->op == GRAPH_OP_RELU ? RT_ACT_RELU
                : next->op == GRAPH_OP_GELU ? next->attrs.act : -1;
        if (act >= 0 && lin->attrs.act == RT_ACT_NONE && !has_res) {
            lin->attrs.act = act;
        } else if (next->op == GRAPH_OP_ADD && !has_res) {
            int other = next->inputs[0] == lin->output ? next->inputs[1]
                                                       : next->inputs[0];
            int made_by = g->tensors[other].producer;
            if (other == lin->output || made_by > i)
                continue;  /* x + x, or r is not computed yet at the linear */
            for (int k = lin->n_inputs; k < 3; k++)
                lin->inputs[k] = -1;
            lin->inputs[3] = other;
            lin->n_inputs = 4;
        } else {
            continue;
        }
        /* The linear now writes what the consumer wrote (a graph output
         * stays one); its own result tensor is left unused. */
        g->tensors[lin->output].producer = -1;
        lin->output = next->output;
        g->tensors[lin->output].producer = i;
        dead[c] = 1;
        fused++;
        i--;  /* the same linear may take one more epilogue step */
    }
    int rc = graph_remove_nodes(g, dead, err);
    free(dead);
    if (report)
        report->changed = fused;
    return rc;
}
