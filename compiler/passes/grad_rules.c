/* grad_rules.c — each op's gradient rule, as ops.def's GRAD lines name
 * them.  A rule reads its node's output gradient and adds the nodes that
 * turn it into its inputs' gradients: the chain rule, one op at a time. */
#include "passes/autodiff.h"

#include "dsc_runtime.h"


int grad_embedding(ad_ctx *c, const graph_node *n)
{
    int in[3] = { ad_grad(c, n->output), n->inputs[0], n->inputs[1] };
    if (ad_graph(c)->tensors[n->inputs[1]].kind != GRAPH_WEIGHT)
        return ad_fail(c, n, "embedding: only a weight table can be trained");
    return ad_weight_node(c, n, GRAPH_OP_EMBEDDING_GRAD, in, 3, NULL) < 0;
}


/* Is h = relu(z) (a relu, or a linear's relu epilogue without residual)
 * read by one node only, a dropout?  Then its backward needs neither h nor
 * the mask: the dropout's result y is > 0 exactly where both let the
 * gradient through.  So y is kept from the forward (in place of h: the
 * same size) and nothing is recomputed. */
static int dropout_of_relu(const graph *g, int h)
{
    int p = g->tensors[h].producer, readers[2];
    if (p < 0 || g->tensors[h].kind != GRAPH_INTERMEDIATE ||
        g->tensors[h].view_of >= 0)
        return -1;
    const graph_node *n = &g->nodes[p];
    int relu = n->op == GRAPH_OP_RELU ||
               (n->op == GRAPH_OP_LINEAR && n->attrs.act == RT_ACT_RELU &&
                (n->n_inputs < 4 || n->inputs[3] < 0));
    if (!relu || graph_consumers(g, h, readers, 2) != 1 ||
        g->nodes[readers[0]].op != GRAPH_OP_DROPOUT)
        return -1;
    return g->nodes[readers[0]].output;
}


/* relu's backward for y = relu(z) (the node's output) with output
 * gradient dy: from the dropout's result where dropout_of_relu says so
 * (dy is then that dropout's backward, dy' * mask / (1 - p): one pass
 * gives dy' / (1 - p) where the result is > 0; the unread dropout
 * backward goes in dce). */
static int relu_grad_node(ad_ctx *c, const graph_node *n, int dy, int y)
{
    graph *g = ad_graph(c);
    int dp = g->tensors[dy].producer, kept = dropout_of_relu(g, y);
    if (kept >= 0 && dp >= 0 && g->nodes[dp].op == GRAPH_OP_DROPOUT_GRAD &&
        g->nodes[dp].attrs.stream ==
            g->nodes[g->tensors[kept].producer].attrs.stream) {
        int in[2] = { g->nodes[dp].inputs[0], kept };
        return ad_node(c, n, GRAPH_OP_DROPOUT_RELU_GRAD, in, 2,
                       &g->nodes[dp].attrs);
    }
    int in[2] = { dy, y };
    return ad_node(c, n, GRAPH_OP_RELU_GRAD, in, 2, NULL);
}


/* y = act(x Wᵀ + b) + r: r gets dy; dz = dy * act'(..); W gets dzᵀ x; b
 * gets the column sums of dz; x gets dz W. */
int grad_linear(ad_ctx *c, const graph_node *n)
{
    graph *g = ad_graph(c);
    int dy = ad_grad(c, n->output), x = n->inputs[0], w = n->inputs[1];
    int b = n->n_inputs > 2 ? n->inputs[2] : -1;
    int r = n->n_inputs > 3 ? n->inputs[3] : -1;
    if (r >= 0 && ad_accumulate(c, n, r, dy))
        return -1;
    int dz = dy;
    if (n->attrs.act != RT_ACT_NONE && g->tensors[dy].view_of >= 0)
        return ad_fail(c, n, "linear: the gradient of an activation "
                       "epilogue must not be a column view");
    if (n->attrs.act == RT_ACT_RELU) {
        /* y = relu(z) + r: relu(z) > 0 exactly where y > r. */
        int in[3] = { dy, n->output, r };
        if ((dz = r >= 0 ? ad_node(c, n, GRAPH_OP_RELU_GRAD, in, 3, NULL)
                         : relu_grad_node(c, n, dy, n->output)) < 0)
            return -1;
    } else if (n->attrs.act != RT_ACT_NONE) {
        /* y = gelu(z) + r: gelu' needs z, which the epilogue did not keep:
         * recompute it (one more GEMM) with the same linear, unfused. */
        graph_attrs plain = n->attrs;
        plain.act = RT_ACT_NONE;
        int iz[3] = { x, w, b };
        int z = ad_node(c, n, GRAPH_OP_LINEAR, iz, b >= 0 ? 3 : 2, &plain);
        int ig[2] = { dy, z };
        if (z < 0 || (dz = ad_node(c, n, GRAPH_OP_GELU_GRAD, ig, 2,
                                   &n->attrs)) < 0)
            return -1;
    }
    if (g->tensors[w].kind != GRAPH_WEIGHT)
        return ad_fail(c, n, "linear: only a weight can be trained");
    /* A dropout's result is recomputed here (the same mask: same stream,
     * same step) rather than kept from the forward: its input is kept
     * anyway, and the forward's copy can go as soon as it is read.  Not
     * after a relu only it reads (dropout_of_relu): there the result is
     * what is kept. */
    int xw = x, xp = g->tensors[x].producer;
    if (xp >= 0 && g->nodes[xp].op == GRAPH_OP_DROPOUT &&
        dropout_of_relu(g, g->nodes[xp].inputs[0]) != x) {
        graph_node d = g->nodes[xp];
        int in[1] = { d.inputs[0] };
        if ((xw = ad_node(c, &d, GRAPH_OP_DROPOUT, in, 1, &d.attrs)) < 0)
            return -1;
    }
    int iw[3] = { dz, xw, w };
    if (ad_weight_node(c, n, GRAPH_OP_LINEAR_GRAD_W, iw, 3, NULL) < 0)
        return -1;
    if (b >= 0) {
        int ib[2] = { dz, b };
        if (ad_weight_node(c, n, GRAPH_OP_BIAS_GRAD, ib, 2, NULL) < 0)
            return -1;
    }
    /* dx last: the recomputed x above is gone before dx needs memory.
     * (dW goes to the gradient blob, so W is still intact here.) */
    if (ad_needs(c, x)) {
        int in[2] = { dz, w };
        int dx = ad_node(c, n, GRAPH_OP_LINEAR_GRAD_X, in, 2, NULL);
        if (dx < 0 || ad_accumulate(c, n, x, dx))
            return -1;
    }
    return 0;
}


int grad_add(ad_ctx *c, const graph_node *n)
{
    int dy = ad_grad(c, n->output);
    return ad_accumulate(c, n, n->inputs[0], dy) ||
           ad_accumulate(c, n, n->inputs[1], dy);
}


int grad_relu(ad_ctx *c, const graph_node *n)
{
    int dx = relu_grad_node(c, n, ad_grad(c, n->output), n->output);
    return dx < 0 || ad_accumulate(c, n, n->inputs[0], dx);
}


int grad_gelu(ad_ctx *c, const graph_node *n)
{
    int in[2] = { ad_grad(c, n->output), n->inputs[0] };
    int dx = ad_node(c, n, GRAPH_OP_GELU_GRAD, in, 2, &n->attrs);
    return dx < 0 || ad_accumulate(c, n, n->inputs[0], dx);
}


int grad_softmax(ad_ctx *c, const graph_node *n)
{
    int in[2] = { ad_grad(c, n->output), n->output };
    int dx = ad_node(c, n, GRAPH_OP_SOFTMAX_GRAD, in, 2, NULL);
    return dx < 0 || ad_accumulate(c, n, n->inputs[0], dx);
}


int grad_layernorm(ad_ctx *c, const graph_node *n)
{
    int dy = ad_grad(c, n->output), x = n->inputs[0];
    int gamma = n->inputs[1], beta = n->inputs[2];
    if (ad_needs(c, x)) {
        int in[3] = { dy, x, gamma };
        int dx = ad_node(c, n, GRAPH_OP_LAYERNORM_GRAD_X, in, 3, &n->attrs);
        if (dx < 0 || ad_accumulate(c, n, x, dx))
            return -1;
    }
    int ig[3] = { dy, x, gamma }, ib[2] = { dy, beta };
    return ad_weight_node(c, n, GRAPH_OP_LAYERNORM_GRAD_GAMMA, ig, 3,
                          &n->attrs) < 0 ||
           ad_weight_node(c, n, GRAPH_OP_BIAS_GRAD, ib, 2, NULL) < 0;
}


/* One node makes [dq | dk | dv] side by side.  When q, k and v are the
 * three column blocks of one tensor in that order (fuse-qkv's result) and
 * nothing else reads them, that is the gradient of the whole tensor;
 * otherwise each gets a column view of it. */
int grad_attention(ad_ctx *c, const graph_node *n)
{
    graph *g = ad_graph(c);
    int in[4] = { ad_grad(c, n->output), n->inputs[0], n->inputs[1],
                  n->inputs[2] };
    const graph_tensor *q = &g->tensors[in[1]], *k = &g->tensors[in[2]],
                       *v = &g->tensors[in[3]];
    int64_t wq = q->shape.dim[2], wk = k->shape.dim[2], wv = v->shape.dim[2];
    int base = q->view_of;
    int readers[2];
    int fused = base >= 0 && k->view_of == base && v->view_of == base &&
                q->view_col == 0 && k->view_col == wq &&
                v->view_col == wq + wk &&
                graph_row_stride(g, in[1]) == wq + wk + wv;
    /* (before the backward node below reads them too) */
    for (int i = 1; fused && i < 4; i++)
        fused = graph_consumers(g, in[i], readers, 2) == 1;
    int d = ad_node(c, n, GRAPH_OP_ATTENTION_GRAD, in, 4, &n->attrs);
    if (d < 0)
        return -1;
    if (fused)
        return ad_accumulate(c, n, base, d);
    int64_t col = 0;
    for (int i = 1; i < 4; i++) {
        graph_shape s = g->tensors[in[i]].shape;
        int view = graph_add_tensor(g, "grad_view", &s, n->loc, NULL);
        if (view < 0)
            return ad_fail(c, n, "out of memory");
        graph_make_view(g, view, d, col);
        col += s.dim[2];
        if (ad_accumulate(c, n, in[i], view))
            return -1;
    }
    return 0;
}


int grad_dropout(ad_ctx *c, const graph_node *n)
{
    int in[1] = { ad_grad(c, n->output) };
    int dx = ad_node(c, n, GRAPH_OP_DROPOUT_GRAD, in, 1, &n->attrs);
    return dx < 0 || ad_accumulate(c, n, n->inputs[0], dx);
}


/* The loss itself: the gradient of the mean with respect to the logits. */
int grad_cross_entropy(ad_ctx *c, const graph_node *n)
{
    int in[2] = { n->inputs[0], n->inputs[1] };
    int d = ad_node(c, n, GRAPH_OP_CROSS_ENTROPY_GRAD, in, 2, NULL);
    return d < 0 || ad_accumulate(c, n, n->inputs[0], d);
}
