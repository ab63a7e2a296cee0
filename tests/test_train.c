/* test_train.c — dsc train and what it is made of.
 *
 *  1. every backward kernel against finite differences of a double-precision
 *     forward written here (linear, bias, relu, softmax, layernorm,
 *     attention plain, causal and batch-first, embedding, cross-entropy);
 *     dropout's mask frequency and scaling; Adam against its formula;
 *  2. the autodiff pass: the graph it makes for a small model, the planner
 *     keeping what backward reads, an op without a rule refused;
 *  3. `dsc train` against tools/export_train.py's PyTorch fixtures: the
 *     first step's gradients, every epoch's loss, each parameter's update,
 *     untrained keys saved unchanged; JIT, AOT, 1 and 2 threads, the same
 *     bits run to run; dropout 0.1 learns and is seeded;
 *  4. what dsc train refuses: no loss, a target out of range, a NaN loss.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/emit_train.h"
#include "driver/runner.h"
#include "driver/train.h"
#include "dsc_runtime.h"
#include "io/fileio.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "passes/passes.h"
#include "util/rng.h"
#include "cli_test.h"

/* ------------------------------------------------------------------ */
/* Finite differences                                                   */
/* ------------------------------------------------------------------ */

static uint64_t seed_state = 42;

static double urand(void)
{
    return (double)(rng_next(&seed_state) >> 11) / 9007199254740992.0 * 2 - 1;
}

static float *frand(int64_t n, double scale)
{
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(scale * urand());
    return p;
}

/* f(x) in double, as a function of the float vector x (of n), writing m
 * outputs; the loss is sum(out * r) for a fixed random r. */
typedef void (*fwd_fn)(const void *ctx, const double *x, double *out);

/* d sum(f(x) * r) / dx by central differences on a double copy of x. */
static double *numeric_grad(fwd_fn f, const void *ctx, const float *x,
                            int64_t n, const float *r, int64_t m)
{
    double *xd = malloc((size_t)n * sizeof *xd);
    double *out = malloc((size_t)m * sizeof *out);
    double *g = malloc((size_t)n * sizeof *g);
    for (int64_t i = 0; i < n; i++)
        xd[i] = x[i];
    for (int64_t i = 0; i < n; i++) {
        double h = 1e-6 * fmax(1.0, fabs(xd[i])), s[2];
        for (int k = 0; k < 2; k++) {
            double keep = xd[i];
            xd[i] = keep + (k ? -h : h);
            f(ctx, xd, out);
            s[k] = 0;
            for (int64_t j = 0; j < m; j++)
                s[k] += out[j] * r[j];
            xd[i] = keep;
        }
        g[i] = (s[0] - s[1]) / (2 * h);
    }
    free(xd);
    free(out);
    return g;
}

/* |got - want| <= tol * (max |want|) elementwise. */
static void expect_close(const float *got, const double *want, int64_t n,
                         double tol, const char *what)
{
    double scale = 1e-12;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    for (int64_t i = 0; i < n; i++)
        cr_assert_leq(fabs(got[i] - want[i]), tol * scale,
                      "%s[%lld]: %.9g vs %.9g (scale %g)", what,
                      (long long)i, (double)got[i], want[i], scale);
}

/* ---- linear --------------------------------------------------------- */

typedef struct lin { int64_t rows, n_out, n_in; const float *x, *w; int which; } lin;

/* which 0: f(x) = x Wᵀ; 1: f(W) = x Wᵀ; 2: f(b) = b broadcast over rows */
static void lin_fwd(const void *c, const double *v, double *out)
{
    const lin *l = c;
    for (int64_t m = 0; m < l->rows; m++)
        for (int64_t n = 0; n < l->n_out; n++) {
            double s = 0;
            for (int64_t k = 0; k < l->n_in && l->which < 2; k++) {
                double xv = l->which == 0 ? v[m * l->n_in + k] : l->x[m * l->n_in + k];
                double wv = l->which == 1 ? v[n * l->n_in + k] : l->w[n * l->n_in + k];
                s += xv * wv;
            }
            out[m * l->n_out + n] = l->which == 2 ? v[n] : s;
        }
}

static void check_linear(int layout, int64_t rows, int64_t n_out, int64_t n_in)
{
    float *x = frand(rows * n_in, 1), *w = frand(n_out * n_in, 0.5);
    float *r = frand(rows * n_out, 1);
    float *packed = calloc((size_t)rt_linear_packed_floats(n_out, n_in, layout), 4);
    float *pdw = calloc((size_t)rt_linear_packed_floats(n_out, n_in, layout), 4);
    float *dw = malloc((size_t)(n_out * n_in) * 4);
    float *dx = malloc((size_t)(rows * n_in) * 4), *db = malloc((size_t)n_out * 4);
    float *scratch = malloc((size_t)rt_linear_grad_scratch_floats(rows, n_out, n_in) * 4);
    rt_linear_pack(packed, w, n_out, n_in, layout);
    rt_ctx *ctx = rt_ctx_new(2);
    rt_linear_grad_x(ctx, dx, r, n_out, packed, rows, n_out, n_in, scratch);
    rt_linear_grad_w(ctx, pdw, layout, r, n_out, x, n_in, rows, n_out, n_in, 0, scratch);
    cr_assert_eq(rt_linear_unpack(dw, pdw, n_out, n_in), 0);
    rt_bias_grad(ctx, db, r, n_out, rows, n_out, 0);
    lin l = { rows, n_out, n_in, x, w, 0 };
    double *gx = numeric_grad(lin_fwd, &l, x, rows * n_in, r, rows * n_out);
    l.which = 1;
    double *gw = numeric_grad(lin_fwd, &l, w, n_out * n_in, r, rows * n_out);
    l.which = 2;
    float *b = frand(n_out, 1);
    double *gb = numeric_grad(lin_fwd, &l, b, n_out, r, rows * n_out);
    expect_close(dx, gx, rows * n_in, 1e-5, "linear dx");
    expect_close(dw, gw, n_out * n_in, 1e-5, "linear dW");
    expect_close(db, gb, n_out, 1e-5, "bias db");
    /* Accumulating adds to what is there: twice the gradient. */
    rt_linear_grad_w(ctx, pdw, layout, r, n_out, x, n_in, rows, n_out, n_in, 1, scratch);
    cr_assert_eq(rt_linear_unpack(dw, pdw, n_out, n_in), 0);
    for (int64_t i = 0; i < n_out * n_in; i++)
        gw[i] *= 2;
    expect_close(dw, gw, n_out * n_in, 1e-5, "linear dW accumulated");
    rt_ctx_free(ctx);
    free(x), free(w), free(r), free(packed), free(pdw), free(dw), free(dx);
    free(db), free(b), free(scratch), free(gx), free(gw), free(gb);
}

Test(kernels, linear_backward_against_finite_differences)
{
    /* in both layouts: the weight's panels and its gradient's agree */
    static const int layouts[] = { DSC_LAYOUT_PANEL32, DSC_LAYOUT_PANEL64 };
    for (int i = 0; i < 2; i++) {
        check_linear(layouts[i], 7, 5, 3);
        check_linear(layouts[i], 13, 70, 9);  /* two panels, one partial */
        check_linear(layouts[i], 65, 64, 66);
    }
}

/* ---- row-wise ops ----------------------------------------------------- */

typedef struct rowop { int64_t rows, dim; const float *x, *gamma; float eps; int which; } rowop;

static void softmax_fwd(const void *c, const double *v, double *out)
{
    const rowop *o = c;
    for (int64_t r = 0; r < o->rows; r++) {
        const double *x = v + r * o->dim;
        double mx = x[0], s = 0;
        for (int64_t i = 1; i < o->dim; i++)
            mx = fmax(mx, x[i]);
        for (int64_t i = 0; i < o->dim; i++)
            s += exp(x[i] - mx);
        for (int64_t i = 0; i < o->dim; i++)
            out[r * o->dim + i] = exp(x[i] - mx) / s;
    }
}

/* which 0: f(x); 1: f(gamma) */
static void layernorm_fwd(const void *c, const double *v, double *out)
{
    const rowop *o = c;
    for (int64_t r = 0; r < o->rows; r++) {
        double x[256], mean = 0, var = 0;
        for (int64_t i = 0; i < o->dim; i++) {
            x[i] = o->which == 0 ? v[r * o->dim + i] : o->x[r * o->dim + i];
            mean += x[i];
        }
        mean /= (double)o->dim;
        for (int64_t i = 0; i < o->dim; i++)
            var += (x[i] - mean) * (x[i] - mean);
        double rstd = 1 / sqrt(var / (double)o->dim + o->eps);
        for (int64_t i = 0; i < o->dim; i++)
            out[r * o->dim + i] = (x[i] - mean) * rstd *
                                  (o->which == 1 ? v[i] : o->gamma[i]);
    }
}

static void relu_fwd(const void *c, const double *v, double *out)
{
    const rowop *o = c;
    for (int64_t i = 0; i < o->rows * o->dim; i++)
        out[i] = v[i] > 0 ? v[i] : 0;
}

Test(kernels, row_ops_backward_against_finite_differences)
{
    const int64_t rows = 6, dim = 37, n = rows * dim;
    rt_ctx *ctx = rt_ctx_new(2);
    float *x = frand(n, 2), *r = frand(n, 1), *gamma = frand(dim, 1);
    float *y = malloc((size_t)n * 4), *dx = malloc((size_t)n * 4);
    float *dg = malloc((size_t)dim * 4);
    rowop o = { rows, dim, x, gamma, 1e-5f, 0 };

    rt_softmax(ctx, y, x, rows, dim);
    rt_softmax_grad(ctx, dx, r, y, rows, dim);
    double *g = numeric_grad(softmax_fwd, &o, x, n, r, n);
    expect_close(dx, g, n, 1e-4, "softmax dx");
    free(g);

    for (int64_t i = 0; i < n; i++)  /* keep away from the kink */
        x[i] = fabsf(x[i]) < 1e-3f ? 0.5f : x[i];
    rt_activation(ctx, y, x, n, RT_ACT_RELU);
    rt_relu_grad(ctx, dx, r, y, NULL, n);
    g = numeric_grad(relu_fwd, &o, x, n, r, n);
    expect_close(dx, g, n, 1e-6, "relu dx");
    free(g);

    rt_layernorm_grad_x(ctx, dx, r, x, gamma, rows, dim, 1e-5f);
    g = numeric_grad(layernorm_fwd, &o, x, n, r, n);
    expect_close(dx, g, n, 1e-4, "layernorm dx");
    free(g);
    o.which = 1;
    rt_layernorm_grad_gamma(ctx, dg, r, x, rows, dim, 1e-5f, 0);
    g = numeric_grad(layernorm_fwd, &o, gamma, dim, r, n);
    expect_close(dg, g, dim, 1e-5, "layernorm dgamma");
    free(g);
    rt_ctx_free(ctx);
    free(x), free(r), free(gamma), free(y), free(dx), free(dg);
}

/* ---- gelu ------------------------------------------------------------------ */

static void gelu_fwd(const void *c, const double *v, double *out)
{
    const rowop *o = c;
    for (int64_t i = 0; i < o->rows * o->dim; i++) {
        double x = v[i];
        out[i] = o->which
            ? 0.5 * x * (1 + tanh(0.79788456080286535588 *
                                  (x + 0.044715 * x * x * x)))
            : 0.5 * x * (1 + erf(x / sqrt(2.0)));
    }
}

Test(kernels, gelu_backward_against_finite_differences)
{
    const int64_t n = 300;
    float *x = frand(n, 4), *r = frand(n, 1), *dx = malloc((size_t)n * 4);
    for (int form = 0; form < 2; form++) {
        rowop o = { 1, n, NULL, NULL, 0, form };
        rt_gelu_grad(NULL, dx, r, x, n, form ? RT_ACT_GELU_TANH : RT_ACT_GELU);
        double *g = numeric_grad(gelu_fwd, &o, x, n, r, n);
        expect_close(dx, g, n, 1e-6, form ? "gelu tanh dx" : "gelu dx");
        free(g);
    }
    free(x), free(r), free(dx);
}

/* ---- cross-entropy ------------------------------------------------------ */

typedef struct ce { int64_t rows, classes; const int32_t *t; } ce;

static void ce_fwd(const void *c, const double *v, double *out)
{
    const ce *e = c;
    double total = 0;
    for (int64_t r = 0; r < e->rows; r++) {
        const double *z = v + r * e->classes;
        double mx = z[0], s = 0;
        for (int64_t i = 1; i < e->classes; i++)
            mx = fmax(mx, z[i]);
        for (int64_t i = 0; i < e->classes; i++)
            s += exp(z[i] - mx);
        total += mx + log(s) - z[e->t[r]];
    }
    out[0] = total / (double)e->rows;
}

Test(kernels, cross_entropy_value_and_gradient)
{
    const int64_t rows = 9, classes = 11;
    int32_t t[9];
    for (int i = 0; i < rows; i++)
        t[i] = (int32_t)((i * 7 + 3) % classes);
    float *z = frand(rows * classes, 3), one = 1.0f, loss;
    float *dz = malloc((size_t)(rows * classes) * 4);
    ce e = { rows, classes, t };
    double want;
    double *zd = malloc((size_t)(rows * classes) * sizeof *zd);
    for (int64_t i = 0; i < rows * classes; i++)
        zd[i] = z[i];
    ce_fwd(&e, zd, &want);
    cr_assert_eq(rt_cross_entropy(NULL, &loss, z, t, rows, classes), DSC_OK);
    cr_assert_float_eq(loss, want, 1e-6 * want);
    cr_assert_eq(rt_cross_entropy_grad(NULL, dz, z, t, rows, classes), DSC_OK);
    double *g = numeric_grad(ce_fwd, &e, z, rows * classes, &one, 1);
    expect_close(dz, g, rows * classes, 1e-5, "cross-entropy dz");
    t[4] = (int32_t)classes;  /* out of range: refused, nothing written */
    cr_assert_eq(rt_cross_entropy(NULL, &loss, z, t, rows, classes),
                 DSC_EBADTOKEN);
    t[4] = -1;
    cr_assert_eq(rt_cross_entropy_grad(NULL, dz, z, t, rows, classes),
                 DSC_EBADTOKEN);
    free(z), free(dz), free(g), free(zd);
}

/* ---- attention ------------------------------------------------------------ */

typedef struct att { rt_attention_shape s; const float *q, *k, *v; int which; int64_t n; } att;

static double at_(const att *a, const double *v, int which, const float *base,
                  int64_t ld, int64_t s, int64_t b, int64_t c)
{
    int64_t i = (s * a->s.seq_step + b * a->s.batch_step) * ld + c;
    return a->which == which ? v[i] : base[i];
}

/* out for q, k, v in the layout of a->s; a->which says which is varied. */
static void att_fwd(const void *c, const double *v, double *out)
{
    const att *a = c;
    const rt_attention_shape *s = &a->s;
    for (int64_t b = 0; b < s->batch; b++)
        for (int64_t h = 0; h < s->heads; h++)
            for (int64_t i = 0; i < s->seq; i++) {
                double p[64], mx = -INFINITY, sum = 0;
                int64_t last = s->causal ? i + 1 : s->seq;
                for (int64_t t = 0; t < last; t++) {
                    double d = 0;
                    for (int64_t e = 0; e < s->head_dim_qk; e++)
                        d += at_(a, v, 0, a->q, s->ldq, i, b, h * s->head_dim_qk + e) *
                             at_(a, v, 1, a->k, s->ldk, t, b, h * s->head_dim_qk + e);
                    p[t] = d * s->scale;
                    mx = fmax(mx, p[t]);
                }
                for (int64_t t = 0; t < last; t++)
                    sum += (p[t] = exp(p[t] - mx));
                for (int64_t e = 0; e < s->head_dim_v; e++) {
                    double o = 0;
                    for (int64_t t = 0; t < last; t++)
                        o += p[t] / sum *
                             at_(a, v, 2, a->v, s->ldv, t, b, h * s->head_dim_v + e);
                    out[(i * s->seq_step + b * s->batch_step) * s->ldo +
                        h * s->head_dim_v + e] = o;
                }
            }
}

static void check_attention(int causal, int batch_first)
{
    const int64_t seq = 5, batch = 3, heads = 2, dk = 4, dv = 3;
    rt_attention_shape s = {
        .seq = seq, .batch = batch, .heads = heads, .head_dim_qk = dk,
        .head_dim_v = dv, .seq_step = batch_first ? 1 : batch,
        .batch_step = batch_first ? seq : 1, .ldq = heads * dk,
        .ldk = heads * dk, .ldv = heads * dv, .ldo = heads * dv,
        .scale = 0.5f, .causal = causal };
    int64_t rows = seq * batch, nq = rows * heads * dk, nv = rows * heads * dv;
    float *q = frand(nq, 1), *k = frand(nq, 1), *v = frand(nv, 1);
    float *r = frand(nv, 1), *out = malloc((size_t)nv * 4);
    int64_t ldd = 2 * heads * dk + heads * dv;
    float *d = malloc((size_t)(rows * ldd) * 4);
    rt_ctx *ctx = rt_ctx_new(2);
    rt_attention_train(ctx, out, q, k, v, &s, 0.0f, 0);
    float *ref = malloc((size_t)nv * 4);
    rt_attention(ctx, ref, q, k, v, &s);
    for (int64_t i = 0; i < nv; i++)
        cr_assert_float_eq(out[i], ref[i], 1e-5, "train forward = rt_attention");
    rt_attention_grad(ctx, d, d + heads * dk, d + 2 * heads * dk, ldd, r, q,
                      k, v, &s, 0.0f, 0);
    att a = { s, q, k, v, 0, 0 };
    const float *xs[3] = { q, k, v };
    int64_t widths[3] = { heads * dk, heads * dk, heads * dv };
    int64_t col = 0;
    for (int which = 0; which < 3; which++) {
        a.which = which;
        int64_t n = rows * widths[which];
        double *g = numeric_grad(att_fwd, &a, xs[which], n, r, nv);
        float *got = malloc((size_t)n * 4);
        for (int64_t row = 0; row < rows; row++)
            memcpy(got + row * widths[which], d + row * ldd + col,
                   (size_t)widths[which] * 4);
        expect_close(got, g, n, 1e-4, which == 0 ? "dq" : which == 1 ? "dk" : "dv");
        col += widths[which];
        free(g);
        free(got);
    }
    rt_ctx_free(ctx);
    free(q), free(k), free(v), free(r), free(out), free(d), free(ref);
}

Test(kernels, attention_backward_against_finite_differences)
{
    check_attention(0, 0);
    check_attention(1, 0);
    check_attention(0, 1);
}

/* With dropout on the attention weights the mask is the kernel's own: the
 * function differenced is rt_attention_train itself (float, so a wider
 * step and tolerance), for a fixed key. */
Test(kernels, attention_dropout_backward_against_finite_differences)
{
    const int64_t seq = 6, batch = 2, heads = 2, dh = 4, w = heads * dh;
    rt_attention_shape s = {
        .seq = seq, .batch = batch, .heads = heads, .head_dim_qk = dh,
        .head_dim_v = dh, .seq_step = batch, .batch_step = 1, .ldq = 3 * w,
        .ldk = 3 * w, .ldv = 3 * w, .ldo = w, .scale = 0.5f, .causal = 0 };
    int64_t rows = seq * batch;
    float *qkv = frand(rows * 3 * w, 1), *r = frand(rows * w, 1);
    float *out = malloc((size_t)(rows * w) * 4);
    float *d = malloc((size_t)(rows * 3 * w) * 4);
    const float p = 0.3f;
    const uint64_t key = 99;
    rt_attention_grad(NULL, d, d + w, d + 2 * w, 3 * w, r, qkv, qkv + w,
                      qkv + 2 * w, &s, p, key);
    rt_attention_train(NULL, out, qkv, qkv + w, qkv + 2 * w, &s, p, key);
    int zeros = 0;
    for (int64_t i = 0; i < rows * 3 * w; i++) {
        double sum[2];
        float keep = qkv[i], h = 1e-2f;
        for (int k = 0; k < 2; k++) {
            qkv[i] = keep + (k ? -h : h);
            rt_attention_train(NULL, out, qkv, qkv + w, qkv + 2 * w, &s, p,
                               key);
            sum[k] = 0;
            for (int64_t j = 0; j < rows * w; j++)
                sum[k] += (double)out[j] * r[j];
        }
        qkv[i] = keep;
        double fd = (sum[0] - sum[1]) / (2.0 * h);
        cr_assert_leq(fabs(d[i] - fd), 2e-3 + 2e-3 * fabs(fd),
                      "qkv[%lld]: %.7g vs %.7g", (long long)i, (double)d[i],
                      fd);
        zeros += d[i] == 0;
    }
    cr_assert_lt(zeros, rows * w / 4);
    free(qkv), free(r), free(out), free(d);
}

/* ---- embedding, dropout, Adam ---------------------------------------------- */

/* Scratch that cannot be had is a status, not an abort: attention's
 * per-task probabilities for a sequence of 2^24 (2 PB) fail to allocate
 * before any row is read (seq_step 0: one row of q, k and v serves). */
Test(kernels, attention_scratch_failure_is_dsc_enomem)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("ASan aborts on an allocation this large");
#else
    float q[4] = { 0 }, k[4] = { 0 }, v[4] = { 0 }, out[4] = { 0 };
    rt_attention_shape s = { .seq = (int64_t)1 << 24, .batch = 1, .heads = 1,
                             .head_dim_qk = 1, .head_dim_v = 1, .seq_step = 0,
                             .batch_step = 0, .ldq = 1, .ldk = 1, .ldv = 1,
                             .ldo = 1, .scale = 1, .causal = 0 };
    cr_expect_eq(rt_attention_train(NULL, out, q, k, v, &s, 0.5f, 1),
                 DSC_ENOMEM);
    cr_expect_eq(rt_attention_grad(NULL, out, out, out, 1, q, q, k, v, &s,
                                   0.5f, 1), DSC_ENOMEM);
#endif
}


Test(kernels, embedding_gradient_scatters_and_sums)
{
    const int64_t vocab = 7, dim = 5, n = 9;
    int32_t ids[9] = { 3, 1, 3, 0, 6, 3, 1, 2, 6 };
    float *dy = frand(n * dim, 1), *dt = frand(vocab * dim, 1);
    rt_ctx *ctx = rt_ctx_new(2);
    cr_assert_eq(rt_embedding_grad(ctx, dt, dy, ids, n, vocab, dim, 0), DSC_OK);
    for (int64_t v = 0; v < vocab; v++)
        for (int64_t c = 0; c < dim; c++) {
            double want = 0;  /* d sum(table[ids] * dy) / d table */
            for (int64_t i = 0; i < n; i++)
                want += ids[i] == v ? dy[i * dim + c] : 0;
            cr_assert_float_eq(dt[v * dim + c], want, 1e-6);
        }
    ids[2] = 7;
    cr_assert_eq(rt_embedding_grad(ctx, dt, dy, ids, n, vocab, dim, 0),
                 DSC_EBADTOKEN);
    rt_ctx_free(ctx);
    free(dy), free(dt);
}

Test(kernels, dropout_mask_frequency_scaling_and_backward)
{
    const int64_t n = 200000;
    float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
    float *y2 = malloc((size_t)n * 4), *g = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        x[i] = 1.0f + (float)(i % 7);
    rt_ctx *ctx = rt_ctx_new(2);
    setenv("DSC_ISA", "generic", 1);
    rt_ctx *generic = rt_ctx_new(1);
    unsetenv("DSC_ISA");
    cr_assert(ctx && generic);
    cr_assert_eq(rt_ctx_isa(generic), DSC_ISA_GENERIC);
    const float ps[] = { 0.1f, 0.5f };
    for (int k = 0; k < 2; k++) {
        float p = ps[k];
        rt_dropout(ctx, y, x, n, p, 1234);
        int64_t dropped = 0;
        for (int64_t i = 0; i < n; i++) {
            if (y[i] == 0)
                dropped++;
            else  /* kept elements are scaled by 1 / (1 - p) */
                cr_assert_float_eq(y[i], x[i] * (1.0f / (1.0f - p)), 1e-6 * y[i]);
        }
        /* Binomial: 5 standard deviations. */
        double sd = sqrt(n * p * (1 - p));
        cr_assert_lt(fabs((double)dropped - n * p), 5 * sd, "p %g: %lld dropped",
                     (double)p, (long long)dropped);
        /* The same key gives the same mask (the backward's), at any thread
         * count; another key another. */
        rt_dropout(NULL, y2, x, n, p, 1234);
        cr_assert_eq(memcmp(y, y2, (size_t)n * 4), 0);
        rt_dropout(ctx, g, x, n, p, 1235);
        cr_assert_neq(memcmp(y, g, (size_t)n * 4), 0);
        /* The same mask under every instruction set (AVX-512 hashes
         * sixteen elements at a time, the others element by element). */
        rt_dropout(generic, y2, x, n, p, 1234);
        cr_assert_eq(memcmp(y, y2, (size_t)n * 4), 0, "p %g", (double)p);
    }
    rt_ctx_free(ctx);
    rt_ctx_free(generic);
    free(x), free(y), free(y2), free(g);
}

/* dropout(relu(z))'s backward in one pass from y = dropout(relu(z)): the
 * same bits as dropout's backward then relu's, but zeros are all +0. */
Test(kernels, dropout_relu_grad_is_dropout_then_relu_backward)
{
    const int64_t n = 100003;  /* a tail past every vector width */
    float *h = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
    float *dy = malloc((size_t)n * 4), *a = malloc((size_t)n * 4);
    float *want = malloc((size_t)n * 4), *got = malloc((size_t)n * 4);
    cr_assert(h && y && dy && a && want && got);
    for (int64_t i = 0; i < n; i++) {
        float z = (float)((i * 7919) % 2001 - 1000) / 337.0f;
        h[i] = z > 0 ? z : 0.0f;  /* relu(z): a third or so are 0 */
        dy[i] = (float)((i * 104729) % 1999 - 999) / 113.0f;
    }
    setenv("DSC_ISA", "generic", 1);
    rt_ctx *generic = rt_ctx_new(1);
    unsetenv("DSC_ISA");
    rt_ctx *ctxs[] = { rt_ctx_new(1), rt_ctx_new(2), generic };
    for (int c = 0; c < 3; c++) {
        cr_assert(ctxs[c]);
        const float p = c == 1 ? 0.5f : 0.1f;
        rt_dropout(ctxs[c], y, h, n, p, 99);
        rt_dropout(ctxs[c], a, dy, n, p, 99);
        rt_relu_grad(ctxs[c], want, a, h, NULL, n);
        rt_dropout_relu_grad(ctxs[c], got, dy, y, n, p);
        int64_t kept = 0;
        for (int64_t i = 0; i < n; i++) {
            kept += got[i] != 0;
            cr_assert(got[i] == want[i] && (got[i] != 0 || !signbit(got[i])),
                      "ctx %d, element %lld: %g, want %g", c, (long long)i,
                      (double)got[i], (double)want[i]);
        }
        /* kept: about (1 - p) of the positive half */
        cr_assert_gt(kept, n / 5, "ctx %d: %lld kept", c, (long long)kept);
        /* in place over dy, as the planner may place it */
        memcpy(a, dy, (size_t)n * 4);
        rt_dropout_relu_grad(ctxs[c], a, a, y, n, p);
        cr_assert_eq(memcmp(a, got, (size_t)n * 4), 0, "ctx %d", c);
        rt_ctx_free(ctxs[c]);
    }
    free(h), free(y), free(dy), free(a), free(want), free(got);
}

/* ... and with the bias's gradient summed in the same pass: the bits of
 * rt_dropout_relu_grad then rt_bias_grad, at every thread count. */
Test(kernels, dropout_relu_grad_bias_is_both_passes)
{
    const int64_t rows = 37, cols = 2701, n = rows * cols;
    float *y = malloc((size_t)n * 4), *dy = malloc((size_t)n * 4);
    float *want = malloc((size_t)n * 4), *got = malloc((size_t)n * 4);
    float *db_want = malloc((size_t)cols * 4), *db = malloc((size_t)cols * 4);
    cr_assert(y && dy && want && got && db_want && db);
    for (int64_t i = 0; i < n; i++) {
        float z = (float)((i * 7919) % 2001 - 1000) / 337.0f;
        y[i] = z > 0 && i % 10 ? z / 0.9f : 0.0f;
        dy[i] = (float)((i * 104729) % 1999 - 999) / 113.0f;
    }
    setenv("DSC_ISA", "generic", 1);
    rt_ctx *generic = rt_ctx_new(1);
    unsetenv("DSC_ISA");
    rt_ctx *ctxs[] = { rt_ctx_new(1), rt_ctx_new(2), generic };
    for (int c = 0; c < 3; c++) {
        cr_assert(ctxs[c]);
        rt_dropout_relu_grad(ctxs[c], want, dy, y, n, 0.1f);
        rt_bias_grad(ctxs[c], db_want, want, cols, rows, cols, 0);
        memcpy(got, dy, (size_t)n * 4);  /* in place, as the planner may */
        rt_dropout_relu_grad_bias(ctxs[c], got, got, y, rows, cols, 0.1f,
                                  db);
        cr_assert_eq(memcmp(got, want, (size_t)n * 4), 0, "ctx %d", c);
        cr_assert_eq(memcmp(db, db_want, (size_t)cols * 4), 0, "ctx %d", c);
        rt_ctx_free(ctxs[c]);
    }
    free(y), free(dy), free(want), free(got), free(db_want), free(db);
}

Test(kernels, adam_matches_its_formula_step_by_step)
{
    const int64_t n = 1000;
    int64_t floats = rt_train_state_floats(n);
    float *state = malloc((size_t)floats * 4), *w = frand(n, 1);
    double *wd = malloc((size_t)n * 8), *m = calloc((size_t)n, 8);
    double *v = calloc((size_t)n, 8);
    for (int64_t i = 0; i < n; i++)
        wd[i] = w[i];
    rt_train_init(state, n, 0.01, 0);
    rt_ctx *ctx = rt_ctx_new(2);
    for (int step = 1; step <= 5; step++) {
        float *g = rt_train_grad(state);
        for (int64_t i = 0; i < n; i++)
            g[i] = (float)urand() * (i % 10 == 0 ? 0 : 1);
        rt_train_begin(state);
        rt_adam(ctx, w, state, 0, n);
        for (int64_t i = 0; i < n; i++) {
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
            double mh = m[i] / (1 - pow(0.9, step));
            double vh = v[i] / (1 - pow(0.999, step));
            wd[i] -= 0.01 * mh / (sqrt(vh) + 1e-8);
            cr_assert_float_eq(w[i], wd[i], 2e-6, "step %d w[%lld]", step,
                               (long long)i);
        }
    }
    rt_ctx_free(ctx);
    free(state), free(w), free(wd), free(m), free(v);
}

/* The vector loops divide by sqrt(bc2) with a multiply and two FMAs
 * (runtime/train.c, div_bc2_*): the same bits as the scalar code's
 * division, for gradients over many magnitudes, zeros, one whose square
 * overflows, every step's bc2. */
Test(kernels, adam_same_bits_under_every_isa)
{
    const int64_t n = 40009;
    int64_t floats = rt_train_state_floats(n);
    float *sv = malloc((size_t)floats * 4), *sg = malloc((size_t)floats * 4);
    float *wv = malloc((size_t)n * 4), *wg = malloc((size_t)n * 4);
    cr_assert(sv && sg && wv && wg);
    rt_train_init(sv, n, 0.003, 0);
    rt_train_init(sg, n, 0.003, 0);
    for (int64_t i = 0; i < n; i++)
        wv[i] = wg[i] = (float)urand();
    setenv("DSC_ISA", "generic", 1);
    rt_ctx *generic = rt_ctx_new(1);
    unsetenv("DSC_ISA");
    rt_ctx *ctx = rt_ctx_new(2);
    cr_assert(ctx && generic);
    for (int step = 1; step <= 30; step++) {
        float *g = rt_train_grad(sv);
        for (int64_t i = 0; i < n; i++) {
            int e = (int)((i * 7 + step) % 41) - 30;  /* 2^-30 .. 2^10 */
            g[i] = i % 17 == 0 ? 0.0f : ldexpf((float)urand(), e);
        }
        g[n / 2] = step == 3 ? 1e30f : g[n / 2];  /* g² = inf */
        memcpy(rt_train_grad(sg), g, (size_t)n * 4);
        rt_train_begin(sv);
        rt_train_begin(sg);
        rt_adam(ctx, wv, sv, 0, n);
        rt_adam(generic, wg, sg, 0, n);
        for (int64_t i = 0; i < n; i++)
            cr_assert(memcmp(&wv[i], &wg[i], 4) == 0,
                      "step %d w[%lld]: %a, scalar %a", step, (long long)i,
                      (double)wv[i], (double)wg[i]);
    }
    cr_assert_eq(memcmp(sv, sg, (size_t)floats * 4), 0);  /* m and v too */
    rt_ctx_free(ctx);
    rt_ctx_free(generic);
    free(sv), free(sg), free(wv), free(wg);
}

/* ------------------------------------------------------------------ */
/* The autodiff pass                                                    */
/* ------------------------------------------------------------------ */

static int count_op(const graph *g, graph_op op)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        n += g->nodes[i].op == op;
    return n;
}

Test(autodiff, seed_training_graph)
{
    static const frontend_define defs[] = {
        { .key = "d_model", .value = "16" }, { .key = "vocab", .value = "20" }, { .key = "d_ff", .value = "32" },
        { .key = "seq", .value = "3" }, { .key = "batch", .value = "2" },
    };
    built_train b;
    dsc_err err;
    cr_assert_eq(build_train("models/seed_encoder.lua",
                             &(build_options){ .defines = defs, .n_defines = 5 },
                             &b, &err), 0, "%s", err.msg);
    const graph *g = b.train.model->graph;
    /* Per layer: fused QKV, out_proj, linear1 (+ReLU), linear2: 4 dW and 4
     * db; 2 layernorms; one attention; 3 dropouts.  Then fc and the
     * embedding. */
    cr_expect_eq(count_op(g, GRAPH_OP_LINEAR_GRAD_W), 2 * 4 + 1);
    cr_expect_eq(count_op(g, GRAPH_OP_BIAS_GRAD), 2 * 4 + 1 + 2 * 2);
    cr_expect_eq(count_op(g, GRAPH_OP_LAYERNORM_GRAD_GAMMA), 2 * 2);
    cr_expect_eq(count_op(g, GRAPH_OP_ATTENTION_GRAD), 2);
    /* linear1's ReLU and the dropout after it: one backward node from the
     * forward dropout's result, kept for it and linear2's dW (the relu's
     * output is not kept; no mask made again, nothing recomputed). */
    cr_expect_eq(count_op(g, GRAPH_OP_DROPOUT), 2 * 3);
    cr_expect_eq(count_op(g, GRAPH_OP_DROPOUT_GRAD), 2 * 2);
    cr_expect_eq(count_op(g, GRAPH_OP_DROPOUT_RELU_GRAD), 2);
    cr_expect_eq(count_op(g, GRAPH_OP_RELU_GRAD), 0);
    cr_expect_eq(count_op(g, GRAPH_OP_EMBEDDING_GRAD), 1);
    cr_expect_eq(count_op(g, GRAPH_OP_CROSS_ENTROPY_GRAD), 1);
    /* The input x of a layer feeds QKV and the residual: one sum each. */
    cr_expect_geq(count_op(g, GRAPH_OP_ADD), 2 * 2 + 2);
    /* Every weight's gradient is a GRAD tensor, one per blob entry. */
    cr_expect_eq(graph_count_kind(g, GRAPH_GRAD), b.train.weights.n_entries);
    cr_expect_eq(graph_count_kind(g, GRAPH_OUTPUT), 1);
    /* The planner keeps what backward reads: the arena is larger than the
     * forward's but far below one region per tensor. */
    cr_expect_gt(b.train.plan.arena_bytes, b.fwd.plan.arena_bytes);
    cr_expect_lt(b.train.plan.arena_bytes, b.train.plan.no_reuse_bytes);
    cr_expect(strstr(b.train.source, "_train_step(rt_ctx *ctx, float *w, "
                     "float *state, const int32_t *in_tokens, float *out_loss, "
                     "void *arena)"));
    cr_expect(strstr(b.train.source, "int seed_encoder_forward("));
    cr_expect(strstr(b.train.header, "SEED_ENCODER_STATE_FLOATS"));
    built_train_free(&b);
}

Test(autodiff, refuses_what_it_cannot_train)
{
    const char *path = "/tmp/dsc-train-last.lua";
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("local x = dsc.input('x', {4}, 'int32')\n"
          "local t = dsc.input('t', {1}, 'int32')\n"
          "local e = nn.embedding(x, 'e', 10, 6)\n"
          "local h = dsc.last(e)\n"
          "local y = nn.linear(h, 'b', 6, 10)\n"
          "dsc.output('y', y)\n"
          "dsc.loss(dsc.cross_entropy(y, t))\n", f);
    fclose(f);
    built_train b;
    dsc_err err;
    cr_assert_neq(build_train(path, NULL, &b, &err), 0);
    cr_expect(strstr(err.msg, "cannot train through last: the op has no "
                     "gradient rule"), "%s", err.msg);
    cr_expect(strstr(err.msg, "dsc-train-last.lua:4"), "%s", err.msg);
    remove(path);
}

/* The whole backward of a graph that uses every rule (embedding, linear
 * plain, with a ReLU or GELU epilogue and with a residual, add, relu, gelu,
 * softmax, layernorm, attention, cross-entropy): the train step's gradient of each weight
 * element against central differences of the loss the same step computes
 * (lr 0 leaves the weights alone).  In float, so a wiring check: a rule
 * that drops a term or a sum shows as an O(1) relative error. */
static const char every_rule_model[] =
    "local ids = dsc.input('ids', {3, 2}, 'int32')\n"
    "local x = nn.embedding(ids, 'emb', 11, 8)\n"
    "local q = nn.linear(x, 'q', 8, 8)\n"
    "local k = nn.linear(x, 'k', 8, 8)\n"
    "local v = nn.linear(x, 'v', 8, 8)\n"
    "local a = dsc.attention(q, k, v, {heads = 2})\n"
    "local h = nn.layernorm(x + a, 'ln', 8)\n"
    "local s = dsc.softmax(nn.linear(h, 's', 8, 8))\n"
    "local r = dsc.relu(nn.linear(s, 'r', 8, 8))\n"
    "local e = dsc.gelu(nn.linear(h, 'g', 8, 8), {approximate = 'tanh'})\n"
    "local y = nn.linear(dsc.relu(r + h) + e, 'out', 8, 11)\n"
    "dsc.output('y', y)\n"
    "dsc.loss(dsc.cross_entropy(y, ids))\n";

static void check_whole_backward(const build_options *opts)
{
    const char *path = "/tmp/dsc-train-every-rule.lua";
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(every_rule_model, f);
    fclose(f);
    built_train b;
    dsc_err err;
    cr_assert_eq(build_train(path, opts, &b, &err), 0, "%s", err.msg);
    runner r;
    runner_options ro = { .seed = 5, .threads = 1 };
    cr_assert_eq(runner_open(&r, &b.train, &ro, &err), 0, "%s", err.msg);
    int32_t ids[6] = { 3, 10, 0, 7, 7, 1 };
    void *io[2] = { ids, NULL };
    float *state = aligned_alloc(DSC_ALIGN, ((size_t)b.state_floats * 4 + 63)
                                 / 64 * 64);
    int64_t wf = b.train.weights.total_floats;
    rt_train_init(state, wf, 0.0, 0);
    train_io_fn step = (train_io_fn)(void (*)(void))loaded_entry(r.code);
    float loss;
    cr_assert_eq(step(r.ctx, r.weights, state, io, &loss, r.arena), DSC_OK);
    float *grad = malloc((size_t)wf * 4);
    memcpy(grad, rt_train_grad(state), (size_t)wf * 4);
    int64_t first[64], count[64];
    int n = emit_train_ranges(b.train.model->graph, &b.train.weights, first,
                              count, 64, &err);
    cr_assert_gt(n, 0, "%s", err.msg);
    int checked = 0, nonzero = 0, kinks = 0;
    for (int k = 0; k < n; k++)
        for (int64_t i = first[k]; i < first[k] + count[k]; i += 3) {
            double fd[2];
            for (int t = 0; t < 2; t++) {
                float keep = r.weights[i], h = t ? 1e-3f : 2e-3f, lp, lm;
                r.weights[i] = keep + h;
                cr_assert_eq(step(r.ctx, r.weights, state, io, &lp, r.arena),
                             0);
                r.weights[i] = keep - h;
                cr_assert_eq(step(r.ctx, r.weights, state, io, &lm, r.arena),
                             0);
                r.weights[i] = keep;
                fd[t] = ((double)lp - lm) / (2.0 * h);
            }
            /* Two step sizes that disagree: a ReLU's kink in reach. */
            if (fabs(fd[0] - fd[1]) > 3e-4 + 0.03 * fabs(fd[0])) {
                kinks++;
                continue;
            }
            cr_assert_leq(fabs(grad[i] - fd[0]), 3e-4 + 0.03 * fabs(fd[0]),
                          "blob[%lld]: autodiff %.7g, finite differences "
                          "%.7g", (long long)i, (double)grad[i], fd[0]);
            checked++;
            nonzero += fabs(fd[0]) > 1e-3;
        }
    cr_assert_leq(kinks, checked / 20);
    cr_assert_gt(checked, 200);
    /* (most of a packed 8-wide linear is its panel's zero padding) */
    cr_assert_gt(nonzero, 80, "%d of %d", nonzero, checked);
    free(grad);
    free(state);
    runner_close(&r);
    built_train_free(&b);
    remove(path);
}

Test(autodiff, whole_backward_against_finite_differences)
{
    check_whole_backward(&(build_options){0});
}

Test(autodiff, whole_backward_unfused)
{
    /* q, k and v apart: their gradients are column views of the attention
     * backward's result; activations and residuals as their own ops. */
    check_whole_backward(&(build_options){ .no_fuse_qkv = 1,
                                           .no_fuse_epilogue = 1 });
}


/* ------------------------------------------------------------------ */
/* dsc train against PyTorch                                            */
/* ------------------------------------------------------------------ */

/* The last command's stderr, for messages (a static buffer: no leak). */
static const char *err_text(void)
{
    static char buf[8192];
    char path[300];
    snprintf(path, sizeof path, "%s/stderr", tmp);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return buf;
}

static char *in_tmp(const char *name)
{
    static char paths[4][512];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 512, "%s/%s", tmp, name);
    return p;
}

/* The fixture's flags for dsc train. */
static char *flags(const char *fx)
{
    static char buf[1024];
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s/config", fx);
    char *config = slurp(path);
    snprintf(path, sizeof path, "tests/fixtures/%s/train_args", fx);
    char *args = slurp(path);
    config[strcspn(config, "\n")] = args[strcspn(args, "\n")] = '\0';
    snprintf(buf, sizeof buf, "%s %s --weights tests/fixtures/%s/weights."
             "safetensors --input tokens=tests/fixtures/%s/tokens.npy",
             config, args, fx, fx);
    free(config);
    free(args);
    return buf;
}

static float *read_key(const st_file *f, const char *key, int64_t *count)
{
    const st_tensor *t = st_find(f, key);
    cr_assert_not_null(t, "%s: no key %s", st_path(f), key);
    float *p = malloc((size_t)t->count * 4);
    dsc_err err;
    cr_assert_geq(st_read_f32(f, t, 0, t->count, p, &err), 0, "%s", err.msg);
    *count = t->count;
    return p;
}

/* ||a - b|| / ||b|| over elements [0, n) except [skip0, skip1). */
static double rel_l2(const float *a, const float *b, const float *base,
                     int64_t n, int64_t skip0, int64_t skip1)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i >= skip0 && i < skip1)
            continue;
        double ua = a[i] - (base ? base[i] : 0), ub = b[i] - (base ? base[i] : 0);
        num += (ua - ub) * (ua - ub);
        den += ub * ub;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* The K third of in_proj_bias has an exactly-zero gradient in exact
 * arithmetic (softmax ignores a constant added to every score): both
 * sides hold rounding noise there, which Adam amplifies. */
static void k_bias_part(const char *key, int64_t n, int64_t *s0, int64_t *s1)
{
    *s0 = *s1 = 0;
    if (strstr(key, "in_proj_bias")) {
        *s0 = n / 3;
        *s1 = 2 * n / 3;
    }
}

/* dsc's saved file against PyTorch's: every key in the same order; each
 * update (saved - initial) within tol relative L2; keys PyTorch never
 * updated bit-identical. */
static void compare_weights(const char *fx, const char *mine,
                            const char *theirs, int updates, double tol)
{
    dsc_err err;
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s/weights.safetensors", fx);
    st_file *init = st_open(path, &err);
    cr_assert_not_null(init, "%s", err.msg);
    st_file *a = st_open(mine, &err);
    cr_assert_not_null(a, "%s", err.msg);
    snprintf(path, sizeof path, "tests/fixtures/%s/%s", fx, theirs);
    st_file *b = st_open(path, &err);
    cr_assert_not_null(b, "%s", err.msg);
    if (updates)
        cr_assert_eq(st_count(a), st_count(init));
    int checked = 0;
    for (int i = 0; i < st_count(b); i++) {
        const char *key = st_at(b, i)->name;
        if (updates)
            cr_assert_str_eq(st_at(a, i)->name, st_at(init, i)->name);
        int64_t n, n2, n3, s0, s1;
        float *x = read_key(a, key, &n), *y = read_key(b, key, &n2);
        float *w0 = read_key(init, key, &n3);
        cr_assert_eq(n, n2);
        k_bias_part(key, n, &s0, &s1);
        double r = rel_l2(x, y, updates ? w0 : NULL, n, s0, s1);
        if (updates && strncmp(key, "transformer_layer.", 18) == 0)
            cr_assert_eq(memcmp(x, w0, (size_t)n * 4), 0,
                         "%s: untrained, must be saved as it was", key);
        else
            cr_assert_leq(r, tol, "%s: %s relative L2 %g", fx, key, r);
        checked++;
        free(x), free(y), free(w0);
    }
    cr_assert_gt(checked, 20);
    st_close(init), st_close(a), st_close(b);
}

static void check_losses(const char *fx, const char *mine)
{
    char path[256];
    npy_array a, b;
    dsc_err err;
    snprintf(path, sizeof path, "tests/fixtures/%s/losses.npy", fx);
    cr_assert_eq(npy_read(mine, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(npy_read(path, &b, &err), 0, "%s", err.msg);
    cr_assert_eq(a.count, b.count);
    for (int64_t i = 0; i < a.count; i++) {
        float x = ((float *)a.data)[i], y = ((float *)b.data)[i];
        cr_assert_leq(fabsf(x - y), 2e-3 + 2e-3 * fabsf(y),
                      "%s epoch %lld: %.9g vs PyTorch %.9g", fx,
                      (long long)i + 1, (double)x, (double)y);
    }
    cr_assert_lt(((float *)a.data)[a.count - 1], ((float *)a.data)[0]);
    npy_free(&a);
    npy_free(&b);
}

static void train_against_pytorch(const char *fx, const char *extra)
{
    make_tmp();
    cr_assert_eq(run("%s train models/seed_encoder.lua %s %s --save %s "
                     "--losses %s", dsc(), flags(fx), extra,
                     in_tmp("w.safetensors"), in_tmp("l.npy")), 0, "%s",
                 err_text());
    check_losses(fx, in_tmp("l.npy"));
    compare_weights(fx, in_tmp("w.safetensors"), "trained.safetensors", 1,
                    0.10);
    /* The seed's print, line for line. */
    char *out = slurp(in_tmp("stdout"));
    cr_expect(strncmp(out, "Epoch 1/", 8) == 0, "%s", out);
    cr_expect(strstr(out, ", Loss: "), "%s", out);
    free(out);
    remove_tmp();
}

Test(pytorch, small_jit_one_thread) { train_against_pytorch("train_small", "--threads 1"); }
Test(pytorch, small_jit_two_threads) { train_against_pytorch("train_small", "--threads 2"); }
Test(pytorch, odd_jit) { train_against_pytorch("train_odd", "--threads 2"); }
Test(pytorch, odd_aot) { train_against_pytorch("train_odd", "--aot --threads 1"); }
Test(pytorch, weight_decay) { train_against_pytorch("train_decay", "--threads 1"); }

Test(pytorch, first_step_gradients)
{
    const char *fxs[] = { "train_small", "train_odd" };
    for (int i = 0; i < 2; i++) {
        make_tmp();
        cr_assert_eq(run("%s train models/seed_encoder.lua %s --epochs 1 "
                         "--save-grads %s", dsc(), flags(fxs[i]),
                         in_tmp("g.safetensors")), 0, "%s",
                     err_text());
        compare_weights(fxs[i], in_tmp("g.safetensors"), "grads.safetensors",
                        0, 1e-5);
        remove_tmp();
    }
}

Test(pytorch, same_bits_every_run_and_seeded_dropout)
{
    make_tmp();
    const char *cfg = "-D vocab=30 -D d_model=16 -D d_ff=32 -D seq=5 "
                      "-D batch=4 --epochs 8 --lr 0.003 --threads 2";
    for (int k = 0; k < 2; k++)
        cr_assert_eq(run("%s train models/seed_encoder.lua %s --seed 3 "
                         "--losses %s", dsc(), cfg,
                         in_tmp(k ? "b.npy" : "a.npy")), 0);
    cr_assert_eq(run("%s train models/seed_encoder.lua %s --seed 3 "
                     "-D dropout=0 --losses %s", dsc(), cfg,
                     in_tmp("c.npy")), 0);
    npy_array a, b, c;
    dsc_err err;
    cr_assert_eq(npy_read(in_tmp("a.npy"), &a, &err), 0);
    cr_assert_eq(npy_read(in_tmp("b.npy"), &b, &err), 0);
    cr_assert_eq(npy_read(in_tmp("c.npy"), &c, &err), 0);
    cr_assert_eq(memcmp(a.data, b.data, (size_t)a.count * 4), 0,
                 "same seed, same masks, same bits");
    cr_assert_neq(memcmp(a.data, c.data, (size_t)a.count * 4), 0,
                  "dropout 0.1 changes the losses");
    /* With dropout the loss still falls. */
    float *l = a.data;
    cr_assert_lt(l[a.count - 1], 0.8f * l[0]);
    npy_free(&a), npy_free(&b), npy_free(&c);
    remove_tmp();
}

/* ------------------------------------------------------------------ */
/* What dsc train refuses                                               */
/* ------------------------------------------------------------------ */

Test(cli, refuses_bad_training)
{
    make_tmp();
    /* No loss. */
    cr_assert_eq(run("%s train models/gpt2.lua -D layers=1", dsc()), 1);
    const char *e = err_text();
    cr_expect(strstr(e, "no loss"), "%s", e);
    /* A target (= token) out of range. */
    int64_t shape[2] = { 2, 3 };
    int32_t bad[6] = { 1, 2, 3, 4, 99, 5 };
    dsc_err err;
    cr_assert_eq(npy_write(in_tmp("t.npy"), NPY_I32, 2, shape, bad, &err), 0);
    cr_assert_eq(run("%s train models/seed_encoder.lua -D vocab=10 "
                     "-D d_model=8 -D heads=2 -D d_ff=8 -D seq=2 -D batch=3 "
                     "--input tokens=%s", dsc(), in_tmp("t.npy")), 1);
    e = err_text();
    cr_expect(strstr(e, "t.npy: error: target tokens[4]") &&
              strstr(e, "= 99"), "%s", e);
    /* A NaN loss stops at the epoch it appears in: NaN in fc.bias. */
    st_file *f = st_open("tests/fixtures/train_small/weights.safetensors",
                         &err);
    cr_assert_not_null(f);
    st_out_tensor *t = calloc((size_t)st_count(f), sizeof *t);
    float *nan_bias = NULL;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *s = st_at(f, i);
        t[i] = (st_out_tensor){ s->name, s->dtype, s->rank, {0}, s->data,
                                s->nbytes };
        memcpy(t[i].shape, s->shape, sizeof s->shape);
        if (strcmp(s->name, "fc.bias") == 0) {
            nan_bias = malloc(s->nbytes);
            memcpy(nan_bias, s->data, s->nbytes);
            nan_bias[3] = NAN;
            t[i].data = nan_bias;
        }
    }
    cr_assert_eq(st_write(in_tmp("nan.safetensors"), t, st_count(f), &err), 0,
                 "%s", err.msg);
    cr_assert_eq(run("%s train models/seed_encoder.lua %s --weights %s", dsc(),
                     flags("train_small"), in_tmp("nan.safetensors")), 1);
    e = err_text();
    cr_expect(strstr(e, "epoch 1: the loss is NaN"), "%s", e);
    free(nan_bias);
    free(t);
    st_close(f);
    remove_tmp();
}

/* ------------------------------------------------------------------ */
/* dsc compile --train: a product trains the model with the shipped C   */
/* ------------------------------------------------------------------ */

static const char train_product[] =
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include \"seed_encoder.h\"\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    (void)argc;\n"
    "    size_t wbytes = SEED_ENCODER_WEIGHT_FLOATS * sizeof(float);\n"
    "    float *w = aligned_alloc(DSC_ALIGN, wbytes);\n"
    "    FILE *f = fopen(argv[1], \"rb\");\n"
    "    if (!f || fread(w, 1, wbytes, f) != wbytes) return 2;\n"
    "    fclose(f);\n"
    "    float *state = aligned_alloc(DSC_ALIGN, (SEED_ENCODER_STATE_FLOATS * 4 + 63) / 64 * 64);\n"
    "    void *arena = aligned_alloc(DSC_ALIGN, SEED_ENCODER_TRAIN_ARENA_BYTES);\n"
    "    int32_t tokens[SEED_ENCODER_TOKENS_COUNT];\n"
    "    for (int i = 0; i < SEED_ENCODER_TOKENS_COUNT; i++) tokens[i] = (i * 7) % 20;\n"
    "    rt_ctx *ctx = rt_ctx_new(1);\n"
    "    rt_train_init(state, SEED_ENCODER_WEIGHT_FLOATS, 0.01, 0);\n"
    "    for (int e = 0; e < 5; e++) {\n"
    "        float loss;\n"
    "        if (seed_encoder_train_step(ctx, w, state, tokens, &loss, arena)) return 3;\n"
    "        printf(\"%.6f\\n\", loss);\n"
    "    }\n"
    "    rt_ctx_free(ctx);\n"
    "    free(w);\n"
    "    free(state);\n"
    "    free(arena);\n"
    "    return 0;\n"
    "}\n";

Test(compile, shipped_train_step_trains)
{
    make_tmp();
    cr_assert_eq(run("%s compile --train models/seed_encoder.lua -D vocab=20 "
                     "-D d_model=16 -D d_ff=32 -D seq=4 -D batch=3 "
                     "-D dropout=0 --random-weights -o %s", dsc(),
                     in_tmp("seed_encoder.c")), 0, "%s",
                 err_text());
    FILE *f = fopen(in_tmp("main.c"), "w");
    cr_assert_not_null(f);
    fputs(train_product, f);
    fclose(f);
    const char *xsmm = access("/usr/include/libxsmm.h", F_OK) == 0
        ? "-lxsmm -lxsmmnoblas -lpthread -lrt -ldl" : "";
    const char *lib = getenv("DSC") ? getenv("DSC") : "build/dsc";
    char dir[512];
    snprintf(dir, sizeof dir, "%s", lib);
    *strrchr(dir, '/') = '\0';  /* build/ */
    /* $CC: make check's carries the sanitizer flags libdscrt.a needs. */
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    cr_assert_eq(run("%s -std=c11 -O1 -Iruntime -I%s %s %s %s/libdscrt.a %s "
                     "-lpthread -lm -o %s", cc, tmp, in_tmp("main.c"),
                     in_tmp("seed_encoder.c"), dir, xsmm, in_tmp("prog")), 0,
                 "%s", err_text());
    cr_assert_eq(run("%s %s", in_tmp("prog"), in_tmp("seed_encoder.bin")), 0,
                 "%s", err_text());
    char *out = slurp(in_tmp("stdout"));
    float l[5];
    cr_assert_eq(sscanf(out, "%f %f %f %f %f", &l[0], &l[1], &l[2], &l[3],
                        &l[4]), 5, "%s", out);
    for (int i = 1; i < 5; i++)
        cr_expect_lt(l[i], l[i - 1], "%s", out);
    free(out);
    remove_tmp();
}


/* ------------------------------------------------------------------ */
/* Saving                                                               */
/* ------------------------------------------------------------------ */

Test(io, safetensors_writer_round_trip)
{
    make_tmp();
    float m[6] = { 1, -2, 3.5f, 4, 5, 6 }, s0 = 7;
    int64_t ids[4] = { 1, -1, 1LL << 40, 0 };
    st_out_tensor t[3] = {
        { "a\"b\\c\nd", ST_F32, 2, { 2, 3 }, m, sizeof m },
        { "plain", ST_I64, 1, { 4 }, ids, sizeof ids },
        { "scalar", ST_F32, 0, { 0 }, &s0, sizeof s0 },
    };
    dsc_err err;
    cr_assert_eq(st_write(in_tmp("x.safetensors"), t, 3, &err), 0, "%s",
                 err.msg);
    st_file *f = st_open(in_tmp("x.safetensors"), &err);
    cr_assert_not_null(f, "%s", err.msg);
    cr_assert_eq(st_count(f), 3);
    for (int i = 0; i < 3; i++) {
        const st_tensor *r = st_at(f, i);
        cr_assert_str_eq(r->name, t[i].name);
        cr_assert_eq(r->dtype, t[i].dtype);
        cr_assert_eq(r->rank, t[i].rank);
        for (int d = 0; d < r->rank; d++)
            cr_assert_eq(r->shape[d], t[i].shape[d]);
        cr_assert_eq(r->nbytes, t[i].nbytes);
        cr_assert_eq(memcmp(r->data, t[i].data, r->nbytes), 0);
    }
    st_close(f);
    size_t len;
    char *bytes = file_read_all(in_tmp("x.safetensors"), &len, &err);
    uint64_t header = 0;
    for (int b = 0; b < 8; b++)
        header |= (uint64_t)(unsigned char)bytes[b] << (8 * b);
    cr_expect_eq(header % 8, 0, "the header is padded to 8 bytes");
    free(bytes);
    remove_tmp();
}

Test(cli, save_without_weights_writes_the_model_keys)
{
    make_tmp();
    cr_assert_eq(run("%s train models/seed_encoder.lua -D vocab=20 -D "
                     "d_model=8 -D heads=2 -D d_ff=16 -D seq=3 -D batch=2 "
                     "--epochs 1 --save %s", dsc(), in_tmp("w.safetensors")),
                 0, "%s", err_text());
    dsc_err err;
    st_file *f = st_open(in_tmp("w.safetensors"), &err);
    cr_assert_not_null(f, "%s", err.msg);
    /* embedding, 12 keys a layer, fc: every key the model reads, once. */
    cr_assert_eq(st_count(f), 1 + 2 * 12 + 2);
    cr_assert_not_null(st_find(f, "transformer_encoder.layers.1.self_attn."
                               "in_proj_weight"));
    cr_assert_null(st_find(f, "transformer_layer.linear1.weight"));
    cr_assert_eq(st_find(f, "fc.weight")->shape[0], 20);
    st_close(f);
    remove_tmp();
}
