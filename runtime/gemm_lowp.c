/* gemm_lowp.c — the fused kernels for bfloat16 and Q8_0 weights (see
 * gemm_lowp.h): the skinny kernels of gemm.c, reading the small values
 * and converting them in registers.
 *
 * Same shape as gemm.c's sk512/sk256: R rows by V vectors of columns in
 * registers, U chains over k added in a fixed order at the end.
 *   bf16: a value is the top half of a float: zero-extend to 32 bits and
 *         shift left by 16 (exact).
 *   q8:   per block of RT_Q8_BLOCK k-rows, sum x * q with q sign-extended
 *         and converted to float (exact), then c += block sum * scale,
 *         one multiply-add per column and block; c (in L1) holds the
 *         running sum between blocks.
 * The panel is contiguous and read front to back in both formats, so the
 * prefetch is a byte distance ahead of the row being read. */
#include "gemm_lowp.h"

#if RT_X86_DISPATCH
#include <immintrin.h>

/* Bytes ahead of the row being read that the panel is prefetched: into
 * L2 from far ahead, into L1 from near (0: none).  Two distances stream
 * faster from memory than either alone: one-row q8 and bf16 products read
 * 6-11% more GB/s than with a single L1 prefetch 2 KB ahead (gemm_bench,
 * 1 x 3072 x 768, both ISAs, Xeon KVM).  The hardware prefetcher alone
 * reaches about 60% of it. */
#if !defined(GEMM_LOWP_PF)
#define GEMM_LOWP_PF 1024
#endif
#if !defined(GEMM_LOWP_PF_L2)
#define GEMM_LOWP_PF_L2 4096
#endif

#define LOWP_AVX512 __attribute__((always_inline, target(RT_ISA_AVX512_FLAGS)))
#define LOWP_AVX2 __attribute__((always_inline, target("avx2,fma")))


/* Prefetch the lines of [p + GEMM_LOWP_PF_L2, + bytes) into L2 and of
 * [p + GEMM_LOWP_PF, + bytes) into L1. */
#define LOWP_PREFETCH(p, bytes)                                              \
    do {                                                                     \
        for (int64_t o_ = 0; o_ < (bytes); o_ += 64) {                       \
            if (GEMM_LOWP_PF_L2)                                             \
                _mm_prefetch((const char *)(p) + GEMM_LOWP_PF_L2 + o_,       \
                             _MM_HINT_T1);                                   \
            if (GEMM_LOWP_PF)                                                \
                _mm_prefetch((const char *)(p) + GEMM_LOWP_PF + o_,          \
                             _MM_HINT_T0);                                   \
        }                                                                    \
    } while (0)


/* ---- AVX-512: V = P / 16 vectors, the whole panel ---------------------- */

static inline LOWP_AVX512 __m512 bf16x16(const uint16_t *p)
{
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}


static inline LOWP_AVX512 __m512 q8x16(const int8_t *p)
{
    __m128i b = _mm_loadu_si128((const __m128i *)p);
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
}


static inline LOWP_AVX512 void bf512(float *c, const float *x, int64_t ldx,
                                     const uint16_t *w, int64_t P,
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
        LOWP_PREFETCH(w + k * P, U * P * 2);
        for (int u = 0; u < U; u++) {
            const uint16_t *wk = w + (k + u) * P;
            for (int r = 0; r < R; r++) {
                __m512 xb = _mm512_set1_ps(x[r * ldx + k + u]);
                for (int v = 0; v < V; v++)
                    acc[u][r][v] = _mm512_fmadd_ps(xb, bf16x16(wk + 16 * v),
                                                   acc[u][r][v]);
            }
        }
    }
    for (; k < n_in; k++) {
        const uint16_t *wk = w + k * P;
        for (int r = 0; r < R; r++) {
            __m512 xb = _mm512_set1_ps(x[r * ldx + k]);
            for (int v = 0; v < V; v++)
                acc[0][r][v] = _mm512_fmadd_ps(xb, bf16x16(wk + 16 * v),
                                               acc[0][r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) {
            __m512 s = acc[0][r][v];
            for (int u = 1; u < U; u++)
                s = _mm512_add_ps(s, acc[u][r][v]);
            _mm512_storeu_ps(c + r * P + 16 * v, s);
        }
}


static inline LOWP_AVX512 void q8_512(float *c, const float *x, int64_t ldx,
                                      const char *panel, int64_t P,
                                      int64_t n_in, const int R, const int V,
                                      const int U)
{
    const int64_t block = P * (4 + RT_Q8_BLOCK);
    for (int64_t k0 = 0; k0 < n_in; k0 += RT_Q8_BLOCK) {
        const char *b = panel + k0 / RT_Q8_BLOCK * block;
        const float *scale = (const float *)b;
        const int8_t *q = (const int8_t *)(b + P * 4);
        const float *xk = x + k0;
        const int64_t kr = n_in - k0 < RT_Q8_BLOCK ? n_in - k0 : RT_Q8_BLOCK;
        __m512 acc[4][4][4];
        for (int u = 0; u < U; u++)
            for (int r = 0; r < R; r++)
                for (int v = 0; v < V; v++)
                    acc[u][r][v] = _mm512_setzero_ps();
        LOWP_PREFETCH(b, P * 4);
        int64_t k = 0;
        for (; k + U <= kr; k += U) {
            LOWP_PREFETCH(q + k * P, U * P);
            for (int u = 0; u < U; u++) {
                const int8_t *qk = q + (k + u) * P;
                for (int r = 0; r < R; r++) {
                    __m512 xb = _mm512_set1_ps(xk[r * ldx + k + u]);
                    for (int v = 0; v < V; v++)
                        acc[u][r][v] = _mm512_fmadd_ps(xb, q8x16(qk + 16 * v),
                                                       acc[u][r][v]);
                }
            }
        }
        for (; k < kr; k++) {
            const int8_t *qk = q + k * P;
            for (int r = 0; r < R; r++) {
                __m512 xb = _mm512_set1_ps(xk[r * ldx + k]);
                for (int v = 0; v < V; v++)
                    acc[0][r][v] = _mm512_fmadd_ps(xb, q8x16(qk + 16 * v),
                                                   acc[0][r][v]);
            }
        }
        for (int r = 0; r < R; r++)
            for (int v = 0; v < V; v++) {
                __m512 s = acc[0][r][v];
                for (int u = 1; u < U; u++)
                    s = _mm512_add_ps(s, acc[u][r][v]);
                __m512 sc = _mm512_loadu_ps(scale + 16 * v);
                float *cr = c + r * P + 16 * v;
                _mm512_storeu_ps(cr, k0 ? _mm512_fmadd_ps(s, sc,
                                                          _mm512_loadu_ps(cr))
                                        : _mm512_mul_ps(s, sc));
            }
    }
}


/* R rows at a time with U chains, R * V * U <= 16 accumulators. */
#define LOWP512(R_, U_)                                                      \
    do {                                                                     \
        float *c_ = c + m * P;                                               \
        const float *x_ = x + m * ldx;                                       \
        if (bf16 && P == 64)                                                 \
            bf512(c_, x_, ldx, (const uint16_t *)panel, P, n_in, R_, 4, U_); \
        else if (bf16)                                                       \
            bf512(c_, x_, ldx, (const uint16_t *)panel, P, n_in, R_, 2, U_); \
        else if (P == 64)                                                    \
            q8_512(c_, x_, ldx, panel, P, n_in, R_, 4, U_);                  \
        else                                                                 \
            q8_512(c_, x_, ldx, panel, P, n_in, R_, 2, U_);                  \
    } while (0)

RT_TARGET_AVX512 void gemm_lowp_tile_avx512(float *c, const float *x,
                                            int64_t ldx, const char *panel,
                                            int layout, int64_t mb,
                                            int64_t n_in)
{
    const int64_t P = DSC_LAYOUT_PANEL_OF(layout);
    const int bf16 = DSC_LAYOUT_FORMAT_OF(layout) == DSC_WEIGHTS_BF16;
    int64_t m = 0;
    for (; m + 4 <= mb; m += 4)
        LOWP512(4, 1);
    switch (mb - m) {
    case 3: LOWP512(3, 1); break;
    case 2: LOWP512(2, 2); break;
    case 1: LOWP512(1, 4); break;
    default: break;
    }
}


/* ---- AVX2: a 32-column block (V = 4 ymm) at a time ---------------------- */

static inline LOWP_AVX2 __m256 bf16x8(const uint16_t *p)
{
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}


static inline LOWP_AVX2 __m256 q8x8(const int8_t *p)
{
    __m128i b = _mm_loadl_epi64((const __m128i *)p);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
}


/* Columns [j0, j0 + 32) of a bf16 panel of width P. */
static inline LOWP_AVX2 void bf256(float *c, const float *x, int64_t ldx,
                                   const uint16_t *w, int64_t P,
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
        LOWP_PREFETCH(w + k * P, U * 64);
        for (int u = 0; u < U; u++) {
            const uint16_t *wk = w + (k + u) * P;
            for (int r = 0; r < R; r++) {
                __m256 xb = _mm256_set1_ps(x[r * ldx + k + u]);
                for (int v = 0; v < V; v++)
                    acc[u][r][v] = _mm256_fmadd_ps(xb, bf16x8(wk + 8 * v),
                                                   acc[u][r][v]);
            }
        }
    }
    for (; k < n_in; k++) {
        const uint16_t *wk = w + k * P;
        for (int r = 0; r < R; r++) {
            __m256 xb = _mm256_set1_ps(x[r * ldx + k]);
            for (int v = 0; v < V; v++)
                acc[0][r][v] = _mm256_fmadd_ps(xb, bf16x8(wk + 8 * v),
                                               acc[0][r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) {
            __m256 s = acc[0][r][v];
            for (int u = 1; u < U; u++)
                s = _mm256_add_ps(s, acc[u][r][v]);
            _mm256_storeu_ps(c + r * P + 8 * v, s);
        }
}


/* Columns [j0, j0 + 32) of a q8 panel of width P. */
static inline LOWP_AVX2 void q8_256(float *c, const float *x, int64_t ldx,
                                    const char *panel, int64_t j0, int64_t P,
                                    int64_t n_in, const int R, const int U)
{
    enum { V = 4 };
    const int64_t block = P * (4 + RT_Q8_BLOCK);
    for (int64_t k0 = 0; k0 < n_in; k0 += RT_Q8_BLOCK) {
        const char *b = panel + k0 / RT_Q8_BLOCK * block;
        const float *scale = (const float *)b + j0;
        const int8_t *q = (const int8_t *)(b + P * 4) + j0;
        const float *xk = x + k0;
        const int64_t kr = n_in - k0 < RT_Q8_BLOCK ? n_in - k0 : RT_Q8_BLOCK;
        __m256 acc[3][3][V];
        for (int u = 0; u < U; u++)
            for (int r = 0; r < R; r++)
                for (int v = 0; v < V; v++)
                    acc[u][r][v] = _mm256_setzero_ps();
        LOWP_PREFETCH(scale, 128);
        int64_t k = 0;
        for (; k + U <= kr; k += U) {
            LOWP_PREFETCH(q + k * P, U * 32);
            for (int u = 0; u < U; u++) {
                const int8_t *qk = q + (k + u) * P;
                for (int r = 0; r < R; r++) {
                    __m256 xb = _mm256_set1_ps(xk[r * ldx + k + u]);
                    for (int v = 0; v < V; v++)
                        acc[u][r][v] = _mm256_fmadd_ps(xb, q8x8(qk + 8 * v),
                                                       acc[u][r][v]);
                }
            }
        }
        for (; k < kr; k++) {
            const int8_t *qk = q + k * P;
            for (int r = 0; r < R; r++) {
                __m256 xb = _mm256_set1_ps(xk[r * ldx + k]);
                for (int v = 0; v < V; v++)
                    acc[0][r][v] = _mm256_fmadd_ps(xb, q8x8(qk + 8 * v),
                                                   acc[0][r][v]);
            }
        }
        for (int r = 0; r < R; r++)
            for (int v = 0; v < V; v++) {
                __m256 s = acc[0][r][v];
                for (int u = 1; u < U; u++)
                    s = _mm256_add_ps(s, acc[u][r][v]);
                __m256 sc = _mm256_loadu_ps(scale + 8 * v);
                float *cr = c + r * P + 8 * v;
                _mm256_storeu_ps(cr, k0 ? _mm256_fmadd_ps(s, sc,
                                                          _mm256_loadu_ps(cr))
                                        : _mm256_mul_ps(s, sc));
            }
    }
}


/* R rows at a time with U chains, R * 4 * U <= 12 accumulators, each
 * 32-column block of the panel in turn.  One row takes 2 chains, not 3:
 * a q8 block's 32 rows then split evenly, where 3 left two rows on one
 * chain whose latency every block waited for (30% of the kernel's speed
 * from cache). */
#define LOWP256(R_, U_)                                                      \
    do {                                                                     \
        float *c_ = c + m * P + j0;                                          \
        const float *x_ = x + m * ldx;                                       \
        if (bf16)                                                            \
            bf256(c_, x_, ldx, (const uint16_t *)panel + j0, P, n_in, R_,    \
                  U_);                                                       \
        else                                                                 \
            q8_256(c_, x_, ldx, panel, j0, P, n_in, R_, U_);                 \
    } while (0)

RT_TARGET_AVX2 void gemm_lowp_tile_avx2(float *c, const float *x,
                                        int64_t ldx, const char *panel,
                                        int layout, int64_t mb, int64_t n_in)
{
    const int64_t P = DSC_LAYOUT_PANEL_OF(layout);
    const int bf16 = DSC_LAYOUT_FORMAT_OF(layout) == DSC_WEIGHTS_BF16;
    for (int64_t j0 = 0; j0 < P; j0 += 32) {
        int64_t m = 0;
        for (; m + 3 <= mb; m += 3)
            LOWP256(3, 1);
        if (mb - m == 2)
            LOWP256(2, 1);
        else if (mb - m == 1)
            LOWP256(1, 2);
    }
}
#endif
