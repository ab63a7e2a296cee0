/* sandbox.c — the Lua state untrusted model text runs in: its libraries,
 * budgets and guards (see sandbox.h).  Nothing here knows what the text
 * builds. */
#define _POSIX_C_SOURCE 200809L
#include "frontend/sandbox.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define MAX_CHUNKS 4
/* The CPU-time limit when the caller gives none: well past what the
 * instruction budget allows ordinary code, well inside "10 s". */
#define DEFAULT_CPU_SECONDS 5.0

struct sandbox {
    lua_State *L;
    void *user;
    const char *user_chunk;
    const char *chunks[MAX_CHUNKS];  /* names run, for locations */
    int n_chunks;
    long long budget;          /* steps left; < 0: spent */
    size_t mem_used, mem_limit;
    size_t reserved;           /* of mem_used: what C keeps for the state */
    double cpu_start, cpu_limit;
    int out_of_time;
    FILE *print;               /* print()'s output */
    /* The last allocation refused: why, and the user's line then (Lua
     * calls no message handler for a memory error). */
    char mem_why[160];
    int mem_line;
};


sandbox_limits sandbox_default_limits(void)
{
    return (sandbox_limits){ .instructions = 200000000LL,
                             .memory_bytes = (size_t)256 << 20,
                             .cpu_seconds = DEFAULT_CPU_SECONDS };
}


static sandbox *sandbox_of(lua_State *L)
{
    return *(sandbox **)lua_getextraspace(L);
}


void *sandbox_user(lua_State *L)
{
    return sandbox_of(L)->user;
}


lua_State *sandbox_lua(sandbox *s)
{
    return s->L;
}


static double cpu_now(void)
{
    struct timespec t;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t))
        return 0;
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}


/* ---- locations --------------------------------------------------------- */

/* The registered name of the chunk whose source is src (NULL if none). */
static const char *chunk_name(const sandbox *s, const char *src)
{
    for (int i = 0; i < s->n_chunks; i++)
        if (strcmp(src, s->chunks[i]) == 0)
            return s->chunks[i];
    return NULL;
}


/* Reads the call stack only (lua_getstack, lua_getinfo "Sl" allocate
 * nothing), so the allocator may call it too. */
void sandbox_where(lua_State *L, sandbox_loc *inner, sandbox_loc *user)
{
    sandbox *s = sandbox_of(L);
    lua_Debug ar;
    int found = 0;
    *inner = *user = (sandbox_loc){ s->user_chunk, 0 };
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0)
            continue;
        const char *src = ar.source[0] == '@' ? ar.source + 1 : ar.source;
        const char *name = chunk_name(s, src);
        if (!name)
            name = s->user_chunk;
        if (!found) {
            *inner = (sandbox_loc){ name, ar.currentline };
            found = 1;
        }
        if (name == s->user_chunk) {
            *user = (sandbox_loc){ name, ar.currentline };
            return;
        }
    }
    *user = *inner;
}


static int verror(lua_State *L, const char *fmt, va_list ap)
{
    sandbox_loc inner, user;
    sandbox_where(L, &inner, &user);
    char msg[900];
    vsnprintf(msg, sizeof msg, fmt, ap);
    lua_pushfstring(L, "%s:%d: error: %s", user.file, user.line, msg);
    return lua_error(L);
}


int sandbox_error(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(L, fmt, ap);
    va_end(ap);
    return 0;
}


/* ---- budgets ----------------------------------------------------------- */

static void budget_hook(lua_State *L, lua_Debug *ar);

/* From now on every instruction fails (the hook at every one), so a pcall
 * that catches the error cannot keep the model running.  Safe anywhere,
 * the allocator included. */
static void spend_all(sandbox *s)
{
    if (s->budget >= 0)
        s->budget = -1;
    if (s->L)
        lua_sethook(s->L, budget_hook, LUA_MASKCOUNT, 1);
}


static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    sandbox *s = sandbox_of(L);
    s->budget -= SANDBOX_HOOK_EVERY;
    if (!s->out_of_time && cpu_now() - s->cpu_start > s->cpu_limit) {
        s->out_of_time = 1;
        spend_all(s);
    }
    if (s->budget < 0) {
        spend_all(s);
        if (s->out_of_time) {
            char msg[100];
            snprintf(msg, sizeof msg, "the model ran past its CPU time limit "
                     "(%.3g s)", s->cpu_limit);
            luaL_error(L, "%s", msg);
        }
        luaL_error(L, "the model ran past its instruction budget (an endless "
                      "loop?)");
    }
}


void sandbox_charge(lua_State *L, const char *what, double steps)
{
    sandbox *s = sandbox_of(L);
    if (!(steps <= (double)s->budget)) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s could take up to %.3g steps, more than "
                 "is left of the model's instruction budget (%lld)", what,
                 steps, s->budget > 0 ? s->budget : 0LL);
        luaL_error(L, "%s", msg);
    }
    s->budget -= (long long)steps;
}


/* Every block the state allocates counts against the memory limit, and
 * its bytes against the budget (making n bytes is O(n) work: `..`,
 * string.upper, table.concat, the collector that follows).  A refused
 * allocation makes Lua collect everything and try again, work in the size
 * of the heap: charged too.  One string and one other block are capped, so
 * the work a single VM instruction does on one stays small. */
static int refuse(sandbox *s, const char *why)
{
    snprintf(s->mem_why, sizeof s->mem_why, "%s", why);
    s->mem_line = 0;
    if (s->L) {
        sandbox_loc inner, user;
        sandbox_where(s->L, &inner, &user);
        s->mem_line = user.line;
    }
    s->budget -= (long long)(s->mem_used / SANDBOX_BYTES_PER_STEP);
    if (s->budget < 0)
        spend_all(s);
    return 0;
}


static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    sandbox *s = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        s->mem_used -= old;
        free(ptr);
        return NULL;
    }
    char why[160];
    if (!ptr && osize == LUA_TSTRING &&
        nsize > SANDBOX_MAX_STRING + 64) {  /* + the string's header */
        snprintf(why, sizeof why, "a string of %zu bytes is longer than the "
                 "limit of %zu", nsize, SANDBOX_MAX_STRING);
        return refuse(s, why), NULL;
    }
    if (nsize > SANDBOX_MAX_BLOCK) {
        snprintf(why, sizeof why, "a block of %zu bytes (a table, a buffer "
                 "or the stack) is larger than the limit of %zu", nsize,
                 SANDBOX_MAX_BLOCK);
        return refuse(s, why), NULL;
    }
    if (nsize > old && nsize - old > s->mem_limit - s->mem_used) {
        snprintf(why, sizeof why, "its limit is %zu bytes", s->mem_limit);
        return refuse(s, why), NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    s->mem_used = s->mem_used - old + nsize;
    if (nsize > old) {
        s->budget -= (long long)((nsize - old) / SANDBOX_BYTES_PER_STEP);
        if (s->budget < 0)
            spend_all(s);
    }
    return p;
}


void sandbox_reserve(lua_State *L, size_t bytes)
{
    sandbox *s = sandbox_of(L);
    if (bytes > s->reserved && bytes - s->reserved > s->mem_limit - s->mem_used)
        sandbox_error(L, "the model ran out of memory (its limit is %zu "
                      "bytes; the graph it declared would take %zu of them)",
                      s->mem_limit, bytes);
    s->mem_used = s->mem_used - s->reserved + bytes;
    s->reserved = bytes;
}


const char *sandbox_check_name(lua_State *L, int arg, const char *what)
{
    size_t len;
    const char *name = luaL_checklstring(L, arg, &len);
    if (len > SANDBOX_MAX_NAME)
        sandbox_error(L, "%s: a name of %zu bytes is longer than the limit of "
                      "%d", what, len, SANDBOX_MAX_NAME);
    if (strlen(name) != len)
        sandbox_error(L, "%s: a name may not contain a NUL byte", what);
    return name;
}

/* ---- C loops the hook cannot see --------------------------------------- */

/* The count hook runs between VM instructions, never inside a C function,
 * and a few library functions loop in C for as long as their arguments
 * say: a pattern that backtracks (string.find(("a"):rep(3000),
 * ".-.-.-.-b") runs for years), string.rep of an empty string, table.move
 * of a huge range, table.insert/remove under a __len that returns 1e15.
 * The sandbox charges that work to the instruction budget up front, one
 * step as one instruction: each of those functions is wrapped, the wrapper
 * works out a bound on the steps the call can take from its arguments, and
 * refuses the call (a catchable error; nothing is spent) when the bound is
 * more than the budget has left, else spends it and calls the original.
 *
 * The bound for a pattern over an n-byte subject: every quantified item
 * (*, +, -) that has more pattern after it, every %b and every back-
 * reference %1-%9 may try n + 1 extents for each try of the items before
 * it, every ? two, and a search tries up to n + 1 start positions (one when
 * anchored with ^); each try costs at most the pattern's length:
 *     steps = (plen + 1) * 2^q * starts * (n + 1)^k + n
 * A quantified item at the very end (after it only ')') never backtracks:
 * once reached it matches and the search moves past what it took, so it
 * adds the n.  Ordinary patterns stay cheap (s:gsub("%s+", " ") over 10 KB
 * is ~3e4 steps, s:match("^(%w+)=(.*)$") over 100 bytes ~1e5); patterns
 * that can backtrack over long strings are refused before they start.
 * table.insert/remove call __len (a Lua function that could answer
 * differently twice), so they are reimplemented here charging each step.
 * The same holds for table.concat, table.unpack, table.sort, select,
 * string.byte/upper/lower/reverse/format/char/pack/unpack and the utf8
 * functions that loop: each is charged its worst case. */

/* The guarded original: upvalue 1 of the running guard. */
static int call_original(lua_State *L)
{
    return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

/* Where the single-character class at p ends (lstrlib's classEnd), never
 * past end. */
static const char *pattern_class_end(const char *p, const char *end)
{
    if (p >= end)
        return end;
    if (*p == '%')
        return end - p > 2 ? p + 2 : end;
    if (*p++ != '[')
        return p;
    if (p < end && *p == '^')
        p++;
    do {  /* the first character is in the set even if it is ']' */
        if (p >= end)
            return end;
        if (*p++ == '%' && p < end)
            p++;
    } while (p < end && *p != ']');
    return p < end ? p + 1 : end;
}


static double pattern_steps(const char *p, size_t plen, size_t n,
                            int anchor, int plain)
{
    const char *end = p + plen;
    double starts = (double)n + 1;
    int k = 0, q = 0;
    if (plain)
        p = end;
    if (anchor && p < end && *p == '^') {
        starts = 1;
        p++;
    }
    while (p < end) {
        if (*p == '(' || *p == ')') {
            p++;
        } else if (*p == '%' && end - p > 1 &&
                   (p[1] == 'b' || (p[1] >= '0' && p[1] <= '9'))) {
            size_t step = p[1] == 'b' ? 4 : 2;  /* %bxy or %1 */
            k++;  /* %b scans, %1 compares: up to n per try */
            p += (size_t)(end - p) < step ? (size_t)(end - p) : step;
        } else if (*p == '%' && end - p > 1 && p[1] == 'f') {
            p = pattern_class_end(p + 2, end);
        } else {
            const char *e = pattern_class_end(p, end);
            int quant = e < end ? *e : 0;
            p = e;
            if (quant == '*' || quant == '+' || quant == '-') {
                const char *rest = ++p;
                while (rest < end && *rest == ')')
                    rest++;
                k += rest < end;
            } else if (quant == '?') {
                q++;
                p++;
            }
        }
    }
    return ((double)plen + 1) * pow(2, q) * starts * pow((double)n + 1, k)
         + (double)n;
}


/* The string at arg (after guards check it), or its length 0. */
static size_t arg_len(lua_State *L, int arg)
{
    size_t n = 0;
    if (lua_type(L, arg) == LUA_TSTRING)
        lua_tolstring(L, arg, &n);
    return n;
}


/* string.find, match, gmatch and gsub: the original is upvalue 1. */
static int guarded_pattern(lua_State *L, const char *what, int anchor)
{
    size_t n, plen;
    luaL_checklstring(L, 1, &n);
    const char *p = luaL_checklstring(L, 2, &plen);
    int plain = strcmp(what, "string.find") == 0 && lua_toboolean(L, 4);
    double steps = pattern_steps(p, plen, n, anchor, plain);
    /* gsub expands a replacement string at every match, even an empty
     * match: up to n + 1 of them, each one step per escape (%0) in it. */
    if (strcmp(what, "string.gsub") == 0 && lua_type(L, 3) == LUA_TSTRING) {
        double matches = (double)n + 1;
        if (lua_isinteger(L, 4) && (double)lua_tointeger(L, 4) < matches)
            matches = lua_tointeger(L, 4) > 0 ? (double)lua_tointeger(L, 4)
                                               : 0;
        steps += matches * (1 + (double)arg_len(L, 3) / 2);
    }
    sandbox_charge(L, what, steps);
    return call_original(L);
}

static int l_find(lua_State *L)   { return guarded_pattern(L, "string.find", 1); }
static int l_match(lua_State *L)  { return guarded_pattern(L, "string.match", 1); }
/* gmatch does not anchor: a leading ^ is an ordinary character there. */
static int l_gmatch(lua_State *L) { return guarded_pattern(L, "string.gmatch", 0); }
static int l_gsub(lua_State *L)   { return guarded_pattern(L, "string.gsub", 1); }


/* string.rep loops n times even when each copy is empty. */
static int l_rep(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 2);
    sandbox_charge(L, "string.rep", n > 0 ? (double)n : 0);
    return call_original(L);
}


/* table.move(a1, f, e, t [, a2]) moves e - f + 1 elements. */
static int l_move(lua_State *L)
{
    lua_Integer first = luaL_checkinteger(L, 2), last = luaL_checkinteger(L, 3);
    sandbox_charge(L, "table.move", last >= first ? (double)last - (double)first + 1
                                          : 0);
    return call_original(L);
}


/* ltablib.c's tinsert and tremove (Lua 5.4), each step charged. */
static lua_Integer table_len(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    return luaL_len(L, 1);
}

static int l_insert(lua_State *L)
{
    lua_Integer e = table_len(L), pos;
    e = (lua_Integer)((lua_Unsigned)e + 1u);  /* first empty element */
    switch (lua_gettop(L)) {
    case 2:
        pos = e;
        break;
    case 3:
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2,
                      "position out of bounds");
        sandbox_charge(L, "table.insert", (double)e - (double)pos);
        for (lua_Integer i = e; i > pos; i--) {
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
        break;
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

static int l_remove(lua_State *L)
{
    lua_Integer size = table_len(L);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2,
                      "position out of bounds");
    sandbox_charge(L, "table.remove", pos < size ? (double)size - (double)pos : 0);
    lua_geti(L, 1, pos);
    for (; pos < size; pos++) {
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}


/* Elements [i, j] of a range, as steps (0 when empty). */
static double range_steps(lua_Integer i, lua_Integer j)
{
    return j >= i ? (double)j - (double)i + 1 : 0;
}


/* Bytes a pass over them costs, as steps. */
static double byte_steps(size_t n)
{
    return 1 + (double)n / 8;
}


/* table.concat(list [, sep [, i [, j]]]) and table.unpack(list [, i [, j]])
 * loop from i to j (j defaults to #list: a __len asked once here and
 * passed on, so it cannot answer differently to the original). */
static int guarded_range(lua_State *L, const char *what, int i_arg)
{
    luaL_checkany(L, 1);
    lua_Integer i = luaL_optinteger(L, i_arg, 1);
    lua_Integer j = lua_isnoneornil(L, i_arg + 1) ? luaL_len(L, 1)
                                                  : luaL_checkinteger(L,
                                                                      i_arg + 1);
    sandbox_charge(L, what, range_steps(i, j));
    lua_settop(L, i_arg + 1);
    lua_pushinteger(L, j);
    lua_replace(L, i_arg + 1);
    return call_original(L);
}

static int l_concat(lua_State *L) { return guarded_range(L, "table.concat", 3); }
static int l_unpack(lua_State *L) { return guarded_range(L, "table.unpack", 2); }


/* table.sort: n log n comparisons, each as long as the longest string
 * compared.  A __len could answer the original differently: refused. */
static int l_sort(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (luaL_getmetafield(L, 1, "__len") != LUA_TNIL)
        return sandbox_error(L, "table.sort: a table with a __len "
                             "metamethod cannot be sorted in a model file");
    lua_Unsigned n = lua_rawlen(L, 1);
    sandbox_charge(L, "table.sort", (double)n);  /* the scan below */
    size_t longest = 0;
    for (lua_Unsigned k = 1; k <= n; k++) {
        if (lua_rawgeti(L, 1, (lua_Integer)k) == LUA_TSTRING &&
            lua_rawlen(L, -1) > longest)
            longest = lua_rawlen(L, -1);
        lua_pop(L, 1);
    }
    sandbox_charge(L, "table.sort", (double)n * (log2((double)n + 1) + 1) *
                   (1 + (double)longest));
    return call_original(L);
}


/* select(n, ...) hands back up to all its arguments. */
static int l_select(lua_State *L)
{
    sandbox_charge(L, "select", lua_gettop(L));
    return call_original(L);
}


/* string.byte(s [, i [, j]]) and utf8.codepoint push j - i + 1 values. */
static int guarded_positions(lua_State *L, const char *what)
{
    size_t n;
    luaL_checklstring(L, 1, &n);
    lua_Integer len = (lua_Integer)n;
    lua_Integer i = luaL_optinteger(L, 2, 1);
    lua_Integer j = luaL_optinteger(L, 3, i);
    if (i < 0)
        i = i < -len ? 1 : len + i + 1;
    if (j < 0)
        j = j < -len ? 0 : len + j + 1;
    if (i < 1)
        i = 1;
    if (j > len)
        j = len;
    sandbox_charge(L, what, range_steps(i, j));
    return call_original(L);
}

static int l_byte(lua_State *L) { return guarded_positions(L, "string.byte"); }
static int l_codepoint(lua_State *L)
{
    return guarded_positions(L, "utf8.codepoint");
}


/* One pass over the string argument 1: upper, lower, reverse, utf8.len,
 * utf8.offset; a pass over every argument: format, char, utf8.char, pack,
 * unpack, packsize. */
static int guarded_pass(lua_State *L, const char *what, int all_args)
{
    double steps = byte_steps(arg_len(L, 1));
    for (int i = 2; all_args && i <= lua_gettop(L); i++)
        steps += byte_steps(arg_len(L, i));
    sandbox_charge(L, what, steps);
    return call_original(L);
}

static int l_upper(lua_State *L)    { return guarded_pass(L, "string.upper", 0); }
static int l_lower(lua_State *L)    { return guarded_pass(L, "string.lower", 0); }
static int l_reverse(lua_State *L)  { return guarded_pass(L, "string.reverse", 0); }
static int l_format(lua_State *L)   { return guarded_pass(L, "string.format", 1); }
static int l_char(lua_State *L)     { return guarded_pass(L, "string.char", 1); }
static int l_pack(lua_State *L)     { return guarded_pass(L, "string.pack", 1); }
static int l_unpackstr(lua_State *L) { return guarded_pass(L, "string.unpack", 1); }
static int l_packsize(lua_State *L) { return guarded_pass(L, "string.packsize", 1); }
static int l_utf8char(lua_State *L) { return guarded_pass(L, "utf8.char", 1); }
static int l_utf8len(lua_State *L)  { return guarded_pass(L, "utf8.len", 0); }
static int l_offset(lua_State *L)   { return guarded_pass(L, "utf8.offset", 0); }


/* Replace lib[name] by fn, which finds the original as upvalue 1. */
static void guard(lua_State *L, const char *lib, const char *name,
                  lua_CFunction fn)
{
    if (lib)
        lua_getglobal(L, lib);
    else
        lua_pushglobaltable(L);
    if (lua_getfield(L, -1, name) != LUA_TFUNCTION)
        luaL_error(L, "%s.%s is missing", lib ? lib : "_G", name);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}


/* ---- metatables, handlers, print --------------------------------------- */

/* Set by setmetatable in each private copy it makes (a light userdata no
 * model can forge or reach). */
static const char copy_mark = 0;

/* setmetatable(t, mt): a finalizer (__gc) would run with the hook off, on
 * any allocation and after the budget is spent; __mode makes the
 * collector's work quadratic (ephemerons); __close runs code on scope exit
 * and errors.  None is allowed.  Since Lua reads __mode (and __close) from
 * the metatable at the time it needs them, t gets a private copy of mt that
 * the model cannot reach or change later: getmetatable(t) still answers mt
 * (the copy's __metatable), so identity and class idioms keep working; only
 * later changes to mt are not seen by t. */
static int l_setmetatable(lua_State *L)
{
    static const char *const forbidden[] = { "__gc", "__mode", "__close" };
    luaL_checktype(L, 1, LUA_TTABLE);
    int t = lua_type(L, 2);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    lua_settop(L, 2);
    if (lua_getmetatable(L, 1)) {  /* 3: protected, unless by our copy */
        int ours = lua_rawgetp(L, 3, &copy_mark) != LUA_TNIL;
        lua_pushliteral(L, "__metatable");
        int protect = lua_rawget(L, 3) != LUA_TNIL && !ours;
        if (protect)
            return luaL_error(L, "cannot change a protected metatable");
        lua_settop(L, 2);
    }
    if (t == LUA_TTABLE) {
        for (size_t i = 0; i < sizeof forbidden / sizeof *forbidden; i++) {
            lua_pushstring(L, forbidden[i]);
            if (lua_rawget(L, 2) != LUA_TNIL)
                return sandbox_error(L, "setmetatable: %s is not allowed in a "
                                     "model file", forbidden[i]);
            lua_pop(L, 1);
        }
        lua_newtable(L);  /* 3: the copy */
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            sandbox_charge(L, "setmetatable", 1);
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, 3);
        }
        lua_pushliteral(L, "__metatable");
        if (lua_rawget(L, 3) == LUA_TNIL) {
            lua_pushliteral(L, "__metatable");
            lua_pushvalue(L, 2);
            lua_rawset(L, 3);
            lua_pushboolean(L, 1);
            lua_rawsetp(L, 3, &copy_mark);
        }
        lua_pop(L, 1);
        lua_replace(L, 2);
    }
    lua_setmetatable(L, 1);
    return 1;
}


/* xpcall's handler runs where the error was raised: inside the budget hook
 * (where the hook is off) when the budget ran out.  It runs only while the
 * budget lasts. */
static int guarded_handler(lua_State *L)
{
    if (sandbox_of(L)->budget < 0)
        return 1;  /* the message as it is */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int l_xpcall(lua_State *L)
{
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, guarded_handler, 1);
    lua_replace(L, 2);
    return call_original(L);
}


static int l_print(lua_State *L)
{
    int n = lua_gettop(L);
    FILE *out = sandbox_of(L)->print;
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        sandbox_charge(L, "print", byte_steps(len));
        fprintf(out, "%s%s", i > 1 ? "\t" : "", s);
    }
    fputc('\n', out);
    return 0;
}


/* ---- opening --------------------------------------------------------- */

/* Globals removed after opening the safe libraries: they reach files,
 * bytecode or the collector. */
static const char *const unsafe_globals[] = {
    "dofile", "loadfile", "load", "require", "collectgarbage", "print",
    NULL
};

static const struct {
    const char *lib, *name;
    lua_CFunction fn;
} guards[] = {
    { LUA_STRLIBNAME, "find", l_find },       { LUA_STRLIBNAME, "match", l_match },
    { LUA_STRLIBNAME, "gmatch", l_gmatch },   { LUA_STRLIBNAME, "gsub", l_gsub },
    { LUA_STRLIBNAME, "rep", l_rep },         { LUA_STRLIBNAME, "byte", l_byte },
    { LUA_STRLIBNAME, "upper", l_upper },     { LUA_STRLIBNAME, "lower", l_lower },
    { LUA_STRLIBNAME, "reverse", l_reverse }, { LUA_STRLIBNAME, "format", l_format },
    { LUA_STRLIBNAME, "char", l_char },       { LUA_STRLIBNAME, "pack", l_pack },
    { LUA_STRLIBNAME, "unpack", l_unpackstr },
    { LUA_STRLIBNAME, "packsize", l_packsize },
    { LUA_TABLIBNAME, "move", l_move },       { LUA_TABLIBNAME, "insert", l_insert },
    { LUA_TABLIBNAME, "remove", l_remove },   { LUA_TABLIBNAME, "concat", l_concat },
    { LUA_TABLIBNAME, "unpack", l_unpack },   { LUA_TABLIBNAME, "sort", l_sort },
    { LUA_UTF8LIBNAME, "char", l_utf8char },  { LUA_UTF8LIBNAME, "len", l_utf8len },
    { LUA_UTF8LIBNAME, "offset", l_offset },
    { LUA_UTF8LIBNAME, "codepoint", l_codepoint },
    { NULL, "select", l_select },             { NULL, "xpcall", l_xpcall },
};


static int open_libraries(lua_State *L)
{
    static const luaL_Reg libs[] = {
        { LUA_GNAME, luaopen_base },        { LUA_TABLIBNAME, luaopen_table },
        { LUA_STRLIBNAME, luaopen_string }, { LUA_MATHLIBNAME, luaopen_math },
        { LUA_UTF8LIBNAME, luaopen_utf8 },  { NULL, NULL }
    };
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    for (int i = 0; unsafe_globals[i]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, unsafe_globals[i]);
    }
    /* string.dump makes bytecode; the string metatable reaches the same
     * table, so remove it there. */
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_print);
    lua_setglobal(L, "print");
    lua_pushcfunction(L, l_setmetatable);
    lua_setglobal(L, "setmetatable");
    for (size_t i = 0; i < sizeof guards / sizeof guards[0]; i++)
        guard(L, guards[i].lib, guards[i].name, guards[i].fn);
    return 0;
}


int sandbox_protect(sandbox *s, int (*fn)(lua_State *L), dsc_err *err)
{
    lua_pushcfunction(s->L, fn);
    int status = lua_pcall(s->L, 0, 0, 0);
    if (status == LUA_OK)
        return 0;
    const char *m = lua_tostring(s->L, -1);
    err_set(err, "%s: error: cannot start Lua: %s", s->user_chunk,
            status == LUA_ERRMEM ? "not enough memory" : m ? m : "error");
    lua_pop(s->L, 1);
    return -1;
}


sandbox *sandbox_new(const char *user_chunk, const sandbox_limits *limits,
                     void *user, dsc_err *err)
{
    sandbox_limits lim = limits ? *limits : sandbox_default_limits();
    sandbox *s = calloc(1, sizeof *s);
    if (!s) {
        err_set(err, "%s: error: out of memory", user_chunk);
        return NULL;
    }
    s->user = user;
    s->user_chunk = s->chunks[s->n_chunks++] = user_chunk;
    s->budget = lim.instructions;
    s->mem_limit = lim.memory_bytes;
    s->print = lim.print ? lim.print : stderr;
    s->cpu_limit = lim.cpu_seconds > 0 ? lim.cpu_seconds
                                       : DEFAULT_CPU_SECONDS;
    s->cpu_start = cpu_now();
    lua_State *L = lua_newstate(capped_alloc, s);
    if (!L) {
        err_set(err, "%s: error: cannot start Lua", user_chunk);
        free(s);
        return NULL;
    }
    *(sandbox **)lua_getextraspace(L) = s;
    s->L = L;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, SANDBOX_HOOK_EVERY);
    /* Protected: with a small memory limit, opening the libraries can fail,
     * and an unprotected error would abort the process. */
    if (sandbox_protect(s, open_libraries, err)) {
        sandbox_free(s);
        return NULL;
    }
    return s;
}


void sandbox_free(sandbox *s)
{
    if (!s)
        return;
    if (s->L)
        lua_close(s->L);
    free(s);
}


/* ---- running chunks ---------------------------------------------------- */

/* Message handler: every error becomes "USER:LINE: error: ...", at the
 * user's line even when raised inside another chunk. */
static int message_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = "(error object is not a string)";
    if (strstr(msg, ": error: ")) {
        lua_pushstring(L, msg);
        return 1;
    }
    /* Strip Lua's "chunk:line: " prefix; the stack says where. */
    const char *rest = msg, *colon = strchr(msg, ':');
    if (colon && isdigit((unsigned char)colon[1])) {
        const char *p = colon + 1;
        while (isdigit((unsigned char)*p))
            p++;
        if (p[0] == ':' && p[1] == ' ')
            rest = p + 2;
    }
    sandbox_loc inner, user;
    sandbox_where(L, &inner, &user);
    if (inner.file == user.file || inner.line == 0)
        lua_pushfstring(L, "%s:%d: error: %s", user.file, user.line, rest);
    else
        lua_pushfstring(L, "%s:%d: error: %s (in %s:%d)", user.file,
                        user.line, rest, inner.file, inner.line);
    return 1;
}


/* A syntax error: Lua's message names the chunk, maybe shortened; name the
 * file fully and say "error". */
static void syntax_error(const sandbox *s, const char *name, const char *msg,
                         dsc_err *err)
{
    const char *colon = strchr(msg, ':');
    const char *p = colon ? colon + 1 : NULL;
    int line = 0;
    while (p && isdigit((unsigned char)*p))
        line = line * 10 + (*p++ - '0');
    (void)s;
    if (p && line > 0 && p[0] == ':' && p[1] == ' ')
        err_set(err, "%s:%d: error: %s", name, line, p + 2);
    else
        err_set(err, "%s: error: %s", name, msg);
}


/* Why the last thing run failed, when Lua gave no message of its own: a
 * memory error (no message handler runs for it). */
static void memory_error(const sandbox *s, dsc_err *err)
{
    const char *why = s->mem_why[0] ? s->mem_why : "no room left";
    if (s->mem_line > 0)
        err_set(err, "%s:%d: error: the model ran out of memory (%s)",
                s->user_chunk, s->mem_line, why);
    else
        err_set(err, "%s: error: the model ran out of memory (%s)",
                s->user_chunk, why);
}


int sandbox_run(sandbox *s, const char *text, size_t len, const char *name,
                int nresults, dsc_err *err)
{
    lua_State *L = s->L;
    if (!chunk_name(s, name)) {
        if (s->n_chunks == MAX_CHUNKS)
            return err_set(err, "%s: error: too many chunks", name);
        s->chunks[s->n_chunks++] = name;
    }
    char chunk[1100];
    snprintf(chunk, sizeof chunk, "@%s", name);
    lua_pushcfunction(L, message_handler);
    int status = luaL_loadbufferx(L, text, len, chunk, "t");
    if (status != LUA_OK) {
        if (status == LUA_ERRMEM)
            memory_error(s, err);
        else
            syntax_error(s, name, lua_tostring(L, -1), err);
        lua_pop(L, 2);
        return -1;
    }
    status = lua_pcall(L, 0, nresults, -2);
    if (status != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        if (status == LUA_ERRMEM)
            memory_error(s, err);
        else
            err_set(err, "%s", m ? m : "error");
        lua_pop(L, 2);
        return -1;
    }
    lua_remove(L, -1 - nresults);  /* the handler */
    return 0;
}
