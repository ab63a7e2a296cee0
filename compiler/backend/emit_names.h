/* emit_names.h — inside the backend only: the one table of C names that
 * emit_c.c (NAME_forward) and emit_train.c (NAME_train_step, written into
 * the same file) both use, and the helpers that put outside text and float
 * constants into C.  emit_c.c says which names come from where; the train
 * step adds its own fixed names (state, gw, scratch, rc, io) and functions
 * (NAME_train_step, NAME_train_step_io), claimed in every build so that
 * the forward's names do not depend on whether a train step follows. */
#ifndef DSC_EMIT_NAMES_H
#define DSC_EMIT_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "io/weights.h"
#include "ir/model.h"
#include "util/ctext.h"
#include "util/diag.h"
#include "util/strbuf.h"

typedef struct emit_names {
    /* per tensor: C expression for its pointer (in_x, out_y, relu_6_,
     * (w + W_K), (gw + W_K) for a weight's gradient, views off their
     * base) */
    char **tensor;
    char **weight;   /* per weight entry: its offset macro W_... */
    char **count;    /* per input or output: its _COUNT macro, else NULL */
    char ident[CTEXT_MODEL_NAME_MAX + 1];  /* the model: seed_encoder */
    char upper[CTEXT_MODEL_NAME_MAX + 1];  /* in capitals, for macros */
    /* A decoder step: dimension 0 of one input is the runtime token count
     * n (at most max_tokens), and state lives in caller memory. */
    int dynamic;
    int64_t max_tokens;
    int64_t cache_floats;
} emit_names;

/* Name everything m's graph and the layout w need.  The weights' macros
 * depend only on the model's identifier and w's keys (they are claimed
 * before any input or output name), so a forward and a train step built
 * from the same weights name them alike.  0, or -1 when out of memory
 * (free it then too). */
int emit_names_make(emit_names *nm, const model *m, const weight_layout *w);
void emit_names_free(emit_names *nm, const graph *g, const weight_layout *w);

/* "FILE:LINE" of a node's user line, then " (FILE:LINE)" of its library
 * line if that differs, escaped for a comment. */
void emit_node_locs(strbuf *sb, const graph_node *n);

/* A float as the shortest C literal that reads back to the same float
 * (call emit_check_constant first: inf and nan have none). */
const char *emit_float_literal(float v, char *buf, size_t len);

/* 0 if v is finite; else -1 with an error naming the node's model line
 * ("FILE:LINE: error: OP WHAT is ..."). */
int emit_check_constant(const model *m, const graph_node *n, const char *what,
                        float v, dsc_err *err);

#endif
