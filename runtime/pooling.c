/* pooling.c — what a sentence embedder adds to an encoder: attention that
 * ignores each sequence's padding, mean pooling over the real tokens, and
 * L2 normalization.
 *
 * rt_attention_lengths runs rt_attention once per sequence over its real
 * prefix (queries and keys 0..len-1): padding costs nothing, and a
 * sequence's result does not depend on its batch.  Padded query rows are
 * zeroed so later row-wise ops read defined values. */
#include "rt_internal.h"

#include <math.h>
#include <string.h>


static int64_t clamp_len(int32_t len, int64_t seq)
{
    return len < 0 ? 0 : len > seq ? seq : len;
}


void rt_attention_lengths(rt_ctx *ctx, float *out, const float *q,
                          const float *k, const float *v,
                          const int32_t *lengths,
                          const rt_attention_shape *shape)
{
    int64_t width = shape->heads * shape->head_dim_v;
    for (int64_t b = 0; b < shape->batch; b++) {
        int64_t len = clamp_len(lengths[b], shape->seq);
        int64_t row0 = b * shape->batch_step;
        if (len > 0) {
            rt_attention_shape s = *shape;
            s.seq = len;
            s.batch = 1;
            rt_attention(ctx, out + row0 * shape->ldo, q + row0 * shape->ldq,
                         k + row0 * shape->ldk, v + row0 * shape->ldv, &s);
        }
        for (int64_t i = len; i < shape->seq; i++)
            memset(out + (row0 + i * shape->seq_step) * shape->ldo, 0,
                   (size_t)width * sizeof(float));
    }
}


typedef struct pool_job {
    float *y;
    const float *x;
    const int32_t *lengths;
    int64_t seq, dim;
} pool_job;


static void pool_range(void *arg, int64_t b0, int64_t b1)
{
    const pool_job *j = arg;
    for (int64_t b = b0; b < b1; b++) {
        int64_t len = clamp_len(j->lengths[b], j->seq);
        float *y = j->y + b * j->dim;
        const float *x = j->x + b * j->seq * j->dim;
        memset(y, 0, (size_t)j->dim * sizeof *y);
        for (int64_t s = 0; s < len; s++)
            for (int64_t d = 0; d < j->dim; d++)
                y[d] += x[s * j->dim + d];
        for (int64_t d = 0; len && d < j->dim; d++)
            y[d] /= (float)len;
    }
}


void rt_mean_pool(rt_ctx *ctx, float *y, const float *x,
                  const int32_t *lengths, int64_t batch, int64_t seq,
                  int64_t dim)
{
    pool_job j = { y, x, lengths, seq, dim };
    rt_parallel(ctx, rt_threads_for(ctx, batch * seq * dim, 1 << 16), batch,
                pool_range, &j);
}


void rt_l2_normalize(rt_ctx *ctx, float *y, const float *x, int64_t rows,
                     int64_t dim)
{
    (void)ctx;  /* a few thousand floats: not worth waking threads */
    for (int64_t r = 0; r < rows; r++) {
        double sum = 0;
        for (int64_t d = 0; d < dim; d++)
            sum += (double)x[r * dim + d] * x[r * dim + d];
        double norm = sqrt(sum);
        float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
        for (int64_t d = 0; d < dim; d++)
            y[r * dim + d] = x[r * dim + d] * inv;
    }
}


/* ---- packed sequences -------------------------------------------------- */

void rt_attention_packed(rt_ctx *ctx, float *out, const float *q,
                         const float *k, const float *v,
                         const int32_t *lengths, int64_t n_seq,
                         const rt_attention_shape *shape)
{
    int64_t width = shape->heads * shape->head_dim_v, row = 0;
    for (int64_t b = 0; b < n_seq; b++) {
        int64_t len = clamp_len(lengths[b], shape->seq - row);
        if (len > 0) {
            rt_attention_shape s = *shape;
            s.seq = len;
            s.batch = 1;
            s.seq_step = 1;
            rt_attention(ctx, out + row * shape->ldo, q + row * shape->ldq,
                         k + row * shape->ldk, v + row * shape->ldv, &s);
        }
        row += len;
    }
    for (; row < shape->seq; row++)
        memset(out + row * shape->ldo, 0, (size_t)width * sizeof(float));
}


void rt_mean_pool_packed(rt_ctx *ctx, float *y, const float *x,
                         const int32_t *lengths, int64_t n_seq,
                         int64_t tokens, int64_t dim)
{
    (void)ctx;  /* one pass over the activations: not worth threads */
    int64_t row = 0;
    for (int64_t b = 0; b < n_seq; b++) {
        int64_t len = clamp_len(lengths[b], tokens - row);
        float *yb = y + b * dim;
        memset(yb, 0, (size_t)dim * sizeof *yb);
        for (int64_t s = row; s < row + len; s++)
            for (int64_t d = 0; d < dim; d++)
                yb[d] += x[s * dim + d];
        for (int64_t d = 0; len && d < dim; d++)
            yb[d] /= (float)len;
        row += len;
    }
}
