#define _POSIX_C_SOURCE 200809L
#include "io/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct file_out {
    FILE *fp;
    char *path;
    char *tmp_path;
    int failed;
};


char *file_read_all(const char *path, size_t *len, dsc_err *err)
{
    /* O_NONBLOCK: opening a FIFO with no writer must not block before the
     * regular-file check refuses it (regular files ignore the flag). */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        err_set(err, "%s: error: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err_set(err, "%s: error: not a regular file", path);
        close(fd);
        return NULL;
    }
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        err_set(err, "%s: error: cannot open: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        err_set(err, "%s: error: out of memory reading %zu bytes", path, size);
        fclose(fp);
        return NULL;
    }
    size_t got = fread(buf, 1, size, fp);
    int bad = ferror(fp);
    fclose(fp);
    if (bad || got != size) {
        err_set(err, "%s: error: read failed", path);
        free(buf);
        return NULL;
    }
    buf[size] = '\0';
    *len = size;
    return buf;
}


/* mkdir -p of path's directory, so `-o out/model.c` works in a fresh tree. */
static void make_parents(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(dir, 0777);  /* errors show when the file itself is opened */
        *p = '/';
    }
}


file_out *file_out_open(const char *path, dsc_err *err)
{
    file_out *f = calloc(1, sizeof *f);
    size_t n = strlen(path);
    if (!f || !(f->path = malloc(n + 1)) || !(f->tmp_path = malloc(n + 32))) {
        err_set(err, "%s: error: out of memory", path);
        file_out_abort(f);
        return NULL;
    }
    memcpy(f->path, path, n + 1);
    /* The commit renames over path: a device or FIFO there would be
     * replaced by a regular file, not written to. */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        err_set(err, "%s: error: not a regular file (dsc writes its output "
                "to a new file and renames it there)", path);
        file_out_abort(f);
        return NULL;
    }
    snprintf(f->tmp_path, n + 32, "%s.tmp%ld", path, (long)getpid());
    f->fp = fopen(f->tmp_path, "wb");
    if (!f->fp && errno == ENOENT && strlen(path) < 4096) {
        make_parents(path);
        f->fp = fopen(f->tmp_path, "wb");
    }
    if (!f->fp) {
        err_set(err, "%s: error: cannot create %s beside it: %s", path,
                f->tmp_path, strerror(errno));
        file_out_abort(f);
        return NULL;
    }
    return f;
}


int file_out_write(file_out *f, const void *data, size_t len)
{
    if (!f->failed && len && fwrite(data, 1, len, f->fp) != len)
        f->failed = errno ? errno : EIO;
    return f->failed ? -1 : 0;
}


int file_out_commit(file_out *f, dsc_err *err)
{
    int rc = 0;
    if (fclose(f->fp) != 0 && !f->failed)
        f->failed = errno ? errno : EIO;
    f->fp = NULL;
    if (f->failed) {
        rc = err_set(err, "%s: error: write failed: %s", f->path,
                     strerror(f->failed));
    } else if (rename(f->tmp_path, f->path) != 0) {
        rc = err_set(err, "%s: error: cannot write: %s", f->path,
                     strerror(errno));
    }
    if (rc)
        remove(f->tmp_path);
    free(f->path);
    free(f->tmp_path);
    free(f);
    return rc;
}


void file_out_abort(file_out *f)
{
    if (!f)
        return;
    if (f->fp) {
        fclose(f->fp);
        remove(f->tmp_path);
    }
    free(f->path);
    free(f->tmp_path);
    free(f);
}


int file_write_atomic(const char *path, const void *data, size_t len,
                      dsc_err *err)
{
    file_out *f = file_out_open(path, err);
    if (!f)
        return -1;
    file_out_write(f, data, len);
    return file_out_commit(f, err);
}
