#define _POSIX_C_SOURCE 200809L  /* dev_t, ino_t */
#include "io/weights.h"
#include "io/st_index.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dsc_runtime.h"
#include "util/rng.h"
#include "util/strbuf.h"

#define ALIGN_FLOATS (DSC_ALIGN / 4)


/* Does any node read tensor t as a linear's weight?  As anything else?
 * (A routed expert's weights count as a linear's, or as bfloat16 ones
 * when the expert says so; so does MLA's kv_b_proj, which the attention
 * reads in the packed layout.) */
static void uses(const graph *g, int t, int *as_linear, int *as_other,
                 int *as_bf16)
{
    *as_linear = *as_other = *as_bf16 = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        for (int j = 0; j < n->n_inputs; j++) {
            if (n->inputs[j] != t)
                continue;
            if (n->op == GRAPH_OP_MOE_EXPERT && j >= 3 && n->attrs.expert_bf16)
                *as_bf16 = 1;
            else if ((n->op == GRAPH_OP_LINEAR && j == 1) ||
                     (n->op == GRAPH_OP_MOE_EXPERT && j >= 3) ||
                     (n->op == GRAPH_OP_MLA_ATTENTION && j == 3) ||
                     (n->op == GRAPH_OP_LINEAR_GRAD_X && j == 1) ||  /* training */
                     (n->op == GRAPH_OP_LINEAR_GRAD_W && j == 2))
                *as_linear = 1;
            else
                *as_other = 1;
        }
    }
}


/* Keys are interned, so equal keys are equal pointers. */
static int same_parts(const graph_weight *a, const graph_weight *b)
{
    if (a->n_parts != b->n_parts)
        return 0;
    for (int i = 0; i < a->n_parts; i++)
        if (a->part[i].key != b->part[i].key ||
            a->part[i].row_first != b->part[i].row_first ||
            a->part[i].rows != b->part[i].rows)
            return 0;
    return 1;
}


int weights_plan(const graph *g, weight_layout *layout, dsc_err *err)
{
    return weights_plan_for(g, rt_isa_layout(rt_isa_native()), layout, err);
}


/* The layout of a routed expert's weights that asked for bfloat16: the
 * blob's when it is reduced already, else its bfloat16 variant. */
static int bf16_packing(int packing)
{
    return DSC_LAYOUT_FORMAT_OF(packing) != DSC_WEIGHTS_F32
        ? packing : DSC_LAYOUT(DSC_LAYOUT_PANEL_OF(packing), DSC_WEIGHTS_BF16);
}


int weights_plan_for(const graph *g, int packing, weight_layout *layout,
                     dsc_err *err)
{
    *layout = (weight_layout){0};
    if (!rt_layout_valid(packing))
        return err_set(err, "error: unknown weight layout %d", packing);
    layout->packing = packing;
    layout->entries = calloc((size_t)g->n_tensors + 1, sizeof(weight_entry));
    layout->entry_of = malloc(((size_t)g->n_tensors + 1) * sizeof(int));
    if (!layout->entries || !layout->entry_of) {
        weights_layout_free(layout);
        return err_set(err, "error: out of memory planning weights");
    }
    int64_t at = DSC_BLOB_HEADER_FLOATS;
    for (int t = 0; t < g->n_tensors; t++) {
        const graph_tensor *w = &g->tensors[t];
        layout->entry_of[t] = -1;
        if (w->kind != GRAPH_WEIGHT)
            continue;
        int as_linear, as_other, as_bf16;
        uses(g, t, &as_linear, &as_other, &as_bf16);
        if (!as_linear && !as_other && !as_bf16)
            continue;
        if (as_linear + as_other + as_bf16 > 1) {
            weights_layout_free(layout);
            return err_set(err, "%s:%d: error: weight '%s' is read both as a "
                           "linear weight and by another op; declare it "
                           "twice with dsc.weight", w->loc.file, w->loc.line,
                           w->name);
        }
        int packed = as_linear || as_bf16;
        int own_packing = as_bf16 ? bf16_packing(packing) : packing;
        int share = -1;
        for (int e = 0; e < layout->n_entries && share < 0; e++) {
            const weight_entry *o = &layout->entries[e];
            const graph_tensor *ot = &g->tensors[o->tensor];
            if (same_parts(&ot->weight, &w->weight) &&
                graph_shape_equal(&ot->shape, &w->shape) &&
                o->packed_linear == packed &&
                (!packed || o->packing == own_packing))
                share = e;
        }
        if (share >= 0) {
            layout->entry_of[t] = share;
            continue;
        }
        weight_entry *e = &layout->entries[layout->n_entries];
        e->tensor = t;
        e->offset = at;
        e->packed_linear = packed;
        e->packing = packed ? own_packing : 0;
        e->floats = packed
            ? rt_linear_packed_floats(w->shape.dim[0], w->shape.dim[1],
                                      own_packing)
            : graph_shape_count(&w->shape);
        at += (e->floats + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
        layout->entry_of[t] = layout->n_entries++;
    }
    layout->total_floats = at;
    return 0;
}


void weights_layout_free(weight_layout *layout)
{
    free(layout->entries);
    free(layout->entry_of);
    *layout = (weight_layout){0};
}


/* Store rows (already in PyTorch layout) into the entry's place. */
static int store(const graph_tensor *w, const weight_entry *e,
                 const float *rows, float *blob)
{
    if (e->packed_linear)
        rt_linear_pack(blob + e->offset, rows, w->shape.dim[0],
                       w->shape.dim[1], e->packing);
    else
        memcpy(blob + e->offset, rows,
               (size_t)graph_shape_count(&w->shape) * sizeof(float));
    return 0;
}


/* Floats in one row of w: the product of its dims after the first. */
static int64_t row_floats(const graph_tensor *w)
{
    return graph_shape_count(&w->shape) / w->shape.dim[0];
}


/* Read one part's rows from s, key p->key of file f, into dst. */
static int read_part(const st_file *f, const st_tensor *s,
                     const graph_tensor *w, const graph_weight_part *p,
                     float *dst, FILE *notes, dsc_err *err)
{
    const char *path = st_path(f);
    char a[ST_MAX_RANK * 21 + 4], b[96];
    /* safetensors allows rank 8, a graph_shape holds GRAPH_MAX_RANK dims:
     * name such a key's rank from its own entry, never copying it. */
    if (s->rank > GRAPH_MAX_RANK)
        return err_set(err, "%s: error: key '%s' is %s %s, rank %d: more "
                       "than dsc supports (%d); the model expects %s "
                       "(%s:%d)", path, p->key, st_dtype_name(s->dtype),
                       st_shape_str(s, a, sizeof a), s->rank, GRAPH_MAX_RANK,
                       graph_shape_str(&p->key_shape, b, sizeof b),
                       w->loc.file, w->loc.line);
    graph_shape file_shape = { .rank = s->rank };
    for (int d = 0; d < s->rank; d++)
        file_shape.dim[d] = s->shape[d];
    if (!graph_shape_equal(&file_shape, &p->key_shape))
        return err_set(err, "%s: error: key '%s' is %s %s but the model "
                       "expects %s (%s:%d)", path, p->key,
                       st_dtype_name(s->dtype),
                       graph_shape_str(&file_shape, a, sizeof a),
                       graph_shape_str(&p->key_shape, b, sizeof b),
                       w->loc.file, w->loc.line);
    int64_t row = row_floats(w);
    int64_t bad;
    if (p->transposed) {
        /* The file holds [in, out]; our rows are its columns row_first ..
         * row_first + rows.  Read just those, a file row at a time, so the
         * work and memory follow the slice, not the key. */
        int64_t in = p->key_shape.dim[0], out = p->key_shape.dim[1];
        float *cols = malloc((size_t)(p->rows ? p->rows : 1) * sizeof(float));
        if (!cols)
            return err_set(err, "%s: error: out of memory", path);
        bad = 0;
        for (int64_t c = 0; c < in && bad >= 0; c++) {
            int64_t got = st_read_f32(f, s, c * out + p->row_first, p->rows,
                                      cols, err);
            bad = got < 0 ? -1 : bad + got;
            for (int64_t r = 0; r < p->rows && got >= 0; r++)
                dst[r * in + c] = cols[r];
        }
        free(cols);
    } else {
        bad = st_read_f32(f, s, p->row_first * row, p->rows * row, dst, err);
    }
    if (bad < 0)
        return -1;
    if (bad > 0 && notes)
        fprintf(notes, "%s: warning: key '%s' holds %lld NaN or Inf values\n",
                path, p->key, (long long)bad);
    return 0;
}


/* Filling a blob from one file or from several, a file at a time: an
 * entry is stored (packed) once all its parts are read; keys a file holds
 * that the model does not use are noted, and the notes printed once all
 * is well.  Each part with a key is a part_ref, sorted by key, so a file
 * costs a search per key it holds, whatever the model's size and however
 * many files there are. */
typedef struct part_ref {
    const char *key;
    int entry, part;     /* layout entry, and part of its weight */
    int64_t at;          /* its first float in the entry's rows */
} part_ref;

typedef struct filler {
    const graph *g;
    const weight_layout *layout;
    float *blob;
    FILE *notes;
    float **rows;        /* per entry: its rows while parts are unread */
    int *unread;         /* per entry: parts with a key still to read */
    part_ref *refs;      /* by key, then entry and part */
    unsigned char *done; /* per ref: read */
    int n_refs;
    strbuf unused;       /* the notes on unused keys */
} filler;

/* Unused keys listed per file; the rest are counted. */
#define UNUSED_SHOWN 20


static int cmp_ref(const void *a, const void *b)
{
    const part_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    return x->entry != y->entry ? (x->entry > y->entry) - (x->entry < y->entry)
                                : (x->part > y->part) - (x->part < y->part);
}


/* The first ref of key, or n_refs if no part reads it. */
static int first_ref(const filler *fl, const char *key)
{
    int lo = 0, hi = fl->n_refs;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(fl->refs[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < fl->n_refs && !strcmp(fl->refs[lo].key, key) ? lo
                                                             : fl->n_refs;
}


static const graph_tensor *entry_tensor(const filler *fl, int e)
{
    return &fl->g->tensors[fl->layout->entries[e].tensor];
}


/* Store entry e from its rows and let them go. */
static int store_entry(filler *fl, int e, dsc_err *err, const char *source)
{
    const weight_entry *we = &fl->layout->entries[e];
    const graph_tensor *w = &fl->g->tensors[we->tensor];
    if (!fl->rows[e] && !(fl->rows[e] = calloc(
            (size_t)graph_shape_count(&w->shape), sizeof(float))))
        return err_set(err, "%s: error: out of memory", source);
    store(w, we, fl->rows[e], fl->blob);
    free(fl->rows[e]);
    fl->rows[e] = NULL;
    return 0;
}


static void filler_free(filler *fl)
{
    for (int e = 0; fl->rows && e < fl->layout->n_entries; e++)
        free(fl->rows[e]);
    free(fl->rows);
    free(fl->unread);
    free(fl->refs);
    free(fl->done);
    sb_free(&fl->unused);
}


static int filler_init(filler *fl, const graph *g, const weight_layout *layout,
                       float *blob, FILE *notes, const char *source,
                       dsc_err *err)
{
    *fl = (filler){ .g = g, .layout = layout, .blob = blob, .notes = notes };
    int n = layout->n_entries, parts = 0;
    for (int e = 0; e < n; e++)
        parts += entry_tensor(fl, e)->weight.n_parts;
    fl->rows = calloc((size_t)n + 1, sizeof *fl->rows);
    fl->unread = calloc((size_t)n + 1, sizeof *fl->unread);
    fl->refs = calloc((size_t)parts + 1, sizeof *fl->refs);
    fl->done = calloc((size_t)parts + 1, 1);
    if (!fl->rows || !fl->unread || !fl->refs || !fl->done) {
        filler_free(fl);
        return err_set(err, "%s: error: out of memory", source);
    }
    memset(blob, 0, (size_t)layout->total_floats * sizeof(float));
    rt_blob_header(blob, layout->packing, layout->total_floats);
    for (int e = 0; e < n; e++) {
        const graph_tensor *w = entry_tensor(fl, e);
        int64_t at = 0;
        for (int k = 0; k < w->weight.n_parts; k++) {
            const graph_weight_part *p = &w->weight.part[k];
            if (p->key) {
                fl->unread[e]++;
                fl->refs[fl->n_refs++] = (part_ref){ p->key, e, k, at };
            }
            at += p->rows * row_floats(w);
        }
        if (!fl->unread[e] && store_entry(fl, e, err, source)) {
            filler_free(fl);
            return -1;
        }
    }
    qsort(fl->refs, (size_t)fl->n_refs, sizeof *fl->refs, cmp_ref);
    return 0;
}


/* An FP8 checkpoint is refused by its scales' names. */
static int refuse_fp8(const st_file *f, dsc_err *err)
{
    for (int i = 0; i < st_count(f); i++) {
        const char *key = st_at(f, i)->name;
        size_t len = strlen(key);
        if (len >= 16 && strcmp(key + len - 16, "weight_scale_inv") == 0)
            return err_set(err, "%s: error: key '%s': an FP8 checkpoint "
                           "(weights with weight_scale_inv) is not "
                           "supported; convert it to BF16 first "
                           "(DeepSeek-V3's inference/fp8_cast_bf16.py)",
                           st_path(f), key);
    }
    return 0;
}


/* Read every unread part whose key f holds, in the file's order; note
 * the keys of f no part reads. */
static int filler_take(filler *fl, const st_file *f, const char *source,
                       dsc_err *err)
{
    int extra = 0;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *s = st_at(f, i);
        int r = first_ref(fl, s->name);
        if (r == fl->n_refs && fl->notes) {
            if (!extra)
                sb_printf(&fl->unused, "%s: note: keys the model does not "
                          "use (ignored):\n", st_path(f));
            if (extra++ < UNUSED_SHOWN)
                sb_printf(&fl->unused, "  %s\n", s->name);
        }
        for (; r < fl->n_refs && !strcmp(fl->refs[r].key, s->name); r++) {
            const part_ref *ref = &fl->refs[r];
            int e = ref->entry;
            const graph_tensor *w = entry_tensor(fl, e);
            if (fl->done[r])
                continue;
            if (!fl->rows[e] && !(fl->rows[e] = calloc(
                    (size_t)graph_shape_count(&w->shape), sizeof(float))))
                return err_set(err, "%s: error: out of memory", st_path(f));
            if (read_part(f, s, w, &w->weight.part[ref->part],
                          fl->rows[e] + ref->at, fl->notes, err))
                return -1;
            fl->done[r] = 1;
            if (!--fl->unread[e] && store_entry(fl, e, err, source))
                return -1;
        }
    }
    if (extra > UNUSED_SHOWN)
        sb_printf(&fl->unused, "  ... and %d more\n", extra - UNUSED_SHOWN);
    return 0;
}


static int missing_key(const graph_tensor *w, const graph_weight_part *p,
                       const char *source, dsc_err *err)
{
    char a[96];
    return err_set(err, "%s: error: missing key '%s' (the model expects %s, "
                   "%s:%d)", source, p->key,
                   graph_shape_str(&p->key_shape, a, sizeof a), w->loc.file,
                   w->loc.line);
}


/* The first part, in the order the entries need them, that is neither
 * read nor held by one of files (n of them, before any is read, so a
 * missing key is named before a problem of another). */
static int filler_missing(const filler *fl, const st_file *const *files,
                          int n, const char *source, dsc_err *err)
{
    const part_ref *first = NULL;
    for (int r = 0; r < fl->n_refs; r++) {
        const part_ref *ref = &fl->refs[r];
        int held = fl->done[r];
        for (int j = 0; j < n && !held; j++)
            held = st_find(files[j], ref->key) != NULL;
        if (!held && (!first || ref->entry < first->entry ||
                      (ref->entry == first->entry &&
                       ref->part < first->part)))
            first = ref;
    }
    if (!first)
        return 0;
    const graph_tensor *w = entry_tensor(fl, first->entry);
    return missing_key(w, &w->weight.part[first->part], source, err);
}


static void filler_print_notes(filler *fl)
{
    if (fl->notes && fl->unused.data)
        fputs(fl->unused.data, fl->notes);
}


int weights_fill_from_file(const graph *g, const weight_layout *layout,
                           const st_file *f, float *blob, FILE *notes,
                           dsc_err *err)
{
    return weights_fill_from_files(g, layout, &f, 1, st_path(f), blob, notes,
                                   err);
}


int weights_fill_from_files(const graph *g, const weight_layout *layout,
                            const st_file *const *files, int n_files,
                            const char *source, float *blob, FILE *notes,
                            dsc_err *err)
{
    for (int j = 0; j < n_files; j++)
        if (refuse_fp8(files[j], err))
            return -1;
    filler fl;
    if (filler_init(&fl, g, layout, blob, notes, source, err))
        return -1;
    int rc = filler_missing(&fl, files, n_files, source, err);
    for (int j = 0; j < n_files && !rc; j++)
        rc = filler_take(&fl, files[j], source, err);
    if (!rc)
        filler_print_notes(&fl);
    filler_free(&fl);
    return rc;
}


static uint64_t hash_key(const char *key, uint64_t seed)
{
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}


/* The value at index j of key's random sequence under its init rule. */
static float random_value(const graph_weight_part *p, uint64_t *state)
{
    const graph_shape *ks = &p->key_shape;
    float fan_in = (float)(p->transposed ? ks->dim[0] : ks->dim[ks->rank - 1]);
    float u = (float)(rng_next(state) >> 40) / (float)(1 << 24);
    switch (p->init) {
    case GRAPH_INIT_ONES:  return 1.0f + 0.1f * (2 * u - 1);
    case GRAPH_INIT_ZEROS: return 0.1f * (2 * u - 1);
    default:               return (2 * u - 1) / sqrtf(fan_in);
    }
}


/* Fill one part's rows (row floats each) from the key's own sequence, so
 * every slice of a key agrees with every other: element k of the key in
 * row-major order is draw k, reached with rng_skip, so a slice costs what
 * it holds. */
static void fill_random_part(float *dst, const graph_weight_part *p,
                             int64_t row, uint64_t seed)
{
    uint64_t start = hash_key(p->key, seed);
    if (!p->transposed) {
        uint64_t state = rng_skip(start, (uint64_t)(p->row_first * row));
        for (int64_t j = 0; j < p->rows * row; j++)
            dst[j] = random_value(p, &state);
        return;
    }
    /* Our row r, column c is the key's [c][row_first + r]. */
    int64_t in = p->key_shape.dim[0], out = p->key_shape.dim[1];
    for (int64_t c = 0; c < in; c++) {
        uint64_t state = rng_skip(start, (uint64_t)(c * out + p->row_first));
        for (int64_t r = 0; r < p->rows; r++)
            dst[r * in + c] = random_value(p, &state);
    }
}


void weights_fill_random(const graph *g, const weight_layout *layout,
                         uint64_t seed, float *blob)
{
    memset(blob, 0, (size_t)layout->total_floats * sizeof(float));
    rt_blob_header(blob, layout->packing, layout->total_floats);
    for (int i = 0; i < layout->n_entries; i++) {
        const weight_entry *e = &layout->entries[i];
        const graph_tensor *w = &g->tensors[e->tensor];
        int64_t row = row_floats(w);
        float *rows = calloc((size_t)graph_shape_count(&w->shape),
                             sizeof(float));
        if (!rows)
            continue;  /* leaves zeros; only random test data is at stake */
        float *at = rows;
        for (int k = 0; k < w->weight.n_parts; k++) {
            const graph_weight_part *p = &w->weight.part[k];
            if (p->key)
                fill_random_part(at, p, row, seed);
            at += p->rows * row;
        }
        store(w, e, rows, blob);
        free(rows);
    }
}


/* A sharded checkpoint: model.safetensors.index.json's weight_map names
 * the file (beside the index) of every key.  Shards are read one at a
 * time, each giving the parts it holds before it is let go, so only one
 * is in memory at once; a file listed under two names (a symlink, a hard
 * link) is read once. */
typedef struct shard_id {
    dev_t dev;
    ino_t ino;
    int place;           /* in the index's list */
} shard_id;

static int cmp_shard_id(const void *a, const void *b)
{
    const shard_id *x = a, *y = b;
    if (x->dev != y->dev)
        return (x->dev > y->dev) - (x->dev < y->dev);
    if (x->ino != y->ino)
        return (x->ino > y->ino) - (x->ino < y->ino);
    return (x->place > y->place) - (x->place < y->place);
}


/* repeat[i] = 1 for a shard that is the same file (device and inode) as
 * an earlier one: sorted, so many shards cost n log n.  A shard stat
 * cannot see is not a repeat: st_open names its problem.  -1 out of
 * memory. */
static int mark_repeats(char **shards, int n, unsigned char *repeat)
{
    shard_id *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    if (!ids)
        return -1;
    int m = 0;
    for (int i = 0; i < n; i++) {
        struct stat st;
        repeat[i] = 0;
        if (stat(shards[i], &st) == 0)
            ids[m++] = (shard_id){ st.st_dev, st.st_ino, i };
    }
    qsort(ids, (size_t)m, sizeof *ids, cmp_shard_id);
    for (int k = 1; k < m; k++)
        repeat[ids[k].place] = ids[k].dev == ids[k - 1].dev &&
                               ids[k].ino == ids[k - 1].ino;
    free(ids);
    return 0;
}


static int fill_from_index(const graph *g, const weight_layout *layout,
                           const char *index, float *blob, FILE *notes,
                           dsc_err *err)
{
    char **shards = NULL;
    int n = 0, rc = -1;
    unsigned char *repeat = NULL;
    filler fl;
    if (st_index_shards(index, &shards, &n, err))
        return -1;
    if (filler_init(&fl, g, layout, blob, notes, index, err))
        goto free_shards;
    if (!(repeat = malloc((size_t)n + 1)) || mark_repeats(shards, n, repeat)) {
        err_set(err, "%s: error: out of memory", index);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (repeat[i])
            continue;
        st_file *f = st_open(shards[i], err);
        if (!f)
            goto done;
        int bad = refuse_fp8(f, err) || filler_take(&fl, f, index, err);
        st_close(f);
        if (bad)
            goto done;
    }
    if (filler_missing(&fl, NULL, 0, index, err))
        goto done;
    filler_print_notes(&fl);
    rc = 0;
done:
    filler_free(&fl);
free_shards:
    for (int i = 0; i < n; i++)
        free(shards[i]);
    free(shards);
    free(repeat);
    return rc;
}


float *weights_make_blob(const graph *g, const weight_layout *layout,
                         const char *path, uint64_t seed, FILE *notes,
                         dsc_err *err)
{
    size_t floats = (size_t)layout->total_floats;
    /* Huge pages where the kernel gives them: see rt_alloc. */
    float *blob = rt_alloc((floats ? floats : 1) * sizeof(float));
    if (!blob) {
        err_set(err, "error: out of memory for %zu weight floats", floats);
        return NULL;
    }
    if (!path) {
        weights_fill_random(g, layout, seed, blob);
        return blob;
    }
    size_t len = strlen(path);
    if (len > 5 && strcmp(path + len - 5, ".json") == 0) {
        if (fill_from_index(g, layout, path, blob, notes, err)) {
            free(blob);
            return NULL;
        }
        return blob;
    }
    st_file *f = st_open(path, err);
    if (!f || weights_fill_from_file(g, layout, f, blob, notes, err)) {
        st_close(f);
        free(blob);
        return NULL;
    }
    st_close(f);
    return blob;
}
