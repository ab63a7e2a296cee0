#define _POSIX_C_SOURCE 200809L
#include "driver/runner.h"

#include <stdlib.h>
#include <string.h>

#include "dsc_runtime.h"
#include "backend/emit_c.h"
#include "util/rng.h"
#include "util/timing.h"


/* The per-call state: runtime context, arena and a decoder's cache. */
static int attach_state(runner *r, int threads, dsc_err *err)
{
    const built_model *b = r->built;
    size_t arena = ((size_t)b->plan.arena_bytes + DSC_ALIGN - 1) /
                   DSC_ALIGN * DSC_ALIGN;
    /* Huge pages where the kernel gives them: see rt_alloc. */
    if (!(r->arena = rt_alloc(arena ? arena : DSC_ALIGN)) ||
        (r->cache_floats && !(r->cache = calloc((size_t)r->cache_floats,
                                                sizeof(float)))))
        return err_set(err, "error: out of memory for the arena (%zu bytes) "
                       "or cache (%lld floats)", arena,
                       (long long)r->cache_floats);
    if (!(r->ctx = rt_ctx_new(threads)))
        return err_set(err, "error: cannot start the runtime's threads");
    return 0;
}


int runner_load(runner *r, const built_model *b, const runner_options *o,
                dsc_err *err)
{
    memset(r, 0, sizeof *r);
    r->built = b;
    r->decoder = emit_is_decoder(b->model->graph, &r->context);
    r->cache_floats = emit_cache_floats(b->model->graph);
    if (!(r->weights = weights_make_blob(b->model->graph, &b->weights,
                                         o->weights_path, o->seed, o->notes,
                                         err)))
        goto fail;
    double t0 = timing_now_ms();
    r->code = o->aot ? aot_load(b->source, b->header, build_runtime_header(),
                                b->model->name, b->entry, err)
                     : jit_load(b->jit_source, b->model->name, b->entry, err);
    r->load_ms = timing_now_ms() - t0;
    if (!r->code)
        goto fail;
    return 0;
fail:
    runner_close(r);
    return -1;
}


int runner_open(runner *r, const built_model *b, const runner_options *o,
                dsc_err *err)
{
    if (runner_load(r, b, o, err))
        return -1;
    if (attach_state(r, o->threads, err)) {
        runner_close(r);
        return -1;
    }
    return 0;
}


int runner_clone(runner *dst, const runner *src, int threads, dsc_err *err)
{
    *dst = *src;
    dst->ctx = NULL;
    dst->arena = NULL;
    dst->cache = NULL;
    dst->borrowed = 1;
    if (attach_state(dst, threads, err)) {
        runner_close(dst);
        return -1;
    }
    return 0;
}


int runner_call(runner *r, void **io, int n_io, int64_t n, int64_t pos)
{
    if (!r->decoder)
        return loaded_entry(r->code)(r->ctx, r->weights, io, r->arena);
    io[n_io] = r->cache;  /* the caller leaves room: see runner.h */
    return loaded_step(r->code)(r->ctx, r->weights, io, n, pos, r->arena);
}


void runner_reset(runner *r)
{
    if (r->cache)
        memset(r->cache, 0, (size_t)r->cache_floats * sizeof(float));
}


void runner_close(runner *r)
{
    if (!r->borrowed) {
        loaded_free(r->code);
        free(r->weights);
    }
    rt_ctx_free(r->ctx);
    free(r->arena);
    free(r->cache);
    memset(r, 0, sizeof *r);
}


void runner_random_input(const graph *g, int t, void *buf, int64_t count,
                         uint64_t *rng)
{
    uint64_t vocab = (uint64_t)graph_token_vocab(g, t);
    for (int64_t i = 0; i < count; i++) {
        uint64_t r = rng_next(rng);
        if (g->tensors[t].dtype == GRAPH_I32)
            ((int32_t *)buf)[i] = (int32_t)(r % (vocab ? vocab : 2));
        else
            ((float *)buf)[i] = (float)(r >> 40) / (float)(1 << 23) - 1.0f;
    }
}


int runner_bad_token(const graph *g, void *const *io, int64_t tokens,
                     const char *const *sources, const char *source,
                     dsc_err *err)
{
    int k = 0;
    for (int t = 0; t < g->n_tensors; t++) {
        const graph_tensor *x = &g->tensors[t];
        if (x->kind != GRAPH_INPUT)
            continue;
        const char *path = sources && sources[k] ? sources[k] : source;
        const int32_t *ids = io[k++];
        int64_t vocab = graph_token_vocab(g, t);
        if (x->dtype != GRAPH_I32 || !vocab)
            continue;
        int64_t count = graph_shape_count(&x->shape);
        if (x->dynamic)  /* only the first `tokens` rows were given */
            count = count / x->shape.dim[0] * tokens;
        for (int64_t i = 0; i < count; i++) {
            if (ids[i] >= 0 && ids[i] < vocab)
                continue;
            char pos[128];
            int at = 0;
            int64_t rest = i;
            int64_t idx[GRAPH_MAX_RANK];
            for (int d = x->shape.rank - 1; d >= 0; d--) {
                idx[d] = rest % x->shape.dim[d];
                rest /= x->shape.dim[d];
            }
            for (int d = 0; d < x->shape.rank; d++)
                at += snprintf(pos + at, sizeof pos - (size_t)at, "%s%lld",
                               d ? ", " : "", (long long)idx[d]);
            return err_set(err, "%s: error: %s[%s] = %d is not a token id in "
                           "[0, %lld)", path, x->name, pos, (int)ids[i],
                           (long long)vocab);
        }
    }
    return err_set(err, "%s: error: the model rejected a token id", source);
}
