/* frontend.h — run a Lua model description and get its op graph.
 *
 * The model file runs in a sandboxed Lua 5.4 state (compiler/frontend/
 * sandbox.h: no files, bytecode or finalizers; an instruction budget, a
 * CPU-time limit and a capped allocator).  It builds the graph through the
 * `dsc` builder API and the `nn` block library (compiler/frontend/nn.lua,
 * embedded); every byte the graph keeps for it counts against its memory
 * limit. */
#ifndef DSC_FRONTEND_H
#define DSC_FRONTEND_H

#include <stddef.h>
#include <stdio.h>

#include "util/diag.h"
#include "ir/graph.h"
#include "ir/model.h"

/* The largest model file read (a model is a page of Lua; parsing is not
 * under the instruction budget). */
#define FRONTEND_MAX_SOURCE ((size_t)4 << 20)

/* One `-D key=value` from the command line, or one setting of a
 * config.json (--config): source names that file, whose keys the model
 * does not declare are ignored and whose JSON types (kind: 'i' integer,
 * 'f' number, 'b' boolean, 's' string, 'z' null, 'x' array, 'o' empty
 * object; a non-empty one gives its members as KEY.SUB) are checked
 * against the declared defaults. */
typedef struct frontend_define {
    const char *key;
    const char *value;
    const char *source;  /* NULL for -D */
    char kind;
    int line;            /* of source */
} frontend_define;

typedef struct frontend_limits {
    long long instructions;  /* Lua VM instructions the model may run */
    size_t memory_bytes;     /* bytes the Lua state and its graph may hold */
    double cpu_seconds;      /* CPU time the model may run; 0: default */
    FILE *print;             /* where the model's print() writes; NULL:
                              * stderr (dsc as a library keeps it) */
} frontend_limits;

/* Default limits: generous for any real model, small enough to stop a
 * runaway loop in about a second and a memory bomb well before trouble. */
frontend_limits frontend_default_limits(void);

/* Load and run the model at path.  NULL on error, with one message naming
 * the model file and line. */
model *frontend_load(const char *path, const frontend_define *defines,
                     int n_defines, const frontend_limits *limits,
                     dsc_err *err);

/* Same, for model text already in memory (tests, fuzzing). */
model *frontend_load_string(const char *path, const char *text, size_t len,
                            const frontend_define *defines, int n_defines,
                            const frontend_limits *limits, dsc_err *err);


#endif
