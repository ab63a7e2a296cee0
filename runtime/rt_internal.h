/* rt_internal.h — what the runtime's own files share and generated code
 * never sees: the thread pool's entry point, the GEMM kernel cache hook
 * and the CPU dispatch helpers. */
#ifndef DSC_RT_INTERNAL_H
#define DSC_RT_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "dsc_runtime.h"

/* One piece of a parallel job: tasks [begin, end) of it. */
typedef void (*rt_task_fn)(void *arg, int64_t begin, int64_t end);

/* Run fn over tasks [0, n_tasks) on T = min(threads, ctx's threads,
 * n_tasks) threads, cut into one contiguous range per thread (thread t
 * gets [t*n/T, (t+1)*n/T)), the caller taking range 0; returns when all
 * ranges are done.  The partition depends only on n_tasks and T, and the
 * kernels' tasks write disjoint outputs, so results are the same bits on
 * every run.  ctx NULL or T == 1: fn runs on the caller alone.  Not
 * reentrant: fn must not call rt_parallel. */
void rt_parallel(rt_ctx *ctx, int threads, int64_t n_tasks, rt_task_fn fn,
                 void *arg);

/* The threads that should share a job of `work` units (about one
 * multiply-add or element each) when below `grain` units per thread is
 * not worth waking a thread for.  Always at least 1. */
int rt_threads_for(const rt_ctx *ctx, int64_t work, int64_t grain);

/* gemm.c's per-context kernel cache: opaque to ctx.c, which owns the
 * pointer and frees it through rt_gemm_cache_free. */
struct rt_gemm_cache;
struct rt_gemm_cache **rt_ctx_gemm_cache(rt_ctx *ctx);
void rt_gemm_cache_free(struct rt_gemm_cache *cache);
/* One-time, process-wide set-up of the GEMM backend (libxsmm's own
 * initialisation, several ms), done in rt_ctx_new rather than inside the
 * first forward. */
void rt_gemm_init(int isa);

/* The instruction set ctx's kernels use (DSC_ISA_*): chosen once, when the
 * context is made; without a context, rt_isa_native() each call. */
int rt_ctx_isa(const rt_ctx *ctx);

/* CPU dispatch.  The runtime is built for baseline x86-64 so it runs
 * anywhere; the hot loops are compiled again for AVX2 and for AVX-512
 * (target attributes) and chosen at run time by the context's ISA.  The
 * body is an always-inline function, so each wrapper gets its own
 * vectorized copy.  Results are deterministic per ISA; across ISAs they
 * may differ in the last bits, as attention.c, gemm.c and kernels.c let
 * a * b + c become an FMA where the ISA has one (see the Makefile). */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define RT_X86_DISPATCH 1
#define RT_TARGET_AVX2 __attribute__((target("avx2,fma")))
/* Skylake-server's set: what every AVX-512 x86 since has. */
#define RT_ISA_AVX512_FLAGS "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma"
#define RT_TARGET_AVX512 __attribute__((target(RT_ISA_AVX512_FLAGS)))
static inline int rt_cpu_has_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
#define RT_X86_DISPATCH 0
#define RT_TARGET_AVX2
#define RT_TARGET_AVX512
static inline int rt_cpu_has_avx2(void)
{
    return 0;
}
#endif

#if defined(__GNUC__)
#define RT_INLINE static inline __attribute__((always_inline))
#else
#define RT_INLINE static inline
#endif

/* Dot product with 8 partial sums: vectorizes without -ffast-math, and
 * sums in the same order on every run. */
RT_INLINE float rt_dot8(const float *a, const float *b, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    float sum = 0;
    for (; i < n; i++)
        sum += a[i] * b[i];
    return sum + ((acc[0] + acc[4]) + (acc[1] + acc[5])) +
                 ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}


/* One task function per instruction set around an always-inline body
 * void body(void *arg, int64_t begin, int64_t end): NAME_generic,
 * NAME_avx2, NAME_avx512, each its own vectorized copy, and
 * NAME_for(isa) picking one (once per call, from the context's ISA). */
#if RT_X86_DISPATCH
#define RT_ISA_VARIANTS(name, body)                                          \
    static void name##_generic(void *arg, int64_t b, int64_t e)              \
    {                                                                        \
        body(arg, b, e);                                                     \
    }                                                                        \
    RT_TARGET_AVX2 static void name##_avx2(void *arg, int64_t b, int64_t e)  \
    {                                                                        \
        body(arg, b, e);                                                     \
    }                                                                        \
    RT_TARGET_AVX512 static void name##_avx512(void *arg, int64_t b,         \
                                               int64_t e)                    \
    {                                                                        \
        body(arg, b, e);                                                     \
    }                                                                        \
    static rt_task_fn name##_for(int isa)                                    \
    {                                                                        \
        return isa == DSC_ISA_AVX512 ? name##_avx512                         \
             : isa == DSC_ISA_AVX2   ? name##_avx2 : name##_generic;         \
    }
#else
#define RT_ISA_VARIANTS(name, body)                                          \
    static void name##_generic(void *arg, int64_t b, int64_t e)              \
    {                                                                        \
        body(arg, b, e);                                                     \
    }                                                                        \
    static rt_task_fn name##_for(int isa)                                    \
    {                                                                        \
        (void)isa;                                                           \
        return name##_generic;                                               \
    }
#endif

/* The activations, shared by rt_activation and rt_linear's epilogue so
 * both round the same way.  1/sqrt(2) and sqrt(2/pi): M_SQRT1_2 is not
 * ISO C. */
#define RT_SQRT1_2     0.70710678118654752440f
#define RT_SQRT_2_PI   0.79788456080286535588f

RT_INLINE float rt_relu(float v)
{
    return v > 0.0f ? v : 0.0f;
}

RT_INLINE float rt_erf(float x);

RT_INLINE float rt_gelu(float v)
{
    return 0.5f * v * (1.0f + rt_erf(v * RT_SQRT1_2));
}

/* tanh(u) = 1 - 2 / (exp(2u) + 1), through rt_exp so it vectorizes
 * (libm's tanhf is a call per element); exact to a few ulp of 1, which
 * is what 1 + tanh needs. */
RT_INLINE float rt_exp(float x);

RT_INLINE float rt_gelu_tanh(float v)
{
    float inner = RT_SQRT_2_PI * (v + 0.044715f * v * v * v);
    return 0.5f * v * (2.0f - 2.0f / (rt_exp(2.0f * inner) + 1.0f));
}

/* c ? a : b without a branch: bit masks, so loops calling it stay
 * straight-line and vectorize (with -ftrapping-math gcc will not if-convert
 * a float select whose operands it has sunk into the branches). */
RT_INLINE float rt_select(int c, float a, float b)
{
    uint32_t m = 0u - (uint32_t)(c != 0), ua, ub;
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    ua = (ua & m) | (ub & ~m);
    memcpy(&a, &ua, sizeof a);
    return a;
}

/* exp(x) in float, vectorizable (libm's expf is a call per element):
 * x = n ln2 + r with n = round(x / ln2) (by the 1.5 * 2^23 trick, which
 * also leaves n in the low mantissa bits), r in [-ln2/2, ln2/2], Cephes'
 * degree-6 polynomial for exp(r), times 2^(n-1) built in the exponent bits,
 * times 2 (so n = 128 does not overflow the exponent field).  Within 1.4
 * ulp of exp for x in [lo, hi] (glibc's expf: 1 ulp); 0 below lo (exp <
 * 3e-38, nothing next to a softmax's 1), inf above ln(FLT_MAX), NaN for
 * NaN. */
RT_INLINE float rt_exp(float x)
{
    const float hi = 88.72283935546875f, lo = -86.5f;
    const float magic = 12582912.0f;
    float xc = rt_select(x > hi, hi, x);
    xc = rt_select(xc < lo, lo, xc);
    xc = rt_select(xc == xc, xc, 0.0f);
    float nm = xc * 1.44269504088896341f + magic;
    float n = nm - magic;
    uint32_t u;
    memcpy(&u, &nm, sizeof u);
    /* ln2 split in two (Cody-Waite): n * 0.693359375f is exact. */
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    uint32_t bits = (u - 0x4B400000u + 126u) << 23;
    float s;
    memcpy(&s, &bits, sizeof s);
    float e = p * s * 2.0f;
    e = rt_select(x < lo, 0.0f, e);
    e = rt_select(x > hi, (float)INFINITY, e);
    return rt_select(x == x, e, x);
}

/* erf(x) as x P(x^2) / Q(x^2), a fit on [-4, 4]: no exp and one division,
 * vectorizable (libm's erff is a call per element, and in BERT's
 * feed-forward GELU it cost as much as the GEMM it follows).  From |x| =
 * 3.92 on erf rounds to +-1 in float, and so does this (GELU(x) is then x
 * exactly, as in PyTorch; the fraction, inf or NaN out there, is not
 * used); it never goes past +-1, which the fit does by up to 2.4e-7 on
 * [3.66, 3.92].  Largest |error| 4e-7 in float; the
 * Abramowitz-Stegun 7.1.26 formula of PyTorch's vectorized erf, which this
 * replaces, has 6e-7 and an exp, and all-MiniLM-L6-v2's forward is 3.5%
 * faster without it.  tools/fit_erf.py fits the coefficients and measures
 * the error.  NaN stays NaN. */
RT_INLINE float rt_erf(float x)
{
    float t = x * x;
    float p = -1.366651014e-08f;
    p = p * t + 4.780484170e-06f;
    p = p * t + 3.826902359e-04f;
    p = p * t + 3.839527817e-03f;
    p = p * t + 5.433256507e-02f;
    p = p * t + 1.847104766e-01f;
    p = p * t + 1.128379182e+00f;
    float q = 6.400874179e-05f;
    q = q * t + 1.309576052e-03f;
    q = q * t + 1.545350662e-02f;
    q = q * t + 1.138263184e-01f;
    q = q * t + 4.970289433e-01f;
    q = q * t + 1.0f;
    float r = x * p / q;
    return rt_select((fabsf(x) >= 3.92f) | (fabsf(r) > 1.0f),
                     copysignf(1.0f, x), r);
}

#endif
