/* pass_dce.c — drop the nodes no graph output needs.
 *
 * Walk back from the outputs marking what they read; everything unmarked
 * goes.  Weights read only by dropped nodes drop out with them: the weight
 * layout packs only what surviving nodes read. */
#include <stdlib.h>

#include "passes/passes.h"


int pass_dce(graph *g, pass_report *report, dsc_err *err)
{
    char *needed = calloc((size_t)g->n_tensors + 1, 1);
    char *dead = malloc((size_t)g->n_nodes + 1);
    if (!needed || !dead) {
        free(needed);
        free(dead);
        return err_set(err, "error: out of memory in dce");
    }
    for (int t = 0; t < g->n_tensors; t++)
        needed[t] = g->tensors[t].kind == GRAPH_OUTPUT ||
                    g->tensors[t].kind == GRAPH_GRAD;
    /* Nodes come in topological order: one backward sweep suffices. */
    int removed = 0;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const graph_node *n = &g->nodes[i];
        dead[i] = !needed[n->output];
        removed += dead[i];
        if (dead[i])
            continue;
        for (int j = 0; j < n->n_inputs; j++)
            if (n->inputs[j] >= 0)
                needed[graph_storage(g, n->inputs[j])] = 1;
    }
    int rc = graph_remove_nodes(g, dead, err);
    free(needed);
    free(dead);
    if (report)
        report->changed = removed;
    return rc;
}
