/* train.c — the kernels of a training step: dropout, cross-entropy, the
 * backward of linear, layernorm, softmax, attention and embedding, and
 * torch.optim.Adam.
 *
 * The GEMMs of a linear's backward go through rt_linear (gemm.c) on
 * operands repacked here into its packed layout, so they run on the same
 * fast kernels as the forward.  Weight gradients are written in the layout
 * of the weight blob (packed for linear weights), so the optimizer is one
 * element-wise pass over the blob.
 *
 * Determinism: every output element is computed by one thread in a fixed
 * order; reductions over rows (bias, gamma, the loss) run per column or in
 * one fixed order, never split by thread.  Results depend on the thread
 * count only through rt_linear's own partition (none: it splits tiles, not
 * sums).  Dropout masks are a hash of (seed, step, node, element): the
 * backward regenerates them instead of storing them.
 */
#include "rt_pack.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if RT_X86_DISPATCH
#include <immintrin.h>
#endif

#ifdef DSC_HAVE_LIBXSMM
#include <limits.h>
#include <libxsmm.h>
#endif

/* The panel width of the weights train.c packs for itself (rt_linear reads
 * any layout from the header; gemm.c documents the layout). */
#define RT_TRAIN_PANEL 64
#define RT_HDR RT_LINEAR_HEADER_FLOATS
#define RT_TRAIN_GRAIN (1 << 15)
#define RT_TRAIN_CHUNK 4096

_Static_assert(sizeof(rt_train_header) <= RT_TRAIN_HEADER_FLOATS * 4,
               "the header fits its floats");


static int64_t round_up(int64_t n, int64_t m)
{
    return (n + m - 1) / m * m;
}


/* ---- state ----------------------------------------------------------- */

int64_t rt_train_state_floats(int64_t weight_floats)
{
    return RT_TRAIN_HEADER_FLOATS + 3 * round_up(weight_floats, 16);
}


void rt_train_init(float *state, int64_t weight_floats, double lr,
                   uint64_t seed)
{
    memset(state, 0, (size_t)rt_train_state_floats(weight_floats) *
           sizeof(float));
    rt_train_header *h = (rt_train_header *)(void *)state;
    h->step = 0;
    h->seed = seed;
    h->weight_floats = round_up(weight_floats, 16);
    h->lr = lr;
    h->beta1 = 0.9;
    h->beta2 = 0.999;
    h->eps = 1e-8;
    h->weight_decay = 0.0;
}


float *rt_train_grad(float *state)
{
    const rt_train_header *h = (const rt_train_header *)(void *)state;
    return state + RT_TRAIN_HEADER_FLOATS + 2 * h->weight_floats;
}


void rt_train_begin(float *state)
{
    ((rt_train_header *)(void *)state)->step++;
}


static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}


uint64_t rt_dropout_key(const float *state, int stream)
{
    const rt_train_header *h = (const rt_train_header *)(const void *)state;
    return mix64(h->seed ^ mix64((uint64_t)h->step * 0x9e3779b97f4a7c15ULL +
                                 (uint64_t)(uint32_t)stream));
}


/* The mask's random bits for element i: 32-bit mixing (murmur3's
 * finalizer, twice), so the loops vectorize (AVX2 has no 64-bit
 * multiply). */
RT_INLINE uint32_t fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

RT_INLINE uint32_t mask_bits(uint64_t key, int64_t i)
{
    return fmix32(fmix32((uint32_t)i * 0x9e3779b9u + (uint32_t)key) ^
                  (uint32_t)(key >> 32));
}

/* Bits below this drop the element: probability p (to 2^-32). */
static uint32_t drop_threshold(float p)
{
    double t = (double)p * 4294967296.0;
    return t >= 4294967295.0 ? 0xffffffffu : (uint32_t)t;
}

/* ---- dropout, relu ---------------------------------------------------- */

typedef struct ew_job {
    float *y;
    const float *a, *b, *r;
    int64_t n;
    float p;
    uint64_t key;
} ew_job;


RT_INLINE void dropout_body(const ew_job *j, int64_t c0, int64_t c1)
{
    float scale = 1.0f / (1.0f - j->p);
    uint32_t thr = drop_threshold(j->p);
    int64_t end = c1 * RT_TRAIN_CHUNK < j->n ? c1 * RT_TRAIN_CHUNK : j->n;
    for (int64_t i = c0 * RT_TRAIN_CHUNK; i < end; i++)
        j->y[i] = j->a[i] * rt_select(mask_bits(j->key, i) < thr, 0.0f,
                                      scale);
}


static void dropout_base(void *arg, int64_t c0, int64_t c1)
{
    dropout_body(arg, c0, c1);
}


#if RT_X86_DISPATCH
RT_TARGET_AVX2 static void dropout_avx2(void *arg, int64_t c0, int64_t c1)
{
    dropout_body(arg, c0, c1);
}
#endif


#if RT_X86_DISPATCH
/* The same, sixteen lanes at a time: the hash is four 32-bit multiplies an
 * element, which AVX2 does at half this width.  Bit for bit the scalar
 * result (y = x * 0 or x * scale, as there). */
RT_TARGET_AVX512 static __m512i fmix32_avx512(__m512i h)
{
    h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
    h = _mm512_mullo_epi32(h, _mm512_set1_epi32((int)0x85ebca6bu));
    h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 13));
    h = _mm512_mullo_epi32(h, _mm512_set1_epi32((int)0xc2b2ae35u));
    return _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
}

RT_TARGET_AVX512 static void dropout_avx512(void *arg, int64_t c0,
                                            int64_t c1)
{
    const ew_job *j = arg;
    int64_t i = c0 * RT_TRAIN_CHUNK;
    int64_t end = c1 * RT_TRAIN_CHUNK < j->n ? c1 * RT_TRAIN_CHUNK : j->n;
    const __m512 scale = _mm512_set1_ps(1.0f / (1.0f - j->p));
    const __m512i thr = _mm512_set1_epi32((int)drop_threshold(j->p));
    const __m512i lo = _mm512_set1_epi32((int)(uint32_t)j->key);
    const __m512i hi = _mm512_set1_epi32((int)(uint32_t)(j->key >> 32));
    const __m512i golden = _mm512_set1_epi32((int)0x9e3779b9u);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                           11, 12, 13, 14, 15);
    for (; i + 16 <= end; i += 16) {
        __m512i idx = _mm512_add_epi32(_mm512_set1_epi32((int)(uint32_t)i),
                                       lane);
        __m512i h = _mm512_add_epi32(_mm512_mullo_epi32(idx, golden), lo);
        h = fmix32_avx512(_mm512_xor_si512(fmix32_avx512(h), hi));
        __mmask16 drop = _mm512_cmplt_epu32_mask(h, thr);
        __m512 sc = _mm512_mask_blend_ps(drop, scale, _mm512_setzero_ps());
        _mm512_storeu_ps(j->y + i, _mm512_mul_ps(_mm512_loadu_ps(j->a + i),
                                                 sc));
    }
    float sc = 1.0f / (1.0f - j->p);
    uint32_t t = drop_threshold(j->p);
    for (; i < end; i++)
        j->y[i] = j->a[i] * rt_select(mask_bits(j->key, i) < t, 0.0f, sc);
}
#endif


void rt_dropout(rt_ctx *ctx, float *y, const float *x, int64_t n, float p,
                uint64_t key)
{
    ew_job j = { .y = y, .a = x, .n = n, .p = p, .key = key };
    int64_t chunks = (n + RT_TRAIN_CHUNK - 1) / RT_TRAIN_CHUNK;
    rt_task_fn fn = dropout_base;
#if RT_X86_DISPATCH
    if (rt_ctx_isa(ctx) == DSC_ISA_AVX512)
        fn = dropout_avx512;
    else if (rt_cpu_has_avx2())
        fn = dropout_avx2;
#endif
    rt_parallel(ctx, rt_threads_for(ctx, n, RT_TRAIN_GRAIN), chunks, fn, &j);
}


RT_INLINE void relu_grad_body(const ew_job *j, int64_t c0, int64_t c1)
{
    int64_t end = c1 * RT_TRAIN_CHUNK < j->n ? c1 * RT_TRAIN_CHUNK : j->n;
    float *restrict y = j->y;
    const float *restrict a = j->a, *restrict b = j->b, *restrict r = j->r;
    if (r)
        for (int64_t i = c0 * RT_TRAIN_CHUNK; i < end; i++)
            y[i] = rt_select(b[i] > r[i], a[i], 0.0f);
    else
        for (int64_t i = c0 * RT_TRAIN_CHUNK; i < end; i++)
            y[i] = rt_select(b[i] > 0.0f, a[i], 0.0f);
}


static void relu_grad_base(void *arg, int64_t c0, int64_t c1)
{
    relu_grad_body(arg, c0, c1);
}


#if RT_X86_DISPATCH
RT_TARGET_AVX2 static void relu_grad_avx2(void *arg, int64_t c0, int64_t c1)
{
    relu_grad_body(arg, c0, c1);
}
#endif


void rt_relu_grad(rt_ctx *ctx, float *dx, const float *dy, const float *y,
                  const float *residual, int64_t n)
{
    ew_job j = { .y = dx, .a = dy, .b = y, .r = residual, .n = n };
    int64_t chunks = (n + RT_TRAIN_CHUNK - 1) / RT_TRAIN_CHUNK;
    rt_task_fn fn = relu_grad_base;
#if RT_X86_DISPATCH
    if (rt_cpu_has_avx2())
        fn = relu_grad_avx2;
#endif
    rt_parallel(ctx, rt_threads_for(ctx, n, RT_TRAIN_GRAIN), chunks, fn, &j);
}


/* dy * scale where y > 0: dropout's backward (dy * 0 or dy * scale) then
 * relu's (keep where relu(z) > 0) give dy * scale on the same elements,
 * and +0 or -0 elsewhere (+0 here: a sum over a zero is the same sum). */
RT_INLINE void dropout_relu_grad_body(const ew_job *j, int64_t c0,
                                      int64_t c1)
{
    int64_t end = c1 * RT_TRAIN_CHUNK < j->n ? c1 * RT_TRAIN_CHUNK : j->n;
    float *restrict y = j->y;
    const float *restrict a = j->a, *restrict b = j->b;
    float scale = 1.0f / (1.0f - j->p);
    for (int64_t i = c0 * RT_TRAIN_CHUNK; i < end; i++)
        y[i] = rt_select(b[i] > 0.0f, a[i] * scale, 0.0f);
}


static void dropout_relu_grad_base(void *arg, int64_t c0, int64_t c1)
{
    dropout_relu_grad_body(arg, c0, c1);
}


#if RT_X86_DISPATCH
RT_TARGET_AVX2 static void dropout_relu_grad_avx2(void *arg, int64_t c0,
                                                  int64_t c1)
{
    dropout_relu_grad_body(arg, c0, c1);
}

RT_TARGET_AVX512 static void dropout_relu_grad_avx512(void *arg, int64_t c0,
                                                      int64_t c1)
{
    dropout_relu_grad_body(arg, c0, c1);
}
#endif


void rt_dropout_relu_grad(rt_ctx *ctx, float *dx, const float *dy,
                          const float *y, int64_t n, float p)
{
    ew_job j = { .y = dx, .a = dy, .b = y, .n = n, .p = p };
    int64_t chunks = (n + RT_TRAIN_CHUNK - 1) / RT_TRAIN_CHUNK;
    rt_task_fn fn = dropout_relu_grad_base;
#if RT_X86_DISPATCH
    if (rt_ctx_isa(ctx) == DSC_ISA_AVX512)
        fn = dropout_relu_grad_avx512;
    else if (rt_cpu_has_avx2())
        fn = dropout_relu_grad_avx2;
#endif
    rt_parallel(ctx, rt_threads_for(ctx, n, RT_TRAIN_GRAIN), chunks, fn, &j);
}


typedef struct gelu_job {
    float *dx;
    const float *dy, *x;
    int64_t n;
    int tanh_form;
} gelu_job;


/* d/dx of 0.5 x (1 + erf(x / sqrt 2)) = Phi(x) + x phi(x); of the tanh
 * form 0.5 x (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x^3):
 * 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 0.044715 x^2).
 * In double: few elements, and no vector exp/erf to match. */
static void gelu_grad_range(void *arg, int64_t c0, int64_t c1)
{
    const gelu_job *j = arg;
    int64_t end = c1 * RT_TRAIN_CHUNK < j->n ? c1 * RT_TRAIN_CHUNK : j->n;
    for (int64_t i = c0 * RT_TRAIN_CHUNK; i < end; i++) {
        double x = j->x[i], d;
        if (j->tanh_form) {
            double k = 0.79788456080286535588, t = tanh(k * (x + 0.044715 *
                                                            x * x * x));
            d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k *
                (1 + 3 * 0.044715 * x * x);
        } else {
            d = 0.5 * (1 + erf(x * 0.70710678118654752440)) +
                x * exp(-0.5 * x * x) * 0.39894228040143267794;
        }
        j->dx[i] = (float)(j->dy[i] * d);
    }
}


void rt_gelu_grad(rt_ctx *ctx, float *dx, const float *dy, const float *x,
                  int64_t n, rt_act act)
{
    gelu_job j = { dx, dy, x, n, act == RT_ACT_GELU_TANH };
    int64_t chunks = (n + RT_TRAIN_CHUNK - 1) / RT_TRAIN_CHUNK;
    rt_parallel(ctx, rt_threads_for(ctx, n, RT_TRAIN_GRAIN / 8), chunks,
                gelu_grad_range, &j);
}


/* ---- row-wise: softmax, layernorm, cross-entropy ----------------------- */

typedef struct row_job {
    float *out;
    const float *dy, *x, *gamma;
    const int32_t *targets;
    int64_t rows, dim;
    float eps;
    double *row_loss;
    atomic_int *failed;  /* set by a worker whose scratch malloc failed */
    int avx512;          /* the context's ISA is AVX-512 */
} row_job;


static void softmax_grad_rows(void *arg, int64_t r0, int64_t r1)
{
    const row_job *j = arg;
    for (int64_t r = r0; r < r1; r++) {
        const float *dy = j->dy + r * j->dim, *y = j->x + r * j->dim;
        float *dx = j->out + r * j->dim;
        double dot = 0;
        for (int64_t i = 0; i < j->dim; i++)
            dot += (double)dy[i] * y[i];
        for (int64_t i = 0; i < j->dim; i++)
            dx[i] = (float)(y[i] * (dy[i] - dot));
    }
}


void rt_softmax_grad(rt_ctx *ctx, float *dx, const float *dy, const float *y,
                     int64_t rows, int64_t dim)
{
    row_job j = { .out = dx, .dy = dy, .x = y, .rows = rows, .dim = dim };
    rt_parallel(ctx, rt_threads_for(ctx, rows * dim, RT_TRAIN_GRAIN), rows,
                softmax_grad_rows, &j);
}


/* Sums in double over a row, eight partial sums (lane i % 8) added in a
 * fixed order at the end: the same result on every ISA and thread count,
 * and eight independent add chains instead of one, so the loops
 * vectorize. */
RT_INLINE double sum8_total(const double *acc)
{
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
           ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}


/* Mean and 1/sqrt(var + eps) of a row, in double. */
RT_INLINE void row_stats(const float *x, int64_t dim, float eps,
                         double *mean, double *rstd)
{
    double s[8] = {0}, sq[8] = {0};
    for (int64_t i = 0; i + 8 <= dim; i += 8)
        for (int l = 0; l < 8; l++)
            s[l] += x[i + l];
    for (int64_t i = dim / 8 * 8; i < dim; i++)
        s[i % 8] += x[i];
    double mu = sum8_total(s) / (double)dim;
    for (int64_t i = 0; i + 8 <= dim; i += 8)
        for (int l = 0; l < 8; l++)
            sq[l] += (x[i + l] - mu) * (x[i + l] - mu);
    for (int64_t i = dim / 8 * 8; i < dim; i++)
        sq[i % 8] += (x[i] - mu) * (x[i] - mu);
    *mean = mu;
    *rstd = 1.0 / sqrt(sum8_total(sq) / (double)dim + (double)eps);
}


/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma. */
RT_INLINE void layernorm_grad_body(const row_job *j, int64_t r0, int64_t r1)
{
    const int64_t dim = j->dim;
    for (int64_t r = r0; r < r1; r++) {
        const float *dy = j->dy + r * dim, *x = j->x + r * dim;
        float *dx = j->out + r * dim;
        double mean, rstd, sg8[8] = {0}, sgx8[8] = {0};
        row_stats(x, dim, j->eps, &mean, &rstd);
        for (int64_t i = 0; i < dim; i++) {
            double g = (double)dy[i] * (j->gamma ? j->gamma[i] : 1.0f);
            sg8[i % 8] += g;
            sgx8[i % 8] += g * (x[i] - mean) * rstd;
        }
        double sg = sum8_total(sg8) / (double)dim;
        double sgx = sum8_total(sgx8) / (double)dim;
        for (int64_t i = 0; i < dim; i++) {
            double g = (double)dy[i] * (j->gamma ? j->gamma[i] : 1.0f);
            double xhat = (x[i] - mean) * rstd;
            dx[i] = (float)(rstd * (g - sg - xhat * sgx));
        }
    }
}


static void layernorm_grad_rows(void *arg, int64_t r0, int64_t r1)
{
    layernorm_grad_body(arg, r0, r1);
}


#if RT_X86_DISPATCH
RT_TARGET_AVX512 static void layernorm_grad_avx512(void *arg, int64_t r0,
                                                   int64_t r1)
{
    layernorm_grad_body(arg, r0, r1);
}
#endif


void rt_layernorm_grad_x(rt_ctx *ctx, float *dx, const float *dy,
                         const float *x, const float *gamma, int64_t rows,
                         int64_t dim, float eps)
{
    row_job j = { .out = dx, .dy = dy, .x = x, .gamma = gamma, .rows = rows,
                  .dim = dim, .eps = eps };
    rt_task_fn fn = layernorm_grad_rows;
#if RT_X86_DISPATCH
    if (rt_ctx_isa(ctx) == DSC_ISA_AVX512)
        fn = layernorm_grad_avx512;
#endif
    rt_parallel(ctx, rt_threads_for(ctx, rows * dim, RT_TRAIN_GRAIN / 4),
                rows, fn, &j);
}


typedef struct col_job {
    float *out;
    const float *dy, *x;
    int64_t ld, rows, dim;
    const double *stats;  /* layernorm: mean, rstd per row */
    int accumulate;
} col_job;


/* Columns [c0, c1): sums over every row in row order (each column's sum
 * in the same order whoever computes it), rows streamed contiguously. */
#define RT_COL_BLOCK 256
RT_INLINE void col_sum_body(const col_job *j, int64_t c0, int64_t c1)
{
    double s[RT_COL_BLOCK];
    for (int64_t b0 = c0; b0 < c1; b0 += RT_COL_BLOCK) {
        int64_t w = c1 - b0 < RT_COL_BLOCK ? c1 - b0 : RT_COL_BLOCK;
        for (int64_t c = 0; c < w; c++)
            s[c] = 0;
        for (int64_t r = 0; r < j->rows; r++) {
            const float *dy = j->dy + r * j->ld + b0;
            if (j->stats) {
                const float *x = j->x + r * j->dim + b0;
                double mean = j->stats[2 * r], rstd = j->stats[2 * r + 1];
                for (int64_t c = 0; c < w; c++)
                    s[c] += (double)dy[c] * ((x[c] - mean) * rstd);
            } else {
                for (int64_t c = 0; c < w; c++)
                    s[c] += dy[c];
            }
        }
        for (int64_t c = 0; c < w; c++)
            j->out[b0 + c] = (float)(j->accumulate ? j->out[b0 + c] + s[c]
                                                   : s[c]);
    }
}


static void col_sum_range(void *arg, int64_t c0, int64_t c1)
{
    col_sum_body(arg, c0, c1);
}


#if RT_X86_DISPATCH
RT_TARGET_AVX512 static void col_sum_avx512(void *arg, int64_t c0,
                                            int64_t c1)
{
    col_sum_body(arg, c0, c1);
}
#endif


/* The column sums' kernel for ctx's ISA. */
static rt_task_fn col_sum_fn(const rt_ctx *ctx)
{
#if RT_X86_DISPATCH
    if (rt_ctx_isa(ctx) == DSC_ISA_AVX512)
        return col_sum_avx512;
#endif
    (void)ctx;
    return col_sum_range;
}


void rt_bias_grad(rt_ctx *ctx, float *db, const float *dy, int64_t lddy,
                  int64_t rows, int64_t n, int accumulate)
{
    col_job j = { .out = db, .dy = dy, .ld = lddy, .rows = rows, .dim = n,
                  .accumulate = accumulate };
    rt_parallel(ctx, rt_threads_for(ctx, rows * n, RT_TRAIN_GRAIN), n,
                col_sum_fn(ctx), &j);
}


/* rt_dropout_relu_grad and the column sums of its result (the bias's
 * gradient) in one pass: columns [c0, c1), every row in row order, each
 * sum in double as col_sum_body adds it (the same bits). */
typedef struct drg_bias_job {
    float *dx, *db;
    const float *dy, *y;
    int64_t rows, cols;
    float scale;
} drg_bias_job;

RT_INLINE void drg_bias_body(const drg_bias_job *j, int64_t c0, int64_t c1)
{
    double s[RT_COL_BLOCK];
    for (int64_t b0 = c0; b0 < c1; b0 += RT_COL_BLOCK) {
        int64_t w = c1 - b0 < RT_COL_BLOCK ? c1 - b0 : RT_COL_BLOCK;
        for (int64_t c = 0; c < w; c++)
            s[c] = 0;
        for (int64_t r = 0; r < j->rows; r++) {
            const float *dy = j->dy + r * j->cols + b0;  /* dx may be dy */
            const float *y = j->y + r * j->cols + b0;
            float *dx = j->dx + r * j->cols + b0;
            for (int64_t c = 0; c < w; c++) {
                float d = rt_select(y[c] > 0.0f, dy[c] * j->scale, 0.0f);
                dx[c] = d;
                s[c] += d;
            }
        }
        for (int64_t c = 0; c < w; c++)
            j->db[b0 + c] = (float)s[c];
    }
}


static void drg_bias_base(void *arg, int64_t c0, int64_t c1)
{
    drg_bias_body(arg, c0, c1);
}


#if RT_X86_DISPATCH
RT_TARGET_AVX512 static void drg_bias_avx512(void *arg, int64_t c0,
                                             int64_t c1)
{
    drg_bias_body(arg, c0, c1);
}
#endif


void rt_dropout_relu_grad_bias(rt_ctx *ctx, float *dx, const float *dy,
                               const float *y, int64_t rows, int64_t cols,
                               float p, float *db)
{
    drg_bias_job j = { .dx = dx, .db = db, .dy = dy, .y = y, .rows = rows,
                       .cols = cols, .scale = 1.0f / (1.0f - p) };
    rt_task_fn fn = drg_bias_base;
#if RT_X86_DISPATCH
    if (rt_ctx_isa(ctx) == DSC_ISA_AVX512)
        fn = drg_bias_avx512;
#endif
    rt_parallel(ctx, rt_threads_for(ctx, rows * cols, RT_TRAIN_GRAIN), cols,
                fn, &j);
}


int rt_layernorm_grad_gamma(rt_ctx *ctx, float *dgamma, const float *dy,
                            const float *x, int64_t rows, int64_t dim,
                            float eps, int accumulate)
{
    double *stats = malloc((size_t)(2 * rows + 2) * sizeof *stats);
    if (!stats)
        return DSC_ENOMEM;
    for (int64_t r = 0; r < rows; r++)
        row_stats(x + r * dim, dim, eps, &stats[2 * r], &stats[2 * r + 1]);
    col_job j = { .out = dgamma, .dy = dy, .x = x, .ld = dim, .rows = rows,
                  .dim = dim, .stats = stats, .accumulate = accumulate };
    rt_parallel(ctx, rt_threads_for(ctx, rows * dim, RT_TRAIN_GRAIN), dim,
                col_sum_fn(ctx), &j);
    free(stats);
    return DSC_OK;
}


/* loss_r = logsumexp(z_r) - z_r[t_r], in double. */
RT_INLINE void cross_entropy_body(const row_job *j, int64_t r0, int64_t r1,
                                  float *e)
{
    for (int64_t r = r0; r < r1; r++) {
        const float *z = j->x + r * j->dim;
        const int64_t dim = j->dim;
        /* The max in sixteen lanes (the same value in any order), the
         * sum in eight partial doubles (sum8_total's fixed order). */
        float mx = z[0], m16[16];
        for (int l = 0; l < 16; l++)
            m16[l] = z[0];
        int64_t i = 0;
        for (; i + 16 <= dim; i += 16)
            for (int l = 0; l < 16; l++)
                m16[l] = z[i + l] > m16[l] ? z[i + l] : m16[l];
        for (; i < dim; i++)
            mx = z[i] > mx ? z[i] : mx;
        for (int l = 0; l < 16; l++)
            mx = m16[l] > mx ? m16[l] : mx;
        /* exp in float (rt_exp, vectorized), the sum in double. */
        for (i = 0; i < dim; i++)
            e[i] = rt_exp(z[i] - mx);
        double s8[8] = {0};
        for (i = 0; i + 8 <= dim; i += 8)
            for (int l = 0; l < 8; l++)
                s8[l] += e[i + l];
        for (; i < dim; i++)
            s8[i % 8] += e[i];
        double sum = sum8_total(s8);
        if (j->out) {  /* the gradient of the mean */
            float *dz = j->out + r * j->dim;
            float inv = (float)(1.0 / sum), scale = (float)(1.0 / j->rows);
            for (i = 0; i < dim; i++)
                dz[i] = e[i] * inv * scale;
            dz[j->targets[r]] -= scale;
        } else {
            j->row_loss[r] = mx + log(sum) - z[j->targets[r]];
        }
    }
}


static void cross_entropy_base(void *arg, int64_t r0, int64_t r1, float *e)
{
    cross_entropy_body(arg, r0, r1, e);
}


#if RT_X86_DISPATCH
RT_TARGET_AVX2 static void cross_entropy_avx2(void *arg, int64_t r0,
                                              int64_t r1, float *e)
{
    cross_entropy_body(arg, r0, r1, e);
}


RT_TARGET_AVX512 static void cross_entropy_avx512(void *arg, int64_t r0,
                                                  int64_t r1, float *e)
{
    cross_entropy_body(arg, r0, r1, e);
}
#endif


static void cross_entropy_rows(void *arg, int64_t r0, int64_t r1)
{
    const row_job *j = arg;
    float *e = malloc((size_t)(j->dim + 1) * sizeof *e);
    if (!e) {
        atomic_store(j->failed, 1);
        return;
    }
#if RT_X86_DISPATCH
    if (j->avx512)
        cross_entropy_avx512(arg, r0, r1, e);
    else if (rt_cpu_has_avx2())
        cross_entropy_avx2(arg, r0, r1, e);
    else
#endif
        cross_entropy_base(arg, r0, r1, e);
    free(e);
}


static int check_targets(const int32_t *t, int64_t rows, int64_t classes)
{
    for (int64_t r = 0; r < rows; r++)
        if (t[r] < 0 || t[r] >= classes)
            return DSC_EBADTOKEN;
    return DSC_OK;
}


int rt_cross_entropy(rt_ctx *ctx, float *loss, const float *logits,
                     const int32_t *targets, int64_t rows, int64_t classes)
{
    if (check_targets(targets, rows, classes))
        return DSC_EBADTOKEN;
    double *row_loss = malloc((size_t)(rows + 1) * sizeof *row_loss);
    if (!row_loss)
        return DSC_ENOMEM;
    atomic_int failed = 0;
    row_job j = { .x = logits, .targets = targets, .rows = rows,
                  .dim = classes, .row_loss = row_loss, .failed = &failed,
                  .avx512 = rt_ctx_isa(ctx) == DSC_ISA_AVX512 };
    rt_parallel(ctx, rt_threads_for(ctx, rows * classes, RT_TRAIN_GRAIN / 8),
                rows, cross_entropy_rows, &j);
    if (atomic_load(&failed)) {
        free(row_loss);
        return DSC_ENOMEM;
    }
    double s = 0;
    for (int64_t r = 0; r < rows; r++)
        s += row_loss[r];
    free(row_loss);
    *loss = (float)(s / (double)rows);
    return DSC_OK;
}


int rt_cross_entropy_grad(rt_ctx *ctx, float *dlogits, const float *logits,
                          const int32_t *targets, int64_t rows,
                          int64_t classes)
{
    if (check_targets(targets, rows, classes))
        return DSC_EBADTOKEN;
    atomic_int failed = 0;
    row_job j = { .out = dlogits, .x = logits, .targets = targets,
                  .rows = rows, .dim = classes, .failed = &failed,
                  .avx512 = rt_ctx_isa(ctx) == DSC_ISA_AVX512 };
    rt_parallel(ctx, rt_threads_for(ctx, rows * classes, RT_TRAIN_GRAIN / 8),
                rows, cross_entropy_rows, &j);
    return atomic_load(&failed) ? DSC_ENOMEM : DSC_OK;
}


#if RT_X86_DISPATCH
/* d[i * ldd + jj] = s[jj * S + i] for i, jj < 8. */
RT_TARGET_AVX2 static void transpose8_avx2(float *d, int64_t ldd,
                                           const float *sk, int64_t S)
{
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(sk + i * S);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(d + i * ldd,
                         _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
        _mm256_storeu_ps(d + (i + 4) * ldd,
                         _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
    }
}
#endif


/* ---- tiled GEMMs on libxsmm --------------------------------------------- */

#ifdef DSC_HAVE_LIBXSMM
/* C (M x N) = A (M x K) op(B) (+ C), column-major as libxsmm sees it, op(B)
 * = B or Bᵀ, on operands packed in blocks so that each step of a tile
 * reads contiguous memory (a row stride of 1 or 8 KB, as dy and x have,
 * maps a block's rows onto a few cache sets and thrashes L1).  A task is
 * one tm x TILE_N tile of C, computed by one thread over k in order,
 * TILE_K at a time: the result does not depend on the thread count.
 * Block (i, kk) of A starts at a + i * a_mstride + kk * a_kstride, block
 * (j, kk) of B at b + j * b_nstride + kk * b_kstride, tile (i, j) of C at
 * c + i * c_mstride + j * TILE_N * ldc, so C may be a packed weight's
 * panels.  A C whose row stride is not tm is computed in an L1 buffer and
 * copied out. */
#define TILE_N 64
#define TILE_K 64

typedef struct tgemm {
    const float *a, *b;
    float *c;
    int64_t m, n, k, lda, ldb, ldc;
    int64_t a_mstride, a_kstride, b_nstride, b_kstride, c_mstride;
    int64_t tm;  /* the tile's m: 64, or a packed weight's panel width */
    int trans_b, accumulate;
    int c_trans;  /* C is stored transposed: tile (i, j) at c + i * tm * ldc
                     + j * TILE_N, element (r, s) at [r * ldc + s] */
    int avx2;
    /* [short m][short n][short k][beta 1] */
    libxsmm_smmfunction kern[2][2][2][2];
    /* [short m][short n] batch-reduce kernels over the full k blocks (C
     * stays in registers across them), the short k block then through
     * kern[..][1][1]; NULL where libxsmm has none (the k loop instead). */
    libxsmm_smmfunction_reducebatch_strd brk[2][2];
} tgemm;


static int tgemm_direct(const tgemm *g)
{
    return !g->c_trans && g->ldc == g->tm;
}


/* Dispatch every kernel the tiles need (on the calling thread, before
 * the workers run).  Returns 0 if libxsmm cannot generate one. */
static int tgemm_prepare(tgemm *g)
{
    if (g->tm > RT_PANEL_MAX || g->lda > INT_MAX || g->ldb > INT_MAX ||
        g->ldc > INT_MAX)
        return 0;
    memset(g->kern, 0, sizeof g->kern);
    const float alpha = 1.0f, beta0 = 0.0f, beta1 = 1.0f;
    const int flags = g->trans_b ? LIBXSMM_GEMM_FLAG_TRANS_B
                                 : LIBXSMM_GEMM_FLAG_NONE;
    const int prefetch = LIBXSMM_GEMM_PREFETCH_NONE;
    const libxsmm_blasint lda = (libxsmm_blasint)g->lda;
    const libxsmm_blasint ldb = (libxsmm_blasint)g->ldb;
    const libxsmm_blasint ldc = (libxsmm_blasint)(tgemm_direct(g) ? g->ldc
                                                                  : g->tm);
    for (int sm = 0; sm < 2; sm++)
        for (int sn = 0; sn < 2; sn++)
            for (int sk = 0; sk < 2; sk++)
                for (int b1 = 0; b1 < 2; b1++) {
                    int64_t m = sm ? g->m % g->tm : g->tm;
                    int64_t n = sn ? g->n % TILE_N : TILE_N;
                    int64_t k = sk ? g->k % TILE_K : TILE_K;
                    if (!m || !n || !k || (!sm && g->m < g->tm) ||
                        (!sn && g->n < TILE_N) || (!sk && g->k < TILE_K))
                        continue;
                    g->kern[sm][sn][sk][b1] = libxsmm_smmdispatch(
                        (libxsmm_blasint)m, (libxsmm_blasint)n,
                        (libxsmm_blasint)k, &lda, &ldb, &ldc, &alpha,
                        b1 ? &beta1 : &beta0, &flags, &prefetch);
                    if (!g->kern[sm][sn][sk][b1])
                        return 0;
                }
    memset(g->brk, 0, sizeof g->brk);
    /* Not with trans_b: measured no faster there (tools/bench_train_gemm,
     * grad_w), 4-6% faster for grad_x. */
    const int direct_acc = tgemm_direct(g) && g->accumulate;
    for (int sm = 0; sm < 2 && !g->trans_b; sm++)
        for (int sn = 0; sn < 2; sn++) {
            int64_t m = sm ? g->m % g->tm : g->tm;
            int64_t n = sn ? g->n % TILE_N : TILE_N;
            if (!m || !n || (!sm && g->m < g->tm) || (!sn && g->n < TILE_N) ||
                g->k < TILE_K || g->a_kstride > INT_MAX / 4 ||
                g->b_kstride > INT_MAX / 4)
                continue;
            g->brk[sm][sn] = libxsmm_smmdispatch_reducebatch_strd(
                (libxsmm_blasint)m, (libxsmm_blasint)n, TILE_K,
                (libxsmm_blasint)(g->a_kstride * sizeof(float)),
                (libxsmm_blasint)(g->b_kstride * sizeof(float)), &lda, &ldb,
                &ldc, &alpha, direct_acc ? &beta1 : &beta0, &flags,
                &prefetch);
        }
    return 1;
}


/* Tiles [t0, t1), m block major (consecutive tiles share an A block). */
static void tgemm_tiles(void *arg, int64_t t0, int64_t t1)
{
    const tgemm *g = arg;
    _Alignas(64) float buf[RT_PANEL_MAX * TILE_N];
    const int64_t nn = (g->n + TILE_N - 1) / TILE_N;
    const int direct = tgemm_direct(g);
    for (int64_t t = t0; t < t1; t++) {
        int64_t mi = t / nn, nj = t % nn;
        int64_t mw = g->m - mi * g->tm < g->tm ? g->m - mi * g->tm : g->tm;
        int64_t nw = g->n - nj * TILE_N < TILE_N ? g->n - nj * TILE_N
                                                 : TILE_N;
        float *c = g->c_trans ? g->c + mi * g->tm * g->ldc + nj * TILE_N
                              : g->c + mi * g->c_mstride + nj * TILE_N * g->ldc;
        float *cc = direct ? c : buf;
        int64_t kk = 0;
        libxsmm_smmfunction_reducebatch_strd br =
            g->brk[mw < g->tm][nw < TILE_N];
        if (br) {  /* the full k blocks in one call, then the rest */
            unsigned long long nb = (unsigned long long)(g->k / TILE_K);
            br(g->a + mi * g->a_mstride, g->b + nj * g->b_nstride, cc, &nb);
            kk = g->k / TILE_K;
        }
        for (; kk * TILE_K < g->k; kk++) {
            int sk = g->k - kk * TILE_K < TILE_K;
            int b1 = kk > 0 || (direct && g->accumulate);
            g->kern[mw < g->tm][nw < TILE_N][sk][b1](
                g->a + mi * g->a_mstride + kk * g->a_kstride,
                g->b + nj * g->b_nstride + kk * g->b_kstride, cc);
        }
        if (g->c_trans && !g->accumulate) {
            for (int64_t i0 = 0; i0 < mw; i0 += 8)
                for (int64_t j0 = 0; j0 < nw; j0 += 8) {
#if RT_X86_DISPATCH
                    if (g->avx2 && mw - i0 >= 8 && nw - j0 >= 8) {
                        transpose8_avx2(c + i0 * g->ldc + j0, g->ldc,
                                        buf + j0 * g->tm + i0, g->tm);
                        continue;
                    }
#endif
                    for (int64_t i = i0; i < i0 + 8 && i < mw; i++)
                        for (int64_t j = j0; j < j0 + 8 && j < nw; j++)
                            c[i * g->ldc + j] = buf[j * g->tm + i];
                }
        } else if (g->c_trans) {
            for (int64_t i = 0; i < mw; i++)
                for (int64_t j = 0; j < nw; j++)
                    c[i * g->ldc + j] += buf[j * g->tm + i];
        } else if (!direct)
            for (int64_t j = 0; j < nw; j++)
                for (int64_t i = 0; i < mw; i++)
                    c[j * g->ldc + i] = g->accumulate
                        ? c[j * g->ldc + i] + buf[j * g->tm + i]
                        : buf[j * g->tm + i];
    }
}


/* Runs g; returns 0 (nothing written) when it cannot. */
static int tgemm_run(rt_ctx *ctx, tgemm *g)
{
    if (rt_ctx_isa(ctx) == DSC_ISA_GENERIC || !tgemm_prepare(g))
        return 0;
    g->avx2 = rt_cpu_has_avx2();
    int64_t tiles = (g->m + g->tm - 1) / g->tm *
                    ((g->n + TILE_N - 1) / TILE_N);
    rt_parallel(ctx, rt_threads_for(ctx, g->m * g->n * g->k, 1 << 17),
                tiles, tgemm_tiles, g);
    return 1;
}
#endif


/* ---- linear backward: repack, then rt_linear ------------------------- */

static int64_t panels_of(int64_t n, int64_t P)
{
    return (n + P - 1) / P;
}


static int64_t panels(int64_t n)
{
    return panels_of(n, RT_TRAIN_PANEL);
}


int64_t rt_linear_grad_scratch_floats(int64_t rows, int64_t n_out,
                                      int64_t n_in)
{
    int64_t for_x = round_up(RT_HDR + panels(n_in) * RT_TRAIN_PANEL * n_out,
                             16) +
                    panels(n_out) * RT_TRAIN_PANEL * rows;
    /* The direct path: dyᵀ in 64 x 64 blocks. */
    int64_t for_x2 = panels(rows) * panels(n_out) * RT_TRAIN_PANEL *
                     RT_TRAIN_PANEL;
    for_x = for_x > for_x2 ? for_x : for_x2;
    int64_t for_w = round_up(n_in * rows, 16) +
                    round_up(RT_HDR + panels(n_out) * RT_TRAIN_PANEL * rows,
                             16) +
                    round_up(n_in * n_out, 16);
    /* The libxsmm path of rt_linear_grad_w: dy and x in column blocks. */
    int64_t for_w2 = round_up(panels(n_out) * RT_TRAIN_PANEL * rows, 16) +
                     panels(n_in) * RT_TRAIN_PANEL * rows;
    for_w = for_w > for_w2 ? for_w : for_w2;
    return for_x > for_w ? for_x : for_w;
}


typedef struct pack_job {
    float *dst;         /* panels, past any header */
    const float *src;   /* the same */
    int64_t a, b, ld;
    int64_t src_panel;  /* the panel width src is packed in */
    int64_t panel;      /* the panel width dst is packed in */
    int accumulate;
} pack_job;


/* Wᵀ packed from W packed (panel width S): dst panel p (columns k of W),
 * row n holds W[n][p*P + j] = src[((n / S) * K + k) * S + n % S].  Moved
 * in 8 x 8 blocks (8 k rows of 8 contiguous n in, 8 n rows of 8 k out), so
 * both sides go a cache line at a time; blocks cut by N or K go element
 * by element.  Task = one destination panel.  a = N (n_out), b = K
 * (n_in). */
RT_INLINE void pack_wt_block(float *d, const float *s, int64_t S,
                             int64_t nw, int64_t kw)
{
    for (int64_t i = 0; i < nw; i++)
        for (int64_t jj = 0; jj < 8; jj++)
            d[i * RT_TRAIN_PANEL + jj] = jj < kw ? s[jj * S + i] : 0.0f;
}



RT_INLINE void pack_wt_body(const pack_job *j, int64_t p0, int64_t p1,
                            int avx2)
{
    const int64_t N = j->a, K = j->b, P = RT_TRAIN_PANEL, S = j->src_panel;
    (void)avx2;
    for (int64_t p = p0; p < p1; p++) {
        float *panel = j->dst + p * N * P;
        for (int64_t n0 = 0; n0 < N; n0 += 8) {
            /* 8 rows of W, within one source panel (S is 32 or 64). */
            int64_t nw = N - n0 < 8 ? N - n0 : 8;
            const float *s = j->src + (n0 / S) * K * S + n0 % S;
            for (int64_t jb = 0; jb < P; jb += 8) {
                int64_t k0 = p * P + jb;
                int64_t kw = K - k0 < 8 ? (K - k0 > 0 ? K - k0 : 0) : 8;
                float *d = panel + n0 * P + jb;
                const float *sk = s + k0 * S;
#if RT_X86_DISPATCH
                if (avx2 && nw == 8 && kw == 8) {
                    transpose8_avx2(d, P, sk, S);
                    continue;
                }
#endif
                pack_wt_block(d, sk, S, nw, kw);
            }
        }
    }
}


static void pack_wt_range(void *arg, int64_t p0, int64_t p1)
{
    pack_wt_body(arg, p0, p1, 0);
}


#if RT_X86_DISPATCH
static void pack_wt_avx2(void *arg, int64_t p0, int64_t p1)
{
    pack_wt_body(arg, p0, p1, 1);
}
#endif


/* Columns of a row-major matrix in blocks of `panel`, zero-padded: block
 * p holds rows 0 .. a-1, each the panel's columns (dst + (p * a + m) *
 * panel).  a = rows, b = columns, ld = src's row stride.  Task = one
 * block. */
static void pack_cols_range(void *arg, int64_t p0, int64_t p1)
{
    const pack_job *j = arg;
    const int64_t P = j->panel;
    for (int64_t p = p0; p < p1; p++)
        for (int64_t m = 0; m < j->a; m++) {
            float *d = j->dst + (p * j->a + m) * P;
            const float *s = j->src + m * j->ld + p * P;
            int64_t w = j->b - p * P < P ? j->b - p * P : P;
            memcpy(d, s, (size_t)w * sizeof *d);
            memset(d + w, 0, (size_t)(P - w) * sizeof *d);
        }
}


#ifdef DSC_HAVE_LIBXSMM  /* (only rt_linear_grad_x's libxsmm path) */
/* dyᵀ in 64 x 64 blocks, zero-padded: block (m block i, n block c) at dst
 * + (i * ceil(b / 64) + c) * 64 * 64 holds [n][m] (column-major 64 rows of
 * dy by 64 of its columns: libxsmm's A with lda = 64).  a = rows, b =
 * n_out, ld = dy's row stride.  Task = one m block. */
RT_INLINE void pack_dyt_body(const pack_job *j, int64_t i0, int64_t i1,
                             int avx2)
{
    const int64_t T = RT_TRAIN_PANEL, nk = panels(j->b);
    (void)avx2;
    for (int64_t i = i0; i < i1; i++)
        for (int64_t c = 0; c < nk; c++) {
            float *blk = j->dst + (i * nk + c) * T * T;
            for (int64_t n0 = 0; n0 < T; n0 += 8)
                for (int64_t m0 = 0; m0 < T; m0 += 8) {
                    int64_t m = i * T + m0, n = c * T + n0;
                    const float *s = j->src + m * j->ld + n;
#if RT_X86_DISPATCH
                    if (avx2 && m + 8 <= j->a && n + 8 <= j->b) {
                        transpose8_avx2(blk + n0 * T + m0, T, s, j->ld);
                        continue;
                    }
#endif
                    for (int64_t nn = 0; nn < 8; nn++)
                        for (int64_t mm = 0; mm < 8; mm++)
                            blk[(n0 + nn) * T + m0 + mm] =
                                m + mm < j->a && n + nn < j->b
                                    ? s[mm * j->ld + nn] : 0.0f;
                }
        }
}


static void pack_dyt_range(void *arg, int64_t i0, int64_t i1)
{
    pack_dyt_body(arg, i0, i1, rt_cpu_has_avx2());
}
#endif


void rt_linear_grad_x(rt_ctx *ctx, float *dx, const float *dy, int64_t lddy,
                      const float *packed_w, int64_t rows, int64_t n_out,
                      int64_t n_in, float *scratch)
{
    /* A weight whose header names no float32 layout: NaN, as rt_linear
     * does for one that names none (training keeps float32 weights). */
    const int layout = rt_packed_layout(packed_w, n_out, n_in);
    const int64_t S = DSC_LAYOUT_FORMAT_OF(layout) == DSC_WEIGHTS_F32
                          ? DSC_LAYOUT_PANEL_OF(layout) : 0;
    rt_linear_pack_header(scratch, RT_TRAIN_PANEL, n_in, n_out);
    pack_job j = { .dst = scratch + RT_HDR, .src = packed_w + RT_HDR,
                   .a = n_out, .b = n_in, .src_panel = S ? S : RT_TRAIN_PANEL };
    if (!S) {
        for (int64_t i = 0; i < rows; i++)
            for (int64_t k = 0; k < n_in; k++)
                dx[i * n_in + k] = NAN;
        return;
    }
#ifdef DSC_HAVE_LIBXSMM
    /* A weight in 64-wide panels: dx = dy W (column-major dxᵀ = dyᵀ... as
     * libxsmm sees it, C = dx transposed): A = dyᵀ in 64 x 64 blocks (dy
     * was just written: it is in cache), B = W's panels as they are (panel
     * p is W's rows p*64.. as a column-major 64 x n_in matrix: one k block
     * of B), C = dx through an L1 buffer transposed on the way out.  No
     * pass over W but the GEMM's own. */
    if (S == RT_TRAIN_PANEL && rt_ctx_isa(ctx) != DSC_ISA_GENERIC) {
        const int64_t T = RT_TRAIN_PANEL;
        pack_job d = { .dst = scratch, .src = dy, .a = rows, .b = n_out,
                       .ld = lddy };
        rt_parallel(ctx, rt_threads_for(ctx, rows * n_out, RT_TRAIN_GRAIN),
                    panels(rows), pack_dyt_range, &d);
        tgemm g = { .a = scratch, .b = packed_w + RT_HDR, .c = dx,
                    .m = rows, .n = n_in, .k = n_out, .lda = T, .ldb = T,
                    .ldc = n_in, .a_mstride = panels(n_out) * T * T,
                    .a_kstride = T * T, .b_nstride = TILE_N * T,
                    .b_kstride = T * n_in, .tm = T, .c_trans = 1 };
        if (tgemm_run(ctx, &g))
            return;
    }
#endif
    rt_task_fn pack_wt = pack_wt_range;
#if RT_X86_DISPATCH
    if (rt_cpu_has_avx2())
        pack_wt = pack_wt_avx2;
#endif
    rt_parallel(ctx, rt_threads_for(ctx, n_out * n_in, RT_TRAIN_GRAIN),
                panels(n_in), pack_wt, &j);
#ifdef DSC_HAVE_LIBXSMM
    /* dxᵀ = Wᵀ dyᵀ (column-major): A = the panels of Wᵀ just packed, B =
     * dy in blocks of 64 columns (n), C = dx through an L1 buffer. */
    if (rt_ctx_isa(ctx) != DSC_ISA_GENERIC) {
        float *dyp = scratch + round_up(RT_HDR + panels(n_in) *
                                        RT_TRAIN_PANEL * n_out, 16);
        pack_job b = { .dst = dyp, .src = dy, .a = rows, .b = n_out,
                       .ld = lddy, .panel = RT_TRAIN_PANEL };
        rt_parallel(ctx, rt_threads_for(ctx, rows * n_out, RT_TRAIN_GRAIN),
                    panels(n_out), pack_cols_range, &b);
        tgemm g = { .a = scratch + RT_HDR, .b = dyp, .c = dx, .m = n_in,
                    .n = rows, .k = n_out, .lda = RT_TRAIN_PANEL,
                    .ldb = RT_TRAIN_PANEL, .ldc = n_in,
                    .a_mstride = RT_TRAIN_PANEL * n_out,
                    .a_kstride = TILE_K * RT_TRAIN_PANEL,
                    .b_nstride = TILE_N * RT_TRAIN_PANEL,
                    .b_kstride = rows * RT_TRAIN_PANEL,
                    .c_mstride = RT_TRAIN_PANEL, .tm = RT_TRAIN_PANEL };
        if (tgemm_run(ctx, &g))
            return;
    }
#endif
    /* dx[m, k] = sum_n dy[m, n] W[n, k] = dy · (Wᵀ)ᵀ. */
    rt_linear(ctx, dx, n_in, dy, lddy, scratch, NULL, rows, n_in, n_out,
              RT_ACT_NONE, NULL);
}


/* xt[k][m] = x[m][k]: a = rows, b = n_in; task = a block of 64 k, done
 * in 16 x 16 tiles so both sides stay in cache. */
static void transpose_range(void *arg, int64_t b0, int64_t b1)
{
    const pack_job *j = arg;
    int64_t k1 = b1 * 64 < j->b ? b1 * 64 : j->b;
    for (int64_t m0 = 0; m0 < j->a; m0 += 16)
        for (int64_t kk = b0 * 64; kk < k1; kk += 16) {
            int64_t me = m0 + 16 < j->a ? m0 + 16 : j->a;
            int64_t ke = kk + 16 < k1 ? kk + 16 : k1;
            for (int64_t k = kk; k < ke; k++)
                for (int64_t m = m0; m < me; m++)
                    j->dst[k * j->a + m] = j->src[m * j->ld + k];
        }
}


/* The blob's packed dW from dWᵀ [n_in, n_out] (src): panel p, row k holds
 * dW[p*P + j][k] = src[k][p*P + j].  a = n_out, b = n_in. */
static void pack_dw_range(void *arg, int64_t p0, int64_t p1)
{
    const pack_job *j = arg;
    const int64_t P = j->panel;
    for (int64_t p = p0; p < p1; p++) {
        int64_t w = j->a - p * P < P ? j->a - p * P : P;
        for (int64_t k = 0; k < j->b; k++) {
            float *d = j->dst + (p * j->b + k) * P;
            const float *s = j->src + k * j->a + p * P;
            for (int64_t c = 0; c < w; c++)
                d[c] = j->accumulate ? d[c] + s[c] : s[c];
        }
    }
}


void rt_linear_grad_w(rt_ctx *ctx, float *packed_dw, int layout,
                      const float *dy, int64_t lddy, const float *x,
                      int64_t ldx, int64_t rows, int64_t n_out, int64_t n_in,
                      int accumulate, float *scratch)
{
    const int64_t P = rt_layout_valid(layout) &&
                      DSC_LAYOUT_FORMAT_OF(layout) == DSC_WEIGHTS_F32
                          ? layout : RT_TRAIN_PANEL;
    float *xt = scratch;
    float *dyt = xt + round_up(n_in * rows, 16);
    float *dwt = dyt + round_up(RT_HDR + panels(n_out) * RT_TRAIN_PANEL * rows,
                                16);
#ifdef DSC_HAVE_LIBXSMM
    /* Panel p of dW (P x n_in, column-major) = dy[:, panel p]ᵀ x: A = dy
     * in blocks of P columns (lda = P), B = x in blocks of 64 columns,
     * transposed (ldb = 64), C = the panel itself; rows of a short last
     * panel past n_out are left alone, as below. */
    if (rt_ctx_isa(ctx) != DSC_ISA_GENERIC && P <= RT_TRAIN_PANEL) {
        float *dyp = scratch;
        float *xp = scratch + round_up(panels_of(n_out, P) * P * rows, 16);
        int tp = rt_threads_for(ctx, rows * (n_in + n_out), RT_TRAIN_GRAIN);
        pack_job a = { .dst = dyp, .src = dy, .a = rows, .b = n_out,
                       .ld = lddy, .panel = P };
        rt_parallel(ctx, tp, panels_of(n_out, P), pack_cols_range, &a);
        pack_job b = { .dst = xp, .src = x, .a = rows, .b = n_in, .ld = ldx,
                       .panel = RT_TRAIN_PANEL };
        rt_parallel(ctx, tp, panels(n_in), pack_cols_range, &b);
        tgemm g = { .a = dyp, .b = xp, .c = packed_dw + RT_HDR, .m = n_out,
                    .n = n_in, .k = rows, .lda = P, .ldb = RT_TRAIN_PANEL,
                    .ldc = P, .a_mstride = P * rows, .a_kstride = TILE_K * P,
                    .b_nstride = rows * RT_TRAIN_PANEL,
                    .b_kstride = TILE_K * RT_TRAIN_PANEL,
                    .c_mstride = P * n_in, .tm = P, .trans_b = 1,
                    .accumulate = accumulate };
        rt_linear_pack_header(packed_dw, P, n_out, n_in);
        if (tgemm_run(ctx, &g))
            return;
    }
#endif
    int t = rt_threads_for(ctx, rows * (n_in + n_out), RT_TRAIN_GRAIN);
    pack_job a = { .dst = xt, .src = x, .a = rows, .b = n_in, .ld = ldx };
    rt_parallel(ctx, t, (n_in + 63) / 64, transpose_range, &a);
    rt_linear_pack_header(dyt, RT_TRAIN_PANEL, n_out, rows);
    pack_job b = { .dst = dyt + RT_HDR, .src = dy, .a = rows, .b = n_out,
                   .ld = lddy, .panel = RT_TRAIN_PANEL };
    rt_parallel(ctx, t, panels(n_out), pack_cols_range, &b);
    /* dwt[k][n] = sum_m xt[k][m] dy[m][n]. */
    rt_linear(ctx, dwt, n_out, xt, rows, dyt, NULL, n_in, n_out, rows,
              RT_ACT_NONE, NULL);
    rt_linear_pack_header(packed_dw, P, n_out, n_in);
    pack_job c = { .dst = packed_dw + RT_HDR, .src = dwt, .a = n_out,
                   .b = n_in, .panel = P, .accumulate = accumulate };
    rt_parallel(ctx, rt_threads_for(ctx, n_in * n_out, RT_TRAIN_GRAIN),
                panels_of(n_out, P), pack_dw_range, &c);
}


/* ---- embedding ---------------------------------------------------------- */

typedef struct embed_grad_job {
    float *dtable;
    const float *dy;
    const int32_t *ids;
    int64_t n, vocab, dim;
    int accumulate;
} embed_grad_job;


/* Columns [c0, c1) of every row, ids in order: each table element is one
 * thread's, summed in one order. */
static void embed_grad_range(void *arg, int64_t c0, int64_t c1)
{
    const embed_grad_job *j = arg;
    if (!j->accumulate)
        for (int64_t v = 0; v < j->vocab; v++)
            memset(j->dtable + v * j->dim + c0, 0,
                   (size_t)(c1 - c0) * sizeof(float));
    for (int64_t i = 0; i < j->n; i++) {
        float *d = j->dtable + (int64_t)j->ids[i] * j->dim;
        const float *s = j->dy + i * j->dim;
        for (int64_t c = c0; c < c1; c++)
            d[c] += s[c];
    }
}


int rt_embedding_grad(rt_ctx *ctx, float *dtable, const float *dy,
                      const int32_t *ids, int64_t n, int64_t vocab,
                      int64_t dim, int accumulate)
{
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return DSC_EBADTOKEN;
    embed_grad_job j = { dtable, dy, ids, n, vocab, dim, accumulate };
    rt_parallel(ctx, rt_threads_for(ctx, (n + vocab) * dim, RT_TRAIN_GRAIN),
                dim, embed_grad_range, &j);
    return DSC_OK;
}


/* ---- attention ------------------------------------------------------------ */

typedef struct attn_job {
    const rt_attention_shape *s;
    float *out;                   /* forward: the output */
    float *dq, *dk, *dv;          /* backward: with row stride ldd */
    int64_t ldd;
    const float *dout, *q, *k, *v;
    float p;
    uint64_t key;
    atomic_int *failed;  /* set by a worker whose scratch malloc failed */
} attn_job;


/* P = softmax(scale q kᵀ) for (b, h) into pr (seq x seq), and the dropped
 * and scaled Pd into pd. */
/* out[t] = the mask's factor of element idx0 + t, t < n: 0 (dropped) with
 * probability p, else 1 / (1 - p), as torch's dropout scales; in a loop
 * that vectorizes. */
RT_INLINE void keep_row(float *out, uint64_t key, int64_t idx0, int64_t n,
                        float p)
{
    const float scale = 1.0f / (1.0f - p);
    const uint32_t thr = drop_threshold(p);
    for (int64_t t = 0; t < n; t++)
        out[t] = rt_select(mask_bits(key, idx0 + t) < thr, 0.0f, scale);
}


RT_INLINE void attn_probs(const attn_job *j, int64_t b, int64_t h, float *pr,
                       float *pd)
{
    const rt_attention_shape *s = j->s;
    const int64_t S = s->seq;
    for (int64_t i = 0; i < S; i++) {
        const float *qi = j->q + (i * s->seq_step + b * s->batch_step) *
                          s->ldq + h * s->head_dim_qk;
        int64_t last = s->causal ? i + 1 : S;
        float mx = -INFINITY;
        for (int64_t t = 0; t < last; t++) {
            const float *kt = j->k + (t * s->seq_step + b * s->batch_step) *
                              s->ldk + h * s->head_dim_qk;
            pr[i * S + t] = rt_dot8(qi, kt, s->head_dim_qk) * s->scale;
            mx = pr[i * S + t] > mx ? pr[i * S + t] : mx;
        }
        double sum = 0;
        for (int64_t t = 0; t < last; t++) {
            pr[i * S + t] = expf(pr[i * S + t] - mx);
            sum += pr[i * S + t];
        }
        for (int64_t t = 0; t < S; t++) {
            pr[i * S + t] = t < last ? (float)(pr[i * S + t] / sum) : 0.0f;
        }
        if (j->p > 0) {
            keep_row(pd + i * S, j->key, ((b * s->heads + h) * S + i) * S, S,
                     j->p);
            for (int64_t t = 0; t < S; t++)
                pd[i * S + t] = pr[i * S + t] * pd[i * S + t];
        } else {
            memcpy(pd + i * S, pr + i * S, (size_t)S * sizeof *pd);
        }
    }
}


/* out[c] = sum over r < n, in order, of w[r * ws] * rows[r * d + c], c <
 * d: sixteen columns at a time held in registers across the rows. */
RT_INLINE void attn_wsum(float *restrict out, const float *restrict w,
                         int64_t ws, const float *restrict rows, int64_t d,
                         int64_t n)
{
    int64_t c0 = 0;
    for (; c0 + 16 <= d; c0 += 16) {
        float acc[16] = {0};
        for (int64_t r = 0; r < n; r++) {
            float wr = w[r * ws];
            const float *row = rows + r * d + c0;
            for (int l = 0; l < 16; l++)
                acc[l] += wr * row[l];
        }
        memcpy(out + c0, acc, sizeof acc);
    }
    for (; c0 < d; c0++) {
        float acc = 0;
        for (int64_t r = 0; r < n; r++)
            acc += w[r * ws] * rows[r * d + c0];
        out[c0] = acc;
    }
}


RT_INLINE void attn_train_body(void *arg, int64_t t0, int64_t t1)
{
    const attn_job *j = arg;
    const rt_attention_shape *s = j->s;
    const int64_t S = s->seq, dv = s->head_dim_v;
    /* P, dropped P (S x S), the head's v rows gathered (S x dv). */
    float *pr = malloc((size_t)(2 * S * S + S * dv + 1) * sizeof *pr);
    if (!pr) {
        atomic_store(j->failed, 1);
        return;
    }
    float *pd = pr + S * S, *vv = pd + S * S;
    for (int64_t task = t0; task < t1; task++) {
        int64_t b = task / s->heads, h = task % s->heads;
        attn_probs(j, b, h, pr, pd);
        for (int64_t t = 0; t < S; t++)
            memcpy(vv + t * dv, j->v + (t * s->seq_step + b * s->batch_step) *
                                s->ldv + h * dv, (size_t)dv * sizeof *vv);
        for (int64_t i = 0; i < S; i++)
            attn_wsum(j->out + (i * s->seq_step + b * s->batch_step) *
                      s->ldo + h * dv, pd + i * S, 1, vv, dv, S);
    }
    free(pr);
}


static void attn_train_base(void *arg, int64_t t0, int64_t t1)
{
    attn_train_body(arg, t0, t1);
}


#if RT_X86_DISPATCH
RT_TARGET_AVX2 static void attn_train_avx2(void *arg, int64_t t0, int64_t t1)
{
    attn_train_body(arg, t0, t1);
}


RT_TARGET_AVX512 static void attn_train_avx512(void *arg, int64_t t0,
                                         int64_t t1)
{
    attn_train_body(arg, t0, t1);
}
#define attn_train_fast(ctx) (rt_ctx_isa(ctx) == DSC_ISA_AVX512 ? attn_train_avx512 \
                                                           : attn_train_avx2)
#else
#define attn_train_fast(ctx) attn_train_base
#endif


int rt_attention_train(rt_ctx *ctx, float *out, const float *q,
                       const float *k, const float *v,
                       const rt_attention_shape *shape, float p,
                       uint64_t key)
{
    atomic_int failed = 0;
    attn_job j = { .s = shape, .out = out, .q = q, .k = k, .v = v, .p = p,
                   .key = key, .failed = &failed };
    int64_t tasks = shape->batch * shape->heads;
    rt_parallel(ctx, rt_threads_for(ctx, tasks * shape->seq * shape->seq *
                                    shape->head_dim_qk, RT_TRAIN_GRAIN),
                tasks, rt_cpu_has_avx2() ? attn_train_fast(ctx) : attn_train_base,
                &j);
    return atomic_load(&failed) ? DSC_ENOMEM : DSC_OK;
}


RT_INLINE void attn_grad_body(void *arg, int64_t t0, int64_t t1)
{
    const attn_job *j = arg;
    const rt_attention_shape *s = j->s;
    const int64_t S = s->seq, dk = s->head_dim_qk, dv = s->head_dim_v;
    /* P, dropped P, dS (S x S each); then the head's rows gathered into
     * contiguous blocks (go, v: S x dv; q, k: S x dk) and its gradients
     * (gv: S x dv; gk, gq: S x dk) computed there, so the loops run on
     * unaliased memory and vectorize; the sums run in the same order as
     * over the strided rows. */
    float *pr = malloc((size_t)(3 * S * S + 3 * S * (dv + dk) + S * dk + S +
                                1) * sizeof *pr);
    if (!pr) {
        atomic_store(j->failed, 1);
        return;
    }
    float *pd = pr + S * S, *ds = pd + S * S;
    float *restrict go = ds + S * S, *restrict vv = go + S * dv;
    float *restrict qq = vv + S * dv, *restrict kk = qq + S * dk;
    float *restrict gv = kk + S * dk, *restrict gk = gv + S * dv;
    float *restrict gq = gk + S * dk, *restrict kr = gq + S * dk;
#define ROW(base, ld, t) ((base) + ((t) * s->seq_step + b * s->batch_step) * (ld))
    for (int64_t task = t0; task < t1; task++) {
        int64_t b = task / s->heads, h = task % s->heads;
        attn_probs(j, b, h, pr, pd);
        for (int64_t t = 0; t < S; t++) {
            memcpy(go + t * dv, ROW(j->dout, s->ldo, t) + h * dv,
                   (size_t)dv * sizeof *go);
            memcpy(vv + t * dv, ROW(j->v, s->ldv, t) + h * dv,
                   (size_t)dv * sizeof *vv);
            memcpy(qq + t * dk, ROW(j->q, s->ldq, t) + h * dk,
                   (size_t)dk * sizeof *qq);
            memcpy(kk + t * dk, ROW(j->k, s->ldk, t) + h * dk,
                   (size_t)dk * sizeof *kk);
        }
        for (int64_t i = 0; i < S; i++) {
            double rowdot = 0;
            if (j->p > 0)
                keep_row(kr, j->key, ((b * s->heads + h) * S + i) * S, S,
                         j->p);
            for (int64_t t = 0; t < S; t++) {
                float dpd = rt_dot8(go + i * dv, vv + t * dv, dv);
                float dp = j->p > 0 ? dpd * kr[t] : dpd;
                ds[i * S + t] = dp;
                rowdot += (double)dp * pr[i * S + t];
            }
            for (int64_t t = 0; t < S; t++)
                ds[i * S + t] = pr[i * S + t] *
                                (float)(ds[i * S + t] - rowdot) * s->scale;
        }
        /* dv_t = sum_i pd[i][t] go_i; dk_t = sum_i ds[i][t] q_i;
         * dq_i = sum_t ds[i][t] k_t. */
        for (int64_t t = 0; t < S; t++) {
            attn_wsum(gv + t * dv, pd + t, S, go, dv, S);
            attn_wsum(gk + t * dk, ds + t, S, qq, dk, S);
        }
        for (int64_t i = 0; i < S; i++)
            attn_wsum(gq + i * dk, ds + i * S, 1, kk, dk, S);
        for (int64_t t = 0; t < S; t++) {
            memcpy(ROW(j->dv, j->ldd, t) + h * dv, gv + t * dv,
                   (size_t)dv * sizeof *gv);
            memcpy(ROW(j->dk, j->ldd, t) + h * dk, gk + t * dk,
                   (size_t)dk * sizeof *gk);
            memcpy(ROW(j->dq, j->ldd, t) + h * dk, gq + t * dk,
                   (size_t)dk * sizeof *gq);
        }
    }
#undef ROW
    free(pr);
}


static void attn_grad_base(void *arg, int64_t t0, int64_t t1)
{
    attn_grad_body(arg, t0, t1);
}


#if RT_X86_DISPATCH
RT_TARGET_AVX2 static void attn_grad_avx2(void *arg, int64_t t0, int64_t t1)
{
    attn_grad_body(arg, t0, t1);
}


RT_TARGET_AVX512 static void attn_grad_avx512(void *arg, int64_t t0,
                                         int64_t t1)
{
    attn_grad_body(arg, t0, t1);
}
#define attn_grad_fast(ctx) (rt_ctx_isa(ctx) == DSC_ISA_AVX512 ? attn_grad_avx512 \
                                                           : attn_grad_avx2)
#else
#define attn_grad_fast(ctx) attn_grad_base
#endif


int rt_attention_grad(rt_ctx *ctx, float *dq, float *dk, float *dv,
                      int64_t ldd, const float *dout, const float *q,
                      const float *k, const float *v,
                      const rt_attention_shape *shape, float p, uint64_t key)
{
    atomic_int failed = 0;
    attn_job j = { .s = shape, .dq = dq, .dk = dk, .dv = dv, .ldd = ldd,
                   .dout = dout, .q = q, .k = k, .v = v, .p = p, .key = key,
                   .failed = &failed };
    int64_t tasks = shape->batch * shape->heads;
    rt_parallel(ctx, rt_threads_for(ctx, 3 * tasks * shape->seq * shape->seq *
                                    shape->head_dim_qk, RT_TRAIN_GRAIN),
                tasks, rt_cpu_has_avx2() ? attn_grad_fast(ctx) : attn_grad_base,
                &j);
    return atomic_load(&failed) ? DSC_ENOMEM : DSC_OK;
}


/* ---- Adam ------------------------------------------------------------------ */

typedef struct adam_job {
    float *w, *m, *v;
    const float *g;
    int64_t n;
    float b1, b2, one_b1, one_b2, eps, bc2_sqrt, neg_step_size;
    float wd;  /* weight decay: L2, added to the gradient (not AdamW) */
    float inv_bc2_sqrt;  /* 1 / bc2_sqrt, rounded to nearest */
} adam_job;


/* torch.optim.Adam's single-tensor update, operation for operation in
 * float: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²;
 * w += -lr/bc1 * m / (sqrt(v) / sqrt(bc2) + eps). */

/* Elements [i0, i1). */
RT_INLINE void adam_body(const adam_job *j, int64_t i0, int64_t i1)
{
    float *restrict w = j->w, *restrict mm = j->m, *restrict vv = j->v;
    const float *restrict gg = j->g;
    for (int64_t i = i0; i < i1; i++) {
        float g = j->wd != 0.0f ? gg[i] + j->wd * w[i] : gg[i];
        float m = mm[i] * j->b1 + g * j->one_b1;
        float v = vv[i] * j->b2 + j->one_b2 * g * g;
        mm[i] = m;
        vv[i] = v;
        float denom = sqrtf(v) / j->bc2_sqrt + j->eps;
        w[i] = w[i] + j->neg_step_size * (m / denom);
    }
}


static void adam_base(void *arg, int64_t c0, int64_t c1)
{
    const adam_job *j = arg;
    adam_body(j, c0 * RT_TRAIN_CHUNK,
              c1 * RT_TRAIN_CHUNK < j->n ? c1 * RT_TRAIN_CHUNK : j->n);
}


#if RT_X86_DISPATCH
/* s / b rounded to nearest, without a division (the divider is what bounds
 * Adam's loop: two divisions and a square root per element): q = s * y
 * with y = RN(1 / b) is within an ulp of s / b, r = s - q b is exact with
 * an FMA, and then RN(q + r y) is RN(s / b) (Markstein's theorem; s >= 0
 * is a square root, b >= 0.03 here: nothing underflows; s = inf makes r
 * NaN, and then q, inf, is the quotient).  The same bits as the division;
 * tests/test_train.c compares with the scalar code. */
RT_TARGET_AVX2 static inline __m256 div_bc2_avx2(__m256 s, __m256 b,
                                                 __m256 y)
{
    __m256 q = _mm256_mul_ps(s, y);
    __m256 r = _mm256_fnmadd_ps(q, b, s);
    return _mm256_blendv_ps(_mm256_fmadd_ps(r, y, q), q,
                            _mm256_cmp_ps(r, r, _CMP_UNORD_Q));
}

RT_TARGET_AVX512 static inline __m512 div_bc2_avx512(__m512 s, __m512 b,
                                                     __m512 y)
{
    __m512 q = _mm512_mul_ps(s, y);
    __m512 r = _mm512_fnmadd_ps(q, b, s);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q),
                                _mm512_fmadd_ps(r, y, q), q);
}

/* The same operations, eight lanes at a time (gcc will not vectorize
 * sqrtf, which may set errno); each rounds as the scalar code does. */
RT_TARGET_AVX2 static void adam_avx2(void *arg, int64_t c0, int64_t c1)
{
    const adam_job *j = arg;
    int64_t i = c0 * RT_TRAIN_CHUNK;
    int64_t end = c1 * RT_TRAIN_CHUNK < j->n ? c1 * RT_TRAIN_CHUNK : j->n;
    const __m256 b1 = _mm256_set1_ps(j->b1), b2 = _mm256_set1_ps(j->b2);
    const __m256 ob1 = _mm256_set1_ps(j->one_b1);
    const __m256 ob2 = _mm256_set1_ps(j->one_b2);
    const __m256 bc2 = _mm256_set1_ps(j->bc2_sqrt);
    const __m256 ibc2 = _mm256_set1_ps(j->inv_bc2_sqrt);
    const __m256 eps = _mm256_set1_ps(j->eps);
    const __m256 nss = _mm256_set1_ps(j->neg_step_size);
    const __m256 wd = _mm256_set1_ps(j->wd);
    for (; i + 8 <= end; i += 8) {
        __m256 g = _mm256_loadu_ps(j->g + i);
        if (j->wd != 0.0f)  /* grad.add(param, alpha=weight_decay) */
            g = _mm256_add_ps(g, _mm256_mul_ps(wd,
                                               _mm256_loadu_ps(j->w + i)));
        __m256 m = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(j->m + i), b1),
                                 _mm256_mul_ps(g, ob1));
        __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(j->v + i), b2),
                                 _mm256_mul_ps(_mm256_mul_ps(ob2, g), g));
        _mm256_storeu_ps(j->m + i, m);
        _mm256_storeu_ps(j->v + i, v);
        __m256 denom = _mm256_add_ps(div_bc2_avx2(_mm256_sqrt_ps(v), bc2,
                                                  ibc2), eps);
        __m256 w = _mm256_loadu_ps(j->w + i);
        _mm256_storeu_ps(j->w + i, _mm256_add_ps(
            w, _mm256_mul_ps(nss, _mm256_div_ps(m, denom))));
    }
    adam_body(j, i, end);  /* the tail, by element index */
}

RT_TARGET_AVX512 static void adam_avx512(void *arg, int64_t c0, int64_t c1)
{
    const adam_job *j = arg;
    int64_t i = c0 * RT_TRAIN_CHUNK;
    int64_t end = c1 * RT_TRAIN_CHUNK < j->n ? c1 * RT_TRAIN_CHUNK : j->n;
    const __m512 b1 = _mm512_set1_ps(j->b1), b2 = _mm512_set1_ps(j->b2);
    const __m512 ob1 = _mm512_set1_ps(j->one_b1);
    const __m512 ob2 = _mm512_set1_ps(j->one_b2);
    const __m512 bc2 = _mm512_set1_ps(j->bc2_sqrt);
    const __m512 ibc2 = _mm512_set1_ps(j->inv_bc2_sqrt);
    const __m512 eps = _mm512_set1_ps(j->eps);
    const __m512 nss = _mm512_set1_ps(j->neg_step_size);
    const __m512 wd = _mm512_set1_ps(j->wd);
    for (; i + 16 <= end; i += 16) {
        __m512 g = _mm512_loadu_ps(j->g + i);
        if (j->wd != 0.0f)  /* grad.add(param, alpha=weight_decay) */
            g = _mm512_add_ps(g, _mm512_mul_ps(wd,
                                               _mm512_loadu_ps(j->w + i)));
        __m512 m = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(j->m + i), b1),
                                 _mm512_mul_ps(g, ob1));
        __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(j->v + i), b2),
                                 _mm512_mul_ps(_mm512_mul_ps(ob2, g), g));
        _mm512_storeu_ps(j->m + i, m);
        _mm512_storeu_ps(j->v + i, v);
        __m512 denom = _mm512_add_ps(div_bc2_avx512(_mm512_sqrt_ps(v), bc2,
                                                    ibc2), eps);
        __m512 w = _mm512_loadu_ps(j->w + i);
        _mm512_storeu_ps(j->w + i, _mm512_add_ps(
            w, _mm512_mul_ps(nss, _mm512_div_ps(m, denom))));
    }
    adam_body(j, i, end);  /* the tail, by element index */
}
#endif


void rt_adam(rt_ctx *ctx, float *w, float *state, int64_t first,
             int64_t count)
{
    const rt_train_header *h = (const rt_train_header *)(void *)state;
    float *m = state + RT_TRAIN_HEADER_FLOATS;
    float *v = m + h->weight_floats;
    float *g = v + h->weight_floats;
    double t = (double)h->step;
    /* The scalars in double, as Python computes them; torch's kernels
     * then round each to float. */
    double bc1 = 1.0 - pow(h->beta1, t);
    double bc2 = 1.0 - pow(h->beta2, t);
    adam_job j = {
        .w = w + first, .m = m + first, .v = v + first, .g = g + first,
        .n = count, .b1 = (float)h->beta1, .b2 = (float)h->beta2,
        .one_b1 = (float)(1.0 - h->beta1), .one_b2 = (float)(1.0 - h->beta2),
        .eps = (float)h->eps, .bc2_sqrt = (float)sqrt(bc2),
        .neg_step_size = (float)(-h->lr / bc1), .wd = (float)h->weight_decay,
    };
    j.inv_bc2_sqrt = 1.0f / j.bc2_sqrt;
    int64_t chunks = (count + RT_TRAIN_CHUNK - 1) / RT_TRAIN_CHUNK;
    rt_task_fn fn = adam_base;
#if RT_X86_DISPATCH
    if (rt_ctx_isa(ctx) == DSC_ISA_AVX512)
        fn = adam_avx512;
    else if (rt_cpu_has_avx2())
        fn = adam_avx2;
#endif
    rt_parallel(ctx, rt_threads_for(ctx, count, RT_TRAIN_GRAIN), chunks, fn,
                &j);
}
