/* cli_test.h — what the tests that run the dsc binary share: a scratch
 * directory per test (TestSuite .init/.fini), the binary's path, a command
 * run with its output captured in the directory, a file read whole, and
 * the committed fixtures' config lines and .npy files.
 * Header-only (each test binary is one .c), hence static inline. */
#ifndef DSC_CLI_TEST_H
#define DSC_CLI_TEST_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "io/fileio.h"
#include "io/npy.h"

/* The current test's scratch directory. */
static char tmp[256];


static inline void make_tmp(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/dsc-test-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp));
}


static inline void remove_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_assert_eq(system(cmd), 0);
}


/* The dsc under test: $DSC (make test sets it), else build/dsc. */
static inline const char *dsc(void)
{
    const char *path = getenv("DSC");
    return path && *path ? path : "build/dsc";
}


/* A path in the scratch directory; a few may be in use in one call. */
static inline char *tmp_file(const char *name)
{
    static char paths[4][512];
    static int next;
    char *path = paths[next++ % 4];
    snprintf(path, 512, "%s/%s", tmp, name);
    return path;
}


/* Run a shell command (printf-style), its stdout and stderr going to
 * tmp/stdout and tmp/stderr; the exit status. */
static inline int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    cr_assert_lt(n, (int)sizeof cmd - 600, "command too long: %s", cmd);
    snprintf(cmd + n, sizeof cmd - (size_t)n, " >%s/stdout 2>%s/stderr", tmp,
             tmp);
    int status = system(cmd);
    cr_assert(WIFEXITED(status), "command did not exit: %s", cmd);
    return WEXITSTATUS(status);
}


/* A whole file (malloc'd), or the test fails. */
static inline char *slurp(const char *path)
{
    size_t len;
    dsc_err err;
    char *text = file_read_all(path, &len, &err);
    cr_assert_not_null(text, "%s", err.msg);
    return text;
}


/* What the last run() wrote to stderr (malloc'd). */
static inline char *stderr_text(void)
{
    return slurp(tmp_file("stderr"));
}


/* The -D options a fixture was made with: tests/fixtures/NAME/config's
 * one line (malloc'd). */
static inline char *fixture_config(const char *fixture)
{
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s/config", fixture);
    char *text = slurp(path);
    text[strcspn(text, "\n")] = '\0';
    return text;
}


/* A .npy file of the given dtype, or the test fails. */
static inline npy_array load_npy(const char *path, npy_dtype dtype)
{
    npy_array a;
    dsc_err err;
    cr_assert_eq(npy_read(path, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(a.dtype, dtype, "%s", path);
    return a;
}

#endif
