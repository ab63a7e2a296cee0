#define _POSIX_C_SOURCE 200809L
#include "driver/runner.h"

#include <stdlib.h>
#include <string.h>

#include "dsc_runtime.h"
#include "backend/emit_c.h"
#include "util/rng.h"
#include "util/timing.h"


int runner_open(runner *r, const built_model *b, const runner_options *o,
                dsc_err *err)
{
    memset(r, 0, sizeof *r);
    r->built = b;
    r->decoder = emit_is_decoder(b->model->graph, &r->context);
    int64_t cache_floats = r->cache_floats =
        emit_cache_floats(b->model->graph);
    size_t arena = ((size_t)b->plan.arena_bytes + DSC_ALIGN - 1) /
                   DSC_ALIGN * DSC_ALIGN;
    if (!(r->weights = weights_make_blob(b->model->graph, &b->weights,
                                         o->weights_path, o->seed, o->notes,
                                         err)))
        goto fail;
    if (!(r->arena = rt_alloc(arena ? arena : DSC_ALIGN)) ||
        (cache_floats && !(r->cache = calloc((size_t)cache_floats,
                                             sizeof(float))))) {
        err_set(err, "error: out of memory for the arena (%zu bytes) or "
                "cache (%lld floats)", arena, (long long)cache_floats);
        goto fail;
    }
    if (!(r->ctx = rt_ctx_new(o->threads))) {
        err_set(err, "error: cannot start the runtime's threads");
        goto fail;
    }
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
    loaded_free(r->code);
    rt_ctx_free(r->ctx);
    free(r->weights);
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
