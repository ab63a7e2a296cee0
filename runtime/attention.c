/* attention.c — rt_attention: softmax(scale * q kᵀ [+ causal mask]) v for
 * every (batch, head), reading q, k and v by stride (they are usually
 * column slices of one fused QKV buffer).
 *
 * The work is cut into tasks of one (batch, head, block of RT_ATTN_QB
 * queries), spread over the context's threads.  A task copies its queries
 * once, transposed, so that the RT_ATTN_QB queries lie across the lanes of
 * a vector: a score row st[t][.] is then key t against every query of the
 * block, computed from key t's row where it lies (a broadcast per element,
 * no copy of the keys), and the softmax's max, exp and sum run across
 * queries as plain vector operations.  O += P V reads each value row where
 * it lies too.  The keys are walked a chunk of RT_ATTN_KC at a time with a
 * running max and denominator per query (an online softmax), so any length
 * of sequence fits in a fixed buffer; with one chunk (n_keys <=
 * RT_ATTN_KC) this is exactly the two-pass softmax.  Every sum runs in a
 * fixed order, so results do not depend on threads.
 *
 * Heads wider than RT_ATTN_MAXD take a simpler row-at-a-time path.
 *
 * Build it with -ffp-contract=fast (the Makefile does): the products'
 * c += a * b become FMAs only then, under -std=c11.
 */
#include "rt_internal.h"

#include <math.h>
#include <string.h>

#define RT_ATTN_QB   16   /* queries per task: the lanes of a score row */
#define RT_ATTN_KC   64   /* keys per chunk */
/* Keys per register tile of Q Kᵀ and queries per tile of P V: 8 rows of
 * accumulators fill AVX-512's 32 registers well; with AVX2, where a row
 * is two of 16 registers, 4. */
#define RT_ATTN_TILE_WIDE   8
#define RT_ATTN_TILE_NARROW 4
#define RT_ATTN_MAXD 128  /* head_dim limit of the blocked path */
#define RT_ATTN_W    16   /* columns of a P V register tile */
#define RT_LANES     8
/* Multiply-adds per thread below which attention stays on fewer threads. */
#define RT_ATTN_GRAIN (1 << 15)

_Static_assert(RT_ATTN_QB % RT_ATTN_TILE_WIDE == 0 &&
               RT_ATTN_KC % RT_ATTN_TILE_WIDE == 0 &&
               RT_ATTN_TILE_WIDE % RT_ATTN_TILE_NARROW == 0,
               "query blocks and key chunks are whole tiles");


static int64_t round_up(int64_t n, int64_t m)
{
    return (n + m - 1) / m * m;
}


/* The two products are written on GCC/Clang vectors so each accumulator
 * row stays in registers whatever the ISA (left to itself, gcc vectorizes
 * them across the wrong loop): a row of 16 floats (RT_ATTN_QB, RT_ATTN_W)
 * is one rt_v16, a zmm register, in the wide tiles for AVX-512, and two
 * rt_v8, ymm registers, in the narrow ones for AVX2 (gcc keeps an array of
 * rt_v16 in memory when it must split them).  Loads and stores go through
 * memcpy: rows need not be aligned. */
typedef float rt_v16 __attribute__((vector_size(64)));
typedef float rt_v8 __attribute__((vector_size(32)));

_Static_assert(RT_ATTN_QB == 16 && RT_ATTN_W == 16, "rows are one rt_v16");


/* st[u][0..QB) = sum_d key[u][d] * qt[d][0..QB) for the
 * RT_ATTN_TILE_WIDE keys of one tile, d in order. */
RT_INLINE void score_tile_wide(float st[][RT_ATTN_QB],
                               const float *const key[],
                               const float qt[][RT_ATTN_QB], int64_t dqk)
{
    rt_v16 c[RT_ATTN_TILE_WIDE] = {{0}};
    for (int64_t d = 0; d < dqk; d++) {
        rt_v16 q;
        memcpy(&q, qt[d], sizeof q);
        for (int u = 0; u < RT_ATTN_TILE_WIDE; u++)
            c[u] += key[u][d] * q;
    }
    memcpy(st, c, sizeof c);
}


/* The same for RT_ATTN_TILE_NARROW keys, in halves of 8 queries. */
RT_INLINE void score_tile_narrow(float st[][RT_ATTN_QB],
                                 const float *const key[],
                                 const float qt[][RT_ATTN_QB], int64_t dqk)
{
    rt_v8 c[RT_ATTN_TILE_NARROW][2] = {{{0}}};
    for (int64_t d = 0; d < dqk; d++) {
        rt_v8 q0, q1;
        memcpy(&q0, qt[d], sizeof q0);
        memcpy(&q1, qt[d] + 8, sizeof q1);
        for (int u = 0; u < RT_ATTN_TILE_NARROW; u++) {
            c[u][0] += key[u][d] * q0;
            c[u][1] += key[u][d] * q1;
        }
    }
    memcpy(st, c, sizeof c);
}


/* o[i][0..W) += sum_t p[t][i] * val[t][col..col + W) for the
 * RT_ATTN_TILE_WIDE queries i of one tile (o rows RT_ATTN_MAXD apart, p
 * rows RT_ATTN_QB apart), keys t < nk in order. */
RT_INLINE void value_tile_wide(float *o, const float *p,
                               const float *const val[], int64_t col,
                               int64_t nk)
{
    rt_v16 c[RT_ATTN_TILE_WIDE];
    for (int i = 0; i < RT_ATTN_TILE_WIDE; i++)
        memcpy(&c[i], o + i * RT_ATTN_MAXD, sizeof c[i]);
    for (int64_t t = 0; t < nk; t++) {
        rt_v16 v;
        memcpy(&v, val[t] + col, sizeof v);
        const float *pt = p + t * RT_ATTN_QB;
        for (int i = 0; i < RT_ATTN_TILE_WIDE; i++)
            c[i] += pt[i] * v;
    }
    for (int i = 0; i < RT_ATTN_TILE_WIDE; i++)
        memcpy(o + i * RT_ATTN_MAXD, &c[i], sizeof c[i]);
}


/* The same for RT_ATTN_TILE_NARROW queries, in halves of 8 columns. */
RT_INLINE void value_tile_narrow(float *o, const float *p,
                                 const float *const val[], int64_t col,
                                 int64_t nk)
{
    rt_v8 c[RT_ATTN_TILE_NARROW][2];
    for (int i = 0; i < RT_ATTN_TILE_NARROW; i++)
        memcpy(c[i], o + i * RT_ATTN_MAXD, sizeof c[i]);
    for (int64_t t = 0; t < nk; t++) {
        rt_v8 v0, v1;
        memcpy(&v0, val[t] + col, sizeof v0);
        memcpy(&v1, val[t] + col + 8, sizeof v1);
        const float *pt = p + t * RT_ATTN_QB;
        for (int i = 0; i < RT_ATTN_TILE_NARROW; i++) {
            c[i][0] += pt[i] * v0;
            c[i][1] += pt[i] * v1;
        }
    }
    for (int i = 0; i < RT_ATTN_TILE_NARROW; i++)
        memcpy(o + i * RT_ATTN_MAXD, c[i], sizeof c[i]);
}


/* The same for the last cols < W columns of a head. */
RT_INLINE void value_tail(float *o, const float *p, const float *const val[],
                          int64_t col, int64_t nk, int64_t cols, int qu)
{
    for (int i = 0; i < qu; i++)
        for (int64_t j = 0; j < cols; j++) {
            float c = o[i * RT_ATTN_MAXD + j];
            for (int64_t t = 0; t < nk; t++)
                c += p[t * RT_ATTN_QB + i] * val[t][col + j];
            o[i * RT_ATTN_MAXD + j] = c;
        }
}


typedef struct attn_job {
    float *out;
    const float *q, *k, *v;
    const rt_attention_shape *sh;
    int64_t n_qb;       /* query blocks per (batch, head) */
    int wide;           /* RT_ATTN_TILE_WIDE tiles (AVX-512), else narrow */
} attn_job;


/* The blocked path for one task: (b, h) and queries [s0, s0 + nq). */
RT_INLINE void attend_block(const attn_job *jb, int64_t b, int64_t h,
                            int64_t s0, int64_t nq)
{
    const rt_attention_shape *sh = jb->sh;
    const int64_t dqk = sh->head_dim_qk, dv = sh->head_dim_v;
    /* Consecutive positions of one batch entry are seq_step rows apart. */
    const int64_t base = b * sh->batch_step;
    const int tile = jb->wide ? RT_ATTN_TILE_WIDE : RT_ATTN_TILE_NARROW;
    const int64_t nqu = round_up(nq, tile);
    _Alignas(64) float qt[RT_ATTN_MAXD][RT_ATTN_QB];  /* queries, transposed */
    _Alignas(64) float st[RT_ATTN_KC][RT_ATTN_QB];    /* scores, then p */
    _Alignas(64) float o[RT_ATTN_QB][RT_ATTN_MAXD];   /* unnormalized out */
    _Alignas(64) float m[RT_ATTN_QB], l[RT_ATTN_QB], f[RT_ATTN_QB];
    const float *key[RT_ATTN_KC], *val[RT_ATTN_KC];

    /* Lanes past nq are zero queries: finite scores, outputs dropped. */
    for (int64_t d = 0; d < dqk; d++)
        for (int j = 0; j < RT_ATTN_QB; j++)
            qt[d][j] = 0.0f;
    for (int64_t j = 0; j < nq; j++) {
        const float *qr = jb->q + ((s0 + j) * sh->seq_step + base) * sh->ldq
                          + h * dqk;
        for (int64_t d = 0; d < dqk; d++)
            qt[d][j] = qr[d];
    }
    memset(o, 0, sizeof o);
    for (int j = 0; j < RT_ATTN_QB; j++) {
        m[j] = -INFINITY;
        l[j] = 0.0f;
    }

    /* Causal: no query of the block sees past its last position. */
    const int64_t n_keys = sh->causal ? s0 + nq : sh->seq;
    for (int64_t t0 = 0; t0 < n_keys; t0 += RT_ATTN_KC) {
        const int64_t nc = n_keys - t0 < RT_ATTN_KC ? n_keys - t0 : RT_ATTN_KC;
        /* Keys of whole tiles; past nc the last key again, scores unused. */
        for (int64_t t = 0; t < round_up(nc, tile); t++) {
            int64_t row = (t0 + (t < nc ? t : nc - 1)) * sh->seq_step + base;
            key[t] = jb->k + row * sh->ldk + h * dqk;
            val[t] = jb->v + row * sh->ldv + h * dv;
        }
        for (int64_t t = 0; t < nc; t += tile) {
            if (jb->wide)
                score_tile_wide(st + t, key + t, qt, dqk);
            else
                score_tile_narrow(st + t, key + t, qt, dqk);
        }

        /* The softmax across the block's queries, a key row at a time. */
        for (int64_t t = 0; t < nc; t++)
            for (int j = 0; j < RT_ATTN_QB; j++)
                st[t][j] *= sh->scale;
        if (sh->causal)  /* key t0 + t is past query s0 + j */
            for (int64_t t = 0; t < nc; t++)
                for (int j = 0; j < RT_ATTN_QB; j++)
                    if (t0 + t > s0 + j)
                        st[t][j] = -INFINITY;
        float cm[RT_ATTN_QB];
        for (int j = 0; j < RT_ATTN_QB; j++)
            cm[j] = m[j];
        for (int64_t t = 0; t < nc; t++)
            for (int j = 0; j < RT_ATTN_QB; j++)
                cm[j] = st[t][j] > cm[j] ? st[t][j] : cm[j];
        /* exp(old max - new max): 0 on the first chunk, where o and l are
         * still zero; exactly 1 where the max did not move.  Key 0 is in
         * the first chunk for every query, so no max stays -inf. */
        for (int j = 0; j < RT_ATTN_QB; j++) {
            f[j] = rt_exp(m[j] - cm[j]);
            m[j] = cm[j];
            l[j] *= f[j];
        }
        for (int64_t i = 0; i < nqu; i++)
            for (int64_t j = 0; j < dv; j++)
                o[i][j] *= f[i];
        for (int64_t t = 0; t < nc; t++)
            for (int j = 0; j < RT_ATTN_QB; j++)
                st[t][j] = rt_exp(st[t][j] - m[j]);
        for (int64_t t = 0; t < nc; t++)  /* in key order */
            for (int j = 0; j < RT_ATTN_QB; j++)
                l[j] += st[t][j];

        for (int64_t i = 0; i < nqu; i += tile) {
            int64_t j = 0;
            for (; j + RT_ATTN_W <= dv; j += RT_ATTN_W) {
                if (jb->wide)
                    value_tile_wide(&o[i][j], &st[0][i], val, j, nc);
                else
                    value_tile_narrow(&o[i][j], &st[0][i], val, j, nc);
            }
            if (j < dv)
                value_tail(&o[i][j], &st[0][i], val, j, nc, dv - j, tile);
        }
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
    attn_job jb = {out, q, k, v, sh, (sh->seq + RT_ATTN_QB - 1) / RT_ATTN_QB,
                   rt_ctx_isa(ctx) == DSC_ISA_AVX512};
    rt_task_fn fn = attn_range_for(rt_ctx_isa(ctx));
    int64_t n_tasks = sh->batch * sh->heads * jb.n_qb;
    int64_t work = sh->batch * sh->heads * sh->seq * sh->seq *
                   (sh->head_dim_qk + sh->head_dim_v);
    rt_parallel(ctx, rt_threads_for(ctx, work, RT_ATTN_GRAIN), n_tasks, fn,
                &jb);
}
