/* pass_eval_mode.c — the forward as PyTorch's eval mode computes it.
 *
 * Dropout is an identity outside training, and the loss is for `dsc train`
 * alone: both leave the graph here, tensors and all, so the forward's graph
 * (and the C emitted from it) is the one the model would give without
 * them. */
#include <stdlib.h>

#include "passes/passes.h"


/* Drop the tensors with gone[t] != 0 (no node may still read or make
 * them), renumbering the rest in order. */
static int compact_tensors(graph *g, const char *gone, dsc_err *err)
{
    int *index = malloc(((size_t)g->n_tensors + 1) * sizeof(int));
    if (!index)
        return err_set(err, "error: out of memory in eval-mode");
    int kept = 0;
    for (int t = 0; t < g->n_tensors; t++) {
        index[t] = gone[t] ? -1 : kept;
        if (!gone[t])
            g->tensors[kept++] = g->tensors[t];
    }
    g->n_tensors = kept;
    for (int t = 0; t < kept; t++)
        if (g->tensors[t].view_of >= 0)
            g->tensors[t].view_of = index[g->tensors[t].view_of];
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        n->output = index[n->output];
        for (int j = 0; j < n->n_inputs; j++)
            if (n->inputs[j] >= 0)
                n->inputs[j] = index[n->inputs[j]];
    }
    free(index);
    return 0;
}


int pass_eval_mode(graph *g, pass_report *report, dsc_err *err)
{
    char *dead = calloc((size_t)g->n_nodes + 1, 1);
    char *gone = calloc((size_t)g->n_tensors + 1, 1);
    int removed = 0, rc = -1;
    if (!dead || !gone) {
        err_set(err, "error: out of memory in eval-mode");
        goto done;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (n->op == GRAPH_OP_ATTENTION)
            n->attrs.p = 0;
        if (n->op != GRAPH_OP_DROPOUT && n->op != GRAPH_OP_CROSS_ENTROPY)
            continue;
        int y = n->output;
        if (g->tensors[y].kind == GRAPH_OUTPUT) {
            err_set(err, "%s:%d: error: a graph output cannot be the result "
                    "of %s", n->user_loc.file, n->user_loc.line,
                    graph_op_name(n->op));
            goto done;
        }
        /* Readers of a dropout read its input instead. */
        for (int k = i + 1; n->op == GRAPH_OP_DROPOUT && k < g->n_nodes; k++)
            for (int j = 0; j < g->nodes[k].n_inputs; j++)
                if (g->nodes[k].inputs[j] == y)
                    g->nodes[k].inputs[j] = n->inputs[0];
        dead[i] = gone[y] = 1;
        removed++;
    }
    /* Whatever read the loss goes too (it is for training). */
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_inputs && !dead[i]; j++)
            if (g->nodes[i].inputs[j] >= 0 && gone[g->nodes[i].inputs[j]] &&
                g->tensors[g->nodes[i].output].kind != GRAPH_OUTPUT) {
                dead[i] = gone[g->nodes[i].output] = 1;
                removed++;
            }
    g->loss_plus1 = 0;
    if (graph_remove_nodes(g, dead, err) || compact_tensors(g, gone, err))
        goto done;
    if (report)
        report->changed = removed;
    rc = 0;
done:
    free(dead);
    free(gone);
    return rc;
}
