/* ctx.c — the runtime context: how many threads the kernels may use. */
#include <stdlib.h>
#include <unistd.h>

#include "dsc_runtime.h"

struct rt_ctx {
    int threads;
};


rt_ctx *rt_ctx_new(int threads)
{
    rt_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    if (threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 0 ? (int)cores : 1;
    }
    ctx->threads = threads;
    return ctx;
}


void rt_ctx_free(rt_ctx *ctx)
{
    free(ctx);
}


int rt_ctx_threads(const rt_ctx *ctx)
{
    return ctx ? ctx->threads : 1;
}
