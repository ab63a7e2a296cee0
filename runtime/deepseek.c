/* deepseek.c — the kernels of DeepSeek-V3 (transformers'
 * DeepseekV3ForCausalLM): RMSNorm, the SwiGLU product, multi-head latent
 * attention over a compressed cache with YaRN RoPE, the sigmoid router
 * with group-limited top-k, and one routed expert.
 *
 * Everything is float32 as transformers computes it; where transformers'
 * choice depends on the order of equal values (torch.topk), the order is
 * reproduced exactly (see topk below). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dsc_runtime.h"
#include "rt_internal.h"
#include "rt_pack.h"

#if RT_X86_DISPATCH
#include <immintrin.h>
#endif


/* ---- RMSNorm and SwiGLU --------------------------------------------- */

/* One row: y = w * (x / sqrt(mean(x²) + eps)).  The mean is summed in
 * double, so it is at least as exact as torch's float reduction. */
static void rmsnorm_row(float *y, const float *x, const float *w, int64_t dim,
                        float eps)
{
    double ss = 0;
    for (int64_t i = 0; i < dim; i++)
        ss += (double)x[i] * x[i];
    float r = 1.0f / sqrtf((float)(ss / (double)dim) + eps);
    for (int64_t i = 0; i < dim; i++)
        y[i] = w[i] * (x[i] * r);
}


typedef struct rms_job {
    float *y;
    const float *x, *w;
    int64_t ldx, dim;
    float eps;
} rms_job;


static void rms_rows(void *arg, int64_t begin, int64_t end)
{
    const rms_job *j = arg;
    for (int64_t i = begin; i < end; i++)
        rmsnorm_row(j->y + i * j->dim, j->x + i * j->ldx, j->w, j->dim,
                    j->eps);
}


void rt_rmsnorm(rt_ctx *ctx, float *y, const float *x, int64_t ldx,
                const float *w, int64_t rows, int64_t dim, float eps)
{
    rms_job j = { y, x, w, ldx, dim, eps };
    rt_parallel(ctx, rt_threads_for(ctx, rows * dim, 1 << 16), rows,
                rms_rows, &j);
}


/* silu(a) * b as torch computes silu: a * sigmoid(a). */
static float silu(float a)
{
    return a / (1.0f + expf(-a));
}


void rt_silu_mul(rt_ctx *ctx, float *y, const float *a, int64_t lda,
                 const float *b, int64_t ldb, int64_t rows, int64_t dim)
{
    (void)ctx;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t k = 0; k < dim; k++)
            y[i * dim + k] = silu(a[i * lda + k]) * b[i * ldb + k];
}


/* ---- RoPE ------------------------------------------------------------ */

/* The inverse frequencies of transformers' default and YaRN RoPE over a
 * rope_dim-wide slice, in float32 as modeling_rope_utils computes them:
 * yarn blends 1/(factor·θ^(2j/d)) and 1/θ^(2j/d) by a linear ramp over
 * [low, high). */
void rt_rope_inv_freq(float *inv, const rt_mla_shape *s)
{
    int64_t half = s->d_rope / 2;
    for (int64_t j = 0; j < half; j++) {
        float pos_freq = powf(s->rope_theta, (float)(2 * j) / (float)s->d_rope);
        float extra = 1.0f / pos_freq;
        if (!s->rope_yarn) {
            inv[j] = extra;
            continue;
        }
        float inter = 1.0f / (s->rope_factor * pos_freq);
        float lo = s->rope_low, hi = s->rope_high;
        if (lo == hi)
            hi += 0.001f;
        float ramp = ((float)j - lo) / (hi - lo);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        float ef = 1.0f - ramp;
        inv[j] = inter * (1.0f - ef) + extra * ef;
    }
}


/* Rotate one rope slice x (d_rope floats) in place for position p: pairs
 * (x[2j], x[2j+1]) when interleaved (the checkpoints' layout), else
 * (x[j], x[j + d/2]); cos and sin carry the YaRN attention factor. */
static void rope_apply(float *x, const float *inv, int64_t p,
                       const rt_mla_shape *s)
{
    int64_t half = s->d_rope / 2;
    for (int64_t j = 0; j < half; j++) {
        float f = (float)p * inv[j];
        float c = cosf(f) * s->rope_attn, sn = sinf(f) * s->rope_attn;
        float *a = s->rope_interleave ? &x[2 * j] : &x[j];
        float *b = s->rope_interleave ? &x[2 * j + 1] : &x[j + half];
        float x0 = *a, x1 = *b;
        *a = x0 * c - x1 * sn;
        *b = x1 * c + x0 * sn;
    }
}


/* ---- multi-head latent attention -------------------------------------- */

#define MLA_KEY_BLOCK 32
#if !defined(MLA_PF)
#define MLA_PF 1024
#endif
#if !defined(MLA_PF_L2)
#define MLA_PF_L2 4096
#endif

/* kv_b_proj as rt_linear_pack stored it, in any layout: element (n, k)
 * of W is column n % P of row k of panel n / P. */
typedef struct mla_weight {
    const char *body;
    int64_t P, panel_bytes;
    int format;
} mla_weight;

typedef struct mla_job {
    float *out;
    const float *q, *cache, *inv;
    mla_weight kv_b;
    int64_t pos;
    const rt_mla_shape *s;
} mla_job;


/* kv_b_proj streams from memory once per token: ask for its lines ahead
 * of the bytes being read, into L2 from far and into L1 from near, as the
 * linear kernels do (a hint: it never faults, even past the end). */
RT_INLINE void mla_prefetch(const void *at, int64_t bytes)
{
    for (int64_t o = 0; o < bytes; o += 64) {
        __builtin_prefetch((const char *)at + MLA_PF_L2 + o, 0, 2);
        __builtin_prefetch((const char *)at + MLA_PF + o, 0, 3);
    }
}


RT_INLINE float mla_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;  /* bfloat16 is a float's top half */
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}


/* Row c of W's columns n .. n + len, which lie in one panel, as floats:
 * in place for float32, else converted into buf (q8: each value times its
 * column's scale, the value rt_linear_unpack gives). */
RT_INLINE const float *mla_row(const mla_weight *w, int64_t n, int64_t len,
                               int64_t c, float *buf)
{
    const char *panel = w->body + n / w->P * w->panel_bytes;
    const int64_t j = n % w->P, P = w->P;
    if (w->format == DSC_WEIGHTS_Q8) {
        const char *block = panel + c / RT_Q8_BLOCK * P * (4 + RT_Q8_BLOCK);
        const float *scale = (const float *)(const void *)block + j;
        const int8_t *q = (const int8_t *)(block + P * 4) +
                          c % RT_Q8_BLOCK * P + j;
        mla_prefetch(q, len);
        for (int64_t d = 0; d < len; d++)
            buf[d] = (float)q[d] * scale[d];
        return buf;
    }
    if (w->format == DSC_WEIGHTS_BF16) {
        const uint16_t *h = (const uint16_t *)(const void *)panel + c * P + j;
        mla_prefetch(h, len * 2);
        for (int64_t d = 0; d < len; d++)
            buf[d] = mla_bf16(h[d]);
        return buf;
    }
    const float *row = (const float *)(const void *)panel + c * P + j;
    mla_prefetch(row, len * 4);
    return row;
}


/* q_lat[c] += Σ_{d < len} x[d] · W(n + d, c) for c < r, columns n ..
 * n + len in one panel: a dot over a contiguous run per latent. */
RT_INLINE void mla_fold(float *q_lat, const float *x, const mla_weight *w,
                        int64_t n, int64_t len, int64_t r)
{
    float buf[RT_PANEL_MAX];
    for (int64_t c = 0; c < r; c++)
        q_lat[c] += rt_dot8(x, mla_row(w, n, len, c, buf), len);
}


/* y[d] += Σ_c W(n + d, c) · lat[c] for d < len, columns n .. n + len in one
 * panel: an axpy of a contiguous run per latent c. */
RT_INLINE void mla_unfold(float *y, const float *lat, const mla_weight *w,
                          int64_t n, int64_t len, int64_t r)
{
    float buf[RT_PANEL_MAX];
    for (int64_t c = 0; c < r; c++) {
        const float *row = mla_row(w, n, len, c, buf);
        for (int64_t d = 0; d < len; d++)
            y[d] += lat[c] * row[d];
    }
}


/* Columns from n on, up to end, that lie in n's panel. */
RT_INLINE int64_t mla_run(const mla_weight *w, int64_t n, int64_t end)
{
    int64_t in_panel = w->P - n % w->P;
    return in_panel < end - n ? in_panel : end - n;
}


/* One (token i, head h): the absorbed form.  With W_UK, W_UV head h's rows
 * of kv_b_proj, q_nope·(W_UK c_t) = (W_UKᵀ q_nope)·c_t, and the output
 * W_UV Σ p_t c_t: the latent cache is never expanded. */
RT_INLINE void mla_body(void *arg, int64_t begin, int64_t end)
{
    const mla_job *j = arg;
    const rt_mla_shape *s = j->s;
    int64_t r = s->rank, width = s->rank + s->d_rope;
    int64_t dqk = s->d_nope + s->d_rope;
    float q_lat[RT_MLA_MAX_RANK], o_lat[RT_MLA_MAX_RANK];
    float q_rope[RT_MLA_MAX_ROPE], scores[MLA_KEY_BLOCK];
    for (int64_t task = begin; task < end; task++) {
        int64_t i = task / s->heads, h = task % s->heads;
        int64_t last = j->pos + i;
        const float *q = j->q + i * s->ldq + h * dqk;
        const mla_weight *kv_b = &j->kv_b;
        const int64_t nk = h * (s->d_nope + s->d_v), nv = nk + s->d_nope;
        memset(q_lat, 0, (size_t)r * sizeof(float));
        for (int64_t n = nk, len; n < nv; n += len) {
            len = mla_run(kv_b, n, nv);
            mla_fold(q_lat, q + (n - nk), kv_b, n, len, r);
        }
        memcpy(q_rope, q + s->d_nope, (size_t)s->d_rope * sizeof(float));
        rope_apply(q_rope, j->inv, last, s);
        memset(o_lat, 0, (size_t)r * sizeof(float));
        float max = -INFINITY, sum = 0;
        for (int64_t t0 = 0; t0 <= last; t0 += MLA_KEY_BLOCK) {
            int64_t n = last + 1 - t0 < MLA_KEY_BLOCK ? last + 1 - t0
                                                      : MLA_KEY_BLOCK;
            float block_max = -INFINITY;
            for (int64_t t = 0; t < n; t++) {
                const float *row = j->cache + (t0 + t) * width;
                scores[t] = (rt_dot8(q_lat, row, r) + rt_dot8(q_rope, row + r,
                                                      s->d_rope)) * s->scale;
                block_max = scores[t] > block_max ? scores[t] : block_max;
            }
            float new_max = block_max > max ? block_max : max;
            float rescale = expf(max - new_max);  /* 0 on the first block */
            sum *= rescale;
            for (int64_t c = 0; c < r; c++)
                o_lat[c] *= rescale;
            for (int64_t t = 0; t < n; t++) {
                float p = expf(scores[t] - new_max);
                const float *row = j->cache + (t0 + t) * width;
                sum += p;
                for (int64_t c = 0; c < r; c++)
                    o_lat[c] += p * row[c];
            }
            max = new_max;
        }
        float inv_sum = 1.0f / sum;
        float *o = j->out + i * s->ldo + h * s->d_v;
        memset(o, 0, (size_t)s->d_v * sizeof(float));
        for (int64_t n = nv, len; n < nv + s->d_v; n += len) {
            len = mla_run(kv_b, n, nv + s->d_v);
            mla_unfold(o + (n - nv), o_lat, kv_b, n, len, r);
        }
        for (int64_t d = 0; d < s->d_v; d++)
            o[d] *= inv_sum;
    }
}


RT_ISA_VARIANTS(mla_tasks, mla_body)


void rt_mla_attention(rt_ctx *ctx, float *out, const float *q, const float *kv,
                      const float *kv_norm, const float *kv_b, float *cache,
                      int64_t n, int64_t pos, const rt_mla_shape *s)
{
    float inv[RT_MLA_MAX_ROPE / 2];
    int64_t w = s->rank + s->d_rope;
    rt_rope_inv_freq(inv, s);
    /* The cache keeps, per token, the normalized latent and the rotated
     * shared rope key: rank + d_rope floats. */
    for (int64_t i = 0; i < n; i++) {
        float *row = cache + (pos + i) * w;
        const float *src = kv + i * s->ldkv;
        rmsnorm_row(row, src, kv_norm, s->rank, s->eps);
        memcpy(row + s->rank, src + s->rank, (size_t)s->d_rope * sizeof(float));
        rope_apply(row + s->rank, inv, pos + i, s);
    }
    const int64_t n_out = s->heads * (s->d_nope + s->d_v);
    const int layout = rt_packed_layout(kv_b, n_out, s->rank);
    if (!layout) {
        /* Not kv_b packed for this shape: say so in the output rather
         * than read misread memory (as rt_linear does). */
        for (int64_t i = 0; i < n; i++)
            for (int64_t c = 0; c < s->heads * s->d_v; c++)
                out[i * s->ldo + c] = NAN;
        return;
    }
    mla_job j = { out, q, cache, inv,
                  { (const char *)(kv_b + RT_PACK_HEADER),
                    DSC_LAYOUT_PANEL_OF(layout),
                    rt_panel_bytes(layout, s->rank),
                    DSC_LAYOUT_FORMAT_OF(layout) },
                  pos, s };
    int64_t tasks = n * s->heads;
    int64_t work = tasks * ((pos + n) * 2 * w +
                            (s->d_nope + s->d_v) * s->rank);
    /* The body's dots are 8 lanes wide: its AVX-512 build took 30-45%
     * longer than the AVX2 one (perf, DeepSeek mid-size bf16 and q8
     * decode), so AVX-512 runs the AVX2 build. */
    int isa = rt_ctx_isa(ctx);
    rt_parallel(ctx, rt_threads_for(ctx, work, 1 << 16), tasks,
                mla_tasks_for(isa == DSC_ISA_AVX512 ? DSC_ISA_AVX2 : isa), &j);
}


/* ---- the router -------------------------------------------------------- */

/* torch.topk(x, k, sorted=False)'s indices on the CPU, equal values
 * included: ATen's TopKImpl pairs (value, index) in index order and runs
 * libstdc++'s std::partial_sort when k * 64 <= n, else std::nth_element,
 * with "a before b" meaning a.value > b.value; which of several equal
 * values are kept depends on those algorithms' exact steps, reproduced
 * here (bits/stl_heap.h, bits/stl_algo.h). */
typedef struct topk_elem {
    float v;
    int64_t i;
} topk_elem;

static int before(topk_elem a, topk_elem b)
{
    return (isnan(a.v) && !isnan(b.v)) || a.v > b.v;
}

static void swap_elem(topk_elem *a, topk_elem *b)
{
    topk_elem t = *a;
    *a = *b;
    *b = t;
}

static void push_heap(topk_elem *f, int64_t hole, int64_t top, topk_elem v)
{
    int64_t parent = (hole - 1) / 2;
    while (hole > top && before(f[parent], v)) {
        f[hole] = f[parent];
        hole = parent;
        parent = (hole - 1) / 2;
    }
    f[hole] = v;
}

static void adjust_heap(topk_elem *f, int64_t hole, int64_t len, topk_elem v)
{
    int64_t top = hole, child = hole;
    while (child < (len - 1) / 2) {
        child = 2 * (child + 1);
        if (before(f[child], f[child - 1]))
            child--;
        f[hole] = f[child];
        hole = child;
    }
    if ((len & 1) == 0 && child == (len - 2) / 2) {
        child = 2 * (child + 1);
        f[hole] = f[child - 1];
        hole = child - 1;
    }
    push_heap(f, hole, top, v);
}

static void make_heap(topk_elem *f, int64_t len)
{
    if (len < 2)
        return;
    for (int64_t parent = (len - 2) / 2;; parent--) {
        adjust_heap(f, parent, len, f[parent]);
        if (parent == 0)
            return;
    }
}

static void pop_heap(topk_elem *f, int64_t len, topk_elem *result)
{
    topk_elem v = *result;
    *result = f[0];
    adjust_heap(f, 0, len, v);
}

static void heap_select(topk_elem *f, int64_t middle, int64_t last)
{
    make_heap(f, middle);
    for (int64_t i = middle; i < last; i++)
        if (before(f[i], f[0]))
            pop_heap(f, middle, &f[i]);
}

static void partial_sort(topk_elem *f, int64_t middle, int64_t last)
{
    heap_select(f, middle, last);
    for (int64_t len = middle; len > 1; len--)
        pop_heap(f, len - 1, &f[len - 1]);
}

static void insertion_sort(topk_elem *f, int64_t n)
{
    for (int64_t i = 1; i < n; i++) {
        topk_elem v = f[i];
        if (before(v, f[0])) {
            memmove(f + 1, f, (size_t)i * sizeof *f);
            f[0] = v;
        } else {
            int64_t at = i;
            while (before(v, f[at - 1])) {
                f[at] = f[at - 1];
                at--;
            }
            f[at] = v;
        }
    }
}

static void move_median_to_first(topk_elem *f, int64_t result, int64_t a,
                                 int64_t b, int64_t c)
{
    int64_t m;
    if (before(f[a], f[b]))
        m = before(f[b], f[c]) ? b : before(f[a], f[c]) ? c : a;
    else
        m = before(f[a], f[c]) ? a : before(f[b], f[c]) ? c : b;
    swap_elem(&f[result], &f[m]);
}

static int64_t unguarded_partition(topk_elem *f, int64_t first, int64_t last,
                                   int64_t pivot)
{
    for (;;) {
        while (before(f[first], f[pivot]))
            first++;
        last--;
        while (before(f[pivot], f[last]))
            last--;
        if (!(first < last))
            return first;
        swap_elem(&f[first], &f[last]);
        first++;
    }
}

static void nth_element(topk_elem *f, int64_t nth, int64_t n)
{
    int64_t first = 0, last = n, depth = 0;
    for (int64_t m = n; m > 1; m >>= 1)
        depth++;
    depth *= 2;  /* std::__lg(n) * 2 */
    while (last - first > 3) {
        if (depth == 0) {
            heap_select(f + first, nth + 1 - first, last - first);
            swap_elem(&f[first], &f[nth]);
            return;
        }
        depth--;
        int64_t mid = first + (last - first) / 2;
        move_median_to_first(f, first, first + 1, mid, last - 1);
        int64_t cut = unguarded_partition(f, first + 1, last, first);
        if (cut <= nth)
            first = cut;
        else
            last = cut;
    }
    insertion_sort(f + first, last - first);
}


void rt_topk_indices(int64_t *idx, const float *x, int64_t n, int64_t k,
                     void *scratch)
{
    topk_elem *q = scratch;
    for (int64_t i = 0; i < n; i++)
        q[i] = (topk_elem){ x[i], i };
    if (k * 64 <= n)
        partial_sort(q, k, n);
    else if (k > 0)
        nth_element(q, k - 1, n);
    for (int64_t i = 0; i < k; i++)
        idx[i] = q[i].i;
}


size_t rt_topk_scratch_bytes(int64_t n)
{
    return (size_t)n * sizeof(topk_elem);
}


int rt_moe_route(rt_ctx *ctx, float *route, const float *logits,
                 const float *bias, int64_t rows, const rt_moe_shape *s)
{
    (void)ctx;
    int64_t e = s->experts, per = e / s->n_group;
    /* The 8-byte-aligned parts first: the top-k scratch and indices. */
    void *scratch = malloc(rt_topk_scratch_bytes(e) +
                           (size_t)(e + s->n_group) * sizeof(int64_t) +
                           (size_t)(3 * e + s->n_group) * sizeof(float));
    if (!scratch)
        return DSC_ENOMEM;
    int64_t *idx = (int64_t *)((char *)scratch + rt_topk_scratch_bytes(e));
    int64_t *gidx = idx + e;
    float *scores = (float *)(gidx + s->n_group), *choice = scores + e;
    float *masked = scores + 2 * e, *group = scores + 3 * e;
    for (int64_t r = 0; r < rows; r++) {
        const float *l = logits + r * e;
        float *out = route + r * 2 * s->top_k;
        for (int64_t i = 0; i < e; i++) {
            scores[i] = 1.0f / (1.0f + expf(-l[i]));
            choice[i] = scores[i] + bias[i];
        }
        /* Each group scored by the sum of its two best choice values. */
        for (int64_t g = 0; g < s->n_group; g++) {
            const float *c = choice + g * per;
            float a = -INFINITY, b = -INFINITY;
            for (int64_t i = 0; i < per; i++) {
                if (c[i] > a) {
                    b = a;
                    a = c[i];
                } else if (c[i] > b) {
                    b = c[i];
                }
            }
            group[g] = per > 1 ? a + b : a;
        }
        rt_topk_indices(gidx, group, s->n_group, s->topk_group, scratch);
        for (int64_t i = 0; i < e; i++)
            masked[i] = -INFINITY;
        for (int64_t g = 0; g < s->topk_group; g++)
            memcpy(masked + gidx[g] * per, choice + gidx[g] * per,
                   (size_t)per * sizeof(float));
        rt_topk_indices(idx, masked, e, s->top_k, scratch);
        /* Weights from the unbiased scores. */
        float denom = 0;
        for (int64_t k = 0; k < s->top_k; k++)
            denom += scores[idx[k]];
        denom += 1e-20f;
        for (int64_t k = 0; k < s->top_k; k++) {
            float wk = scores[idx[k]];
            if (s->norm)
                wk /= denom;
            out[k] = (float)idx[k];
            out[s->top_k + k] = wk * s->scale;
        }
    }
    free(scratch);
    return DSC_OK;
}


/* ---- one routed expert ------------------------------------------------- */

int rt_moe_expert(rt_ctx *ctx, float *y, const float *acc, const float *x,
                  const float *route, const float *gate_up, const float *down,
                  int64_t rows, int64_t dim, int64_t inter, int64_t top_k,
                  int64_t expert)
{
    if (y != acc)
        memmove(y, acc, (size_t)(rows * dim) * sizeof(float));
    int64_t count = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t k = 0; k < top_k; k++)
            count += route[i * 2 * top_k + k] == (float)expert;
    if (count == 0)
        return DSC_OK;  /* no token chose it: its weights are not read */
    int64_t *tok = malloc((size_t)count * sizeof(int64_t) +
                          (size_t)(count * (2 * dim + 3 * inter + 1)) *
                          sizeof(float));
    if (!tok)
        return DSC_ENOMEM;
    float *xs = (float *)(tok + count), *h = xs + count * dim;
    float *a = h + count * 2 * inter, *o = a + count * inter;
    float *wt = o + count * dim;
    int64_t c = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t k = 0; k < top_k; k++)
            if (route[i * 2 * top_k + k] == (float)expert) {
                memcpy(xs + c * dim, x + i * dim, (size_t)dim * sizeof(float));
                wt[c] = route[i * 2 * top_k + top_k + k];
                tok[c++] = i;
            }
    rt_linear(ctx, h, 2 * inter, xs, dim, gate_up, NULL, count, 2 * inter,
              dim, RT_ACT_NONE, NULL);
    rt_silu_mul(ctx, a, h, 2 * inter, h + inter, 2 * inter, count, inter);
    rt_linear(ctx, o, dim, a, inter, down, NULL, count, dim, inter,
              RT_ACT_NONE, NULL);
    for (int64_t t = 0; t < count; t++)
        for (int64_t d = 0; d < dim; d++)
            y[tok[t] * dim + d] += o[t * dim + d] * wt[t];
    free(tok);
    return DSC_OK;
}
