/* emit_dot.h — the op graph as a Graphviz picture, for people. */
#ifndef DSC_EMIT_DOT_H
#define DSC_EMIT_DOT_H

#include "ir/model.h"

/* DOT text (malloc'd, NULL when out of memory): one box per node with its
 * op, output shape and Lua line; fused nodes say what they absorbed;
 * graph inputs and outputs as ovals.  passes names the passes run (or ""). */
char *emit_dot(const model *m, const char *passes);

#endif
