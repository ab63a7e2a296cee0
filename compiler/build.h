/* build.h — the pipeline from a model file to generated C, in one call:
 * frontend, passes, weight layout, emitter.  The command line and the tests
 * both go through here. */
#ifndef DSC_BUILD_H
#define DSC_BUILD_H

#include "diag.h"
#include "frontend.h"
#include "model.h"
#include "passes.h"
#include "weights.h"

typedef struct build_options {
    const frontend_define *defines;
    int n_defines;
    int no_plan_memory;   /* -fno-plan-memory: every tensor its own region */
} build_options;

typedef struct built_model {
    model *model;
    memory_plan plan;
    weight_layout weights;
    char *source;         /* the shippable NAME.c */
    char *header;         /* NAME.h */
    char *jit_source;     /* NAME.c with the runtime header pasted in */
    char entry[160];      /* NAME_forward_io */
} built_model;

/* The text of runtime/dsc_runtime.h, carried inside dsc. */
const char *build_runtime_header(void);

int build_model(const char *path, const build_options *opts,
                built_model *out, dsc_err *err);
void built_model_free(built_model *b);

#endif
