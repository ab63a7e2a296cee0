/* cmd_generate.c — dsc generate: continue a prompt with a decoder, greedy or sampled. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "backend/emit_c.h"
#include "driver/runner.h"
#include "driver/sample.h"
#include "io/npy.h"
#include "dsc_runtime.h"
#include "util/timing.h"

/* "464,2068,318" into ids; -1 with a message when malformed. */
static int parse_prompt(const char *text, int32_t **ids, int64_t *n)
{
    int64_t count = 1;
    for (const char *p = text; *p; p++)
        count += *p == ',';
    if (!(*ids = malloc((size_t)count * sizeof(int32_t))))
        return -1;
    const char *p = text;
    for (int64_t i = 0; i < count; i++) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX ||
            (*end != ',' && *end != '\0')) {
            fprintf(stderr, "dsc: error: --prompt expects token ids like "
                    "464,2068,318; got '%s'\n", text);
            free(*ids);
            *ids = NULL;
            return -1;
        }
        (*ids)[i] = (int32_t)v;
        p = end + 1;
    }
    *n = count;
    return 0;
}


/* --prompt-logits: the logits of every prompt position, the prompt fed one
 * token at a time (the decode entry point), into [n_prompt, vocab]; the
 * cache is cleared again for the generation that follows. */
static int write_prompt_logits(runner *r, const graph *g, const cli *c,
                               int32_t *prompt, int64_t n_prompt,
                               int64_t vocab)
{
    float *all = malloc((size_t)(n_prompt * vocab) * sizeof(float));
    dsc_err err;
    int status = DSC_OK;
    if (!all) {
        fprintf(stderr, "dsc: error: out of memory\n");
        return -1;
    }
    for (int64_t i = 0; i < n_prompt && status == DSC_OK; i++) {
        void *io[3] = { prompt + i, all + i * vocab, NULL };
        status = runner_call(r, io, 2, 1, i);
    }
    runner_reset(r);
    if (status == DSC_EBADTOKEN) {
        void *io[1] = { prompt };
        cli_report_bad_token(g, c, io, n_prompt, "--prompt");
    } else if (status != DSC_OK) {
        fprintf(stderr, "dsc: error: the model returned status %d\n", status);
    } else {
        int64_t shape[2] = { n_prompt, vocab };
        if (npy_write(c->prompt_logits_path, NPY_F32, 2, shape, all, &err)) {
            cli_print_err(&err);
            status = -1;
        }
    }
    free(all);
    return status == DSC_OK ? 0 : -1;
}


int cmd_generate(const cli *c)
{
    build_options opts = cli_build_options(c);
    built_model b;
    runner r = {0};
    dsc_err err;
    int32_t *prompt = NULL;
    int64_t n_prompt = 0;
    float *logits = NULL;
    void *scratch = NULL;
    int rc = 1;
    int threads = cli_thread_count(c);
    if (threads < 0)
        return 1;
    if (!c->prompt)
        return cli_usage_error("%s", "generate needs --prompt IDS (e.g. "
                           "--prompt 464,2068,318)");
    if (parse_prompt(c->prompt, &prompt, &n_prompt))
        return 1;
    if (build_model(c->model_path, &opts, &b, &err)) {
        cli_print_err(&err);
        free(prompt);
        return 1;
    }
    const graph *g = b.model->graph;
    int64_t context = 0, vocab = 0;
    int out = -1;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_OUTPUT)
            out = t;
    if (!emit_is_decoder(g, &context) || graph_count_kind(g, GRAPH_INPUT) != 1 ||
        graph_count_kind(g, GRAPH_OUTPUT) != 1) {
        fprintf(stderr, "%s: error: generate needs a decoder: one token input "
                "with {dynamic = true} and one logits output\n", b.model->path);
        goto done;
    }
    vocab = g->tensors[out].shape.dim[g->tensors[out].shape.rank - 1];
    if (n_prompt + c->new_tokens > context) {
        fprintf(stderr, "dsc: error: the prompt's %lld tokens and -n %lld "
                "exceed the model's context of %lld\n", (long long)n_prompt,
                (long long)c->new_tokens, (long long)context);
        goto done;
    }
    runner_options ro = { .weights_path = c->weights_path, .seed = c->seed,
                          .threads = threads, .aot = c->aot,
                          .notes = stderr };
    if (!(logits = malloc((size_t)vocab * sizeof(float))) ||
        !(scratch = malloc(sample_scratch_bytes(vocab)))) {
        fprintf(stderr, "dsc: error: out of memory\n");
        goto done;
    }
    if (runner_open(&r, &b, &ro, &err)) {
        cli_print_err(&err);
        goto done;
    }
    sample_options so = { .temperature = c->temperature, .top_k = c->top_k,
                          .top_p = c->top_p };
    uint64_t rng = c->seed;
    if (c->prompt_logits_path &&
        write_prompt_logits(&r, g, c, prompt, n_prompt, vocab))
        goto done;
    void *io[3] = { prompt, logits, NULL };
    double t0 = timing_now_ms();
    int status = runner_call(&r, io, 2, n_prompt, 0);
    double t1 = timing_now_ms(), t2 = t1;
    int64_t printed = 0;
    for (int64_t i = 0; status == DSC_OK && i < c->new_tokens; i++) {
        int32_t next = (int32_t)sample_next(logits, vocab, &so, &rng, scratch);
        printf("%s%d", i ? "," : "", next);
        printed++;
        fflush(stdout);
        if (i + 1 == c->new_tokens)
            break;
        io[0] = &next;
        status = runner_call(&r, io, 2, 1, n_prompt + i);
        t2 = timing_now_ms();
    }
    if (printed || status == DSC_OK)  /* no empty line for a failed prompt */
        printf("\n");
    if (status == DSC_EBADTOKEN) {
        io[0] = prompt;
        cli_report_bad_token(g, c, io, n_prompt, "--prompt");
        goto done;
    } else if (status != DSC_OK) {
        fprintf(stderr, "dsc: error: the model returned status %d\n", status);
        goto done;
    }
    int64_t decoded = c->new_tokens > 1 ? c->new_tokens - 1 : 0;
    fprintf(stderr, "prefill: %lld tokens in %.2f ms (%.1f tokens/s); "
            "decode: %lld tokens in %.2f ms (%.1f tokens/s); %d thread%s, %s\n",
            (long long)n_prompt, t1 - t0, n_prompt / ((t1 - t0) / 1e3),
            (long long)decoded, t2 - t1,
            decoded ? decoded / ((t2 - t1) / 1e3) : 0.0,
            rt_ctx_threads(r.ctx), rt_ctx_threads(r.ctx) > 1 ? "s" : "",
            c->aot ? "aot" : "jit");
    rc = 0;
done:
    free(prompt);
    free(logits);
    free(scratch);
    runner_close(&r);
    built_model_free(&b);
    return rc;
}
