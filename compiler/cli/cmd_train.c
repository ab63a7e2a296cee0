/* cmd_train.c — dsc train: the seed's training loop.  Each epoch is one
 * step of the generated NAME_train_step over the whole input batch:
 * zero_grad, forward, loss, backward, Adam, printing the loss as the seed
 * prints loss.item(). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "driver/runner.h"
#include "driver/train.h"
#include "dsc_runtime.h"
#include "io/npy.h"
#include "util/timing.h"

#define MAX_INPUTS 16


/* A double as Python's repr prints it: the shortest text that reads back
 * to the same value. */
static const char *python_repr(double v, char *buf, size_t len)
{
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, len, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    if (isfinite(v) && !strpbrk(buf, ".e"))
        strncat(buf, ".0", len - strlen(buf) - 1);
    return buf;
}


/* Every target of the loss in [0, classes): name the first that is not. */
static int check_targets(const built_train *b, const cli *c, void *const *io)
{
    const graph *g = b->train.model->graph;
    const graph_tensor *x = &g->tensors[b->targets];
    if (x->kind != GRAPH_INPUT)
        return 0;
    int k = 0;
    for (int t = 0; t < b->targets; t++)
        k += g->tensors[t].kind == GRAPH_INPUT;
    const int32_t *ids = io[k];
    int64_t n = graph_shape_count(&x->shape);
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] >= 0 && ids[i] < b->classes)
            continue;
        const char *path = "random input";
        for (int j = 0; j < c->n_inputs; j++)
            if (strcmp(c->inputs[j].name, x->name) == 0)
                path = c->inputs[j].path;
        fprintf(stderr, "%s: error: target %s[%lld] (flat index) = %d is "
                "not a class in [0, %lld)\n", path, x->name, (long long)i,
                (int)ids[i], (long long)b->classes);
        return -1;
    }
    return 0;
}


int cmd_train(const cli *c)
{
    build_options opts = cli_build_options(c);
    built_train b;
    runner r = {0};
    dsc_err err;
    void *io[MAX_INPUTS + 1] = {0};
    int n_io = 0, rc = 1;
    float *state = NULL, *losses = NULL;
    st_file *orig = NULL;
    if (c->out_path || c->random_weights || c->n_outputs)
        return cli_usage_error("%s", "train takes no -o, --output or "
                               "--random-weights (see --save)");
    int threads = cli_thread_count(c);
    if (threads < 0)
        return 1;
    if (build_train(c->model_path, &opts, &b, &err)) {
        cli_print_err(&err);
        return 1;
    }
    const graph *g = b.train.model->graph;
    for (int i = 0; i < c->n_inputs; i++) {
        int found = 0;
        for (int t = 0; t < g->n_tensors; t++)
            found |= g->tensors[t].kind == GRAPH_INPUT &&
                     strcmp(g->tensors[t].name, c->inputs[i].name) == 0;
        if (!found) {
            fprintf(stderr, "dsc: error: the model has no input named '%s'\n",
                    c->inputs[i].name);
            goto done;
        }
    }
    uint64_t rng = c->seed ^ 0x5eedULL;
    int64_t tokens = 0;
    for (int t = 0; t < g->n_tensors; t++) {
        if (g->tensors[t].kind != GRAPH_INPUT)
            continue;
        if (n_io == MAX_INPUTS) {
            fprintf(stderr, "%s: error: more than %d inputs\n", c->model_path,
                    MAX_INPUTS);
            goto done;
        }
        if (!(io[n_io++] = cli_make_input(g, t, c, &rng, &tokens, &err))) {
            cli_print_err(&err);
            goto done;
        }
    }
    if (check_targets(&b, c, io))
        goto done;
    runner_options ro = { .weights_path = c->weights_path, .seed = c->seed,
                          .threads = threads, .aot = c->aot,
                          .notes = stderr };
    if (runner_open(&r, &b.train, &ro, &err)) {
        cli_print_err(&err);
        goto done;
    }
    state = aligned_alloc(DSC_ALIGN, ((size_t)b.state_floats * 4 +
                                      DSC_ALIGN - 1) / DSC_ALIGN * DSC_ALIGN);
    losses = calloc((size_t)c->epochs, sizeof *losses);
    if (!state || !losses) {
        fprintf(stderr, "dsc: error: out of memory for the training state "
                "(%lld floats)\n", (long long)b.state_floats);
        goto done;
    }
    rt_train_init(state, b.train.weights.total_floats, c->lr, c->seed);
    ((rt_train_header *)(void *)state)->weight_decay = c->weight_decay;
    train_io_fn step = (train_io_fn)(void (*)(void))loaded_entry(r.code);
    double t0 = timing_now_ms();
    for (long long e = 0; e < c->epochs; e++) {
        float loss = 0;
        int status = step(r.ctx, r.weights, state, io, &loss, r.arena);
        if (status == DSC_EBADTOKEN) {
            cli_report_bad_token(g, c, io, tokens, "random input");
            goto done;
        } else if (status == DSC_ENOMEM) {
            fprintf(stderr, "dsc: error: epoch %lld: out of memory for the "
                    "train step's scratch\n", e + 1);
            goto done;
        } else if (status != DSC_OK) {
            fprintf(stderr, "dsc: error: the train step returned status %d\n",
                    status);
            goto done;
        }
        char text[40];
        if (!isfinite(loss)) {
            fprintf(stderr, "dsc: error: epoch %lld: the loss is %s; "
                    "stopping (a smaller --lr may help)\n", e + 1,
                    isnan(loss) ? "NaN" : "infinite");
            goto done;
        }
        losses[e] = loss;
        printf("Epoch %lld/%lld, Loss: %s\n", e + 1, c->epochs,
               python_repr((double)loss, text, sizeof text));
        fflush(stdout);
    }
    double t1 = timing_now_ms();
    int64_t n_losses = c->epochs;
    if (c->losses_path &&
        npy_write(c->losses_path, NPY_F32, 1, &n_losses, losses, &err)) {
        cli_print_err(&err);
        goto done;
    }
    /* Reopened only now: its bytes need not stay in memory meanwhile. */
    if (c->save_path && c->weights_path &&
        !(orig = st_open(c->weights_path, &err))) {
        cli_print_err(&err);
        goto done;
    }
    if (c->save_path &&
        train_save(&b, r.weights, orig, c->save_path, &err)) {
        cli_print_err(&err);
        goto done;
    }
    if (c->grads_path &&
        train_save(&b, rt_train_grad(state), NULL, c->grads_path, &err)) {
        cli_print_err(&err);
        goto done;
    }
    fprintf(stderr, "dsc: %lld steps in %.1f ms (%.2f ms a step) on %d "
            "thread%s, %s\n", c->epochs, t1 - t0, (t1 - t0) / c->epochs,
            rt_ctx_threads(r.ctx), rt_ctx_threads(r.ctx) > 1 ? "s" : "",
            c->aot ? "aot" : "jit");
    rc = 0;
done:
    for (int i = 0; i < n_io; i++)
        free(io[i]);
    free(state);
    free(losses);
    st_close(orig);
    runner_close(&r);
    built_train_free(&b);
    return rc;
}
