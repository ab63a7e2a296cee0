/* decode.c — the kernels of a decoder step: position rows, attention over
 * a KV cache, a row copy. */
#include <math.h>
#include <string.h>

#include "dsc_runtime.h"
#include "rt_internal.h"


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


/* Keys scored per block: the scores stay on the stack and in L1. */
#define KEY_BLOCK 256

typedef struct kv_job {
    float *out;
    const float *q;
    const float *k_cache, *v_cache;
    int64_t pos;
    const rt_kv_shape *s;
} kv_job;


/* One (token i, head h) task: causal attention of the query at position
 * pos + i over cache rows 0..pos + i, blocks of keys with an online
 * softmax accumulating straight into the output row. */
RT_INLINE void kv_task_body(void *arg, int64_t begin, int64_t end)
{
    const kv_job *j = arg;
    const rt_kv_shape *s = j->s;
    int64_t wk = s->heads * s->head_dim_qk, wv = s->heads * s->head_dim_v;
    int64_t dqk = s->head_dim_qk, dv = s->head_dim_v;
    float scores[KEY_BLOCK];
    for (int64_t task = begin; task < end; task++) {
        int64_t i = task / s->heads, h = task % s->heads;
        int64_t last = j->pos + i;
        const float *q = j->q + i * s->ldq + h * dqk;
        const float *kh = j->k_cache + h * dqk;
        const float *vh = j->v_cache + h * dv;
        float *o = j->out + i * s->ldo + h * dv;
        float max = -INFINITY, sum = 0;
        for (int64_t d = 0; d < dv; d++)
            o[d] = 0;
        for (int64_t t0 = 0; t0 <= last; t0 += KEY_BLOCK) {
            int64_t n = last + 1 - t0 < KEY_BLOCK ? last + 1 - t0 : KEY_BLOCK;
            float block_max = -INFINITY;
            for (int64_t t = 0; t < n; t++) {
                scores[t] = rt_dot8(q, kh + (t0 + t) * wk, dqk) * s->scale;
                block_max = scores[t] > block_max ? scores[t] : block_max;
            }
            float new_max = block_max > max ? block_max : max;
            float rescale = rt_exp(max - new_max);  /* 0 on the first block */
            sum *= rescale;
            for (int64_t d = 0; d < dv; d++)
                o[d] *= rescale;
            for (int64_t t = 0; t < n; t++) {
                scores[t] = rt_exp(scores[t] - new_max);
                sum += scores[t];
            }
            for (int64_t t = 0; t < n; t++) {
                const float *v = vh + (t0 + t) * wv;
                float p = scores[t];
                for (int64_t d = 0; d < dv; d++)
                    o[d] += p * v[d];
            }
            max = new_max;
        }
        float inv = 1.0f / sum;
        for (int64_t d = 0; d < dv; d++)
            o[d] *= inv;
    }
}


RT_ISA_VARIANTS(kv_task, kv_task_body)


void rt_kv_attention(rt_ctx *ctx, float *out, const float *q, const float *k,
                     const float *v, float *k_cache, float *v_cache,
                     int64_t n, int64_t pos, const rt_kv_shape *s)
{
    int64_t wk = s->heads * s->head_dim_qk, wv = s->heads * s->head_dim_v;
    for (int64_t i = 0; i < n; i++) {
        memcpy(k_cache + (pos + i) * wk, k + i * s->ldk,
               (size_t)wk * sizeof(float));
        memcpy(v_cache + (pos + i) * wv, v + i * s->ldv,
               (size_t)wv * sizeof(float));
    }
    kv_job j = { out, q, k_cache, v_cache, pos, s };
    rt_task_fn fn = kv_task_for(rt_ctx_isa(ctx));
    /* Work: about (pos + n) * (dqk + dv) multiply-adds per task. */
    int64_t tasks = n * s->heads;
    int64_t work = tasks * (pos + n) * (s->head_dim_qk + s->head_dim_v);
    rt_parallel(ctx, rt_threads_for(ctx, work, 1 << 16), tasks, fn, &j);
}
