/* cmd_graph.c — dsc graph: the op graph as Graphviz DOT. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "backend/emit_dot.h"
#include "io/fileio.h"

int cmd_graph(const cli *c)
{
    build_options opts = cli_build_options(c);
    built_model b = {0};
    model *m = NULL;
    dsc_err err;
    if (c->after_passes ? build_model(c->model_path, &opts, &b, &err)
                        : !(m = frontend_load(c->model_path, c->defines,
                                              c->n_defines, NULL, &err))) {
        cli_print_err(&err);
        return 1;
    }
    const model *shown = c->after_passes ? b.model : m;
    char *dot = emit_dot(shown, c->after_passes ? b.passes : "");
    int rc = 0;
    if (!dot) {
        fprintf(stderr, "dsc: error: out of memory drawing the graph\n");
        rc = 1;
    } else if (c->out_path) {
        if ((rc = file_write_atomic(c->out_path, dot, strlen(dot), &err) != 0))
            cli_print_err(&err);
    } else {
        fputs(dot, stdout);
    }
    free(dot);
    model_free(m);
    if (c->after_passes)
        built_model_free(&b);
    return rc;
}
