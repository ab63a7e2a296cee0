/* cmd_run.c — dsc run: build, load (JIT or AOT) and run a model once on given or
 * random inputs. */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "driver/compare.h"
#include "driver/runner.h"
#include "driver/sample.h"
#include "dsc_runtime.h"
#include "io/npy.h"
#include "util/timing.h"

#define MAX_IO 64       /* graph inputs and outputs a run can feed */

/* Copy a .npy array's elements into buf as the graph input's dtype.  An
 * int64 id outside int32 is refused (naming the file and the element):
 * cast, 2^32 + 1 would wrap to the valid id 1. */
static int convert_input(void *buf, const npy_array *a, const char *path,
                         const char *name, dsc_err *err)
{
    for (int64_t i = 0; i < a->count; i++) {
        switch (a->dtype) {
        case NPY_I32: ((int32_t *)buf)[i] = ((int32_t *)a->data)[i]; break;
        case NPY_I64: {
            int64_t v = ((int64_t *)a->data)[i];
            if (v < INT32_MIN || v > INT32_MAX)
                return err_set(err, "%s: error: input '%s': element %lld is "
                               "%lld, outside the int32 range of token ids",
                               path, name, (long long)i, (long long)v);
            ((int32_t *)buf)[i] = (int32_t)v;
            break;
        }
        case NPY_F32: ((float *)buf)[i] = ((float *)a->data)[i]; break;
        case NPY_F64: {
            double v = ((double *)a->data)[i];
            if (isfinite(v) && fabs(v) > FLT_MAX)  /* (float)v would be UB */
                return err_set(err, "%s: error: input '%s': element %lld is "
                               "%g, outside the float32 range", path, name,
                               (long long)i, v);
            ((float *)buf)[i] = (float)v;
            break;
        }
        }
    }
    return 0;
}


/* Fill one graph input: from its --input file (checked against the graph's
 * shape and dtype), or random.  For a decoder's token input the file may
 * hold 1..context tokens; *tokens gets how many (random: up to 16). */
void *cli_make_input(const graph *g, int t, const cli *c, uint64_t *rng,
                     int64_t *tokens, dsc_err *err)
{
    const graph_tensor *x = &g->tensors[t];
    int64_t n = graph_shape_count(&x->shape);
    void *buf = malloc((size_t)n * 4);
    if (!buf) {
        err_set(err, "error: out of memory for input '%s'", x->name);
        return NULL;
    }
    if (x->dynamic)
        *tokens = x->shape.dim[0] < 16 ? x->shape.dim[0] : 16;
    const char *path = NULL;
    for (int i = 0; i < c->n_inputs; i++)
        if (strcmp(c->inputs[i].name, x->name) == 0)
            path = c->inputs[i].path;
    if (!path) {
        runner_random_input(g, t, buf, n, rng);
        return buf;
    }
    npy_array a;
    char want[96], got[96];
    if (npy_read(path, &a, err)) {
        free(buf);
        return NULL;
    }
    /* The file's shape, as far as a graph shape holds it: a rank past
     * GRAPH_MAX_RANK is refused below. */
    graph_shape shape = { .rank = a.rank < GRAPH_MAX_RANK ? a.rank
                                                           : GRAPH_MAX_RANK };
    for (int i = 0; i < shape.rank; i++)
        shape.dim[i] = a.shape[i];
    /* A decoder's input may be shorter than the context along dim 0. */
    graph_shape full = shape;
    int shorter = x->dynamic && a.rank == x->shape.rank && a.shape[0] >= 1 &&
                  a.shape[0] <= x->shape.dim[0];
    if (shorter)
        full.dim[0] = x->shape.dim[0];
    int ok = x->dtype == GRAPH_I32
        ? (a.dtype == NPY_I32 || a.dtype == NPY_I64)
        : (a.dtype == NPY_F32 || a.dtype == NPY_F64);
    if (!ok)
        err_set(err, "%s: error: input '%s' must be %s, the file holds %s",
                path, x->name, x->dtype == GRAPH_I32 ? "int32 or int64"
                : "float32 or float64", npy_dtype_name(a.dtype));
    else if (a.rank > GRAPH_MAX_RANK) {
        err_set(err, "%s: error: input '%s' has %d dimensions in the file, "
                "more than dsc's %d (the model expects %s)", path, x->name,
                a.rank, GRAPH_MAX_RANK,
                graph_shape_str(&x->shape, want, sizeof want));
        ok = 0;
    } else if (!graph_shape_equal(&full, &x->shape)) {
        err_set(err, "%s: error: input '%s' is %s in the file but the model "
                "expects %s%s", path, x->name,
                graph_shape_str(&shape, got, sizeof got),
                graph_shape_str(&x->shape, want, sizeof want),
                x->dynamic ? " (or fewer tokens)" : "");
        ok = 0;
    }
    if (ok && convert_input(buf, &a, path, x->name, err))
        ok = 0;
    if (ok) {
        if (x->dynamic)
            *tokens = a.shape[0];
    }
    npy_free(&a);
    if (!ok) {
        free(buf);
        return NULL;
    }
    return buf;
}


static void print_summary(const graph_tensor *x, const float *v)
{
    int64_t n = graph_shape_count(&x->shape);
    double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        sum += v[i];
        sq += (double)v[i] * v[i];
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    double mean = sum / (double)n;
    char shape[96];
    printf("%s %s: mean %.6g std %.6g min %.6g max %.6g\n  first:", x->name,
           graph_shape_str(&x->shape, shape, sizeof shape), mean,
           sqrt(fmax(sq / (double)n - mean * mean, 0)), lo, hi);
    for (int64_t i = 0; i < n && i < 8; i++)
        printf(" %.6g", v[i]);
    printf("%s\n", n > 8 ? " ..." : "");
}


/* Every graph input and output named on the command line exists. */
static int check_bindings(const graph *g, const cli *c)
{
    for (int i = 0; i < c->n_inputs + c->n_outputs; i++) {
        const binding *bd = i < c->n_inputs ? &c->inputs[i]
                                            : &c->outputs[i - c->n_inputs];
        graph_kind want = i < c->n_inputs ? GRAPH_INPUT : GRAPH_OUTPUT;
        int found = 0;
        for (int t = 0; t < g->n_tensors; t++)
            found |= g->tensors[t].kind == want &&
                     strcmp(g->tensors[t].name, bd->name) == 0;
        if (!found) {
            fprintf(stderr, "dsc: error: the model has no %s named '%s' (it "
                    "has:", want == GRAPH_INPUT ? "input" : "output",
                    bd->name);
            for (int t = 0; t < g->n_tensors; t++)
                if (g->tensors[t].kind == want)
                    fprintf(stderr, " %s", g->tensors[t].name);
            fprintf(stderr, ")\n");
            return -1;
        }
    }
    return 0;
}


/* The argmax over the last dimension of an output, one line per row of
 * its second-to-last dimension: the seed's predicted_tokens. */
static void print_argmax(const graph_tensor *x, const float *v)
{
    int64_t last = x->shape.dim[x->shape.rank - 1];
    int64_t per_line = x->shape.rank >= 3 ? x->shape.dim[x->shape.rank - 2] : 1;
    int64_t rows = graph_shape_count(&x->shape) / last;
    graph_shape s = x->shape;
    s.rank--;
    char shape[96];
    printf("argmax %s %s:\n", x->name, graph_shape_str(&s, shape, sizeof shape));
    for (int64_t r = 0; r < rows; r++)
        printf("%s%lld%s", r % per_line ? " " : "  ",
               (long long)sample_argmax(v + r * last, last),
               (r + 1) % per_line ? "" : "\n");
}


/* --compare-f32: the same inputs through a float32 build; per output, the
 * max |diff| and (logits) the argmax agreement, to stderr. */
static int compare_with_f32(const cli *c, const build_options *opts,
                            const built_model *b, const runner_options *ro,
                            void **io, int n_io, int64_t tokens)
{
    build_options fo = compare_f32_options(opts);
    built_model fb;
    runner fr;
    dsc_err err;
    const graph *g = b->model->graph;
    int n_out = graph_count_kind(g, GRAPH_OUTPUT);
    compare_stats *st = calloc((size_t)n_out + 1, sizeof *st);
    if (!st) {
        fprintf(stderr, "dsc: error: out of memory\n");
        return -1;
    }
    runner_options quiet = *ro;
    quiet.notes = NULL;  /* the first build said it already */
    if (build_model(c->model_path, &fo, &fb, &err)) {
        cli_print_err(&err);
        free(st);
        return -1;
    }
    int rc = runner_open(&fr, &fb, &quiet, &err) ||
             compare_forward(&fr, g, io, n_io, tokens, st, &err);
    if (rc) {
        cli_print_err(&err);
    } else {
        for (int i = 0, t = 0; t < g->n_tensors; t++) {
            const graph_tensor *x = &g->tensors[t];
            if (x->kind != GRAPH_OUTPUT)
                continue;
            char shape[96], text[256];
            compare_describe(&st[i++], text, sizeof text);
            fprintf(stderr, "dsc: %s vs f32: %s %s: %s\n",
                    rt_format_name(DSC_LAYOUT_FORMAT_OF(b->weights.packing)),
                    x->name, graph_shape_str(&x->shape, shape, sizeof shape),
                    text);
        }
    }
    runner_close(&fr);
    built_model_free(&fb);
    free(st);
    return rc ? -1 : 0;
}


int cmd_run(const cli *c)
{
    build_options opts = cli_build_options(c);
    built_model b;
    runner r = {0};
    dsc_err err;
    int rc = 1;
    if (c->random_weights || c->out_path)
        return cli_usage_error("%s", "run takes no -o or --random-weights (those "
                           "are for compile)");
    int threads = cli_thread_count(c);
    if (threads < 0)
        return 1;
    double t0 = timing_now_ms();
    if (build_model(c->model_path, &opts, &b, &err)) {
        cli_print_err(&err);
        return 1;
    }
    const graph *g = b.model->graph;
    void *io[MAX_IO + 1] = {0};
    int n_io = 0, first_output = 0;
    int64_t tokens = 1;
    if (check_bindings(g, c))
        goto done;
    if (graph_count_kind(g, GRAPH_INPUT) + graph_count_kind(g, GRAPH_OUTPUT) >
        MAX_IO) {
        fprintf(stderr, "%s: error: more than %d inputs and outputs\n",
                c->model_path, MAX_IO);
        goto done;
    }
    uint64_t rng = c->seed ^ 0x5eedULL;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_INPUT &&
            !(io[n_io++] = cli_make_input(g, t, c, &rng, &tokens, &err))) {
            cli_print_err(&err);
            goto done;
        }
    first_output = n_io;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_OUTPUT &&
            !(io[n_io++] = calloc((size_t)graph_shape_count(
                 &g->tensors[t].shape), sizeof(float)))) {
            fprintf(stderr, "dsc: error: out of memory for outputs\n");
            goto done;
        }
    runner_options ro = { .weights_path = c->weights_path, .seed = c->seed,
                          .threads = threads, .aot = c->aot,
                          .notes = stderr };
    double t1 = timing_now_ms();
    if (runner_open(&r, &b, &ro, &err)) {
        cli_print_err(&err);
        goto done;
    }
    double t2 = timing_now_ms();
    int status = runner_call(&r, io, n_io, tokens, 0);
    double t3 = timing_now_ms();
    if (status == DSC_EBADTOKEN) {
        cli_report_bad_token(g, c, io, tokens, "input");
        goto done;
    } else if (status != DSC_OK) {
        fprintf(stderr, "dsc: error: the model returned status %d\n", status);
        goto done;
    }

    for (int i = 0; i < c->n_outputs; i++) {
        int k = first_output;
        for (int t = 0; t < g->n_tensors; t++) {
            const graph_tensor *x = &g->tensors[t];
            if (x->kind != GRAPH_OUTPUT)
                continue;
            if (strcmp(x->name, c->outputs[i].name) == 0 &&
                npy_write(c->outputs[i].path, NPY_F32, x->shape.rank,
                          x->shape.dim, io[k], &err)) {
                cli_print_err(&err);
                goto done;
            }
            k++;
        }
    }
    printf("%s (%s): %s weights, %s inputs", b.model->path,
           c->aot ? "aot" : "jit", c->weights_path ? c->weights_path : "random",
           c->n_inputs ? "given" : "random");
    if (r.decoder)
        printf(", %lld tokens", (long long)tokens);
    printf("\n");
    int k = first_output;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_OUTPUT) {
            if (c->argmax)
                print_argmax(&g->tensors[t], io[k]);
            else
                print_summary(&g->tensors[t], io[k]);
            k++;
        }
    printf("build %.1f ms, %s %.1f ms, forward %.3f ms on %d thread%s\n",
           t1 - t0, c->aot ? "cc" : "tcc", r.load_ms, t3 - t2,
           rt_ctx_threads(r.ctx), rt_ctx_threads(r.ctx) > 1 ? "s" : "");
    fflush(stdout);
    if (c->compare_f32 && compare_with_f32(c, &opts, &b, &ro, io, n_io,
                                           tokens))
        goto done;
    rc = 0;
done:
    for (int i = 0; i < n_io; i++)
        free(io[i]);
    runner_close(&r);
    built_model_free(&b);
    return rc;
}
