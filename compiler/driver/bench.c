/* bench.c — dsc bench: time a built model's forward, count its flops, and
 * set the rate against the machine's FMA peak measured on the spot.
 *
 * Figures, printed as one JSON line:
 *   build_ms     Lua + passes + emit (measured by the caller)
 *   load_ms      libtcc compile + relocate (JIT), or cc + dlopen (AOT)
 *   compile_ms   build_ms + load_ms: from model file to callable forward
 *   cpu          the CPU's model name (/proc/cpuinfo)
 *   isa          the instruction set of the kernels that ran (rt_ctx_isa)
 *   layout       the packed weight layout (--target)
 *   median_ms, min_ms, max_ms over `runs` timed forwards after BENCH_WARMUP
 *   cpu_median_ms  median process CPU time per forward (all threads): on a
 *                busy machine, what the forward cost without the time other
 *                processes held the core
 *   p50_ms, p90_ms, p99_ms  nearest-rank percentiles of the same runs (p99
 *                means something from a few hundred runs on; make bench
 *                gives the one-token workload 3000)
 *   gflop        bench_graph_flop of the built graph
 *   gflops       gflop / median
 *   peak_gflops  the FMA peak of `isa` on `threads` threads, measured after
 *                the timed runs
 *   pct_peak     100 * gflops / peak_gflops
 *   peak_rss_kb  the process's high-water resident set (getrusage)
 *   weight_format  f32, bf16 or q8: how the linear weights are stored
 *                (-fweights); weight_bytes the blob's size in bytes
 *   rss_kb       the resident set right after the timed runs
 *                (/proc/self/statm): the model as it runs, nothing else
 *
 * A reduced format (bf16, q8) is then compared with float32: the same
 * model built with -fweights=f32 (same panel width), the same weights
 * (file, or the same seed: random weights are drawn per key whatever the
 * layout) and the same inputs.  This happens after the timed runs and
 * after rss_kb and peak_rss_kb are read, so those describe the reduced
 * model alone.
 *   max_abs_diff_vs_f32  the largest |reduced - f32| over every output
 *                element (an encoder: the last timed run's outputs; a
 *                decoder: the logits of the prompt's last position and of
 *                every greedy decode step)
 *   argmax_agree_vs_f32  the fraction of rows of the logits (outputs a
 *                linear writes) whose argmax is the same; null if none.
 *                A decoder's rows are its positions: the prompt's last,
 *                then each decode step, both builds fed the token the
 *                reduced one picked (greedy), so one early disagreement
 *                does not make every later position differ
 *
 * A decoder also reports
 *   weight_bytes_per_token  the weight bytes one decode step reads, as
 *                stored (a q8 linear counts its int8 values and scales)
 *   copy_gbps    memcpy bandwidth (bytes read plus written)
 *   read_gbps    read-only bandwidth: a vector integer sum over a 256 MB
 *                huge-page buffer with software prefetch, what a decode
 *                step does to its weights
 *   bound_tok_s  read_gbps / weight_bytes_per_token: no decoder streaming
 *                its weights once per token gets past it; pct_bound is
 *                decode_tok_s against it.  (A copy reads and writes, and
 *                one thread's copy rate is not its read rate:
 *                pct_copy_bound sets decode_tok_s against copy_gbps /
 *                weight_bytes_per_token, the bound reported before.) */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BENCH_X86 1
#endif

#include "driver/bench.h"
#include "dsc_runtime.h"
#include "backend/emit_c.h"
#include "driver/compare.h"
#include "driver/runner.h"
#include "driver/sample.h"
#include "util/timing.h"

/* Untimed calls before the timed ones: caches, page faults, libxsmm's
 * kernel generation and the thread pool all settle. */
#define BENCH_WARMUP 20


/* ---- flop count ----
 *
 * What one forward computes, counted per node of the built graph:
 *   linear      2*M*N*K for x[M, K]·Wᵀ[K, N]; plus M*N for each of bias,
 *               activation and residual when present
 *   attention   2*seq*seq*(dqk + dv)*heads*batch: q·kᵀ and p·v (dqk, dv
 *               the per-head widths), halved when causal; the scale and
 *               softmax inside are not counted
 *   add, relu   1 per element
 *   gelu        8 per element (erf or tanh counted as a handful)
 *   layernorm   8 per element (mean 1, variance 3, normalize and affine 4)
 *   softmax     5 per element (max 1, subtract + exp + sum 3, divide 1)
 *   embedding, positions, last   0 (they copy rows)
 *   kv_attention  0 for now: a decoder step's work depends on its runtime
 *               token count and position
 * A fused epilogue costs what the op it absorbed cost (relu = activation,
 * add = residual), and a fused Q/K/V stack what its parts did, so the count
 * does not depend on which passes ran. */

static double act_flop(int act)
{
    return act == RT_ACT_NONE ? 0 : act == RT_ACT_RELU ? 1 : 8;
}


double bench_graph_flop(const graph *g)
{
    double total = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        const graph_tensor *y = &g->tensors[n->output];
        double count = (double)graph_shape_count(&y->shape);
        switch (n->op) {
        case GRAPH_OP_LINEAR: {
            const graph_shape *w = &g->tensors[n->inputs[1]].shape;
            double n_out = (double)w->dim[0], k = (double)w->dim[1];
            double rows = count / n_out;
            total += 2 * rows * n_out * k;
            if (n->n_inputs > 2 && n->inputs[2] >= 0)
                total += count;
            if (n->n_inputs > 3 && n->inputs[3] >= 0)
                total += count;
            total += act_flop(n->attrs.act) * count;
            break;
        }
        case GRAPH_OP_ATTENTION: {
            const graph_shape *q = &g->tensors[n->inputs[0]].shape;
            if (q->rank != 3)  /* packed: depends on the lengths */
                break;
            const graph_shape *v = &g->tensors[n->inputs[2]].shape;
            double seq = (double)(n->attrs.batch_first ? q->dim[1] : q->dim[0]);
            double batch = (double)(n->attrs.batch_first ? q->dim[0] : q->dim[1]);
            double h = n->attrs.heads > 0 ? n->attrs.heads : 1;
            double dqk = (double)q->dim[2] / h, dv = (double)v->dim[2] / h;
            double f = 2 * seq * seq * (dqk + dv) * h * batch;
            total += n->attrs.causal ? f / 2 : f;
            break;
        }
        case GRAPH_OP_ADD:
        case GRAPH_OP_RELU:
            total += count;
            break;
        case GRAPH_OP_GELU:
            total += 8 * count;
            break;
        case GRAPH_OP_LAYERNORM:
            total += 8 * count;
            break;
        case GRAPH_OP_SOFTMAX:
            total += 5 * count;
            break;
        case GRAPH_OP_MEAN_POOL:
            total += (double)graph_shape_count(
                &g->tensors[n->inputs[0]].shape);
            break;
        case GRAPH_OP_L2_NORMALIZE:
            total += 3 * count;
            break;
        case GRAPH_OP_KV_ATTENTION:
            /* A decoder step's work depends on the runtime token count and
             * position; not counted yet. */
        case GRAPH_OP_RMSNORM:       /* DeepSeek-V3: not counted yet */
        case GRAPH_OP_SILU_MUL:
        case GRAPH_OP_MLA_ATTENTION:
        case GRAPH_OP_MOE_ROUTE:
        case GRAPH_OP_MOE_EXPERT:
        case GRAPH_OP_EMBEDDING:
        case GRAPH_OP_POSITIONS:
        case GRAPH_OP_LAST:
        case GRAPH_OP_DROPOUT: case GRAPH_OP_CROSS_ENTROPY:  /* training: */
        case GRAPH_OP_CROSS_ENTROPY_GRAD: case GRAPH_OP_DROPOUT_GRAD:
        case GRAPH_OP_RELU_GRAD: case GRAPH_OP_SOFTMAX_GRAD:  /* see */
        case GRAPH_OP_DROPOUT_RELU_GRAD:
        case GRAPH_OP_GELU_GRAD:
        case GRAPH_OP_LINEAR_GRAD_X: case GRAPH_OP_LINEAR_GRAD_W:  /* train_flop */
        case GRAPH_OP_BIAS_GRAD: case GRAPH_OP_LAYERNORM_GRAD_X:
        case GRAPH_OP_LAYERNORM_GRAD_GAMMA: case GRAPH_OP_ATTENTION_GRAD:
        case GRAPH_OP_EMBEDDING_GRAD:
        case GRAPH_OP_COUNT:
            break;
        }
    }
    return total / 1e9;
}


/* ---- FMA peak ----
 *
 * Each thread runs CHAINS independent multiply-add chains held in registers
 * (enough to cover the FMA latency times the number of FMA pipes on
 * current x86 cores), in the widest vector ISA the CPU has: AVX-512,
 * AVX2+FMA, or SSE2 multiply and add.  Each function carries its own
 * target attribute, so the binary still runs on plain x86-64; one FMA
 * lane is 2 flops.  All threads start together; a trial's rate is total
 * flops over the wall time until the last one is done; the peak is the
 * best of five ~30 ms trials. */

#define CHAINS 12

/* CHAINS accumulators a0..a11 as separate variables, so they live in
 * registers whatever the optimizer's unrolling limits. */
#define FMA_DECL(T, init) T a0 = init(0), a1 = init(1), a2 = init(2), \
    a3 = init(3), a4 = init(4), a5 = init(5), a6 = init(6), a7 = init(7), \
    a8 = init(8), a9 = init(9), a10 = init(10), a11 = init(11)
#define FMA_STEP(f) a0 = f(a0); a1 = f(a1); a2 = f(a2); a3 = f(a3); \
    a4 = f(a4); a5 = f(a5); a6 = f(a6); a7 = f(a7); a8 = f(a8); \
    a9 = f(a9); a10 = f(a10); a11 = f(a11)
#define FMA_SUM(add) add(add(add(add(a0, a1), add(a2, a3)), \
    add(add(a4, a5), add(a6, a7))), add(add(a8, a9), add(a10, a11)))

typedef struct fma_kernel {
    double (*run)(long iters);  /* returns a value so the work is kept */
    int lanes;                  /* floats per vector */
    const char *isa;
} fma_kernel;

#ifdef BENCH_X86
__attribute__((target("avx512f")))
static double fma_avx512(long iters)
{
    __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
#define INIT512(j) _mm512_set1_ps((float)(j))
#define F512(a) _mm512_fmadd_ps(a, m, c)
    FMA_DECL(__m512, INIT512);
    for (long i = 0; i < iters; i++) {
        FMA_STEP(F512);
    }
    return _mm512_reduce_add_ps(FMA_SUM(_mm512_add_ps));
}


__attribute__((target("avx2,fma")))
static double fma_avx2(long iters)
{
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
#define INIT256(j) _mm256_set1_ps((float)(j))
#define F256(a) _mm256_fmadd_ps(a, m, c)
    FMA_DECL(__m256, INIT256);
    for (long i = 0; i < iters; i++) {
        FMA_STEP(F256);
    }
    float out[8];
    _mm256_storeu_ps(out, FMA_SUM(_mm256_add_ps));
    double sum = 0;
    for (int j = 0; j < 8; j++)
        sum += out[j];
    return sum;
}
#endif


/* Portable: 4-lane vectors, a multiply and an add per lane (2 flops). */
typedef float v4f __attribute__((vector_size(16)));

static v4f v4_add(v4f a, v4f b) { return a + b; }

static double fma_generic(long iters)
{
    v4f m = {0.999999f, 0.999999f, 0.999999f, 0.999999f};
    v4f c = {1e-6f, 1e-6f, 1e-6f, 1e-6f};
#define INITV4(j) ((v4f){(float)(j), (float)(j), (float)(j), (float)(j)})
#define FV4(a) ((a) * m + c)
    FMA_DECL(v4f, INITV4);
    for (long i = 0; i < iters; i++) {
        FMA_STEP(FV4);
    }
    v4f s = FMA_SUM(v4_add);
    return (double)s[0] + s[1] + s[2] + s[3];
}


/* The probe for the ISA the kernels run (DSC_ISA_*): under DSC_ISA=avx2
 * on an AVX-512 machine the peak is AVX2's, half the AVX-512 one. */
static fma_kernel pick_fma(int isa)
{
#ifdef BENCH_X86
    if (isa == DSC_ISA_AVX512)
        return (fma_kernel){fma_avx512, 16, "avx512"};
    if (isa == DSC_ISA_AVX2)
        return (fma_kernel){fma_avx2, 8, "avx2"};
#else
    (void)isa;
#endif
    return (fma_kernel){fma_generic, 4, "generic"};
}


/* Workers wait for `go`, so all start together however many could be
 * spawned. */
typedef struct fma_start {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int go;
} fma_start;

typedef struct fma_job {
    fma_kernel k;
    long iters;
    fma_start *start;
    double sink;
} fma_job;


static void *fma_thread(void *arg)
{
    fma_job *job = arg;
    pthread_mutex_lock(&job->start->lock);
    while (!job->start->go)
        pthread_cond_wait(&job->start->cond, &job->start->lock);
    pthread_mutex_unlock(&job->start->lock);
    job->sink = job->k.run(job->iters);
    return NULL;
}


static double fma_trial(fma_kernel k, long iters, int threads);


double bench_fma_peak(int threads)
{
    return bench_fma_peak_isa(threads, rt_isa_native());
}


double bench_fma_peak_isa(int threads, int isa)
{
    if (threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 0 ? (int)cores : 1;
    }
    fma_kernel k = pick_fma(isa);

    /* Calibrate on this thread: grow until a run takes >= 10 ms, then aim
     * for ~30 ms per trial. */
    long iters = 1 << 14;
    double ms;
    for (;;) {
        double t0 = timing_now_ms();
        volatile double sink = k.run(iters);
        (void)sink;
        ms = timing_now_ms() - t0;
        if (ms >= 10 || iters > (1L << 40))
            break;
        iters *= ms < 1 ? 8 : 2;
    }
    iters = (long)((double)iters * 30.0 / (ms > 0 ? ms : 1));
    if (iters < 1)
        iters = 1;

    /* The best of a few trials: on a shared machine a trial that another
     * process interrupted reads low, never high. */
    double best = 0;
    for (int trial = 0; trial < 5; trial++) {
        double rate = fma_trial(k, iters, threads);
        best = rate > best ? rate : best;
    }
    return best;
}


/* One trial: `threads` threads (this one included) run iters each,
 * started together; GFLOP/s over the wall time until the last is done. */
static double fma_trial(fma_kernel k, long iters, int threads)
{
    fma_job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    fma_start start = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    if (!jobs || !tids) {
        free(jobs);
        free(tids);
        return 0;
    }
    /* This thread is job 0; threads 1..started are spawned. */
    int started = 0;
    for (int t = 0; t < threads; t++)
        jobs[t] = (fma_job){.k = k, .iters = iters, .start = &start};
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&tids[t], NULL, fma_thread, &jobs[t]))
            break;
        started++;
    }
    double t0 = timing_now_ms();
    pthread_mutex_lock(&start.lock);
    start.go = 1;
    pthread_cond_broadcast(&start.cond);
    pthread_mutex_unlock(&start.lock);
    fma_thread(&jobs[0]);
    for (int t = 1; t <= started; t++)
        pthread_join(tids[t], NULL);
    double wall = timing_now_ms() - t0;
    free(jobs);
    free(tids);
    return (double)(started + 1) * (double)iters * CHAINS * k.lanes * 2 /
           (wall * 1e6);
}


/* ---- memory bandwidth ----
 *
 * A decoder step reads every GEMM weight once per token, so its speed is
 * bound by memory bandwidth, measured here STREAM-style: memcpy between two
 * buffers far larger than any cache, bytes read plus bytes written over the
 * time, the best of a few trials, split over `threads` threads. */

#define COPY_BYTES ((size_t)256 << 20)

typedef struct copy_job {
    char *dst;
    const char *src;
    size_t bytes;
} copy_job;


static void *copy_thread(void *arg)
{
    copy_job *job = arg;
    memcpy(job->dst, job->src, job->bytes);
    return NULL;
}


/* Run fn on jobs[0 .. threads) (job_size bytes apart), job 0 on this
 * thread; how many ran (fewer when a thread could not be started). */
static int run_on_threads(void *(*fn)(void *), void *jobs, size_t job_size,
                          int threads)
{
    pthread_t tids[64];
    int started = 0;
    for (int t = 1; t < threads && t < 64; t++, started++)
        if (pthread_create(&tids[t], NULL, fn, (char *)jobs + t * job_size))
            break;
    fn(jobs);
    for (int t = 1; t <= started; t++)
        pthread_join(tids[t], NULL);
    return started + 1;
}


double bench_copy_gbps(int threads)
{
    char *src = malloc(COPY_BYTES), *dst = malloc(COPY_BYTES);
    copy_job jobs[64];
    if (threads < 1 || threads > 64)
        threads = 1;
    if (!src || !dst) {
        free(src);
        free(dst);
        return 0;
    }
    memset(src, 1, COPY_BYTES);
    memset(dst, 2, COPY_BYTES);  /* fault every page in before timing */
    size_t slice = COPY_BYTES / (size_t)threads;
    for (int t = 0; t < threads; t++)
        jobs[t] = (copy_job){ dst + t * slice, src + t * slice, slice };
    double best = 0;
    for (int trial = 0; trial < 4; trial++) {
        double t0 = timing_now_ms();
        int ran = run_on_threads(copy_thread, jobs, sizeof jobs[0], threads);
        double ms = timing_now_ms() - t0;
        double gbps = 2.0 * (double)slice * ran / (ms * 1e6);
        best = gbps > best ? gbps : best;
    }
    free(src);
    free(dst);
    return best;
}


/* Read-only bandwidth: what a decode step does to its weights.  Each
 * thread sums its slice of a READ_BYTES buffer (rt_alloc: huge pages, as
 * the weight blob gets) as 64-bit integers, four independent vector
 * accumulators per 64-byte line, prefetched into L2 READ_AHEAD_L2 bytes
 * ahead and into L1 READ_AHEAD bytes ahead (the two together read 5-10%
 * faster on a Xeon KVM than one prefetch 512 to 2048 bytes ahead; the
 * runtime's streaming kernels prefetch at two levels too, into L2 4 KB
 * ahead, what measured best for them);
 * bytes read over the time, the best of 4 trials. */
#define READ_BYTES ((size_t)256 << 20)
#define READ_AHEAD 1024
#define READ_AHEAD_L2 8192

typedef uint64_t bench_v2u64 __attribute__((vector_size(16)));

typedef struct read_job {
    const char *src;
    size_t bytes;
    uint64_t sum;  /* kept, so the loads are too */
} read_job;


static void *read_thread(void *arg)
{
    read_job *job = arg;
    const bench_v2u64 *p = (const bench_v2u64 *)(const void *)job->src;
    bench_v2u64 s0 = {0, 0}, s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < job->bytes / 64; i++, p += 4) {
        __builtin_prefetch((const char *)p + READ_AHEAD_L2, 0, 2);
        __builtin_prefetch((const char *)p + READ_AHEAD, 0, 3);
        s0 += p[0];
        s1 += p[1];
        s2 += p[2];
        s3 += p[3];
    }
    bench_v2u64 sum = s0 + s1 + s2 + s3;
    job->sum = sum[0] + sum[1];
    return NULL;
}


double bench_read_gbps(int threads)
{
    char *src = rt_alloc(READ_BYTES);
    read_job jobs[64];
    if (threads < 1 || threads > 64)
        threads = 1;
    if (!src)
        return 0;
    memset(src, 1, READ_BYTES);  /* fault every page in before timing */
    size_t slice = READ_BYTES / (size_t)threads / 64 * 64;
    for (int t = 0; t < threads; t++)
        jobs[t] = (read_job){ src + t * slice, slice, 0 };
    double best = 0;
    uint64_t sink = 0;
    for (int trial = 0; trial < 4; trial++) {
        double t0 = timing_now_ms();
        int ran = run_on_threads(read_thread, jobs, sizeof jobs[0], threads);
        double ms = timing_now_ms() - t0;
        for (int t = 0; t < ran; t++)
            sink += jobs[t].sum;
        double gbps = (double)slice * ran / (ms * 1e6);
        best = gbps > best ? gbps : best;
    }
    free(src);
    volatile uint64_t keep = sink;
    (void)keep;
    return best;
}


/* The share of weight entry e one token reads: for a routed expert's
 * weights, top_k of its layer's experts (a token reads top_k experts'
 * weights per layer); 1 for the rest. */
static double expert_share(const graph *g, const weight_layout *w, int e)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->op != GRAPH_OP_MOE_EXPERT ||
            (w->entry_of[n->inputs[3]] != e && w->entry_of[n->inputs[4]] != e))
            continue;
        int route = g->tensors[n->inputs[2]].producer;
        if (route < 0)
            return 1;
        const graph_shape *logits =
            &g->tensors[g->nodes[route].inputs[0]].shape;
        return (double)n->attrs.experts_per_tok /
               (double)logits->dim[logits->rank - 1];
    }
    return 1;
}


/* Bytes of weights one decode step reads: every weight whole, except the
 * tables a step only gathers one row from (embedding, positions) and the
 * routed experts (top_k of each layer's). */
double bench_decode_weight_bytes(const graph *g, const weight_layout *w)
{
    double bytes = 0;
    for (int e = 0; e < w->n_entries; e++) {
        int t = w->entries[e].tensor;
        int gathered = 0;
        for (int i = 0; i < g->n_nodes; i++)
            gathered |= (g->nodes[i].op == GRAPH_OP_EMBEDDING ||
                         g->nodes[i].op == GRAPH_OP_POSITIONS) &&
                        g->nodes[i].inputs[1] >= 0 &&
                        w->entry_of[g->nodes[i].inputs[1]] == e;
        const graph_shape *s = &g->tensors[t].shape;
        bytes += 4.0 * (gathered ? (double)s->dim[s->rank - 1]
                                 : (double)w->entries[e].floats *
                                   expert_share(g, w, e));
    }
    return bytes;
}


/* ---- the model ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}


/* s as a JSON string. */
static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}


double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}


/* CPU time of the whole process so far, in ms. */
static double cpu_now_ms(void)
{
    struct timespec t;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) != 0)
        return 0;
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}


/* The nearest-rank q-quantile (0 < q <= 1) of n sorted values: the
 * smallest value with at least q * n values at or below it. */
static double quantile(const double *sorted, int n, double q)
{
    int rank = (int)(q * n + 0.999999);
    rank = rank < 1 ? 1 : rank > n ? n : rank;
    return sorted[rank - 1];
}


/* The CPU's model name into buf ("unknown" if /proc/cpuinfo has none). */
static void cpu_name(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon)
            continue;
        colon += 1 + (colon[1] == ' ');
        colon[strcspn(colon, "\n")] = '\0';
        snprintf(buf, len, "%s", colon);
        break;
    }
    if (f)
        fclose(f);
}


/* "cpu", "isa" and "layout" members (each followed by a comma). */
static void json_target(FILE *out, int isa, int layout)
{
    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    fputs("\"cpu\":", out);
    json_str(out, cpu);
    fprintf(out, ",\"isa\":\"%s\",\"layout\":\"%s\",", rt_isa_name(isa),
            rt_layout_name(layout));
}


/* The resident set now, in kB (/proc/self/statm), 0 if unknown. */
static long rss_now_kb(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}


/* Does b store its linear weights in a reduced format, with what it takes
 * to build the float32 twin? */
static int reduced(const built_model *b, const bench_options *opts)
{
    return DSC_LAYOUT_FORMAT_OF(b->weights.packing) != DSC_WEIGHTS_F32 &&
           opts->build && opts->model_path;
}


/* The float32 build of the same model, opened on the same weights. */
static int open_f32_twin(const bench_options *opts, built_model *fb,
                         runner *fr, dsc_err *err)
{
    build_options fo = compare_f32_options(opts->build);
    runner_options ro = { .weights_path = opts->weights_path,
                          .seed = opts->seed, .threads = opts->threads,
                          .aot = opts->aot };
    if (build_model(opts->model_path, &fo, fb, err))
        return -1;
    if (runner_open(fr, fb, &ro, err)) {
        built_model_free(fb);
        return -1;
    }
    return 0;
}


/* "weight_format", "weight_bytes", "rss_kb" and, for a reduced format,
 * "max_abs_diff_vs_f32" and "argmax_agree_vs_f32" (a fraction of rows;
 * null when no output is logits); each followed by a comma. */
static void json_format(FILE *out, const built_model *b, long rss_kb,
                        int compared, const compare_stats *cs)
{
    fprintf(out, "\"weight_format\":\"%s\",\"weight_bytes\":%lld,"
            "\"rss_kb\":%ld,",
            rt_format_name(DSC_LAYOUT_FORMAT_OF(b->weights.packing)),
            (long long)b->weights.total_floats * (long long)sizeof(float),
            rss_kb);
    if (!compared)
        return;
    fprintf(out, "\"max_abs_diff_vs_f32\":%.6g,", cs->max_abs_diff);
    if (cs->rows)
        fprintf(out, "\"argmax_agree_vs_f32\":%.6f,",
                (double)cs->agree / (double)cs->rows);
    else
        fputs("\"argmax_agree_vs_f32\":null,", out);
}


/* A decoder: per run, a fresh cache, a prompt of opts->prompt_tokens, then
 * opts->new_tokens one-token steps (greedy); tokens/s of each phase, and
 * decode against the memory-bandwidth bound. */
static int bench_decoder(const built_model *b, const bench_options *opts,
                         FILE *out, dsc_err *err)
{
    const graph *g = b->model->graph;
    const char *path = b->model->path;
    int runs = opts->runs > 0 ? opts->runs : 1;
    int64_t context = 0;
    emit_is_decoder(g, &context);
    int64_t prompt = opts->prompt_tokens > 0 ? opts->prompt_tokens : 8;
    int64_t steps = opts->new_tokens > 0 ? opts->new_tokens : 64;
    if (prompt + steps > context) {
        prompt = context / 8 > 0 ? context / 8 : 1;
        steps = context - prompt;
    }
    int out_t = -1, in_t = -1;
    for (int t = 0; t < g->n_tensors; t++) {
        out_t = g->tensors[t].kind == GRAPH_OUTPUT ? t : out_t;
        in_t = g->tensors[t].kind == GRAPH_INPUT ? t : in_t;
    }
    if (graph_count_kind(g, GRAPH_INPUT) != 1 ||
        graph_count_kind(g, GRAPH_OUTPUT) != 1)
        return err_set(err, "%s: error: bench takes a decoder with one token "
                       "input and one logits output", path);
    int64_t vocab = g->tensors[out_t].shape.dim[1];
    int32_t *ids = malloc((size_t)prompt * sizeof(int32_t));
    float *logits = malloc((size_t)vocab * sizeof(float));
    double *pre = calloc((size_t)runs, sizeof(double));
    double *dec = calloc((size_t)runs, sizeof(double));
    /* Every decode step of every run, for the percentiles. */
    double *step = calloc((size_t)runs * (size_t)(steps > 0 ? steps : 1),
                          sizeof(double));
    runner r;
    int rc = -1, opened = 0;
    if (!ids || !logits || !pre || !dec || !step) {
        err_set(err, "%s: error: out of memory for the benchmark", path);
        goto done;
    }
    uint64_t rng = opts->seed ^ 0x5eedULL;
    runner_random_input(g, in_t, ids, prompt, &rng);
    runner_options ro = { .weights_path = opts->weights_path,
                          .seed = opts->seed, .threads = opts->threads,
                          .aot = opts->aot, .notes = stderr };
    if (runner_open(&r, b, &ro, err))
        goto done;
    opened = 1;
    int threads = rt_ctx_threads(r.ctx);
    for (int i = -1; i < runs; i++) {  /* i = -1: the warm-up */
        void *io[3] = { ids, logits, NULL };
        runner_reset(&r);
        double t0 = timing_now_ms();
        int status = runner_call(&r, io, 2, prompt, 0);
        double t1 = timing_now_ms();
        for (int64_t k = 0; status == DSC_OK && k < steps; k++) {
            int32_t next = (int32_t)sample_argmax(logits, vocab);
            io[0] = &next;
            double s0 = timing_now_ms();
            status = runner_call(&r, io, 2, 1, prompt + k);
            if (i >= 0)
                step[(int64_t)i * steps + k] = timing_now_ms() - s0;
        }
        double t2 = timing_now_ms();
        if (status != DSC_OK) {
            err_set(err, "%s: error: the step returned status %d", path,
                    status);
            goto done;
        }
        if (i >= 0) {
            pre[i] = t1 - t0;
            dec[i] = t2 - t1;
        }
    }
    double load_ms = r.load_ms;
    int isa = rt_ctx_isa(r.ctx);
    long rss_kb = rss_now_kb();  /* the reduced model alone */
    struct rusage ru;
    long peak_rss_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
    compare_stats cs = {0};
    int compared = reduced(b, opts);
    if (compared) {  /* after the timed runs: see the top of the file */
        built_model fb;
        runner fr;
        if (open_f32_twin(opts, &fb, &fr, err))
            goto done;
        int bad = compare_decode(&r, &fr, g, ids, prompt, steps, &cs, err);
        runner_close(&fr);
        built_model_free(&fb);
        if (bad)
            goto done;
    }
    runner_close(&r);
    opened = 0;
    double pre_ms = bench_median(pre, runs), dec_ms = bench_median(dec, runs);
    int n_steps = (int)(runs * steps);
    qsort(step, (size_t)n_steps, sizeof *step, cmp_double);
    double bytes = bench_decode_weight_bytes(g, &b->weights);
    double gbps = bench_copy_gbps(threads);
    double read_gbps = bench_read_gbps(threads);
    double tok_s = steps / (dec_ms / 1e3);
    double bound = read_gbps > 0 ? read_gbps * 1e9 / bytes : 0;
    double copy_bound = gbps > 0 ? gbps * 1e9 / bytes : 0;
    fputs("{\"model\":", out);
    json_str(out, b->model->name);
    fputc(',', out);
    json_target(out, isa, b->weights.packing);
    json_format(out, b, rss_kb, compared, &cs);
    fprintf(out, "\"mode\":\"%s\",\"threads\":%d,\"runs\":%d,"
            "\"prompt_tokens\":%lld,\"new_tokens\":%lld,"
            "\"prefill_ms\":%.4f,\"prefill_tok_s\":%.2f,"
            "\"decode_ms\":%.4f,\"decode_tok_s\":%.2f,"
            "\"step_runs\":%d,\"step_p50_ms\":%.4f,\"step_p90_ms\":%.4f,"
            "\"step_p99_ms\":%.4f,\"step_max_ms\":%.4f,"
            "\"weight_bytes_per_token\":%.0f,\"copy_gbps\":%.2f,"
            "\"read_gbps\":%.2f,\"bound_tok_s\":%.2f,\"pct_bound\":%.1f,"
            "\"pct_copy_bound\":%.1f,"
            "\"build_ms\":%.3f,\"load_ms\":%.3f,\"compile_ms\":%.3f,"
            "\"peak_rss_kb\":%ld}\n", opts->aot ? "aot" : "jit", threads,
            runs, (long long)prompt, (long long)steps, pre_ms,
            prompt / (pre_ms / 1e3), dec_ms, tok_s, n_steps,
            quantile(step, n_steps, 0.50), quantile(step, n_steps, 0.90),
            quantile(step, n_steps, 0.99), step[n_steps - 1], bytes, gbps,
            read_gbps, bound, bound > 0 ? 100 * tok_s / bound : 0,
            copy_bound > 0 ? 100 * tok_s / copy_bound : 0, opts->build_ms,
            load_ms, opts->build_ms + load_ms, peak_rss_kb);
    fflush(out);
    rc = 0;
done:
    if (opened)
        runner_close(&r);
    free(ids);
    free(logits);
    free(pre);
    free(dec);
    free(step);
    return rc;
}


int bench_model(const built_model *b, const bench_options *opts, FILE *out,
                dsc_err *err)
{
    if (emit_is_decoder(b->model->graph, NULL))
        return bench_decoder(b, opts, out, err);
    const graph *g = b->model->graph;
    const char *path = b->model->path;
    int runs = opts->runs > 0 ? opts->runs : 1;
    int rc = -1, n_io = 0;
    int64_t tokens = 0;  /* a decoder's step: this many tokens from pos 0 */
    /* Inputs, outputs, and the one slot runner_call may use for a cache. */
    int n_io_max = graph_count_kind(g, GRAPH_INPUT) +
                   graph_count_kind(g, GRAPH_OUTPUT) + 1;
    void **io = calloc((size_t)n_io_max, sizeof *io);
    double *times = calloc((size_t)runs, sizeof *times);
    double *cpu = calloc((size_t)runs, sizeof *cpu);
    runner r;
    int opened = 0;

    if (!io || !times || !cpu) {
        err_set(err, "%s: error: out of memory for the benchmark", path);
        goto done;
    }
    /* Inputs: token ids in [0, vocab) or floats in [-1, 1); outputs. */
    uint64_t rng = opts->seed ^ 0x5eedULL;
    for (int pass = 0; pass < 2; pass++) {
        for (int t = 0; t < g->n_tensors; t++) {
            const graph_tensor *x = &g->tensors[t];
            if (x->kind != (pass ? GRAPH_OUTPUT : GRAPH_INPUT))
                continue;
            int64_t n = graph_shape_count(&x->shape);
            void *buf = io[n_io++] = calloc((size_t)(n ? n : 1), 4);
            if (!buf) {
                err_set(err, "%s: error: out of memory for '%s'", path,
                        x->name);
                goto done;
            }
            if (x->dynamic)
                tokens = x->shape.dim[0];
            if (!pass)
                runner_random_input(g, t, buf, n, &rng);
        }
    }

    runner_options ro = { .weights_path = opts->weights_path,
                          .seed = opts->seed, .threads = opts->threads,
                          .aot = opts->aot, .notes = stderr };
    if (runner_open(&r, b, &ro, err))
        goto done;
    opened = 1;
    int threads = rt_ctx_threads(r.ctx);
    for (int i = -BENCH_WARMUP; i < runs; i++) {  /* i < 0: warm-up */
        runner_reset(&r);
        double c0 = cpu_now_ms();
        double s = timing_now_ms();
        int status = runner_call(&r, io, n_io, tokens, 0);
        double e = timing_now_ms();
        double c1 = cpu_now_ms();
        if (status != DSC_OK) {
            err_set(err, "%s: error: the forward returned status %d", path,
                    status);
            goto done;
        }
        if (i >= 0) {
            times[i] = e - s;
            cpu[i] = c1 - c0;
        }
    }
    double load_ms = r.load_ms;
    int isa = rt_ctx_isa(r.ctx);
    long rss_kb = rss_now_kb();  /* the reduced model alone */
    struct rusage ru;
    long peak_rss_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
    compare_stats cs = {0};
    int compared = reduced(b, opts);
    if (compared) {  /* io holds the last timed run's outputs */
        int n_out = graph_count_kind(g, GRAPH_OUTPUT);
        compare_stats *st = calloc((size_t)n_out + 1, sizeof *st);
        built_model fb;
        runner fr;
        if (!st || open_f32_twin(opts, &fb, &fr, err)) {
            if (!st)
                err_set(err, "%s: error: out of memory", path);
            free(st);
            goto done;
        }
        int bad = compare_forward(&fr, g, io, n_io, tokens, st, err);
        runner_close(&fr);
        built_model_free(&fb);
        for (int i = 0; !bad && i < n_out; i++) {  /* all outputs at once */
            cs.max_abs_diff = st[i].max_abs_diff > cs.max_abs_diff ||
                              st[i].max_abs_diff != st[i].max_abs_diff
                              ? st[i].max_abs_diff : cs.max_abs_diff;
            cs.rows += st[i].rows;
            cs.agree += st[i].agree;
        }
        free(st);
        if (bad)
            goto done;
    }
    runner_close(&r);  /* before the peak: its threads must not compete */
    opened = 0;

    double median = bench_median(times, runs);  /* sorts times */
    double gflop = bench_graph_flop(g);
    double gflops = median > 0 ? gflop / (median / 1e3) : 0;
    double peak = bench_fma_peak_isa(threads, isa);

    fputs("{\"model\":", out);
    json_str(out, b->model->name);
    fputs(",\"path\":", out);
    json_str(out, path);
    fputs(",\"config\":{", out);
    for (int i = 0; i < b->model->n_config; i++) {
        fputs(i ? "," : "", out);
        json_str(out, b->model->config[i].key);
        fputc(':', out);
        json_str(out, b->model->config[i].value);
    }
    fputs("},", out);
    json_target(out, isa, b->weights.packing);
    json_format(out, b, rss_kb, compared, &cs);
    fprintf(out, "\"mode\":\"%s\",\"threads\":%d,\"runs\":%d,",
            opts->aot ? "aot" : "jit", threads, runs);
    if (tokens)  /* a decoder: each run a fresh cache and one step */
        fprintf(out, "\"step_tokens\":%lld,", (long long)tokens);
    fprintf(out, "\"median_ms\":%.4f,\"min_ms\":%.4f,\"max_ms\":%.4f,"
            "\"cpu_median_ms\":%.4f,\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,"
            "\"gflop\":%.9g,\"gflops\":%.3f,\"peak_gflops\":%.3f,"
            "\"pct_peak\":%.3f,\"build_ms\":%.3f,\"load_ms\":%.3f,"
            "\"compile_ms\":%.3f,\"peak_rss_kb\":%ld}\n",
            median, times[0], times[runs - 1], bench_median(cpu, runs),
            quantile(times, runs, 0.50),
            quantile(times, runs, 0.90), quantile(times, runs, 0.99), gflop,
            gflops, peak,
            peak > 0 ? 100 * gflops / peak : 0, opts->build_ms, load_ms,
            opts->build_ms + load_ms, peak_rss_kb);
    fflush(out);
    rc = 0;
done:
    if (opened)
        runner_close(&r);
    for (int i = 0; i < n_io; i++)
        free(io[i]);
    free(io);
    free(times);
    free(cpu);
    return rc;
}
