/* cli_test.h — what the tests that run the dsc binary share: a scratch
 * directory per test (TestSuite .init/.fini), the binary's path, a command
 * run with its output captured in the directory, and a file read whole.
 * Header-only (each test binary is one .c), hence static inline. */
#ifndef DSC_CLI_TEST_H
#define DSC_CLI_TEST_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "io/fileio.h"

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

#endif
