/* test_frontend.c — the Lua frontend and the op graph through their C API:
 * node lists, shapes, source lines, configuration, every error path (each
 * naming the model file and line) and the sandbox.
 *
 * Run from the repository root (as `make test` does): the seed models are
 * read from models/ and the block library from compiler/frontend/nn.lua, whose
 * lines are found by scanning the files, never hard-coded. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc_runtime.h"
#include "frontend/frontend.h"
#include "ir/graph.h"
#include "ir/model.h"

#define MODEL     "models/test_model.lua"
#define ENCODER   "models/seed_encoder.lua"
#define ATTENTION "models/seed_attention.lua"
#define NN_LUA    "compiler/frontend/nn.lua"

/* ---- helpers ----------------------------------------------------------- */

/* The 1-based line of the first line of file path containing needle. */
static int line_of(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s (run from the repository root)",
                       path);
    char buf[4096];
    int line = 0, found = 0;
    while (fgets(buf, sizeof buf, f)) {
        line++;
        if (strstr(buf, needle)) {
            found = line;
            break;
        }
    }
    fclose(f);
    cr_assert(found > 0, "'%s' not found in %s", needle, path);
    return found;
}


static model *load_text(const char *path, const char *text,
                        const frontend_define *defines, int n_defines,
                        const frontend_limits *limits, dsc_err *err)
{
    memset(err->msg, 0, sizeof err->msg);
    return frontend_load_string(path, text, strlen(text), defines, n_defines,
                                limits, err);
}


/* Load text as MODEL and expect success. */
static model *load_ok(const char *text, const frontend_define *defines,
                      int n_defines)
{
    dsc_err err;
    model *m = load_text(MODEL, text, defines, n_defines, NULL, &err);
    cr_assert_not_null(m, "model failed to load: %s", err.msg);
    cr_assert_not_null(m->graph);
    return m;
}


/* msg is one line starting with "path:line: error: " (line 0: "path: error:
 * ") and containing each fragment (a NULL-terminated list). */
static void check_msg_v(const char *msg, const char *path, int line,
                        va_list frags)
{
    char prefix[1200];
    if (line > 0)
        snprintf(prefix, sizeof prefix, "%s:%d: error: ", path, line);
    else
        snprintf(prefix, sizeof prefix, "%s: error: ", path);
    cr_assert(strncmp(msg, prefix, strlen(prefix)) == 0,
              "message does not start with '%s': %s", prefix, msg);
    cr_assert(!strchr(msg, '\n'), "message is not one line: %s", msg);
    for (const char *frag; (frag = va_arg(frags, const char *));)
        cr_assert(strstr(msg, frag), "'%s' not in: %s", frag, msg);
}


static void check_msg(const char *msg, const char *path, int line, ...)
{
    va_list ap;
    va_start(ap, line);
    check_msg_v(msg, path, line, ap);
    va_end(ap);
}


/* Loading text (as MODEL, with defines and limits) fails with a message at
 * line that contains every fragment (NULL-terminated). */
static void expect_error_x(const char *text, const frontend_define *defines,
                           int n_defines, const frontend_limits *limits,
                           int line, ...)
{
    dsc_err err;
    model *m = load_text(MODEL, text, defines, n_defines, limits, &err);
    if (m) {
        model_free(m);
        cr_assert_fail("model loaded but should have failed:\n%s", text);
    }
    va_list ap;
    va_start(ap, line);
    check_msg_v(err.msg, MODEL, line, ap);
    va_end(ap);
}

#define expect_error(text, line, ...) \
    expect_error_x(text, NULL, 0, NULL, line, __VA_ARGS__, (const char *)NULL)
#define expect_error_d(text, defs, line, ...)                                \
    expect_error_x(text, defs, (int)(sizeof defs / sizeof defs[0]), NULL,    \
                   line, __VA_ARGS__, (const char *)NULL)


static int count_op(const graph *g, graph_op op)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        n += g->nodes[i].op == op;
    return n;
}


/* The tensor of kind named name, or -1. */
static int find_tensor(const graph *g, graph_kind kind, const char *name)
{
    for (int i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].kind == kind && strcmp(g->tensors[i].name, name) == 0)
            return i;
    return -1;
}


static void check_shape(const graph_shape *s, int rank, ...)
{
    char buf[96];
    cr_assert_eq(s->rank, rank, "rank %d, expected %d (%s)", s->rank, rank,
                 graph_shape_str(s, buf, sizeof buf));
    va_list ap;
    va_start(ap, rank);
    for (int i = 0; i < rank; i++) {
        long long d = va_arg(ap, long long);
        cr_assert_eq(s->dim[i], d, "dim %d is %lld, expected %lld (%s)", i,
                     (long long)s->dim[i], d,
                     graph_shape_str(s, buf, sizeof buf));
    }
    va_end(ap);
}
#define SHAPE2(s, a, b) check_shape(s, 2, (long long)(a), (long long)(b))
#define SHAPE3(s, a, b, c) \
    check_shape(s, 3, (long long)(a), (long long)(b), (long long)(c))


static const char *config_value(const model *m, const char *key)
{
    for (int i = 0; i < m->n_config; i++)
        if (strcmp(m->config[i].key, key) == 0)
            return m->config[i].value;
    return NULL;
}


static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    cr_assert_not_null(text);
    cr_assert_eq(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = '\0';
    fclose(f);
    return text;
}


/* ---- a small valid model ----------------------------------------------- */

static const char small_model[] =
    "local cfg = dsc.config { width = 8, eps = 1e-5, causal = false,\n" /* 1 */
    "                         tag = \"small\", rows = 3 }\n"             /* 2 */
    "local x = dsc.input(\"x\", {cfg.rows, cfg.width})\n"                /* 3 */
    "local h = nn.linear(x, \"fc1\", cfg.width, 16)\n"                   /* 4 */
    "local r = dsc.gelu(h, {approximate = \"tanh\"})\n"                  /* 5 */
    "local y = nn.layernorm(dsc.linear(r, dsc.weight(\"fc2.weight\", {8, 16})) + x,\n"
    "                       \"ln\", 8, cfg.eps)\n"                       /* 7 */
    "assert(cfg.causal == false and cfg.tag == \"small\" or cfg.causal == true)\n"
    "dsc.output(\"y\", dsc.softmax(y))\n";                               /* 9 */

Test(small, node_list_shapes_and_lines)
{
    model *m = load_ok(small_model, NULL, 0);
    const graph *g = m->graph;
    int nn_linear = line_of(NN_LUA, "return dsc.linear(x, w, b)");
    int nn_layernorm = line_of(NN_LUA, "return dsc.layernorm(");

    static const graph_op ops[] = {
        GRAPH_OP_LINEAR, GRAPH_OP_GELU, GRAPH_OP_LINEAR, GRAPH_OP_ADD,
        GRAPH_OP_LAYERNORM, GRAPH_OP_SOFTMAX,
    };
    /* loc (file, line) and user_loc line of each node. */
    static const struct { int in_lib; int line; int user_line; } where[] = {
        { 1, 0, 4 }, { 0, 5, 5 }, { 0, 6, 6 }, { 0, 6, 6 }, { 1, 0, 6 },
        { 0, 9, 9 },
    };
    cr_assert_eq(g->n_nodes, 6, "%d nodes", g->n_nodes);
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        cr_assert_eq(n->op, ops[i], "node %d is %s, expected %s", i,
                     graph_op_name(n->op), graph_op_name(ops[i]));
        cr_assert_str_eq(n->user_loc.file, MODEL, "node %d", i);
        cr_assert_eq(n->user_loc.line, where[i].user_line,
                     "node %d (%s) user line %d", i, graph_op_name(n->op),
                     n->user_loc.line);
        if (where[i].in_lib) {
            cr_assert_str_eq(n->loc.file, "nn.lua", "node %d", i);
            cr_assert_eq(n->loc.line,
                         n->op == GRAPH_OP_LINEAR ? nn_linear : nn_layernorm,
                         "node %d nn.lua line %d", i, n->loc.line);
        } else {
            cr_assert_str_eq(n->loc.file, MODEL, "node %d", i);
            cr_assert_eq(n->loc.line, where[i].line, "node %d line %d", i,
                         n->loc.line);
        }
        /* Each node's output is its own, made in order. */
        cr_assert_eq(g->tensors[n->output].producer, i);
    }
    /* Wiring: each node reads the one before (the add also reads x). */
    int x = find_tensor(g, GRAPH_INPUT, "x");
    cr_assert_geq(x, 0);
    cr_assert_eq(g->nodes[0].inputs[0], x);
    cr_assert_eq(g->nodes[1].inputs[0], g->nodes[0].output);
    cr_assert_eq(g->nodes[2].inputs[0], g->nodes[1].output);
    cr_assert_eq(g->nodes[2].inputs[2], -1, "linear without bias");
    cr_assert_eq(g->nodes[3].inputs[0], g->nodes[2].output);
    cr_assert_eq(g->nodes[3].inputs[1], x);
    cr_assert_eq(g->nodes[4].inputs[0], g->nodes[3].output);
    cr_assert_eq(g->nodes[5].inputs[0], g->nodes[4].output);
    /* nn.linear's weight and bias, by key. */
    const graph_tensor *w = &g->tensors[g->nodes[0].inputs[1]];
    const graph_tensor *b = &g->tensors[g->nodes[0].inputs[2]];
    cr_assert_eq(w->kind, GRAPH_WEIGHT);
    cr_assert_str_eq(w->weight.part[0].key, "fc1.weight");
    SHAPE2(&w->shape, 16, 8);
    cr_assert_str_eq(b->weight.part[0].key, "fc1.bias");
    cr_assert_eq(b->shape.rank, 1);
    cr_assert_eq(b->shape.dim[0], 16);
    /* A weight's loc is the model line that led to it. */
    cr_assert_str_eq(w->loc.file, MODEL);
    cr_assert_eq(w->loc.line, 4);
    /* Layernorm weights are initialised to ones and zeros. */
    const graph_tensor *ln_w = &g->tensors[g->nodes[4].inputs[1]];
    const graph_tensor *ln_b = &g->tensors[g->nodes[4].inputs[2]];
    cr_assert_str_eq(ln_w->name, "ln.weight");
    cr_assert_eq(ln_w->weight.part[0].init, GRAPH_INIT_ONES);
    cr_assert_str_eq(ln_b->name, "ln.bias");
    cr_assert_eq(ln_b->weight.part[0].init, GRAPH_INIT_ZEROS);
    cr_assert_eq(w->weight.part[0].init, GRAPH_INIT_UNIFORM);

    /* Shapes along the way and attributes. */
    SHAPE2(&g->tensors[g->nodes[0].output].shape, 3, 16);
    SHAPE2(&g->tensors[g->nodes[2].output].shape, 3, 8);
    cr_assert_eq(g->nodes[1].attrs.act, RT_ACT_GELU_TANH);
    cr_assert_float_eq(g->nodes[4].attrs.eps, 1e-5f, 1e-12);
    int y = find_tensor(g, GRAPH_OUTPUT, "y");
    cr_assert_eq(y, g->nodes[5].output);
    SHAPE2(&g->tensors[y].shape, 3, 8);
    cr_assert_eq(g->tensors[y].dtype, GRAPH_F32);

    /* Tensor kinds: x; fc1.weight, fc1.bias, fc2.weight, ln.weight,
     * ln.bias; five intermediates and y. */
    cr_assert_eq(graph_count_kind(g, GRAPH_INPUT), 1);
    cr_assert_eq(graph_count_kind(g, GRAPH_WEIGHT), 5);
    cr_assert_eq(graph_count_kind(g, GRAPH_INTERMEDIATE), 5);
    cr_assert_eq(graph_count_kind(g, GRAPH_OUTPUT), 1);
    cr_assert_eq(g->n_tensors, 12);

    cr_assert_str_eq(m->path, MODEL);
    cr_assert_str_eq(m->name, "test_model");
    model_free(m);
}


Test(small, config_sorted_with_defaults)
{
    model *m = load_ok(small_model, NULL, 0);
    static const char *const keys[] = { "causal", "eps", "rows", "tag",
                                        "width" };
    static const char *const values[] = { "false", "1e-05", "3", "small",
                                          "8" };
    cr_assert_eq(m->n_config, 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_str_eq(m->config[i].key, keys[i]);
        cr_assert_str_eq(m->config[i].value, values[i], "%s = %s", keys[i],
                         m->config[i].value);
    }
    model_free(m);
}


Test(small, config_overrides_of_each_type)
{
    static const frontend_define defs[] = {
        { .key = "rows", .value = "5" }, { .key = "eps", .value = "0.001" }, { .key = "causal", .value = "true" },
        { .key = "tag", .value = "big" },
    };
    model *m = load_ok(small_model, defs, 4);
    const graph *g = m->graph;
    static const char *const keys[] = { "causal", "eps", "rows", "tag",
                                        "width" };
    static const char *const values[] = { "true", "0.001", "5", "big", "8" };
    cr_assert_eq(m->n_config, 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_str_eq(m->config[i].key, keys[i]);
        cr_assert_str_eq(m->config[i].value, values[i], "%s = %s", keys[i],
                         m->config[i].value);
    }
    /* The overrides reach the model: rows in shapes, eps in layernorm. */
    SHAPE2(&g->tensors[find_tensor(g, GRAPH_INPUT, "x")].shape, 5, 8);
    SHAPE2(&g->tensors[find_tensor(g, GRAPH_OUTPUT, "y")].shape, 5, 8);
    cr_assert_float_eq(g->nodes[4].attrs.eps, 0.001f, 1e-9);
    model_free(m);
}


Test(small, config_integer_float_and_string_values)
{
    /* A float default given an integer-looking value stays a float; a
     * string default takes any text. */
    static const frontend_define defs[] = { { .key = "scale", .value = "2" },
                                            { .key = "name", .value = "12" } };
    model *m = load_ok(
        "local c = dsc.config { scale = 0.5, name = \"n\", n = -7 }\n"
        "assert(math.type(c.scale) == \"float\" and c.scale == 2.0)\n"
        "assert(c.name == \"12\" and math.type(c.n) == \"integer\")\n"
        "local x = dsc.input(\"x\", {2})\n"
        "dsc.output(\"y\", dsc.relu(x))\n",
        defs, 2);
    cr_assert_eq(m->n_config, 3);
    cr_assert_str_eq(config_value(m, "scale"), "2");
    cr_assert_str_eq(config_value(m, "name"), "12");
    cr_assert_str_eq(config_value(m, "n"), "-7");
    cr_assert_str_eq(m->config[0].key, "n");
    cr_assert_str_eq(m->config[1].key, "name");
    cr_assert_str_eq(m->config[2].key, "scale");
    model_free(m);
}


Test(small, tensor_fields_in_lua)
{
    model *m = load_ok(
        "local t = dsc.input(\"t\", {4, 6}, \"int32\")\n"
        "assert(t.rank == 2 and t.shape[1] == 4 and t.shape[2] == 6)\n"
        "assert(t.dtype == \"int32\" and t.name == \"t\")\n"
        "assert(tostring(t) == \"tensor t int32[4, 6]\", tostring(t))\n"
        "assert(getmetatable(t) == false)\n"
        "local e = nn.embedding(t, \"emb\", 10, 3)\n"
        "assert(e.rank == 3 and e.shape[3] == 3 and e.dtype == \"float32\")\n"
        "dsc.output(\"e\", e)\n",
        NULL, 0);
    const graph *g = m->graph;
    cr_assert_eq(g->n_nodes, 1);
    cr_assert_eq(g->nodes[0].op, GRAPH_OP_EMBEDDING);
    check_shape(&g->tensors[g->nodes[0].output].shape, 3, 4LL, 6LL, 3LL);
    model_free(m);
}


Test(small, attention_attrs)
{
    model *m = load_ok(
        "local x = dsc.input(\"x\", {5, 2, 12})\n"
        "local a = dsc.attention(x, x, x, {heads = 3, causal = true,\n"
        "                                  batch_first = true})\n"
        "local b = dsc.attention(x, x, x, {scale = 0.25})\n"
        "dsc.output(\"a\", a)\n"
        "dsc.output(\"b\", b)\n",
        NULL, 0);
    const graph *g = m->graph;
    cr_assert_eq(g->n_nodes, 2);
    const graph_attrs *a = &g->nodes[0].attrs, *b = &g->nodes[1].attrs;
    cr_assert_eq(a->heads, 3);
    cr_assert_eq(a->causal, 1);
    cr_assert_eq(a->batch_first, 1);
    cr_assert_float_eq(a->scale, (float)(1 / sqrt(4.0)), 1e-6);
    cr_assert_eq(b->heads, 1);
    cr_assert_eq(b->causal, 0);
    cr_assert_eq(b->batch_first, 0);
    cr_assert_float_eq(b->scale, 0.25f, 1e-9);
    cr_assert_eq(g->nodes[0].loc.line, 2);
    cr_assert_eq(g->nodes[1].loc.line, 4);
    model_free(m);
}


/* ---- the seed models --------------------------------------------------- */

Test(seed, encoder_defaults)
{
    dsc_err err;
    model *m = frontend_load(ENCODER, NULL, 0, NULL, &err);
    cr_assert_not_null(m, "%s", err.msg);
    const graph *g = m->graph;
    cr_assert_eq(count_op(g, GRAPH_OP_EMBEDDING), 1);
    cr_assert_eq(count_op(g, GRAPH_OP_LINEAR), 13);
    cr_assert_eq(count_op(g, GRAPH_OP_ATTENTION), 2);
    cr_assert_eq(count_op(g, GRAPH_OP_LAYERNORM), 4);
    cr_assert_eq(count_op(g, GRAPH_OP_ADD), 4);
    cr_assert_eq(count_op(g, GRAPH_OP_RELU), 2);
    cr_assert_eq(count_op(g, GRAPH_OP_GELU), 0);
    cr_assert_eq(count_op(g, GRAPH_OP_SOFTMAX), 0);
    /* Training: PyTorch's three dropouts a layer, and the seed's loss. */
    cr_assert_eq(count_op(g, GRAPH_OP_DROPOUT), 6);
    cr_assert_eq(count_op(g, GRAPH_OP_CROSS_ENTROPY), 1);
    cr_assert_eq(g->n_nodes, 26 + 6 + 1);
    cr_assert_eq(g->loss_plus1 - 1, g->nodes[g->n_nodes - 1].output);

    int tokens = find_tensor(g, GRAPH_INPUT, "tokens");
    cr_assert_geq(tokens, 0);
    cr_assert_eq(g->tensors[tokens].dtype, GRAPH_I32);
    SHAPE2(&g->tensors[tokens].shape, 16, 20);
    int logits = find_tensor(g, GRAPH_OUTPUT, "logits");
    cr_assert_geq(logits, 0);
    SHAPE3(&g->tensors[logits].shape, 16, 20, 1000);
    cr_assert_eq(g->tensors[logits].producer, g->n_nodes - 2);
    cr_assert_eq(graph_count_kind(g, GRAPH_INPUT), 1);
    cr_assert_eq(graph_count_kind(g, GRAPH_OUTPUT), 1);

    /* Nodes and their lines: the first is the embedding, the last the fc;
     * every node inside a layer points at the layer's call. */
    int l_emb = line_of(ENCODER, "nn.embedding(tokens");
    int l_layer = line_of(ENCODER, "nn.transformer_encoder_layer(");
    int l_fc = line_of(ENCODER, "local logits = nn.linear(");
    int nn_attn = line_of(NN_LUA, "dsc.attention(q, k, v");
    cr_assert_eq(g->nodes[0].op, GRAPH_OP_EMBEDDING);
    cr_assert_eq(g->nodes[0].user_loc.line, l_emb);
    cr_assert_str_eq(g->nodes[0].loc.file, "nn.lua");
    cr_assert_eq(g->nodes[g->n_nodes - 2].op, GRAPH_OP_LINEAR);
    cr_assert_eq(g->nodes[g->n_nodes - 2].user_loc.line, l_fc);
    for (int i = 1; i < g->n_nodes - 2; i++) {
        const graph_node *n = &g->nodes[i];
        cr_assert_str_eq(n->user_loc.file, ENCODER);
        cr_assert_eq(n->user_loc.line, l_layer, "node %d (%s) line %d", i,
                     graph_op_name(n->op), n->user_loc.line);
        cr_assert_str_eq(n->loc.file, "nn.lua", "node %d", i);
        if (n->op == GRAPH_OP_ATTENTION) {
            cr_assert_eq(n->loc.line, nn_attn);
            cr_assert_eq(n->attrs.heads, 4);
            cr_assert_eq(n->attrs.batch_first, 0);
            cr_assert_float_eq(n->attrs.scale, 0.125f, 1e-7);
            SHAPE3(&g->tensors[n->output].shape, 16, 20, 256);
            cr_assert_float_eq(n->attrs.p, 0.1f, 1e-7);
        }
        if (n->op == GRAPH_OP_DROPOUT)
            cr_assert_float_eq(n->attrs.p, 0.1f, 1e-7);
    }
    /* The q, k and v weights are row slices of in_proj_weight. */
    int n_slices = 0;
    for (int i = 0; i < g->n_tensors; i++) {
        const graph_tensor *t = &g->tensors[i];
        if (t->kind == GRAPH_WEIGHT &&
            strcmp(t->weight.part[0].key,
                   "transformer_encoder.layers.1.self_attn.in_proj_weight")
                == 0) {
            SHAPE2(&t->weight.part[0].key_shape, 768, 256);
            SHAPE2(&t->shape, 256, 256);
            cr_assert_eq(t->weight.part[0].row_first, 256 * n_slices);
            n_slices++;
        }
    }
    cr_assert_eq(n_slices, 3);
    cr_assert_eq(m->n_config, 8);
    cr_assert_str_eq(config_value(m, "layers"), "2");
    cr_assert_str_eq(m->name, "seed_encoder");
    model_free(m);
}


Test(seed, encoder_with_defines)
{
    static const frontend_define defs[] = {
        { .key = "seq", .value = "1" }, { .key = "batch", .value = "1" }, { .key = "layers", .value = "3" },
    };
    dsc_err err;
    model *m = frontend_load(ENCODER, defs, 3, NULL, &err);
    cr_assert_not_null(m, "%s", err.msg);
    const graph *g = m->graph;
    cr_assert_eq(count_op(g, GRAPH_OP_EMBEDDING), 1);
    cr_assert_eq(count_op(g, GRAPH_OP_LINEAR), 3 * 6 + 1);
    cr_assert_eq(count_op(g, GRAPH_OP_ATTENTION), 3);
    cr_assert_eq(count_op(g, GRAPH_OP_LAYERNORM), 6);
    cr_assert_eq(count_op(g, GRAPH_OP_ADD), 6);
    cr_assert_eq(count_op(g, GRAPH_OP_RELU), 3);
    cr_assert_eq(count_op(g, GRAPH_OP_DROPOUT), 3 * 3);
    cr_assert_eq(g->n_nodes, 1 + 19 + 3 + 6 + 6 + 3 + 9 + 1);
    int tokens = find_tensor(g, GRAPH_INPUT, "tokens");
    cr_assert_geq(tokens, 0);
    cr_assert_eq(g->tensors[tokens].dtype, GRAPH_I32);
    SHAPE2(&g->tensors[tokens].shape, 1, 1);
    int logits = find_tensor(g, GRAPH_OUTPUT, "logits");
    cr_assert_geq(logits, 0);
    SHAPE3(&g->tensors[logits].shape, 1, 1, 1000);
    /* The feed-forward hidden layer is d_ff wide. */
    int wide = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == GRAPH_OP_RELU) {
            SHAPE3(&g->tensors[g->nodes[i].output].shape, 1, 1, 2048);
            wide++;
        }
    cr_assert_eq(wide, 3);
    cr_assert_str_eq(config_value(m, "layers"), "3");
    cr_assert_str_eq(config_value(m, "seq"), "1");
    cr_assert_str_eq(config_value(m, "batch"), "1");
    cr_assert_str_eq(config_value(m, "vocab"), "1000");
    model_free(m);
}


Test(seed, attention_defaults_fail_in_feed_forward)
{
    dsc_err err;
    memset(&err, 0, sizeof err);
    model *m = frontend_load(ATTENTION, NULL, 0, NULL, &err);
    cr_assert_null(m, "the seed's attention model must not load as printed");
    int line = line_of(ATTENTION, "local z1 = nn.linear(");
    /* The line is inside feed_forward, after its definition. */
    cr_assert_gt(line, line_of(ATTENTION, "local function feed_forward"));
    check_msg(err.msg, ATTENTION, line, "[32, 10, 64]", "[2048, 512]",
              "linear", (const char *)NULL);
}


Test(seed, attention_fixed_with_define)
{
    static const frontend_define defs[] = { { .key = "ff_in", .value = "64" } };
    dsc_err err;
    model *m = frontend_load(ATTENTION, defs, 1, NULL, &err);
    cr_assert_not_null(m, "%s", err.msg);
    const graph *g = m->graph;
    int y = find_tensor(g, GRAPH_OUTPUT, "y");
    cr_assert_geq(y, 0);
    SHAPE3(&g->tensors[y].shape, 32, 10, 64);
    int x = find_tensor(g, GRAPH_INPUT, "x");
    cr_assert_geq(x, 0);
    SHAPE3(&g->tensors[x].shape, 32, 10, 512);
    cr_assert_eq(count_op(g, GRAPH_OP_LINEAR), 5);
    cr_assert_eq(count_op(g, GRAPH_OP_ATTENTION), 1);
    cr_assert_eq(count_op(g, GRAPH_OP_RELU), 1);
    cr_assert_eq(g->n_nodes, 7);
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == GRAPH_OP_ATTENTION) {
            cr_assert_eq(g->nodes[i].attrs.batch_first, 1);
            cr_assert_eq(g->nodes[i].attrs.heads, 1);
            cr_assert_eq(g->nodes[i].loc.line,
                         line_of(ATTENTION, "return dsc.attention("));
        }
    cr_assert_str_eq(config_value(m, "ff_in"), "64");
    model_free(m);
}


Test(seed, missing_file_is_named)
{
    dsc_err err;
    memset(&err, 0, sizeof err);
    model *m = frontend_load("models/no_such_model.lua", NULL, 0, NULL, &err);
    cr_assert_null(m);
    cr_assert(strstr(err.msg, "models/no_such_model.lua"), "%s", err.msg);
    cr_assert(strstr(err.msg, "error"), "%s", err.msg);
}


/* ---- errors ------------------------------------------------------------ */

Test(errors, lua_syntax_error)
{
    expect_error("local x = dsc.input(\"x\", {2})\n"
                 "\n"
                 "local y = = 1\n",
                 3, "unexpected symbol", "'='");
    expect_error("local function f()\n  return 1\n", 3, "'end' expected");
}


Test(errors, syntax_error_long_path_is_not_shortened)
{
    /* Lua shortens long chunk names in its messages; dsc names the file. */
    static const char path[] =
        "some/rather/long/directory/name/that/goes/on/and/on/for/a/while/"
        "model.lua";
    dsc_err err;
    model *m = load_text(path, "local x =\nlocal y = 2\n", NULL, 0, NULL,
                         &err);
    cr_assert_null(m);
    check_msg(err.msg, path, 2, "unexpected symbol", (const char *)NULL);
    m = load_text(path, "local x = 1\nlocal y = nil\ny()\n", NULL, 0, NULL,
                  &err);
    cr_assert_null(m);
    check_msg(err.msg, path, 3, "attempt to call a nil value",
              (const char *)NULL);
}


Test(errors, lua_runtime_error_in_model)
{
    expect_error("local x = dsc.input(\"x\", {2})\n"
                 "local f = nil\n"
                 "f(x)\n",
                 3, "attempt to call a nil value", "'f'");
    expect_error("local t = {}\nlocal y = t.a.b\n", 2, "index a nil value");
    expect_error("error(\"my own message\")\n", 1, "my own message");
    expect_error("\n\nerror(\"no position\", 0)\n", 3, "no position");
    expect_error("error({})\n", 1, "not a string");
}


Test(errors, error_inside_library_reported_at_model_line)
{
    int nn_line = line_of(NN_LUA, "dsc.weight(prefix .. \".weight\"");
    char in_lib[64];
    snprintf(in_lib, sizeof in_lib, "(in nn.lua:%d)", nn_line);
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "\n"
                 "local y = nn.linear(x, nil, 4, 4)\n",
                 3, "concatenate a nil value", in_lib);
    /* A bad argument that reaches the builder from inside nn.lua. */
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "local y = nn.linear(\"x\", \"l\", 4, 4)\n",
                 2, "linear: argument 1 must be a tensor, got string");
    /* A shape error from inside nn.lua, at the model's line. */
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "local y = nn.layernorm(x, \"ln\", 5)\n",
                 2, "layernorm", "ln.weight", "[5]", "[3, 4]");
    /* Through a model function: the innermost model line counts. */
    expect_error("local function block(x)\n"
                 "  local y = nn.linear(x, \"fc\", 5, 6)\n"
                 "  return y\n"
                 "end\n"
                 "local x = dsc.input(\"x\", {3, 4})\n"
                 "local y = block(x)\n",
                 2, "linear", "[3, 4]", "fc.weight", "[6, 5]");
}


Test(errors, linear_arity_and_arguments)
{
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "local w = dsc.weight(\"w\", {5, 4})\n"
                 "local y = dsc.linear(x, w, nil, w)\n",
                 3, "linear takes (x, weight [, bias])", "got 4 arguments");
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "local y = dsc.linear(x)\n",
                 2, "linear: argument 2 must be a tensor", "no value");
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "local y = dsc.linear(x, 3)\n",
                 2, "linear: argument 2 must be a tensor, got number");
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "local w = dsc.weight(\"w\", {5, 4})\n"
                 "local y = dsc.linear(x, w, {})\n",
                 3, "linear: argument 3 must be a tensor, got table");
    expect_error("local y = dsc.relu(\"x\")\n", 1,
                 "relu: argument 1 must be a tensor, got string");
    /* A computed weight would reach the kernels unpacked. */
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "local w = dsc.input(\"w\", {5, 4})\n"
                 "local y = dsc.linear(x, w)\n",
                 3, "linear: the weight must be a dsc.weight", "[5, 4]");
    expect_error("local q = dsc.input(\"q\", {3, 12}, \"float32\", {dynamic = true})\n"
                 "local kv = dsc.linear(q, dsc.weight(\"wkv\", {10, 12}))\n"
                 "local kv_b = dsc.input(\"kv_b\", {14, 8})\n"
                 "local a = dsc.mla_attention(q, kv, dsc.weight(\"n\", {8}),\n"
                 "                            kv_b, {heads = 2})\n",
                 4, "mla_attention: kv_b must be a dsc.weight", "[14, 8]");
}


Test(errors, shape_mismatches)
{
    expect_error("local a = dsc.input(\"a\", {3, 4})\n"
                 "local b = dsc.input(\"b\", {3, 5})\n"
                 "local c = dsc.add(a, b)\n",
                 3, "add: shapes differ", "[3, 4]", "[3, 5]");
    /* The + operator on tensors is add. */
    expect_error("local a = dsc.input(\"a\", {3, 4})\n"
                 "local b = dsc.input(\"b\", {4, 3})\n"
                 "\n"
                 "local c = a + b\n",
                 4, "add: shapes differ", "[3, 4]", "[4, 3]");
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "local y = dsc.linear(x, dsc.weight(\"w\", {5, 3}))\n",
                 2, "linear: input [3, 4] has 4 features", "w [5, 3]",
                 "expects 3");
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "local w = dsc.weight(\"w\", {5, 4})\n"
                 "local y = dsc.linear(x, w, dsc.weight(\"b\", {4}))\n",
                 3, "linear: bias b is [4]", "[5]");
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "local y = dsc.layernorm(x, dsc.weight(\"g\", {5}),\n"
                 "                        dsc.weight(\"b\", {4}))\n",
                 2, "layernorm: weight g is [5]", "expected [4]", "[3, 4]");
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "local y = dsc.layernorm(x, dsc.weight(\"g\", {4}),\n"
                 "                        dsc.weight(\"b\", {4}), {eps = 0})\n",
                 2, "eps must be > 0");
    expect_error("local x = dsc.input(\"x\", {3, 2, 8})\n"
                 "local y = dsc.attention(x, x, x, {heads = 3})\n",
                 2, "attention: 3 heads do not divide", "8");
    expect_error("local x = dsc.input(\"x\", {3, 2, 8})\n"
                 "local k = dsc.input(\"k\", {3, 2, 6})\n"
                 "local y = dsc.attention(x, k, k)\n",
                 3, "attention", "[3, 2, 8]", "[3, 2, 6]");
    expect_error("local x = dsc.input(\"x\", {3, 2, 8})\n"
                 "local y = dsc.attention(x, x, x, {heads = 1.5})\n",
                 2, "heads must be a positive integer");
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "local y = nn.embedding(x, \"e\", 10, 2)\n",
                 2, "embedding: ids must be int32", "float32");
    expect_error("local x = dsc.input(\"x\", {3, 4}, \"int32\")\n"
                 "local y = dsc.relu(x)\n",
                 2, "relu", "int32", "expected float32");
}


Test(errors, unknown_option_keys)
{
    expect_error("local x = dsc.input(\"x\", {3, 2, 8})\n"
                 "local y = dsc.attention(x, x, x, {heads = 2, bogus = 1})\n",
                 2, "attention: unknown option 'bogus'");
    expect_error("local w = dsc.weight(\"w\", {4}, {init = \"ones\", rowz = 1})\n",
                 1, "weight: unknown option 'rowz'");
    expect_error("local x = dsc.input(\"x\", {4})\n"
                 "local y = dsc.gelu(x, {approx = \"tanh\"})\n",
                 2, "gelu: unknown option 'approx'");
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "local y = dsc.layernorm(x, dsc.weight(\"g\", {4}),\n"
                 "                        dsc.weight(\"b\", {4}), {epsilon = 1})\n",
                 2, "layernorm: unknown option 'epsilon'");
    expect_error("local x = dsc.input(\"x\", {4})\n"
                 "local y = dsc.gelu(x, {approximate = \"fast\"})\n",
                 2, "approximate must be");
    expect_error("local x = dsc.input(\"x\", {3, 2, 8})\n"
                 "local y = dsc.attention(x, x, x, {causal = 1})\n",
                 2, "option 'causal' must be true or false");
    expect_error("local w = dsc.weight(\"w\", {4}, {init = \"random\"})\n", 1,
                 "init must be");
}


Test(errors, unknown_define_key_lists_known_keys)
{
    static const frontend_define defs[] = { { .key = "widht", .value = "3" } };
    expect_error_d("\n"
                   "local c = dsc.config { width = 8, depth = 2, name = \"n\" }\n"
                   "local x = dsc.input(\"x\", {c.width})\n"
                   "dsc.output(\"y\", dsc.relu(x))\n",
                   defs, 2, "unknown config key 'widht'", "width", "depth",
                   "name");
    /* A model that never calls dsc.config takes no -D at all. */
    dsc_err err;
    model *m = load_text(MODEL,
                         "local x = dsc.input(\"x\", {2})\n"
                         "dsc.output(\"y\", dsc.relu(x))\n",
                         defs, 1, NULL, &err);
    cr_assert_null(m);
    check_msg(err.msg, MODEL, 0, "widht", "never calls dsc.config",
              (const char *)NULL);
}


/* --config settings: a key the model does not declare is ignored, but an
 * object where it declares a value is an error naming the file's line. */
Test(errors, config_object_for_a_value)
{
    static const char text[] =
        "local c = dsc.config { width = 8 }\n"
        "local x = dsc.input(\"x\", {c.width})\n"
        "dsc.output(\"y\", dsc.relu(x))\n";
    static const frontend_define unknown[] = {
        { .key = "rope.factor", .value = "2", .source = "c.json", .line = 3,
          .kind = 'i' } };
    model_free(load_ok(text, unknown, 1));
    static const frontend_define object[] = {
        { .key = "width.a.b", .value = "1", .source = "c.json", .line = 4,
          .kind = 'i' } };
    dsc_err err;
    cr_assert_null(load_text(MODEL, text, object, 1, NULL, &err));
    check_msg(err.msg, "c.json", 4, "config key 'width' must be a value",
              "got an object", (const char *)NULL);
    /* An empty object has no member to flatten: config_json gives it as
     * kind 'o'. */
    static const frontend_define empty[] = {
        { .key = "width", .value = "{}", .source = "c.json", .line = 5,
          .kind = 'o' } };
    cr_assert_null(load_text(MODEL, text, empty, 1, NULL, &err));
    check_msg(err.msg, "c.json", 5, "config key 'width' must be an integer",
              "got an object", (const char *)NULL);
}


Test(errors, define_value_of_wrong_type)
{
    static const char text[] =
        "local c = dsc.config { n = 8, on = true, eps = 0.5 }\n"
        "local x = dsc.input(\"x\", {c.n})\n"
        "dsc.output(\"y\", dsc.relu(x))\n";
    static const frontend_define bad_int[] = { { .key = "n", .value = "abc" } };
    expect_error_d(text, bad_int, 1, "-D n=abc", "'n' expects an integer");
    static const frontend_define float_for_int[] = { { .key = "n", .value = "2.5" } };
    expect_error_d(text, float_for_int, 1, "'n' expects an integer");
    static const frontend_define too_big[] = {
        { .key = "n", .value = "99999999999999999999999" } };
    expect_error_d(text, too_big, 1, "'n' expects an integer");
    static const frontend_define empty[] = { { .key = "n", .value = "" } };
    expect_error_d(text, empty, 1, "'n' expects an integer");
    static const frontend_define bad_bool[] = { { .key = "on", .value = "maybe" } };
    expect_error_d(text, bad_bool, 1, "-D on=maybe",
                   "'on' expects true or false");
    static const frontend_define bad_float[] = { { .key = "eps", .value = "nan" } };
    expect_error_d(text, bad_float, 1, "'eps' expects a number");
    static const frontend_define bad_float2[] = { { .key = "eps", .value = "1e-3x" } };
    expect_error_d(text, bad_float2, 1, "'eps' expects a number");
}


Test(errors, config_misuse)
{
    expect_error("local c = dsc.config { a = 1 }\n"
                 "local d = dsc.config { a = 1 }\n",
                 2, "dsc.config may be called only once");
    expect_error("local c = dsc.config(3)\n", 1,
                 "dsc.config takes a table of defaults, got number");
    expect_error("local c = dsc.config { a = {1, 2} }\n", 1,
                 "every entry must be name = number, boolean or string");
}


Test(errors, no_output)
{
    dsc_err err;
    model *m = load_text(MODEL,
                         "local x = dsc.input(\"x\", {2})\n"
                         "local y = dsc.relu(x)\n",
                         NULL, 0, NULL, &err);
    cr_assert_null(m);
    check_msg(err.msg, MODEL, 0, "no output", (const char *)NULL);
    m = load_text(MODEL, "", NULL, 0, NULL, &err);
    cr_assert_null(m);
    check_msg(err.msg, MODEL, 0, "no output", (const char *)NULL);
}


Test(errors, duplicate_and_invalid_names)
{
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "local x2 = dsc.input(\"x\", {3, 4})\n",
                 2, "named 'x' already exists");
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "dsc.output(\"y\", dsc.relu(x))\n"
                 "dsc.output(\"y\", dsc.relu(x))\n",
                 3, "named 'y' already exists");
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "dsc.output(\"x\", dsc.relu(x))\n",
                 2, "named 'x' already exists");
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "local r = dsc.relu(x)\n"
                 "dsc.output(\"a\", r)\n"
                 "dsc.output(\"b\", r)\n",
                 4, "output 'b' must be computed by an op");
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "dsc.output(\"x_out\", x)\n",
                 2, "must be computed by an op", "input");
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "dsc.output(\"2bad\", dsc.relu(x))\n",
                 2, "'2bad' is not a valid input/output name");
    expect_error("local x = dsc.input(\"x\", {3, 4})\n"
                 "dsc.output(\"a-b\", dsc.relu(x))\n",
                 2, "'a-b' is not a valid input/output name");
    expect_error("local x = dsc.input(\"\", {3, 4})\n", 1,
                 "'' is not a valid input/output name");
    expect_error("local x = dsc.input(string.rep(\"a\", 65), {3, 4})\n", 1,
                 "is not a valid input/output name", "at most 64");
}


Test(errors, weight_declarations)
{
    expect_error("local w = dsc.weight(\"w\", {4, 2})\n"
                 "\n"
                 "local w2 = dsc.weight(\"w\", {4, 3})\n",
                 3, "weight 'w' declared as [4, 3]", "[4, 2] at " MODEL ":1");
    /* Two slices of one key are fine; a slice past the end is not. */
    model *m = load_ok("local x = dsc.input(\"x\", {3, 2})\n"
                       "local a = dsc.weight(\"w\", {4, 2}, {rows = {0, 2}})\n"
                       "local b = dsc.weight(\"w\", {4, 2}, {rows = {2, 2}})\n"
                       "dsc.output(\"y\", dsc.linear(x, a) + dsc.linear(x, b))\n",
                       NULL, 0);
    const graph *g = m->graph;
    cr_assert_eq(graph_count_kind(g, GRAPH_WEIGHT), 2);
    int seen = 0;
    for (int i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].kind == GRAPH_WEIGHT) {
            cr_assert_eq(g->tensors[i].weight.part[0].row_first, 2 * seen);
            SHAPE2(&g->tensors[i].shape, 2, 2);
            SHAPE2(&g->tensors[i].weight.part[0].key_shape, 4, 2);
            seen++;
        }
    model_free(m);
    expect_error("local w = dsc.weight(\"w\", {4, 2}, {rows = {3, 2}})\n", 1,
                 "weight 'w': rows 3..", "[2, 2]", "do not fit", "[4, 2]");
    expect_error("local w = dsc.weight(\"w\", {4, 2}, {rows = {-1, 2}})\n", 1,
                 "first >= 0");
    expect_error("local w = dsc.weight(\"w\", {4, 2}, {rows = {0, 0}})\n", 1,
                 "count >= 1");
    expect_error("local w = dsc.weight(\"w\", {4, 2}, {rows = 3})\n", 1,
                 "rows must be {first, count}");
    /* first + count past INT64_MAX must not wrap around into range. */
    expect_error("local w = dsc.weight(\"w\", {4, 2},\n"
                 "                      {rows = {math.maxinteger, 1}})\n",
                 1, "do not fit");
    expect_error("local w = dsc.weight(\"\", {4})\n", 1, "empty key");
}


Test(errors, input_declarations)
{
    expect_error("local x = dsc.input(\"x\", {3, 4}, \"float16\")\n", 1,
                 "dtype must be \"float32\" or \"int32\"", "float16");
    expect_error("local x = dsc.input(\"x\", {3, 0})\n", 1,
                 "dimension 2 of the shape must be a positive integer");
    expect_error("local x = dsc.input(\"x\", {3, 1.5})\n", 1,
                 "dimension 2 of the shape must be a positive integer");
    expect_error("local x = dsc.input(\"x\", {1, 1, 1, 1, 1, 1, 1})\n", 1,
                 "rank 7 is above the limit of 6");
    expect_error("local x = dsc.input(\"x\", {1 << 30, 1 << 30, 2})\n", 1,
                 "too large");
    expect_error("local x = dsc.input(\"x\", 3)\n", 1,
                 "must be a shape like {16, 20}", "number");
    expect_error("local x = dsc.input(\"x\", {2})\nlocal s = x.size\n", 2,
                 "not 'size'");
}


/* ---- the sandbox ------------------------------------------------------- */

/* Each line alone must fail to load, at line 2, without crashing. */
Test(sandbox, escapes_fail)
{
    static const char *const escapes[] = {
        "os.execute(\"true\")",
        "local f = io.open(\"/etc/passwd\")",
        "local m = require(\"os\")",
        "dofile(\"/etc/passwd\")",
        "local f = loadfile(\"/etc/passwd\")",
        "local f = load(\"return 1\")",
        "local s = string.dump(function() end)",
        "local s = (\"x\"):dump()",
        "local i = debug.getinfo(1)",
        "local n = collectgarbage(\"count\")",
        "local s = getmetatable(\"\").__index.dump(function() end)",
        "local f = package.loadlib(\"libc.so.6\", \"system\")",
        "local c = coroutine.create(function() end)",
        "local s = io.read()",
        "local t = os.getenv(\"HOME\")",
    };
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "local x = dsc.input(\"x\", {2})\n%s\n"
                 "dsc.output(\"y\", dsc.relu(x))\n",
                 escapes[i]);
        dsc_err err;
        model *m = load_text(MODEL, text, NULL, 0, NULL, &err);
        if (m) {
            model_free(m);
            cr_assert_fail("sandbox escape succeeded: %s", escapes[i]);
        }
        check_msg(err.msg, MODEL, 2, "nil value", (const char *)NULL);
    }
}


Test(sandbox, safe_libraries_work)
{
    model *m = load_ok(
        "local t = {}\n"
        "for i = 1, 4 do t[#t + 1] = math.floor(i * 1.5) end\n"
        "table.sort(t, function(a, b) return a > b end)\n"
        "assert(table.concat(t, \",\") == \"6,4,3,1\")\n"
        "assert(string.format(\"%d-%s\", 3, \"x\") == \"3-x\")\n"
        "assert(utf8.len(\"\\u{e9}\") == 1 and (\"ab\"):upper() == \"AB\")\n"
        "local ok, e = pcall(error, \"caught\")\n"
        "assert(not ok and e == \"caught\")\n"
        "local x = dsc.input(\"x\", {t[1]})\n"
        "dsc.output(\"y\", dsc.relu(x))\n",
        NULL, 0);
    cr_assert_eq(m->graph->tensors[0].shape.dim[0], 6);
    model_free(m);
}


Test(sandbox, endless_loop_stops)
{
    frontend_limits lim = frontend_default_limits();
    lim.instructions = 100000;
    dsc_err err;
    model *m = load_text(MODEL, "local n = 0\nwhile true do n = n + 1 end\n",
                         NULL, 0, &lim, &err);
    cr_assert_null(m);
    check_msg(err.msg, MODEL, 2, "instruction budget", (const char *)NULL);
    /* Caught by pcall or not, the budget stays spent: the rest of the
     * model does not run. */
    m = load_text(MODEL,
                  "for i = 1, 10 do pcall(function() while true do end end) "
                  "end\nlocal x = dsc.input(\"x\", {2})\n"
                  "dsc.output(\"y\", dsc.relu(x))\n",
                  NULL, 0, &lim, &err);
    cr_assert_null(m, "the budget was reset by pcall");
    cr_assert(strstr(err.msg, "instruction budget"), "%s", err.msg);
    /* A small model fits in the small budget. */
    m = load_text(MODEL, "local x = dsc.input(\"x\", {2})\n"
                         "dsc.output(\"y\", dsc.relu(x))\n",
                  NULL, 0, &lim, &err);
    cr_assert_not_null(m, "%s", err.msg);
    model_free(m);
}


/* pcall must not keep an endless loop alive: before the fix this ran
 * forever (each exhausted-budget error was caught, the count restarted). */
Test(sandbox, endless_loop_under_pcall_stops, .timeout = 30)
{
    frontend_limits lim = frontend_default_limits();
    lim.instructions = 100000;
    static const char *const loops[] = {
        "while true do pcall(function() while true do end end) end\n",
        "local function f() while true do end end\n"
        "while true do pcall(pcall, pcall, f)\n"
        "  xpcall(f, function(e) while true do end end) end\n",
        "local t = {}\nfor i = 1, 100 do t[i] = i end\n"
        "while true do\n"
        "  pcall(table.sort, t, function(a, b) while true do end end)\n"
        "end\n",
    };
    for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++) {
        dsc_err err;
        model *m = load_text(MODEL, loops[i], NULL, 0, &lim, &err);
        if (m) {
            model_free(m);
            cr_assert_fail("loop loaded: %s", loops[i]);
        }
        cr_assert(strncmp(err.msg, MODEL ":", strlen(MODEL ":")) == 0, "%s",
                  err.msg);
        cr_assert(strstr(err.msg, ": error: ") &&
                  strstr(err.msg, "instruction budget"), "%s", err.msg);
    }
}


Test(sandbox, memory_bomb_stops)
{
    frontend_limits lim = frontend_default_limits();
    lim.memory_bytes = (size_t)8 << 20;
    static const char *const bombs[] = {
        "local t = {}\nlocal i = 0\nwhile true do i = i + 1; t[i] = i end\n",
        "local s = \"x\"\nwhile true do s = s .. s end\n",
        "local t = {}\nfor i = 1, 1e9 do t[i] = (\"y\"):rep(100) .. i end\n",
        "local s = string.rep(\"x\", 100 * 1024 * 1024)\n",
    };
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        dsc_err err;
        model *m = load_text(MODEL, bombs[i], NULL, 0, &lim, &err);
        if (m) {
            model_free(m);
            cr_assert_fail("memory bomb loaded: %s", bombs[i]);
        }
        cr_assert(strncmp(err.msg, MODEL, strlen(MODEL)) == 0,
                  "memory error does not name the model: %s", err.msg);
        cr_assert(strstr(err.msg, "error"), "%s", err.msg);
        cr_assert(strstr(err.msg, "memory"), "%s", err.msg);
    }
}


/* However small the memory limit, loading fails with a message (before the
 * fix, opening the libraries ran unprotected and Lua aborted the process). */
Test(sandbox, tiny_memory_limits_fail_cleanly)
{
    static const char text[] = "local x = dsc.input(\"x\", {2})\n"
                               "dsc.output(\"y\", dsc.relu(x))\n";
    int failed = 0, loaded = 0;
    for (size_t mem = 0; mem <= 256000; mem += 2000) {
        frontend_limits lim = frontend_default_limits();
        lim.memory_bytes = mem;
        dsc_err err;
        model *m = load_text(MODEL, text, NULL, 0, &lim, &err);
        if (m) {
            loaded++;
            cr_assert_eq(m->graph->n_nodes, 1);
            model_free(m);
            continue;
        }
        failed++;
        /* "MODEL: error: " while starting, "MODEL:LINE: error: " after. */
        cr_assert(strncmp(err.msg, MODEL ":", strlen(MODEL ":")) == 0 &&
                  strstr(err.msg, ": error: "), "limit %zu: %s", mem,
                  err.msg);
    }
    cr_assert_gt(failed, 0);
    cr_assert_gt(loaded, 0, "the model never fits in 256000 bytes");
}


Test(sandbox, deep_recursion_stops)
{
    dsc_err err;
    model *m = load_text(MODEL,
                         "local function f(n) return f(n + 1) + 1 end\n"
                         "local y = f(1)\n",
                         NULL, 0, NULL, &err);
    cr_assert_null(m);
    cr_assert(strncmp(err.msg, MODEL ":", strlen(MODEL ":")) == 0, "%s",
              err.msg);
    cr_assert(strstr(err.msg, "stack overflow") || strstr(err.msg, "memory"),
              "%s", err.msg);
}


/* ---- determinism ------------------------------------------------------- */

static void check_same_loc(graph_loc a, graph_loc b, const char *what, int i)
{
    cr_assert_str_eq(a.file, b.file, "%s %d", what, i);
    cr_assert_eq(a.line, b.line, "%s %d", what, i);
}


static void check_same_graph(const model *ma, const model *mb)
{
    const graph *a = ma->graph, *b = mb->graph;
    cr_assert_eq(a->n_nodes, b->n_nodes);
    cr_assert_eq(a->n_tensors, b->n_tensors);
    for (int i = 0; i < a->n_tensors; i++) {
        const graph_tensor *s = &a->tensors[i], *t = &b->tensors[i];
        cr_assert_str_eq(s->name, t->name, "tensor %d", i);
        cr_assert_eq(s->dtype, t->dtype, "tensor %d", i);
        cr_assert_eq(s->kind, t->kind, "tensor %d", i);
        cr_assert(graph_shape_equal(&s->shape, &t->shape), "tensor %d", i);
        cr_assert_eq(s->producer, t->producer, "tensor %d", i);
        check_same_loc(s->loc, t->loc, "tensor", i);
        if (s->kind == GRAPH_WEIGHT) {
            cr_assert_str_eq(s->weight.part[0].key, t->weight.part[0].key);
            cr_assert(graph_shape_equal(&s->weight.part[0].key_shape,
                                        &t->weight.part[0].key_shape));
            cr_assert_eq(s->weight.part[0].row_first, t->weight.part[0].row_first);
            cr_assert_eq(s->weight.part[0].init, t->weight.part[0].init);
        }
    }
    for (int i = 0; i < a->n_nodes; i++) {
        const graph_node *s = &a->nodes[i], *t = &b->nodes[i];
        cr_assert_eq(s->op, t->op, "node %d", i);
        cr_assert_eq(s->n_inputs, t->n_inputs, "node %d", i);
        cr_assert_eq(memcmp(s->inputs, t->inputs, sizeof s->inputs), 0,
                     "node %d", i);
        cr_assert_eq(s->output, t->output, "node %d", i);
        cr_assert_eq(memcmp(&s->attrs, &t->attrs, sizeof s->attrs), 0,
                     "node %d", i);
        check_same_loc(s->loc, t->loc, "node", i);
        check_same_loc(s->user_loc, t->user_loc, "node user", i);
    }
    cr_assert_eq(ma->n_config, mb->n_config);
    for (int i = 0; i < ma->n_config; i++) {
        cr_assert_str_eq(ma->config[i].key, mb->config[i].key);
        cr_assert_str_eq(ma->config[i].value, mb->config[i].value);
    }
}


Test(determinism, same_model_twice)
{
    dsc_err err;
    model *a = frontend_load(ENCODER, NULL, 0, NULL, &err);
    cr_assert_not_null(a, "%s", err.msg);
    model *b = frontend_load(ENCODER, NULL, 0, NULL, &err);
    cr_assert_not_null(b, "%s", err.msg);
    check_same_graph(a, b);
    model_free(a);
    model_free(b);

    /* From memory as from disk, and the small model with defines. */
    char *text = read_file(ENCODER);
    a = frontend_load(ENCODER, NULL, 0, NULL, &err);
    cr_assert_not_null(a, "%s", err.msg);
    b = load_text(ENCODER, text, NULL, 0, NULL, &err);
    cr_assert_not_null(b, "%s", err.msg);
    check_same_graph(a, b);
    model_free(a);
    model_free(b);
    free(text);

    static const frontend_define defs[] = { { .key = "rows", .value = "7" } };
    a = load_ok(small_model, defs, 1);
    b = load_ok(small_model, defs, 1);
    check_same_graph(a, b);
    model_free(a);
    model_free(b);
}


/* ---- the graph API directly -------------------------------------------- */

Test(graph, build_and_verify_by_hand)
{
    graph *g = graph_new();
    cr_assert_not_null(g);
    dsc_err err;
    graph_loc loc = { graph_intern(g, "hand.lua"), 7 };
    cr_assert_eq(graph_intern(g, "hand.lua"), loc.file, "interned once");
    graph_shape xs = { 2, { 3, 4 } }, ws = { 2, { 5, 4 } };
    int x = graph_add_input(g, "x", GRAPH_F32, &xs, loc, &err);
    int w = graph_add_weight(g, "w", &ws, 0, &ws, GRAPH_INIT_UNIFORM, loc,
                             &err);
    cr_assert_geq(x, 0, "%s", err.msg);
    cr_assert_geq(w, 0, "%s", err.msg);
    /* No output yet: verify fails naming the file. */
    cr_assert_neq(graph_verify(g, "hand.lua", &err), 0);
    check_msg(err.msg, "hand.lua", 0, "no output", (const char *)NULL);

    int in[2] = { x, w };
    int y = graph_add_node(g, GRAPH_OP_LINEAR, in, 2, NULL, loc, loc, &err);
    cr_assert_geq(y, 0, "%s", err.msg);
    SHAPE2(&g->tensors[y].shape, 3, 5);
    /* Too few inputs, and a bad input index. */
    cr_assert_lt(graph_add_node(g, GRAPH_OP_ADD, in, 1, NULL, loc, loc, &err),
                 0);
    check_msg(err.msg, "hand.lua", 7, "add takes 2 to 2 inputs, got 1",
              (const char *)NULL);
    int bad[2] = { x, 99 };
    cr_assert_lt(graph_add_node(g, GRAPH_OP_ADD, bad, 2, NULL, loc, loc, &err),
                 0);
    check_msg(err.msg, "hand.lua", 7, "input 2 is not a tensor",
              (const char *)NULL);
    cr_assert_eq(g->n_nodes, 1, "failed nodes were added");

    cr_assert_eq(graph_mark_output(g, y, "y", loc, &err), 0, "%s", err.msg);
    cr_assert_eq(graph_verify(g, "hand.lua", &err), 0, "%s", err.msg);
    cr_assert_eq(graph_count_kind(g, GRAPH_OUTPUT), 1);
    cr_assert_neq(graph_mark_output(g, 99, "z", loc, &err), 0);
    check_msg(err.msg, "hand.lua", 7, "not a tensor", (const char *)NULL);

    char buf[32];
    cr_assert_str_eq(graph_shape_str(&g->tensors[y].shape, buf, sizeof buf),
                     "[3, 5]");
    cr_assert_eq(graph_tensor_bytes(&g->tensors[y]), 60);
    cr_assert_str_eq(graph_op_name(GRAPH_OP_LAYERNORM), "layernorm");
    cr_assert_eq(graph_op_from_name("attention"), GRAPH_OP_ATTENTION);
    cr_assert_eq(graph_op_from_name("conv2d"), -1);
    cr_assert_eq(graph_op_min_inputs(GRAPH_OP_LINEAR), 2);
    cr_assert_eq(graph_op_max_inputs(GRAPH_OP_LINEAR), 4);
    graph_free(g);
}


/* ---- the sandbox: loops inside C functions ------------------------------ */

/* The instruction hook never fires inside a C function; each of these ran
 * (for years) inside one before string.find/match/gmatch/gsub, string.rep,
 * table.move, table.insert and table.remove charged their worst case to
 * the budget (frontend.c, "C loops the hook cannot see"). */
Test(sandbox, c_loops_stop, .timeout = 30)
{
    static const struct {
        const char *code, *what;
    } loops[] = {
        { "string.find((\"a\"):rep(3000), \".-.-.-.-b\")", "string.find" },
        { "local _ = (\"a\"):rep(3000):match(\"(a*)a-a*b\")", "string.match" },
        { "for _ in (\"a\"):rep(3000):gmatch(\"a-a-a-b\") do end",
          "string.gmatch" },
        { "local s = (\"a\"):rep(5000):gsub(\"a*a*a*b\", \"\")",
          "string.gsub" },
        { "local _ = (\"\"):rep(math.maxinteger)", "string.rep" },
        { "local _ = (\"\"):rep(math.maxinteger, \"\")", "string.rep" },
        { "table.move({}, 1, math.maxinteger - 1, 2)", "table.move" },
        { "table.insert(setmetatable({}, {__len = function() return 1e15 "
          "end}), 1, 0)", "table.insert" },
        { "table.remove(setmetatable({}, {__len = function() return 1e15 "
          "end}), 1)", "table.remove" },
        /* __len answering small, then huge: counted once, used once. */
        { "local n = 0\n"
          "table.insert(setmetatable({}, {__len = function() n = n + 1 "
          "return n == 1 and 1 or 1e15 end}), 1, 0)\n"
          "assert(n == 1)\nerror(\"ok\")", "ok" },
    };
    for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "%s\nlocal x = dsc.input(\"x\", {2})\n"
                 "dsc.output(\"y\", dsc.relu(x))\n", loops[i].code);
        dsc_err err;
        model *m = load_text(MODEL, text, NULL, 0, NULL, &err);
        cr_assert_null(m, "loaded: %s", loops[i].code);
        cr_assert(strncmp(err.msg, MODEL ":", strlen(MODEL ":")) == 0, "%s",
                  err.msg);
        cr_assert(strstr(err.msg, loops[i].what), "%s: %s", loops[i].code,
                  err.msg);
        if (strcmp(loops[i].what, "ok") != 0)
            cr_assert(strstr(err.msg, "instruction budget"), "%s", err.msg);
    }
}


/* Each call is charged: many cheap-looking searches add up to the budget,
 * and pcall does not get the steps back. */
Test(sandbox, c_loops_are_charged, .timeout = 30)
{
    frontend_limits lim = frontend_default_limits();
    lim.instructions = 100000000;
    expect_error_x("local s = (\"a\"):rep(200)\n"
                   "for i = 1, 1e9 do pcall(s.find, s, \".-.-b\") end\n",
                   NULL, 0, &lim, 2, "instruction budget",
                   (const char *)NULL);
}


/* What models do with strings and tables still works, and a refused call
 * is an error the model can catch. */
Test(sandbox, c_loops_ordinary_use_works)
{
    model *m = load_ok(
        "local s = (\" a\"):rep(5000)\n"
        "assert(#s:gsub(\"%s+\", \"\") == 5000)\n"
        "assert(select(2, s:gsub(\"a\", \"b\")) == 5000)\n"
        "local k, v = (\"key=value\"):match(\"^(%w+)=(.*)$\")\n"
        "assert(k == \"key\" and v == \"value\")\n"
        "local n = 0\n"
        "for w in (\"a bb ccc\"):gmatch(\"%a+\") do n = n + #w end\n"
        "assert(n == 6 and s:find(\"a a\", 1, true) == 2)\n"
        "assert((\"[x]\"):find(\"[]]\") == 3 and (\"f(a)\"):find(\"%b()\") == 2)\n"
        "assert((\"ab\"):rep(3, \",\") == \"ab,ab,ab\")\n"
        "local t = {1, 2, 3}\n"
        "table.insert(t, 4)\n"
        "table.insert(t, 1, 0)\n"
        "assert(table.concat(t, \",\") == \"0,1,2,3,4\")\n"
        "assert(table.remove(t, 1) == 0 and table.remove(t) == 4)\n"
        "assert(table.remove({}) == nil and #t == 3)\n"
        "assert(table.concat(table.move(t, 1, 3, 2), \",\") == \"1,1,2,3\")\n"
        "assert(not pcall(table.insert, t, 9, 0))\n"
        "local ok, e = pcall(string.find, (\"a\"):rep(3000), \".-.-.-b\")\n"
        "assert(not ok and e:find(\"instruction budget\", 1, true))\n"
        "local x = dsc.input(\"x\", {2})\n"
        "dsc.output(\"y\", dsc.relu(x))\n",
        NULL, 0);
    model_free(m);
}


/* Each builder call scans the graph in C: the budget also bounds how big
 * (and how slowly) a model can grow it.  Found by fuzz_frontend: a loop of
 * weights ran for minutes in graph.c's name checks. */
Test(sandbox, graph_growth_is_charged, .timeout = 300)
{
    /* The budget, not the CPU-time limit, must stop these, however slow
     * the build (graph.c under the sanitizers). */
    frontend_limits lim = frontend_default_limits();
    lim.cpu_seconds = 250;
    expect_error_x("local x = dsc.input(\"x\", {2})\n"
                   "for i = 1, 1e9 do dsc.weight(\"w\" .. i, {1}) end\n",
                   NULL, 0, &lim, 2, "the graph has", "instruction budget",
                   (const char *)NULL);
    expect_error_x("local k = (\"k\"):rep(250)\n"
                   "for i = 1, 1e9 do dsc.weight(k .. i, {1}) end\n",
                   NULL, 0, &lim, 2, "the graph has", "instruction budget",
                   (const char *)NULL);
    expect_error_x("local x = dsc.input(\"x\", {2})\n"
                   "for i = 1, 1e9 do x = dsc.relu(x) end\n",
                   NULL, 0, &lim, 2, "the graph has", "instruction budget",
                   (const char *)NULL);
    /* A big real model still fits: the seed encoder with 100 layers. */
    frontend_define defs[] = { { .key = "layers", .value = "100" } };
    dsc_err err;
    model *m = frontend_load(ENCODER, defs, 1, &lim, &err);
    cr_assert_not_null(m, "%s", err.msg);
    model_free(m);
}
