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
#include "rt_internal.h"

#include <stdlib.h>
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

/* A tile is RT_GEMM_MB rows of x by one panel: the unit of work a thread
 * takes, computed into an L1-resident buffer and finished by the epilogue
 * while still there.  libxsmm batch-reduces over k blocks of RT_GEMM_KB
 * (32-64 measured fastest here), so each step's operands (2 x 16 KB) sit
 * in L1 whatever n_in is. */
#if !defined(RT_GEMM_MB)
#define RT_GEMM_MB 64
#endif
#if !defined(RT_GEMM_KB)
#define RT_GEMM_KB 64
#endif

/* Multiply-adds per thread below which a GEMM stays on fewer threads:
 * waking a worker and joining it costs a few microseconds. */
#define RT_GEMM_GRAIN (1 << 17)


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


/* ---- libxsmm kernels, dispatched once per shape ---------------------- */

#ifdef DSC_HAVE_LIBXSMM
/* The kernels for one tile height mb: a batch-reduce over the full k blocks
 * (beta = 0) and one plain GEMM for the remaining k (beta = 1 after the
 * batch-reduce, 0 if there was none).  NULL members are simply not needed. */
typedef struct xsmm_kernels {
    libxsmm_smmfunction_reducebatch_strd full;
    libxsmm_smmfunction tail;
} xsmm_kernels;

typedef struct cache_entry {
    int64_t mb, n_in, ldx;
    int ok;             /* 0: libxsmm could not generate them; don't retry */
    xsmm_kernels k;
} cache_entry;

struct rt_gemm_cache {
    int n, cap;
    cache_entry *e;
};


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


/* The kernels for (mb, n_in, ldx): from ctx's cache, generated and added
 * on first use (by the calling thread, before any worker runs, so the
 * cache needs no lock).  Without a ctx, or when the cache cannot grow,
 * libxsmm's own registry is asked every call.  Returns 0 if libxsmm
 * cannot generate them. */
static int xsmm_kernels_for(rt_ctx *ctx, xsmm_kernels *out, int64_t mb,
                            int64_t n_in, int64_t ldx)
{
    struct rt_gemm_cache **slot = rt_ctx_gemm_cache(ctx);
    struct rt_gemm_cache *c = slot ? *slot : NULL;
    if (c)
        for (int i = 0; i < c->n; i++) {
            const cache_entry *e = &c->e[i];
            if (e->mb == mb && e->n_in == n_in && e->ldx == ldx) {
                *out = e->k;
                return e->ok;
            }
        }
    int ok = xsmm_dispatch(out, (libxsmm_blasint)mb, (libxsmm_blasint)n_in,
                           (libxsmm_blasint)ldx);
    if (slot && !c && (c = calloc(1, sizeof *c)))
        *slot = c;
    if (c && c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 8;
        cache_entry *e = realloc(c->e, (size_t)cap * sizeof *e);
        if (e) {
            c->e = e;
            c->cap = cap;
        }
    }
    if (c && c->n < c->cap)
        c->e[c->n++] = (cache_entry){mb, n_in, ldx, ok, *out};
    return ok;
}
#else
struct rt_gemm_cache {
    int unused;
};
#endif


void rt_gemm_cache_free(struct rt_gemm_cache *cache)
{
    if (!cache)
        return;
#ifdef DSC_HAVE_LIBXSMM
    free(cache->e);
#endif
    free(cache);
}


void rt_gemm_init(void)
{
#ifdef DSC_HAVE_LIBXSMM
    libxsmm_init();
#endif
}


/* ---- the portable micro-kernels -------------------------------------- */

/* c[r*ldc + j] = sum_k x[r*ldx + k] * w[k*RT_PANEL + j], r < 4, j < NR.
 * Written so gcc -O3 (no -ffast-math) vectorizes over j and keeps the four
 * accumulator rows in registers: one named array per row, one w load
 * shared by the four rows.  (A 2-D acc[r][j] got SLP-vectorized across k
 * with shuffles, at a sixth of the speed.)  k runs in order, so the result
 * is deterministic. */
RT_INLINE void micro_full(float *c, int64_t ldc, const float *x, int64_t ldx,
                          const float *w, int64_t n_in)
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
    memcpy(c, c0, sizeof c0);
    memcpy(c + ldc, c1, sizeof c1);
    memcpy(c + 2 * ldc, c2, sizeof c2);
    memcpy(c + 3 * ldc, c3, sizeof c3);
}


/* The same for a single row: the tail when rows % RT_GEMM_MR != 0. */
RT_INLINE void micro_row(float *c, const float *x, const float *w,
                         int64_t n_in)
{
    float acc[RT_GEMM_NR] = {0};
    for (int64_t k = 0; k < n_in; k++) {
        const float *wk = w + k * RT_PANEL;
        float xv = x[k];
        for (int j = 0; j < RT_GEMM_NR; j++)
            acc[j] += xv * wk[j];
    }
    memcpy(c, acc, sizeof acc);
}


/* One tile without libxsmm: mb rows of x times the first cols columns of
 * a panel into c (row stride RT_PANEL).  Strip by strip, the panel's
 * n_in x NR strip stays in L1 while the rows stream past it. */
RT_INLINE void portable_tile(float *c, const float *x, int64_t ldx,
                             const float *panel, int64_t mb, int64_t cols,
                             int64_t n_in)
{
    for (int64_t j0 = 0; j0 < cols; j0 += RT_GEMM_NR) {
        int64_t m = 0;
        for (; m + RT_GEMM_MR <= mb; m += RT_GEMM_MR)
            micro_full(c + m * RT_PANEL + j0, RT_PANEL, x + m * ldx, ldx,
                       panel + j0, n_in);
        for (; m < mb; m++)
            micro_row(c + m * RT_PANEL + j0, x + m * ldx, panel + j0, n_in);
    }
}


/* The epilogue of one row of a tile, in one pass while c is in L1:
 * y = act(c + bias) + residual.  Always inlined with constant has_bias,
 * act and mode, so each combination is its own branch-free loop that
 * vectorizes (all but the erf/tanh GELUs).  mode 0: no residual; 1: a
 * separate residual; 2: the residual is y itself, read before it is
 * written, spelled as such so the compiler sees the exact alias instead of
 * falling back to scalar code on an overlap check. */
RT_INLINE void epilogue_row(float *y, const float *c, const float *bias,
                            const float *res, int64_t cols, int has_bias,
                            rt_act act, int mode)
{
    for (int64_t j = 0; j < cols; j++) {
        float v = c[j];
        if (has_bias)
            v += bias[j];
        switch (act) {
        case RT_ACT_NONE:
            break;
        case RT_ACT_RELU:
            v = rt_relu(v);
            break;
        case RT_ACT_GELU:
            v = rt_gelu(v);
            break;
        case RT_ACT_GELU_TANH:
            v = rt_gelu_tanh(v);
            break;
        }
        if (mode == 1)
            v += res[j];
        else if (mode == 2)
            v += y[j];
        y[j] = v;
    }
}


#define RT_EPI_MODES(bias_, act_)                                           \
    switch (mode) {                                                         \
    case 0: epilogue_row(yr, cr, bias, NULL, cols, bias_, act_, 0); break;  \
    case 1: epilogue_row(yr, cr, bias, rr, cols, bias_, act_, 1); break;    \
    default: epilogue_row(yr, cr, bias, NULL, cols, bias_, act_, 2); break; \
    }

#define RT_EPI_ACTS(bias_)                                                  \
    switch (act) {                                                          \
    case RT_ACT_NONE: RT_EPI_MODES(bias_, RT_ACT_NONE) break;               \
    case RT_ACT_RELU: RT_EPI_MODES(bias_, RT_ACT_RELU) break;               \
    case RT_ACT_GELU: RT_EPI_MODES(bias_, RT_ACT_GELU) break;               \
    case RT_ACT_GELU_TANH: RT_EPI_MODES(bias_, RT_ACT_GELU_TANH) break;     \
    }

/* The epilogue of one tile (rows of c are RT_PANEL apart). */
RT_INLINE void epilogue_tile(float *y, int64_t ldy, const float *c,
                             const float *bias, const float *res,
                             int64_t mb, int64_t cols, rt_act act)
{
    const int mode = !res ? 0 : res == y ? 2 : 1;
    for (int64_t r = 0; r < mb; r++) {
        const float *cr = c + r * RT_PANEL;
        float *yr = y + r * ldy;
        const float *rr = mode == 1 ? res + r * ldy : NULL;
        if (bias) {
            RT_EPI_ACTS(1)
        } else {
            RT_EPI_ACTS(0)
        }
    }
}



/* ---- tiles and threads ----------------------------------------------- */

/* One rt_linear call, as its threads see it. */
typedef struct linear_job {
    float *y;
    const float *x, *w, *bias, *res;
    int64_t ldy, ldx, rows, n_out, n_in;
    int64_t n_mb;       /* row blocks; tile t is panel t / n_mb, block t % n_mb */
    rt_act act;
#ifdef DSC_HAVE_LIBXSMM
    int xsmm;           /* use kfull/ktail (else the portable tile) */
    xsmm_kernels kfull, ktail;
#endif
} linear_job;


/* Tiles [begin, end), panel-major: consecutive tiles share a panel, which
 * stays in L2 while the row blocks of x stream past it, and a thread's
 * contiguous range touches only its own panels' weights. */
RT_INLINE void linear_tiles(const linear_job *jb, int64_t begin, int64_t end)
{
    /* Aligned so the JIT kernel's loads and stores of c never split lines. */
    _Alignas(64) float c[RT_GEMM_MB * RT_PANEL];
    for (int64_t t = begin; t < end; t++) {
        int64_t p = t / jb->n_mb, m0 = t % jb->n_mb * RT_GEMM_MB;
        int64_t mb = jb->rows - m0 < RT_GEMM_MB ? jb->rows - m0 : RT_GEMM_MB;
        int64_t n0 = p * RT_PANEL;
        int64_t cols = jb->n_out - n0 < RT_PANEL ? jb->n_out - n0 : RT_PANEL;
        const float *panel = jb->w + p * jb->n_in * RT_PANEL;
        const float *xb = jb->x + m0 * jb->ldx;
#ifdef DSC_HAVE_LIBXSMM
        if (jb->xsmm) {
            const xsmm_kernels *k = mb == RT_GEMM_MB ? &jb->kfull : &jb->ktail;
            const unsigned long long nkb =
                (unsigned long long)(jb->n_in / RT_GEMM_KB);
            const int64_t k_tail = jb->n_in / RT_GEMM_KB * RT_GEMM_KB;
            if (k->full)
                k->full(panel, xb, c, &nkb);
            if (k->tail)
                k->tail(panel + k_tail * RT_PANEL, xb + k_tail, c);
        } else
#endif
        {
            portable_tile(c, xb, jb->ldx, panel, mb, cols, jb->n_in);
        }
        int64_t off = m0 * jb->ldy + n0;
        epilogue_tile(jb->y + off, jb->ldy, c, jb->bias ? jb->bias + n0 : NULL,
                      jb->res ? jb->res + off : NULL, mb, cols, jb->act);
    }
}


static void linear_range(void *arg, int64_t begin, int64_t end)
{
    linear_tiles(arg, begin, end);
}


#if RT_X86_DISPATCH
RT_TARGET_AVX2 static void linear_range_avx2(void *arg, int64_t begin,
                                             int64_t end)
{
    linear_tiles(arg, begin, end);
}
#endif


void rt_linear(rt_ctx *ctx, float *y, int64_t ldy, const float *x, int64_t ldx,
               const float *packed_w, const float *bias,
               int64_t rows, int64_t n_out, int64_t n_in,
               rt_act act, const float *residual)
{
    if (rows <= 0 || n_out <= 0)
        return;
    linear_job jb = {
        .y = y, .x = x, .w = packed_w, .bias = bias, .res = residual,
        .ldy = ldy, .ldx = ldx, .rows = rows, .n_out = n_out, .n_in = n_in,
        .n_mb = (rows + RT_GEMM_MB - 1) / RT_GEMM_MB, .act = act,
    };
#ifdef DSC_HAVE_LIBXSMM
    /* Any kernel libxsmm cannot generate sends the whole call down the
     * portable path. */
    int64_t mb_tail = rows % RT_GEMM_MB;
    jb.xsmm = n_in > 0 && ldx <= INT_MAX && n_in <= INT_MAX / RT_PANEL &&
              (rows < RT_GEMM_MB ||
               xsmm_kernels_for(ctx, &jb.kfull, RT_GEMM_MB, n_in, ldx)) &&
              (!mb_tail || xsmm_kernels_for(ctx, &jb.ktail, mb_tail, n_in, ldx));
#endif
    rt_task_fn fn = linear_range;
#if RT_X86_DISPATCH
    if (rt_cpu_has_avx2())
        fn = linear_range_avx2;
#endif
    int threads = rt_threads_for(ctx, rows * n_out * (n_in > 0 ? n_in : 1),
                                 RT_GEMM_GRAIN);
    rt_parallel(ctx, threads, panels(n_out) * jb.n_mb, fn, &jb);
}
