/* cmd_compile.c — dsc compile: write NAME.c, NAME.h and optionally the
 * weight blob (with -o out/other.c: out/other.c, out/other.h, ...). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "io/fileio.h"
#include "io/weights.h"
#include "driver/train.h"
#include "util/ctext.h"

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}


int cmd_compile(const cli *c)
{
    build_options opts = cli_build_options(c);
    built_model b;
    built_train bt = {0};
    dsc_err err;
    if (c->n_inputs || c->n_outputs || c->aot)
        return cli_usage_error("%s", "compile takes no --input, --output or "
                           "--aot (those are for run)");
    if (c->random_weights && c->weights_path)
        return cli_usage_error("%s", "--weights and --random-weights exclude "
                           "each other");
    /* With -o, the .c #includes the header by the name it is written
     * under, so that name must be fit for an #include. */
    char *c_path = c->out_path ? cli_with_extension(c->out_path, ".c") : NULL;
    char *h_path = c_path ? cli_with_extension(c_path, ".h") : NULL;
    if (c->out_path && (!c_path || !h_path)) {
        free(c_path);
        free(h_path);
        fprintf(stderr, "dsc: error: out of memory\n");
        return 1;
    }
    if (c_path) {
        opts.source_name = base_name(c_path);
        opts.header_name = base_name(h_path);
        if (!ctext_is_file_name(opts.source_name) ||
            !ctext_is_file_name(opts.header_name)) {
            free(c_path);
            free(h_path);
            return cli_usage_error("-o %s: the file name may hold only "
                                   "letters, digits, '.', '_', '+' and '-' "
                                   "(the C #includes the header by its name)",
                                   c->out_path);
        }
    }
    /* --train: NAME_train_step beside NAME_forward (driver/train.h). */
    if (c->train ? build_train(c->model_path, &opts, &bt, &err)
                 : build_model(c->model_path, &opts, &b, &err)) {
        cli_print_err(&err);
        free(c_path);
        free(h_path);
        return 1;
    }
    if (c->train) {
        b = bt.fwd;
        b.source = bt.train.source;
        b.header = bt.train.header;
    }
    if (!c_path) {
        c_path = cli_with_extension(b.model->name, ".c");
        h_path = cli_with_extension(c_path, ".h");
    }
    char *bin_path = cli_with_extension(c_path, ".bin");
    int want_blob = c->weights_path || c->random_weights;
    float *blob = want_blob
        ? weights_make_blob(b.model->graph, &b.weights, c->weights_path,
                            c->seed, stderr, &err)
        : NULL;
    int rc = 1;
    char stats[1024];
    build_stats_json(&b, stats, sizeof stats - 1);
    strcat(stats, "\n");
    if (want_blob && !blob) {
        cli_print_err(&err);
    } else {
        const char *path[4] = { c->stats_path, h_path, c_path,
                                want_blob ? bin_path : NULL };
        const void *data[4] = { stats, b.header, b.source, blob };
        size_t len[4] = { strlen(stats), strlen(b.header), strlen(b.source),
                          (size_t)b.weights.total_floats * sizeof(float) };
        int i = 0;
        while (i < 4 && !(path[i] &&
                          file_write_atomic(path[i], data[i], len[i], &err)))
            i++;
        if (i < 4) {
            cli_print_err(&err);
            /* All or nothing: remove what this run wrote, and only that
             * (not the path it refused, nor files it never reached). */
            while (i-- > 0)
                if (path[i])
                    remove(path[i]);
        } else {
            fprintf(stderr, "dsc: wrote %s and %s%s%s\n", c_path, h_path,
                    want_blob ? " and " : "", want_blob ? bin_path : "");
            rc = 0;
        }
    }
    free(blob);
    free(c_path);
    free(h_path);
    free(bin_path);
    if (c->train)
        built_train_free(&bt);
    else
        built_model_free(&b);
    return rc;
}
