/* latency_seed — what a product embedding dsc sees, call by call: the seed
 * model built for one token (dsc compile models/seed_encoder.lua -D seq=1
 * -D batch=1), linked with libdscrt.a, timing each of its own forwards.
 *
 * usage: latency_seed WEIGHTS.bin [CALLS [THREADS]]
 *   WEIGHTS.bin  the blob `dsc compile --random-weights` (or --weights)
 *                wrote beside the C file
 *   CALLS        timed calls after 20 warm-ups (default 3000)
 *   THREADS      rt_ctx_new's argument (default 1)
 * Prints: calls, p50, p90, p99 and max in ms (nearest rank); then the page
 * faults and context switches the process had during the timed calls
 * (getrusage before and after the loop): a steady forward takes no page
 * fault and makes no blocking call (voluntary switches); involuntary
 * switches are other processes taking the core.
 * Exit status: 0, 1 for bad arguments or files, 2 when the forward fails. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "dsc_runtime.h"
#include "seed_encoder.h"

#define WARMUP 20


static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}


static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}


/* The smallest time with at least q * n times at or below it. */
static double quantile(const double *sorted, int n, double q)
{
    int rank = (int)(q * n + 0.999999);
    return sorted[(rank < 1 ? 1 : rank > n ? n : rank) - 1];
}


int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: latency_seed WEIGHTS.bin [CALLS [THREADS]]\n");
        return 1;
    }
    int calls = argc > 2 ? atoi(argv[2]) : 3000;
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    if (calls < 1 || threads < 1) {
        fprintf(stderr, "latency_seed: CALLS and THREADS must be >= 1\n");
        return 1;
    }
    /* Weights and arena from rt_alloc: huge pages where the kernel has
     * them.  Everything is allocated before the first call; the forward
     * itself allocates nothing. */
    float *w = rt_alloc(SEED_ENCODER_WEIGHT_FLOATS * sizeof(float));
    void *arena = rt_alloc(SEED_ENCODER_ARENA_BYTES);
    double *ms = malloc((size_t)calls * sizeof *ms);
    float *logits = malloc(SEED_ENCODER_LOGITS_COUNT * sizeof(float));
    int32_t tokens[SEED_ENCODER_TOKENS_COUNT];
    rt_ctx *ctx = rt_ctx_new(threads);
    FILE *f = fopen(argv[1], "rb");
    int rc = 1;
    if (!w || !arena || !ms || !logits || !ctx) {
        fprintf(stderr, "latency_seed: out of memory\n");
        goto done;
    }
    if (!f || fread(w, sizeof(float), SEED_ENCODER_WEIGHT_FLOATS, f) !=
                  SEED_ENCODER_WEIGHT_FLOATS) {
        fprintf(stderr, "latency_seed: cannot read %s\n", argv[1]);
        goto done;
    }
    for (int i = 0; i < calls; i++)  /* touch every page before timing */
        ms[i] = 0;
    rc = 2;
    struct rusage r0 = {0}, r1 = {0};
    for (int i = -WARMUP; i < calls; i++) {
        if (i == 0)
            getrusage(RUSAGE_SELF, &r0);
        for (int t = 0; t < SEED_ENCODER_TOKENS_COUNT; t++)
            tokens[t] = (int32_t)((i + 1000 + t * 37) % 1000);
        double t0 = now_ms();
        int status = seed_encoder_forward(ctx, w, tokens, logits, arena);
        double t1 = now_ms();
        if (status != DSC_OK) {
            fprintf(stderr, "latency_seed: status %d %s\n", status,
                    rt_ctx_error(ctx));
            goto done;
        }
        if (i >= 0)
            ms[i] = t1 - t0;
    }
    getrusage(RUSAGE_SELF, &r1);
    qsort(ms, (size_t)calls, sizeof *ms, cmp_double);
    printf("calls %d threads %d isa %s: p50 %.4f ms, p90 %.4f ms, p99 %.4f "
           "ms, max %.4f ms\n", calls, rt_ctx_threads(ctx),
           rt_isa_name(rt_ctx_isa(ctx)), quantile(ms, calls, 0.50),
           quantile(ms, calls, 0.90), quantile(ms, calls, 0.99),
           ms[calls - 1]);
    printf("during the timed calls: %ld page faults (%ld major), %ld "
           "voluntary and %ld involuntary context switches\n",
           r1.ru_minflt - r0.ru_minflt + r1.ru_majflt - r0.ru_majflt,
           r1.ru_majflt - r0.ru_majflt, r1.ru_nvcsw - r0.ru_nvcsw,
           r1.ru_nivcsw - r0.ru_nivcsw);
    rc = 0;
done:
    if (f)
        fclose(f);
    rt_ctx_free(ctx);
    free(logits);
    free(ms);
    free(arena);
    free(w);
    return rc;
}
