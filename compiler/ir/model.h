/* model.h — a loaded model: its graph, where it came from, its config. */
#ifndef DSC_MODEL_H
#define DSC_MODEL_H

#include "ir/graph.h"

/* A configuration value as finally used (defaults overridden by -D). */
typedef struct model_config_entry {
    char *key;
    char *value;  /* as written in generated comments: 256, 1e-05, true */
} model_config_entry;

typedef struct model {
    graph *graph;
    char *path;   /* the model file, as given */
    char *name;   /* C identifier from the file name: seed_encoder */
    model_config_entry *config;  /* sorted by key */
    int n_config;
} model;

void model_free(model *m);

#endif
