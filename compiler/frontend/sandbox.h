/* sandbox.h — a Lua 5.4 state that untrusted text can run in.
 *
 * The state has the base, table, string, math and utf8 libraries, without
 * anything that reaches files, bytecode, the collector or finalizers (no
 * os, io, require, dofile, loadfile, load, string.dump, debug, coroutine,
 * collectgarbage; setmetatable refuses __gc, __close and __mode and takes
 * a private copy of the metatable).  Its work and memory are bounded:
 *
 *  - an instruction budget, counted by a hook every SANDBOX_HOOK_EVERY VM
 *    instructions; library functions that loop in C are charged their
 *    worst case before they run, and every byte allocated is charged one
 *    step per SANDBOX_BYTES_PER_STEP bytes;
 *  - a CPU-time limit, checked by the same hook, for the work one VM
 *    instruction does that nothing can charge ahead (comparing two long
 *    strings, copying a long argument list);
 *  - a memory limit over everything the state allocates plus what C code
 *    keeps on its behalf (sandbox_reserve), and size caps for one string
 *    and for any one other block (a table part, the Lua stack).
 *
 * Once the budget or the time is spent every further instruction fails,
 * so pcall cannot keep a model running, and no model code runs after it
 * (xpcall's handler is skipped).  Errors come out as one line,
 * "FILE:LINE: error: ...", at the innermost line of the user's chunk.
 *
 * The sandbox knows nothing of what the text builds: the caller adds its
 * own functions and finds its context with sandbox_user. */
#ifndef DSC_SANDBOX_H
#define DSC_SANDBOX_H

#include <stddef.h>
#include <stdio.h>

#include "util/diag.h"

typedef struct lua_State lua_State;

#define SANDBOX_HOOK_EVERY      1000
#define SANDBOX_BYTES_PER_STEP  64
#define SANDBOX_MAX_STRING      ((size_t)256 << 10)  /* bytes in one string */
#define SANDBOX_MAX_BLOCK       ((size_t)1 << 20)    /* any other block */
#define SANDBOX_MAX_NAME        256  /* names and keys C code keeps */

typedef struct sandbox_limits {
    long long instructions;  /* VM instructions (and charged steps) */
    size_t memory_bytes;     /* bytes the state and its C side may hold */
    double cpu_seconds;      /* thread CPU time; 0 means the default */
    FILE *print;             /* where print() writes; NULL: stderr */
} sandbox_limits;

/* Generous for any real model, small enough to stop a runaway loop in
 * about a second and a memory bomb well before trouble. */
sandbox_limits sandbox_default_limits(void);

/* A place in a chunk; file is the name the chunk was run under. */
typedef struct sandbox_loc {
    const char *file;
    int line;
} sandbox_loc;

typedef struct sandbox sandbox;

/* A fresh state.  user_chunk names the untrusted chunk errors are placed
 * in; it and every chunk name given to sandbox_run must outlive the
 * sandbox.  user is returned by sandbox_user.  NULL with err set. */
sandbox *sandbox_new(const char *user_chunk, const sandbox_limits *limits,
                     void *user, dsc_err *err);
void sandbox_free(sandbox *s);
lua_State *sandbox_lua(sandbox *s);
void *sandbox_user(lua_State *L);

/* Call fn() in protected mode (to register the caller's functions). */
int sandbox_protect(sandbox *s, int (*fn)(lua_State *L), dsc_err *err);

/* Run text as chunk name (text only, never bytecode), leaving nresults
 * (0 or 1) results on the stack; -1 with err set to one located line. */
int sandbox_run(sandbox *s, const char *text, size_t len, const char *name,
                int nresults, dsc_err *err);

/* The innermost line being run, and the innermost in the user chunk (the
 * innermost line when none is). */
void sandbox_where(lua_State *L, sandbox_loc *inner, sandbox_loc *user);

/* Raise "USER:LINE: error: <message>" (never returns). */
int sandbox_error(lua_State *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Charge steps of C work to the budget before doing it; a catchable error
 * naming what when they are more than is left. */
void sandbox_charge(lua_State *L, const char *what, double steps);

/* Count bytes that C code keeps for the state (replacing the previous
 * count) against the memory limit; an error when they do not fit. */
void sandbox_reserve(lua_State *L, size_t bytes);

/* A string argument of at most SANDBOX_MAX_NAME bytes and no NUL, for a
 * name C code keeps: an error naming what when it is not. */
const char *sandbox_check_name(lua_State *L, int arg, const char *what);

#endif
