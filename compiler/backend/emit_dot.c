#include "backend/emit_dot.h"

#include "dsc_runtime.h"
#include "util/ctext.h"
#include "util/strbuf.h"


/* What a node does, fusions included: "linear + relu + residual". */
static void describe(strbuf *sb, const graph *g, const graph_node *n)
{
    sb_append(sb, graph_op_name(n->op));
    if (n->op != GRAPH_OP_LINEAR)
        return;
    const graph_weight *w = &g->tensors[n->inputs[1]].weight;
    int views = 0;
    for (int t = 0; t < g->n_tensors; t++)
        views += g->tensors[t].view_of == n->output;
    if (views > 1)
        sb_printf(sb, " (fused x%d)", views);
    else if (w->n_parts > 1)
        sb_printf(sb, " (stacked x%d)", w->n_parts);
    static const char *const act[] = { "", " + relu", " + gelu",
                                       " + gelu(tanh)" };
    if (n->attrs.act > 0 && n->attrs.act <= RT_ACT_GELU_TANH)
        sb_append(sb, act[n->attrs.act]);
    if (n->n_inputs > 3 && n->inputs[3] >= 0)
        sb_append(sb, " + residual");
}


/* The DOT id of what makes tensor t: a node, an input oval, or nothing. */
static void source_id(strbuf *sb, const graph *g, int t)
{
    int s = graph_storage(g, t);
    if (g->tensors[s].producer >= 0)
        sb_printf(sb, "n%d", g->tensors[s].producer);
    else
        sb_printf(sb, "t%d", s);
}


char *emit_dot(const model *m, const char *passes)
{
    const graph *g = m->graph;
    strbuf sb = {0};
    char shape[96];
    /* Every name, key and path is outside text: ctext_dot escapes it. */
    sb_append(&sb, "digraph \"");
    ctext_dot(&sb, m->name);
    sb_append(&sb, "\" {\n  label=\"");
    ctext_dot(&sb, m->path);
    sb_printf(&sb, "%s%s\";\n  labelloc=t;\n"
              "  node [fontname=\"monospace\", fontsize=10];\n"
              "  edge [fontname=\"monospace\", fontsize=9];\n",
              passes && *passes ? " after " : "", passes ? passes : "");
    for (int t = 0; t < g->n_tensors; t++) {
        const graph_tensor *x = &g->tensors[t];
        if (x->kind != GRAPH_INPUT)
            continue;
        sb_printf(&sb, "  t%d [shape=oval, label=\"", t);
        ctext_dot(&sb, x->name);
        sb_printf(&sb, "\\n%s %s\"];\n", graph_dtype_name(x->dtype),
                  graph_shape_str(&x->shape, shape, sizeof shape));
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        sb_printf(&sb, "  n%d [shape=box, label=\"", i);
        describe(&sb, g, n);
        sb_printf(&sb, "\\n%s\\n",
                  graph_shape_str(&g->tensors[n->output].shape, shape,
                                  sizeof shape));
        ctext_dot(&sb, n->user_loc.file ? n->user_loc.file : "?");
        sb_printf(&sb, ":%d\"];\n", n->user_loc.line);
        for (int j = 0; j < n->n_inputs; j++) {
            int in = n->inputs[j];
            if (in < 0 || g->tensors[in].kind == GRAPH_WEIGHT)
                continue;
            sb_append(&sb, "  ");
            source_id(&sb, g, in);
            sb_printf(&sb, " -> n%d", i);
            if (g->tensors[in].view_of >= 0)
                sb_printf(&sb, " [label=\"cols %lld..\"]",
                          (long long)g->tensors[in].view_col);
            sb_append(&sb, ";\n");
        }
        const graph_tensor *out = &g->tensors[n->output];
        if (out->kind == GRAPH_OUTPUT) {
            sb_printf(&sb, "  o%d [shape=oval, label=\"", n->output);
            ctext_dot(&sb, out->name);
            sb_printf(&sb, "\"];\n  n%d -> o%d;\n", i, n->output);
        }
    }
    sb_append(&sb, "}\n");
    return sb_take(&sb);
}
