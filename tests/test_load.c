/* test_load.c — turning generated C into code: what the user sees when the
 * JIT or the system compiler rejects it, or no compiler is there. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "driver/build.h"
#include "backend/load.h"

static const frontend_define small[] = { { .key = "layers", .value = "1" }, { .key = "d_model", .value = "32" } };


/* Line number (1-based) of the first line of text containing needle. */
static int line_of(const char *text, const char *needle)
{
    const char *at = strstr(text, needle);
    cr_assert_not_null(at, "%s not in the source", needle);
    int line = 1;
    for (const char *p = text; p < at; p++)
        line += *p == '\n';
    return line;
}


Test(load, jit_errors_name_the_generated_file_and_its_line)
{
    built_model b;
    dsc_err err;
    build_options opts = { .defines = small, .n_defines = 2 };
    cr_assert_eq(build_model("models/seed_encoder.lua", &opts, &b, &err), 0,
                 "%s", err.msg);
    /* Break one call in both texts; the JIT must blame the shipped line. */
    int line = line_of(b.source, "rt_attention(ctx");
    char *bad = strstr(b.jit_source, "rt_attention(ctx");
    cr_assert_not_null(bad);
    memcpy(bad, "rt_attentiom", 12);
    loaded_model *m = jit_load(b.jit_source, b.model->name, b.entry, &err);
    cr_expect_null(m);
    char where[64];
    snprintf(where, sizeof where, "seed_encoder.c:%d:", line);
    cr_expect(strstr(err.msg, where), "expected %s in: %s", where, err.msg);
    cr_expect(strstr(err.msg, "rt_attentiom"), "%s", err.msg);
    loaded_free(m);
    built_model_free(&b);
}

Test(load, aot_without_a_compiler_is_a_clear_error)
{
    built_model b;
    dsc_err err;
    build_options opts = { .defines = small, .n_defines = 2 };
    cr_assert_eq(build_model("models/seed_encoder.lua", &opts, &b, &err), 0,
                 "%s", err.msg);
    setenv("CC", "/nonexistent/cc", 1);
    loaded_model *m = aot_load(b.source, b.header, build_runtime_header(),
                               b.model->name, b.entry, &err);
    cr_expect_null(m);
    cr_expect(strstr(err.msg, "no C compiler found"), "%s", err.msg);
    cr_expect(strstr(err.msg, "/nonexistent/cc"), "%s", err.msg);
    unsetenv("CC");
    loaded_free(m);
    built_model_free(&b);
}
