/* graph_edit.c — structural edits the passes share. */
#include <stdlib.h>

#include "ir/graph.h"


int graph_remove_nodes(graph *g, const char *dead, dsc_err *err)
{
    int *new_index = malloc(((size_t)g->n_nodes + 1) * sizeof(int));
    if (!new_index)
        return err_set(err, "error: out of memory editing the graph");
    int kept = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        new_index[i] = dead[i] ? -1 : kept;
        if (!dead[i])
            g->nodes[kept++] = g->nodes[i];
    }
    for (int t = 0; t < g->n_tensors; t++) {
        graph_tensor *x = &g->tensors[t];
        if (x->producer >= 0)
            x->producer = new_index[x->producer];
    }
    /* A removed node's result is no one's now; the producers above already
     * say so (-1).  Surviving nodes must still be the producers of their
     * outputs. */
    for (int i = 0; i < kept; i++)
        g->tensors[g->nodes[i].output].producer = i;
    g->n_nodes = kept;
    free(new_index);
    return 0;
}


int graph_consumers(const graph *g, int t, int *nodes, int max)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_inputs; j++)
            if (g->nodes[i].inputs[j] == t) {
                if (n < max)
                    nodes[n] = i;
                n++;
                break;
            }
    return n;
}



void graph_make_view(graph *g, int t, int base, int64_t col)
{
    g->tensors[t].view_of = base;
    g->tensors[t].view_col = col;
}


int graph_storage(const graph *g, int t)
{
    while (g->tensors[t].view_of >= 0)
        t = g->tensors[t].view_of;
    return t;
}


int64_t graph_row_stride(const graph *g, int t)
{
    const graph_shape *s = &g->tensors[graph_storage(g, t)].shape;
    return s->rank ? s->dim[s->rank - 1] : 1;
}
