/* test_quant.c — the reduced weight formats (bfloat16, Q8_0): rt_linear's
 * kernels for them against a double-precision reference of the values
 * stored (rt_linear_unpack), and the packing itself against the formats'
 * definitions.
 *
 * The kernel checks reuse test_runtime.c's (tests/rt_test.h): every ISA
 * this CPU runs, both panel widths, strided rows, every epilogue.  The
 * row counts cross each path's edges: the fused kernels' row groups
 * (1-4 at a time), the last row count they take (8 under AVX2, 16 under
 * AVX-512) and the convert-then-multiply path past it (64-row tiles). */
#define _POSIX_C_SOURCE 200809L  /* setenv, in rt_test.h */

#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsc_runtime.h"
#include "rt_test.h"

static const int formats[] = {DSC_WEIGHTS_BF16, DSC_WEIGHTS_Q8};
static const int panels[] = {32, 64};

static const int64_t q_rows[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17,
                                 64, 65, 130};
/* Not multiples of a panel, and a whole one. */
static const int64_t q_out[] = {1, 33, 64, 70};
/* Not multiples of the Q8 block of 32 (and k tails of every unroll), and
 * multiples of it. */
static const int64_t q_in[] = {1, 7, 31, 32, 33, 65, 130, 300};


/* One call per format and panel width. */
static void check_reduced(rt_ctx *ctx, lcg *g, int64_t rows, int64_t n_out,
                          int64_t n_in, rt_act act, int with_bias,
                          res_mode res)
{
    for (int f = 0; f < COUNT(formats); f++)
        for (int p = 0; p < COUNT(panels); p++)
            check_linear_in(ctx, g, rows, n_out, n_in, act, with_bias, res,
                            DSC_LAYOUT(panels[p], formats[f]));
}


Test(quant_linear, all_shapes)
{
    FOR_EACH_ISA(isa) {
        lcg g = {101};
        for (int i = 0; i < COUNT(q_rows); i++)
            for (int j = 0; j < COUNT(q_out); j++)
                for (int k = 0; k < COUNT(q_in); k++)
                    check_reduced(NULL, &g, q_rows[i], q_out[j], q_in[k],
                                  RT_ACT_NONE, (i + j + k) % 2, RES_NONE);
    }
}


Test(quant_linear, epilogues)
{
    static const int64_t rows[] = {1, 3, 9, 17, 65};
    FOR_EACH_ISA(isa) {
        lcg g = {102};
        for (int a = RT_ACT_NONE; a <= RT_ACT_GELU_TANH; a++)
            for (int i = 0; i < COUNT(rows); i++) {
                check_reduced(NULL, &g, rows[i], 70, 65, (rt_act)a, 1,
                              RES_NONE);
                check_reduced(NULL, &g, rows[i], 33, 130, (rt_act)a, 1,
                              RES_SEPARATE);
                check_reduced(NULL, &g, rows[i], 70, 33, (rt_act)a, 0,
                              RES_ALIAS);
            }
    }
}


/* Threads split the panels (skinny) or the tiles: each must land its own
 * columns. */
Test(quant_linear, threads)
{
    FOR_EACH_ISA(isa) {
        lcg g = {103};
        rt_ctx *ctx = rt_ctx_new(3);
        cr_assert_not_null(ctx);
        for (int i = 0; i < COUNT(q_rows); i++)
            check_reduced(ctx, &g, q_rows[i], 300, 257, RT_ACT_RELU, 1,
                          RES_ALIAS);
        rt_ctx_free(ctx);
    }
}


/* ---- packing ---------------------------------------------------------- */

static uint32_t bits_of(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}


static float float_of(uint32_t u)
{
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}


/* w [n_out, n_in] through pack and unpack in layout. */
static float *round_trip(const float *w, int64_t n_out, int64_t n_in,
                         int layout)
{
    float *pw = alloc_floats(rt_linear_packed_floats(n_out, n_in, layout));
    float *u = alloc_floats(n_out * n_in);
    rt_linear_pack(pw, w, n_out, n_in, layout);
    cr_assert_eq(rt_linear_unpack(u, pw, n_out, n_in), 0, "%s",
                 rt_layout_name(layout));
    free(pw);
    return u;
}


/* Values that test a rounding: ties both ways, just off them, the
 * largest float (bf16 rounds it to infinity), infinities, zeros of both
 * signs, subnormals, and NaNs whose payload sits only in the low half. */
static const uint32_t special_bits[] = {
    0x3f808000u, /* 1 + 2^-8: a tie, even below: stays 0x3f80 */
    0x3f818000u, /* a tie, odd below: rounds up to 0x3f82 */
    0xbf818000u, /* the same, negative */
    0x3f808001u, /* just above a tie: up */
    0x3f807fffu, /* just below: down */
    0x7f7fffffu, /* FLT_MAX: up to infinity */
    0x7f800000u, 0xff800000u, 0x00000000u, 0x80000000u,
    0x00000001u, 0x807fffffu, 0x00018000u,
    0x7fc00000u, 0xffc00001u,
    0x7f800001u, /* a NaN that naive rounding turns into infinity */
    0x7f80ffffu,
};


Test(quant_pack, f32_exact)
{
    lcg g = {104};
    int64_t n_out = 37, n_in = 45;
    float *w = alloc_matrix(&g, n_out, n_in, n_in, 100.0f);
    for (int i = 0; i < COUNT(special_bits); i++)
        w[i * 7] = float_of(special_bits[i]);
    for (int p = 0; p < COUNT(panels); p++) {
        float *u = round_trip(w, n_out, n_in,
                              DSC_LAYOUT(panels[p], DSC_WEIGHTS_F32));
        cr_assert(memcmp(u, w, (size_t)(n_out * n_in) * sizeof *w) == 0,
                  "f32 round trip is not bit-exact");
        free(u);
    }
    free(w);
}


/* bf16 of v: the top 16 bits of v rounded to nearest, ties to even. */
static float bf16_reference(float v)
{
    uint32_t u = bits_of(v);
    if (isnan(v))
        return v;
    uint32_t r = u + 0x7fffu + ((u >> 16) & 1u);
    return float_of(r & 0xffff0000u);
}


Test(quant_pack, bf16_round_to_nearest_even)
{
    /* The definition on hand-checked cases first. */
    cr_assert_eq(bits_of(bf16_reference(float_of(0x3f808000u))), 0x3f800000u);
    cr_assert_eq(bits_of(bf16_reference(float_of(0x3f818000u))), 0x3f820000u);
    cr_assert_eq(bits_of(bf16_reference(float_of(0x3f807fffu))), 0x3f800000u);
    cr_assert_eq(bits_of(bf16_reference(float_of(0x7f7fffffu))), 0x7f800000u);

    lcg g = {105};
    int64_t n_out = 70, n_in = 45;
    float *w = alloc_matrix(&g, n_out, n_in, n_in, 3.0f);
    for (int i = 0; i < COUNT(special_bits); i++)
        w[i * 11] = float_of(special_bits[i]);
    for (int p = 0; p < COUNT(panels); p++) {
        float *u = round_trip(w, n_out, n_in,
                              DSC_LAYOUT(panels[p], DSC_WEIGHTS_BF16));
        for (int64_t i = 0; i < n_out * n_in; i++) {
            float want = bf16_reference(w[i]);
            if (isnan(want))
                cr_assert(isnan(u[i]), "bf16 of NaN 0x%08x is 0x%08x",
                          bits_of(w[i]), bits_of(u[i]));
            else
                cr_assert_eq(bits_of(u[i]), bits_of(want),
                             "bf16 of 0x%08x: 0x%08x, want 0x%08x",
                             bits_of(w[i]), bits_of(u[i]), bits_of(want));
        }
        free(u);
    }
    free(w);
}


/* Checks one column's block [k0, k0 + 32) of a Q8_0 round trip: each
 * value is round(w / s) * s with s = max|w| / 127 over the block, so
 * within s / 2 of w, and never more than 127 steps from zero. */
static void expect_q8_block(const float *w, const float *u, int64_t n_in,
                            int64_t n, int64_t k0)
{
    int64_t k1 = k0 + 32 < n_in ? k0 + 32 : n_in;
    float amax = 0.0f;
    for (int64_t k = k0; k < k1; k++)
        amax = fmaxf(amax, fabsf(w[n * n_in + k]));
    float s = amax / 127.0f;
    for (int64_t k = k0; k < k1; k++) {
        float wv = w[n * n_in + k], got = u[n * n_in + k];
        float want = s > 0.0f ? (float)nearbyint((double)wv / s) * s : 0.0f;
        cr_assert(got == want && !signbit(got) == !signbit(want + 0.0f),
                  "q8 [%lld][%lld]: %.9g -> %.9g, want %.9g (scale %.9g)",
                  (long long)n, (long long)k, (double)wv, (double)got,
                  (double)want, (double)s);
        cr_assert(fabsf(got - wv) <= 0.5f * s * (1.0f + 1e-6f),
                  "q8 [%lld][%lld] off by more than half a step",
                  (long long)n, (long long)k);
        cr_assert(fabsf(got) <= 127.0f * s * (1.0f + 1e-6f));
    }
}


Test(quant_pack, q8_blocks)
{
    lcg g = {106};
    int64_t n_out = 70, n_in = 100;  /* a short last block of 4 */
    float *w = alloc_matrix(&g, n_out, n_in, n_in, 2.0f);
    /* Row 3: an all-zero block, then a block of one huge value among
     * small ones (its scale must not overflow, the small ones round to 0),
     * then the short block with one negative extreme. */
    for (int64_t k = 0; k < 32; k++)
        w[3 * n_in + k] = 0.0f;
    w[3 * n_in + 40] = 3.0e38f;
    for (int64_t k = 96; k < n_in; k++)
        w[3 * n_in + k] = k == 97 ? -1.0e-30f : 1.0e-32f;
    /* Row 5 has ties of w / s: s = 1 by its 127, so 0.5, 1.5, 2.5. */
    for (int64_t k = 0; k < 32; k++)
        w[5 * n_in + k] = k == 0 ? 127.0f : (float)(k % 3) + 0.5f;
    for (int p = 0; p < COUNT(panels); p++) {
        float *u = round_trip(w, n_out, n_in,
                              DSC_LAYOUT(panels[p], DSC_WEIGHTS_Q8));
        for (int64_t n = 0; n < n_out; n++)
            for (int64_t k0 = 0; k0 < n_in; k0 += 32)
                expect_q8_block(w, u, n_in, n, k0);
        for (int64_t k = 0; k < 32; k++)
            cr_assert(u[3 * n_in + k] == 0.0f, "zero block");
        cr_assert(u[3 * n_in + 40] == 3.0e38f);  /* 127 * (3e38 / 127) */
        cr_assert(u[3 * n_in + 41] == 0.0f);
        cr_assert(u[3 * n_in + 97] == -1.0e-30f);
        cr_assert(u[5 * n_in + 1] == 2.0f && u[5 * n_in + 2] == 2.0f &&
                  u[5 * n_in + 3] == 0.0f, "ties to even: %g %g %g",
                  (double)u[5 * n_in + 1], (double)u[5 * n_in + 2],
                  (double)u[5 * n_in + 3]);
        free(u);
    }
    free(w);
}


/* A Q8_0 weight takes 36 bytes per 32 values, a bf16 one 2 per value,
 * plus the header and the last panel's padding. */
Test(quant_pack, sizes)
{
    int64_t n_out = 768, n_in = 768;
    int64_t f32 = rt_linear_packed_floats(n_out, n_in, DSC_LAYOUT(64, 0));
    int64_t bf = rt_linear_packed_floats(n_out, n_in,
                                         DSC_LAYOUT(64, DSC_WEIGHTS_BF16));
    int64_t q8 = rt_linear_packed_floats(n_out, n_in,
                                         DSC_LAYOUT(64, DSC_WEIGHTS_Q8));
    cr_assert_eq(f32, RT_LINEAR_HEADER_FLOATS + n_out * n_in);
    cr_assert_eq(bf, RT_LINEAR_HEADER_FLOATS + n_out * n_in / 2);
    cr_assert_eq(q8, RT_LINEAR_HEADER_FLOATS + n_out * n_in / 32 * 36 / 4);
}


/* A weight whose header does not match its call: NaN out, as for f32,
 * and rt_linear_unpack refuses it.  Case 0: another n_in; 1: another
 * n_out; 2: a format this runtime does not know. */
Test(quant_linear, header_mismatch_gives_nan)
{
    lcg g = {107};
    int64_t rows = 2, n_out = 33, n_in = 40;
    float *x = alloc_matrix(&g, rows, n_in, n_in, 1.0f);
    float *w = alloc_matrix(&g, n_out, n_in, n_in, 1.0f);
    float *u = alloc_floats(n_out * n_in);
    float *y = alloc_floats(rows * n_out);
    FOR_EACH_ISA(isa)
        for (int f = DSC_WEIGHTS_F32; f <= DSC_WEIGHTS_Q8; f++) {
            int layout = DSC_LAYOUT(64, f);
            float *pw = alloc_floats(rt_linear_packed_floats(n_out, n_in,
                                                             layout));
            rt_linear_pack(pw, w, n_out, n_in, layout);
            for (int bad = 0; bad < 3; bad++) {
                int64_t in = bad == 0 ? n_in - 1 : n_in;
                int64_t out = bad == 1 ? n_out - 1 : n_out;
                float saved = pw[1];
                if (bad == 2) {
                    uint32_t other = (uint32_t)DSC_LAYOUT(64, 3);
                    memcpy(&pw[1], &other, sizeof other);
                }
                for (int64_t i = 0; i < rows * n_out; i++)
                    y[i] = 0.0f;
                rt_linear(NULL, y, n_out, x, n_in, pw, NULL, rows, out, in,
                          RT_ACT_NONE, NULL);
                for (int64_t m = 0; m < rows; m++)
                    for (int64_t n = 0; n < out; n++)
                        cr_assert(isnan(y[m * n_out + n]),
                                  "%s %s case %d: y[%lld][%lld] = %g",
                                  rt_isa_name(isa), rt_format_name(f), bad,
                                  (long long)m, (long long)n,
                                  (double)y[m * n_out + n]);
                cr_assert_eq(rt_linear_unpack(u, pw, out, in), -1);
                pw[1] = saved;
            }
            cr_assert_eq(rt_linear_unpack(u, pw, n_out, n_in), 0);
            free(pw);
        }
    free(y);
    free(u);
    free(w);
    free(x);
}
