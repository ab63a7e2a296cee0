/* attention.c — rt_attention: softmax(scale * q kᵀ [+ causal mask]) v for
 * every (batch, head), reading q, k and v by stride (they are usually
 * column slices of one fused QKV buffer).
 *
 * The work is cut into tasks of one (batch, head, block of RT_ATTN_QB
 * queries), spread over the context's threads.  A task walks the keys a
 * chunk of RT_ATTN_KC at a time: it copies the chunk's keys transposed and
 * its values into small L1-resident buffers, computes the score block
 * S = Q Kᵀ and then O += P V with 4 x 16 register tiles, and keeps a
 * running max and denominator per query (an online softmax) so any length
 * of sequence fits in a fixed buffer.  With one chunk (n_keys <=
 * RT_ATTN_KC) this is exactly the two-pass softmax.  Every sum runs in a
 * fixed order, so results do not depend on threads.
 *
 * Heads wider than RT_ATTN_MAXD take a simpler row-at-a-time path.
 */
#include "rt_internal.h"

#include <math.h>
#include <string.h>

#define RT_ATTN_QB   16   /* queries per task */
#define RT_ATTN_KC   64   /* keys per chunk */
#define RT_ATTN_MAXD 128  /* head_dim limit of the blocked path */
#define RT_ATTN_W    16   /* columns of a register tile */
#define RT_LANES     8
/* Multiply-adds per thread below which attention stays on fewer threads. */
#define RT_ATTN_GRAIN (1 << 15)

_Static_assert(RT_ATTN_QB % 4 == 0, "query blocks are whole 4-row tiles");
_Static_assert(RT_ATTN_KC % RT_ATTN_W == 0, "key chunks are whole tiles");
_Static_assert(RT_ATTN_MAXD % RT_ATTN_W == 0, "head dims pad to tiles");


static int64_t round_up(int64_t n, int64_t m)
{
    return (n + m - 1) / m * m;
}


/* c[r][0..16) (+)= sum_k a[r][k] * b[k][0..16) for r < 4: the register
 * tile both products use (one named accumulator row each, as gemm.c's
 * micro-kernel, so the compiler keeps them in registers).  k runs in
 * order, so the sums are deterministic. */
RT_INLINE void tile4x16(float *c, int64_t ldc, const float *a, int64_t lda,
                        const float *b, int64_t ldb, int64_t K, int accumulate)
{
    float c0[RT_ATTN_W], c1[RT_ATTN_W], c2[RT_ATTN_W], c3[RT_ATTN_W];
    if (accumulate) {
        memcpy(c0, c, sizeof c0);
        memcpy(c1, c + ldc, sizeof c1);
        memcpy(c2, c + 2 * ldc, sizeof c2);
        memcpy(c3, c + 3 * ldc, sizeof c3);
    } else {
        memset(c0, 0, sizeof c0);
        memset(c1, 0, sizeof c1);
        memset(c2, 0, sizeof c2);
        memset(c3, 0, sizeof c3);
    }
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda;
    for (int64_t k = 0; k < K; k++) {
        const float *bk = b + k * ldb;
        float x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
        for (int j = 0; j < RT_ATTN_W; j++) {
            float bj = bk[j];
            c0[j] += x0 * bj;
            c1[j] += x1 * bj;
            c2[j] += x2 * bj;
            c3[j] += x3 * bj;
        }
    }
    memcpy(c, c0, sizeof c0);
    memcpy(c + ldc, c1, sizeof c1);
    memcpy(c + 2 * ldc, c2, sizeof c2);
    memcpy(c + 3 * ldc, c3, sizeof c3);
}


typedef struct attn_job {
    float *out;
    const float *q, *k, *v;
    const rt_attention_shape *sh;
    int64_t n_qb;       /* query blocks per (batch, head) */
} attn_job;


/* The blocked path for one task: (b, h) and queries [s0, s0 + nq). */
RT_INLINE void attend_block(const attn_job *jb, int64_t b, int64_t h,
                            int64_t s0, int64_t nq)
{
    const rt_attention_shape *sh = jb->sh;
    const int64_t dqk = sh->head_dim_qk, dv = sh->head_dim_v;
    const int64_t dvp = round_up(dv, RT_ATTN_W);
    const int64_t nq4 = round_up(nq, 4);
    /* Consecutive positions of one batch entry are seq_step rows apart. */
    const int64_t base = b * sh->batch_step;
    _Alignas(64) float qp[RT_ATTN_QB][RT_ATTN_MAXD];   /* queries, padded */
    _Alignas(64) float kt[RT_ATTN_MAXD][RT_ATTN_KC];   /* keys, transposed */
    _Alignas(64) float vp[RT_ATTN_KC][RT_ATTN_MAXD];   /* values, padded */
    _Alignas(64) float s[RT_ATTN_QB][RT_ATTN_KC];      /* scores, then p */
    _Alignas(64) float o[RT_ATTN_QB][RT_ATTN_MAXD];    /* unnormalized out */
    float m[RT_ATTN_QB], l[RT_ATTN_QB];

    for (int64_t i = 0; i < nq4; i++) {
        if (i < nq) {
            const float *qr = jb->q + ((s0 + i) * sh->seq_step + base) * sh->ldq
                              + h * dqk;
            memcpy(qp[i], qr, (size_t)dqk * sizeof(float));
        } else {
            memset(qp[i], 0, (size_t)dqk * sizeof(float));
        }
        memset(o[i], 0, (size_t)dvp * sizeof(float));
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }

    /* Causal: no query of the block sees past its last position. */
    const int64_t n_keys = sh->causal ? s0 + nq : sh->seq;
    for (int64_t t0 = 0; t0 < n_keys; t0 += RT_ATTN_KC) {
        const int64_t nc = n_keys - t0 < RT_ATTN_KC ? n_keys - t0 : RT_ATTN_KC;
        const int64_t ncp = round_up(nc, RT_ATTN_W);
        for (int64_t t = 0; t < ncp; t++) {
            if (t < nc) {
                int64_t row = (t0 + t) * sh->seq_step + base;
                const float *kr = jb->k + row * sh->ldk + h * dqk;
                const float *vr = jb->v + row * sh->ldv + h * dv;
                for (int64_t d = 0; d < dqk; d++)
                    kt[d][t] = kr[d];
                memcpy(vp[t], vr, (size_t)dv * sizeof(float));
                memset(vp[t] + dv, 0, (size_t)(dvp - dv) * sizeof(float));
            } else {
                /* Padding keys: zero scores, zero values, and p = 0. */
                for (int64_t d = 0; d < dqk; d++)
                    kt[d][t] = 0.0f;
                memset(vp[t], 0, (size_t)dvp * sizeof(float));
            }
        }

        for (int64_t i = 0; i < nq4; i += 4)
            for (int64_t j = 0; j < ncp; j += RT_ATTN_W)
                tile4x16(&s[i][j], RT_ATTN_KC, qp[i], RT_ATTN_MAXD, &kt[0][j],
                         RT_ATTN_KC, dqk, 0);

        for (int64_t i = 0; i < nq4; i++) {
            float *si = s[i];
            /* Keys this query sees in the chunk: all, or up to itself. */
            int64_t valid = nc;
            if (i >= nq)
                valid = 0;
            else if (sh->causal && s0 + i - t0 + 1 < valid)
                valid = s0 + i - t0 + 1;
            if (valid <= 0) {
                memset(si, 0, (size_t)ncp * sizeof(float));
                continue;
            }
            for (int64_t t = 0; t < valid; t++)
                si[t] *= sh->scale;
            float cm = -INFINITY;
            for (int64_t t = 0; t < valid; t++)
                cm = si[t] > cm ? si[t] : cm;
            if (cm > m[i]) {
                /* First chunk: m = -inf, so f = 0 and o, l are still zero. */
                float f = rt_exp(m[i] - cm);
                for (int64_t j = 0; j < dvp; j++)
                    o[i][j] *= f;
                l[i] *= f;
                m[i] = cm;
            }
            /* exp in its own loop so it vectorizes; the sum stays in key
             * order. */
            const float mi = m[i];
            for (int64_t t = 0; t < valid; t++)
                si[t] = rt_exp(si[t] - mi);
            for (int64_t t = 0; t < valid; t++)
                l[i] += si[t];
            for (int64_t t = valid; t < ncp; t++)
                si[t] = 0.0f;
        }

        for (int64_t i = 0; i < nq4; i += 4)
            for (int64_t j = 0; j < dvp; j += RT_ATTN_W)
                tile4x16(&o[i][j], RT_ATTN_MAXD, s[i], RT_ATTN_KC, &vp[0][j],
                         RT_ATTN_MAXD, ncp, 1);
    }

    for (int64_t i = 0; i < nq; i++) {
        float *orow = jb->out + ((s0 + i) * sh->seq_step + base) * sh->ldo
                      + h * dv;
        float inv = 1.0f / l[i];
        for (int64_t j = 0; j < dv; j++)
            orow[j] = o[i][j] * inv;
    }
}


/* ---- the row-at-a-time path for wide heads -------------------------- */

RT_INLINE float fold_lanes(float s[RT_LANES])
{
    for (int w = RT_LANES / 2; w > 0; w /= 2)
        for (int i = 0; i < w; i++)
            s[i] += s[i + w];
    return s[0];
}


RT_INLINE float dot(const float *a, const float *b, int64_t n)
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


/* One query row: o = softmax(scale * q·kᵀ) v over n_keys keys, key t at
 * k + t * kstride (and v likewise), with the same online softmax over
 * chunks of RT_ATTN_KC scores. */
RT_INLINE void attend_row(float *o, const float *q, const float *k,
                          int64_t kstride, const float *v, int64_t vstride,
                          int64_t n_keys, int64_t dqk, int64_t dv, float scale)
{
    float sc[RT_ATTN_KC];
    float m = -INFINITY, l = 0.0f;
    for (int64_t j = 0; j < dv; j++)
        o[j] = 0.0f;
    for (int64_t t0 = 0; t0 < n_keys; t0 += RT_ATTN_KC) {
        int64_t nc = n_keys - t0 < RT_ATTN_KC ? n_keys - t0 : RT_ATTN_KC;
        float cm = -INFINITY;
        for (int64_t i = 0; i < nc; i++) {
            sc[i] = scale * dot(q, k + (t0 + i) * kstride, dqk);
            cm = sc[i] > cm ? sc[i] : cm;
        }
        if (cm > m) {
            float f = rt_exp(m - cm);
            for (int64_t j = 0; j < dv; j++)
                o[j] *= f;
            l *= f;
            m = cm;
        }
        for (int64_t i = 0; i < nc; i++)
            sc[i] = rt_exp(sc[i] - m);
        for (int64_t i = 0; i < nc; i++) {
            const float *vt = v + (t0 + i) * vstride;
            l += sc[i];
            for (int64_t j = 0; j < dv; j++)
                o[j] += sc[i] * vt[j];
        }
    }
    float inv = 1.0f / l;
    for (int64_t j = 0; j < dv; j++)
        o[j] *= inv;
}


RT_INLINE void attend_rows(const attn_job *jb, int64_t b, int64_t h,
                           int64_t s0, int64_t nq)
{
    const rt_attention_shape *sh = jb->sh;
    const int64_t kstride = sh->seq_step * sh->ldk;
    const int64_t vstride = sh->seq_step * sh->ldv;
    const float *kb = jb->k + b * sh->batch_step * sh->ldk + h * sh->head_dim_qk;
    const float *vb = jb->v + b * sh->batch_step * sh->ldv + h * sh->head_dim_v;
    for (int64_t s = s0; s < s0 + nq; s++) {
        int64_t row = s * sh->seq_step + b * sh->batch_step;
        const float *qr = jb->q + row * sh->ldq + h * sh->head_dim_qk;
        float *orow = jb->out + row * sh->ldo + h * sh->head_dim_v;
        int64_t n_keys = sh->causal ? s + 1 : sh->seq;
        attend_row(orow, qr, kb, kstride, vb, vstride, n_keys,
                   sh->head_dim_qk, sh->head_dim_v, sh->scale);
    }
}


/* ---- tasks ----------------------------------------------------------- */

/* Tasks [begin, end): task = (b * heads + h) * n_qb + query block. */
RT_INLINE void attn_tasks(void *arg, int64_t begin, int64_t end)
{
    const attn_job *jb = arg;
    const rt_attention_shape *sh = jb->sh;
    int blocked = sh->head_dim_qk <= RT_ATTN_MAXD &&
                  sh->head_dim_v <= RT_ATTN_MAXD;
    for (int64_t t = begin; t < end; t++) {
        int64_t qb = t % jb->n_qb, bh = t / jb->n_qb;
        int64_t b = bh / sh->heads, h = bh % sh->heads;
        int64_t s0 = qb * RT_ATTN_QB;
        int64_t nq = sh->seq - s0 < RT_ATTN_QB ? sh->seq - s0 : RT_ATTN_QB;
        if (blocked)
            attend_block(jb, b, h, s0, nq);
        else
            attend_rows(jb, b, h, s0, nq);
    }
}


RT_ISA_VARIANTS(attn_range, attn_tasks)


void rt_attention(rt_ctx *ctx, float *out, const float *q, const float *k, const float *v,
                  const rt_attention_shape *sh)
{
    if (sh->seq <= 0 || sh->batch <= 0 || sh->heads <= 0)
        return;
    attn_job jb = {out, q, k, v, sh, (sh->seq + RT_ATTN_QB - 1) / RT_ATTN_QB};
    rt_task_fn fn = attn_range_for(rt_ctx_isa(ctx));
    int64_t n_tasks = sh->batch * sh->heads * jb.n_qb;
    int64_t work = sh->batch * sh->heads * sh->seq * sh->seq *
                   (sh->head_dim_qk + sh->head_dim_v);
    rt_parallel(ctx, rt_threads_for(ctx, work, RT_ATTN_GRAIN), n_tasks, fn,
                &jb);
}
