/* gemm.c — rt_linear: y = act(x·Wᵀ + b) + residual.  This is where the time
 * goes; everything else in the runtime is bandwidth-bound and small.
 *
 * Packed weight layout (one layout for both paths, so a blob packed by a dsc
 * built with libxsmm runs on a runtime built without it, and vice versa):
 *
 *   W is stored transposed, cut into panels of RT_PANEL output columns.
 *   Panel p holds Wt[k][p*RT_PANEL + j] = W[p*RT_PANEL + j][k] at
 *       packed[(p * n_in + k) * RT_PANEL + j]    for k < n_in, j < RT_PANEL,
 *   with zeros in the columns past n_out of the last panel.
 *   Size: ceil(n_out / RT_PANEL) * RT_PANEL * n_in floats.
 *
 * A panel is a column-major RT_PANEL x n_in matrix with lda = RT_PANEL, which
 * is exactly libxsmm's A operand for C(N x M) = A(N x K) B(K x M) with B = x
 * as stored; and for the portable path every k step reads RT_PANEL
 * contiguous floats, so the inner loop vectorizes.  The layout depends on
 * RT_PANEL only, which therefore must never be made configurable per build.
 */
#include "dsc_runtime.h"

#include <string.h>

#ifdef DSC_HAVE_LIBXSMM
#include <limits.h>
#include <libxsmm.h>
#endif

/* Part of the packed format: see the top of the file. */
#define RT_PANEL 64

/* Portable micro-tile: RT_GEMM_MR (= 4, fixed by micro_full's code) rows
 * by RT_GEMM_NR columns of y, kept in registers across the whole k loop:
 * 16 SSE or 8 AVX registers of accumulators for 4 x 16. */
#define RT_GEMM_MR 4
#if !defined(RT_GEMM_NR)
#define RT_GEMM_NR 16
#endif
_Static_assert(RT_PANEL % RT_GEMM_NR == 0, "column strips must tile a panel");

/* libxsmm tiling: rows of x per kernel call and the k block that the
 * batch-reduce kernel strides over (32–64 measured fastest here). */
#if !defined(RT_GEMM_MB)
#define RT_GEMM_MB 64
#endif
#if !defined(RT_GEMM_KB)
#define RT_GEMM_KB 64
#endif


static int64_t panels(int64_t n_out)
{
    return (n_out + RT_PANEL - 1) / RT_PANEL;
}


int64_t rt_linear_packed_floats(int64_t n_out, int64_t n_in)
{
    return panels(n_out) * RT_PANEL * n_in;
}


void rt_linear_pack(float *dst, const float *w, int64_t n_out, int64_t n_in)
{
    for (int64_t p = 0; p < panels(n_out); p++) {
        float *panel = dst + p * n_in * RT_PANEL;
        for (int64_t k = 0; k < n_in; k++) {
            for (int64_t j = 0; j < RT_PANEL; j++) {
                int64_t n = p * RT_PANEL + j;
                panel[k * RT_PANEL + j] = n < n_out ? w[n * n_in + k] : 0.0f;
            }
        }
    }
}


/* The epilogue for one row segment of cols outputs, while it is hot:
 * acc holds x·Wᵀ; add bias, apply act, add residual, store to y.
 * Residual is read before y is written, element by element, so it may be y. */
static void epilogue_row(float *y, float *acc, const float *bias,
                         const float *residual, int64_t cols, rt_act act)
{
    if (bias)
        for (int64_t j = 0; j < cols; j++)
            acc[j] += bias[j];
    if (act != RT_ACT_NONE)
        rt_activation(NULL, acc, acc, cols, act);
    if (residual)
        for (int64_t j = 0; j < cols; j++)
            y[j] = acc[j] + residual[j];
    else
        memcpy(y, acc, (size_t)cols * sizeof *y);
}


/* acc[r][j] = sum_k x[r*ldx + k] * w[k*RT_PANEL + j], r < 4, j < NR.
 * Written so gcc -O3 (no -ffast-math) vectorizes over j and keeps the four
 * accumulator rows in registers: one named array per row, one w load
 * shared by the four rows.  (A 2-D acc[r][j] got SLP-vectorized across k
 * with shuffles, at a sixth of the speed.)  k runs in order, so the result
 * is deterministic. */
static void micro_full(float acc[RT_GEMM_MR][RT_GEMM_NR], const float *x,
                       int64_t ldx, const float *w, int64_t n_in)
{
    float c0[RT_GEMM_NR] = {0}, c1[RT_GEMM_NR] = {0};
    float c2[RT_GEMM_NR] = {0}, c3[RT_GEMM_NR] = {0};
    const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx;
    for (int64_t k = 0; k < n_in; k++) {
        const float *wk = w + k * RT_PANEL;
        float a0 = x0[k], a1 = x1[k], a2 = x2[k], a3 = x3[k];
        for (int j = 0; j < RT_GEMM_NR; j++) {
            float wj = wk[j];
            c0[j] += a0 * wj;
            c1[j] += a1 * wj;
            c2[j] += a2 * wj;
            c3[j] += a3 * wj;
        }
    }
    memcpy(acc[0], c0, sizeof c0);
    memcpy(acc[1], c1, sizeof c1);
    memcpy(acc[2], c2, sizeof c2);
    memcpy(acc[3], c3, sizeof c3);
}


/* The same for a single row: the tail when rows % RT_GEMM_MR != 0. */
static void micro_row(float acc[RT_GEMM_NR], const float *x, const float *w,
                      int64_t n_in)
{
    float c[RT_GEMM_NR] = {0};
    for (int64_t k = 0; k < n_in; k++) {
        const float *wk = w + k * RT_PANEL;
        float xv = x[k];
        for (int j = 0; j < RT_GEMM_NR; j++)
            c[j] += xv * wk[j];
    }
    memcpy(acc, c, sizeof c);
}


/* Portable C11 path.  Loop order: panel, then NR-wide column strip, then
 * rows; the strip of the panel (n_in x NR floats, one cache line per k)
 * stays in L1 while all rows of x stream past it. */
static void linear_portable(float *y, int64_t ldy, const float *x,
                            int64_t ldx, const float *packed_w,
                            const float *bias, int64_t rows, int64_t n_out,
                            int64_t n_in, rt_act act, const float *residual)
{
    float acc[RT_GEMM_MR][RT_GEMM_NR];
    for (int64_t p = 0; p < panels(n_out); p++) {
        const float *panel = packed_w + p * n_in * RT_PANEL;
        for (int64_t j0 = 0; j0 < RT_PANEL; j0 += RT_GEMM_NR) {
            int64_t n0 = p * RT_PANEL + j0;
            if (n0 >= n_out)
                break;  /* the rest of the panel is zero padding */
            int64_t cols = n_out - n0 < RT_GEMM_NR ? n_out - n0 : RT_GEMM_NR;
            const float *b = bias ? bias + n0 : NULL;
            int64_t m = 0;
            for (; m + RT_GEMM_MR <= rows; m += RT_GEMM_MR) {
                micro_full(acc, x + m * ldx, ldx, panel + j0, n_in);
                for (int r = 0; r < RT_GEMM_MR; r++) {
                    int64_t off = (m + r) * ldy + n0;
                    epilogue_row(y + off, acc[r], b,
                                 residual ? residual + off : NULL, cols, act);
                }
            }
            for (; m < rows; m++) {
                micro_row(acc[0], x + m * ldx, panel + j0, n_in);
                int64_t off = m * ldy + n0;
                epilogue_row(y + off, acc[0], b,
                             residual ? residual + off : NULL, cols, act);
            }
        }
    }
}


#ifdef DSC_HAVE_LIBXSMM
/* The kernels for one tile height mb: a batch-reduce over the full k blocks
 * (beta = 0) and one plain GEMM for the remaining k (beta = 1 after the
 * batch-reduce, 0 if there was none).  NULL members are simply not needed. */
typedef struct xsmm_kernels {
    libxsmm_smmfunction_reducebatch_strd full;
    libxsmm_smmfunction tail;
} xsmm_kernels;


/* Returns 0 when a kernel that is needed could not be generated. */
static int xsmm_dispatch(xsmm_kernels *kern, libxsmm_blasint mb,
                         libxsmm_blasint n_in, libxsmm_blasint ldx)
{
    const libxsmm_blasint m = RT_PANEL, kb = RT_GEMM_KB, kr = n_in % kb;
    const libxsmm_blasint lda = RT_PANEL, ldc = RT_PANEL;
    const float alpha = 1.0f, beta0 = 0.0f, beta1 = 1.0f;
    const int flags = LIBXSMM_GEMM_FLAG_NONE;
    const int prefetch = LIBXSMM_GEMM_PREFETCH_NONE;
    kern->full = NULL;
    kern->tail = NULL;
    if (n_in >= kb) {
        /* Strides in bytes: the next k block of the panel, and of x. */
        kern->full = libxsmm_smmdispatch_reducebatch_strd(
            m, mb, kb, (libxsmm_blasint)(kb * RT_PANEL * sizeof(float)),
            (libxsmm_blasint)(kb * sizeof(float)), &lda, &ldx, &ldc, &alpha,
            &beta0, &flags, &prefetch);
        if (!kern->full)
            return 0;
    }
    if (kr) {
        kern->tail = libxsmm_smmdispatch(m, mb, kr, &lda, &ldx, &ldc, &alpha,
                                         kern->full ? &beta1 : &beta0, &flags,
                                         &prefetch);
        if (!kern->tail)
            return 0;
    }
    return 1;
}


/* libxsmm path; returns 0 (having written nothing) if it cannot run, so the
 * caller falls back to the portable path.  Each (row block, panel) tile is
 * computed into a stack buffer c, then the epilogue moves it to y: that
 * keeps padded panel columns out of y and lets residual alias y. */
static int linear_xsmm(float *y, int64_t ldy, const float *x, int64_t ldx,
                       const float *packed_w, const float *bias,
                       int64_t rows, int64_t n_out, int64_t n_in, rt_act act,
                       const float *residual)
{
    if (n_in <= 0 || ldx > INT_MAX || n_in > INT_MAX / RT_PANEL)
        return 0;
    int64_t mb_tail = rows % RT_GEMM_MB;
    xsmm_kernels kfull = {NULL, NULL}, ktail = {NULL, NULL};
    if (rows >= RT_GEMM_MB &&
        !xsmm_dispatch(&kfull, RT_GEMM_MB, (libxsmm_blasint)n_in,
                       (libxsmm_blasint)ldx))
        return 0;
    if (mb_tail &&
        !xsmm_dispatch(&ktail, (libxsmm_blasint)mb_tail,
                       (libxsmm_blasint)n_in, (libxsmm_blasint)ldx))
        return 0;

    const unsigned long long nkb = (unsigned long long)(n_in / RT_GEMM_KB);
    const int64_t k_tail = n_in / RT_GEMM_KB * RT_GEMM_KB;
    /* Aligned so the JIT kernel's loads and stores of c never split lines. */
    _Alignas(64) float c[RT_GEMM_MB * RT_PANEL];

    for (int64_t m0 = 0; m0 < rows; m0 += RT_GEMM_MB) {
        int64_t mb = rows - m0 < RT_GEMM_MB ? rows - m0 : RT_GEMM_MB;
        const xsmm_kernels *kern = mb == RT_GEMM_MB ? &kfull : &ktail;
        const float *xb = x + m0 * ldx;
        for (int64_t p = 0; p < panels(n_out); p++) {
            const float *panel = packed_w + p * n_in * RT_PANEL;
            if (kern->full)
                kern->full(panel, xb, c, &nkb);
            if (kern->tail)
                kern->tail(panel + k_tail * RT_PANEL, xb + k_tail, c);
            int64_t n0 = p * RT_PANEL;
            int64_t cols = n_out - n0 < RT_PANEL ? n_out - n0 : RT_PANEL;
            for (int64_t r = 0; r < mb; r++) {
                int64_t off = (m0 + r) * ldy + n0;
                epilogue_row(y + off, c + r * RT_PANEL, bias ? bias + n0 : NULL,
                             residual ? residual + off : NULL, cols, act);
            }
        }
    }
    return 1;
}
#endif


void rt_linear(rt_ctx *ctx, float *y, int64_t ldy, const float *x, int64_t ldx,
               const float *packed_w, const float *bias,
               int64_t rows, int64_t n_out, int64_t n_in,
               rt_act act, const float *residual)
{
    if (rows <= 0 || n_out <= 0)
        return;
#ifdef DSC_HAVE_LIBXSMM
    if (linear_xsmm(y, ldy, x, ldx, packed_w, bias, rows, n_out, n_in, act,
                    residual))
        return;
#endif
    linear_portable(y, ldy, x, ldx, packed_w, bias, rows, n_out, n_in, act,
                    residual);
}
