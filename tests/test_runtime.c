/* test_runtime.c — every runtime kernel against a plain double-precision
 * reference written here, on odd sizes, strided rows and aliased buffers.
 *
 * Buffers are malloc'ed to exactly the bytes a kernel may touch (the last
 * row of a strided matrix ends at its last element), so ASan catches any
 * read or write past them; gaps between rows hold a sentinel that must
 * survive, which catches writes inside the buffer that ASan cannot see.
 */
#define _POSIX_C_SOURCE 200809L  /* nanosleep */

#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsc_runtime.h"
#include "rt_test.h"


/* ---- linear ---------------------------------------------------------- */

/* Every kernel in both packed layouts (each runs both). */
static void check_linear(rt_ctx *ctx, lcg *g, int64_t rows, int64_t n_out,
                         int64_t n_in, rt_act act, int with_bias,
                         res_mode res)
{
    check_linear_in(ctx, g, rows, n_out, n_in, act, with_bias, res,
                    DSC_LAYOUT_PANEL32);
    check_linear_in(ctx, g, rows, n_out, n_in, act, with_bias, res,
                    DSC_LAYOUT_PANEL64);
}


static const int64_t lin_rows[] = {1, 2, 3, 4, 5, 8, 9, 17, 64, 70};
static const int64_t lin_out[] = {1, 5, 33, 70};
static const int64_t lin_in[] = {1, 7, 64, 65, 130};


Test(linear, all_shapes_bias)
{
    FOR_EACH_ISA(isa) {
        lcg g = {1};
        for (int i = 0; i < COUNT(lin_rows); i++)
            for (int j = 0; j < COUNT(lin_out); j++)
                for (int k = 0; k < COUNT(lin_in); k++)
                    check_linear(NULL, &g, lin_rows[i], lin_out[j], lin_in[k],
                                 RT_ACT_NONE, 1, RES_NONE);
    }
}


Test(linear, all_shapes_no_bias)
{
    FOR_EACH_ISA(isa) {
        lcg g = {2};
        for (int i = 0; i < COUNT(lin_rows); i++)
            for (int j = 0; j < COUNT(lin_out); j++)
                for (int k = 0; k < COUNT(lin_in); k++)
                    check_linear(NULL, &g, lin_rows[i], lin_out[j], lin_in[k],
                                 RT_ACT_NONE, 0, RES_NONE);
    }
}


Test(linear, activations)
{
    FOR_EACH_ISA(isa) {
        lcg g = {3};
        for (int a = RT_ACT_NONE; a <= RT_ACT_GELU_TANH; a++)
            for (int j = 0; j < COUNT(lin_out); j++) {
                check_linear(NULL, &g, 17, lin_out[j], 65, (rt_act)a, 1, RES_NONE);
                check_linear(NULL, &g, 70, lin_out[j], 7, (rt_act)a, 0, RES_NONE);
            }
    }
}


Test(linear, residual_separate_and_aliasing_y)
{
    FOR_EACH_ISA(isa) {
        lcg g = {4};
        for (int a = RT_ACT_NONE; a <= RT_ACT_GELU_TANH; a++)
            for (int i = 0; i < COUNT(lin_rows); i++)
                for (int k = 0; k < COUNT(lin_in); k++) {
                    check_linear(NULL, &g, lin_rows[i], 33, lin_in[k], (rt_act)a, 1,
                                 RES_SEPARATE);
                    check_linear(NULL, &g, lin_rows[i], 70, lin_in[k], (rt_act)a, 1,
                                 RES_ALIAS);
                    check_linear(NULL, &g, lin_rows[i], 5, lin_in[k], (rt_act)a, 0,
                                 RES_ALIAS);
                }
    }
}


/* Generated code relies on it: the same inputs give the same bits. */
Test(linear, deterministic)
{
    lcg g = {5};
    int64_t rows = 70, n_out = 70, n_in = 130;
    float *x = alloc_matrix(&g, rows, n_in, n_in, 1.0f);
    float *w = alloc_matrix(&g, n_out, n_in, n_in, 1.0f);
    float *pw = alloc_floats(rt_linear_packed_floats(n_out, n_in,
                                                     DSC_LAYOUT_PANEL64));
    float *y1 = alloc_floats(rows * n_out), *y2 = alloc_floats(rows * n_out);
    rt_linear_pack(pw, w, n_out, n_in, DSC_LAYOUT_PANEL64);
    rt_linear(NULL, y1, n_out, x, n_in, pw, NULL, rows, n_out, n_in, RT_ACT_GELU,
              NULL);
    rt_linear(NULL, y2, n_out, x, n_in, pw, NULL, rows, n_out, n_in, RT_ACT_GELU,
              NULL);
    cr_assert(memcmp(y1, y2, (size_t)(rows * n_out) * sizeof *y1) == 0);
    free(y2);
    free(y1);
    free(pw);
    free(w);
    free(x);
}


/* ---- element-wise ---------------------------------------------------- */

Test(elementwise, add_and_alias)
{
    FOR_EACH_ISA(isa) {
        lcg g = {6};
        int64_t n = 37;
        float *a = alloc_matrix(&g, 1, n, n, 3.0f), *b = alloc_matrix(&g, 1, n, n, 3.0f);
        float *y = alloc_floats(n);
        rt_add(NULL, y, a, b, n);
        for (int64_t i = 0; i < n; i++)
            cr_assert(y[i] == a[i] + b[i], "add[%lld]", (long long)i);
        float a0 = a[0], b0 = b[0];
        rt_add(NULL, a, a, b, n);  /* y aliasing a */
        cr_assert(a[0] == a0 + b0);
        for (int64_t i = 0; i < n; i++)
            cr_assert(a[i] == y[i], "aliased add[%lld]", (long long)i);
        free(y);
        free(b);
        free(a);
    }
}


Test(elementwise, activations_against_double)
{
    FOR_EACH_ISA(isa) {
        lcg g = {7};
        int64_t n = 301;
        float *x = alloc_matrix(&g, 1, n, n, 6.0f);
        x[0] = 0.0f;
        x[1] = -10.0f;
        x[2] = 10.0f;
        float *y = alloc_floats(n), *z = alloc_floats(n);
        for (int a = RT_ACT_NONE; a <= RT_ACT_GELU_TANH; a++) {
            rt_activation(NULL, y, x, n, (rt_act)a);
            memcpy(z, x, (size_t)n * sizeof *z);
            rt_activation(NULL, z, z, n, (rt_act)a);  /* in place */
            for (int64_t i = 0; i < n; i++) {
                double ref = ref_act(x[i], (rt_act)a);
                cr_assert(fabs(y[i] - ref) <= 1e-6 + 1e-5 * fabs(ref),
                          "%s(%.9g) = %.9g, want %.9g", act_name((rt_act)a),
                          (double)x[i], (double)y[i], ref);
                cr_assert(z[i] == y[i], "%s in place differs at %lld",
                          act_name((rt_act)a), (long long)i);
            }
        }
        /* The two GELUs really differ: the test can tell them apart. */
        rt_activation(NULL, y, x + 3, 1, RT_ACT_GELU);
        rt_activation(NULL, z, x + 3, 1, RT_ACT_GELU_TANH);
        cr_assert(y[0] != z[0] || fabsf(x[3]) < 1e-3f);
        /* Past |x| = 3.92 erf is +-1 in float: GELU(x) is x or 0 exactly,
         * as PyTorch's. */
        rt_activation(NULL, y, x + 1, 2, RT_ACT_GELU);
        cr_assert(y[0] == 0.0f && y[1] == 10.0f, "gelu(-10) = %.9g, "
                  "gelu(10) = %.9g", (double)y[0], (double)y[1]);
        free(z);
        free(y);
        free(x);
    }
}


/* ---- layernorm and softmax ------------------------------------------ */

static void check_layernorm(rt_ctx *ctx, lcg *g, int64_t rows, int64_t dim,
                            float offset, int affine, int in_place)
{
    float *x = alloc_matrix(g, rows, dim, dim, 1.0f);
    for (int64_t i = 0; i < rows * dim; i++)
        x[i] += offset;
    float *gamma = affine ? alloc_matrix(g, 1, dim, dim, 2.0f) : NULL;
    float *beta = affine ? alloc_matrix(g, 1, dim, dim, 1.0f) : NULL;
    float *y = alloc_floats(rows * dim);
    float *src = x;
    if (in_place) {
        memcpy(y, x, (size_t)(rows * dim) * sizeof *y);
        src = y;
    }
    rt_layernorm(ctx, y, src, gamma, beta, rows, dim, 1e-5f);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < dim; i++)
            mean += xr[i];
        mean /= (double)dim;
        for (int64_t i = 0; i < dim; i++)
            var += (xr[i] - mean) * (xr[i] - mean);
        var /= (double)dim;  /* biased, as torch */
        for (int64_t i = 0; i < dim; i++) {
            double ref = (xr[i] - mean) / sqrt(var + 1e-5);
            if (affine)
                ref = ref * gamma[i] + beta[i];
            double got = y[r * dim + i];
            cr_assert(fabs(got - ref) <= 1e-5 * (1.0 + fabs(ref)),
                      "layernorm rows=%lld dim=%lld offset=%g: [%lld][%lld] "
                      "= %.9g, want %.9g", (long long)rows, (long long)dim,
                      (double)offset, (long long)r, (long long)i, got, ref);
        }
    }
    free(y);
    free(beta);
    free(gamma);
    free(x);
}


Test(layernorm, against_double)
{
    FOR_EACH_ISA(isa) {
        lcg g = {8};
        const int64_t rows[] = {1, 3, 17};
        const int64_t dims[] = {1, 5, 33, 256, 1000};
        for (int i = 0; i < COUNT(rows); i++)
            for (int j = 0; j < COUNT(dims); j++) {
                check_layernorm(NULL, &g, rows[i], dims[j], 0.0f, 1, 0);
                check_layernorm(NULL, &g, rows[i], dims[j], 0.0f, 1, 1);
                check_layernorm(NULL, &g, rows[i], dims[j], 0.0f, 0, 0);
            }
    }
}


/* A mean far from zero: a one-pass E[x^2] - mean^2 fails this. */
Test(layernorm, large_mean)
{
    FOR_EACH_ISA(isa) {
        lcg g = {9};
        check_layernorm(NULL, &g, 3, 256, 10.0f, 1, 0);
        check_layernorm(NULL, &g, 3, 1000, -30.0f, 1, 1);
    }
}


static void check_softmax(rt_ctx *ctx, lcg *g, int64_t rows, int64_t dim,
                          float amp, float offset, int in_place)
{
    float *x = alloc_matrix(g, rows, dim, dim, amp);
    for (int64_t i = 0; i < rows * dim; i++)
        x[i] += offset;
    float *y = alloc_floats(rows * dim);
    if (in_place)
        memcpy(y, x, (size_t)(rows * dim) * sizeof *y);
    rt_softmax(ctx, y, in_place ? y : x, rows, dim);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        double mx = xr[0], sum = 0.0;
        for (int64_t i = 1; i < dim; i++)
            mx = xr[i] > mx ? xr[i] : mx;
        for (int64_t i = 0; i < dim; i++)
            sum += exp(xr[i] - mx);
        for (int64_t i = 0; i < dim; i++) {
            double ref = exp(xr[i] - mx) / sum, got = y[r * dim + i];
            cr_assert(fabs(got - ref) <= 1e-6 * ref + 1e-9,
                      "softmax dim=%lld amp=%g offset=%g: [%lld][%lld] = "
                      "%.9g, want %.9g", (long long)dim, (double)amp,
                      (double)offset, (long long)r, (long long)i, got, ref);
        }
    }
    free(y);
    free(x);
}


Test(softmax, against_double)
{
    FOR_EACH_ISA(isa) {
        lcg g = {10};
        const int64_t dims[] = {1, 5, 33, 1000};
        for (int j = 0; j < COUNT(dims); j++) {
            check_softmax(NULL, &g, 3, dims[j], 1.0f, 0.0f, 0);
            check_softmax(NULL, &g, 17, dims[j], 8.0f, 0.0f, 1);
        }
    }
}


/* exp(100) overflows float: only a max-subtracting softmax passes. */
Test(softmax, large_logits)
{
    FOR_EACH_ISA(isa) {
        lcg g = {11};
        check_softmax(NULL, &g, 3, 33, 20.0f, 100.0f, 0);
        check_softmax(NULL, &g, 2, 7, 5.0f, -200.0f, 1);
    }
}


/* ---- embedding ------------------------------------------------------- */

Test(embedding, gathers_rows)
{
    lcg g = {12};
    int64_t vocab = 11, dim = 7;
    float *table = alloc_matrix(&g, vocab, dim, dim, 1.0f);
    const int32_t ids[] = {0, 10, 3, 3, 7};
    float *out = alloc_floats(5 * dim);
    cr_assert_eq(rt_embedding(NULL, out, ids, 5, table, vocab, dim), DSC_OK);
    for (int i = 0; i < 5; i++)
        for (int64_t j = 0; j < dim; j++)
            cr_assert(out[i * dim + j] == table[ids[i] * dim + j],
                      "row %d col %lld", i, (long long)j);
    free(out);
    free(table);
}


/* Bad ids anywhere (even last) are rejected before anything is read or
 * written; the table is exactly vocab rows, so ASan sees any stray read. */
Test(embedding, rejects_out_of_range)
{
    lcg g = {13};
    int64_t vocab = 11, dim = 5;
    float *table = alloc_matrix(&g, vocab, dim, dim, 1.0f);
    float *out = alloc_floats(4 * dim);
    const int32_t bad[][4] = {
        {-1, 0, 1, 2}, {0, 1, 2, -1}, {0, 11, 1, 2}, {1, 2, 3, 11},
        {INT32_MIN, 0, 0, 0}, {0, 0, 0, INT32_MAX},
    };
    for (int c = 0; c < COUNT(bad); c++) {
        for (int64_t i = 0; i < 4 * dim; i++)
            out[i] = SENTINEL;
        cr_assert_eq(rt_embedding(NULL, out, bad[c], 4, table, vocab, dim),
                     DSC_EBADTOKEN, "case %d", c);
        for (int64_t i = 0; i < 4 * dim; i++)
            cr_assert(out[i] == SENTINEL, "case %d wrote out[%lld]", c,
                      (long long)i);
    }
    free(out);
    free(table);
}


/* ---- attention ------------------------------------------------------- */

/* Reference for one (b, h, s): exact softmax in double. */
static void ref_attention_row(double *o, const float *q, const float *k,
                              const float *v, const rt_attention_shape *sh,
                              int64_t b, int64_t h, int64_t s)
{
    int64_t dqk = sh->head_dim_qk, dv = sh->head_dim_v;
    int64_t n_keys = sh->causal ? s + 1 : sh->seq;
    const float *qr = q + (s * sh->seq_step + b * sh->batch_step) * sh->ldq
                      + h * dqk;
    double *sc = malloc((size_t)n_keys * sizeof *sc);
    cr_assert_not_null(sc);
    double mx = -INFINITY, sum = 0.0;
    for (int64_t t = 0; t < n_keys; t++) {
        const float *kr = k + (t * sh->seq_step + b * sh->batch_step) * sh->ldk
                          + h * dqk;
        double d = 0.0;
        for (int64_t i = 0; i < dqk; i++)
            d += (double)qr[i] * kr[i];
        sc[t] = d * sh->scale;
        mx = sc[t] > mx ? sc[t] : mx;
    }
    for (int64_t t = 0; t < n_keys; t++)
        sum += (sc[t] = exp(sc[t] - mx));
    for (int64_t j = 0; j < dv; j++)
        o[j] = 0.0;
    for (int64_t t = 0; t < n_keys; t++) {
        const float *vr = v + (t * sh->seq_step + b * sh->batch_step) * sh->ldv
                          + h * dv;
        for (int64_t j = 0; j < dv; j++)
            o[j] += sc[t] / sum * vr[j];
    }
    free(sc);
}


/* q, k and v are separate strided buffers (ld wider than heads*dim) when
 * fused == 0, or column slices of one [rows, q|k|v] buffer when fused. */
static void check_attention(rt_ctx *ctx, lcg *g, int64_t seq, int64_t batch,
                            int64_t heads, int64_t dqk, int64_t dv,
                            int batch_first, int causal, int fused)
{
    int64_t n = seq * batch;
    rt_attention_shape sh = {
        .seq = seq, .batch = batch, .heads = heads,
        .head_dim_qk = dqk, .head_dim_v = dv,
        .seq_step = batch_first ? 1 : batch,
        .batch_step = batch_first ? seq : 1,
        .scale = 1.0f / sqrtf((float)dqk),
        .causal = causal,
    };
    float *qkv = NULL, *q, *k, *v;
    if (fused) {
        int64_t ld = heads * (2 * dqk + dv);
        qkv = alloc_matrix(g, n, ld, ld, 2.0f);
        q = qkv;
        k = qkv + heads * dqk;
        v = qkv + 2 * heads * dqk;
        sh.ldq = sh.ldk = sh.ldv = ld;
    } else {
        sh.ldq = heads * dqk + 1;
        sh.ldk = heads * dqk + 4;
        sh.ldv = heads * dv + 2;
        q = alloc_matrix(g, n, heads * dqk, sh.ldq, 2.0f);
        k = alloc_matrix(g, n, heads * dqk, sh.ldk, 2.0f);
        v = alloc_matrix(g, n, heads * dv, sh.ldv, 1.0f);
    }
    sh.ldo = heads * dv + 3;
    float *out = alloc_matrix(g, n, heads * dv, sh.ldo, 1.0f);
    double *o = malloc((size_t)dv * sizeof *o);
    cr_assert_not_null(o);

    rt_attention(ctx, out, q, k, v, &sh);

    for (int64_t b = 0; b < batch; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t s = 0; s < seq; s++) {
                ref_attention_row(o, q, k, v, &sh, b, h, s);
                const float *got = out + (s * sh.seq_step + b * sh.batch_step)
                                   * sh.ldo + h * dv;
                for (int64_t j = 0; j < dv; j++)
                    cr_assert(fabs(got[j] - o[j]) <= 2e-6 * (1.0 + fabs(o[j])),
                              "attention seq=%lld batch=%lld heads=%lld "
                              "dqk=%lld dv=%lld batch_first=%d causal=%d "
                              "fused=%d: b=%lld h=%lld s=%lld j=%lld: %.9g, "
                              "want %.9g", (long long)seq, (long long)batch,
                              (long long)heads, (long long)dqk, (long long)dv,
                              batch_first, causal, fused, (long long)b,
                              (long long)h, (long long)s, (long long)j,
                              (double)got[j], o[j]);
            }
    expect_gaps(out, n, heads * dv, sh.ldo, "attention out");
    free(o);
    free(out);
    if (fused) {
        free(qkv);
    } else {
        free(v);
        free(k);
        free(q);
    }
}


Test(attention, all_shapes_and_layouts)
{
    FOR_EACH_ISA(isa) {
        lcg g = {14};
        const int64_t seqs[] = {1, 7}, batches[] = {1, 3}, dims[] = {1, 5, 8};
        for (int si = 0; si < COUNT(seqs); si++)
            for (int bi = 0; bi < COUNT(batches); bi++)
                for (int64_t heads = 1; heads <= 3; heads++)
                    for (int di = 0; di < COUNT(dims); di++)
                        for (int bf = 0; bf <= 1; bf++)
                            for (int causal = 0; causal <= 1; causal++)
                                for (int fused = 0; fused <= 1; fused++)
                                    check_attention(NULL, &g, seqs[si],
                                                    batches[bi], heads, dims[di],
                                                    dims[di], bf, causal, fused);
    }
}


Test(attention, different_qk_and_v_dims)
{
    FOR_EACH_ISA(isa) {
        lcg g = {15};
        check_attention(NULL, &g, 7, 3, 2, 5, 8, 0, 1, 0);
        check_attention(NULL, &g, 7, 3, 3, 8, 1, 1, 0, 1);
    }
}


/* Longer than one chunk of scores, so the online rescaling is exercised. */
Test(attention, long_sequence)
{
    FOR_EACH_ISA(isa) {
        lcg g = {16};
        check_attention(NULL, &g, 150, 2, 2, 8, 8, 0, 0, 0);
        check_attention(NULL, &g, 150, 2, 2, 8, 8, 1, 1, 1);
    }
}


/* Head sizes on both sides of the blocked path's limit (128), sequences
 * that are not whole query blocks or key chunks, causal or not. */
Test(attention, head_dims_and_block_edges)
{
    FOR_EACH_ISA(isa) {
        lcg g = {17};
        check_attention(NULL, &g, 16, 3, 2, 64, 64, 0, 0, 1);
        check_attention(NULL, &g, 33, 2, 2, 17, 31, 1, 1, 0);
        check_attention(NULL, &g, 70, 1, 1, 128, 128, 0, 1, 1);
        check_attention(NULL, &g, 9, 2, 2, 129, 130, 0, 1, 0);
        check_attention(NULL, &g, 5, 1, 2, 200, 3, 1, 0, 1);
    }
}


/* ---- threads --------------------------------------------------------- */

/* Every kernel on contexts of 1, 2 and 3 threads, with sizes big enough to
 * be split and chosen not to divide evenly among the threads: against the
 * same references and tolerances as above, bit for bit equal to itself
 * over repeated runs, and within tolerance of the single-thread (NULL
 * context) result. */
static const int thread_counts[] = {1, 2, 3};
#define REPEATS 3


static rt_ctx *new_ctx(int threads)
{
    rt_ctx *ctx = rt_ctx_new(threads);
    cr_assert_not_null(ctx);
    cr_assert_eq(rt_ctx_threads(ctx), threads);
    return ctx;
}


/* Runs of one kernel: run(ctx, arg, out) writes n floats to out from
 * inputs it derives deterministically from arg. */
typedef void (*run_fn)(rt_ctx *ctx, const void *arg, float *out);


static void expect_repeatable(rt_ctx *ctx, run_fn run, const void *arg,
                              int64_t n, double abs_tol, double rel_tol,
                              const char *what)
{
    float *first = alloc_floats(n), *again = alloc_floats(n);
    float *single = alloc_floats(n);
    run(ctx, arg, first);
    for (int i = 0; i < REPEATS; i++) {
        run(ctx, arg, again);
        cr_assert(memcmp(first, again, (size_t)n * sizeof *first) == 0,
                  "%s on %d threads: run %d differs from run 0", what,
                  rt_ctx_threads(ctx), i + 1);
    }
    run(NULL, arg, single);
    for (int64_t i = 0; i < n; i++)
        cr_assert(fabs((double)first[i] - single[i]) <=
                      abs_tol + rel_tol * fabs((double)single[i]),
                  "%s on %d threads: [%lld] = %.9g, single thread %.9g", what,
                  rt_ctx_threads(ctx), (long long)i, (double)first[i],
                  (double)single[i]);
    free(single);
    free(again);
    free(first);
}


typedef struct linear_case {
    int64_t rows, n_out, n_in;
    rt_act act;
    int bias, residual;
    int layout;
} linear_case;


static void run_linear(rt_ctx *ctx, const void *arg, float *y)
{
    const linear_case *c = arg;
    lcg g = {100 + (uint64_t)c->rows};
    float *x = alloc_matrix(&g, c->rows, c->n_in, c->n_in, 1.0f);
    float *w = alloc_matrix(&g, c->n_out, c->n_in, c->n_in, 1.0f);
    float *b = alloc_matrix(&g, 1, c->n_out, c->n_out, 1.0f);
    float *pw = alloc_floats(rt_linear_packed_floats(c->n_out, c->n_in,
                                                     c->layout));
    rt_linear_pack(pw, w, c->n_out, c->n_in, c->layout);
    /* The residual is y itself, preset: the aliasing generated code uses. */
    lcg gy = {7};
    for (int64_t i = 0; i < c->rows * c->n_out; i++)
        y[i] = lcg_next(&gy);
    rt_linear(ctx, y, c->n_out, x, c->n_in, pw, c->bias ? b : NULL, c->rows,
              c->n_out, c->n_in, c->act, c->residual ? y : NULL);
    free(pw);
    free(b);
    free(w);
    free(x);
}


Test(threads, linear)
{
    static const linear_case cases[] = {
        {70, 70, 130, RT_ACT_GELU, 1, 1, 0},
        {131, 200, 65, RT_ACT_RELU, 1, 0, 0},
        {320, 256, 256, RT_ACT_NONE, 1, 1, 0},   /* the seed's shapes */
        {320, 1000, 256, RT_ACT_NONE, 1, 0, 0},
        {65, 129, 300, RT_ACT_GELU_TANH, 0, 1, 0},
        {3, 517, 177, RT_ACT_NONE, 0, 0, 0},     /* one row block */
        {200, 5, 333, RT_ACT_RELU, 1, 1, 0},     /* one panel */
        {1, 1000, 256, RT_ACT_NONE, 1, 0, 0},    /* skinny: one token */
        {1, 300, 130, RT_ACT_GELU, 1, 1, 0},
    };
    FOR_EACH_ISA(isa)
    for (int t = 0; t < COUNT(thread_counts); t++) {
        rt_ctx *ctx = new_ctx(thread_counts[t]);
        cr_assert_eq(rt_ctx_isa(ctx), isa);
        lcg g = {20};
        for (int i = 0; i < COUNT(cases); i++) {
            linear_case c = cases[i];
            c.layout = rt_isa_layout(isa);
            check_linear(ctx, &g, c.rows, c.n_out, c.n_in, c.act, c.bias,
                         c.residual ? RES_ALIAS : RES_NONE);
            check_linear(ctx, &g, c.rows, c.n_out, c.n_in, c.act, c.bias,
                         c.residual ? RES_SEPARATE : RES_NONE);
            expect_repeatable(ctx, run_linear, &c, c.rows * c.n_out, 1e-5,
                              1e-5, "linear");
        }
        rt_ctx_free(ctx);
    }
}


typedef struct ew_case {
    int64_t n;
    int op;  /* 0: add, 1 + act: activation */
} ew_case;


static void run_elementwise(rt_ctx *ctx, const void *arg, float *y)
{
    const ew_case *c = arg;
    lcg g = {30};
    float *a = alloc_matrix(&g, 1, c->n, c->n, 4.0f);
    float *b = alloc_matrix(&g, 1, c->n, c->n, 4.0f);
    if (c->op == 0)
        rt_add(ctx, y, a, b, c->n);
    else
        rt_activation(ctx, y, a, c->n, (rt_act)(c->op - 1));
    free(b);
    free(a);
}


Test(threads, elementwise)
{
    FOR_EACH_ISA(isa) {
        const int64_t n = 100003;  /* 25 chunks of 4096 floats, and a tail */
        for (int t = 0; t < COUNT(thread_counts); t++) {
            rt_ctx *ctx = new_ctx(thread_counts[t]);
            lcg g = {31};
            float *a = alloc_matrix(&g, 1, n, n, 6.0f);
            float *b = alloc_matrix(&g, 1, n, n, 6.0f);
            float *y = alloc_floats(n), *z = alloc_floats(n);
            rt_add(ctx, y, a, b, n);
            for (int64_t i = 0; i < n; i++)
                cr_assert(y[i] == a[i] + b[i], "add[%lld]", (long long)i);
            memcpy(z, a, (size_t)n * sizeof *z);
            rt_add(ctx, z, z, b, n);  /* in place */
            cr_assert(memcmp(z, y, (size_t)n * sizeof *z) == 0);
            for (int act = RT_ACT_NONE; act <= RT_ACT_GELU_TANH; act++) {
                rt_activation(ctx, y, a, n, (rt_act)act);
                memcpy(z, a, (size_t)n * sizeof *z);
                rt_activation(ctx, z, z, n, (rt_act)act);
                for (int64_t i = 0; i < n; i++) {
                    double ref = ref_act(a[i], (rt_act)act);
                    cr_assert(fabs(y[i] - ref) <= 1e-6 + 1e-5 * fabs(ref),
                              "%s(%.9g) = %.9g, want %.9g", act_name((rt_act)act),
                              (double)a[i], (double)y[i], ref);
                    cr_assert(z[i] == y[i], "in place differs at %lld",
                              (long long)i);
                }
            }
            for (int op = 0; op <= 1 + RT_ACT_GELU_TANH; op++) {
                ew_case c = {n, op};
                expect_repeatable(ctx, run_elementwise, &c, n, 0.0, 0.0,
                                  "elementwise");
            }
            free(z);
            free(y);
            free(b);
            free(a);
            rt_ctx_free(ctx);
        }
    }
}


typedef struct rows_case {
    int64_t rows, dim;
} rows_case;


static void run_layernorm(rt_ctx *ctx, const void *arg, float *y)
{
    const rows_case *c = arg;
    lcg g = {40};
    float *x = alloc_matrix(&g, c->rows, c->dim, c->dim, 3.0f);
    float *gamma = alloc_matrix(&g, 1, c->dim, c->dim, 2.0f);
    float *beta = alloc_matrix(&g, 1, c->dim, c->dim, 1.0f);
    rt_layernorm(ctx, y, x, gamma, beta, c->rows, c->dim, 1e-5f);
    free(beta);
    free(gamma);
    free(x);
}


static void run_softmax(rt_ctx *ctx, const void *arg, float *y)
{
    const rows_case *c = arg;
    lcg g = {41};
    float *x = alloc_matrix(&g, c->rows, c->dim, c->dim, 8.0f);
    rt_softmax(ctx, y, x, c->rows, c->dim);
    free(x);
}


Test(threads, layernorm_and_softmax)
{
    FOR_EACH_ISA(isa) {
        /* 333 x 301: ~100k floats, enough for three threads; 111 rows each. */
        static const rows_case ln[] = {{333, 301}, {1000, 256}, {97, 1031}};
        static const rows_case sm[] = {{67, 257}, {331, 16}, {5, 4099}};
        for (int t = 0; t < COUNT(thread_counts); t++) {
            rt_ctx *ctx = new_ctx(thread_counts[t]);
            lcg g = {42};
            for (int i = 0; i < COUNT(ln); i++) {
                check_layernorm(ctx, &g, ln[i].rows, ln[i].dim, 0.0f, 1, 0);
                check_layernorm(ctx, &g, ln[i].rows, ln[i].dim, 20.0f, 1, 1);
                check_layernorm(ctx, &g, ln[i].rows, ln[i].dim, 0.0f, 0, 0);
                expect_repeatable(ctx, run_layernorm, &ln[i],
                                  ln[i].rows * ln[i].dim, 1e-6, 1e-5, "layernorm");
            }
            for (int i = 0; i < COUNT(sm); i++) {
                check_softmax(ctx, &g, sm[i].rows, sm[i].dim, 4.0f, 0.0f, 0);
                check_softmax(ctx, &g, sm[i].rows, sm[i].dim, 8.0f, 50.0f, 1);
                expect_repeatable(ctx, run_softmax, &sm[i],
                                  sm[i].rows * sm[i].dim, 1e-9, 1e-6, "softmax");
            }
            rt_ctx_free(ctx);
        }
    }
}


typedef struct attn_case {
    int64_t seq, batch, heads, dqk, dv;
    int batch_first, causal;
} attn_case;


static void run_attention(rt_ctx *ctx, const void *arg, float *out)
{
    const attn_case *c = arg;
    int64_t n = c->seq * c->batch, ld = c->heads * (2 * c->dqk + c->dv);
    lcg g = {50};
    float *qkv = alloc_matrix(&g, n, ld, ld, 2.0f);
    rt_attention_shape sh = {
        .seq = c->seq, .batch = c->batch, .heads = c->heads,
        .head_dim_qk = c->dqk, .head_dim_v = c->dv,
        .seq_step = c->batch_first ? 1 : c->batch,
        .batch_step = c->batch_first ? c->seq : 1,
        .ldq = ld, .ldk = ld, .ldv = ld, .ldo = c->heads * c->dv,
        .scale = 1.0f / sqrtf((float)c->dqk), .causal = c->causal,
    };
    rt_attention(ctx, out, qkv, qkv + c->heads * c->dqk,
                 qkv + 2 * c->heads * c->dqk, &sh);
    free(qkv);
}


Test(threads, attention)
{
    FOR_EACH_ISA(isa) {
        static const attn_case cases[] = {
            {16, 5, 3, 64, 64, 0, 0},     /* the seed's layout: 15 tasks */
            {37, 3, 2, 24, 40, 1, 1},     /* 3 query blocks, the last partial */
            {150, 1, 3, 8, 8, 0, 1},      /* several key chunks, causal */
            {133, 2, 2, 32, 48, 0, 0},    /* several chunks, all keys seen */
            {11, 7, 1, 136, 136, 1, 0},   /* heads too wide for the blocks */
        };
        for (int t = 0; t < COUNT(thread_counts); t++) {
            rt_ctx *ctx = new_ctx(thread_counts[t]);
            lcg g = {51};
            for (int i = 0; i < COUNT(cases); i++) {
                const attn_case *c = &cases[i];
                check_attention(ctx, &g, c->seq, c->batch, c->heads, c->dqk,
                                c->dv, c->batch_first, c->causal, 0);
                check_attention(ctx, &g, c->seq, c->batch, c->heads, c->dqk,
                                c->dv, c->batch_first, c->causal, 1);
                expect_repeatable(ctx, run_attention, c,
                                  c->seq * c->batch * c->heads * c->dv, 1e-6,
                                  1e-5, "attention");
            }
            rt_ctx_free(ctx);
        }
    }
}


static void run_embedding(rt_ctx *ctx, const void *arg, float *out)
{
    const rows_case *c = arg;  /* rows: ids, dim: row length */
    lcg g = {60};
    int64_t vocab = 97;
    float *table = alloc_matrix(&g, vocab, c->dim, c->dim, 1.0f);
    int32_t *ids = malloc((size_t)c->rows * sizeof *ids);
    cr_assert_not_null(ids);
    for (int64_t i = 0; i < c->rows; i++)
        ids[i] = (int32_t)((i * 31 + 5) % vocab);
    cr_assert_eq(rt_embedding(ctx, out, ids, c->rows, table, vocab, c->dim),
                 DSC_OK);
    for (int64_t i = 0; i < c->rows; i++)
        cr_assert(memcmp(out + i * c->dim, table + ids[i] * c->dim,
                         (size_t)c->dim * sizeof *out) == 0,
                  "embedding row %lld", (long long)i);
    free(ids);
    free(table);
}


Test(threads, embedding)
{
    FOR_EACH_ISA(isa) {
        static const rows_case c = {1501, 301};  /* ~450k floats: three threads */
        for (int t = 0; t < COUNT(thread_counts); t++) {
            rt_ctx *ctx = new_ctx(thread_counts[t]);
            expect_repeatable(ctx, run_embedding, &c, c.rows * c.dim, 0.0, 0.0,
                              "embedding");
            /* A bad id still writes nothing, however many threads. */
            int32_t *ids = malloc((size_t)c.rows * sizeof *ids);
            float *table = alloc_floats(11 * c.dim);
            float *out = alloc_floats(c.rows * c.dim);
            cr_assert_not_null(ids);
            for (int64_t i = 0; i < c.rows; i++)
                ids[i] = (int32_t)(i % 11);
            ids[c.rows - 1] = 11;
            for (int64_t i = 0; i < 11 * c.dim; i++)
                table[i] = 1.0f;
            for (int64_t i = 0; i < c.rows * c.dim; i++)
                out[i] = SENTINEL;
            cr_assert_eq(rt_embedding(ctx, out, ids, c.rows, table, 11, c.dim),
                         DSC_EBADTOKEN);
            for (int64_t i = 0; i < c.rows * c.dim; i++)
                cr_assert(out[i] == SENTINEL, "wrote out[%lld]", (long long)i);
            free(out);
            free(table);
            free(ids);
            rt_ctx_free(ctx);
        }
    }
}


/* Contexts come and go (the pool is started and joined each time), one
 * per core with threads <= 0, and a context can be idle between calls
 * long enough for its workers to fall asleep. */
Test(threads, context_lifecycle)
{
    for (int i = 0; i < 20; i++) {
        rt_ctx *ctx = rt_ctx_new(1 + i % 4);
        cr_assert_not_null(ctx);
        cr_assert_eq(rt_ctx_threads(ctx), 1 + i % 4);
        rt_ctx_free(ctx);
    }
    rt_ctx *ctx = rt_ctx_new(0);
    cr_assert_not_null(ctx);
    cr_assert_geq(rt_ctx_threads(ctx), 1);
    rt_ctx_free(ctx);
    rt_ctx_free(NULL);
    cr_assert_eq(rt_ctx_threads(NULL), 1);

    ctx = new_ctx(2);
    linear_case c = {64, 128, 64, RT_ACT_NONE, 1, 0, DSC_LAYOUT_PANEL64};
    float *y1 = alloc_floats(c.rows * c.n_out);
    float *y2 = alloc_floats(c.rows * c.n_out);
    run_linear(ctx, &c, y1);
    struct timespec nap = {0, 20 * 1000 * 1000};  /* 20 ms: workers sleep */
    nanosleep(&nap, NULL);
    run_linear(ctx, &c, y2);
    cr_assert(memcmp(y1, y2, (size_t)(c.rows * c.n_out) * sizeof *y1) == 0);
    free(y2);
    free(y1);
    rt_ctx_free(ctx);
}


/* ---- decoder steps: attention over a KV cache ---- */

/* Run a whole sequence of `total` tokens through rt_kv_attention in steps
 * of `step` tokens (the last may be shorter), and compare every token's
 * output with causal attention in double over the whole sequence. */
static void check_kv_attention(rt_ctx *ctx, int64_t total, int64_t step,
                               int64_t heads, int64_t dqk, int64_t dv,
                               int64_t ld_extra)
{
    lcg g = {(uint64_t)(total * 131 + step * 17 + heads * 5 + dqk + dv)};
    int64_t wq = heads * dqk, wv = heads * dv;
    int64_t ld = 2 * wq + wv + ld_extra;  /* q|k|v fused in one row */
    float *qkv = alloc_matrix(&g, total, 2 * wq + wv, ld, 1.0f);
    float *kc = alloc_floats(total * wq), *vc = alloc_floats(total * wv);
    float *out = alloc_floats(total * wv);
    rt_kv_shape s = { heads, dqk, dv, ld, ld, ld, wv,
                      1.0f / sqrtf((float)dqk) };
    for (int64_t pos = 0; pos < total; pos += step) {
        int64_t n = pos + step <= total ? step : total - pos;
        const float *rows = qkv + pos * ld;
        rt_kv_attention(ctx, out + pos * wv, rows, rows + wq, rows + 2 * wq,
                        kc, vc, n, pos, &s);
    }
    double *scores = calloc((size_t)total, sizeof(double));
    cr_assert_not_null(scores);
    for (int64_t i = 0; i < total; i++)
        for (int64_t h = 0; h < heads; h++) {
            const float *q = qkv + i * ld + h * dqk;
            double max = -INFINITY, sum = 0;
            for (int64_t t = 0; t <= i; t++) {
                const float *k = qkv + t * ld + wq + h * dqk;
                double dot = 0;
                for (int64_t d = 0; d < dqk; d++)
                    dot += (double)q[d] * k[d];
                scores[t] = dot * s.scale;
                max = scores[t] > max ? scores[t] : max;
            }
            for (int64_t t = 0; t <= i; t++)
                sum += scores[t] = exp(scores[t] - max);
            for (int64_t d = 0; d < dv; d++) {
                double ref = 0;
                for (int64_t t = 0; t <= i; t++)
                    ref += scores[t] / sum *
                           qkv[t * ld + 2 * wq + h * dv + d];
                double got = out[i * wv + h * dv + d];
                cr_assert(fabs(got - ref) <= 2e-6 + 2e-5 * fabs(ref),
                          "total %lld step %lld heads %lld: token %lld head "
                          "%lld dim %lld: %g vs %g", (long long)total,
                          (long long)step, (long long)heads, (long long)i,
                          (long long)h, (long long)d, got, ref);
            }
        }
    free(scores);
    free(qkv);
    free(kc);
    free(vc);
    free(out);
}

Test(kv_attention, steps_of_any_size_match_causal_attention)
{
    FOR_EACH_ISA(isa) {
        static const int64_t totals[] = {1, 7, 300};  /* 300 > one key block */
        static const int64_t steps[] = {1, 3, 300};
        for (int t = 0; t < COUNT(thread_counts); t++) {
            rt_ctx *ctx = new_ctx(thread_counts[t]);
            for (int a = 0; a < COUNT(totals); a++)
                for (int b = 0; b < COUNT(steps); b++) {
                    check_kv_attention(ctx, totals[a], steps[b], 3, 5, 7, 0);
                    check_kv_attention(ctx, totals[a], steps[b], 1, 16, 16, 3);
                }
            rt_ctx_free(ctx);
        }
        check_kv_attention(NULL, 9, 2, 4, 8, 8, 1);
    }
}

Test(kv_attention, positions_and_copy)
{
    FOR_EACH_ISA(isa) {
        lcg g = {5};
        float *table = alloc_matrix(&g, 10, 6, 6, 1.0f);
        float out[3 * 6];
        rt_positions(NULL, out, table, 4, 3, 6);
        for (int i = 0; i < 3 * 6; i++)
            cr_expect_eq(out[i], table[4 * 6 + i]);
        float row[6];
        rt_copy(NULL, row, table + 9 * 6, 6);
        for (int i = 0; i < 6; i++)
            cr_expect_eq(row[i], table[9 * 6 + i]);
        free(table);
    }
}


/* A blob of an older format is named as such, not as "not a blob". */
Test(blob, older_format_refused_by_name)
{
    float blob[DSC_BLOB_HEADER_FLOATS];
    rt_blob_header(blob, DSC_LAYOUT_PANEL32, DSC_BLOB_HEADER_FLOATS);
    rt_ctx *ctx = rt_ctx_new(1);
    cr_assert_eq(rt_weights_check(ctx, blob, DSC_LAYOUT_PANEL32), DSC_OK);
    uint32_t old = 1;
    memcpy(&blob[1], &old, sizeof old);
    cr_expect_eq(rt_blob_layout(blob), -1);
    cr_expect_eq(rt_weights_check(ctx, blob, DSC_LAYOUT_PANEL32),
                 DSC_EBADLAYOUT);
    cr_expect(strstr(rt_ctx_error(ctx), "blob format 1;"), "%s",
              rt_ctx_error(ctx));
    float junk[DSC_BLOB_HEADER_FLOATS] = {0};
    cr_expect_eq(rt_weights_check(ctx, junk, DSC_LAYOUT_PANEL32),
                 DSC_EBADLAYOUT);
    cr_expect(strstr(rt_ctx_error(ctx), "not a dsc weight blob"), "%s",
              rt_ctx_error(ctx));
    rt_ctx_free(ctx);
}
