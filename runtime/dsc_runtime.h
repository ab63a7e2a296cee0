/* dsc_runtime.h — the tiny runtime that dsc-generated C calls.
 *
 * The generated code only orchestrates: every loop that matters lives here,
 * compiled once by the system compiler with optimization.  The runtime knows
 * nothing of graphs, Lua or C text; it sees matrices with constant sizes.
 *
 * Layout conventions (all row-major, float32 unless said otherwise):
 *   a "row" is the last dimension of a tensor; rows are contiguous.
 *   linear weights are PyTorch's [out, in], repacked at compile time by
 *   rt_linear_pack into whatever layout rt_linear wants.
 */
#ifndef DSC_RUNTIME_H
#define DSC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#define DSC_RUNTIME_VERSION "0.1"

/* What the kernels share across calls: the worker threads and the GEMM
 * kernels dispatched for each shape.  Every kernel takes one; NULL runs on
 * the calling thread alone.  A context serves one forward at a time. */
typedef struct rt_ctx rt_ctx;

/* A context with `threads` threads (the caller's included); threads <= 0
 * means one per core.  NULL when out of memory. */
rt_ctx *rt_ctx_new(int threads);
void rt_ctx_free(rt_ctx *ctx);
int rt_ctx_threads(const rt_ctx *ctx);

/* Status codes returned by generated entry points. */
#define DSC_OK          0
#define DSC_EBADTOKEN (-1)  /* a token id below 0 or >= the vocabulary */
#define DSC_ENOMEM    (-3)  /* a train step's scratch could not be allocated */

/* Byte alignment of every arena region and every weight in the blob. */
#define DSC_ALIGN 64

/* Epilogue applied to each output element of rt_linear, in this order:
 * y = act(x·Wᵀ + b) (+ residual when given). */
typedef enum rt_act {
    RT_ACT_NONE = 0,
    RT_ACT_RELU = 1,
    RT_ACT_GELU = 2,   /* exact erf form, as torch.nn.GELU() */
    RT_ACT_GELU_TANH = 3 /* tanh approximation, as GPT-2's gelu_new */
} rt_act;

/* out[i, :] = table[ids[i], :] for i < n.  Returns DSC_OK, or
 * DSC_EBADTOKEN (writing nothing further) if any id is outside [0, vocab). */
int rt_embedding(rt_ctx *ctx, float *out, const int32_t *ids, int64_t n,
                 const float *table, int64_t vocab, int64_t dim);

/* Floats rt_linear_pack writes for an [n_out, n_in] weight. */
int64_t rt_linear_packed_floats(int64_t n_out, int64_t n_in);

/* Repack a PyTorch-layout weight w[n_out][n_in] into dst. */
void rt_linear_pack(float *dst, const float *w, int64_t n_out, int64_t n_in);

/* y[m, n] = act(sum_k x[m, k] * W[n, k] + bias[n]) + residual[m, n]
 * for m < rows, n < n_out, k < n_in.  packed_w comes from rt_linear_pack;
 * bias and residual may be NULL; residual may alias y. x has row stride
 * ldx (>= n_in), y and residual have row stride ldy (>= n_out). */
void rt_linear(rt_ctx *ctx, float *y, int64_t ldy, const float *x, int64_t ldx,
               const float *packed_w, const float *bias,
               int64_t rows, int64_t n_out, int64_t n_in,
               rt_act act, const float *residual);

/* y = a + b over n floats; y may alias a or b. */
void rt_add(rt_ctx *ctx, float *y, const float *a, const float *b, int64_t n);

/* y = act(x) over n floats; y may alias x. */
void rt_activation(rt_ctx *ctx, float *y, const float *x, int64_t n, rt_act act);

/* Per row of dim floats: y = (x - mean) / sqrt(var + eps) * gamma + beta,
 * var the biased variance (as torch.nn.LayerNorm).  y may alias x. */
void rt_layernorm(rt_ctx *ctx, float *y, const float *x, const float *gamma,
                  const float *beta, int64_t rows, int64_t dim, float eps);

/* Softmax over each row of dim floats.  y may alias x. */
void rt_softmax(rt_ctx *ctx, float *y, const float *x, int64_t rows, int64_t dim);

/* Where a [seq, batch] grid of rows sits in memory: row (s, b) of a tensor
 * starts at base + (s * seq_step + b * batch_step) * ld.  batch_first=False
 * (PyTorch's default, [seq, batch, features]) is seq_step = batch,
 * batch_step = 1; batch_first=True is seq_step = 1, batch_step = seq. */
typedef struct rt_attention_shape {
    int64_t seq, batch, heads, head_dim_qk, head_dim_v;
    int64_t seq_step, batch_step;
    int64_t ldq, ldk, ldv, ldo;  /* row strides in floats */
    float scale;                 /* multiplies q·k, usually 1/sqrt(head_dim_qk) */
    int causal;                  /* nonzero: position s sees keys 0..s only */
} rt_attention_shape;

/* Scaled dot-product attention for every (batch, head):
 * out_h = softmax(scale * q_h k_hᵀ [+ causal mask]) v_h, head h reading
 * columns [h*head_dim, (h+1)*head_dim) of each row.  out must not alias
 * q, k or v. */
void rt_attention(rt_ctx *ctx, float *out, const float *q, const float *k, const float *v,
                  const rt_attention_shape *shape);

/* ---- decoder steps (decode.c) ------------------------------------------
 * A decoder runs n new tokens at positions pos..pos+n-1 (a prompt, then one
 * at a time), keeping every layer's keys and values in a cache the caller
 * owns. */

#define DSC_EBADPOS (-2)  /* n < 1, or pos + n beyond the context */

/* out[i, :] = table[pos + i, :] for i < n (learned position embeddings). */
void rt_positions(rt_ctx *ctx, float *out, const float *table, int64_t pos,
                  int64_t n, int64_t dim);

/* Row layout of one decoder attention step; caches are contiguous
 * [context, heads * head_dim] arrays. */
typedef struct rt_kv_shape {
    int64_t heads, head_dim_qk, head_dim_v;
    int64_t ldq, ldk, ldv, ldo;  /* row strides of q, k, v and out */
    float scale;
} rt_kv_shape;

/* Append the n new rows of k and v to the caches at rows pos.., then for
 * every new token i and head h: out = softmax(scale * q K[0..pos+i]ᵀ)
 * V[0..pos+i] — causal, and work proportional to pos + n, not the context. */
void rt_kv_attention(rt_ctx *ctx, float *out, const float *q, const float *k,
                     const float *v, float *k_cache, float *v_cache,
                     int64_t n, int64_t pos, const rt_kv_shape *shape);

/* dst = src over count floats. */
void rt_copy(rt_ctx *ctx, float *dst, const float *src, int64_t count);

/* ---- training (train.c) ------------------------------------------------
 * A train step's state is one float array: this header, then Adam's m and
 * v and the gradients, each the size of the weight blob (its layout: a
 * weight's gradient sits at the weight's offset, packed alike). */

#define RT_TRAIN_HEADER_FLOATS 16

typedef struct rt_train_header {
    int64_t step;           /* optimizer steps taken (the next is step + 1) */
    uint64_t seed;          /* dropout masks: hash of seed, step, node, index */
    int64_t weight_floats;  /* m, v and the gradients: this many floats each */
    double lr, beta1, beta2, eps, weight_decay;  /* as torch.optim.Adam's */
} rt_train_header;

/* Floats of state for a blob of weight_floats floats. */
int64_t rt_train_state_floats(int64_t weight_floats);
/* Zero the state; Adam with lr and PyTorch's defaults (0.9, 0.999, 1e-8). */
void rt_train_init(float *state, int64_t weight_floats, double lr,
                   uint64_t seed);
/* The gradient blob inside the state. */
float *rt_train_grad(float *state);
/* Count one more step (a train step calls it first). */
void rt_train_begin(float *state);
/* The dropout mask key of node `stream` at the current step. */
uint64_t rt_dropout_key(const float *state, int stream);

/* y = x * mask / (1 - p), the mask dropping each element with probability
 * p, a function of key and the element's index; the same call with dy
 * gives the backward.  y may alias x. */
void rt_dropout(rt_ctx *ctx, float *y, const float *x, int64_t n, float p,
                uint64_t key);
/* dx = dy where y > residual (0 when residual is NULL), else 0: the
 * backward of relu, or of a linear's relu epilogue followed by a residual
 * add (y = relu(z) + residual). */
void rt_relu_grad(rt_ctx *ctx, float *dx, const float *dy, const float *y,
                  const float *residual, int64_t n);
/* dx = dy * gelu'(x), act RT_ACT_GELU (erf) or RT_ACT_GELU_TANH. */
void rt_gelu_grad(rt_ctx *ctx, float *dx, const float *dy, const float *x,
                  int64_t n, rt_act act);
/* Rows of a softmax's output y: dx = y * (dy - sum(dy * y)). */
void rt_softmax_grad(rt_ctx *ctx, float *dx, const float *dy, const float *y,
                     int64_t rows, int64_t dim);
/* The mean over rows of logsumexp(logits) - logits[target] (as
 * nn.CrossEntropyLoss()), and its gradient; DSC_EBADTOKEN for a target
 * outside [0, classes), DSC_ENOMEM. */
int rt_cross_entropy(rt_ctx *ctx, float *loss, const float *logits,
                     const int32_t *targets, int64_t rows, int64_t classes);
int rt_cross_entropy_grad(rt_ctx *ctx, float *dlogits, const float *logits,
                          const int32_t *targets, int64_t rows,
                          int64_t classes);
/* The inverse of rt_linear_pack (to save trained weights). */
void rt_linear_unpack(float *w, const float *packed, int64_t n_out,
                      int64_t n_in);
/* Scratch floats rt_linear_grad_x and rt_linear_grad_w need. */
int64_t rt_linear_grad_scratch_floats(int64_t rows, int64_t n_out,
                                      int64_t n_in);
/* dx[rows, n_in] = dy · W for a packed W[n_out, n_in]. */
void rt_linear_grad_x(rt_ctx *ctx, float *dx, const float *dy, int64_t lddy,
                      const float *packed_w, int64_t rows, int64_t n_out,
                      int64_t n_in, float *scratch);
/* dW = dyᵀ · x, written (or added, accumulate) in the packed layout. */
void rt_linear_grad_w(rt_ctx *ctx, float *packed_dw, const float *dy,
                      int64_t lddy, const float *x, int64_t ldx, int64_t rows,
                      int64_t n_out, int64_t n_in, int accumulate,
                      float *scratch);
/* db[n] = sum over rows of dy (a bias's, or a layernorm beta's, gradient). */
void rt_bias_grad(rt_ctx *ctx, float *db, const float *dy, int64_t lddy,
                  int64_t rows, int64_t n, int accumulate);
void rt_layernorm_grad_x(rt_ctx *ctx, float *dx, const float *dy,
                         const float *x, const float *gamma, int64_t rows,
                         int64_t dim, float eps);
/* These three return DSC_OK, or DSC_ENOMEM when their scratch could not
 * be allocated (the results are then undefined). */
int rt_layernorm_grad_gamma(rt_ctx *ctx, float *dgamma, const float *dy,
                            const float *x, int64_t rows, int64_t dim,
                            float eps, int accumulate);
/* rt_attention with dropout p on the attention weights (training). */
int rt_attention_train(rt_ctx *ctx, float *out, const float *q,
                       const float *k, const float *v,
                       const rt_attention_shape *shape, float p,
                       uint64_t key);
/* The gradients of q, k and v (row stride ldd) from that of out (row stride
 * shape->ldo), recomputing the attention weights. */
int rt_attention_grad(rt_ctx *ctx, float *dq, float *dk, float *dv,
                      int64_t ldd, const float *dout, const float *q,
                      const float *k, const float *v,
                      const rt_attention_shape *shape, float p, uint64_t key);
/* dtable[ids[i]] += dy[i] (zeroed first unless accumulate). */
int rt_embedding_grad(rt_ctx *ctx, float *dtable, const float *dy,
                      const int32_t *ids, int64_t n, int64_t vocab,
                      int64_t dim, int accumulate);
/* torch.optim.Adam's step on w[first, first + count), from the state's
 * gradients, m and v at the same offsets. */
void rt_adam(rt_ctx *ctx, float *w, float *state, int64_t first,
             int64_t count);

/* Every runtime function the generated code may call; the JIT binds each
 * into the TinyCC state from this list. */
#define DSC_RUNTIME_SYMBOLS(X) \
    X(rt_embedding)            \
    X(rt_linear)               \
    X(rt_add)                  \
    X(rt_activation)           \
    X(rt_layernorm)            \
    X(rt_softmax)              \
    X(rt_attention)            \
    X(rt_positions)            \
    X(rt_kv_attention)         \
    X(rt_copy)                 \
    DSC_TRAIN_SYMBOLS(X)

#define DSC_TRAIN_SYMBOLS(X)   \
    X(rt_train_grad)           \
    X(rt_train_begin)          \
    X(rt_dropout_key)          \
    X(rt_dropout)              \
    X(rt_relu_grad)            \
    X(rt_gelu_grad)            \
    X(rt_softmax_grad)         \
    X(rt_cross_entropy)        \
    X(rt_cross_entropy_grad)   \
    X(rt_linear_grad_x)        \
    X(rt_linear_grad_w)        \
    X(rt_bias_grad)            \
    X(rt_layernorm_grad_x)     \
    X(rt_layernorm_grad_gamma) \
    X(rt_attention_train)      \
    X(rt_attention_grad)       \
    X(rt_embedding_grad)       \
    X(rt_adam)

#endif
