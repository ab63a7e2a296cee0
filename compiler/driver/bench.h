/* bench.h — time a built model's forward: dsc bench. */
#ifndef DSC_BENCH_H
#define DSC_BENCH_H

#include <stdio.h>

#include "driver/build.h"
#include "util/diag.h"

typedef struct bench_options {
    const char *weights_path;  /* safetensors, or NULL for random */
    unsigned long long seed;   /* random weights and inputs */
    int runs;                  /* timed forwards after one warm-up */
    int threads;               /* 0: one per core */
    int aot;                   /* cc-built shared object instead of libtcc */
    double build_ms;           /* Lua + passes + emit, measured by the caller */
    long long prompt_tokens;   /* a decoder's prompt (default 8) */
    long long new_tokens;      /* a decoder's one-token steps (default 64) */
    /* How the model was built (a reduced -fweights is compared with the
     * float32 build of the same path and options), or NULL: no comparison */
    const char *model_path;
    const build_options *build;
} bench_options;

/* Load b (JIT or AOT), run it opts->runs times on random inputs, and print
 * one JSON line to out: model, cpu, isa, layout, mode, threads, runs,
 * median_ms, min_ms, max_ms, p50/p90/p99_ms, gflop, gflops, peak_gflops,
 * compile_ms, peak_rss_kb.  For a decoder: prefill and decode tokens/s,
 * percentiles of the single decode steps, the weight bytes a decode step
 * reads, the copy bandwidth and the tokens/s bound they set. */
int bench_model(const built_model *b, const bench_options *opts, FILE *out,
                dsc_err *err);

/* Floating-point operations of one forward, counted from the graph. */
double bench_graph_flop(const graph *g);

/* The median of n timings; sorts v. */
double bench_median(double *v, int n);

/* The machine's FMA peak for `threads` threads, measured now (GFLOP/s),
 * in the instruction set the kernels would use (rt_isa_native), or isa. */
double bench_fma_peak(int threads);
double bench_fma_peak_isa(int threads, int isa);

/* Memory copy bandwidth on `threads` threads, measured now (GB/s, bytes
 * read plus written). */
double bench_copy_gbps(int threads);

/* Read-only memory bandwidth on `threads` threads, measured now (GB/s):
 * a vector integer sum over a huge-page buffer, prefetching ahead. */
double bench_read_gbps(int threads);

/* Bytes of weights one decode step of g reads. */
double bench_decode_weight_bytes(const graph *g, const weight_layout *w);

#endif
