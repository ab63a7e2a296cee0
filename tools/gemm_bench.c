/* gemm_bench.c — rt_linear alone: the median time of one call per shape
 * and row count, weights cycled through a working set the size of the
 * seed model's (12.6 MB) so they come from where a forward finds them.
 *
 *   make build/gemm_bench
 *   [DSC_ISA=avx2] [LAYOUT=32|64] [FORMAT=f32|bf16|q8] [WS_MB=12.6]
 *   build/gemm_bench ROWS N_OUT N_IN [THREADS] [REPS]
 * LAYOUT: the panel width (default: the ISA's); FORMAT: the weights'
 * (default f32); WS_MB: the working set the weight copies span (0.1 keeps
 * them in L2, 2000 sends them to memory).  Prints: rows n_out n_in
 * threads isa layout median_us min_us GFLOP/s (median) GB/s of packed
 * weights read (median). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dsc_runtime.h"

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: gemm_bench ROWS N_OUT N_IN [THREADS] [REPS]\n");
        return 1;
    }
    long rows = atol(argv[1]), n_out = atol(argv[2]), n_in = atol(argv[3]);
    int threads = argc > 4 ? atoi(argv[4]) : 1;
    int reps = argc > 5 ? atoi(argv[5]) : 2000;
    rt_ctx *ctx = rt_ctx_new(threads);
    int panel = getenv("LAYOUT") ? atoi(getenv("LAYOUT"))
                                 : DSC_LAYOUT_PANEL_OF(
                                       rt_isa_layout(rt_ctx_isa(ctx)));
    int format = rt_format_parse(getenv("FORMAT") ? getenv("FORMAT") : "f32");
    if (format < 0) {
        fprintf(stderr, "gemm_bench: FORMAT is f32, bf16 or q8\n");
        return 1;
    }
    int layout = DSC_LAYOUT(panel, format);
    long pf = rt_linear_packed_floats(n_out, n_in, layout);
    double ws = getenv("WS_MB") ? atof(getenv("WS_MB")) * 1e6 : 12.6e6;
    long copies = (long)(ws / 4 / pf) + 1;
    float *w = malloc((size_t)n_out * n_in * sizeof *w);
    float *x = malloc((size_t)rows * n_in * sizeof *x);
    float *y = malloc((size_t)rows * n_out * sizeof *y);
    float *b = malloc((size_t)n_out * sizeof *b);
    /* rt_alloc: huge pages, as a model's weight blob gets them. */
    float *pw = rt_alloc((size_t)(pf * copies) * 4);
    for (long i = 0; i < n_out * n_in; i++)
        w[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    for (long i = 0; i < rows * n_in; i++)
        x[i] = (float)((i * 31) % 100) / 100.0f;
    for (long i = 0; i < n_out; i++)
        b[i] = 0.1f;
    for (long c = 0; c < copies; c++)
        rt_linear_pack(pw + c * pf, w, n_out, n_in, layout);
    double *t = malloc((size_t)reps * sizeof *t);
    for (int r = -20; r < reps; r++) {
        const float *wc = pw + (r < 0 ? 0 : r % copies) * pf;
        double t0 = now_us();
        rt_linear(ctx, y, n_out, x, n_in, wc, b, rows, n_out, n_in,
                  RT_ACT_RELU, NULL);
        double t1 = now_us();
        if (r >= 0)
            t[r] = t1 - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    double med = t[reps / 2];
    printf("%ld %ld %ld %d %s %s %.2f %.2f %.1f %.1f\n", rows, n_out, n_in,
           threads, rt_isa_name(rt_ctx_isa(ctx)), rt_layout_name(layout), med,
           t[0], 2.0 * rows * n_out * n_in / med / 1e3,
           4.0 * (double)pf / med / 1e3);
    rt_ctx_free(ctx);
    return 0;
}
