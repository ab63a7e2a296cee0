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
#define DSC_EBADLAYOUT (-3) /* weights packed in another layout or format:
                               rt_ctx_error says which */
#define DSC_ENOMEM    (-4)  /* a kernel could not allocate its scratch */

/* ---- instruction sets and packed layouts ------------------------------
 * The kernels come in one version per instruction set, chosen once per
 * context: the widest the CPU has, or the one $DSC_ISA names (generic,
 * avx2 or avx512; one the CPU lacks is ignored).  Under DSC_ISA=avx2
 * libxsmm is pointed at AVX2 too (unless $LIBXSMM_TARGET says otherwise).
 * Linear weights are packed in panels of 32 or 64 columns (the layout);
 * every kernel runs every layout, but each ISA runs best on its own. */
#define DSC_ISA_GENERIC 0
#define DSC_ISA_AVX2    1
#define DSC_ISA_AVX512  2

#define DSC_LAYOUT_PANEL32 32
#define DSC_LAYOUT_PANEL64 64

/* The format each linear weight value is stored in: float32; bfloat16
 * (a float's top 16 bits, rounded to nearest even); or Q8_0 (int8 values
 * in blocks of 32 along the input, one float scale max|w| / 127 per block
 * and output column).  Activations are float32 throughout; the kernels
 * convert the weights as they read them. */
#define DSC_WEIGHTS_F32  0
#define DSC_WEIGHTS_BF16 1
#define DSC_WEIGHTS_Q8   2

/* A layout is a panel width and a format: DSC_LAYOUT(64, DSC_WEIGHTS_Q8).
 * The float32 layouts are the panel widths themselves. */
#define DSC_LAYOUT(panel, format) ((panel) | (format) << 8)
#define DSC_LAYOUT_PANEL_OF(layout) ((layout) & 0xff)
#define DSC_LAYOUT_FORMAT_OF(layout) ((layout) >> 8)

int rt_isa_native(void);          /* what a new context would choose now */
int rt_isa_supported(int isa);    /* can this CPU run it? */
const char *rt_isa_name(int isa); /* "generic", "avx2", "avx512" */
int rt_isa_parse(const char *name);  /* DSC_ISA_* or -1 */
int rt_ctx_isa(const rt_ctx *ctx);
int rt_isa_layout(int isa);       /* the float32 layout isa runs best */
int rt_layout_valid(int layout);
/* "panel32", "panel64", "panel64-bf16", "panel32-q8", ... */
const char *rt_layout_name(int layout);
const char *rt_format_name(int format);   /* "f32", "bf16", "q8" */
int rt_format_parse(const char *name);    /* DSC_WEIGHTS_* or -1 */

/* The weight blob starts with a header of DSC_BLOB_HEADER_FLOATS floats
 * (magic, format version, layout, size); the weights follow. */
#define DSC_BLOB_HEADER_FLOATS 16
void rt_blob_header(float *blob, int layout, int64_t total_floats);
/* The layout a blob says it was packed in, or -1 if it is not a blob. */
int rt_blob_layout(const float *blob);
/* What a generated forward does first: DSC_OK if blob was packed in
 * `layout` (the layout the code was generated for), else DSC_EBADLAYOUT
 * with a message naming both in rt_ctx_error(ctx).  On a context's first
 * sight of a blob it also asks the kernel for huge pages under it, so the
 * weights take few TLB entries. */
int rt_weights_check(rt_ctx *ctx, const float *blob, int layout);
/* The last error message of ctx ("" if none). */
const char *rt_ctx_error(const rt_ctx *ctx);

/* Byte alignment of every arena region and every weight in the blob. */
#define DSC_ALIGN 64

/* Memory for a weight blob or an arena: DSC_ALIGN-aligned, and from 2 MB
 * on 2 MB-aligned with transparent huge pages asked for (madvise) before
 * the first touch, so a forward's weights take a few TLB entries instead
 * of thousands.  Release with free().  NULL when out of memory. */
void *rt_alloc(size_t bytes);

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

/* A packed weight starts with this many floats of header (its layout and
 * shape), then the panels. */
#define RT_LINEAR_HEADER_FLOATS 16

/* Floats rt_linear_pack writes for an [n_out, n_in] weight in layout
 * (a header and the panels, in the layout's format; a multiple of 16). */
int64_t rt_linear_packed_floats(int64_t n_out, int64_t n_in, int layout);

/* Repack a PyTorch-layout weight w[n_out][n_in] into dst, converting to
 * the layout's format (dst 64-byte aligned for the kernels' sake). */
void rt_linear_pack(float *dst, const float *w, int64_t n_out, int64_t n_in,
                    int layout);

/* The inverse: w[n_out][n_in] from a packed weight in whatever layout its
 * header names (the stored values: bfloat16 or q * scale for the reduced
 * formats); -1 if the header names none for this shape. */
int rt_linear_unpack(float *w, const float *packed, int64_t n_out,
                     int64_t n_in);

/* dst[i] = x[i] rounded to bfloat16 (to nearest, ties to even; NaN kept
 * NaN): exact for values that came from bfloat16. */
void rt_to_bf16(uint16_t *dst, const float *x, int64_t n);

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
/* dx = dy / (1 - p) where y > 0, else 0: the backward of dropout(relu(z))
 * from the dropout's result y (> 0 exactly where the mask kept a positive
 * relu(z)): one pass, no mask to regenerate.  dx may alias dy. */
void rt_dropout_relu_grad(rt_ctx *ctx, float *dx, const float *dy,
                          const float *y, int64_t n, float p);
/* The same over rows x cols (contiguous), db = dx's column sums as
 * rt_bias_grad makes them (not accumulated): the bias's gradient in the
 * same pass.  dx may alias dy. */
void rt_dropout_relu_grad_bias(rt_ctx *ctx, float *dx, const float *dy,
                               const float *y, int64_t rows, int64_t cols,
                               float p, float *db);
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
/* Scratch floats rt_linear_grad_x and rt_linear_grad_w need. */
int64_t rt_linear_grad_scratch_floats(int64_t rows, int64_t n_out,
                                      int64_t n_in);
/* dx[rows, n_in] = dy · W for a packed W[n_out, n_in]. */
void rt_linear_grad_x(rt_ctx *ctx, float *dx, const float *dy, int64_t lddy,
                      const float *packed_w, int64_t rows, int64_t n_out,
                      int64_t n_in, float *scratch);
/* dW = dyᵀ · x, written (or added, accumulate) packed in layout
 * (DSC_LAYOUT_*, the weight's), header included. */
void rt_linear_grad_w(rt_ctx *ctx, float *packed_dw, int layout,
                      const float *dy,
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

/* ---- DeepSeek-V3 (deepseek.c) -----------------------------------------
 * transformers' DeepseekV3ForCausalLM: RMSNorm, SwiGLU, multi-head latent
 * attention (MLA) over a compressed cache, the sigmoid-routed experts. */


/* Per row: y = w * x / sqrt(mean(x²) + eps).  x has row stride ldx; y is
 * contiguous and may alias x when ldx == dim. */
void rt_rmsnorm(rt_ctx *ctx, float *y, const float *x, int64_t ldx,
                const float *w, int64_t rows, int64_t dim, float eps);

/* y[i, k] = silu(a[i, k]) * b[i, k] (SwiGLU), a and b with row strides. */
void rt_silu_mul(rt_ctx *ctx, float *y, const float *a, int64_t lda,
                 const float *b, int64_t ldb, int64_t rows, int64_t dim);

#define RT_MLA_MAX_RANK 4096  /* kv_lora_rank */
#define RT_MLA_MAX_ROPE 256   /* qk_rope_head_dim */

/* One MLA layer.  q rows: heads x (d_nope | d_rope); kv rows (from
 * kv_a_proj_with_mqa): the latent (rank) | the shared rope key (d_rope).
 * RoPE: rope_theta; with rope_yarn, YaRN's blend of 1/(factor·θ^(2j/d))
 * and 1/θ^(2j/d) over the ramp [rope_low, rope_high]; cos and sin times
 * rope_attn; pairs interleaved (x[2j], x[2j+1]) or halves (x[j],
 * x[j+d/2]). */
typedef struct rt_mla_shape {
    int64_t heads, d_nope, d_rope, d_v, rank;
    int64_t ldq, ldkv, ldo;
    float scale, eps;    /* softmax scale; kv_a_layernorm's eps */
    float rope_theta, rope_factor, rope_low, rope_high, rope_attn;
    int rope_yarn, rope_interleave;
} rt_mla_shape;

/* The d_rope / 2 inverse frequencies the shape describes. */
void rt_rope_inv_freq(float *inv, const rt_mla_shape *s);

/* Append n tokens at positions pos.. to the cache ([context, rank +
 * d_rope]: the RMS-normalized latent, the rotated rope key), then for each
 * new token and head attend causally over cache rows 0..pos+i in the
 * absorbed form: the query folded through kv_b's key rows, the output
 * through its value rows (kv_b: [heads * (d_nope + d_v), rank] packed by
 * rt_linear_pack, any layout), so the cache is never expanded.  out:
 * [n, heads * d_v] with row stride ldo (NaN if kv_b is not packed for
 * this shape). */
void rt_mla_attention(rt_ctx *ctx, float *out, const float *q, const float *kv,
                      const float *kv_norm, const float *kv_b, float *cache,
                      int64_t n, int64_t pos, const rt_mla_shape *s);

/* The router: scores = sigmoid(logits); choice = scores + bias; groups of
 * experts / n_group scored by the sum of their two best choices; the best
 * topk_group groups kept; the top_k best choices among them; weights the
 * unbiased scores (normalized over the k when norm), times scale. */
typedef struct rt_moe_shape {
    int64_t experts, n_group, topk_group, top_k;
    int norm;
    float scale;
} rt_moe_shape;

/* route[i] = top_k expert ids (as floats), then their top_k weights.
 * DSC_OK or DSC_ENOMEM. */
int rt_moe_route(rt_ctx *ctx, float *route, const float *logits,
                 const float *bias, int64_t rows, const rt_moe_shape *s);

/* torch.topk(x, k, sorted=False).indices on the CPU, ties as torch breaks
 * them; scratch: rt_topk_scratch_bytes(n). */
void rt_topk_indices(int64_t *idx, const float *x, int64_t n, int64_t k,
                     void *scratch);
size_t rt_topk_scratch_bytes(int64_t n);

/* y = acc + Σ over the rows i that chose `expert` of weight · down(silu(
 * gate(x_i)) * up(x_i)); gate_up (rows gate then up, [2 inter, dim]) and
 * down ([dim, inter]) packed by rt_linear_pack in any layout, read only
 * when some row chose the expert.  y may alias acc.  DSC_OK or
 * DSC_ENOMEM. */
int rt_moe_expert(rt_ctx *ctx, float *y, const float *acc, const float *x,
                  const float *route, const float *gate_up, const float *down,
                  int64_t rows, int64_t dim, int64_t inter, int64_t top_k,
                  int64_t expert);

#define DSC_DEEPSEEK_SYMBOLS(X) \
    X(rt_rmsnorm)               \
    X(rt_silu_mul)              \
    X(rt_mla_attention)         \
    X(rt_moe_route)             \
    X(rt_moe_expert)

/* ---- sentence embeddings over padded batches (pooling.c) ---------------
 * Sequence b holds lengths[b] real tokens, then padding; a length outside
 * [0, seq] counts as its nearest end. */

/* rt_attention with sequence b attending to its first lengths[b] keys
 * only; its query rows past lengths[b] are set to zero. */
void rt_attention_lengths(rt_ctx *ctx, float *out, const float *q,
                          const float *k, const float *v,
                          const int32_t *lengths,
                          const rt_attention_shape *shape);

/* y[b, :] = mean of x[b, s, :] over s < lengths[b] (zero for length 0),
 * x [batch, seq, dim], as sentence-transformers' mean pooling. */
void rt_mean_pool(rt_ctx *ctx, float *y, const float *x,
                  const int32_t *lengths, int64_t batch, int64_t seq,
                  int64_t dim);

/* Packed sequences, no padding: sequence b is the lengths[b] rows after
 * those of sequences 0..b-1 (the rest of the shape->seq rows are zeroed;
 * lengths past them are cut short).  Attention within each sequence. */
void rt_attention_packed(rt_ctx *ctx, float *out, const float *q,
                         const float *k, const float *v,
                         const int32_t *lengths, int64_t n_seq,
                         const rt_attention_shape *shape);

/* y[b, :] = mean of sequence b's rows of the packed x [tokens, dim]. */
void rt_mean_pool_packed(rt_ctx *ctx, float *y, const float *x,
                         const int32_t *lengths, int64_t n_seq,
                         int64_t tokens, int64_t dim);

/* Each row of dim floats divided by max(its L2 norm, 1e-12), as
 * torch.nn.functional.normalize.  y may alias x. */
void rt_l2_normalize(rt_ctx *ctx, float *y, const float *x, int64_t rows,
                     int64_t dim);

/* Every runtime function the generated code may call; the JIT binds each
 * into the TinyCC state from this list. */
#define DSC_RUNTIME_SYMBOLS(X) \
    X(rt_weights_check)        \
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
    X(rt_attention_lengths)    \
    X(rt_mean_pool)            \
    X(rt_attention_packed)     \
    X(rt_mean_pool_packed)     \
    X(rt_l2_normalize)         \
    DSC_TRAIN_SYMBOLS(X)       \
    DSC_DEEPSEEK_SYMBOLS(X)

#define DSC_TRAIN_SYMBOLS(X)   \
    X(rt_train_grad)           \
    X(rt_train_begin)          \
    X(rt_dropout_key)          \
    X(rt_dropout)              \
    X(rt_relu_grad)            \
    X(rt_dropout_relu_grad)    \
    X(rt_dropout_relu_grad_bias) \
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
