/* decode.c — the kernels of a decoder step: position rows, attention over
 * a KV cache, a row copy. */
#include <math.h>
#include <string.h>

#include "dsc_runtime.h"


void rt_positions(rt_ctx *ctx, float *out, const float *table, int64_t pos,
                  int64_t n, int64_t dim)
{
    (void)ctx;
    memcpy(out, table + pos * dim, (size_t)(n * dim) * sizeof(float));
}


void rt_copy(rt_ctx *ctx, float *dst, const float *src, int64_t count)
{
    (void)ctx;
    memmove(dst, src, (size_t)count * sizeof(float));
}


/* One head of one query over keys 0..last: scores in a pass, softmax, then
 * the weighted sum of values straight into out.  scores holds last + 1. */
static void attend(float *out, const float *q, const float *k_cache,
                   const float *v_cache, int64_t last, int64_t ld_cache_k,
                   int64_t ld_cache_v, int64_t dqk, int64_t dv, float scale,
                   float *scores)
{
    float max = -INFINITY;
    for (int64_t t = 0; t <= last; t++) {
        const float *k = k_cache + t * ld_cache_k;
        float dot = 0;
        for (int64_t d = 0; d < dqk; d++)
            dot += q[d] * k[d];
        scores[t] = dot * scale;
        max = scores[t] > max ? scores[t] : max;
    }
    float sum = 0;
    for (int64_t t = 0; t <= last; t++) {
        scores[t] = expf(scores[t] - max);
        sum += scores[t];
    }
    float inv = 1.0f / sum;
    for (int64_t d = 0; d < dv; d++)
        out[d] = 0;
    for (int64_t t = 0; t <= last; t++) {
        const float *v = v_cache + t * ld_cache_v;
        float p = scores[t] * inv;
        for (int64_t d = 0; d < dv; d++)
            out[d] += p * v[d];
    }
}


/* Scores for this many keys live on the stack; longer contexts go through
 * the keys in blocks with an online softmax. */
#define SCORES_ON_STACK 4096

void rt_kv_attention(rt_ctx *ctx, float *out, const float *q, const float *k,
                     const float *v, float *k_cache, float *v_cache,
                     int64_t n, int64_t pos, const rt_kv_shape *s)
{
    (void)ctx;
    int64_t wk = s->heads * s->head_dim_qk, wv = s->heads * s->head_dim_v;
    for (int64_t i = 0; i < n; i++) {
        memcpy(k_cache + (pos + i) * wk, k + i * s->ldk,
               (size_t)wk * sizeof(float));
        memcpy(v_cache + (pos + i) * wv, v + i * s->ldv,
               (size_t)wv * sizeof(float));
    }
    float scores[SCORES_ON_STACK];
    for (int64_t i = 0; i < n; i++) {
        int64_t last = pos + i;
        for (int64_t h = 0; h < s->heads; h++) {
            const float *qh = q + i * s->ldq + h * s->head_dim_qk;
            float *oh = out + i * s->ldo + h * s->head_dim_v;
            const float *kh = k_cache + h * s->head_dim_qk;
            const float *vh = v_cache + h * s->head_dim_v;
            if (last < SCORES_ON_STACK) {
                attend(oh, qh, kh, vh, last, wk, wv, s->head_dim_qk,
                       s->head_dim_v, s->scale, scores);
                continue;
            }
            /* Online softmax over blocks of keys. */
            float max = -INFINITY, sum = 0;
            for (int64_t d = 0; d < s->head_dim_v; d++)
                oh[d] = 0;
            for (int64_t t0 = 0; t0 <= last; t0 += SCORES_ON_STACK) {
                int64_t t1 = t0 + SCORES_ON_STACK - 1 < last
                           ? t0 + SCORES_ON_STACK - 1 : last;
                float block_max = -INFINITY;
                for (int64_t t = t0; t <= t1; t++) {
                    const float *kt = kh + t * wk;
                    float dot = 0;
                    for (int64_t d = 0; d < s->head_dim_qk; d++)
                        dot += qh[d] * kt[d];
                    scores[t - t0] = dot * s->scale;
                    block_max = scores[t - t0] > block_max ? scores[t - t0]
                                                           : block_max;
                }
                float new_max = block_max > max ? block_max : max;
                float rescale = expf(max - new_max);
                sum *= rescale;
                for (int64_t d = 0; d < s->head_dim_v; d++)
                    oh[d] *= rescale;
                for (int64_t t = t0; t <= t1; t++) {
                    float p = expf(scores[t - t0] - new_max);
                    const float *vt = vh + t * wv;
                    sum += p;
                    for (int64_t d = 0; d < s->head_dim_v; d++)
                        oh[d] += p * vt[d];
                }
                max = new_max;
            }
            for (int64_t d = 0; d < s->head_dim_v; d++)
                oh[d] /= sum;
        }
    }
}
