/* compare.c — a reduced-format build against the float32 one (compare.h).
 * Both builds draw the same random weights (weights_fill_random seeds per
 * key, whatever the layout) or read the same file, so every difference is
 * the format's rounding. */
#include "driver/compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/sample.h"
#include "dsc_runtime.h"


build_options compare_f32_options(const build_options *opts)
{
    build_options f32 = *opts;
    f32.layout = DSC_LAYOUT_PANEL_OF(build_layout(opts));
    f32.weight_format = DSC_WEIGHTS_F32;
    f32.verbose = NULL;
    return f32;
}


int compare_is_classes(const graph *g, int t)
{
    int p = g->tensors[t].producer;
    return p >= 0 && g->nodes[p].op == GRAPH_OP_LINEAR &&
           g->tensors[t].shape.dim[g->tensors[t].shape.rank - 1] > 1;
}


void compare_rows(compare_stats *s, const float *got, const float *want,
                  int64_t rows, int64_t dim)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *a = got + r * dim, *b = want + r * dim;
        for (int64_t i = 0; i < dim; i++) {
            double d = fabs((double)a[i] - (double)b[i]);
            /* NaN counts as the largest difference there is. */
            s->max_abs_diff = d > s->max_abs_diff || d != d ? d
                                                            : s->max_abs_diff;
            s->max_abs_ref = fmax(s->max_abs_ref, fabs((double)b[i]));
        }
        s->values += dim;
        if (s->classes) {
            s->rows++;
            s->agree += sample_argmax(a, dim) == sample_argmax(b, dim);
        }
    }
}


int compare_forward(runner *ref, const graph *g, void **io, int n_io,
                    int64_t tokens, compare_stats *stats, dsc_err *err)
{
    int n_in = graph_count_kind(g, GRAPH_INPUT);
    void **mine = calloc((size_t)n_io + 1, sizeof *mine);
    int rc = -1;
    if (!mine)
        return err_set(err, "error: out of memory comparing with float32");
    memcpy(mine, io, (size_t)n_in * sizeof *mine);
    for (int k = n_in, t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_OUTPUT &&
            !(mine[k++] = calloc((size_t)graph_shape_count(
                &g->tensors[t].shape), sizeof(float)))) {
            err_set(err, "error: out of memory comparing with float32");
            goto done;
        }
    runner_reset(ref);
    int status = runner_call(ref, mine, n_io, tokens, 0);
    if (status != DSC_OK) {
        err_set(err, "error: the float32 build returned status %d", status);
        goto done;
    }
    for (int k = n_in, i = 0, t = 0; t < g->n_tensors; t++) {
        const graph_tensor *x = &g->tensors[t];
        if (x->kind != GRAPH_OUTPUT)
            continue;
        int64_t dim = x->shape.dim[x->shape.rank - 1];
        int64_t rows = graph_shape_count(&x->shape) / dim;
        if (x->dynamic)  /* only the first `tokens` were written */
            rows = rows / x->shape.dim[0] * tokens;
        stats[i] = (compare_stats){ .classes = compare_is_classes(g, t) };
        compare_rows(&stats[i], io[k], mine[k], rows, dim);
        i++, k++;
    }
    rc = 0;
done:
    for (int k = n_in; k < n_io; k++)
        free(mine[k]);
    free(mine);
    return rc;
}


int compare_decode(runner *r, runner *ref, const graph *g,
                   const int32_t *prompt, int64_t n_prompt, int64_t steps,
                   compare_stats *s, dsc_err *err)
{
    int out_t = -1;
    for (int t = 0; t < g->n_tensors; t++)
        out_t = g->tensors[t].kind == GRAPH_OUTPUT ? t : out_t;
    int64_t vocab = g->tensors[out_t].shape.dim[1];
    float *a = malloc((size_t)vocab * sizeof(float));
    float *b = malloc((size_t)vocab * sizeof(float));
    int rc = -1;
    *s = (compare_stats){ .classes = 1 };
    if (!a || !b) {
        err_set(err, "error: out of memory comparing with float32");
        goto done;
    }
    runner_reset(r);
    runner_reset(ref);
    int32_t next = 0;
    for (int64_t k = -1; k < steps; k++) {  /* k = -1: the prompt */
        void *ia[3] = { k < 0 ? (void *)prompt : &next, a, NULL };
        void *ib[3] = { ia[0], b, NULL };
        int64_t n = k < 0 ? n_prompt : 1, pos = k < 0 ? 0 : n_prompt + k;
        int sa = runner_call(r, ia, 2, n, pos);
        int sb = sa == DSC_OK ? runner_call(ref, ib, 2, n, pos) : sa;
        if (sa != DSC_OK || sb != DSC_OK) {
            err_set(err, "error: a step returned status %d while comparing "
                    "with float32", sa != DSC_OK ? sa : sb);
            goto done;
        }
        compare_rows(s, a, b, 1, vocab);
        next = (int32_t)sample_argmax(a, vocab);
    }
    rc = 0;
done:
    free(a);
    free(b);
    return rc;
}


void compare_describe(const compare_stats *s, char *buf, size_t len)
{
    int at = snprintf(buf, len, "max |diff| %.6g (of max |value| %.6g)",
                      s->max_abs_diff, s->max_abs_ref);
    if (s->rows && at > 0 && (size_t)at < len)
        snprintf(buf + at, len - (size_t)at, ", argmax agrees on %lld of "
                 "%lld rows (%.2f%%)", (long long)s->agree,
                 (long long)s->rows, 100.0 * (double)s->agree /
                 (double)s->rows);
}
