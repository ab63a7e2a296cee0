/* rt_test.h — what the runtime's kernel tests share: deterministic
 * inputs, buffers ASan can guard, a double-precision rt_linear check, and
 * the loop over the instruction sets this CPU runs.  Included by
 * tests/test_runtime.c and tests/test_quant.c, which define
 * _POSIX_C_SOURCE 200809L first (setenv). */
#ifndef DSC_RT_TEST_H
#define DSC_RT_TEST_H

#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsc_runtime.h"

#define SENTINEL 12345.0f


/* A small LCG, so inputs are the same on every machine and every run. */
typedef struct lcg {
    uint64_t s;
} lcg;


/* Uniform in [-1, 1). */
static float lcg_next(lcg *g)
{
    g->s = g->s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(g->s >> 40) / (double)(1ULL << 24) * 2.0 - 1.0);
}


static float *alloc_floats(int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    cr_assert_not_null(p);
    return p;
}


/* A rows x cols matrix with row stride ld: random values, sentinel gaps. */
static float *alloc_matrix(lcg *g, int64_t rows, int64_t cols, int64_t ld,
                           float amp)
{
    int64_t n = rows > 0 ? (rows - 1) * ld + cols : 0;
    float *m = alloc_floats(n);
    for (int64_t i = 0; i < n; i++)
        m[i] = i % ld < cols ? amp * lcg_next(g) : SENTINEL;
    return m;
}


static void expect_gaps(const float *m, int64_t rows, int64_t cols, int64_t ld,
                        const char *what)
{
    for (int64_t r = 0; r + 1 < rows; r++)
        for (int64_t c = cols; c < ld; c++)
            cr_assert(m[r * ld + c] == SENTINEL,
                      "%s: gap at row %lld col %lld overwritten", what,
                      (long long)r, (long long)c);
}


static double ref_act(double v, rt_act act)
{
    switch (act) {
    case RT_ACT_NONE:
        return v;
    case RT_ACT_RELU:
        return v > 0.0 ? v : 0.0;
    case RT_ACT_GELU:
        return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    case RT_ACT_GELU_TANH:
        return 0.5 * v *
               (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) *
                           (v + 0.044715 * v * v * v)));
    }
    return NAN;
}


static const char *act_name(rt_act act)
{
    static const char *const names[] = {"none", "relu", "gelu", "gelu_tanh"};
    return names[act];
}


typedef enum res_mode { RES_NONE, RES_SEPARATE, RES_ALIAS } res_mode;


/* One rt_linear call checked element by element against a double
 * reference.  Tolerance scales with sum |x*w| + |b|: the size of the float
 * rounding the kernel may legitimately accumulate. */
static void check_linear_in(rt_ctx *ctx, lcg *g, int64_t rows,
                            int64_t n_out, int64_t n_in, rt_act act,
                            int with_bias, res_mode res, int layout)
{
    int64_t ldx = n_in + 3, ldy = n_out + 2;
    float *x = alloc_matrix(g, rows, n_in, ldx, 1.0f);
    float *w = alloc_matrix(g, n_out, n_in, n_in, 1.0f);
    float *b = with_bias ? alloc_matrix(g, 1, n_out, n_out, 1.0f) : NULL;
    float *r = res != RES_NONE ? alloc_matrix(g, rows, n_out, ldy, 1.0f) : NULL;
    float *y = alloc_matrix(g, rows, n_out, ldy, 1.0f);  /* garbage to overwrite */
    int64_t ny = (rows - 1) * ldy + n_out;
    if (res == RES_ALIAS)
        memcpy(y, r, (size_t)ny * sizeof *y);
    int64_t np = rt_linear_packed_floats(n_out, n_in, layout);
    cr_assert(DSC_LAYOUT_FORMAT_OF(layout) != DSC_WEIGHTS_F32 ||
              np >= n_out * n_in);
    float *pw = alloc_floats(np);
    rt_linear_pack(pw, w, n_out, n_in, layout);
    /* The reference multiplies the values stored (a reduced format's
     * rounded ones), so this tests the kernel, not the format. */
    cr_assert_eq(rt_linear_unpack(w, pw, n_out, n_in), 0);

    rt_linear(ctx, y, ldy, x, ldx, pw, b, rows, n_out, n_in, act,
              res == RES_ALIAS ? y : r);

    for (int64_t m = 0; m < rows; m++)
        for (int64_t n = 0; n < n_out; n++) {
            double acc = b ? b[n] : 0.0, mag = b ? fabs(b[n]) : 0.0;
            for (int64_t k = 0; k < n_in; k++) {
                double t = (double)x[m * ldx + k] * w[n * n_in + k];
                acc += t;
                mag += fabs(t);
            }
            double ref = ref_act(acc, act);
            if (r)
                ref += r[m * ldy + n];
            double got = y[m * ldy + n];
            double tol = 2e-6 * (1.0 + mag);
            cr_assert(fabs(got - ref) <= tol,
                      "linear %s %s rows=%lld n_out=%lld n_in=%lld act=%s "
                      "bias=%d res=%d: y[%lld][%lld] = %.9g, want %.9g",
                      rt_isa_name(rt_ctx_isa(ctx)), rt_layout_name(layout),
                      (long long)rows, (long long)n_out, (long long)n_in,
                      act_name(act), with_bias, (int)res, (long long)m,
                      (long long)n, got, ref);
        }
    expect_gaps(y, rows, n_out, ldy, "linear y");
    free(pw);
    free(y);
    free(r);
    free(b);
    free(w);
    free(x);
}



/* The body once per instruction set this CPU can run, with DSC_ISA naming
 * it: contexts made inside, and calls without one, use that ISA's
 * kernels. */
#define FOR_EACH_ISA(isa)                                                  \
    for (int isa = DSC_ISA_GENERIC; isa <= DSC_ISA_AVX512; isa++)          \
        if (rt_isa_supported(isa) &&                                       \
            setenv("DSC_ISA", rt_isa_name(isa), 1) == 0 &&                 \
            rt_isa_native() == isa)

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

#endif
