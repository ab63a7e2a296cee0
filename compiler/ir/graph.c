#include "ir/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int min_inputs, max_inputs;
} op_info[GRAPH_OP_COUNT] = {
#define OP(id, name, min_in, max_in) [GRAPH_OP_##id] = {name, min_in, max_in},
#include "ir/ops.def"
#undef OP
};


graph *graph_new(void)
{
    return calloc(1, sizeof(graph));
}


void graph_free(graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_strings; i++)
        free(g->strings[i]);
    free(g->strings);
    free(g->tensors);
    free(g->nodes);
    free(g);
}


/* Grow *array (of elem-sized items) so that index n fits. */
static int grow(void **array, int *cap, int n, size_t elem)
{
    if (n < *cap)
        return 0;
    int new_cap = *cap ? *cap * 2 : 16;
    void *p = realloc(*array, (size_t)new_cap * elem);
    if (!p)
        return -1;
    *array = p;
    *cap = new_cap;
    return 0;
}


const char *graph_intern(graph *g, const char *s)
{
    for (int i = 0; i < g->n_strings; i++)
        if (strcmp(g->strings[i], s) == 0)
            return g->strings[i];
    if (grow((void **)&g->strings, &g->cap_strings, g->n_strings,
             sizeof(char *)))
        return NULL;
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (!copy)
        return NULL;
    memcpy(copy, s, n);
    g->strings[g->n_strings++] = copy;
    return copy;
}


const char *graph_op_name(graph_op op)
{
    return op >= 0 && op < GRAPH_OP_COUNT ? op_info[op].name : "?";
}


int graph_op_from_name(const char *name)
{
    for (int i = 0; i < GRAPH_OP_COUNT; i++)
        if (strcmp(op_info[i].name, name) == 0)
            return i;
    return -1;
}


int graph_op_min_inputs(graph_op op) { return op_info[op].min_inputs; }
int graph_op_max_inputs(graph_op op) { return op_info[op].max_inputs; }


const char *graph_dtype_name(graph_dtype dtype)
{
    return dtype == GRAPH_I32 ? "int32" : "float32";
}


int64_t graph_shape_count(const graph_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= s->dim[i];
    return n;
}


int64_t graph_tensor_bytes(const graph_tensor *t)
{
    return graph_shape_count(&t->shape) * 4;  /* f32 and i32 alike */
}


int graph_shape_equal(const graph_shape *a, const graph_shape *b)
{
    if (a->rank != b->rank)
        return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i])
            return 0;
    return 1;
}


const char *graph_shape_str(const graph_shape *s, char *buf, int len)
{
    /* A shape being refused may claim more dims than it can hold. */
    int at = snprintf(buf, (size_t)len, "[");
    for (int i = 0; i < s->rank && i < GRAPH_MAX_RANK && at < len; i++)
        at += snprintf(buf + at, (size_t)(len - at), "%s%lld", i ? ", " : "",
                       (long long)s->dim[i]);
    if (at < len)
        snprintf(buf + at, (size_t)(len - at), "%s]",
                 s->rank > GRAPH_MAX_RANK ? ", ..." : "");
    return buf;
}


/* Elements past this are refused: 2^40 floats is 4 TiB, far beyond any
 * model, and keeps every product of dims far from int64 overflow. */
#define MAX_ELEMENTS (INT64_C(1) << 40)

static int check_shape(const graph_shape *s, const char *what, graph_loc loc,
                       dsc_err *err)
{
    if (s->rank < 0 || s->rank > GRAPH_MAX_RANK)
        return err_set(err, "%s:%d: error: %s: rank %d is not in 0..%d",
                       loc.file, loc.line, what, s->rank, GRAPH_MAX_RANK);
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) {
        if (s->dim[i] < 1)
            return err_set(err, "%s:%d: error: %s: dimension %d is %lld; "
                           "dimensions must be at least 1", loc.file, loc.line,
                           what, i, (long long)s->dim[i]);
        if (s->dim[i] > MAX_ELEMENTS || (n *= s->dim[i]) > MAX_ELEMENTS)
            return err_set(err, "%s:%d: error: %s: shape is too large",
                           loc.file, loc.line, what);
    }
    return 0;
}


static int add_tensor(graph *g, const graph_tensor *t, dsc_err *err)
{
    if (grow((void **)&g->tensors, &g->cap_tensors, g->n_tensors,
             sizeof(graph_tensor)))
        return err_set(err, "%s:%d: error: out of memory", t->loc.file,
                       t->loc.line);
    g->tensors[g->n_tensors] = *t;
    g->tensors[g->n_tensors].view_of = -1;
    return g->n_tensors++;
}


static int find_named(const graph *g, const char *name)
{
    for (int i = 0; i < g->n_tensors; i++) {
        graph_kind k = g->tensors[i].kind;
        if ((k == GRAPH_INPUT || k == GRAPH_OUTPUT) &&
            strcmp(g->tensors[i].name, name) == 0)
            return i;
    }
    return -1;
}


/* API names become C identifiers in the generated code. */
static int check_api_name(const graph *g, const char *name, graph_loc loc,
                          dsc_err *err)
{
    int ok = name[0] != '\0' && !(name[0] >= '0' && name[0] <= '9');
    for (const char *c = name; *c && ok; c++)
        ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
             (*c >= '0' && *c <= '9') || *c == '_';
    if (!ok || strlen(name) > 64)
        return err_set(err, "%s:%d: error: '%s' is not a valid input/output "
                       "name (letters, digits and _, not starting with a "
                       "digit, at most 64)", loc.file, loc.line, name);
    if (find_named(g, name) >= 0)
        return err_set(err, "%s:%d: error: a graph input or output named "
                       "'%s' already exists", loc.file, loc.line, name);
    return 0;
}


int graph_add_input(graph *g, const char *name, graph_dtype dtype,
                    const graph_shape *shape, graph_loc loc, dsc_err *err)
{
    if (check_api_name(g, name, loc, err) ||
        check_shape(shape, "input", loc, err))
        return -1;
    graph_tensor t = {
        .name = graph_intern(g, name), .dtype = dtype, .shape = *shape,
        .kind = GRAPH_INPUT, .producer = -1, .loc = loc,
    };
    if (!t.name)
        return err_set(err, "%s:%d: error: out of memory", loc.file, loc.line);
    return add_tensor(g, &t, err);
}


/* key_shape is as stored in the file; with transposed, a rank-2 file
 * tensor [in, out] is viewed as [out, in] and rows count in that view. */
static int add_weight(graph *g, const char *key, const graph_shape *key_shape,
                      int transposed, int64_t row_first,
                      const graph_shape *shape, graph_init init, graph_loc loc,
                      dsc_err *err)
{
    char a[96], b[96];
    if (key[0] == '\0')
        return err_set(err, "%s:%d: error: weight: empty key", loc.file,
                       loc.line);
    if (check_shape(key_shape, "weight", loc, err) ||
        check_shape(shape, "weight", loc, err))
        return -1;
    if (transposed && key_shape->rank != 2)
        return err_set(err, "%s:%d: error: weight '%s': only a matrix can be "
                       "stored transposed", loc.file, loc.line, key);
    graph_shape logical = *key_shape;
    if (transposed) {
        logical.dim[0] = key_shape->dim[1];
        logical.dim[1] = key_shape->dim[0];
    }
    int fits = shape->rank == logical.rank && logical.rank >= 1 &&
               row_first >= 0 &&
               row_first <= logical.dim[0] - shape->dim[0];
    for (int i = 1; fits && i < shape->rank; i++)
        fits = shape->dim[i] == logical.dim[i];
    if (!fits)
        return err_set(err, "%s:%d: error: weight '%s': rows %lld.. of shape "
                       "%s do not fit in its shape %s%s", loc.file, loc.line,
                       key, (long long)row_first,
                       graph_shape_str(shape, a, sizeof a),
                       graph_shape_str(&logical, b, sizeof b),
                       transposed ? " (transposed)" : "");
    for (int i = 0; i < g->n_tensors; i++) {
        const graph_tensor *o = &g->tensors[i];
        const graph_weight_part *p = &o->weight.part[0];
        if (o->kind == GRAPH_WEIGHT && p->key && strcmp(p->key, key) == 0 &&
            !graph_shape_equal(&p->key_shape, key_shape))
            return err_set(err, "%s:%d: error: weight '%s' declared as %s "
                           "here but as %s at %s:%d", loc.file, loc.line, key,
                           graph_shape_str(key_shape, a, sizeof a),
                           graph_shape_str(&p->key_shape, b, sizeof b),
                           o->loc.file, o->loc.line);
    }
    graph_tensor t = {
        .name = graph_intern(g, key), .dtype = GRAPH_F32, .shape = *shape,
        .kind = GRAPH_WEIGHT, .producer = -1, .loc = loc,
        .weight = { .n_parts = 1, .part[0] = {
            .key_shape = *key_shape, .row_first = row_first,
            .rows = shape->dim[0], .init = init,
            .transposed = transposed } },
    };
    t.weight.part[0].key = t.name;
    if (!t.name)
        return err_set(err, "%s:%d: error: out of memory", loc.file, loc.line);
    return add_tensor(g, &t, err);
}


int graph_add_weight(graph *g, const char *key, const graph_shape *key_shape,
                     int64_t row_first, const graph_shape *shape,
                     graph_init init, graph_loc loc, dsc_err *err)
{
    return add_weight(g, key, key_shape, 0, row_first, shape, init, loc, err);
}


int graph_add_weight_t(graph *g, const char *key, const graph_shape *key_shape,
                       int64_t row_first, const graph_shape *shape,
                       graph_init init, graph_loc loc, dsc_err *err)
{
    return add_weight(g, key, key_shape, 1, row_first, shape, init, loc, err);
}


int graph_make_dynamic(graph *g, int tensor, graph_loc loc, dsc_err *err)
{
    for (int i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].kind == GRAPH_INPUT && g->tensors[i].dynamic)
            return err_set(err, "%s:%d: error: only one input may have a "
                           "runtime token count ('%s' has)", loc.file,
                           loc.line, g->tensors[i].name);
    graph_tensor *t = &g->tensors[tensor];
    if (t->kind != GRAPH_INPUT || t->shape.rank < 1)
        return err_set(err, "%s:%d: error: only an input of rank >= 1 can "
                       "have a runtime token count", loc.file, loc.line);
    t->dynamic = 1;
    return 0;
}


int graph_add_state(graph *g, const char *label, const graph_shape *shape,
                    graph_loc loc, dsc_err *err)
{
    if (check_shape(shape, "state", loc, err))
        return -1;
    graph_tensor t = { .name = graph_intern(g, label), .dtype = GRAPH_F32,
                       .shape = *shape, .kind = GRAPH_STATE, .producer = -1,
                       .loc = loc };
    if (!t.name)
        return err_set(err, "%s:%d: error: out of memory", loc.file, loc.line);
    return add_tensor(g, &t, err);
}


int graph_add_tensor(graph *g, const char *label, const graph_shape *shape,
                     graph_loc loc, dsc_err *err)
{
    graph_tensor t = { .name = graph_intern(g, label), .dtype = GRAPH_F32,
                       .shape = *shape, .kind = GRAPH_INTERMEDIATE,
                       .producer = -1, .loc = loc };
    if (!t.name)
        return err_set(err, "%s:%d: error: out of memory", loc.file, loc.line);
    return add_tensor(g, &t, err);
}


int graph_add_node(graph *g, graph_op op, const int *inputs, int n_inputs,
                   const graph_attrs *attrs, graph_loc loc, graph_loc user_loc,
                   dsc_err *err)
{
    const char *name = graph_op_name(op);
    if (op < 0 || op >= GRAPH_OP_COUNT)
        return err_set(err, "%s:%d: error: unknown op %d", user_loc.file,
                       user_loc.line, (int)op);
    if (n_inputs < op_info[op].min_inputs || n_inputs > op_info[op].max_inputs)
        return err_set(err, "%s:%d: error: %s takes %d to %d inputs, got %d",
                       user_loc.file, user_loc.line, name,
                       op_info[op].min_inputs, op_info[op].max_inputs,
                       n_inputs);
    for (int i = 0; i < n_inputs; i++) {
        int optional = i >= op_info[op].min_inputs;
        if (inputs[i] < (optional ? -1 : 0) || inputs[i] >= g->n_tensors)
            return err_set(err, "%s:%d: error: %s: input %d is not a tensor",
                           user_loc.file, user_loc.line, name, i + 1);
    }
    graph_attrs a = attrs ? *attrs : (graph_attrs){0};
    graph_tensor out = {
        .name = name, .kind = GRAPH_INTERMEDIATE, .producer = g->n_nodes,
        .loc = loc,
    };
    char why[512];
    if (graph_infer_shape(g, op, inputs, n_inputs, &a, &out.shape, &out.dtype,
                          why, sizeof why))
        return err_set(err, "%s:%d: error: %s", user_loc.file, user_loc.line,
                       why);
    /* A runtime token count flows from inputs to outputs; mixing it with a
     * fixed row count would read rows that do not exist. */
    int dynamic = 0, fixed = 0;
    for (int i = 0; i < n_inputs; i++) {
        const graph_tensor *x = inputs[i] >= 0 ? &g->tensors[inputs[i]] : NULL;
        if (!x || x->kind == GRAPH_WEIGHT || x->kind == GRAPH_STATE)
            continue;
        dynamic |= x->dynamic;
        fixed |= !x->dynamic;
    }
    if (op == GRAPH_OP_POSITIONS)
        fixed = 0;
    if (dynamic && fixed)
        return err_set(err, "%s:%d: error: %s mixes a runtime token count "
                       "with a fixed one", user_loc.file, user_loc.line, name);
    if (op == GRAPH_OP_ATTENTION && dynamic)
        return err_set(err, "%s:%d: error: attention over a runtime token "
                       "count needs kv_attention", user_loc.file,
                       user_loc.line);
    if (op == GRAPH_OP_KV_ATTENTION && !dynamic)
        return err_set(err, "%s:%d: error: kv_attention needs inputs with a "
                       "runtime token count (dsc.input(..., {dynamic = "
                       "true}))", user_loc.file, user_loc.line);
    out.dynamic = dynamic && op != GRAPH_OP_LAST;
    if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes,
             sizeof(graph_node)))
        return err_set(err, "%s:%d: error: out of memory", loc.file, loc.line);
    int t = add_tensor(g, &out, err);
    if (t < 0)
        return -1;
    graph_node *n = &g->nodes[g->n_nodes++];
    *n = (graph_node){ .op = op, .n_inputs = n_inputs, .output = t,
                       .attrs = a, .loc = loc, .user_loc = user_loc };
    for (int i = 0; i < GRAPH_MAX_INPUTS; i++)
        n->inputs[i] = i < n_inputs ? inputs[i] : -1;
    return t;
}


int graph_mark_output(graph *g, int tensor, const char *name, graph_loc loc,
                      dsc_err *err)
{
    if (tensor < 0 || tensor >= g->n_tensors)
        return err_set(err, "%s:%d: error: output '%s' is not a tensor",
                       loc.file, loc.line, name);
    graph_tensor *t = &g->tensors[tensor];
    if (t->kind != GRAPH_INTERMEDIATE)
        return err_set(err, "%s:%d: error: output '%s' must be computed by an "
                       "op, not be a graph %s", loc.file, loc.line, name,
                       t->kind == GRAPH_INPUT ? "input" :
                       t->kind == GRAPH_WEIGHT ? "weight" : "output already");
    if (t->dtype != GRAPH_F32)
        return err_set(err, "%s:%d: error: output '%s' must be float32",
                       loc.file, loc.line, name);
    if (check_api_name(g, name, loc, err))
        return -1;
    t->name = graph_intern(g, name);
    t->kind = GRAPH_OUTPUT;
    return t->name ? 0 : err_set(err, "%s:%d: error: out of memory",
                                 loc.file, loc.line);
}


int graph_verify(const graph *g, const char *model_file, dsc_err *err)
{
    if (graph_count_kind(g, GRAPH_OUTPUT) == 0)
        return err_set(err, "%s: error: the model declares no output "
                       "(call dsc.output(name, tensor))", model_file);
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        for (int j = 0; j < n->n_inputs; j++) {
            if (n->inputs[j] < 0)
                continue;
            const graph_tensor *t = &g->tensors[graph_storage(g, n->inputs[j])];
            int computed = t->kind == GRAPH_INTERMEDIATE ||
                           t->kind == GRAPH_OUTPUT;
            if (computed && (t->producer < 0 || t->producer >= i))
                return err_set(err, "%s:%d: error: %s reads a tensor not "
                               "computed before it", n->user_loc.file,
                               n->user_loc.line, graph_op_name(n->op));
        }
        if (g->tensors[n->output].producer != i)
            return err_set(err, "%s:%d: error: %s: output tensor is not its "
                           "own", n->user_loc.file, n->user_loc.line,
                           graph_op_name(n->op));
    }
    return 0;
}


int64_t graph_token_vocab(const graph *g, int t)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == GRAPH_OP_EMBEDDING && g->nodes[i].inputs[0] == t)
            return g->tensors[g->nodes[i].inputs[1]].shape.dim[0];
    return 0;
}


int graph_count_kind(const graph *g, graph_kind kind)
{
    int n = 0;
    for (int i = 0; i < g->n_tensors; i++)
        n += g->tensors[i].kind == kind;
    return n;
}
