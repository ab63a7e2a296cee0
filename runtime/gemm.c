/* gemm.c — rt_linear: y = act(x·Wᵀ + b) + residual.  This is where the time
 * goes; everything else in the runtime is bandwidth-bound and small.
 *
 * The packed weight (rt_pack.h): W transposed in panels of P output
 * columns, float32, bfloat16 or Q8_0.  A float32 panel is a column-major
 * P x n_in matrix with lda = P, which is exactly libxsmm's A operand for
 * C(N x M) = A(N x K) B(K x M) with B = x as stored; for the portable and
 * skinny paths every k step reads P contiguous floats.  Every kernel runs
 * every layout; the layout only decides which runs best: 64 columns are 4
 * zmm registers (AVX-512), 32 are 4 ymm (AVX2), which leaves libxsmm's
 * register blocking room for more rows.  Because the header travels with
 * each weight, rt_linear needs no other word on the layout, and refuses
 * (NaN output) a weight whose header does not match its call.
 *
 * The reduced formats are converted as they are read.  Few rows (a
 * decode step; up to RT_LOWP_ROWS_*) take gemm_lowp.c's fused kernels,
 * which convert in registers, so memory sees only the small values.
 * More rows under libxsmm: each panel is converted once into a float
 * buffer for all the row blocks a thread computes with it, then
 * multiplied as a float32 panel (measured on the seed's shapes at 320
 * rows: the same time as float32, where converting per 128-row k block
 * and tile cost 5-19%).  Otherwise (the generic ISA, no libxsmm) a tile
 * converts RT_GEMM_KC rows of k at a time into an L1-resident block and
 * sums the blocks' products.
 *
 * Paths: rows <= RT_SKINNY_ROWS (a token, a decode step) take the skinny
 * kernel (AVX-512 or AVX2 intrinsics, else portable C), which streams each
 * panel once at memory bandwidth, threads splitting the panels (output
 * columns); larger calls take libxsmm in tiles of MB rows x one panel, or
 * the same register-blocked kernels where libxsmm is missing.
 */
#include "gemm_lowp.h"

#include <stdlib.h>
#include <string.h>

#if RT_X86_DISPATCH
#include <immintrin.h>
#endif

#ifdef DSC_HAVE_LIBXSMM
#include <limits.h>
#include <libxsmm.h>
#endif

/* Portable micro-tile: RT_GEMM_MR (= 4, fixed by micro_full's code) rows
 * by RT_GEMM_NR columns of y, kept in registers across the whole k loop:
 * 16 SSE or 8 AVX registers of accumulators for 4 x 16. */
#define RT_GEMM_MR 4
#define RT_GEMM_NR 16

/* A tile is at most RT_GEMM_MB rows of x by one panel: the unit of work a
 * thread takes, computed into an L1-resident buffer and finished by the
 * epilogue while still there.  libxsmm batch-reduces over k blocks of
 * RT_GEMM_KB, so each step's operands sit in L1 whatever n_in is. */
#if !defined(RT_GEMM_MB)
#define RT_GEMM_MB 64
#endif
#if !defined(RT_GEMM_KB)
#define RT_GEMM_KB 64
#endif
/* k rows of a reduced-format panel converted at a time where libxsmm is
 * not used: 32 KB of floats at 64 columns; a multiple of RT_Q8_BLOCK. */
#if !defined(RT_GEMM_KC)
#define RT_GEMM_KC 128
#endif
/* The k block for a panel width: 32-column panels take twice the k per
 * batch-reduce step (the panel block is still 16 KB).  Measured under
 * DSC_ISA=avx2 LIBXSMM_TARGET=hsw with tools/gemm_bench.c on the seed's
 * shapes: 3-14% faster than 64 on four of five, 9% slower on one. */
#ifdef DSC_HAVE_LIBXSMM
static int64_t gemm_kb(int64_t P)
{
    return P == 32 ? 2 * RT_GEMM_KB : RT_GEMM_KB;
}
#endif

/* Calls with at most this many rows take the skinny path: the runtime's
 * own kernels, tasks split by panels, a smaller grain.  Measured with
 * tools/gemm_bench.c on a Xeon (AVX-512, and AVX2 forced), 768x256: at one
 * row they tie libxsmm (within 3%) from L2 and from memory; at 2-3 rows
 * libxsmm is 12-27% faster from L2, from 4 rows on they tie.  Without
 * libxsmm the same kernels serve every call (2-3x the portable C). */
#if !defined(RT_SKINNY_ROWS)
#define RT_SKINNY_ROWS 1
#endif

/* Calls with a reduced-format weight and at most this many rows take the
 * fused kernels of gemm_lowp.c, which convert in registers; larger ones
 * convert a block of the panel at a time and multiply it as float32
 * (libxsmm), the conversion shared by the block's rows.  Measured with
 * tools/gemm_bench.c, 3072x768, bf16 and q8, weights from L2 and from
 * memory, on a Xeon (AVX-512, and AVX2 forced): fused is 1.5-2.5x faster
 * at 1-4 rows, still 10-25% at 8 (AVX-512: 16), ties or loses past. */
#if !defined(RT_LOWP_ROWS_AVX512)
#define RT_LOWP_ROWS_AVX512 16
#endif
#if !defined(RT_LOWP_ROWS_AVX2)
#define RT_LOWP_ROWS_AVX2 8
#endif

/* Multiply-adds per thread below which a GEMM stays on fewer threads:
 * waking a worker and joining it costs a few microseconds. */
#define RT_GEMM_GRAIN (1 << 17)
/* The skinny path is memory-bound: a thread is worth it for fewer
 * multiply-adds (one 64 KB panel is ~16 K). */
#define RT_SKINNY_GRAIN (1 << 16)

_Static_assert(RT_PANEL_MAX % RT_GEMM_NR == 0, "column strips tile a panel");


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
    int64_t P, mb, n_in, ldx;
    int ok;             /* 0: libxsmm could not generate them; don't retry */
    xsmm_kernels k;
} cache_entry;

struct rt_gemm_cache {
    int n, cap;
    cache_entry *e;
};


/* Returns 0 when a kernel that is needed could not be generated. */
static int xsmm_dispatch(xsmm_kernels *kern, libxsmm_blasint P,
                         libxsmm_blasint mb, libxsmm_blasint n_in,
                         libxsmm_blasint ldx)
{
    const libxsmm_blasint m = P, kb = (libxsmm_blasint)gemm_kb(P);
    const libxsmm_blasint kr = n_in % kb;
    const libxsmm_blasint lda = P, ldc = P;
    const float alpha = 1.0f, beta0 = 0.0f, beta1 = 1.0f;
    const int flags = LIBXSMM_GEMM_FLAG_NONE;
    const int prefetch = LIBXSMM_GEMM_PREFETCH_NONE;
    kern->full = NULL;
    kern->tail = NULL;
    if (n_in >= kb) {
        /* Strides in bytes: the next k block of the panel, and of x. */
        kern->full = libxsmm_smmdispatch_reducebatch_strd(
            m, mb, kb, (libxsmm_blasint)(kb * P * sizeof(float)),
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


/* The kernels for (P, mb, n_in, ldx): from ctx's cache, generated and
 * added on first use (by the calling thread, before any worker runs, so
 * the cache needs no lock).  Without a ctx, or when the cache cannot
 * grow, libxsmm's own registry is asked every call.  Returns 0 if libxsmm
 * cannot generate them. */
static int xsmm_kernels_for(rt_ctx *ctx, xsmm_kernels *out, int64_t P,
                            int64_t mb, int64_t n_in, int64_t ldx)
{
    struct rt_gemm_cache **slot = rt_ctx_gemm_cache(ctx);
    struct rt_gemm_cache *c = slot ? *slot : NULL;
    if (c)
        for (int i = 0; i < c->n; i++) {
            const cache_entry *e = &c->e[i];
            if (e->P == P && e->mb == mb && e->n_in == n_in && e->ldx == ldx) {
                *out = e->k;
                return e->ok;
            }
        }
    int ok = xsmm_dispatch(out, (libxsmm_blasint)P, (libxsmm_blasint)mb,
                           (libxsmm_blasint)n_in, (libxsmm_blasint)ldx);
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
        c->e[c->n++] = (cache_entry){P, mb, n_in, ldx, ok, *out};
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


void rt_gemm_init(int isa)
{
#ifdef DSC_HAVE_LIBXSMM
    /* DSC_ISA=avx2 on a wider CPU: libxsmm's JIT follows, unless the user
     * chose its target with LIBXSMM_TARGET.  Process-wide, so it is set
     * once, before libxsmm's first kernel. */
    if (isa == DSC_ISA_AVX2 && !getenv("LIBXSMM_TARGET") &&
        libxsmm_get_target_archid() > LIBXSMM_X86_AVX2)
        libxsmm_set_target_archid(LIBXSMM_X86_AVX2);
    libxsmm_init();
#else
    (void)isa;
#endif
}


/* ---- the portable micro-kernels -------------------------------------- */

/* c[r*ldc + j] = sum_k x[r*ldx + k] * w[k*P + j], r < 4, j < NR.
 * Written so gcc -O3 (no -ffast-math) vectorizes over j and keeps the four
 * accumulator rows in registers: one named array per row, one w load
 * shared by the four rows.  (A 2-D acc[r][j] got SLP-vectorized across k
 * with shuffles, at a sixth of the speed.)  k runs in order, so the result
 * is deterministic. */
RT_INLINE void micro_full(float *c, int64_t ldc, const float *x, int64_t ldx,
                          const float *w, int64_t P, int64_t n_in)
{
    float c0[RT_GEMM_NR] = {0}, c1[RT_GEMM_NR] = {0};
    float c2[RT_GEMM_NR] = {0}, c3[RT_GEMM_NR] = {0};
    const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx;
    for (int64_t k = 0; k < n_in; k++) {
        const float *wk = w + k * P;
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
RT_INLINE void micro_row(float *c, const float *x, const float *w, int64_t P,
                         int64_t n_in)
{
    float acc[RT_GEMM_NR] = {0};
    for (int64_t k = 0; k < n_in; k++) {
        const float *wk = w + k * P;
        float xv = x[k];
        for (int j = 0; j < RT_GEMM_NR; j++)
            acc[j] += xv * wk[j];
    }
    memcpy(c, acc, sizeof acc);
}


/* One tile without libxsmm: mb rows of x times the first cols columns of
 * a panel into c (row stride P).  Strip by strip, the panel's n_in x NR
 * strip stays in L1 while the rows stream past it. */
RT_INLINE void portable_tile(float *c, const float *x, int64_t ldx,
                             const float *panel, int64_t P, int64_t mb,
                             int64_t cols, int64_t n_in)
{
    for (int64_t j0 = 0; j0 < cols; j0 += RT_GEMM_NR) {
        int64_t m = 0;
        for (; m + RT_GEMM_MR <= mb; m += RT_GEMM_MR)
            micro_full(c + m * P + j0, P, x + m * ldx, ldx, panel + j0, P,
                       n_in);
        for (; m < mb; m++)
            micro_row(c + m * P + j0, x + m * ldx, panel + j0, P, n_in);
    }
}


/* ---- the skinny kernels: few rows, weights streamed once --------------
 *
 * c[r*P + j] = sum_k x[r*ldx + k] * w[k*P + j] for R rows and V vectors of
 * columns, all R*V accumulators in registers, split into U interleaved
 * chains over k (k = u mod U) so even one row keeps enough multiply-adds in
 * flight to cover their latency; the chains are added in a fixed order at
 * the end, so results are deterministic for a given ISA.  Each k step
 * reads one P-float row of the panel: the whole panel streams through
 * once per group of R rows. */

#if RT_X86_DISPATCH
/* Rows of the panel prefetched ahead into L1 (0: none); see README for
 * the measurement.  And bytes prefetched ahead into L2, past the panel's
 * end into the next one's start: 8-10% faster from memory at one row than
 * the L1 prefetch alone (gemm_bench 1 x 3072 x 768, Xeon KVM, P = 32 under
 * AVX2 and 64 under AVX-512 alike, where 2 and 8 KB were slower). */
#if !defined(RT_SKINNY_PF)
#define RT_SKINNY_PF 8
#endif
#if !defined(RT_SKINNY_PF_L2)
#define RT_SKINNY_PF_L2 4096
#endif

#define RT_SK_AVX512 __attribute__((always_inline, target(RT_ISA_AVX512_FLAGS)))
#define RT_SK_AVX2 __attribute__((always_inline, target("avx2,fma")))

static inline RT_SK_AVX512 void sk512(float *c, int64_t ldc, const float *x,
                                      int64_t ldx, const float *w, int64_t P,
                                      int64_t n_in, const int R, const int V,
                                      const int U)
{
    __m512 acc[4][4][4];
    for (int u = 0; u < U; u++)
        for (int r = 0; r < R; r++)
            for (int v = 0; v < V; v++)
                acc[u][r][v] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + U <= n_in; k += U) {
        if (RT_SKINNY_PF && k + RT_SKINNY_PF < n_in)
            for (int u = 0; u < U; u++)
                for (int v = 0; v < V; v++)
                    _mm_prefetch((const char *)(w + (k + u + RT_SKINNY_PF) * P
                                                + 16 * v), _MM_HINT_T0);
        if (RT_SKINNY_PF_L2)
            for (int u = 0; u < U; u++)
                for (int v = 0; v < V; v++)
                    _mm_prefetch((const char *)(w + (k + u) * P + 16 * v) +
                                     RT_SKINNY_PF_L2, _MM_HINT_T1);
        for (int u = 0; u < U; u++) {
            const float *wk = w + (k + u) * P;
            for (int r = 0; r < R; r++) {
                __m512 xb = _mm512_set1_ps(x[r * ldx + k + u]);
                for (int v = 0; v < V; v++)
                    acc[u][r][v] = _mm512_fmadd_ps(
                        xb, _mm512_loadu_ps(wk + 16 * v), acc[u][r][v]);
            }
        }
    }
    for (; k < n_in; k++) {
        const float *wk = w + k * P;
        for (int r = 0; r < R; r++) {
            __m512 xb = _mm512_set1_ps(x[r * ldx + k]);
            for (int v = 0; v < V; v++)
                acc[0][r][v] = _mm512_fmadd_ps(xb, _mm512_loadu_ps(wk + 16 * v),
                                               acc[0][r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) {
            __m512 s = acc[0][r][v];
            for (int u = 1; u < U; u++)
                s = _mm512_add_ps(s, acc[u][r][v]);
            _mm512_storeu_ps(c + r * ldc + 16 * v, s);
        }
}


/* The same with ymm registers, over a 32-column block of the panel
 * (V = 4); a 64-column panel is two blocks. */
static inline RT_SK_AVX2 void sk256(float *c, int64_t ldc, const float *x,
                                    int64_t ldx, const float *w, int64_t P,
                                    int64_t n_in, const int R, const int U)
{
    enum { V = 4 };
    __m256 acc[3][3][V];
    for (int u = 0; u < U; u++)
        for (int r = 0; r < R; r++)
            for (int v = 0; v < V; v++)
                acc[u][r][v] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + U <= n_in; k += U) {
        if (RT_SKINNY_PF && k + RT_SKINNY_PF < n_in)
            for (int u = 0; u < U; u++)
                for (int v = 0; v < V; v += 2)
                    _mm_prefetch((const char *)(w + (k + u + RT_SKINNY_PF) * P
                                                + 8 * v), _MM_HINT_T0);
        if (RT_SKINNY_PF_L2)
            for (int u = 0; u < U; u++)
                for (int v = 0; v < V; v += 2)
                    _mm_prefetch((const char *)(w + (k + u) * P + 8 * v) +
                                     RT_SKINNY_PF_L2, _MM_HINT_T1);
        for (int u = 0; u < U; u++) {
            const float *wk = w + (k + u) * P;
            for (int r = 0; r < R; r++) {
                __m256 xb = _mm256_set1_ps(x[r * ldx + k + u]);
                for (int v = 0; v < V; v++)
                    acc[u][r][v] = _mm256_fmadd_ps(
                        xb, _mm256_loadu_ps(wk + 8 * v), acc[u][r][v]);
            }
        }
    }
    for (; k < n_in; k++) {
        const float *wk = w + k * P;
        for (int r = 0; r < R; r++) {
            __m256 xb = _mm256_set1_ps(x[r * ldx + k]);
            for (int v = 0; v < V; v++)
                acc[0][r][v] = _mm256_fmadd_ps(xb, _mm256_loadu_ps(wk + 8 * v),
                                               acc[0][r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) {
            __m256 s = acc[0][r][v];
            for (int u = 1; u < U; u++)
                s = _mm256_add_ps(s, acc[u][r][v]);
            _mm256_storeu_ps(c + r * ldc + 8 * v, s);
        }
}
#endif


/* The epilogue of one row of a tile, in one pass while c is in L1:
 * y = act(c + bias) + residual.  Always inlined with constant has_bias,
 * act and mode, so each combination is its own branch-free loop that
 * vectorizes (all but the erf GELU).  mode 0: no residual; 1: a
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

/* The epilogue of one tile (rows of c are ldc apart). */
RT_INLINE void epilogue_tile(float *y, int64_t ldy, const float *c,
                             int64_t ldc, const float *bias, const float *res,
                             int64_t mb, int64_t cols, rt_act act)
{
    const int mode = !res ? 0 : res == y ? 2 : 1;
    for (int64_t r = 0; r < mb; r++) {
        const float *cr = c + r * ldc;
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
    const float *x, *bias, *res;
    const char *w;      /* the panels, past the header */
    int64_t ldy, ldx, rows, n_out, n_in;
    int64_t P;          /* panel width */
    int layout;         /* DSC_LAYOUT(P, format) */
    int64_t panel_bytes;
    int whole;          /* a reduced format multiplied by libxsmm */
    int64_t n_mb;       /* row blocks; tile t is panel t / n_mb, block t % n_mb */
    rt_act act;
    /* A reduced format's fused kernel, or NULL: convert, then multiply. */
    gemm_lowp_tile_fn *lowp;
    /* Without libxsmm: c (row stride P) = mb rows of x times a panel. */
    void (*tile)(float *c, const float *x, int64_t ldx, const float *panel,
                 int64_t P, int64_t mb, int64_t n_in);
#ifdef DSC_HAVE_LIBXSMM
    int xsmm;           /* use kern (else jb->tile) */
    xsmm_kernels kern[2];  /* for a full row block, and the short one */
#endif
} linear_job;


/* The epilogue of rows [m0, m0 + mb) of panel p, computed into c. */
RT_INLINE void finish_tile(const linear_job *jb, const float *c, int64_t p,
                           int64_t m0, int64_t mb)
{
    int64_t n0 = p * jb->P;
    int64_t cols = jb->n_out - n0 < jb->P ? jb->n_out - n0 : jb->P;
    int64_t off = m0 * jb->ldy + n0;
    epilogue_tile(jb->y + off, jb->ldy, c, jb->P,
                  jb->bias ? jb->bias + n0 : NULL,
                  jb->res ? jb->res + off : NULL, mb, cols, jb->act);
}


/* c = mb rows of x times a whole float32 panel (row stride P). */
RT_INLINE void panel_product(const linear_job *jb, float *c, const float *x,
                             const float *a, int64_t mb)
{
    const int64_t P = jb->P, kc = jb->n_in;
#ifdef DSC_HAVE_LIBXSMM
    if (jb->xsmm) {
        const xsmm_kernels *k = &jb->kern[mb != RT_GEMM_MB];
        const int64_t kb = gemm_kb(P);
        const unsigned long long nkb = (unsigned long long)(kc / kb);
        const int64_t k_tail = kc / kb * kb;
        if (k->full)
            k->full(a, x, c, &nkb);
        if (k->tail)
            k->tail(a + k_tail * P, x + k_tail, c);
        return;
    }
#endif
    jb->tile(c, x, jb->ldx, a, P, mb, kc);
}


/* Tiles [begin, end), panel-major: consecutive tiles share a panel, which
 * stays in L2 while the row blocks of x stream past it, and a thread's
 * contiguous range touches only its own panels' weights.  Without libxsmm
 * the tile is the ISA's own kernel, jb->tile.  A reduced format's panel,
 * unless a fused kernel takes it (jb->lowp): under libxsmm it is converted
 * whole into `whole` once for all the row blocks of it in the range, then
 * multiplied as a float32 panel; otherwise (or if `whole` cannot be had)
 * it goes through `a` RT_GEMM_KC rows at a time, each block's product by
 * jb->tile summed into c from `part`. */
RT_INLINE void linear_tiles(const linear_job *jb, int64_t begin, int64_t end)
{
    /* Aligned so the JIT kernel's loads and stores of c never split lines. */
    _Alignas(64) float c[RT_GEMM_MB * RT_PANEL_MAX];
    _Alignas(64) float part[RT_GEMM_MB * RT_PANEL_MAX];
    _Alignas(64) float a[RT_GEMM_KC * RT_PANEL_MAX];
    const int64_t P = jb->P;
    const int f32 = DSC_LAYOUT_FORMAT_OF(jb->layout) == DSC_WEIGHTS_F32;
    float *whole = NULL;
    int64_t whole_p = -1;  /* the panel in whole */
    if (jb->whole && begin < end)
        whole = aligned_alloc(64, (size_t)(P * jb->n_in) * sizeof(float));
    for (int64_t t = begin; t < end; t++) {
        int64_t p = t / jb->n_mb, m0 = t % jb->n_mb * RT_GEMM_MB;
        int64_t mb = jb->rows - m0 < RT_GEMM_MB ? jb->rows - m0 : RT_GEMM_MB;
        const char *panel = jb->w + p * jb->panel_bytes;
        const float *xb = jb->x + m0 * jb->ldx;
        if (jb->lowp) {
            jb->lowp(c, xb, jb->ldx, panel, jb->layout, mb, jb->n_in);
        } else if (f32) {
            panel_product(jb, c, xb, (const float *)panel, mb);
        } else if (whole) {
            if (p != whole_p)
                rt_panel_to_f32(whole, panel, jb->layout, 0, jb->n_in);
            whole_p = p;
            panel_product(jb, c, xb, whole, mb);
        } else {
            for (int64_t k0 = 0; k0 < jb->n_in; k0 += RT_GEMM_KC) {
                int64_t kc = jb->n_in - k0 < RT_GEMM_KC ? jb->n_in - k0
                                                        : RT_GEMM_KC;
                rt_panel_to_f32(a, panel, jb->layout, k0, kc);
                jb->tile(k0 ? part : c, xb + k0, jb->ldx, a, P, mb, kc);
                if (k0)
                    for (int64_t i = 0; i < mb * P; i++)
                        c[i] += part[i];
            }
        }
        finish_tile(jb, c, p, m0, mb);
    }
    free(whole);
}


/* c = mb rows of x times a whole panel, row stride P: the portable
 * micro-kernel. */
static void tile_generic(float *c, const float *x, int64_t ldx,
                         const float *panel, int64_t P, int64_t mb,
                         int64_t n_in)
{
    portable_tile(c, x, ldx, panel, P, mb, P, n_in);
}


static void tiles_generic(void *arg, int64_t begin, int64_t end)
{
    linear_tiles(arg, begin, end);
}


#if RT_X86_DISPATCH
/* The same with ymm registers: R <= 3 rows at a time (12 of the 16
 * registers accumulate), each 32-column block of the panel in turn. */
RT_TARGET_AVX2 static void tile_avx2(float *c, const float *x, int64_t ldx,
                                     const float *panel, int64_t P,
                                     int64_t mb, int64_t n_in)
{
    for (int64_t j0 = 0; j0 < P; j0 += 32) {
        int64_t m = 0;
        for (; m + 3 <= mb; m += 3)
            sk256(c + m * P + j0, P, x + m * ldx, ldx, panel + j0, P, n_in,
                  3, 1);
        if (mb - m == 2)
            sk256(c + m * P + j0, P, x + m * ldx, ldx, panel + j0, P, n_in,
                  2, 1);
        else if (mb - m == 1)
            sk256(c + m * P + j0, P, x + m * ldx, ldx, panel + j0, P, n_in,
                  1, 3);
    }
}


/* With zmm registers over the whole panel (V = P / 16 vectors): R <= 4
 * rows at a time, U chains so R * V * U <= 24 of the 32 registers. */
#define SK512_V(R_, U2_, U4_)                                                \
    do {                                                                     \
        if (P == 64)                                                         \
            sk512(c + m * P, P, x + m * ldx, ldx, panel, P, n_in, R_, 4,     \
                  U4_);                                                      \
        else                                                                 \
            sk512(c + m * P, P, x + m * ldx, ldx, panel, P, n_in, R_, 2,     \
                  U2_);                                                      \
    } while (0)

RT_TARGET_AVX512 static void tile_avx512(float *c, const float *x,
                                         int64_t ldx, const float *panel,
                                         int64_t P, int64_t mb, int64_t n_in)
{
    int64_t m = 0;
    for (; m + 4 <= mb; m += 4)
        SK512_V(4, 2, 1);
    switch (mb - m) {
    case 3: SK512_V(3, 2, 1); break;
    case 2: SK512_V(2, 2, 1); break;
    case 1: SK512_V(1, 4, 4); break;
    default: break;
    }
}


RT_TARGET_AVX2 static void tiles_avx2(void *arg, int64_t begin, int64_t end)
{
    linear_tiles(arg, begin, end);
}


RT_TARGET_AVX512 static void tiles_avx512(void *arg, int64_t begin,
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
    const int layout = rt_packed_layout(packed_w, n_out, n_in);
    if (!layout) {
        /* Not a weight packed for this call: say so loudly in the output
         * rather than compute with misread memory. */
        for (int64_t m = 0; m < rows; m++)
            for (int64_t n = 0; n < n_out; n++)
                y[m * ldy + n] = NAN;
        return;
    }
    const int64_t P = DSC_LAYOUT_PANEL_OF(layout);
    const int f32 = DSC_LAYOUT_FORMAT_OF(layout) == DSC_WEIGHTS_F32;
    const int isa = rt_ctx_isa(ctx);
    const int skinny = rows <= RT_SKINNY_ROWS;
    linear_job jb = {
        .y = y, .x = x, .w = (const char *)(packed_w + RT_PACK_HEADER),
        .bias = bias, .res = residual, .ldy = ldy, .ldx = ldx, .rows = rows,
        .n_out = n_out, .n_in = n_in, .P = P, .layout = layout,
        .panel_bytes = rt_panel_bytes(layout, n_in),
        .n_mb = (rows + RT_GEMM_MB - 1) / RT_GEMM_MB,
        .act = act, .tile = tile_generic,
    };
    rt_task_fn fn = tiles_generic;
#if RT_X86_DISPATCH
    if (isa == DSC_ISA_AVX512) {
        fn = tiles_avx512;
        jb.tile = tile_avx512;
        if (!f32 && rows <= RT_LOWP_ROWS_AVX512)
            jb.lowp = gemm_lowp_tile_avx512;
    } else if (isa == DSC_ISA_AVX2) {
        fn = tiles_avx2;
        jb.tile = tile_avx2;
        if (!f32 && rows <= RT_LOWP_ROWS_AVX2)
            jb.lowp = gemm_lowp_tile_avx2;
    }
#endif
#ifdef DSC_HAVE_LIBXSMM
    /* libxsmm for all but skinny calls, except under the generic ISA (the
     * portable kernels throughout): kernels for the full and the short row
     * block.  Any kernel libxsmm cannot generate sends the whole call down
     * the runtime's own. */
    const int64_t mb_short = rows % RT_GEMM_MB;
    jb.xsmm = !skinny && !jb.lowp && isa != DSC_ISA_GENERIC && n_in > 0 &&
              ldx <= INT_MAX && n_in <= INT_MAX / P;
    for (int s = 0; s < 2 && jb.xsmm; s++) {
        int64_t mb = s ? mb_short : RT_GEMM_MB;
        if (!mb || (!s && rows < RT_GEMM_MB))
            continue;
        jb.xsmm = xsmm_kernels_for(ctx, &jb.kern[s], P, mb, n_in, ldx);
    }
    jb.whole = !f32 && jb.xsmm;
#endif
    /* A skinny call is one row block: its tasks are panels, i.e. threads
     * split the output columns, each streaming its own weights once. */
    int64_t work = rows * n_out * (n_in > 0 ? n_in : 1);
    rt_parallel(ctx, rt_threads_for(ctx, work, skinny || jb.lowp
                                                   ? RT_SKINNY_GRAIN
                                                   : RT_GEMM_GRAIN),
                rt_panels(n_out, P) * jb.n_mb, fn, &jb);
}
