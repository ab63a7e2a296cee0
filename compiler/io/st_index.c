/* st_index.c — read model.safetensors.index.json's weight_map with
 * io/json.c's strict reader. */
#include "io/st_index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileio.h"
#include "io/json.h"


static void free_list(char **list, int n)
{
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}


/* Add dir/name to the list (drop_repeats removes repeats once all are
 * in).  Takes name. */
static int add_shard(jparser *jp, const char *dir, size_t dir_len, char *name,
                     char ***list, int *n, int *cap)
{
    char show[80];
    if (!*name || strchr(name, '/') || !strcmp(name, ".") ||
        !strcmp(name, "..")) {
        jp_syntax(jp, "shard '%s' must be a file name beside the index",
                  json_show(name, show));
        free(name);
        return -1;
    }
    size_t len = dir_len + strlen(name) + 1;
    char *path = malloc(len);
    if (path)
        snprintf(path, len, "%.*s%s", (int)dir_len, dir, name);
    free(name);
    if (!path)
        return err_set(jp->err, "%s: error: out of memory", jp->path);
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 8;
        char **l = realloc(*list, (size_t)c * sizeof *l);
        if (!l) {
            free(path);
            return err_set(jp->err, "%s: error: out of memory", jp->path);
        }
        *list = l;
        *cap = c;
    }
    (*list)[(*n)++] = path;
    return 0;
}


typedef struct placed_path {
    const char *path;
    int place;
} placed_path;

static int by_path_then_place(const void *a, const void *b)
{
    const placed_path *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    return c ? c : (x->place > y->place) - (x->place < y->place);
}


/* Keep each path's first appearance only, in order: by sorting, so an
 * index naming a million shards costs n log n, not n^2.  Returns the new
 * count, or -1 out of memory. */
static int drop_repeats(char **list, int n)
{
    placed_path *sorted = malloc((size_t)(n ? n : 1) * sizeof *sorted);
    char *keep = malloc((size_t)(n ? n : 1));
    if (!sorted || !keep) {
        free(sorted);
        free(keep);
        return -1;
    }
    for (int i = 0; i < n; i++)
        sorted[i] = (placed_path){ list[i], i };
    qsort(sorted, (size_t)n, sizeof *sorted, by_path_then_place);
    for (int k = 0; k < n; k++)
        keep[sorted[k].place] =
            k == 0 || strcmp(sorted[k - 1].path, sorted[k].path) != 0;
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (keep[i])
            list[m++] = list[i];
        else
            free(list[i]);
    }
    free(sorted);
    free(keep);
    return m;
}


int st_index_shards(const char *index_path, char ***paths, int *n,
                    dsc_err *err)
{
    size_t len;
    char *text = file_read_all(index_path, &len, err);
    *paths = NULL;
    *n = 0;
    if (!text)
        return -1;
    int rc = st_index_shards_memory(text, len, index_path, paths, n, err);
    free(text);
    return rc;
}


int st_index_shards_memory(const char *text, size_t len,
                           const char *index_path, char ***paths, int *n,
                           dsc_err *err)
{
    *paths = NULL;
    *n = 0;
    jparser jp = { .s = text, .len = len, .path = index_path, .err = err,
                   .lines = 1 };
    const char *slash = strrchr(index_path, '/');
    size_t dir_len = slash ? (size_t)(slash - index_path) + 1 : 0;
    char **list = NULL, *key = NULL;
    int count = 0, cap = 0, first = 1, more = 0, maps = 0, rc = 0;
    if (jp_open(&jp, '{', 1))
        return -1;
    while (rc == 0 && (more = jp_next(&jp, '}', &first, &key)) == 1) {
        if (strcmp(key, "weight_map") != 0) {
            rc = jp_skip(&jp, 2);
        } else {
            int first2 = 1, more2 = 0;
            char *tensor = NULL;
            maps++;
            jp_ws(&jp);
            rc = jp_open(&jp, '{', 2);
            while (rc == 0 &&
                   (more2 = jp_next(&jp, '}', &first2, &tensor)) == 1) {
                char *file = NULL;
                free(tensor);
                jp_ws(&jp);
                if (jp_peek(&jp) != '"')
                    rc = jp_syntax(&jp, "weight_map values must be file names");
                else if ((rc = jp_string(&jp, &file)) == 0)
                    rc = add_shard(&jp, index_path, dir_len, file, &list,
                                   &count, &cap);
            }
            if (rc == 0 && more2 < 0)
                rc = -1;
        }
        free(key);
        key = NULL;
    }
    if (rc == 0 && more < 0)
        rc = -1;
    if (rc == 0 && maps != 1)
        rc = err_set(err, "%s: error: expected one \"weight_map\" object "
                     "(a model.safetensors.index.json)", index_path);
    else if (rc == 0 && count == 0)
        rc = err_set(err, "%s: error: the weight_map names no shard",
                     index_path);
    if (rc == 0) {
        int kept = drop_repeats(list, count);
        if (kept < 0)  /* the list is untouched: free_list takes it */
            rc = err_set(err, "%s: error: out of memory", index_path);
        else
            count = kept;
    }
    if (rc == 0) {
        jp_ws(&jp);
        if (jp_peek(&jp) != -1)
            rc = jp_syntax(&jp, "text after the top-level object");
    }
    if (rc) {
        free_list(list, count);
        return -1;
    }
    *paths = list;
    *n = count;
    return 0;
}
