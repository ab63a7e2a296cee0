/* bench_train_gemm.c — the three GEMMs of one linear in a training step
 * alone: forward rt_linear, rt_linear_grad_x, rt_linear_grad_w, median
 * microseconds and GFLOP/s of each, on one shape.
 *
 *   make build/bench_train_gemm
 *   build/bench_train_gemm ROWS N_OUT N_IN [THREADS] [REPS]
 * The seed's shapes: 320 768 256, 320 256 256, 320 2048 256, 320 256 2048,
 * 320 1000 256. */
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
        fprintf(stderr, "usage: bench_train_gemm ROWS N_OUT N_IN [THREADS] "
                        "[REPS]\n");
        return 1;
    }
    long rows = atol(argv[1]), n_out = atol(argv[2]), n_in = atol(argv[3]);
    int threads = argc > 4 ? atoi(argv[4]) : 1;
    int reps = argc > 5 ? atoi(argv[5]) : 500;
    if (rows <= 0 || n_out <= 0 || n_in <= 0 || reps <= 0) {
        fprintf(stderr, "bench_train_gemm: sizes must be positive\n");
        return 1;
    }
    rt_ctx *ctx = rt_ctx_new(threads);
    int layout = rt_isa_layout(rt_ctx_isa(ctx));
    long pf = rt_linear_packed_floats(n_out, n_in, layout);
    float *w = malloc((size_t)n_out * n_in * sizeof *w);
    float *x = malloc((size_t)rows * n_in * sizeof *x);
    float *y = malloc((size_t)rows * n_out * sizeof *y);
    float *dx = malloc((size_t)rows * n_in * sizeof *dx);
    float *pw = aligned_alloc(64, (size_t)(pf * 4 + 63) / 64 * 64);
    float *pdw = aligned_alloc(64, (size_t)(pf * 4 + 63) / 64 * 64);
    long sf = rt_linear_grad_scratch_floats(rows, n_out, n_in);
    float *scratch = aligned_alloc(64, (size_t)(sf * 4 + 63) / 64 * 64);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!ctx || !w || !x || !y || !dx || !pw || !pdw || !scratch || !t) {
        fprintf(stderr, "bench_train_gemm: out of memory\n");
        return 1;
    }
    for (long i = 0; i < n_out * n_in; i++)
        w[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    for (long i = 0; i < rows * n_in; i++)
        x[i] = (float)((i * 31) % 100) / 100.0f;
    for (long i = 0; i < rows * n_out; i++)
        y[i] = (float)((i * 17) % 100) / 100.0f - 0.5f;
    rt_linear_pack(pw, w, n_out, n_in, layout);
    rt_linear_pack(pdw, w, n_out, n_in, layout);
    const char *names[3] = { "forward", "grad_x", "grad_w" };
    for (int which = 0; which < 3; which++) {
        for (int r = -20; r < reps; r++) {
            double t0 = now_us();
            if (which == 0)
                rt_linear(ctx, y, n_out, x, n_in, pw, NULL, rows, n_out, n_in,
                          RT_ACT_NONE, NULL);
            else if (which == 1)
                rt_linear_grad_x(ctx, dx, y, n_out, pw, rows, n_out, n_in,
                                 scratch);
            else
                rt_linear_grad_w(ctx, pdw, layout, y, n_out, x, n_in, rows,
                                 n_out, n_in, 0, scratch);
            double t1 = now_us();
            if (r >= 0)
                t[r] = t1 - t0;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp);
        printf("%ld %ld %ld %d %-8s %8.1f us %6.1f GFLOP/s\n", rows, n_out,
               n_in, threads, names[which], t[reps / 2],
               2.0 * rows * n_out * n_in / t[reps / 2] / 1e3);
    }
    rt_ctx_free(ctx);
    return 0;
}
