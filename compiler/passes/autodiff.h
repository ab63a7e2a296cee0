/* autodiff.h — what the autodiff pass (pass_autodiff.c) gives the gradient
 * rules (grad_rules.c): one rule per op, named by ops.def's GRAD lines. */
#ifndef DSC_AUTODIFF_H
#define DSC_AUTODIFF_H

#include "ir/graph.h"
#include "util/diag.h"

typedef struct ad_ctx ad_ctx;

/* A rule adds the nodes computing the gradients of node n's inputs from
 * that of its output (ad_grad(c, n->output)).  n is a copy: adding nodes
 * may move the graph's node array.  0, or -1 with an error set. */
typedef int (*ad_rule)(ad_ctx *c, const graph_node *n);

#define GRAD(id, rule) int rule(ad_ctx *c, const graph_node *n);
#define OP(id, name, min_in, max_in)
#include "ir/ops.def"
#undef OP
#undef GRAD

graph *ad_graph(ad_ctx *c);
/* The gradient of tensor t so far, or -1 (none flows into it). */
int ad_grad(ad_ctx *c, int t);
/* Does the loss depend on t through a weight (is its gradient wanted)? */
int ad_needs(ad_ctx *c, int t);
/* A backward node for forward node fwd (its source lines): the result
 * tensor, or -1. */
int ad_node(ad_ctx *c, const graph_node *fwd, graph_op op, const int *in,
            int n_in, const graph_attrs *attrs);
/* The same for a node whose result is weight w's gradient (w is its last
 * input): adds to the gradient when w already has one. */
int ad_weight_node(ad_ctx *c, const graph_node *fwd, graph_op op,
                   const int *in, int n_in, const graph_attrs *attrs);
/* Add gradient contribution gt to tensor t's (an add node when t has one
 * already); nothing when t needs none. */
int ad_accumulate(ad_ctx *c, const graph_node *fwd, int t, int gt);
/* An error at fwd's line. */
int ad_fail(ad_ctx *c, const graph_node *fwd, const char *why);

#endif
