/* load.c — make generated C callable: in memory with libtcc (JIT), or as a
 * shared object built by the system C compiler (AOT).
 *
 * TinyCC compiles fast and generates slow code, which is why the generated
 * C only calls into the runtime: the kernels tcc binds here are the ones
 * gcc optimized into this binary, and an AOT shared object resolves the
 * same ones from the running dsc. */
#define _GNU_SOURCE  /* dladdr */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dlfcn.h>
#include <libtcc.h>

#include "dsc_runtime.h"
#include "backend/load.h"
#include "io/fileio.h"
#include "util/strbuf.h"

extern char **environ;

struct loaded_model {
    TCCState *tcc;      /* JIT: owns the code */
    void *dl;           /* AOT: the shared object */
    forward_io_fn entry;
};


static void collect_error(void *opaque, const char *msg)
{
    strbuf *sb = opaque;
    sb_printf(sb, "%s%s", sb->len ? "\n" : "", msg);
}


/* Debian's libtcc is a 2020 snapshot whose tcc_relocate takes a second
 * argument; newer TinyCC drops it.  Keep the difference here. */
static int relocate(TCCState *s)
{
#ifdef TCC_RELOCATE_AUTO
    return tcc_relocate(s, TCC_RELOCATE_AUTO);
#else
    return tcc_relocate(s);
#endif
}


loaded_model *jit_load(const char *source, const char *source_name,
                       const char *entry, dsc_err *err)
{
    loaded_model *m = calloc(1, sizeof *m);
    strbuf messages = {0};
    if (!m || !(m->tcc = tcc_new())) {
        free(m);
        err_set(err, "error: cannot start the JIT (libtcc)");
        return NULL;
    }
    tcc_set_error_func(m->tcc, &messages, collect_error);
    tcc_set_output_type(m->tcc, TCC_OUTPUT_MEMORY);
#define BIND(sym) tcc_add_symbol(m->tcc, #sym, (const void *)sym);
    DSC_RUNTIME_SYMBOLS(BIND)
#undef BIND
    int failed = tcc_compile_string(m->tcc, source) < 0 || relocate(m->tcc) < 0;
    if (!failed && !(m->entry = (forward_io_fn)(void (*)(void))
                     tcc_get_symbol(m->tcc, entry)))
        collect_error(&messages, "entry point not found");
    if (failed || !m->entry) {
        char *text = sb_take(&messages);
        err_set(err, "%s: error: the JIT (libtcc) rejected the generated C:\n"
                "%s", source_name, text ? text : "");
        free(text);
        loaded_free(m);
        return NULL;
    }
    sb_free(&messages);
    return m;
}


forward_io_fn loaded_entry(const loaded_model *m)
{
    return m->entry;
}


step_io_fn loaded_step(const loaded_model *m)
{
    return (step_io_fn)(void (*)(void))m->entry;
}


void loaded_free(loaded_model *m)
{
    if (!m)
        return;
    if (m->tcc)
        tcc_delete(m->tcc);
    if (m->dl)
        dlclose(m->dl);
    free(m);
}


/* Split $CC ("gcc -m64") into argv words, then append the rest. */
static int build_argv(char *cc, char **argv, int max, char *const *rest)
{
    int n = 0;
    for (char *tok = strtok(cc, " \t"); tok && n < max - 1;
         tok = strtok(NULL, " \t"))
        argv[n++] = tok;
    if (n == 0)
        return -1;
    for (; *rest && n < max - 1; rest++)
        argv[n++] = *rest;
    argv[n] = NULL;
    return n;
}


static int write_text(const char *dir, const char *name, const char *text,
                      dsc_err *err)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return file_write_atomic(path, text, strlen(text), err);
}


static void remove_tree(const char *dir, const char *const *names)
{
    char path[8192];
    for (; *names; names++) {
        snprintf(path, sizeof path, "%s/%s", dir, *names);
        remove(path);
    }
    rmdir(dir);
}


loaded_model *aot_load(const char *source, const char *header,
                       const char *runtime_header, const char *model_name,
                       const char *entry, dsc_err *err)
{
    const char *tmp = getenv("TMPDIR");
    char dir[4096], c_name[300], h_name[300], so_path[8192], c_path[8192];
    snprintf(dir, sizeof dir, "%s/dsc-aot-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        err_set(err, "error: --aot: cannot make a build directory in %s: %s",
                tmp && *tmp ? tmp : "/tmp", strerror(errno));
        return NULL;
    }
    snprintf(c_name, sizeof c_name, "%s.c", model_name);
    snprintf(h_name, sizeof h_name, "%s.h", model_name);
    const char *files[] = { c_name, h_name, "dsc_runtime.h", "model.so",
                            "cc.log", NULL };
    snprintf(c_path, sizeof c_path, "%s/%s", dir, c_name);
    snprintf(so_path, sizeof so_path, "%s/model.so", dir);
    loaded_model *m = NULL;
    if (write_text(dir, c_name, source, err) ||
        write_text(dir, h_name, header, err) ||
        write_text(dir, "dsc_runtime.h", runtime_header, err))
        goto done;

    const char *cc_env = getenv("CC");
    char cc[1024];
    snprintf(cc, sizeof cc, "%s", cc_env && *cc_env ? cc_env : "cc");
    char *rest[] = { "-std=c11", "-O2", "-fPIC", "-shared", "-I", dir, "-o",
                     so_path, c_path, NULL };
    char *argv[64];
    if (build_argv(cc, argv, 64, rest) < 0) {
        err_set(err, "error: --aot: CC is empty");
        goto done;
    }
    /* The compiler's messages go to a file and into the error: dsc may be
     * a library in someone else's process, which must not print. */
    char log_path[8192];
    snprintf(log_path, sizeof log_path, "%s/cc.log", dir);
    posix_spawn_file_actions_t io;
    posix_spawn_file_actions_init(&io);
    posix_spawn_file_actions_addopen(&io, 1, log_path,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&io, 1, 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &io, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&io);
    if (rc != 0) {
        err_set(err, "error: --aot: no C compiler found: cannot run '%s' "
                "(%s); install gcc or set CC", argv[0], strerror(rc));
        goto done;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        size_t len;
        dsc_err ignored;
        char *log = file_read_all(log_path, &len, &ignored);
        err_set(err, "error: --aot: '%s' failed to compile the generated C:"
                "\n%s", argv[0], log ? log : "");
        free(log);
        goto done;
    }
    /* The model resolves the runtime's kernels from whatever holds them:
     * the dsc program (linked -rdynamic) or libdsc.so, which a host such as
     * Python may have loaded privately; make its symbols visible. */
    Dl_info self;
    if (dladdr((void *)rt_ctx_new, &self) && self.dli_fname) {
        void *host = dlopen(self.dli_fname, RTLD_LAZY | RTLD_NOLOAD |
                            RTLD_GLOBAL);
        if (host)
            dlclose(host);  /* only the flag was wanted; it stays loaded */
    }
    void *dl = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        err_set(err, "error: --aot: cannot load the built model: %s",
                dlerror());
        goto done;
    }
    forward_io_fn fn = (forward_io_fn)(void (*)(void))dlsym(dl, entry);
    if (!fn || !(m = calloc(1, sizeof *m))) {
        err_set(err, "error: --aot: entry point %s not found", entry);
        dlclose(dl);
        goto done;
    }
    m->dl = dl;
    m->entry = fn;
done:
    remove_tree(dir, files);
    return m;
}
