/* test_fuzz_replay.c — every input the fuzzers were seeded with
 * (tests/fuzz/corpus/<harness>/) and every input that ever crashed one
 * (tests/fuzz/crashes/<harness>/) goes through the harnesses' entry points
 * (tests/fuzz/fuzz_entry.h), built normally.  Each must be accepted or
 * refused with one clean message naming its path; none may crash, hang or
 * (under `make check`) leak.
 *
 * Each input runs in a process of its own (this binary again, with
 * --replay-one), so one crash names its file and the others still run.
 * Run from the repository root. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/fileio.h"
#include "fuzz/fuzz_entry.h"
#include "fuzz/fuzz_names.h"

#define REPLAY_SECONDS 60  /* per input; the fuzzers stop theirs at 10 */

typedef int (*entry_fn)(const uint8_t *data, size_t size, const char *path,
                        dsc_err *err);

static const struct {
    const char *name;
    entry_fn entry;
} harnesses[] = {
    { "safetensors", fuzz_safetensors },
    { "npy", fuzz_npy },
    { "frontend", fuzz_frontend },
    { "names", fuzz_names },
    { "hf_json", fuzz_hf_json },
    { "tokenizer", fuzz_tokenizer },
};


/* `test_fuzz_replay --replay-one HARNESS PATH`, run by replay_dir in a
 * fresh process (fork, then exec of this binary: a fork of Criterion's
 * threaded worker is no place for LeakSanitizer's exit check).  Exits 0 if
 * the input was accepted or cleanly refused, 2 if refused without a clean
 * message naming it; under ASan a leak makes the exit status 23. */
static int replay_one(const char *harness, const char *path)
{
    entry_fn entry = NULL;
    for (size_t i = 0; i < sizeof harnesses / sizeof harnesses[0]; i++)
        if (strcmp(harness, harnesses[i].name) == 0)
            entry = harnesses[i].entry;
    size_t len;
    dsc_err err;
    char *bytes = entry ? file_read_all(path, &len, &err) : NULL;
    if (!bytes) {
        fprintf(stderr, "%s\n", entry ? err.msg : "no such harness");
        return 2;
    }
    memset(err.msg, 0, sizeof err.msg);
    int rc = entry((const uint8_t *)bytes, len, path, &err);
    free(bytes);
    if (rc == 0)
        return 0;
    /* "path: error: ..." or "path:LINE: error: ...", on one line. */
    size_t n = strlen(path);
    const char *rest = err.msg + n;
    int named = strncmp(err.msg, path, n) == 0 && rest[0] == ':';
    if (named && rest[1] >= '0' && rest[1] <= '9') {
        rest++;
        while (*rest >= '0' && *rest <= '9')
            rest++;
    }
    if (named && strncmp(rest, ": error: ", 9) == 0 && rest[9] &&
        !strchr(err.msg, '\n'))
        return 0;
    fprintf(stderr, "%s: refused without a clean message naming it: '%s'\n",
            path, err.msg);
    return 2;
}


static int replay_dir(const char *harness, const char *kind)
{
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/%s/%s", kind, harness);
    DIR *d = opendir(dir);
    if (!d) {
        /* The corpus must be there; a crash directory may be empty. */
        cr_expect(strcmp(kind, "crashes") == 0, "cannot open %s (run from "
                  "the repository root)", dir);
        return 0;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;  /* ., .., .gitkeep */
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        fflush(NULL);
        pid_t pid = fork();
        cr_assert_geq(pid, 0, "fork failed");
        if (pid == 0) {
            alarm(REPLAY_SECONDS);  /* survives the exec */
            unsetenv("BXFI_MAP");  /* else the new process is a worker */
            execl("/proc/self/exe", "test_fuzz_replay", "--replay-one",
                  harness, path, (char *)NULL);
            _exit(127);
        }
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        if (WIFSIGNALED(status))
            cr_expect_fail("%s: %s (signal %d)", path,
                           WTERMSIG(status) == SIGALRM ? "timed out"
                           : "crashed", WTERMSIG(status));
        else
            cr_expect_eq(WEXITSTATUS(status), 0, "%s: %s (exit status %d)",
                         path, WEXITSTATUS(status) == 2
                         ? "no clean error message (see above)"
                         : "crashed, leaked or failed to run",
                         WEXITSTATUS(status));
        n++;
    }
    closedir(d);
    return n;
}


static void replay(const char *harness)
{
    int seeds = replay_dir(harness, "corpus");
    cr_expect_gt(seeds, 0, "no seed inputs in tests/fuzz/corpus/%s", harness);
    replay_dir(harness, "crashes");
}


Test(replay, safetensors, .timeout = 600)
{
    replay("safetensors");
}


Test(replay, npy, .timeout = 600)
{
    replay("npy");
}


Test(replay, frontend, .timeout = 600)
{
    replay("frontend");
}


Test(replay, names, .timeout = 600)
{
    replay("names");
}


/* The seeds that are valid files load: the corpus keeps its purpose. */
Test(replay, valid_seeds_load)
{
    static const struct {
        const char *path;
        entry_fn entry;
    } valid[] = {
        { "tests/fuzz/corpus/safetensors/f32_two.safetensors",
          fuzz_safetensors },
        { "tests/fuzz/corpus/safetensors/ints.safetensors", fuzz_safetensors },
        { "tests/fuzz/corpus/npy/f32_2x3.npy", fuzz_npy },
        { "tests/fuzz/corpus/npy/i32_scalar_v2.npy", fuzz_npy },
        { "tests/fuzz/corpus/frontend/tiny_qkv.lua", fuzz_frontend },
        { "tests/fuzz/corpus/frontend/tiny_nn.lua", fuzz_frontend },
        { "tests/fuzz/corpus/frontend/seed_encoder.lua", fuzz_frontend },
    };
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        size_t len;
        dsc_err err;
        char *bytes = file_read_all(valid[i].path, &len, &err);
        cr_assert_not_null(bytes, "%s", err.msg);
        int rc = valid[i].entry((const uint8_t *)bytes, len, valid[i].path,
                                &err);
        free(bytes);
        cr_expect_eq(rc, 0, "%s: %s", valid[i].path, err.msg);
    }
}


int main(int argc, char *argv[])
{
    if (argc == 4 && strcmp(argv[1], "--replay-one") == 0)
        return replay_one(argv[2], argv[3]);
    struct criterion_test_set *tests = criterion_initialize();
    int result = 0;
    if (criterion_handle_args(argc, argv, true))
        result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return result;
}
