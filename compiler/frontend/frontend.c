/* frontend.c — the dsc.* builder API a model file runs against, in the
 * Lua sandbox (sandbox.c).
 *
 * Builder functions (dsc.linear, ...) turn Lua calls into graph nodes; each
 * node keeps the Lua line that made it and the model file's line that led
 * there, so errors point at the user's code even when the call came through
 * the nn block library.
 *
 * A builder runs no model code: it reads its tables raw (no __index, __len
 * or __newindex), and the sandbox allows no finalizers.  Still, none holds
 * a pointer into the graph's growable arrays across a Lua call (anything
 * that allocates may run the collector): it copies what it needs. */
#define _POSIX_C_SOURCE 200809L
#include "frontend/frontend.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "dsc_runtime.h"
#include "frontend/sandbox.h"
#include "io/fileio.h"
#include "util/ctext.h"

extern const char embedded_nn_lua[];

#define TENSOR_MT   "dsc.tensor"
#define LIB_CHUNK   "nn.lua"

/* Everything one model run needs; reached from Lua through the sandbox's
 * user pointer, so nothing here is global. */
typedef struct frontend {
    sandbox *sb;
    graph *g;
    const char *path;          /* interned model path */
    const char *lib;           /* interned library chunk name */
    const frontend_define *defines;
    int n_defines;
    int config_called;
    model_config_entry *config;
    int n_config;
    /* Bytes the graph and the config hold, counted against the model's
     * memory limit: string bytes of the first strings_seen strings. */
    size_t string_bytes, config_bytes;
    int strings_seen;
} frontend;


static frontend *ctx_of(lua_State *L)
{
    return sandbox_user(L);
}


frontend_limits frontend_default_limits(void)
{
    sandbox_limits s = sandbox_default_limits();
    return (frontend_limits){ .instructions = s.instructions,
                              .memory_bytes = s.memory_bytes,
                              .cpu_seconds = s.cpu_seconds };
}


/* ---- what the graph costs ---------------------------------------------- */

/* The bytes g holds, with room for `more` tensors, nodes and strings and
 * `name_bytes` more string bytes (what one builder call can add, arrays
 * doubling included). */
static size_t graph_bytes(frontend *f, int more, size_t name_bytes)
{
    const graph *g = f->g;
    for (; f->strings_seen < g->n_strings; f->strings_seen++)
        f->string_bytes += strlen(g->strings[f->strings_seen]) + 1;
    size_t t = (size_t)g->cap_tensors, n = (size_t)g->cap_nodes,
           st = (size_t)g->cap_strings;
    if (more) {  /* graph.c doubles a full array (from 16) */
        t = g->n_tensors + more > g->cap_tensors ? 2 * t + 16 : t;
        n = g->n_nodes + more > g->cap_nodes ? 2 * n + 16 : n;
        st = g->n_strings + more > g->cap_strings ? 2 * st + 16 : st;
    }
    return t * sizeof(graph_tensor) + n * sizeof(graph_node) +
           st * sizeof(char *) + f->string_bytes + name_bytes +
           (size_t)more * 16 + f->config_bytes;
}


/* The graph keeps its tensors and names in arrays that each builder call
 * scans in C (graph.c: unique names, interning), so a call is charged one
 * step per 64 bytes of the name it adds (len) for every tensor and name
 * already there: the budget bounds the graph's size and the quadratic time
 * to build it (about 20000 tensors at the default budget).  The most the
 * call can add to the graph's memory is reserved against the model's
 * memory limit before it runs (the next call's reservation starts from
 * what the graph then really holds). */
static void charge_graph(lua_State *L, size_t len)
{
    frontend *f = ctx_of(L);
    double have = (double)f->g->n_tensors + f->g->n_strings + 1;
    double steps = have * (1 + (double)len / 64);
    char what[80];
    snprintf(what, sizeof what, "the graph has %d tensors: adding more",
             f->g->n_tensors);
    sandbox_charge(L, what, steps);
    sandbox_reserve(L, graph_bytes(f, 3, 3 * (len + 1)));
}


static void account_graph(lua_State *L)
{
    frontend *f = ctx_of(L);
    sandbox_reserve(L, graph_bytes(f, 0, 0));
}


/* ---- locations --------------------------------------------------------- */

/* The innermost Lua line, and the innermost line in the model file (the
 * sandbox names chunks by the interned strings it was given). */
static void where(lua_State *L, graph_loc *loc, graph_loc *user_loc)
{
    sandbox_loc inner, user;
    sandbox_where(L, &inner, &user);
    *loc = (graph_loc){ inner.file, inner.line };
    *user_loc = (graph_loc){ user.file, user.line };
}


/* Raise a Lua error "model.lua:LINE: error: <op>: <message>". */
static int fail(lua_State *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(lua_State *L, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sandbox_error(L, "%s", msg);
}


/* Raise a graph error (already formatted with its place). */
static int fail_err(lua_State *L, const dsc_err *err)
{
    lua_pushstring(L, err->msg);
    return lua_error(L);
}


/* ---- tensors in Lua ---------------------------------------------------- */

static void push_tensor(lua_State *L, int index)
{
    int *ud = lua_newuserdatauv(L, sizeof(int), 0);
    *ud = index;
    luaL_setmetatable(L, TENSOR_MT);
}


static int check_tensor(lua_State *L, int arg, const char *op)
{
    int *ud = luaL_testudata(L, arg, TENSOR_MT);
    if (!ud)
        return fail(L, "%s: argument %d must be a tensor, got %s", op, arg,
                    luaL_typename(L, arg));
    return *ud;
}


static int opt_tensor(lua_State *L, int arg, const char *op)
{
    return lua_isnoneornil(L, arg) ? -1 : check_tensor(L, arg, op);
}


static void check_shape_arg(lua_State *L, int arg, const char *op,
                            graph_shape *shape)
{
    if (!lua_istable(L, arg))
        fail(L, "%s: argument %d must be a shape like {16, 20}, got %s", op,
             arg, luaL_typename(L, arg));
    lua_Unsigned n = lua_rawlen(L, arg);
    if (n > GRAPH_MAX_RANK)
        fail(L, "%s: rank %llu is above the limit of %d", op,
             (unsigned long long)n, GRAPH_MAX_RANK);
    shape->rank = (int)n;
    for (int i = 0; i < shape->rank; i++) {
        lua_rawgeti(L, arg, i + 1);
        int ok;
        lua_Integer d = lua_tointegerx(L, -1, &ok);
        lua_pop(L, 1);
        if (!ok || d < 1)
            fail(L, "%s: dimension %d of the shape must be a positive "
                 "integer", op, i + 1);
        shape->dim[i] = d;
    }
}


/* Options tables: every key must be one the op knows. */
static void check_options(lua_State *L, int arg, const char *op,
                          const char *const *known)
{
    if (lua_isnoneornil(L, arg))
        return;
    if (!lua_istable(L, arg))
        fail(L, "%s: options must be a table, got %s", op,
             luaL_typename(L, arg));
    lua_pushnil(L);
    while (lua_next(L, arg)) {
        lua_pop(L, 1);
        const char *key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                         : NULL;
        int ok = 0;
        for (int i = 0; key && known[i]; i++)
            ok |= strcmp(key, known[i]) == 0;
        if (!ok)
            fail(L, "%s: unknown option '%s'", op,
                 key ? key : luaL_typename(L, -1));
    }
}


/* Push t[key] for the table at arg without metamethods: a builder runs no
 * model code, so no graph pointer can go stale under it. */
static int raw_field(lua_State *L, int arg, const char *key)
{
    lua_pushstring(L, key);
    return lua_rawget(L, arg);
}


/* opts[key] as a number (def when absent). */
static double opt_number(lua_State *L, int arg, const char *op,
                         const char *key, double def)
{
    if (lua_isnoneornil(L, arg))
        return def;
    double v = def;
    if (raw_field(L, arg, key) != LUA_TNIL) {
        if (!lua_isnumber(L, -1))
            fail(L, "%s: option '%s' must be a number", op, key);
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}


static int opt_bool(lua_State *L, int arg, const char *op, const char *key,
                    int def)
{
    if (lua_isnoneornil(L, arg))
        return def;
    int v = def;
    int type = raw_field(L, arg, key);
    if (type != LUA_TNIL) {
        if (type != LUA_TBOOLEAN)
            fail(L, "%s: option '%s' must be true or false", op, key);
        v = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return v;
}


static int add_node(lua_State *L, graph_op op, const int *inputs, int n,
                    const graph_attrs *attrs)
{
    frontend *f = ctx_of(L);
    graph_loc loc, user;
    dsc_err err;
    where(L, &loc, &user);
    charge_graph(L, 0);
    int t = graph_add_node(f->g, op, inputs, n, attrs, loc, user, &err);
    if (t < 0)
        return fail_err(L, &err);
    push_tensor(L, t);
    return 1;
}


static int tensor_index(lua_State *L)
{
    frontend *f = ctx_of(L);
    int t = *(int *)luaL_checkudata(L, 1, TENSOR_MT);
    const char *key = luaL_checkstring(L, 2);
    /* A copy: no pointer into the graph's arrays across a Lua call. */
    const graph_tensor tensor = f->g->tensors[t];
    if (strcmp(key, "shape") == 0) {
        lua_createtable(L, tensor.shape.rank, 0);
        for (int i = 0; i < tensor.shape.rank; i++) {
            lua_pushinteger(L, tensor.shape.dim[i]);
            lua_rawseti(L, -2, i + 1);
        }
    } else if (strcmp(key, "rank") == 0) {
        lua_pushinteger(L, tensor.shape.rank);
    } else if (strcmp(key, "dtype") == 0) {
        lua_pushstring(L, graph_dtype_name(tensor.dtype));
    } else if (strcmp(key, "name") == 0) {
        lua_pushstring(L, tensor.name);  /* interned: never moves */
    } else {
        return fail(L, "a tensor has shape, rank, dtype and name, not '%s'",
                    key);
    }
    return 1;
}


static int tensor_tostring(lua_State *L)
{
    frontend *f = ctx_of(L);
    const graph_tensor t =
        f->g->tensors[*(int *)luaL_checkudata(L, 1, TENSOR_MT)];
    char shape[96];
    lua_pushfstring(L, "tensor %s %s%s", t.name, graph_dtype_name(t.dtype),
                    graph_shape_str(&t.shape, shape, sizeof shape));
    return 1;
}


/* ---- the builder API: dsc.* -------------------------------------------- */

static int l_input(lua_State *L)
{
    frontend *f = ctx_of(L);
    const char *name = sandbox_check_name(L, 1, "input");
    graph_shape shape;
    check_shape_arg(L, 2, "input", &shape);
    const char *dtype = luaL_optstring(L, 3, "float32");
    graph_dtype dt;
    if (strcmp(dtype, "float32") == 0)
        dt = GRAPH_F32;
    else if (strcmp(dtype, "int32") == 0)
        dt = GRAPH_I32;
    else
        return fail(L, "input: dtype must be \"float32\" or \"int32\", got "
                    "\"%s\"", dtype);
    static const char *const known[] = { "dynamic", NULL };
    check_options(L, 4, "input", known);
    graph_loc loc, user;
    dsc_err err;
    where(L, &loc, &user);
    charge_graph(L, lua_rawlen(L, 1));
    int t = graph_add_input(f->g, name, dt, &shape, user, &err);
    if (t < 0 || (opt_bool(L, 4, "input", "dynamic", 0) &&
                  graph_make_dynamic(f->g, t, user, &err)))
        return fail_err(L, &err);
    push_tensor(L, t);
    return 1;
}


static int l_weight(lua_State *L)
{
    static const char *const known[] = { "rows", "init", "transpose", NULL };
    frontend *f = ctx_of(L);
    const char *key = sandbox_check_name(L, 1, "weight");
    graph_shape key_shape, shape;
    check_shape_arg(L, 2, "weight", &key_shape);
    check_options(L, 3, "weight", known);
    int transposed = opt_bool(L, 3, "weight", "transpose", 0);
    if (transposed && key_shape.rank != 2)
        return fail(L, "weight '%s': transpose needs a matrix", key);
    shape = key_shape;
    if (transposed) {  /* the file holds [in, out]; the model reads [out, in] */
        shape.dim[0] = key_shape.dim[1];
        shape.dim[1] = key_shape.dim[0];
    }
    int64_t first = 0;
    graph_init init = GRAPH_INIT_UNIFORM;
    if (lua_istable(L, 3)) {
        if (raw_field(L, 3, "rows") != LUA_TNIL) {
            int ok1, ok2;
            if (!lua_istable(L, -1) || key_shape.rank < 1)
                return fail(L, "weight '%s': rows must be {first, count}",
                            key);
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
            first = lua_tointegerx(L, -2, &ok1);
            shape.dim[0] = lua_tointegerx(L, -1, &ok2);
            if (!ok1 || !ok2 || first < 0 || shape.dim[0] < 1)
                return fail(L, "weight '%s': rows must be {first, count} with "
                            "first >= 0 and count >= 1", key);
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
        if (raw_field(L, 3, "init") != LUA_TNIL) {
            const char *s = lua_tostring(L, -1);
            if (s && strcmp(s, "ones") == 0)
                init = GRAPH_INIT_ONES;
            else if (s && strcmp(s, "zeros") == 0)
                init = GRAPH_INIT_ZEROS;
            else if (!s || strcmp(s, "uniform") != 0)
                return fail(L, "weight '%s': init must be \"uniform\", "
                            "\"ones\" or \"zeros\"", key);
        }
        lua_pop(L, 1);
    }
    graph_loc loc, user;
    dsc_err err;
    where(L, &loc, &user);
    charge_graph(L, lua_rawlen(L, 1));
    int t = (transposed ? graph_add_weight_t : graph_add_weight)(
        f->g, key, &key_shape, first, &shape, init, user, &err);
    if (t < 0)
        return fail_err(L, &err);
    push_tensor(L, t);
    return 1;
}


static int l_embedding(lua_State *L)
{
    int in[2] = { check_tensor(L, 1, "embedding"),
                  check_tensor(L, 2, "embedding") };
    return add_node(L, GRAPH_OP_EMBEDDING, in, 2, NULL);
}


static int l_linear(lua_State *L)
{
    int in[3] = { check_tensor(L, 1, "linear"), check_tensor(L, 2, "linear"),
                  opt_tensor(L, 3, "linear") };
    if (lua_gettop(L) > 3)
        return fail(L, "linear takes (x, weight [, bias]), got %d arguments",
                    lua_gettop(L));
    return add_node(L, GRAPH_OP_LINEAR, in, 3, NULL);
}


static int l_add(lua_State *L)
{
    int in[2] = { check_tensor(L, 1, "add"), check_tensor(L, 2, "add") };
    return add_node(L, GRAPH_OP_ADD, in, 2, NULL);
}


static int l_relu(lua_State *L)
{
    int in[1] = { check_tensor(L, 1, "relu") };
    return add_node(L, GRAPH_OP_RELU, in, 1, NULL);
}


static int l_gelu(lua_State *L)
{
    static const char *const known[] = { "approximate", NULL };
    int in[1] = { check_tensor(L, 1, "gelu") };
    check_options(L, 2, "gelu", known);
    graph_attrs a = { .act = RT_ACT_GELU };
    if (lua_istable(L, 2)) {
        raw_field(L, 2, "approximate");
        const char *s = lua_tostring(L, -1);
        if (s && strcmp(s, "tanh") == 0)
            a.act = RT_ACT_GELU_TANH;
        else if (s && strcmp(s, "none") != 0)
            return fail(L, "gelu: approximate must be \"none\" or \"tanh\"");
        lua_pop(L, 1);
    }
    return add_node(L, GRAPH_OP_GELU, in, 1, &a);
}


static int l_layernorm(lua_State *L)
{
    static const char *const known[] = { "eps", NULL };
    int in[3] = { check_tensor(L, 1, "layernorm"),
                  check_tensor(L, 2, "layernorm"),
                  check_tensor(L, 3, "layernorm") };
    check_options(L, 4, "layernorm", known);
    graph_attrs a = { .eps = (float)opt_number(L, 4, "layernorm", "eps",
                                               1e-5) };
    return add_node(L, GRAPH_OP_LAYERNORM, in, 3, &a);
}


static int l_softmax(lua_State *L)
{
    int in[1] = { check_tensor(L, 1, "softmax") };
    return add_node(L, GRAPH_OP_SOFTMAX, in, 1, NULL);
}


static int l_attention(lua_State *L)
{
    static const char *const known[] = { "heads", "scale", "causal",
                                         "batch_first", "dropout", NULL };
    int in[3] = { check_tensor(L, 1, "attention"),
                  check_tensor(L, 2, "attention"),
                  check_tensor(L, 3, "attention") };
    check_options(L, 4, "attention", known);
    frontend *f = ctx_of(L);
    double heads = opt_number(L, 4, "attention", "heads", 1);
    if (heads != floor(heads) || heads < 1 || heads > 1e6)
        return fail(L, "attention: heads must be a positive integer");
    const graph_shape q = f->g->tensors[in[0]].shape;
    double head_dim = q.rank == 3 ? (double)q.dim[2] / heads : 1;
    graph_attrs a = {
        .heads = (int)heads,
        .scale = (float)opt_number(L, 4, "attention", "scale",
                                   1 / sqrt(head_dim)),
        .causal = opt_bool(L, 4, "attention", "causal", 0),
        .batch_first = opt_bool(L, 4, "attention", "batch_first", 0),
        /* On the attention weights, in training only (as PyTorch's). */
        .p = (float)opt_number(L, 4, "attention", "dropout", 0),
        .stream = f->g->n_nodes,
    };
    if (!(a.p >= 0 && a.p < 1))
        return fail(L, "attention: dropout must be in [0, 1)");
    return add_node(L, GRAPH_OP_ATTENTION, in, 3, &a);
}


static int l_positions(lua_State *L)
{
    int in[2] = { check_tensor(L, 1, "positions"),
                  check_tensor(L, 2, "positions") };
    return add_node(L, GRAPH_OP_POSITIONS, in, 2, NULL);
}


/* Causal attention of n new tokens over a cache of every earlier one; the
 * caches are state the generated code keeps in caller memory. */
static int l_kv_attention(lua_State *L)
{
    static const char *const known[] = { "heads", "scale", NULL };
    frontend *f = ctx_of(L);
    int in[5] = { check_tensor(L, 1, "kv_attention"),
                  check_tensor(L, 2, "kv_attention"),
                  check_tensor(L, 3, "kv_attention"), -1, -1 };
    check_options(L, 4, "kv_attention", known);
    double heads = opt_number(L, 4, "kv_attention", "heads", 1);
    if (heads != floor(heads) || heads < 1 || heads > 1e6)
        return fail(L, "kv_attention: heads must be a positive integer");
    graph_loc loc, user;
    dsc_err err;
    where(L, &loc, &user);
    charge_graph(L, 0);
    graph_shape k = f->g->tensors[in[1]].shape;
    graph_shape v = f->g->tensors[in[2]].shape;
    if ((in[3] = graph_add_state(f->g, "k_cache", &k, user, &err)) < 0 ||
        (in[4] = graph_add_state(f->g, "v_cache", &v, user, &err)) < 0)
        return fail_err(L, &err);
    double head_dim = k.rank == 2 ? (double)k.dim[1] / heads : 1;
    graph_attrs a = {
        .heads = (int)heads, .causal = 1,
        .scale = (float)opt_number(L, 4, "kv_attention", "scale",
                                   1 / sqrt(head_dim)),
    };
    return add_node(L, GRAPH_OP_KV_ATTENTION, in, 5, &a);
}


static int l_last(lua_State *L)
{
    int in[1] = { check_tensor(L, 1, "last") };
    return add_node(L, GRAPH_OP_LAST, in, 1, NULL);
}


/* ---- training ----------------------------------------------------------
 * dropout is an identity outside `dsc train`; cross_entropy and loss declare
 * the objective, which only `dsc train` computes. */

/* Each dropout draws its own mask: the stream is the node's index, fixed
 * for a given model and configuration. */
static int l_dropout(lua_State *L)
{
    frontend *f = ctx_of(L);
    int in[1] = { check_tensor(L, 1, "dropout") };
    double p = luaL_checknumber(L, 2);
    if (lua_gettop(L) > 2)
        return fail(L, "dropout takes (x, p), got %d arguments",
                    lua_gettop(L));
    if (!(p >= 0 && p < 1))
        return fail(L, "dropout: p must be in [0, 1), got %g", p);
    graph_attrs a = { .p = (float)p, .stream = f->g->n_nodes };
    return add_node(L, GRAPH_OP_DROPOUT, in, 1, &a);
}


/* nn.CrossEntropyLoss(): the mean over every position of
 * logsumexp(logits) - logits[target]. */
static int l_cross_entropy(lua_State *L)
{
    int in[2] = { check_tensor(L, 1, "cross_entropy"),
                  check_tensor(L, 2, "cross_entropy") };
    if (lua_gettop(L) > 2)
        return fail(L, "cross_entropy takes (logits, targets), got %d "
                    "arguments", lua_gettop(L));
    return add_node(L, GRAPH_OP_CROSS_ENTROPY, in, 2, NULL);
}


static int l_loss(lua_State *L)
{
    frontend *f = ctx_of(L);
    int t = check_tensor(L, 1, "loss");
    const graph_tensor *x = &f->g->tensors[t];
    if (f->g->loss_plus1)
        return fail(L, "loss: the model already declared its loss");
    if (x->producer < 0 || f->g->nodes[x->producer].op !=
        GRAPH_OP_CROSS_ENTROPY)
        return fail(L, "loss: expected the result of dsc.cross_entropy");
    f->g->loss_plus1 = t + 1;
    return 0;
}


/* ---- DeepSeek-V3 blocks' ops ------------------------------------------ */

static int l_rmsnorm(lua_State *L)
{
    static const char *const known[] = { "eps", NULL };
    int in[2] = { check_tensor(L, 1, "rmsnorm"), check_tensor(L, 2, "rmsnorm") };
    check_options(L, 3, "rmsnorm", known);
    graph_attrs a = { .eps = (float)opt_number(L, 3, "rmsnorm", "eps", 1e-6) };
    return add_node(L, GRAPH_OP_RMSNORM, in, 2, &a);
}


static int l_silu_mul(lua_State *L)
{
    int in[2] = { check_tensor(L, 1, "silu_mul"),
                  check_tensor(L, 2, "silu_mul") };
    return add_node(L, GRAPH_OP_SILU_MUL, in, 2, NULL);
}


/* opts[key] as an integer in [lo, hi] (def when absent). */
static int opt_int(lua_State *L, int arg, const char *op, const char *key,
                   int def, int lo, int hi)
{
    double v = opt_number(L, arg, op, key, def);
    if (v != floor(v) || v < lo || v > hi)
        return fail(L, "%s: option '%s' must be a whole number from %d to %d",
                    op, key, lo, hi);
    return (int)v;
}


/* Multi-head latent attention over a latent cache of (rank + rope) floats
 * per token, which this call adds as state. */
static int l_mla_attention(lua_State *L)
{
    static const char *const known[] = {
        "heads", "scale", "eps", "rope_theta", "rope_interleave", "yarn",
        "yarn_factor", "yarn_low", "yarn_high", "rope_attn", NULL };
    const char *op = "mla_attention";
    frontend *f = ctx_of(L);
    int in[5] = { check_tensor(L, 1, op), check_tensor(L, 2, op),
                  check_tensor(L, 3, op), check_tensor(L, 4, op), -1 };
    check_options(L, 5, op, known);
    graph_attrs a = {
        .heads = opt_int(L, 5, op, "heads", 1, 1, 1 << 20),
        .eps = (float)opt_number(L, 5, op, "eps", 1e-6),
        .rope_theta = (float)opt_number(L, 5, op, "rope_theta", 10000),
        .rope_interleave = opt_bool(L, 5, op, "rope_interleave", 1),
        .rope_yarn = opt_bool(L, 5, op, "yarn", 0),
        .rope_factor = (float)opt_number(L, 5, op, "yarn_factor", 1),
        .rope_low = (float)opt_number(L, 5, op, "yarn_low", 0),
        .rope_high = (float)opt_number(L, 5, op, "yarn_high", 0),
        .rope_attn = (float)opt_number(L, 5, op, "rope_attn", 1),
    };
    const graph_shape *q = &f->g->tensors[in[0]].shape;
    const graph_shape *kv = &f->g->tensors[in[1]].shape;
    const graph_shape *nw = &f->g->tensors[in[2]].shape;
    if (q->rank != 2 || kv->rank != 2 || nw->rank != 1)
        return fail(L, "%s: q and kv must be [tokens, width], kv_norm [rank]",
                    op);
    double dqk = (double)q->dim[1] / a.heads;
    a.scale = (float)opt_number(L, 5, op, "scale", 1 / sqrt(dqk));
    graph_shape cache = { 2, { q->dim[0], kv->dim[1] } };
    graph_loc loc, user;
    dsc_err err;
    where(L, &loc, &user);
    charge_graph(L, 0);
    if ((in[4] = graph_add_state(f->g, "mla_cache", &cache, user, &err)) < 0)
        return fail_err(L, &err);
    return add_node(L, GRAPH_OP_MLA_ATTENTION, in, 5, &a);
}


static int l_moe_route(lua_State *L)
{
    static const char *const known[] = { "top_k", "n_group", "topk_group",
                                         "norm", "scale", NULL };
    const char *op = "moe_route";
    int in[2] = { check_tensor(L, 1, op), check_tensor(L, 2, op) };
    check_options(L, 3, op, known);
    graph_attrs a = {
        .experts_per_tok = opt_int(L, 3, op, "top_k", 1, 1, 1 << 16),
        .n_group = opt_int(L, 3, op, "n_group", 1, 1, 1 << 16),
        .topk_group = opt_int(L, 3, op, "topk_group", 1, 1, 1 << 16),
        .norm_topk = opt_bool(L, 3, op, "norm", 1),
        .routed_scale = (float)opt_number(L, 3, op, "scale", 1),
    };
    return add_node(L, GRAPH_OP_MOE_ROUTE, in, 2, &a);
}


/* acc + expert e's weighted SwiGLU of the rows that chose it; gate and up
 * are stacked into one weight (one GEMM), as fuse-qkv would. */
static int l_moe_expert(lua_State *L)
{
    static const char *const known[] = { "expert", "top_k", "bf16", NULL };
    const char *op = "moe_expert";
    frontend *f = ctx_of(L);
    int in[5] = { check_tensor(L, 1, op), check_tensor(L, 2, op),
                  check_tensor(L, 3, op), -1, check_tensor(L, 6, op) };
    int gate = check_tensor(L, 4, op), up = check_tensor(L, 5, op);
    check_options(L, 7, op, known);
    graph_attrs a = {
        .expert = opt_int(L, 7, op, "expert", 0, 0, 1 << 20),
        .experts_per_tok = opt_int(L, 7, op, "top_k", 1, 1, 1 << 16),
        .expert_bf16 = opt_bool(L, 7, op, "bf16", 0),
    };
    const graph_tensor *gt = &f->g->tensors[gate], *ut = &f->g->tensors[up];
    if (gt->kind != GRAPH_WEIGHT || ut->kind != GRAPH_WEIGHT ||
        gt->weight.n_parts != 1 || ut->weight.n_parts != 1 ||
        gt->weight.part[0].transposed || ut->weight.part[0].transposed ||
        !graph_shape_equal(&gt->shape, &ut->shape) || gt->shape.rank != 2)
        return fail(L, "%s: gate and up must be plain weights of one "
                    "[inter, dim] shape", op);
    graph_loc loc, user;
    dsc_err err;
    where(L, &loc, &user);
    charge_graph(L, 0);
    graph_weight_part gp = gt->weight.part[0], upp = ut->weight.part[0];
    graph_shape one = gt->shape;
    int t = graph_add_weight(f->g, gp.key, &gp.key_shape, gp.row_first, &one,
                             gp.init, user, &err);
    if (t < 0)
        return fail_err(L, &err);
    graph_tensor *w = &f->g->tensors[t];
    w->shape.dim[0] *= 2;
    w->weight.part[1] = upp;
    w->weight.n_parts = 2;
    in[3] = t;
    return add_node(L, GRAPH_OP_MOE_EXPERT, in, 5, &a);
}


static int l_output(lua_State *L)
{
    frontend *f = ctx_of(L);
    const char *name = sandbox_check_name(L, 1, "output");
    int t = check_tensor(L, 2, "output");
    graph_loc loc, user;
    dsc_err err;
    where(L, &loc, &user);
    charge_graph(L, lua_rawlen(L, 1));
    if (graph_mark_output(f->g, t, name, user, &err))
        return fail_err(L, &err);
    return 0;
}


/* Sentence embeddings over a padded batch [batch, seq, ...]: sequence b
 * holds lengths[b] real tokens.  dsc.masked_attention(q, k, v, lengths,
 * {heads, scale, batch_first}) attends to those keys only. */
static int l_masked_attention(lua_State *L)
{
    static const char *const known[] = { "heads", "scale", "batch_first",
                                         NULL };
    int in[4] = { check_tensor(L, 1, "masked_attention"),
                  check_tensor(L, 2, "masked_attention"),
                  check_tensor(L, 3, "masked_attention"),
                  check_tensor(L, 4, "masked_attention") };
    check_options(L, 5, "masked_attention", known);
    frontend *f = ctx_of(L);
    double heads = opt_number(L, 5, "masked_attention", "heads", 1);
    if (heads != floor(heads) || heads < 1 || heads > 1e6)
        return fail(L, "masked_attention: heads must be a positive integer");
    const graph_shape *q = &f->g->tensors[in[0]].shape;
    /* [batch, seq, heads*dim], or packed [tokens, heads*dim] */
    double head_dim = q->rank >= 2 ? (double)q->dim[q->rank - 1] / heads : 1;
    graph_attrs a = {
        .heads = (int)heads,
        .scale = (float)opt_number(L, 5, "masked_attention", "scale",
                                   1 / sqrt(head_dim)),
        .batch_first = opt_bool(L, 5, "masked_attention", "batch_first", 1),
    };
    return add_node(L, GRAPH_OP_ATTENTION, in, 4, &a);
}


/* dsc.mean_pool(x [batch, seq, dim], lengths): each sequence's mean over
 * its real tokens. */
static int l_mean_pool(lua_State *L)
{
    int in[2] = { check_tensor(L, 1, "mean_pool"),
                  check_tensor(L, 2, "mean_pool") };
    return add_node(L, GRAPH_OP_MEAN_POOL, in, 2, NULL);
}


static int l_l2_normalize(lua_State *L)
{
    int in[1] = { check_tensor(L, 1, "l2_normalize") };
    return add_node(L, GRAPH_OP_L2_NORMALIZE, in, 1, NULL);
}


/* ---- configuration ----------------------------------------------------- */

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}


static int compare_config(const void *a, const void *b)
{
    return strcmp(((const model_config_entry *)a)->key,
                  ((const model_config_entry *)b)->key);
}


/* Parse a -D value as the type of the default at the top of the stack and
 * push it; error naming the key if it does not parse. */
static void push_define(lua_State *L, const char *key, const char *value)
{
    int type = lua_type(L, -1);
    char *end;
    errno = 0;
    if (type == LUA_TNUMBER && lua_isinteger(L, -1)) {
        long long v = strtoll(value, &end, 10);
        if (*value == '\0' || *end != '\0' || errno)
            fail(L, "-D %s=%s: '%s' expects an integer", key, value, key);
        lua_pushinteger(L, v);
    } else if (type == LUA_TNUMBER) {
        double v = strtod(value, &end);
        if (*value == '\0' || *end != '\0' || errno || !isfinite(v))
            fail(L, "-D %s=%s: '%s' expects a number", key, value, key);
        lua_pushnumber(L, v);
    } else if (type == LUA_TBOOLEAN) {
        if (strcmp(value, "true") && strcmp(value, "false"))
            fail(L, "-D %s=%s: '%s' expects true or false", key, value, key);
        lua_pushboolean(L, value[0] == 't');
    } else {
        lua_pushstring(L, value);
    }
}


/* A --config setting, checked against the type of the default at the top
 * of the stack and pushed; null is 0, false or "".  The error names the
 * JSON file, its line and the key. */
static void push_json_define(lua_State *L, const frontend_define *d)
{
    int type = lua_type(L, -1), integer = lua_isinteger(L, -1);
    const char *want = type == LUA_TBOOLEAN ? "true or false"
                     : type == LUA_TSTRING ? "a string"
                     : integer ? "an integer" : "a number";
    const char *got = d->kind == 'i' ? "an integer" : d->kind == 'f'
                      ? "a number" : d->kind == 'b' ? "a boolean"
                      : d->kind == 's' ? "a string"
                      : d->kind == 'o' ? "an object" : "an array";
    if (d->kind == 'z') {
        if (type == LUA_TBOOLEAN)
            lua_pushboolean(L, 0);
        else if (type == LUA_TSTRING)
            lua_pushstring(L, "");
        else if (integer)
            lua_pushinteger(L, 0);
        else
            lua_pushnumber(L, 0);
        return;
    }
    double v = d->kind == 'i' || d->kind == 'f' ? strtod(d->value, NULL) : 0;
    int ok = type == LUA_TBOOLEAN ? d->kind == 'b'
           : type == LUA_TSTRING ? d->kind == 's'
           : integer ? (d->kind == 'i' || d->kind == 'f') && v == floor(v) &&
                       fabs(v) < 9e15
           : d->kind == 'i' || d->kind == 'f';
    if (!ok || (type == LUA_TNUMBER && !isfinite(v))) {
        lua_pushfstring(L, "%s:%d: error: config key '%s' must be %s, got %s "
                        "(%s)", d->source, d->line, d->key, want, got,
                        d->value);
        lua_error(L);
    }
    if (type == LUA_TBOOLEAN)
        lua_pushboolean(L, d->value[0] == 't');
    else if (type == LUA_TSTRING)
        lua_pushstring(L, d->value);
    else if (integer)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, v);
}


/* A --config key "outer.inner" the model does not declare is ignored, but
 * not when the model declares "outer" (or any such prefix): the file has
 * an object where the model wants a value, and its default would be used
 * silently.  The config table is at 1. */
static void object_for_scalar(lua_State *L, const frontend_define *d)
{
    for (const char *dot = strchr(d->key, '.'); dot;
         dot = strchr(dot + 1, '.')) {
        lua_pushlstring(L, d->key, (size_t)(dot - d->key));
        lua_pushvalue(L, -1);
        int declared = lua_rawget(L, 1) != LUA_TNIL;
        lua_pop(L, 1);
        if (declared) {
            lua_pushfstring(L, "%s:%d: error: config key '%s' must be a "
                            "value (as the model's default), got an object",
                            d->source, d->line, lua_tostring(L, -1));
            lua_error(L);
        }
        lua_pop(L, 1);
    }
}


static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}


/* The keys of the config table at 1, sorted and joined, pushed (for the
 * unknown -D key message).  The strings live in the table. */
static void push_config_keys(lua_State *L, int n)
{
    const char **keys = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *keys,
                                          0);
    int n_keys = 0;
    lua_pushnil(L);
    while (lua_next(L, 1) && n_keys < n) {
        lua_pop(L, 1);
        keys[n_keys++] = lua_tostring(L, -1);
    }
    lua_settop(L, 2);  /* the table and keys */
    qsort(keys, (size_t)n_keys, sizeof *keys, compare_strings);
    luaL_Buffer known;
    luaL_buffinit(L, &known);
    for (int k = 0; k < n_keys; k++) {
        luaL_addstring(&known, k ? ", " : "");
        luaL_addstring(&known, keys[k]);
    }
    luaL_pushresult(&known);
}


/* Count the config table's entries, checking each is name = number,
 * boolean or string. */
static int count_config(lua_State *L)
{
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        int vt = lua_type(L, -1);
        if (lua_type(L, -2) != LUA_TSTRING ||
            (vt != LUA_TNUMBER && vt != LUA_TBOOLEAN && vt != LUA_TSTRING))
            return fail(L, "dsc.config: every entry must be name = number, "
                        "boolean or string");
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        sandbox_check_name(L, -1, "dsc.config");
        lua_pop(L, 1);
        n++;
    }
    return n;
}


/* dsc.config(defaults): the defaults with -D overrides applied; records the
 * final values for the generated file's header.  The table is read and
 * written raw (lua_next, lua_rawget, lua_rawset): no metamethod, so no
 * model code runs while it is read and it cannot change under the count. */
static int l_config(lua_State *L)
{
    frontend *f = ctx_of(L);
    if (f->config_called)
        return fail(L, "dsc.config may be called only once");
    f->config_called = 1;
    if (!lua_istable(L, 1))
        return fail(L, "dsc.config takes a table of defaults, got %s",
                    luaL_typename(L, 1));
    lua_settop(L, 1);
    int n = count_config(L);
    for (int i = 0; i < f->n_defines; i++) {
        const char *key = f->defines[i].key;
        lua_pushstring(L, key);
        if (lua_rawget(L, 1) == LUA_TNIL) {
            lua_pop(L, 1);
            if (f->defines[i].source) {  /* --config: not this model's key */
                object_for_scalar(L, &f->defines[i]);
                continue;
            }
            push_config_keys(L, n);
            return fail(L, "-D %s: unknown config key '%s' (this model's "
                        "keys: %s)", key, key, lua_tostring(L, -1));
        }
        if (f->defines[i].source)
            push_json_define(L, &f->defines[i]);
        else
            push_define(L, key, f->defines[i].value);
        lua_pushstring(L, key);
        lua_insert(L, -2);
        lua_rawset(L, 1);  /* replaces a value: the count stays */
        lua_pop(L, 1);
    }
    /* Every byte kept is counted against the memory limit first. */
    f->config_bytes = (size_t)n * (sizeof *f->config + 2 * 16 + 64 +
                                   SANDBOX_MAX_NAME + 1);
    account_graph(L);
    f->config = calloc((size_t)n + 1, sizeof *f->config);
    if (!f->config)
        return fail(L, "out of memory");
    lua_pushnil(L);
    while (f->n_config < n && lua_next(L, 1)) {
        char value[64];
        if (lua_isinteger(L, -1))
            snprintf(value, sizeof value, "%lld",
                     (long long)lua_tointeger(L, -1));
        else if (lua_type(L, -1) == LUA_TNUMBER)
            snprintf(value, sizeof value, "%.9g", lua_tonumber(L, -1));
        else if (lua_type(L, -1) == LUA_TBOOLEAN)
            snprintf(value, sizeof value, "%s",
                     lua_toboolean(L, -1) ? "true" : "false");
        else
            snprintf(value, sizeof value, "%.60s", lua_tostring(L, -1));
        lua_pop(L, 1);
        const char *key = lua_tostring(L, -1);
        model_config_entry *e = &f->config[f->n_config];
        e->key = dup_str(key ? key : "");
        e->value = dup_str(value);
        f->n_config++;
        if (!e->key || !e->value)
            return fail(L, "out of memory");
    }
    qsort(f->config, (size_t)f->n_config, sizeof *f->config, compare_config);
    lua_settop(L, 1);
    return 1;
}


/* ---- the builder API's registration ----------------------------------- */

static const luaL_Reg builder_api[] = {
    { "config", l_config },       { "input", l_input },
    { "weight", l_weight },       { "embedding", l_embedding },
    { "linear", l_linear },       { "add", l_add },
    { "relu", l_relu },           { "gelu", l_gelu },
    { "layernorm", l_layernorm }, { "softmax", l_softmax },
    { "attention", l_attention }, { "output", l_output },
    { "positions", l_positions }, { "kv_attention", l_kv_attention },
    { "last", l_last },
    { "dropout", l_dropout },     { "cross_entropy", l_cross_entropy },
    { "loss", l_loss },
    { "rmsnorm", l_rmsnorm },     { "silu_mul", l_silu_mul },
    { "mla_attention", l_mla_attention },
    { "moe_route", l_moe_route }, { "moe_expert", l_moe_expert },
    { "masked_attention", l_masked_attention }, { "mean_pool", l_mean_pool },
    { "l2_normalize", l_l2_normalize },
    { NULL, NULL }
};


static int open_builder(lua_State *L)
{
    luaL_newmetatable(L, TENSOR_MT);
    lua_pushcfunction(L, tensor_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, tensor_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, l_add);
    lua_setfield(L, -2, "__add");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");  /* getmetatable() sees false */
    lua_pop(L, 1);

    luaL_newlib(L, builder_api);
    lua_setglobal(L, "dsc");
    return 0;
}


/* Run the block library; its table becomes the global nn. */
static int run_library(frontend *f, dsc_err *err)
{
    lua_State *L = sandbox_lua(f->sb);
    if (sandbox_run(f->sb, embedded_nn_lua, strlen(embedded_nn_lua), f->lib,
                    1, err))
        return -1;
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return err_set(err, "%s: error: library did not return a table",
                       LIB_CHUNK);
    }
    lua_setglobal(L, "nn");
    return 0;
}


/* "models/seed-encoder.lua" -> "seed_encoder": a safe C identifier
 * (util/ctext.h), since the generated code's names begin with it. */
static char *model_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && strcmp(base + n - 4, ".lua") == 0)
        n -= 4;
    char *name = malloc(CTEXT_MODEL_NAME_MAX + 1);
    if (name)
        ctext_model_name(base, n, name);
    return name;
}


model *frontend_load_string(const char *path, const char *text, size_t len,
                            const frontend_define *defines, int n_defines,
                            const frontend_limits *limits, dsc_err *err)
{
    if (len > FRONTEND_MAX_SOURCE) {
        err_set(err, "%s: error: a model file of %zu bytes is larger than "
                "the limit of %zu", path, len, FRONTEND_MAX_SOURCE);
        return NULL;
    }
    frontend_limits lim = limits ? *limits : frontend_default_limits();
    sandbox_limits slim = { .instructions = lim.instructions,
                            .memory_bytes = lim.memory_bytes,
                            .cpu_seconds = lim.cpu_seconds,
                            .print = lim.print };
    frontend f = { .defines = defines, .n_defines = n_defines };
    model *m = calloc(1, sizeof *m);
    if (!m || !(f.g = graph_new()) || !(m->path = dup_str(path)) ||
        !(m->name = model_name(path)) || !(f.path = graph_intern(f.g, path)) ||
        !(f.lib = graph_intern(f.g, LIB_CHUNK))) {
        err_set(err, "%s: error: out of memory", path);
        goto fail;
    }
    m->graph = f.g;
    if (!(f.sb = sandbox_new(f.path, &slim, &f, err)) ||
        sandbox_protect(f.sb, open_builder, err) || run_library(&f, err) ||
        sandbox_run(f.sb, text, len, f.path, 0, err))
        goto fail;
    for (int i = 0; i < n_defines && !f.config_called; i++) {
        if (defines[i].source)  /* --config: not this model's key */
            continue;
        err_set(err, "%s: error: -D %s: unknown config key (the model takes "
                "no configuration: it never calls dsc.config)", path,
                defines[i].key);
        goto fail;
    }
    if (graph_verify(f.g, path, err))
        goto fail;
    sandbox_free(f.sb);
    m->config = f.config;
    m->n_config = f.n_config;
    return m;

fail:
    sandbox_free(f.sb);
    for (int i = 0; i < f.n_config; i++) {
        free(f.config[i].key);
        free(f.config[i].value);
    }
    free(f.config);
    if (m && !m->graph)
        graph_free(f.g);
    model_free(m);
    return NULL;
}


model *frontend_load(const char *path, const frontend_define *defines,
                     int n_defines, const frontend_limits *limits,
                     dsc_err *err)
{
    /* A model file is a page of Lua: refuse a huge one before reading it
     * (parsing is outside the instruction budget). */
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
        (uintmax_t)st.st_size > FRONTEND_MAX_SOURCE) {
        err_set(err, "%s: error: a model file of %jd bytes is larger than "
                "the limit of %zu", path, (intmax_t)st.st_size,
                FRONTEND_MAX_SOURCE);
        return NULL;
    }
    size_t len;
    dsc_err read_err;
    char *text = file_read_all(path, &len, &read_err);
    if (!text) {
        err_set(err, "%s", read_err.msg);
        return NULL;
    }
    model *m = frontend_load_string(path, text, len, defines, n_defines,
                                    limits, err);
    free(text);
    return m;
}
