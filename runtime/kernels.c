/* kernels.c — the runtime's element-wise and row-wise kernels: embedding
 * gather, add, activations, layernorm, softmax.  rt_linear lives in
 * gemm.c, rt_attention in attention.c.
 *
 * Reductions keep RT_LANES independent partial sums: without -ffast-math gcc
 * may not reorder a single running sum, so this is what lets it vectorize.
 * 32 of them are two zmm or four ymm registers: with 8 (one ymm) a
 * layernorm row was a chain of dependent adds, 3% of the seed's forward.
 * The order is fixed, so results are deterministic for a given build.
 *
 * Large calls are split over the context's threads: element-wise ones in
 * chunks of RT_EW_CHUNK floats, row-wise ones by rows.  Every element or row
 * is computed the same way whichever thread does it, so results do not
 * depend on the thread count at all.
 */
#include "rt_internal.h"

#include <math.h>
#include <string.h>

#define RT_LANES 32

/* Floats per task of an element-wise kernel (16 KB: a few microseconds). */
#define RT_EW_CHUNK 4096
/* Elements per thread below which a kernel stays on fewer threads. */
#define RT_EW_GRAIN (1 << 15)


/* ---- embedding ------------------------------------------------------- */

typedef struct embed_job {
    float *out;
    const int32_t *ids;
    const float *table;
    int64_t dim;
} embed_job;


static void embed_rows(void *arg, int64_t begin, int64_t end)
{
    const embed_job *j = arg;
    for (int64_t i = begin; i < end; i++)
        memcpy(j->out + i * j->dim, j->table + (int64_t)j->ids[i] * j->dim,
               (size_t)j->dim * sizeof *j->out);
}


int rt_embedding(rt_ctx *ctx, float *out, const int32_t *ids, int64_t n,
                 const float *table, int64_t vocab, int64_t dim)
{
    /* Validate everything first: a bad id must not leave a half-written
     * output or read outside the table. */
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return DSC_EBADTOKEN;
    embed_job j = {out, ids, table, dim};
    rt_parallel(ctx, rt_threads_for(ctx, n * dim, 4 * RT_EW_GRAIN), n,
                embed_rows, &j);
    return DSC_OK;
}


/* ---- element-wise ---------------------------------------------------- */

/* Each body is compiled once per ISA (see RT_ISA_VARIANTS). */
RT_INLINE void add_body(float *y, const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}


/* One loop per activation so the cheap ones vectorize. */
RT_INLINE void act_body(float *y, const float *x, int64_t n, rt_act act)
{
    switch (act) {
    case RT_ACT_NONE:
        if (y != x)
            memmove(y, x, (size_t)n * sizeof *y);
        break;
    case RT_ACT_RELU:
        for (int64_t i = 0; i < n; i++)
            y[i] = rt_relu(x[i]);
        break;
    case RT_ACT_GELU:
        for (int64_t i = 0; i < n; i++)
            y[i] = rt_gelu(x[i]);
        break;
    case RT_ACT_GELU_TANH:
        for (int64_t i = 0; i < n; i++)
            y[i] = rt_gelu_tanh(x[i]);
        break;
    }
}


typedef struct ew_job {
    float *y;
    const float *a, *b;
    int64_t n;
    rt_act act;
    int is_add;
} ew_job;


RT_INLINE void ew_body(void *arg, int64_t begin, int64_t end)
{
    const ew_job *j = arg;
    int64_t i0 = begin * RT_EW_CHUNK;
    int64_t i1 = end * RT_EW_CHUNK < j->n ? end * RT_EW_CHUNK : j->n;
    if (j->is_add)
        add_body(j->y + i0, j->a + i0, j->b + i0, i1 - i0);
    else
        act_body(j->y + i0, j->a + i0, i1 - i0, j->act);
}

RT_ISA_VARIANTS(ew_range, ew_body)


static void run_ew(rt_ctx *ctx, ew_job *j)
{
    if (j->n <= 0)
        return;
    rt_parallel(ctx, rt_threads_for(ctx, j->n, RT_EW_GRAIN),
                (j->n + RT_EW_CHUNK - 1) / RT_EW_CHUNK,
                ew_range_for(rt_ctx_isa(ctx)), j);
}


void rt_add(rt_ctx *ctx, float *y, const float *a, const float *b, int64_t n)
{
    ew_job j = {.y = y, .a = a, .b = b, .n = n, .is_add = 1};
    run_ew(ctx, &j);
}


void rt_activation(rt_ctx *ctx, float *y, const float *x, int64_t n, rt_act act)
{
    ew_job j = {.y = y, .a = x, .n = n, .act = act};
    run_ew(ctx, &j);
}


/* ---- layernorm and softmax ------------------------------------------ */

/* Combine RT_LANES partial sums pairwise: smaller error than a left fold. */
RT_INLINE float fold_lanes(float s[RT_LANES])
{
    for (int w = RT_LANES / 2; w > 0; w /= 2)
        for (int i = 0; i < w; i++)
            s[i] += s[i + w];
    return s[0];
}


RT_INLINE float sum_row(const float *x, int64_t n)
{
    float s[RT_LANES] = {0};
    int64_t i = 0;
    for (; i + RT_LANES <= n; i += RT_LANES)
        for (int l = 0; l < RT_LANES; l++)
            s[l] += x[i + l];
    for (int l = 0; i < n; i++, l++)
        s[l] += x[i];
    return fold_lanes(s);
}


/* Second pass of the variance: *sd = sum (x - mean), *sq = sum (x - mean)^2.
 * Unlike E[x^2] - mean^2 this does not cancel catastrophically when
 * |mean| >> std, and sd corrects the rounding of mean itself (the
 * "corrected two-pass" algorithm of Chan, Golub and LeVeque).  The row is
 * in L1 after the first pass, so the extra read costs little. */
RT_INLINE void sum_dev(const float *x, int64_t n, float mean, float *sd,
                       float *sq)
{
    float s1[RT_LANES] = {0}, s2[RT_LANES] = {0};
    int64_t i = 0;
    for (; i + RT_LANES <= n; i += RT_LANES)
        for (int l = 0; l < RT_LANES; l++) {
            float d = x[i + l] - mean;
            s1[l] += d;
            s2[l] += d * d;
        }
    for (int l = 0; i < n; i++, l++) {
        float d = x[i] - mean;
        s1[l] += d;
        s2[l] += d * d;
    }
    *sd = fold_lanes(s1);
    *sq = fold_lanes(s2);
}


typedef struct row_job {
    float *y;
    const float *x, *gamma, *beta;
    int64_t dim;
    float eps;
} row_job;


RT_INLINE void layernorm_body(void *arg, int64_t r0, int64_t r1)
{
    const row_job *j = arg;
    const int64_t dim = j->dim;
    const float *gamma = j->gamma, *beta = j->beta;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * dim;
        float *yr = j->y + r * dim;
        float mean = sum_row(xr, dim) / (float)dim, sd, sq;
        sum_dev(xr, dim, mean, &sd, &sq);
        float corr = sd / (float)dim;
        float var = sq / (float)dim - corr * corr;
        mean += corr;
        var = var > 0.0f ? var : 0.0f;
        float rstd = 1.0f / sqrtf(var + j->eps);
        /* One loop per affine case, so none has a branch inside. */
        if (gamma && beta)
            for (int64_t i = 0; i < dim; i++)
                yr[i] = (xr[i] - mean) * rstd * gamma[i] + beta[i];
        else if (gamma)
            for (int64_t i = 0; i < dim; i++)
                yr[i] = (xr[i] - mean) * rstd * gamma[i];
        else if (beta)
            for (int64_t i = 0; i < dim; i++)
                yr[i] = (xr[i] - mean) * rstd + beta[i];
        else
            for (int64_t i = 0; i < dim; i++)
                yr[i] = (xr[i] - mean) * rstd;
    }
}


RT_ISA_VARIANTS(layernorm_rows, layernorm_body)


/* gamma and beta may be NULL (nn.LayerNorm(elementwise_affine=False)). */
void rt_layernorm(rt_ctx *ctx, float *y, const float *x, const float *gamma,
                  const float *beta, int64_t rows, int64_t dim, float eps)
{
    if (dim <= 0 || rows <= 0)
        return;
    row_job j = {.y = y, .x = x, .gamma = gamma, .beta = beta, .dim = dim,
                 .eps = eps};
    rt_task_fn fn = layernorm_rows_for(rt_ctx_isa(ctx));
    rt_parallel(ctx, rt_threads_for(ctx, rows * dim, RT_EW_GRAIN), rows, fn,
                &j);
}


RT_INLINE void softmax_body(void *arg, int64_t r0, int64_t r1)
{
    const row_job *j = arg;
    const int64_t dim = j->dim;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * dim;
        float *yr = j->y + r * dim;
        /* Subtract the max so exp never overflows. */
        float mx = xr[0];
        for (int64_t i = 1; i < dim; i++)
            mx = xr[i] > mx ? xr[i] : mx;
        for (int64_t i = 0; i < dim; i++)
            yr[i] = rt_exp(xr[i] - mx);
        float inv = 1.0f / sum_row(yr, dim);
        for (int64_t i = 0; i < dim; i++)
            yr[i] *= inv;
    }
}


RT_ISA_VARIANTS(softmax_rows, softmax_body)


void rt_softmax(rt_ctx *ctx, float *y, const float *x, int64_t rows, int64_t dim)
{
    if (dim <= 0 || rows <= 0)
        return;
    row_job j = {.y = y, .x = x, .dim = dim};
    rt_task_fn fn = softmax_rows_for(rt_ctx_isa(ctx));
    /* exp costs ~20 element-wise operations: a smaller grain. */
    rt_parallel(ctx, rt_threads_for(ctx, rows * dim, RT_EW_GRAIN / 8), rows,
                fn, &j);
}
