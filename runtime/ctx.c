/* ctx.c — the runtime context: a persistent thread pool (threads - 1
 * workers plus the caller) and the GEMM kernels cached per shape.
 *
 * A job is published by bumping a generation counter; workers spin on it
 * for a short while (kernel calls within a forward come microseconds apart,
 * and a condition-variable wake-up costs tens of them), then sleep on a
 * condition variable so an idle context burns no CPU.  Completion is a
 * countdown the caller spins on the same way.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE  /* MADV_HUGEPAGE (Linux) */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rt_internal.h"

/* Polls of the generation counter (each with a pause, ~20-40 ns) before a
 * worker goes to sleep: ~0.2-0.5 ms, longer than the gaps between the
 * kernels of one forward, short enough not to hog an oversubscribed CPU. */
#define RT_SPIN 12000
#define RT_MAX_THREADS 1024

typedef struct rt_worker {
    rt_ctx *ctx;
    int index;      /* 1..threads-1; the caller is 0 */
    pthread_t tid;
} rt_worker;

struct rt_ctx {
    int threads;            /* caller included */
    rt_worker *workers;     /* threads - 1 of them */
    pthread_mutex_t mu;
    pthread_cond_t wake;    /* a new generation (job or stop) */
    pthread_cond_t done;    /* pending reached 0 */
    /* Workers about to wait on wake, and whether the caller is about to
     * wait on done: raised (under mu) before re-checking the condition,
     * read by the other side after changing it, both sequentially
     * consistent, so one of the two always sees the other (Dekker) and
     * the fast path takes no lock and makes no system call. */
    atomic_int sleepers;
    atomic_int caller_waits;
    int stop;               /* set before a bump, read after one */
    atomic_uint gen;        /* bumped once per job */
    atomic_int pending;     /* workers not yet done with the current job */
    /* The current job: written by the caller before bumping gen, read by
     * the workers after seeing the bump, stable until pending is 0. */
    rt_task_fn fn;
    void *arg;
    int64_t n_tasks;
    int job_threads;
    struct rt_gemm_cache *gemm;
    int isa;                /* DSC_ISA_*, fixed at rt_ctx_new */
    const float *blob;      /* the last blob rt_weights_check accepted */
    char error[160];        /* rt_ctx_error */
};


static void cpu_relax(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#endif
}


/* Thread t's share of the current job. */
static void run_share(rt_ctx *ctx, int t)
{
    if (t >= ctx->job_threads)
        return;
    int64_t n = ctx->n_tasks, T = ctx->job_threads;
    int64_t begin = n * t / T, end = n * (t + 1) / T;
    if (begin < end)
        ctx->fn(ctx->arg, begin, end);
}


static unsigned wait_for_generation(rt_ctx *ctx, unsigned seen)
{
    unsigned g;
    for (int i = 0; i < RT_SPIN; i++) {
        g = atomic_load_explicit(&ctx->gen, memory_order_acquire);
        if (g != seen)
            return g;
        cpu_relax();
    }
    pthread_mutex_lock(&ctx->mu);
    atomic_fetch_add(&ctx->sleepers, 1);
    while ((g = atomic_load(&ctx->gen)) == seen)
        pthread_cond_wait(&ctx->wake, &ctx->mu);
    atomic_fetch_sub(&ctx->sleepers, 1);
    pthread_mutex_unlock(&ctx->mu);
    return g;
}


static void *worker_main(void *p)
{
    rt_worker *w = p;
    rt_ctx *ctx = w->ctx;
    unsigned seen = 0;
    for (;;) {
        seen = wait_for_generation(ctx, seen);
        if (ctx->stop)
            return NULL;
        run_share(ctx, w->index);
        if (atomic_fetch_sub(&ctx->pending, 1) == 1 &&
            atomic_load(&ctx->caller_waits)) {
            pthread_mutex_lock(&ctx->mu);
            pthread_cond_signal(&ctx->done);
            pthread_mutex_unlock(&ctx->mu);
        }
    }
}


/* Wake the workers for a new generation (a job, or stop). */
static void publish(rt_ctx *ctx)
{
    atomic_fetch_add(&ctx->gen, 1);
    if (atomic_load(&ctx->sleepers)) {
        pthread_mutex_lock(&ctx->mu);
        pthread_cond_broadcast(&ctx->wake);
        pthread_mutex_unlock(&ctx->mu);
    }
}


void rt_parallel(rt_ctx *ctx, int threads, int64_t n_tasks, rt_task_fn fn,
                 void *arg)
{
    if (n_tasks <= 0)
        return;
    int T = rt_ctx_threads(ctx);
    if (threads < T)
        T = threads;
    if (n_tasks < T)
        T = (int)n_tasks;
    if (T <= 1) {
        fn(arg, 0, n_tasks);
        return;
    }
    ctx->fn = fn;
    ctx->arg = arg;
    ctx->n_tasks = n_tasks;
    ctx->job_threads = T;
    /* Every worker acknowledges every job, even with an empty share, so no
     * worker can still be reading the job when the next one is written. */
    atomic_store_explicit(&ctx->pending, ctx->threads - 1,
                          memory_order_relaxed);
    publish(ctx);
    run_share(ctx, 0);
    for (int i = 0; i < RT_SPIN; i++) {
        if (atomic_load_explicit(&ctx->pending, memory_order_acquire) == 0)
            return;
        cpu_relax();
    }
    pthread_mutex_lock(&ctx->mu);
    atomic_store(&ctx->caller_waits, 1);
    while (atomic_load(&ctx->pending) != 0)
        pthread_cond_wait(&ctx->done, &ctx->mu);
    atomic_store(&ctx->caller_waits, 0);
    pthread_mutex_unlock(&ctx->mu);
}


int rt_threads_for(const rt_ctx *ctx, int64_t work, int64_t grain)
{
    int t = rt_ctx_threads(ctx);
    int64_t useful = grain > 0 ? work / grain : t;
    if (useful < t)
        t = useful > 1 ? (int)useful : 1;
    return t;
}


/* Stop and join workers [0, n). */
static void stop_workers(rt_ctx *ctx, int n)
{
    ctx->stop = 1;
    publish(ctx);
    for (int i = 0; i < n; i++)
        pthread_join(ctx->workers[i].tid, NULL);
}


rt_ctx *rt_ctx_new(int threads)
{
    if (threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 0 ? (int)cores : 1;
    }
    if (threads > RT_MAX_THREADS)
        threads = RT_MAX_THREADS;
    rt_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->threads = 1;
    atomic_init(&ctx->gen, 0);
    atomic_init(&ctx->pending, 0);
    atomic_init(&ctx->sleepers, 0);
    atomic_init(&ctx->caller_waits, 0);
    if (pthread_mutex_init(&ctx->mu, NULL) != 0)
        goto fail_mu;
    if (pthread_cond_init(&ctx->wake, NULL) != 0)
        goto fail_wake;
    if (pthread_cond_init(&ctx->done, NULL) != 0)
        goto fail_done;
    ctx->isa = rt_isa_native();
    rt_gemm_init(ctx->isa);
    if (threads > 1) {
        ctx->workers = calloc((size_t)threads - 1, sizeof *ctx->workers);
        if (!ctx->workers)
            goto fail_workers;
        /* A worker that cannot be started leaves a smaller pool, not an
         * error: the kernels split work over however many there are. */
        int started = 0;
        for (int i = 0; i < threads - 1; i++) {
            rt_worker *w = &ctx->workers[i];
            w->ctx = ctx;
            w->index = i + 1;
            if (pthread_create(&w->tid, NULL, worker_main, w) != 0)
                break;
            started++;
        }
        ctx->threads = started + 1;
    }
    return ctx;

fail_workers:
    pthread_cond_destroy(&ctx->done);
fail_done:
    pthread_cond_destroy(&ctx->wake);
fail_wake:
    pthread_mutex_destroy(&ctx->mu);
fail_mu:
    free(ctx);
    return NULL;
}


void rt_ctx_free(rt_ctx *ctx)
{
    if (!ctx)
        return;
    stop_workers(ctx, ctx->threads - 1);
    free(ctx->workers);
    rt_gemm_cache_free(ctx->gemm);
    pthread_cond_destroy(&ctx->done);
    pthread_cond_destroy(&ctx->wake);
    pthread_mutex_destroy(&ctx->mu);
    free(ctx);
}


/* ---- instruction sets, blobs --------------------------------------- */

static const char *const isa_names[] = {"generic", "avx2", "avx512"};


const char *rt_isa_name(int isa)
{
    return isa >= 0 && isa <= DSC_ISA_AVX512 ? isa_names[isa] : "unknown";
}


int rt_isa_parse(const char *name)
{
    for (int i = 0; name && i <= DSC_ISA_AVX512; i++)
        if (strcmp(name, isa_names[i]) == 0)
            return i;
    return -1;
}


int rt_isa_supported(int isa)
{
    switch (isa) {
    case DSC_ISA_GENERIC:
        return 1;
#if RT_X86_DISPATCH
    case DSC_ISA_AVX2:
        return rt_cpu_has_avx2();
    case DSC_ISA_AVX512:
        __builtin_cpu_init();
        return rt_cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw");
#endif
    default:
        return 0;
    }
}


int rt_isa_native(void)
{
    int isa = rt_isa_parse(getenv("DSC_ISA"));
    if (isa >= 0 && rt_isa_supported(isa))
        return isa;
    for (isa = DSC_ISA_AVX512; isa > DSC_ISA_GENERIC; isa--)
        if (rt_isa_supported(isa))
            return isa;
    return DSC_ISA_GENERIC;
}


int rt_ctx_isa(const rt_ctx *ctx)
{
    return ctx ? ctx->isa : rt_isa_native();
}


const char *rt_ctx_error(const rt_ctx *ctx)
{
    return ctx ? ctx->error : "";
}


#define BLOB_MAGIC 0x57435344u  /* "DSCW" */
/* 2: DeepSeek's routed experts and kv_b_proj are packed as linear
 * weights (offsets and sizes moved). */
#define BLOB_VERSION 2u

void rt_blob_header(float *blob, int layout, int64_t total_floats)
{
    uint32_t h[DSC_BLOB_HEADER_FLOATS] = {
        BLOB_MAGIC, BLOB_VERSION, (uint32_t)layout, 0,
        (uint32_t)((uint64_t)total_floats & 0xffffffffu),
        (uint32_t)((uint64_t)total_floats >> 32)};
    memcpy(blob, h, sizeof h);
}


int rt_blob_layout(const float *blob)
{
    uint32_t h[3];
    memcpy(h, blob, sizeof h);
    return h[0] == BLOB_MAGIC && h[1] == BLOB_VERSION ? (int)h[2] : -1;
}


/* Transparent huge pages under the blob's whole 2 MB pages: the weights of
 * a forward then take a handful of TLB entries instead of thousands, one
 * source of slow calls.  Advice only; failure changes nothing. */
static void advise_huge(const float *blob)
{
#if defined(MADV_HUGEPAGE) && !defined(RT_NO_HUGEPAGES)
    uint32_t h[DSC_BLOB_HEADER_FLOATS];
    memcpy(h, blob, sizeof h);
    uint64_t bytes = ((uint64_t)h[5] << 32 | h[4]) * sizeof(float);
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t lo = ((uintptr_t)blob + huge - 1) & ~(huge - 1);
    uintptr_t hi = ((uintptr_t)blob + (uintptr_t)bytes) & ~(huge - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)blob;
#endif
}


void *rt_alloc(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge) {
        size_t n = (bytes + DSC_ALIGN - 1) / DSC_ALIGN * DSC_ALIGN;
        return aligned_alloc(DSC_ALIGN, n ? n : DSC_ALIGN);
    }
    if (bytes > SIZE_MAX - huge)
        return NULL;
    size_t n = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, n);
#if defined(MADV_HUGEPAGE) && !defined(RT_NO_HUGEPAGES)
    if (p)
        (void)madvise(p, n, MADV_HUGEPAGE);
#endif
    return p;
}


int rt_weights_check(rt_ctx *ctx, const float *blob, int layout)
{
    int got = blob ? rt_blob_layout(blob) : -1;
    uint32_t h[2] = {0, 0};
    if (blob)
        memcpy(h, blob, sizeof h);
    if (got < 0 && h[0] == BLOB_MAGIC) {
        if (ctx)
            snprintf(ctx->error, sizeof ctx->error,
                     "weights written by another dsc (blob format %u; this "
                     "runtime reads %u): write them again with dsc compile "
                     "--weights", (unsigned)h[1], (unsigned)BLOB_VERSION);
        return DSC_EBADLAYOUT;
    }
    if (got != layout) {
        if (ctx)
            snprintf(ctx->error, sizeof ctx->error,
                     "weights packed in layout %s, but the code was "
                     "generated for layout %s (dsc compile --target, "
                     "-fweights)",
                     got < 0 ? "none (not a dsc weight blob)"
                             : rt_layout_name(got),
                     rt_layout_name(layout));
        return DSC_EBADLAYOUT;
    }
    if (ctx && blob != ctx->blob) {  /* one madvise per blob, not per call */
        advise_huge(blob);
        ctx->blob = blob;
        ctx->error[0] = '\0';
    }
    return DSC_OK;
}


int rt_ctx_threads(const rt_ctx *ctx)
{
    return ctx ? ctx->threads : 1;
}


struct rt_gemm_cache **rt_ctx_gemm_cache(rt_ctx *ctx)
{
    return ctx ? &ctx->gemm : NULL;
}
