/* cmd_bench.c — dsc bench: build a model and time its forward. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "driver/bench.h"
#include "driver/train.h"
#include "util/timing.h"

int cmd_bench(const cli *c)
{
    build_options opts = cli_build_options(c);
    built_model b;
    dsc_err err;
    int threads = cli_thread_count(c);
    if (threads < 0)
        return 1;
    double t0 = timing_now_ms();
    if (c->train) {  /* one training step: driver/train_bench.c */
        built_train bt;
        if (build_train(c->model_path, &opts, &bt, &err)) {
            cli_print_err(&err);
            return 1;
        }
        bench_options bo = { .weights_path = c->weights_path, .seed = c->seed,
                             .runs = c->runs ? c->runs : 10,
                             .threads = threads, .aot = c->aot };
        int rc = bench_train(&bt, &bo, stdout, &err);
        if (rc)
            cli_print_err(&err);
        built_train_free(&bt);
        return rc ? 1 : 0;
    }
    if (build_model(c->model_path, &opts, &b, &err)) {
        cli_print_err(&err);
        return 1;
    }
    bench_options bo = { .weights_path = c->weights_path, .seed = c->seed,
                         .runs = c->runs ? c->runs : 20, .threads = threads,
                         .aot = c->aot, .build_ms = timing_now_ms() - t0,
                         .new_tokens = c->new_tokens_given ? c->new_tokens
                                                           : 64,
                         .model_path = c->model_path, .build = &opts };
    int rc = bench_model(&b, &bo, stdout, &err);
    if (rc)
        cli_print_err(&err);
    built_model_free(&b);
    return rc ? 1 : 0;
}
