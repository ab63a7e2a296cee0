/* tcc_pic.c — lets Debian's libtcc.a live inside libdsc.so.
 *
 * Debian builds libtcc.a as position-dependent code: everything in it links
 * into a shared object once its own symbols are hidden (libdsc.map), except
 * direct references to glibc's `stdout`, `stderr` and `environ`, which a
 * shared object cannot hold.  The Makefile renames them to dsc_tcc_stdout,
 * dsc_tcc_stderr and dsc_tcc_environ in a copy of the archive (objcopy
 * --redefine-sym); this defines them, set before anything runs.  libtcc
 * uses them for tcc -E, statistics, tcc_run and messages when no error
 * function is set; dsc always sets one and calls none of the others. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <unistd.h>

extern char **environ;

FILE *dsc_tcc_stdout, *dsc_tcc_stderr;
char **dsc_tcc_environ;


__attribute__((constructor)) static void set_tcc_globals(void)
{
    dsc_tcc_stdout = stdout;
    dsc_tcc_stderr = stderr;
    dsc_tcc_environ = environ;
}
