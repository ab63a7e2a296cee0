/* build.h — the pipeline from a model file to generated C, in one call:
 * frontend, passes, weight layout, emitter.  The command line and the tests
 * both go through here. */
#ifndef DSC_BUILD_H
#define DSC_BUILD_H

#include "util/diag.h"
#include "frontend/frontend.h"
#include "ir/model.h"
#include "passes/passes.h"
#include "io/weights.h"

#include <stdio.h>

typedef struct build_options {
    const frontend_define *defines;
    int n_defines;
    /* -fno-<pass>: switch a pass off */
    int no_fuse_qkv, no_fuse_epilogue, no_dce;
    int no_plan_memory;   /* every tensor its own region */
    FILE *verbose;        /* -v: each pass and what it changed, or NULL */
    /* The names the .c and .h will be written under (the .c #includes the
     * .h by its name), e.g. from -o; NULL: NAME.c and NAME.h. */
    const char *source_name, *header_name;
    const char *text;     /* the model's text, already in memory (path only
                           * names it), or NULL to read path */
    size_t text_len;
    FILE *print;          /* the model's print(); NULL: stderr */
    int layout;           /* DSC_LAYOUT_* of the packed weights; 0: the
                             host's (--target native) */
    int weight_format;    /* -fweights: DSC_WEIGHTS_* the linear weights are
                             stored in (0: float32, or layout's format) */
    /* --max-memory: a model whose arena, weights and cache need more bytes
     * is refused before anything is allocated; 0: build_default_max_memory */
    int64_t max_memory;
} build_options;

/* The layout opts ask the linear weights to be packed in: --target's
 * panel width (the host's when 0) in -fweights' format. */
int build_layout(const build_options *opts);

/* Half of the machine's physical memory (4 GiB if it cannot be told). */
int64_t build_default_max_memory(void);

/* What the pipeline did and made, for --stats-json. */
typedef struct build_stats {
    int nodes_before, nodes_after;
    int gemm_calls;       /* linear nodes left: GEMM calls in the forward */
    int fused_qkv;        /* groups of linears stacked into one */
    int fused_epilogue;   /* activations and adds folded into a linear */
    int dce_removed;
    int64_t arena_bytes, arena_lower_bound_bytes, no_reuse_bytes;
    int64_t weight_bytes;
} build_stats;

typedef struct built_model {
    model *model;
    memory_plan plan;
    weight_layout weights;
    char *source;         /* the shippable NAME.c */
    char *header;         /* NAME.h */
    char *jit_source;     /* NAME.c with the runtime header pasted in */
    char entry[160];      /* NAME_forward_io */
    char passes[128];     /* the passes run, in order */
    build_stats stats;
} built_model;

/* The text of runtime/dsc_runtime.h, carried inside dsc. */
const char *build_runtime_header(void);

int build_model(const char *path, const build_options *opts,
                built_model *out, dsc_err *err);
void built_model_free(built_model *b);

/* The stats as one JSON object (no newline) into buf. */
void build_stats_json(const built_model *b, char *buf, int len);

#endif
