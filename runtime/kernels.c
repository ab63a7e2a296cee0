/* kernels.c — the runtime's element-wise and row-wise kernels: embedding
 * gather, add, activations, layernorm, softmax, attention.  rt_linear lives
 * in gemm.c.
 *
 * Reductions keep RT_LANES independent partial sums: without -ffast-math gcc
 * may not reorder a single running sum, so this is what lets it vectorize.
 * The order is fixed, so results are deterministic for a given build.
 */
#include "dsc_runtime.h"

#include <math.h>
#include <string.h>

#define RT_LANES 8

/* Scores held at once per attention query; longer sequences are processed
 * chunk by chunk with an online softmax (rescaling the partial output). */
#if !defined(RT_ATTN_CHUNK)
#define RT_ATTN_CHUNK 64
#endif

/* 1/sqrt(2) and sqrt(2/pi); M_SQRT1_2 is not ISO C. */
#define RT_SQRT1_2     0.70710678118654752440f
#define RT_SQRT_2_PI   0.79788456080286535588f


int rt_embedding(rt_ctx *ctx, float *out, const int32_t *ids, int64_t n,
                 const float *table, int64_t vocab, int64_t dim)
{
    /* Validate everything first: a bad id must not leave a half-written
     * output or read outside the table. */
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return DSC_EBADTOKEN;
    for (int64_t i = 0; i < n; i++)
        memcpy(out + i * dim, table + (int64_t)ids[i] * dim,
               (size_t)dim * sizeof *out);
    return DSC_OK;
}


void rt_add(rt_ctx *ctx, float *y, const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}


void rt_activation(rt_ctx *ctx, float *y, const float *x, int64_t n, rt_act act)
{
    /* One loop per activation so the cheap ones vectorize. */
    switch (act) {
    case RT_ACT_NONE:
        if (y != x)
            memmove(y, x, (size_t)n * sizeof *y);
        break;
    case RT_ACT_RELU:
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case RT_ACT_GELU:
        for (int64_t i = 0; i < n; i++)
            y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * RT_SQRT1_2));
        break;
    case RT_ACT_GELU_TANH:
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            float inner = RT_SQRT_2_PI * (v + 0.044715f * v * v * v);
            y[i] = 0.5f * v * (1.0f + tanhf(inner));
        }
        break;
    }
}


/* Combine RT_LANES partial sums pairwise: smaller error than a left fold. */
static float fold_lanes(float s[RT_LANES])
{
    for (int w = RT_LANES / 2; w > 0; w /= 2)
        for (int i = 0; i < w; i++)
            s[i] += s[i + w];
    return s[0];
}


static float sum_row(const float *x, int64_t n)
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
 * "corrected two-pass" algorithm of Chan, Golub and LeVeque). */
static void sum_dev(const float *x, int64_t n, float mean, float *sd,
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


static float dot(const float *a, const float *b, int64_t n)
{
    float s[RT_LANES] = {0};
    int64_t i = 0;
    for (; i + RT_LANES <= n; i += RT_LANES)
        for (int l = 0; l < RT_LANES; l++)
            s[l] += a[i + l] * b[i + l];
    for (int l = 0; i < n; i++, l++)
        s[l] += a[i] * b[i];
    return fold_lanes(s);
}


/* gamma and beta may be NULL (nn.LayerNorm(elementwise_affine=False)). */
void rt_layernorm(rt_ctx *ctx, float *y, const float *x, const float *gamma,
                  const float *beta, int64_t rows, int64_t dim, float eps)
{
    if (dim <= 0)
        return;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        float mean = sum_row(xr, dim) / (float)dim, sd, sq;
        sum_dev(xr, dim, mean, &sd, &sq);
        float corr = sd / (float)dim;
        float var = sq / (float)dim - corr * corr;
        mean += corr;
        var = var > 0.0f ? var : 0.0f;
        float rstd = 1.0f / sqrtf(var + eps);
        for (int64_t i = 0; i < dim; i++) {
            float v = (xr[i] - mean) * rstd;
            if (gamma)
                v *= gamma[i];
            if (beta)
                v += beta[i];
            yr[i] = v;
        }
    }
}


void rt_softmax(rt_ctx *ctx, float *y, const float *x, int64_t rows, int64_t dim)
{
    if (dim <= 0)
        return;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        /* Subtract the max so exp never overflows. */
        float mx = xr[0];
        for (int64_t i = 1; i < dim; i++)
            mx = xr[i] > mx ? xr[i] : mx;
        for (int64_t i = 0; i < dim; i++)
            yr[i] = expf(xr[i] - mx);
        float inv = 1.0f / sum_row(yr, dim);
        for (int64_t i = 0; i < dim; i++)
            yr[i] *= inv;
    }
}


/* One query row of one head: o = softmax(scale * q·kᵀ) v over n_keys keys,
 * key t at k + t * kstride (and v likewise).  Scores are computed a chunk at
 * a time into a stack buffer; the running max m, the running denominator l
 * and o are rescaled when a chunk raises the max (an online softmax), so for
 * n_keys <= RT_ATTN_CHUNK this is exactly the two-pass softmax. */
static void attend_row(float *o, const float *q, const float *k,
                       int64_t kstride, const float *v, int64_t vstride,
                       int64_t n_keys, int64_t dqk, int64_t dv, float scale)
{
    float sc[RT_ATTN_CHUNK];
    float m = -INFINITY, l = 0.0f;
    for (int64_t j = 0; j < dv; j++)
        o[j] = 0.0f;
    for (int64_t t0 = 0; t0 < n_keys; t0 += RT_ATTN_CHUNK) {
        int64_t nc = n_keys - t0 < RT_ATTN_CHUNK ? n_keys - t0 : RT_ATTN_CHUNK;
        float cm = -INFINITY;
        for (int64_t i = 0; i < nc; i++) {
            sc[i] = scale * dot(q, k + (t0 + i) * kstride, dqk);
            cm = sc[i] > cm ? sc[i] : cm;
        }
        if (cm > m) {
            /* First chunk: m = -inf, so f = 0 and o, l are still zero. */
            float f = expf(m - cm);
            for (int64_t j = 0; j < dv; j++)
                o[j] *= f;
            l *= f;
            m = cm;
        }
        for (int64_t i = 0; i < nc; i++) {
            float p = expf(sc[i] - m);
            const float *vt = v + (t0 + i) * vstride;
            l += p;
            for (int64_t j = 0; j < dv; j++)
                o[j] += p * vt[j];
        }
    }
    float inv = 1.0f / l;
    for (int64_t j = 0; j < dv; j++)
        o[j] *= inv;
}


void rt_attention(rt_ctx *ctx, float *out, const float *q, const float *k, const float *v,
                  const rt_attention_shape *sh)
{
    /* Consecutive positions of one batch entry are seq_step rows apart. */
    const int64_t kstride = sh->seq_step * sh->ldk;
    const int64_t vstride = sh->seq_step * sh->ldv;
    for (int64_t b = 0; b < sh->batch; b++) {
        for (int64_t h = 0; h < sh->heads; h++) {
            const float *kb = k + b * sh->batch_step * sh->ldk
                              + h * sh->head_dim_qk;
            const float *vb = v + b * sh->batch_step * sh->ldv
                              + h * sh->head_dim_v;
            for (int64_t s = 0; s < sh->seq; s++) {
                int64_t row = s * sh->seq_step + b * sh->batch_step;
                const float *qr = q + row * sh->ldq + h * sh->head_dim_qk;
                float *orow = out + row * sh->ldo + h * sh->head_dim_v;
                int64_t n_keys = sh->causal ? s + 1 : sh->seq;
                attend_row(orow, qr, kb, kstride, vb, vstride, n_keys,
                           sh->head_dim_qk, sh->head_dim_v, sh->scale);
            }
        }
    }
}
