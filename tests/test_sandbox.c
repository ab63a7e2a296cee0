/* test_sandbox.c — hostile model files against the sandbox
 * (compiler/frontend/sandbox.c) and the frontend's builder, in process and
 * through the dsc binary ($DSC, default build/dsc).
 *
 * Each tests/hostile/NAME.lua starts with "-- expect: FRAGMENT" and marks
 * with "-- error here" the line (or lines, in a loop) the error must name;
 * optional "-- memory: BYTES" and "-- cpu: SECONDS" lines set its memory
 * and CPU limits in process (else 16 MB, and 60 s: far above what the
 * guards allow, so the guard under test, not the CPU limit, must stop it).
 * Every one must be refused with one line "FILE:LINE: error: ..." within
 * 10 s of CPU.  Run from the repository root (as `make test` does). */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "driver/build.h"
#include "dsc_runtime.h"
#include "frontend/frontend.h"
#include "frontend/sandbox.h"
#include "io/fileio.h"

#define HOSTILE "tests/hostile"
#define MODEL   "models/test_model.lua"  /* a name only */
#define ENCODER "models/seed_encoder.lua"
#define MAX_CPU_SECONDS 10.0

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}


static const char *dsc(void)
{
    const char *path = getenv("DSC");
    return path && *path ? path : "build/dsc";
}


typedef struct hostile {
    char path[512];
    char *text;
    size_t len;
    char expect[200];
    int lines[16];   /* the marked lines */
    int n_lines;
    size_t memory;   /* 0: the test's default */
    double cpu;      /* 0: the test's default */
} hostile;


static void read_hostile(const char *name, hostile *h)
{
    memset(h, 0, sizeof *h);
    snprintf(h->path, sizeof h->path, "%s/%s", HOSTILE, name);
    dsc_err err;
    h->text = file_read_all(h->path, &h->len, &err);
    cr_assert_not_null(h->text, "%s", err.msg);
    const char *e = strstr(h->text, "-- expect: ");
    cr_assert_not_null(e, "%s: no '-- expect: ' line", h->path);
    e += strlen("-- expect: ");
    size_t n = strcspn(e, "\n");
    cr_assert_lt(n, sizeof h->expect);
    memcpy(h->expect, e, n);
    const char *mem = strstr(h->text, "-- memory: ");
    if (mem)
        h->memory = strtoull(mem + strlen("-- memory: "), NULL, 10);
    const char *cpu = strstr(h->text, "-- cpu: ");
    if (cpu)
        h->cpu = strtod(cpu + strlen("-- cpu: "), NULL);
    int line = 1;
    for (const char *p = h->text; *p; line++) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char buf[1024];
        snprintf(buf, sizeof buf, "%.*s", (int)(len < 1000 ? len : 1000), p);
        if (strstr(buf, "-- error here") && h->n_lines < 16)
            h->lines[h->n_lines++] = line;
        if (!end)
            break;
        p = end + 1;
    }
    cr_assert_gt(h->n_lines, 0, "%s: no '-- error here' line", h->path);
}


/* msg is "h->path:LINE: error: ..." on one line, LINE one of the marked. */
static void check_located(const hostile *h, const char *msg)
{
    size_t n = strlen(h->path);
    cr_assert(strncmp(msg, h->path, n) == 0 && msg[n] == ':',
              "%s: message does not name the file: %s", h->path, msg);
    int line = atoi(msg + n + 1);
    int marked = 0;
    for (int i = 0; i < h->n_lines; i++)
        marked |= line == h->lines[i];
    cr_assert(marked, "%s: error at line %d, not at a marked line: %s",
              h->path, line, msg);
    cr_assert(strstr(msg, ": error: "), "%s", msg);
    cr_assert(!strchr(msg, '\n'), "message is not one line: %s", msg);
}


/* The names of the hostile files, sorted; returns how many. */
static int list_hostile(char names[][256], int max)
{
    DIR *d = opendir(HOSTILE);
    cr_assert_not_null(d, "cannot open %s (run from the repository root)",
                       HOSTILE);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".lua") == 0)
            snprintf(names[n++], 256, "%s", e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, 256, (int (*)(const void *, const void *))strcmp);
    cr_assert_geq(n, 15, "hostile files missing");
    return n;
}


/* In process, with a small budget and a CPU limit far above it (so the
 * guard under test, not the CPU backstop, must stop each): refused with
 * the expected message at a marked line, within the CPU bound. */
Test(hostile, refused_in_process, .timeout = 120)
{
    char names[64][256];
    int n = list_hostile(names, 64);
    for (int i = 0; i < n; i++) {
        hostile h;
        read_hostile(names[i], &h);
        frontend_limits lim = { .instructions = 20000000,
                                .memory_bytes = h.memory ? h.memory
                                                         : (size_t)16 << 20,
                                .cpu_seconds = h.cpu ? h.cpu : 60 };
        dsc_err err;
        memset(err.msg, 0, sizeof err.msg);
        double t0 = cpu_now();
        model *m = frontend_load_string(h.path, h.text, h.len, NULL, 0, &lim,
                                        &err);
        double cpu = cpu_now() - t0;
        if (m) {
            model_free(m);
            cr_assert_fail("%s: loaded", h.path);
        }
        check_located(&h, err.msg);
        cr_assert(strstr(err.msg, h.expect), "%s: '%s' not in: %s", h.path,
                  h.expect, err.msg);
        cr_assert_lt(cpu, MAX_CPU_SECONDS, "%s: %.2f s of CPU", h.path, cpu);
        fprintf(stderr, "%s: %.3f s of CPU: %s\n", h.path, cpu, err.msg);
        free(h.text);
    }
}


/* Through dsc with its default limits: exit status 1 and the first line
 * of stderr names the file and a marked line. */
Test(hostile, dsc_exits_1_naming_the_line, .timeout = 600)
{
    char names[64][256];
    int n = list_hostile(names, 64);
    char dir[] = "/tmp/dsc_hostile_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    for (int i = 0; i < n; i++) {
        hostile h;
        read_hostile(names[i], &h);
        char cmd[2048], err_path[600];
        snprintf(err_path, sizeof err_path, "%s/stderr", dir);
        snprintf(cmd, sizeof cmd, "%s graph %s -o %s/out.dot 2>%s", dsc(),
                 h.path, dir, err_path);
        int status = system(cmd);
        cr_assert(WIFEXITED(status), "%s: dsc did not exit", h.path);
        cr_assert_eq(WEXITSTATUS(status), 1, "%s: exit status %d", h.path,
                     WEXITSTATUS(status));
        size_t len;
        dsc_err err;
        char *out = file_read_all(err_path, &len, &err);
        cr_assert_not_null(out, "%s", err.msg);
        char *nl = strchr(out, '\n');
        if (nl)
            *nl = '\0';
        check_located(&h, out);
        free(out);
        free(h.text);
    }
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    cr_assert_eq(system(rm), 0);
}


/* ---- inline cases --------------------------------------------------------- */

static model *load(const char *text, const frontend_define *defs, int n_defs,
                   const frontend_limits *lim, dsc_err *err)
{
    memset(err->msg, 0, sizeof err->msg);
    return frontend_load_string(MODEL, text, strlen(text), defs, n_defs, lim,
                                err);
}


static void expect_fail(const char *text, const frontend_define *defs,
                        int n_defs, const frontend_limits *lim,
                        const char *prefix, const char *frag)
{
    dsc_err err;
    model *m = load(text, defs, n_defs, lim, &err);
    if (m) {
        model_free(m);
        cr_assert_fail("loaded:\n%s", text);
    }
    cr_assert(strncmp(err.msg, prefix, strlen(prefix)) == 0,
              "'%s' does not start with '%s'", err.msg, prefix);
    cr_assert(strstr(err.msg, frag), "'%s' not in: %s", frag, err.msg);
}


/* Comparing two long strings is work inside one VM instruction that no
 * guard can charge ahead: the CPU limit stops it, soon after it is due. */
Test(sandbox, cpu_limit_stops_string_compares, .timeout = 60)
{
    frontend_limits lim = frontend_default_limits();
    lim.cpu_seconds = 0.5;
    double t0 = cpu_now();
    expect_fail("local a = (\"\\0\"):rep(250000)\n"
                "local b = (\"\\0\"):rep(250000)\n"
                "while true do local _ = a < b end\n",
                NULL, 0, &lim, MODEL ":3: error: ", "CPU time limit");
    double cpu = cpu_now() - t0;
    fprintf(stderr, "string compares stopped after %.2f s of CPU\n", cpu);
    cr_assert_lt(cpu, 0.5 + 3.0, "%.2f s", cpu);
}


/* dsc.config reads its table raw: an __index/__newindex pair that adds
 * keys when a -D is looked up (a heap overflow before) cannot run. */
Test(sandbox, config_reads_raw)
{
    static const char text[] =
        "local grow = function(t)\n"
        "  for i = 1, 200 do rawset(t, \"k\" .. i, i) end return 1 end\n"
        "local cfg = dsc.config(setmetatable({a = 1},\n"
        "  {__index = grow, __newindex = function(t, k, v) grow(t) end}))\n"
        "local x = dsc.input(\"x\", {cfg.a})\n"
        "dsc.output(\"y\", dsc.relu(x))\n";
    frontend_define unknown[] = { { .key = "b", .value = "2" } };
    expect_fail(text, unknown, 1, NULL, MODEL ":3: error: ",
                "unknown config key 'b' (this model's keys: a)");
    frontend_define known[] = { { .key = "a", .value = "3" } };
    dsc_err err;
    model *m = load(text, known, 1, NULL, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert_eq(m->n_config, 1);
    cr_assert_str_eq(m->config[0].value, "3");
    cr_assert_eq(m->graph->tensors[0].shape.dim[0], 3);
    model_free(m);
}


/* Names and keys the graph keeps are at most 256 bytes, at every place. */
Test(sandbox, name_lengths_capped)
{
    static const char *const fmts[] = {
        "local x = dsc.input(%s, {2})\ndsc.output(\"y\", dsc.relu(x))\n",
        "local x = dsc.input(\"x\", {2})\ndsc.output(%s, dsc.relu(x))\n",
        "local x = dsc.input(\"x\", {2})\nlocal w = dsc.weight(%s, {2})\n",
        "local c = dsc.config({[%s] = 1})\n",
    };
    char ok[300], text[1000];
    for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
        snprintf(ok, sizeof ok, "(\"n\"):rep(256)");
        snprintf(text, sizeof text, fmts[i], ok);
        dsc_err err;
        model *m = load(text, NULL, 0, NULL, &err);
        /* 256 bytes pass the name check (the model may fail later). */
        cr_assert(m || !strstr(err.msg, "longer than the limit"), "%s",
                  err.msg);
        model_free(m);
        snprintf(ok, sizeof ok, "(\"n\"):rep(257)");
        snprintf(text, sizeof text, fmts[i], ok);
        const char *line = i == 0 || i == 3 ? MODEL ":1: error: "
                                            : MODEL ":2: error: ";
        expect_fail(text, NULL, 0, NULL, line,
                    "a name of 257 bytes is longer than the limit of 256");
    }
}


/* The graph's bytes count against the Lua memory limit: a model that
 * would hold more than its limit in the graph is stopped. */
Test(sandbox, graph_bytes_count_against_memory)
{
    frontend_limits lim = frontend_default_limits();
    lim.memory_bytes = (size_t)2 << 20;
    expect_fail("local x = dsc.input(\"x\", {2})\n"
                "for i = 1, 1e9 do dsc.weight(\"w\" .. i, {2}) end\n",
                NULL, 0, &lim, MODEL ":2: error: ", "ran out of memory");
}


/* setmetatable hands out a private copy: identity, classes and
 * re-setting still work. */
Test(sandbox, metatables_still_work)
{
    dsc_err err;
    model *m = load(
        "local Class = {}\nClass.__index = Class\n"
        "function Class.new(n) return setmetatable({n = n}, Class) end\n"
        "function Class:twice() return 2 * self.n end\n"
        "local o = Class.new(3)\n"
        "assert(o:twice() == 6 and getmetatable(o) == Class)\n"
        "local V = {__add = function(a, b) return a.n + b.n end}\n"
        "assert(setmetatable({n = 1}, V) + setmetatable({n = 2}, V) == 3)\n"
        "setmetatable(o, nil)\nassert(getmetatable(o) == nil)\n"
        "local p = setmetatable({}, {__metatable = \"locked\"})\n"
        "assert(getmetatable(p) == \"locked\")\n"
        "assert(not pcall(setmetatable, p, {}))\n"
        "local x = dsc.input(\"x\", {o.n or 2})\n"
        "dsc.output(\"y\", dsc.relu(x))\n",
        NULL, 0, NULL, &err);
    cr_assert_not_null(m, "%s", err.msg);
    model_free(m);
}


/* What ordinary code does with the guarded functions still works. */
Test(sandbox, guarded_functions_work)
{
    dsc_err err;
    model *m = load(
        "local t = {5, 3, 9, 1}\ntable.sort(t)\n"
        "assert(table.concat(t, \",\") == \"1,3,5,9\")\n"
        "assert(select(\"#\", table.unpack(t)) == 4)\n"
        "assert(select(2, 10, 20, 30) == 20)\n"
        "assert((\"abc\"):upper() == \"ABC\" and (\"ABC\"):lower() == \"abc\")\n"
        "assert((\"abc\"):reverse() == \"cba\" and (\"abc\"):byte(-1) == 99)\n"
        "assert(select(\"#\", (\"abc\"):byte(1, -1)) == 3)\n"
        "assert(string.format(\"%5.2f|%s\", 1.5, \"x\") == \" 1.50|x\")\n"
        "assert(string.char(104, 105) == \"hi\" and utf8.char(233) == \"\\u{e9}\")\n"
        "assert(utf8.len(\"h\\u{e9}\") == 2 and utf8.codepoint(\"\\u{e9}\") == 233)\n"
        "assert(utf8.offset(\"h\\u{e9}x\", 3) == 4)\n"
        "assert(string.unpack(\"i4\", string.pack(\"i4\", 7)) == 7)\n"
        "local ok, v = xpcall(error, function(e) return \"handled \" .. e end, \"x\")\n"
        "assert(not ok and v == \"handled x\")\n"
        "local x = dsc.input(\"x\", {#t})\n"
        "dsc.output(\"y\", dsc.relu(x))\n",
        NULL, 0, NULL, &err);
    cr_assert_not_null(m, "%s", err.msg);
    model_free(m);
}


/* Every guard charges before it runs: each of these asks for more steps
 * than the budget has left and is refused at once, naming itself (the
 * 200000-byte string costs 200000 steps to make, its pass 25000). */
Test(sandbox, guards_refuse_huge_calls, .timeout = 30)
{
    static const struct {
        const char *code, *what;
        long long budget;
    } calls[] = {
        { "table.concat({}, \"\", 1, math.maxinteger)", "table.concat", 1e6 },
        { "table.unpack({}, 1, math.maxinteger)", "table.unpack", 1e6 },
        { "table.unpack(setmetatable({}, {__len = function() return "
          "math.maxinteger end}))", "table.unpack", 1e6 },
        { "select(1, table.unpack({}, 1, 9000))", "select", 16000 },
        { "(\"x\"):rep(200000):upper()", "string.upper", 215000 },
        { "(\"x\"):rep(200000):lower()", "string.lower", 215000 },
        { "(\"x\"):rep(200000):reverse()", "string.reverse", 215000 },
        { "string.format(\"%s\", (\"x\"):rep(200000))", "string.format",
          215000 },
        { "(\"x\"):rep(200000):byte(1, -1)", "string.byte", 215000 },
        { "utf8.len((\"x\"):rep(200000))", "utf8.len", 215000 },
        { "local t = {} for i = 1, 10000 do t[i] = -i end table.sort(t)",
          "table.sort", 100000 },
    };
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
        frontend_limits lim = frontend_default_limits();
        lim.instructions = calls[i].budget;
        char text[400];
        snprintf(text, sizeof text, "local _ = 1\n%s\n", calls[i].code);
        dsc_err err;
        model *m = load(text, NULL, 0, &lim, &err);
        cr_assert_null(m, "%s", calls[i].code);
        char what[100];
        snprintf(what, sizeof what, "%s could take", calls[i].what);
        cr_assert(strstr(err.msg, what) &&
                  strstr(err.msg, "instruction budget"), "%s: %s",
                  calls[i].code, err.msg);
    }
}


/* ---- --max-memory ---------------------------------------------------------- */

/* A model that declares more arena + weights than the limit is refused
 * by the pipeline before anything is allocated, naming the line of its
 * largest tensor; the default limit is half the machine's memory. */
Test(max_memory, declared_model_refused_before_allocating)
{
    char dir[] = "/tmp/dsc_maxmem_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/big.lua", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("local x = dsc.input(\"x\", {2, 100000})\n"
          "local w = dsc.weight(\"w\", {100000, 100000})\n"
          "dsc.output(\"y\", dsc.linear(x, w))\n", f);
    fclose(f);
    /* 64-column panels whatever the host or DSC_ISA would pick, as the
     * figure below assumes. */
    build_options opts = {.layout = DSC_LAYOUT_PANEL64};
    built_model b;
    dsc_err err;
    cr_assert_neq(build_model(path, &opts, &b, &err), 0, "40 GB built");
    char prefix[200];
    /* The packed weight, its 100000 columns padded to whole 64-column
     * panels: 100032 x 100000 floats, and the weight blob's and the
     * packed weight's 64-byte headers (x is an input: no arena) */
    snprintf(prefix, sizeof prefix, "%s:2: error: the model needs "
             "40012800128 bytes", path);
    cr_assert(strncmp(err.msg, prefix, strlen(prefix)) == 0, "%s", err.msg);
    cr_assert(strstr(err.msg, "--max-memory") && strstr(err.msg, "'w'"),
              "%s", err.msg);
    cr_assert_gt(build_default_max_memory(), (int64_t)1 << 26);
    cr_assert_lt(build_default_max_memory(), (int64_t)40012800000);

    /* An explicit limit, either side of what the small model needs. */
    opts.max_memory = 1000;
    cr_assert_neq(build_model(ENCODER, &opts, &b, &err), 0);
    cr_assert(strstr(err.msg, "more than the memory limit of 1000 bytes"),
              "%s", err.msg);
    /* Its largest tensor is the feed-forward's, made by the block library
     * and fused with its ReLU: the model file's line that called the block
     * is named, not the tensor fusion left unused. */
    snprintf(prefix, sizeof prefix, "%s:23: error:", ENCODER);
    cr_assert(strncmp(err.msg, prefix, strlen(prefix)) == 0, "%s", err.msg);
    cr_assert(strstr(err.msg, "'relu' [16, 20, 2048]"), "%s", err.msg);
    opts.max_memory = (int64_t)1 << 30;
    cr_assert_eq(build_model(ENCODER, &opts, &b, &err), 0, "%s", err.msg);
    built_model_free(&b);

    /* The command line: sizes with suffixes, a clear error for others. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s graph %s --max-memory 4G -o %s/g.dot "
             "2>/dev/null && %s graph %s --max-memory 1.5k -o %s/g.dot "
             "2>/dev/null", dsc(), ENCODER, dir, dsc(), ENCODER, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "%s compile %s --max-memory 1K -o %s/m.c "
             "2>/dev/null", dsc(), ENCODER, dir);
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "%s", cmd);
    snprintf(cmd, sizeof cmd, "%s compile %s --max-memory 4Q -o %s/m.c "
             "2>/dev/null", dsc(), ENCODER, dir);
    status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "%s", cmd);
    /* Hexadecimal is not a size (strtod would read 0x10G as 16 GiB). */
    snprintf(cmd, sizeof cmd, "%s graph %s --max-memory 0x10G -o %s/g.dot "
             "2>/dev/null", dsc(), ENCODER, dir);
    status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "%s", cmd);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}


/* Parsing runs outside the instruction budget: a huge model file is
 * refused before it is read (and, from memory, before it is parsed). */
Test(sandbox, huge_model_file_refused)
{
    size_t len = FRONTEND_MAX_SOURCE + 1;
    char *text = malloc(len);
    cr_assert_not_null(text);
    memset(text, ' ', len);
    dsc_err err;
    model *m = frontend_load_string(MODEL, text, len, NULL, 0, NULL, &err);
    cr_assert_null(m);
    cr_assert(strstr(err.msg, MODEL ": error: a model file of") &&
              strstr(err.msg, "larger than the limit"), "%s", err.msg);
    char path[] = "/tmp/dsc_huge_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_eq(fwrite(text, 1, len, f), len);
    fclose(f);
    free(text);
    m = frontend_load(path, NULL, 0, NULL, &err);
    cr_assert_null(m);
    cr_assert(strstr(err.msg, "larger than the limit"), "%s", err.msg);
    remove(path);
}
