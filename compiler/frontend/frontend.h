/* frontend.h — run a Lua model description and get its op graph.
 *
 * The model file runs in a sandboxed Lua 5.4 state (no os, io, require,
 * dofile, loadfile, load, string.dump or debug; a bounded instruction budget
 * and a capped allocator).  It builds the graph through the `dsc` builder
 * API and the `nn` block library (compiler/frontend/nn.lua, embedded). */
#ifndef DSC_FRONTEND_H
#define DSC_FRONTEND_H

#include <stddef.h>
#include <stdio.h>

#include "util/diag.h"
#include "ir/graph.h"
#include "ir/model.h"

/* One `-D key=value` from the command line, or one setting of a
 * config.json (--config): source names that file, whose keys the model
 * does not declare are ignored and whose JSON types (kind: 'i' integer,
 * 'f' number, 'b' boolean, 's' string, 'z' null, 'x' array) are checked
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
    size_t memory_bytes;     /* bytes the Lua state may hold */
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
