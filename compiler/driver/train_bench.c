/* train_bench.c — dsc bench --train: time one training step (forward,
 * backward, Adam) of a model on random tokens. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "driver/bench.h"
#include "driver/runner.h"
#include "driver/train.h"
#include "dsc_runtime.h"
#include "util/timing.h"

#define MAX_INPUTS 16


int bench_train(const built_train *b, const bench_options *o, FILE *out,
                dsc_err *err)
{
    const graph *g = b->train.model->graph;
    runner r;
    void *io[MAX_INPUTS + 1] = {0};
    int n_io = 0, rc = -1, runs = o->runs > 0 ? o->runs : 10;
    double *times = calloc((size_t)runs, sizeof *times);
    float *state = aligned_alloc(DSC_ALIGN, ((size_t)b->state_floats * 4 +
                                             DSC_ALIGN - 1) / DSC_ALIGN *
                                            DSC_ALIGN);
    uint64_t rng = o->seed ^ 0x5eedULL;
    runner_options ro = { .weights_path = o->weights_path, .seed = o->seed,
                          .threads = o->threads, .aot = o->aot };
    memset(&r, 0, sizeof r);
    if (!times || !state) {
        err_set(err, "error: out of memory for the training state");
        goto done;
    }
    for (int t = 0; t < g->n_tensors && n_io < MAX_INPUTS; t++) {
        if (g->tensors[t].kind != GRAPH_INPUT)
            continue;
        int64_t n = graph_shape_count(&g->tensors[t].shape);
        if (!(io[n_io] = malloc((size_t)n * 4))) {
            err_set(err, "error: out of memory for inputs");
            goto done;
        }
        runner_random_input(g, t, io[n_io++], n, &rng);
    }
    if (runner_open(&r, &b->train, &ro, err))
        goto done;
    rt_train_init(state, b->train.weights.total_floats, 1e-4, o->seed);
    train_io_fn step = (train_io_fn)(void (*)(void))loaded_entry(r.code);
    float loss;
    for (int i = -1; i < runs; i++) {  /* one warm-up */
        double t0 = timing_now_ms();
        if (step(r.ctx, r.weights, state, io, &loss, r.arena) != DSC_OK) {
            err_set(err, "error: the train step failed");
            goto done;
        }
        if (i >= 0)
            times[i] = timing_now_ms() - t0;
    }
    /* A linear's backward is two GEMMs of its forward's size; the rest is
     * small: 3x the forward's count. */
    double gflop = 3 * bench_graph_flop(b->fwd.model->graph);
    double median = bench_median(times, runs);  /* sorts times */
    struct rusage ru;
    long rss_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
    fprintf(out, "{\"model\":\"%s\",\"mode\":\"%s\",\"what\":\"train_step\","
            "\"threads\":%d,\"runs\":%d,\"median_ms\":%.4f,\"min_ms\":%.4f,"
            "\"max_ms\":%.4f,\"gflop\":%.9g,\"gflops\":%.3f,"
            "\"load_ms\":%.3f,\"arena_bytes\":%lld,\"state_bytes\":%lld,"
            "\"peak_rss_kb\":%ld}\n", b->train.model->name,
            o->aot ? "aot" : "jit", rt_ctx_threads(r.ctx), runs, median,
            times[0], times[runs - 1], gflop, gflop / median * 1e3, r.load_ms,
            (long long)b->train.plan.arena_bytes,
            (long long)b->state_floats * 4, rss_kb);
    rc = 0;
done:
    runner_close(&r);
    for (int i = 0; i < n_io; i++)
        free(io[i]);
    free(times);
    free(state);
    return rc;
}
