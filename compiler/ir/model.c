#include "ir/model.h"

#include <stdlib.h>


void model_free(model *m)
{
    if (!m)
        return;
    graph_free(m->graph);
    for (int i = 0; i < m->n_config; i++) {
        free(m->config[i].key);
        free(m->config[i].value);
    }
    free(m->config);
    free(m->path);
    free(m->name);
    free(m);
}
