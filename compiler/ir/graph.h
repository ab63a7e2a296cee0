/* graph.h — dsc's op graph: tensors and nodes in arrays, addressed by index.
 *
 * Shapes are static; every node remembers the Lua source line that made it,
 * so every later error can point at the model file.  The graph knows
 * nothing of Lua or of C text.
 */
#ifndef DSC_GRAPH_H
#define DSC_GRAPH_H

#include <stdint.h>

#include "util/diag.h"

#define GRAPH_MAX_RANK   6
#define GRAPH_MAX_INPUTS 5
#define GRAPH_MAX_PARTS  16  /* weights stacked into one by fuse-qkv */

typedef enum graph_op {
#define OP(id, name, min_in, max_in) GRAPH_OP_##id,
#include "ir/ops.def"
#undef OP
    GRAPH_OP_COUNT
} graph_op;

typedef enum graph_dtype { GRAPH_F32, GRAPH_I32 } graph_dtype;

typedef enum graph_kind {
    GRAPH_INPUT,        /* caller-provided, read-only */
    GRAPH_WEIGHT,       /* constant, bound to a key of the weight file */
    GRAPH_INTERMEDIATE, /* lives in the arena */
    GRAPH_OUTPUT,       /* caller-provided, written by the forward */
    GRAPH_STATE,        /* caller-provided, kept across calls (KV cache) */
    GRAPH_GRAD          /* a weight's gradient, in the training state's
                           gradient blob at that weight's place */
} graph_kind;

/* How a weight is first filled when no weight file is given. */
typedef enum graph_init {
    GRAPH_INIT_UNIFORM, /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = last dim */
    GRAPH_INIT_ONES,
    GRAPH_INIT_ZEROS
} graph_init;

/* Where in which source file something was made.  file is owned by the
 * graph's string table. */
typedef struct graph_loc {
    const char *file;
    int line;
} graph_loc;

typedef struct graph_shape {
    int rank;
    int64_t dim[GRAPH_MAX_RANK];
} graph_shape;

/* Rows [row_first, row_first + rows) of the tensor `key` in the weight
 * file, whose full shape is key_shape; key NULL stands for rows of zeros
 * (a missing bias in a fused stack). */
typedef struct graph_weight_part {
    const char *key;
    graph_shape key_shape;   /* as stored in the file */
    int64_t row_first, rows;
    graph_init init;
    /* The file stores the transpose, [in, out] (GPT-2's Conv1D): rows here
     * are the file's columns, repacked at compile time. */
    int transposed;
} graph_weight_part;

/* A weight tensor: its parts' rows stacked in order along dimension 0.
 * The frontend makes one part (Q, K and V each a slice of
 * in_proj_weight); fuse-qkv stacks several. */
typedef struct graph_weight {
    graph_weight_part part[GRAPH_MAX_PARTS];
    int n_parts;
} graph_weight;

typedef struct graph_tensor {
    const char *name;  /* inputs and outputs: the API name; else a label */
    graph_dtype dtype;
    graph_shape shape;
    graph_kind kind;
    graph_weight weight;  /* GRAPH_WEIGHT only */
    int producer;         /* node index, or -1 */
    /* A view owns no memory: it is columns [view_col, view_col + last dim)
     * of each row of tensor view_of (which has the same leading dims).
     * Only ops that take a row stride read views (linear's x, attention). */
    int view_of;          /* -1 for a tensor with its own storage */
    int64_t view_col;
    /* Dimension 0 is a runtime token count n <= shape.dim[0] (a decoder
     * step); shape.dim[0] is its maximum, which the arena is planned for. */
    int dynamic;
    graph_loc loc;
} graph_tensor;

typedef struct graph_attrs {
    float eps;        /* layernorm */
    float scale;      /* attention: multiplies q·k */
    int heads;        /* attention */
    int causal;       /* attention */
    int batch_first;  /* attention: [batch, seq, .] instead of [seq, batch, .] */
    int act;          /* linear epilogue, gelu form: an rt_act value */
    float p;          /* dropout, attention: probability of dropping */
    int stream;       /* dropout, attention: which mask (of the RNG) */
    int accumulate;   /* weight gradients: add to the blob, not overwrite */
    /* DeepSeek-V3: mla_attention's RoPE (as rt_mla_shape), moe_route's
     * grouping, moe_expert's index. */
    float rope_theta, rope_factor, rope_low, rope_high, rope_attn;
    int rope_yarn, rope_interleave;
    int experts_per_tok, n_group, topk_group, norm_topk, expert;
    int expert_bf16;  /* moe_expert: its weights ask for bfloat16 (in a
                         float32 blob; a reduced blob's format serves) */
    float routed_scale;
} graph_attrs;

typedef struct graph_node {
    graph_op op;
    int n_inputs;
    int inputs[GRAPH_MAX_INPUTS];  /* -1 for an absent optional input */
    int output;
    graph_attrs attrs;
    graph_loc loc;       /* innermost Lua line (may be in the block library) */
    graph_loc user_loc;  /* the model file's line that led here */
} graph_node;

typedef struct graph {
    graph_tensor *tensors;
    int n_tensors, cap_tensors;
    graph_node *nodes;
    int n_nodes, cap_nodes;
    char **strings;      /* interned names, keys and file names */
    int n_strings, cap_strings;
    /* The training objective (dsc.loss): a tensor index + 1, 0 if none. */
    int loss_plus1;
} graph;

graph *graph_new(void);
void graph_free(graph *g);

/* Intern s in g (or return the interned copy); NULL only when out of memory. */
const char *graph_intern(graph *g, const char *s);

const char *graph_op_name(graph_op op);
/* The op named name, or -1. */
int graph_op_from_name(const char *name);
int graph_op_min_inputs(graph_op op);
int graph_op_max_inputs(graph_op op);
const char *graph_dtype_name(graph_dtype dtype);

int64_t graph_shape_count(const graph_shape *s);
int64_t graph_tensor_bytes(const graph_tensor *t);
int graph_shape_equal(const graph_shape *a, const graph_shape *b);
/* "[16, 20, 256]" into buf. */
const char *graph_shape_str(const graph_shape *s, char *buf, int len);

/* Add tensors; each returns the new tensor's index, or -1 on error. */
int graph_add_input(graph *g, const char *name, graph_dtype dtype,
                    const graph_shape *shape, graph_loc loc, dsc_err *err);
/* Mark an input's dimension 0 as the runtime token count (graph_add_input
 * first).  At most one dynamic input per graph. */
int graph_make_dynamic(graph *g, int tensor, graph_loc loc, dsc_err *err);
/* State the forward keeps across calls, in caller memory (a KV cache). */
int graph_add_state(graph *g, const char *label, const graph_shape *shape,
                    graph_loc loc, dsc_err *err);
/* A view of rows [row_first, row_first + shape->dim[0]) of key, whose full
 * shape is key_shape; pass row_first 0 and shape == key_shape for all of it.
 * Every weight naming one key must give it the same key_shape. */
int graph_add_weight(graph *g, const char *key, const graph_shape *key_shape,
                     int64_t row_first, const graph_shape *shape,
                     graph_init init, graph_loc loc, dsc_err *err);
/* The same for a rank-2 weight the file stores transposed: key_shape is the
 * file's [in, out]; shape and rows are in [out, in] terms. */
int graph_add_weight_t(graph *g, const char *key, const graph_shape *key_shape,
                       int64_t row_first, const graph_shape *shape,
                       graph_init init, graph_loc loc, dsc_err *err);

/* Add a node computing op over inputs (-1 for an absent optional input);
 * its output shape is inferred and checked (graph_shape.c).  Returns the
 * output tensor's index, or -1 with an error naming user_loc. */
int graph_add_node(graph *g, graph_op op, const int *inputs, int n_inputs,
                   const graph_attrs *attrs, graph_loc loc, graph_loc user_loc,
                   dsc_err *err);

/* Declare an intermediate tensor a graph output under name. */
int graph_mark_output(graph *g, int tensor, const char *name, graph_loc loc,
                      dsc_err *err);

/* Whole-graph checks after building and after each pass: at least one
 * output, every node's inputs defined before it.  Errors name the node's
 * line, or model_file. */
int graph_verify(const graph *g, const char *model_file, dsc_err *err);

/* Infer the output shape of a node (graph_shape.c).  On error, a message
 * naming the op and the shapes involved, without a location. */
int graph_infer_shape(const graph *g, graph_op op, const int *inputs,
                      int n_inputs, const graph_attrs *attrs,
                      graph_shape *out, graph_dtype *out_dtype,
                      char *why, int why_len);

/* The vocabulary an int32 tensor indexes: the table rows of the embedding
 * that reads it, or 0 if none does. */
int64_t graph_token_vocab(const graph *g, int t);

/* Number of entries in g of each kind, for summaries. */
int graph_count_kind(const graph *g, graph_kind kind);

/* ---- edits the passes share (graph_edit.c) ---- */

/* An intermediate tensor of shape, not produced by any node yet. */
int graph_add_tensor(graph *g, const char *label, const graph_shape *shape,
                     graph_loc loc, dsc_err *err);

/* Make tensor t a view of columns [col, col + its last dim) of base. */
void graph_make_view(graph *g, int t, int base, int64_t col);

/* The tensor that holds t's memory: t itself, or the base of its view. */
int graph_storage(const graph *g, int t);

/* Floats between consecutive rows of t (its storage's last dim). */
int64_t graph_row_stride(const graph *g, int t);

/* Remove the nodes i with dead[i] != 0, keeping the order of the rest;
 * tensors keep their indices, removed nodes' outputs lose their producer. */
int graph_remove_nodes(graph *g, const char *dead, dsc_err *err);

/* Nodes reading t (each once), in order: up to max into nodes; returns
 * how many there are. */
int graph_consumers(const graph *g, int t, int *nodes, int max);

#endif
