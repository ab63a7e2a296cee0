/* test_deepseek_kernels.c — runtime/deepseek.c against double-precision
 * references written here (RMSNorm, SwiGLU, RoPE and YaRN frequencies, MLA
 * in its plain expanded form, the router, one expert), and the router's
 * tie order against torch (tests/fixtures/deepseek_router, from
 * tools/export_deepseek_v3.py --router-ties). */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsc_runtime.h"
#include "io/npy.h"
#include "util/rng.h"


/* Uniform in [-1, 1). */
static float uniform(uint64_t *s)
{
    return (float)((double)(rng_next(s) >> 40) / (double)(1ULL << 24) * 2 - 1);
}


static float *random_floats(int64_t n, uint64_t *s, float scale)
{
    float *p = malloc((size_t)n * sizeof *p);
    cr_assert_not_null(p);
    for (int64_t i = 0; i < n; i++)
        p[i] = uniform(s) * scale;
    return p;
}


static void expect_close(const float *got, const double *want, int64_t n,
                         double tol, const char *what)
{
    double worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]) / (1 + fabs(want[i]));
        if (!(d <= worst)) {
            worst = d;
            at = i;
        }
    }
    cr_expect_leq(worst, tol, "%s: element %lld is %.9g, reference %.9g", what,
                  (long long)at, (double)got[at], want[at]);
}


Test(deepseek_kernels, rmsnorm_strided_and_in_place)
{
    uint64_t s = 1;
    int64_t rows = 5, dim = 37, ld = 41;
    float *x = random_floats(rows * ld, &s, 3), *w = random_floats(dim, &s, 1);
    float *y = malloc((size_t)(rows * dim) * sizeof *y);
    double *ref = malloc((size_t)(rows * dim) * sizeof *ref);
    for (int64_t i = 0; i < rows; i++) {
        double ss = 0;
        for (int64_t k = 0; k < dim; k++)
            ss += (double)x[i * ld + k] * x[i * ld + k];
        double r = 1 / sqrt(ss / dim + 1e-5);
        for (int64_t k = 0; k < dim; k++)
            ref[i * dim + k] = w[k] * x[i * ld + k] * r;
    }
    rt_rmsnorm(NULL, y, x, ld, w, rows, dim, 1e-5f);
    expect_close(y, ref, rows * dim, 1e-6, "rmsnorm");
    /* In place over a contiguous copy. */
    for (int64_t i = 0; i < rows; i++)
        memcpy(y + i * dim, x + i * ld, (size_t)dim * sizeof *y);
    rt_rmsnorm(NULL, y, y, dim, w, rows, dim, 1e-5f);
    expect_close(y, ref, rows * dim, 1e-6, "rmsnorm in place");
    free(x);
    free(w);
    free(y);
    free(ref);
}


Test(deepseek_kernels, silu_mul_strided)
{
    uint64_t s = 2;
    int64_t rows = 3, dim = 19, ld = 2 * dim;
    float *h = random_floats(rows * ld, &s, 6);
    float *y = malloc((size_t)(rows * dim) * sizeof *y);
    double *ref = malloc((size_t)(rows * dim) * sizeof *ref);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t k = 0; k < dim; k++) {
            double a = h[i * ld + k], b = h[i * ld + dim + k];
            ref[i * dim + k] = a / (1 + exp(-a)) * b;
        }
    rt_silu_mul(NULL, y, h, ld, h + dim, ld, rows, dim);
    expect_close(y, ref, rows * dim, 1e-6, "silu_mul");
    free(h);
    free(y);
    free(ref);
}


/* transformers' default and YaRN inverse frequencies, in double. */
static void ref_inv_freq(double *inv, const rt_mla_shape *s)
{
    int64_t half = s->d_rope / 2;
    for (int64_t j = 0; j < half; j++) {
        double pf = pow(s->rope_theta, 2.0 * j / s->d_rope);
        inv[j] = 1 / pf;
        if (s->rope_yarn) {
            double hi = s->rope_high == s->rope_low ? s->rope_high + 0.001
                                                    : s->rope_high;
            double ramp = (j - s->rope_low) / (hi - s->rope_low);
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            double ef = 1 - ramp;
            inv[j] = 1 / (s->rope_factor * pf) * (1 - ef) + 1 / pf * ef;
        }
    }
}


Test(deepseek_kernels, rope_frequencies_default_and_yarn)
{
    rt_mla_shape s = { .d_rope = 64, .rope_theta = 10000, .rope_attn = 1 };
    float inv[32];
    double ref[32];
    rt_rope_inv_freq(inv, &s);
    ref_inv_freq(ref, &s);
    expect_close(inv, ref, 32, 1e-6, "default");
    /* DeepSeek-V3's published YaRN: factor 40, original 4096, beta 32/1
     * give the ramp [10, 23] over 32 frequencies. */
    s.rope_yarn = 1;
    s.rope_factor = 40;
    s.rope_low = 10;
    s.rope_high = 23;
    rt_rope_inv_freq(inv, &s);
    ref_inv_freq(ref, &s);
    expect_close(inv, ref, 32, 1e-6, "yarn");
    /* Below the ramp: extrapolation (unchanged); above it: divided by 40. */
    cr_expect_float_eq(inv[3], (float)(1 / pow(10000, 6.0 / 64)), 1e-6);
    cr_expect_float_eq(inv[30], (float)(1 / (40 * pow(10000, 60.0 / 64))),
                       1e-9);
}


/* Rotate pairs of a rope slice in double, as transformers does. */
static void ref_rope(double *x, int64_t d, int64_t p, const double *inv,
                     double attn, int interleave)
{
    for (int64_t j = 0; j < d / 2; j++) {
        double c = cos((double)(float)((float)p * (float)inv[j])) * attn;
        double sn = sin((double)(float)((float)p * (float)inv[j])) * attn;
        int64_t a = interleave ? 2 * j : j, b = interleave ? 2 * j + 1 : j + d / 2;
        double x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * sn;
        x[b] = x1 * c + x0 * sn;
    }
}


/* MLA the way transformers writes it: expand the latent through kv_b into
 * per-head keys and values, then plain causal softmax attention. */
static void ref_mla(double *out, const float *q, const float *kv,
                    const float *norm, const float *kv_b, int64_t total,
                    const rt_mla_shape *s)
{
    int64_t h = s->heads, r = s->rank, dr = s->d_rope;
    int64_t dn = s->d_nope, dv = s->d_v, dqk = dn + dr;
    double inv[RT_MLA_MAX_ROPE / 2];
    ref_inv_freq(inv, s);
    double *lat = calloc((size_t)(total * r), sizeof *lat);
    double *kr = calloc((size_t)(total * dr), sizeof *kr);
    double *k = calloc((size_t)(total * h * dqk), sizeof *k);
    double *v = calloc((size_t)(total * h * dv), sizeof *v);
    for (int64_t t = 0; t < total; t++) {
        double ss = 0;
        for (int64_t c = 0; c < r; c++)
            ss += (double)kv[t * s->ldkv + c] * kv[t * s->ldkv + c];
        double rs = 1 / sqrt(ss / r + s->eps);
        for (int64_t c = 0; c < r; c++)
            lat[t * r + c] = norm[c] * kv[t * s->ldkv + c] * rs;
        for (int64_t c = 0; c < dr; c++)
            kr[t * dr + c] = kv[t * s->ldkv + r + c];
        ref_rope(kr + t * dr, dr, t, inv, s->rope_attn, s->rope_interleave);
        for (int64_t hh = 0; hh < h; hh++) {
            for (int64_t d = 0; d < dn + dv; d++) {
                double acc = 0;
                for (int64_t c = 0; c < r; c++)
                    acc += kv_b[(hh * (dn + dv) + d) * r + c] * lat[t * r + c];
                if (d < dn)
                    k[(t * h + hh) * dqk + d] = acc;
                else
                    v[(t * h + hh) * dv + d - dn] = acc;
            }
            for (int64_t c = 0; c < dr; c++)
                k[(t * h + hh) * dqk + dn + c] = kr[t * dr + c];
        }
    }
    double *qr = malloc((size_t)dqk * sizeof *qr);
    double *p = malloc((size_t)total * sizeof *p);
    for (int64_t t = 0; t < total; t++)
        for (int64_t hh = 0; hh < h; hh++) {
            for (int64_t d = 0; d < dqk; d++)
                qr[d] = q[t * s->ldq + hh * dqk + d];
            ref_rope(qr + dn, dr, t, inv, s->rope_attn, s->rope_interleave);
            double max = -INFINITY, sum = 0;
            for (int64_t u = 0; u <= t; u++) {
                p[u] = 0;
                for (int64_t d = 0; d < dqk; d++)
                    p[u] += qr[d] * k[(u * h + hh) * dqk + d];
                p[u] *= s->scale;
                max = p[u] > max ? p[u] : max;
            }
            for (int64_t u = 0; u <= t; u++)
                sum += (p[u] = exp(p[u] - max));
            for (int64_t d = 0; d < dv; d++) {
                double acc = 0;
                for (int64_t u = 0; u <= t; u++)
                    acc += p[u] * v[(u * h + hh) * dv + d];
                out[(t * h + hh) * dv + d] = acc / sum;
            }
        }
    free(lat);
    free(kr);
    free(k);
    free(v);
    free(qr);
    free(p);
}


/* A prefill of 5 tokens, then 2 one-token decode steps, against the
 * expanded form; strided q and kv rows; kv_b packed in every layout, the
 * reference reading the values the layout stores.  kv_b has 5 x (9 + 8)
 * = 85 rows, so key and value runs cross 32- and 64-column panel ends,
 * and a rank of 45 makes two q8 blocks, the second partial. */
static void check_mla_layout(int interleave, int yarn, int layout)
{
    uint64_t seed = 3 + (uint64_t)interleave + 2 * (uint64_t)yarn;
    rt_mla_shape s = { .heads = 5, .d_nope = 9, .d_rope = 6, .d_v = 8,
                       .rank = 45, .scale = 0.3f, .eps = 1e-6f,
                       .rope_theta = 50, .rope_attn = 1,
                       .rope_interleave = interleave };
    if (yarn) {
        s.rope_yarn = 1;
        s.rope_factor = 4;
        s.rope_low = 0;
        s.rope_high = 2;
        s.rope_attn = 1.1386294f;
    }
    int64_t total = 7, dqk = s.d_nope + s.d_rope, w = s.rank + s.d_rope;
    s.ldq = s.heads * dqk + 3;
    s.ldkv = w + 2;
    s.ldo = s.heads * s.d_v;
    float *q = random_floats(total * s.ldq, &seed, 1);
    float *kv = random_floats(total * s.ldkv, &seed, 1);
    float *norm = random_floats(s.rank, &seed, 1);
    int64_t n_out = s.heads * (s.d_nope + s.d_v);
    float *kv_b = random_floats(n_out * s.rank, &seed, 0.5f);
    float *packed = malloc((size_t)rt_linear_packed_floats(n_out, s.rank,
                                                           layout) *
                           sizeof *packed);
    rt_linear_pack(packed, kv_b, n_out, s.rank, layout);
    cr_assert_eq(rt_linear_unpack(kv_b, packed, n_out, s.rank), 0);
    float *cache = calloc((size_t)(total * w), sizeof *cache);
    float *out = malloc((size_t)(total * s.ldo) * sizeof *out);
    double *ref = malloc((size_t)(total * s.ldo) * sizeof *ref);
    ref_mla(ref, q, kv, norm, kv_b, total, &s);
    rt_mla_attention(NULL, out, q, kv, norm, packed, cache, 5, 0, &s);
    for (int64_t t = 5; t < total; t++)
        rt_mla_attention(NULL, out + t * s.ldo, q + t * s.ldq, kv + t * s.ldkv,
                         norm, packed, cache, 1, t, &s);
    expect_close(out, ref, total * s.ldo, 2e-6, rt_layout_name(layout));
    /* The cache row of a token: its normalized latent, then its rotated
     * rope key (nothing else). */
    double ss = 0;
    int64_t t = 6;
    for (int64_t c = 0; c < s.rank; c++)
        ss += (double)kv[t * s.ldkv + c] * kv[t * s.ldkv + c];
    cr_expect_float_eq(cache[t * w + 2], norm[2] * kv[t * s.ldkv + 2] /
                       sqrt(ss / s.rank + 1e-6), 1e-5);
    free(q);
    free(kv);
    free(norm);
    free(kv_b);
    free(packed);
    free(cache);
    free(out);
    free(ref);
}

static void check_mla(int interleave, int yarn)
{
    for (int panel = 32; panel <= 64; panel *= 2)
        for (int format = DSC_WEIGHTS_F32; format <= DSC_WEIGHTS_Q8; format++)
            check_mla_layout(interleave, yarn, DSC_LAYOUT(panel, format));
}


Test(deepseek_kernels, mla_absorbed_equals_expanded_interleaved)
{
    check_mla(1, 0);
}

Test(deepseek_kernels, mla_absorbed_equals_expanded_halves_yarn)
{
    check_mla(0, 1);
}


/* The router in double: sigmoid, bias for the choice, groups by the sum of
 * their top two, the best topk_group groups, top_k experts among them
 * (no ties in these inputs). */
static void ref_route(int64_t *idx, double *w, const float *logits,
                      const float *bias, const rt_moe_shape *s)
{
    int64_t e = s->experts, per = e / s->n_group;
    double sc[64], ch[64], gs[16];
    int keep[16] = {0}, taken[64] = {0};
    for (int64_t i = 0; i < e; i++) {
        sc[i] = 1 / (1 + exp(-(double)logits[i]));
        ch[i] = sc[i] + bias[i];
    }
    for (int64_t g = 0; g < s->n_group; g++) {
        double a = -INFINITY, b = -INFINITY;
        for (int64_t i = g * per; i < (g + 1) * per; i++) {
            if (ch[i] > a) {
                b = a;
                a = ch[i];
            } else if (ch[i] > b) {
                b = ch[i];
            }
        }
        gs[g] = a + b;
    }
    for (int64_t k = 0; k < s->topk_group; k++) {
        int64_t best = -1;
        for (int64_t g = 0; g < s->n_group; g++)
            if (!keep[g] && (best < 0 || gs[g] > gs[best]))
                best = g;
        keep[best] = 1;
    }
    double sum = 0;
    for (int64_t k = 0; k < s->top_k; k++) {
        int64_t best = -1;
        for (int64_t i = 0; i < e; i++)
            if (keep[i / per] && !taken[i] && (best < 0 || ch[i] > ch[best]))
                best = i;
        taken[best] = 1;
        idx[k] = best;
        sum += sc[best];
    }
    for (int64_t k = 0; k < s->top_k; k++)
        w[k] = (s->norm ? sc[idx[k]] / sum : sc[idx[k]]) * s->scale;
}


Test(deepseek_kernels, router_groups_exclude_and_weights)
{
    uint64_t seed = 9;
    rt_moe_shape s = { .experts = 32, .n_group = 4, .topk_group = 2,
                       .top_k = 6, .norm = 1, .scale = 2.5f };
    int64_t rows = 40;
    float *logits = random_floats(rows * 32, &seed, 3);
    float *bias = random_floats(32, &seed, 0.3f);
    float *route = malloc((size_t)(rows * 12) * sizeof *route);
    int excluded = 0;
    for (int norm = 0; norm < 2; norm++) {
        s.norm = norm;
        cr_assert_eq(rt_moe_route(NULL, route, logits, bias, rows, &s), DSC_OK);
        for (int64_t r = 0; r < rows; r++) {
            int64_t idx[6];
            double w[6];
            ref_route(idx, w, logits + r * 32, bias, &s);
            /* The set and each expert's weight (the order is torch's). */
            for (int64_t k = 0; k < 6; k++) {
                int found = 0;
                for (int64_t m = 0; m < 6; m++)
                    if (route[r * 12 + m] == (float)idx[k]) {
                        found = 1;
                        cr_expect_float_eq(route[r * 12 + 6 + m], w[k], 1e-6,
                                           "row %lld expert %lld weight",
                                           (long long)r, (long long)idx[k]);
                    }
                cr_expect(found, "row %lld: expert %lld not chosen",
                          (long long)r, (long long)idx[k]);
            }
            /* Would the best six overall have differed?  Then the groups
             * excluded some. */
            rt_moe_shape all = s;
            all.n_group = all.topk_group = 1;
            int64_t idx_all[6];
            double w_all[6];
            ref_route(idx_all, w_all, logits + r * 32, bias, &all);
            excluded += memcmp(idx, idx_all, sizeof idx) != 0;
        }
    }
    cr_expect_gt(excluded, 0, "the groups never changed a choice");
    free(logits);
    free(bias);
    free(route);
}


static void load(const char *name, npy_array *a)
{
    char path[256];
    dsc_err err;
    snprintf(path, sizeof path, "tests/fixtures/deepseek_router/ties_%s.npy",
             name);
    cr_assert_eq(npy_read(path, a, &err), 0, "%s", err.msg);
}


Test(deepseek_kernels, topk_ties_as_torch)
{
    npy_array x, idx, nk;
    load("x", &x);
    load("idx", &idx);
    load("nk", &nk);
    const float *xs = x.data;
    const int32_t *want = idx.data, *sizes = nk.data;
    int64_t at_x = 0, at_k = 0, cases = nk.shape[0];
    int64_t got[64];
    void *scratch = malloc(rt_topk_scratch_bytes(2048));
    for (int64_t c = 0; c < cases; c++) {
        int64_t n = sizes[2 * c], k = sizes[2 * c + 1];
        cr_assert_leq(k, 64);
        rt_topk_indices(got, xs + at_x, n, k, scratch);
        for (int64_t i = 0; i < k; i++)
            cr_expect_eq(got[i], want[at_k + i], "case %lld (n %lld, k %lld) "
                         "slot %lld: %lld, torch %d", (long long)c,
                         (long long)n, (long long)k, (long long)i,
                         (long long)got[i], want[at_k + i]);
        at_x += n;
        at_k += k;
    }
    cr_assert_eq(at_x, x.count);
    free(scratch);
    npy_free(&x);
    npy_free(&idx);
    npy_free(&nk);
}


Test(deepseek_kernels, router_ties_as_transformers)
{
    npy_array logits, bias, idx, w;
    load("router_logits", &logits);
    load("router_bias", &bias);
    load("router_idx", &idx);
    load("router_w", &w);
    rt_moe_shape s = { .experts = 16, .n_group = 4, .topk_group = 2,
                       .top_k = 4, .norm = 1, .scale = 2.5f };
    int64_t rows = logits.shape[0];
    float *route = malloc((size_t)(rows * 8) * sizeof *route);
    cr_assert_eq(rt_moe_route(NULL, route, logits.data, bias.data, rows, &s),
                 DSC_OK);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < 4; k++) {
            cr_expect_eq(route[r * 8 + k], (float)((int32_t *)idx.data)[r * 4 + k],
                         "row %lld slot %lld", (long long)r, (long long)k);
            cr_expect_float_eq(route[r * 8 + 4 + k],
                               ((float *)w.data)[r * 4 + k], 1e-6,
                               "row %lld slot %lld weight", (long long)r,
                               (long long)k);
        }
    free(route);
    npy_free(&logits);
    npy_free(&bias);
    npy_free(&idx);
    npy_free(&w);
}


/* x rounded to the nearest bfloat16 (ties to even), in double. */
static float bf16_round(float x)
{
    double m = fabs((double)x);
    if (m == 0)
        return x;
    int e;
    frexp(m, &e);
    double ulp = ldexp(1, e - 8);  /* 8 significant bits */
    double q = m / ulp, r = floor(q);
    if (q - r > 0.5 || (q - r == 0.5 && fmod(r, 2) != 0))
        r += 1;
    return (float)(x < 0 ? -r * ulp : r * ulp);
}


Test(deepseek_kernels, bf16_rounding)
{
    float x[6] = { 1.0f, 1.00390625f, 1.01171875f, -3.14159f, 1e-30f, 65504.3f };
    uint16_t b[6];
    rt_to_bf16(b, x, 6);
    for (int i = 0; i < 6; i++) {
        uint32_t u = (uint32_t)b[i] << 16;
        float f;
        memcpy(&f, &u, sizeof f);
        cr_expect_eq(f, bf16_round(x[i]), "%.9g -> %.9g, expected %.9g",
                     (double)x[i], (double)f, (double)bf16_round(x[i]));
    }
}


/* One expert against double; an expert no token chose reads no weights
 * (NULL here) and leaves acc as it was. */
Test(deepseek_kernels, expert_reads_only_when_chosen)
{
    uint64_t seed = 11;
    int64_t rows = 4, dim = 13, inter = 9, top_k = 2;
    float *x = random_floats(rows * dim, &seed, 1);
    float *acc = random_floats(rows * dim, &seed, 1);
    float *gu = random_floats(2 * inter * dim, &seed, 0.5f);
    float *dn = random_floats(dim * inter, &seed, 0.5f);
    float *gu_p = malloc((size_t)rt_linear_packed_floats(2 * inter, dim, DSC_LAYOUT_PANEL64) *
                         sizeof(float));
    float *dn_p = malloc((size_t)rt_linear_packed_floats(dim, inter, DSC_LAYOUT_PANEL64) *
                         sizeof(float));
    rt_linear_pack(gu_p, gu, 2 * inter, dim, DSC_LAYOUT_PANEL64);
    rt_linear_pack(dn_p, dn, dim, inter, DSC_LAYOUT_PANEL64);
    /* Rows 0 and 2 chose expert 5 (in slots 1 and 0). */
    float route[4 * 4] = { 1, 5, 0.25f, 0.75f,   2, 3, 0.5f, 0.5f,
                           5, 0, 1.5f, 0.1f,     7, 1, 0.2f, 0.3f };
    float *y = malloc((size_t)(rows * dim) * sizeof *y);
    double *ref = malloc((size_t)(rows * dim) * sizeof *ref);
    for (int64_t i = 0; i < rows; i++) {
        double wt = i == 0 ? 0.75 : i == 2 ? 1.5 : 0;
        double a[16];
        for (int64_t j = 0; j < inter; j++) {
            double g = 0, u = 0;
            for (int64_t k = 0; k < dim; k++) {
                g += (double)gu[j * dim + k] * x[i * dim + k];
                u += (double)gu[(inter + j) * dim + k] * x[i * dim + k];
            }
            a[j] = g / (1 + exp(-g)) * u;
        }
        for (int64_t d = 0; d < dim; d++) {
            double o = 0;
            for (int64_t j = 0; j < inter; j++)
                o += (double)dn[d * inter + j] * a[j];
            ref[i * dim + d] = acc[i * dim + d] + wt * o;
        }
    }
    cr_assert_eq(rt_moe_expert(NULL, y, acc, x, route, gu_p, dn_p, rows, dim,
                               inter, top_k, 5), DSC_OK);
    expect_close(y, ref, rows * dim, 2e-6, "moe_expert");
    /* Expert 4: nobody chose it; in place over acc. */
    memcpy(y, acc, (size_t)(rows * dim) * sizeof *y);
    cr_assert_eq(rt_moe_expert(NULL, y, y, x, route, NULL, NULL, rows, dim,
                               inter, top_k, 4), DSC_OK);
    cr_expect_arr_eq(y, acc, (size_t)(rows * dim) * sizeof *y);
    /* Weights stored as bfloat16: with weights that are bfloat16 values
     * already, the same result. */
    for (int64_t i = 0; i < 2 * inter * dim; i++)
        gu[i] = bf16_round(gu[i]);
    for (int64_t i = 0; i < dim * inter; i++)
        dn[i] = bf16_round(dn[i]);
    for (int64_t i = 0; i < rows; i++) {
        double wt = i == 0 ? 0.75 : i == 2 ? 1.5 : 0;
        double a[16];
        for (int64_t j = 0; j < inter; j++) {
            double g = 0, u = 0;
            for (int64_t k = 0; k < dim; k++) {
                g += (double)gu[j * dim + k] * x[i * dim + k];
                u += (double)gu[(inter + j) * dim + k] * x[i * dim + k];
            }
            a[j] = g / (1 + exp(-g)) * u;
        }
        for (int64_t d = 0; d < dim; d++) {
            double o = 0;
            for (int64_t j = 0; j < inter; j++)
                o += (double)dn[d * inter + j] * a[j];
            ref[i * dim + d] = acc[i * dim + d] + wt * o;
        }
    }
    /* Odd sizes: the panels padded past 2 inter (18) and dim (13) alike. */
    const int bf16_layout = DSC_LAYOUT(DSC_LAYOUT_PANEL32, DSC_WEIGHTS_BF16);
    float *gu16 = malloc((size_t)rt_linear_packed_floats(2 * inter, dim,
                                                         bf16_layout) *
                         sizeof(float));
    float *dn16 = malloc((size_t)rt_linear_packed_floats(dim, inter,
                                                         bf16_layout) *
                         sizeof(float));
    rt_linear_pack(gu16, gu, 2 * inter, dim, bf16_layout);
    rt_linear_pack(dn16, dn, dim, inter, bf16_layout);
    cr_assert_eq(rt_moe_expert(NULL, y, acc, x, route, gu16, dn16, rows, dim,
                               inter, top_k, 5), DSC_OK);
    expect_close(y, ref, rows * dim, 2e-6, "moe_expert bf16");
    free(gu16);
    free(dn16);
    free(x);
    free(acc);
    free(gu);
    free(dn);
    free(gu_p);
    free(dn_p);
    free(y);
    free(ref);
}
