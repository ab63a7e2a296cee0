/* pass_autodiff.c — reverse-mode automatic differentiation over the graph.
 *
 * From the loss back, in reverse node order, each node's gradient rule
 * (ops.def's GRAD lines, grad_rules.c) appends the nodes computing its
 * inputs' gradients.  A tensor read by several nodes sums their
 * contributions with add nodes; every contribution is in place before its
 * producer is reached, since readers come after producers.  Weight
 * gradients are GRAPH_GRAD tensors: the emitter puts each at its weight's
 * place in the gradient blob, where the optimizer finds it.
 *
 * The result is one graph, forward then backward, that the later passes
 * (dce, plan-memory) treat like any other: the planner sees which forward
 * activations backward nodes read and keeps exactly those alive. */
#include <stdlib.h>
#include <string.h>

#include "passes/autodiff.h"
#include "passes/passes.h"

struct ad_ctx {
    graph *g;
    int *grad;       /* per tensor: its gradient, or -1 */
    char *needs;     /* per tensor: depends on a weight */
    int cap;         /* entries in grad and needs */
    int *done_w;     /* weights given a gradient so far */
    char *done_linear;  /* ... as a linear's weight (packed), or not */
    int n_done_w;
    dsc_err *err;
};

static const ad_rule rules[GRAPH_OP_COUNT] = {
#define GRAD(id, rule) [GRAPH_OP_##id] = rule,
#define OP(id, name, min_in, max_in)
#include "ir/ops.def"
#undef OP
#undef GRAD
};


graph *ad_graph(ad_ctx *c)
{
    return c->g;
}


int ad_grad(ad_ctx *c, int t)
{
    return t >= 0 && t < c->cap ? c->grad[t] : -1;
}


int ad_needs(ad_ctx *c, int t)
{
    int s = graph_storage(c->g, t);
    return s < c->cap && c->needs[s];
}


int ad_fail(ad_ctx *c, const graph_node *fwd, const char *why)
{
    return err_set(c->err, "%s:%d: error: cannot train through %s: %s",
                   fwd->user_loc.file, fwd->user_loc.line,
                   graph_op_name(fwd->op), why);
}


/* Room in grad and needs for every tensor of the graph. */
static int fit(ad_ctx *c)
{
    if (c->g->n_tensors <= c->cap)
        return 0;
    int cap = c->g->n_tensors * 2 + 16;
    int *grad = realloc(c->grad, (size_t)cap * sizeof *grad);
    if (grad)
        c->grad = grad;
    char *needs = realloc(c->needs, (size_t)cap);
    if (needs)
        c->needs = needs;
    if (!grad || !needs)
        return err_set(c->err, "error: out of memory in autodiff");
    for (int t = c->cap; t < cap; t++) {
        c->grad[t] = -1;
        c->needs[t] = 0;
    }
    c->cap = cap;
    return 0;
}


int ad_node(ad_ctx *c, const graph_node *fwd, graph_op op, const int *in,
            int n_in, const graph_attrs *attrs)
{
    graph_attrs a = attrs ? *attrs : (graph_attrs){0};
    a.accumulate = 0;
    int t = graph_add_node(c->g, op, in, n_in, &a, fwd->loc, fwd->user_loc,
                           c->err);
    if (t < 0 || fit(c))
        return -1;
    return t;
}


/* Weights that read rows of one key: equal parts share a gradient (tied
 * weights accumulate); overlapping but different ones are not supported. */
static int same_key_rows(const graph_weight *a, const graph_weight *b,
                         int *overlap)
{
    int same = a->n_parts == b->n_parts;
    *overlap = 0;
    for (int i = 0; i < a->n_parts; i++) {
        for (int j = 0; j < b->n_parts; j++) {
            const graph_weight_part *p = &a->part[i], *q = &b->part[j];
            if (p->key && p->key == q->key &&
                p->row_first < q->row_first + q->rows &&
                q->row_first < p->row_first + p->rows)
                *overlap = 1;
        }
        if (same && (a->part[i].key != b->part[i].key ||
                     a->part[i].row_first != b->part[i].row_first ||
                     a->part[i].rows != b->part[i].rows))
            same = 0;
    }
    return same;
}


int ad_weight_node(ad_ctx *c, const graph_node *fwd, graph_op op,
                   const int *in, int n_in, const graph_attrs *attrs)
{
    graph *g = c->g;
    int w = in[n_in - 1];
    int as_linear = op == GRAPH_OP_LINEAR_GRAD_W;
    graph_attrs a = attrs ? *attrs : (graph_attrs){0};
    a.accumulate = 0;
    /* One place in the blob per weight and layout (weights.c): a second
     * gradient for the same place adds to the first; the same rows in two
     * layouts (tied embedding and output weights) would train two copies. */
    for (int i = 0; i < c->n_done_w; i++) {
        const graph_tensor *o = &g->tensors[c->done_w[i]];
        int overlap;
        int same = same_key_rows(&o->weight, &g->tensors[w].weight, &overlap);
        if (same && o->shape.rank == g->tensors[w].shape.rank &&
            c->done_linear[i] == as_linear)
            a.accumulate = 1;
        else if (overlap)
            return ad_fail(c, fwd, "a weight shares rows with another read "
                           "in another layout (tied weights): not supported "
                           "yet");
    }
    int t = graph_add_node(g, op, in, n_in, &a, fwd->loc, fwd->user_loc,
                           c->err);
    if (t < 0 || fit(c))
        return -1;
    g->tensors[t].kind = GRAPH_GRAD;
    c->done_linear[c->n_done_w] = (char)as_linear;
    c->done_w[c->n_done_w++] = w;
    return t;
}


int ad_accumulate(ad_ctx *c, const graph_node *fwd, int t, int gt)
{
    if (!ad_needs(c, t))
        return 0;
    if (c->g->tensors[t].kind == GRAPH_WEIGHT)
        return ad_fail(c, fwd, "a weight read directly as an activation");
    if (c->grad[t] < 0) {
        c->grad[t] = gt;
        return 0;
    }
    if (c->g->tensors[gt].view_of >= 0 ||
        c->g->tensors[c->grad[t]].view_of >= 0)
        return ad_fail(c, fwd, "a column view with several readers");
    int in[2] = { c->grad[t], gt };
    int sum = ad_node(c, fwd, GRAPH_OP_ADD, in, 2, NULL);
    if (sum < 0)
        return -1;
    c->grad[t] = sum;
    return 0;
}


int pass_autodiff(graph *g, pass_report *report, dsc_err *err)
{
    if (!g->loss_plus1)
        return err_set(err, "error: the model declares no loss (call "
                       "dsc.loss(dsc.cross_entropy(logits, targets)))");
    int loss = g->loss_plus1 - 1;
    ad_ctx c = { .g = g, .err = err };
    int n_forward = g->n_nodes, rc = -1;
    /* At most one weight gradient per node input. */
    size_t max_w = (size_t)g->n_nodes * GRAPH_MAX_INPUTS + 1;
    c.done_w = malloc(max_w * sizeof(int));
    c.done_linear = malloc(max_w);
    if (!c.done_w || !c.done_linear || fit(&c)) {
        err_set(err, "error: out of memory in autodiff");
        goto done;
    }
    for (int t = 0; t < g->n_tensors; t++)
        c.needs[t] = g->tensors[t].kind == GRAPH_WEIGHT;
    for (int i = 0; i < n_forward; i++) {
        const graph_node *n = &g->nodes[i];
        for (int j = 0; j < n->n_inputs; j++)
            if (n->inputs[j] >= 0 && c.needs[graph_storage(g, n->inputs[j])])
                c.needs[n->output] = 1;
    }
    if (!c.needs[loss]) {
        err_set(err, "error: the loss depends on no weight: nothing to "
                "train");
        goto done;
    }
    c.grad[loss] = loss;  /* d loss / d loss: the rule of its node knows */
    for (int i = n_forward - 1; i >= 0; i--) {
        graph_node n = g->nodes[i];
        if (!c.needs[n.output])
            continue;
        if (c.grad[n.output] < 0) {
            /* Its result may reach the loss only through column views. */
            for (int t = 0; t < g->n_tensors; t++)
                if (g->tensors[t].view_of == n.output && c.grad[t] >= 0) {
                    ad_fail(&c, &n, "its result is read through column "
                            "views in a way autodiff does not assemble");
                    goto done;
                }
            continue;
        }
        if (!rules[n.op]) {
            ad_fail(&c, &n, "the op has no gradient rule (a GRAD line in "
                    "ops.def)");
            goto done;
        }
        if (rules[n.op](&c, &n))
            goto done;
    }
    /* The step's one result is the loss (its parameter is out_loss: an
     * input may be named loss too). */
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].kind == GRAPH_OUTPUT)
            g->tensors[t].kind = GRAPH_INTERMEDIATE;
    g->tensors[loss].kind = GRAPH_OUTPUT;
    g->tensors[loss].name = graph_intern(g, "loss");
    if (report)
        report->changed = g->n_nodes - n_forward;
    rc = g->tensors[loss].name ? 0
                               : err_set(err, "error: out of memory");
done:
    free(c.grad);
    free(c.needs);
    free(c.done_w);
    free(c.done_linear);
    return rc;
}
