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
#define DSC_EBADLAYOUT (-3) /* weights packed in another layout: rt_ctx_error */

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

int rt_isa_native(void);          /* what a new context would choose now */
int rt_isa_supported(int isa);    /* can this CPU run it? */
const char *rt_isa_name(int isa); /* "generic", "avx2", "avx512" */
int rt_isa_parse(const char *name);  /* DSC_ISA_* or -1 */
int rt_ctx_isa(const rt_ctx *ctx);
int rt_isa_layout(int isa);       /* the layout isa runs best */
int rt_layout_valid(int layout);
const char *rt_layout_name(int layout);  /* "panel32", "panel64" */

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

/* Floats rt_linear_pack writes for an [n_out, n_in] weight in layout
 * (DSC_LAYOUT_*; a header and the panels). */
int64_t rt_linear_packed_floats(int64_t n_out, int64_t n_in, int layout);

/* Repack a PyTorch-layout weight w[n_out][n_in] into dst. */
void rt_linear_pack(float *dst, const float *w, int64_t n_out, int64_t n_in,
                    int layout);

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
    X(rt_copy)

#endif
