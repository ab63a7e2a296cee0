/* tokenizer.c — BERT's WordPiece tokenizer (see tokenizer.h).
 *
 * Each rule follows Hugging Face tokenizers' Rust code (0.19), which
 * BertTokenizerFast runs:
 *   clean text: drop NUL, U+FFFD and "other" characters (Cc, Cf, Co) but
 *     \t \n \r; turn every White_Space character into a space;
 *   CJK ideographs (the ranges of is_chinese_char) get spaces around them;
 *   strip accents (strip_accents, or lowercase when it is null): NFD, then
 *     drop nonspacing marks (Mn);
 *   lowercase: Unicode's full lowercase mapping, character by character;
 *   split at White_Space (dropped) and punctuation (ASCII punctuation or
 *     a P* category; kept as a word of its own);
 *   WordPiece: the longest vocabulary entry from the word's start, then
 *     "##"-prefixed entries for the rest; a word with no full cover, or
 *     longer than max_input_chars_per_word characters, is [UNK].
 * Special tokens written in the text are taken whole before all that, the
 * leftmost (longest at one place) first, as tokenizers' AddedVocabulary. */
#define _POSIX_C_SOURCE 200809L
#include "tokenizer/tokenizer.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <utf8proc.h>

#include "io/fileio.h"
#include "io/json.h"
#include "tokenizer/tok_compat.h"

#define TOK_MAX_SPECIAL 4
#define TOK_MAX_ADDED 1024
/* Bytes of one added token's content: real ones are a few ([MASK],
 * <|endoftext|>); the automaton takes ~28 bytes per content byte, so this
 * bounds it at ~30 MB whatever the file says. */
#define TOK_MAX_ADDED_BYTES 1024
#define TOK_STR_(x) #x
#define TOK_STR(x) TOK_STR_(x)

typedef struct tok_slot {
    const char *key;     /* into the tokenizer's strings; NULL: empty */
    uint64_t hash;       /* key_hash of key */
    uint32_t len;
    int32_t id;
} tok_slot;

typedef struct tok_added {
    char *content;
    size_t len;
    int32_t id;
} tok_added;

/* A node of the Aho-Corasick automaton over the added tokens' contents
 * read backwards (added_matches).  Node 0 is the root. */
typedef struct ac_node {
    uint32_t child, sibling;  /* while building: children by byte, 0 ends */
    uint32_t edges;           /* then: its children are ac_edge[edges ..] */
    uint32_t n_edges;
    uint32_t fail;            /* the longest proper suffix that is a node */
    int16_t token;            /* the added token it spells, -1 none */
    int16_t longest;          /* the longest added token it ends with */
    unsigned char byte;       /* on the edge from its parent */
} ac_node;

struct tok_tokenizer {
    tok_slot *slots;          /* open addressing, power-of-two size */
    size_t cap, count;
    int cap_bits;             /* cap = 1 << cap_bits */
    uint64_t hash_x, hash_mul;  /* the secret hash keys (key_hash) */
    /* The lengths vocabulary entries have, ascending, and hash_x to the
     * power of each, less prefix_len for continuations (wordpiece). */
    size_t *lens, n_lens;
    uint64_t *pow_first, *pow_cont;
    uint64_t prefix_hash;     /* of the continuation prefix ("##") */
    char **owned;             /* vocabulary strings */
    size_t n_owned, cap_owned;
    int64_t vocab_size;       /* largest id + 1 */
    int clean_text, chinese, strip_accents, lowercase;
    char prefix[16];          /* continuing_subword_prefix */
    size_t prefix_len;
    int64_t max_chars;        /* max_input_chars_per_word */
    int32_t unk, pad;
    int32_t pre[TOK_MAX_SPECIAL], post[TOK_MAX_SPECIAL];
    int n_pre, n_post;
    tok_added *added;         /* matched in the raw text */
    int n_added;
    ac_node *ac;              /* their automaton (added_matches) */
    uint32_t *ac_edge;
    int no_compat;            /* measuring tok_compat.h: leave it out */
    char *path;               /* the file, for messages */
};


/* ---- the vocabulary ---------------------------------------------------- */

/* Hashes have secret random keys, so that a tokenizer.json cannot choose
 * entries that pile up in one run of slots (30,000 chosen for the old
 * unkeyed FNV-1a made encoding 20 times slower).  A key's hash is the
 * polynomial with its bytes (+ 1) as coefficients at a random point
 * hash_x, modulo the prime P = 2^61 - 1 (Carter-Wegman): two different
 * keys of up to n bytes agree at no more than n of the P points.  It
 * extends byte by byte, and the hash of any stretch of a word follows
 * from two prefix hashes in one multiplication, which wordpiece needs.
 * The slot comes from multiply-shift with a random odd hash_mul, a
 * universal family over 64-bit values.  Which slot an entry lands in
 * changes from run to run; what is found does not. */
#define HASH_P ((UINT64_C(1) << 61) - 1)

static uint64_t mul_mod_p(uint64_t a, uint64_t b)  /* a, b < HASH_P */
{
    /* The 122-bit product from 32-bit halves; 2^64 = 8 (mod P). */
    uint64_t al = (uint32_t)a, ah = a >> 32, bl = (uint32_t)b, bh = b >> 32;
    uint64_t ll = al * bl, mid = al * bh + ah * bl;
    uint64_t lo = ll + (mid << 32);
    uint64_t hi = ah * bh + (mid >> 32) + (lo < ll);
    uint64_t r = (lo & HASH_P) + (lo >> 61) + (hi << 3);
    r = (r & HASH_P) + (r >> 61);
    return r >= HASH_P ? r - HASH_P : r;
}


static uint64_t add_mod_p(uint64_t a, uint64_t b)  /* a, b < HASH_P */
{
    uint64_t r = a + b;
    return r >= HASH_P ? r - HASH_P : r;
}


/* The hash of (the bytes hashed to h) followed by s[0..n). */
static uint64_t hash_more(const tok_tokenizer *t, uint64_t h, const char *s,
                          size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = add_mod_p(mul_mod_p(h, t->hash_x), (unsigned char)s[i] + 1u);
    return h;
}


static uint64_t sub_mod_p(uint64_t a, uint64_t b)  /* a, b < HASH_P */
{
    return a >= b ? a - b : a + HASH_P - b;
}


static uint64_t pow_mod_p(uint64_t x, size_t e)
{
    uint64_t r = 1;
    for (; e; e >>= 1, x = mul_mod_p(x, x))
        if (e & 1)
            r = mul_mod_p(r, x);
    return r;
}


static uint64_t mix64(uint64_t z)  /* splitmix64's finalizer */
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}


static void hash_keys(tok_tokenizer *t)
{
    uint64_t k[2];
    int fd = open("/dev/urandom", O_RDONLY);
    ssize_t got = fd >= 0 ? read(fd, k, sizeof k) : -1;
    if (fd >= 0)
        close(fd);
    if (got != (ssize_t)sizeof k) {
        /* No /dev/urandom (a chroot?): the clock and addresses, which
         * whoever wrote the file cannot know either. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] = mix64((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 32 ^
                     (uint64_t)(uintptr_t)t);
        k[1] = mix64(k[0] ^ (uint64_t)(uintptr_t)&k ^ (uint64_t)getpid());
    }
    t->hash_x = 2 + k[0] % (HASH_P - 2);  /* not 0 or 1 */
    t->hash_mul = k[1] | 1;
}


static size_t slot_of(const tok_tokenizer *t, uint64_t hash, int bits)
{
    return (size_t)((hash * t->hash_mul) >> (64 - bits));
}


/* The id of the entry pre[0..pn) + s[0..n), whose hash is hash; -1 if
 * none. */
static int32_t vocab_find_hashed(const tok_tokenizer *t, uint64_t hash,
                                 const char *pre, size_t pn, const char *s,
                                 size_t n)
{
    if (!t->cap)
        return -1;
    for (size_t i = slot_of(t, hash, t->cap_bits);; i = (i + 1) & (t->cap - 1)) {
        const tok_slot *e = &t->slots[i];
        if (!e->key)
            return -1;
        if (e->hash == hash && e->len == pn + n &&
            memcmp(e->key, pre, pn) == 0 && memcmp(e->key + pn, s, n) == 0)
            return e->id;
    }
}


static int32_t vocab_find(const tok_tokenizer *t, const char *s, size_t n)
{
    return vocab_find_hashed(t, hash_more(t, 0, s, n), "", 0, s, n);
}


static int vocab_grow(tok_tokenizer *t)
{
    int bits = t->cap ? t->cap_bits + 1 : 10;
    size_t cap = (size_t)1 << bits;
    tok_slot *s = calloc(cap, sizeof *s);
    if (!s)
        return -1;
    for (size_t k = 0; k < t->cap; k++) {
        const tok_slot *e = &t->slots[k];
        if (!e->key)
            continue;
        size_t i = slot_of(t, e->hash, bits);
        while (s[i].key)
            i = (i + 1) & (cap - 1);
        s[i] = *e;
    }
    free(t->slots);
    t->slots = s;
    t->cap = cap;
    t->cap_bits = bits;
    return 0;
}


/* Takes key (malloc'd).  0, or 1 if the token is there already, -1 out of
 * memory. */
static int vocab_add(tok_tokenizer *t, char *key, int32_t id)
{
    size_t n = strlen(key);
    uint64_t hash = hash_more(t, 0, key, n);
    if (vocab_find_hashed(t, hash, "", 0, key, n) >= 0) {
        free(key);
        return 1;
    }
    if (t->n_owned == t->cap_owned) {
        size_t cap = t->cap_owned ? t->cap_owned * 2 : 1024;
        char **o = realloc(t->owned, cap * sizeof *o);
        if (!o) {
            free(key);
            return -1;
        }
        t->owned = o;
        t->cap_owned = cap;
    }
    t->owned[t->n_owned++] = key;
    if ((t->count + 1) * 2 > t->cap && vocab_grow(t))
        return -1;
    size_t i = slot_of(t, hash, t->cap_bits);
    while (t->slots[i].key)
        i = (i + 1) & (t->cap - 1);
    t->slots[i] = (tok_slot){ key, hash, (uint32_t)n, id };
    t->count++;
    if (id >= t->vocab_size)
        t->vocab_size = (int64_t)id + 1;
    return 0;
}


static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}


/* The lengths entries have and the prefix's hash, for wordpiece (once
 * the prefix is known).  -1 out of memory. */
static int index_lengths(tok_tokenizer *t)
{
    size_t n = 0, k = 0;
    t->lens = malloc((t->count ? t->count : 1) * sizeof *t->lens);
    if (!t->lens)
        return -1;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].key)
            t->lens[n++] = t->slots[i].len;
    qsort(t->lens, n, sizeof *t->lens, cmp_size);
    for (size_t i = 0; i < n; i++)
        if (!k || t->lens[i] != t->lens[k - 1])
            t->lens[k++] = t->lens[i];
    t->n_lens = k;
    t->prefix_hash = hash_more(t, 0, t->prefix, t->prefix_len);
    t->pow_first = malloc((k ? k : 1) * sizeof *t->pow_first);
    t->pow_cont = malloc((k ? k : 1) * sizeof *t->pow_cont);
    if (!t->pow_first || !t->pow_cont)
        return -1;
    for (size_t i = 0; i < k; i++) {
        t->pow_first[i] = pow_mod_p(t->hash_x, t->lens[i]);
        t->pow_cont[i] = t->lens[i] > t->prefix_len
                         ? pow_mod_p(t->hash_x, t->lens[i] - t->prefix_len) : 0;
    }
    return 0;
}


/* How many entry lengths are at most n. */
static size_t lens_upto(const tok_tokenizer *t, size_t n)
{
    size_t lo = 0, hi = t->n_lens;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t->lens[mid] <= n)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}


void tok_free(tok_tokenizer *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_owned; i++)
        free(t->owned[i]);
    for (int i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->owned);
    free(t->slots);
    free(t->lens);
    free(t->pow_first);
    free(t->pow_cont);
    free(t->added);
    free(t->ac);
    free(t->ac_edge);
    free(t->path);
    free(t);
}


int64_t tok_vocab_size(const tok_tokenizer *t) { return t->vocab_size; }
int32_t tok_pad_id(const tok_tokenizer *t) { return t->pad; }
int tok_special_count(const tok_tokenizer *t) { return t->n_pre + t->n_post; }


/* ---- added tokens ----------------------------------------------------- */

/* The child of node u by byte c, 0 if none. */
static uint32_t ac_child(const tok_tokenizer *t, uint32_t u, unsigned char c)
{
    const uint32_t *e = t->ac_edge + t->ac[u].edges;
    size_t lo = 0, hi = t->ac[u].n_edges;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        unsigned char b = t->ac[e[mid]].byte;
        if (b == c)
            return e[mid];
        if (b < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}


/* The automaton of the added tokens read backwards, for added_matches.
 * -1 out of memory. */
static int build_added_automaton(tok_tokenizer *t)
{
    size_t total = 1;
    for (int i = 0; i < t->n_added; i++)
        total += t->added[i].len;
    if (total > UINT32_MAX)
        return -1;
    ac_node *a = t->ac = calloc(total, sizeof *a);
    uint32_t *order = malloc(total * sizeof *order);
    t->ac_edge = malloc(total * sizeof *t->ac_edge);
    if (!a || !order || !t->ac_edge) {
        free(order);
        return -1;
    }
    /* The trie of the reversed contents, children sorted by byte. */
    uint32_t n = 1;
    a[0].token = -1;
    for (int i = 0; i < t->n_added; i++) {
        uint32_t u = 0;
        for (size_t j = t->added[i].len; j-- > 0;) {
            unsigned char c = (unsigned char)t->added[i].content[j];
            uint32_t *link = &a[u].child;
            while (*link && a[*link].byte < c)
                link = &a[*link].sibling;
            if (!*link || a[*link].byte != c) {
                a[n] = (ac_node){ .sibling = *link, .token = -1, .byte = c };
                *link = n++;
            }
            u = *link;
        }
        if (a[u].token < 0)  /* the same content twice: the first counts */
            a[u].token = (int16_t)i;
    }
    /* Breadth first: each node's children into ac_edge, its failure link
     * from its parent's, and the longest token it ends with (its own, or
     * the one its failure link ends with, which is shorter). */
    uint32_t head = 0, tail = 1, n_edge = 0;
    order[0] = 0;
    a[0].longest = -1;
    while (head < tail) {
        uint32_t u = order[head++];
        a[u].edges = n_edge;
        for (uint32_t v = a[u].child; v; v = a[v].sibling) {
            t->ac_edge[n_edge++] = v;
            order[tail++] = v;
        }
        a[u].n_edges = n_edge - a[u].edges;
        for (uint32_t k = a[u].edges; k < n_edge; k++) {
            uint32_t v = t->ac_edge[k], f = a[u].fail, w = 0;
            while (u && !(w = ac_child(t, f, a[v].byte)) && f)
                f = a[f].fail;
            a[v].fail = w;
            a[v].longest = a[v].token >= 0 ? a[v].token : a[w].longest;
        }
    }
    free(order);
    return 0;
}


/* ---- reading tokenizer.json ------------------------------------------- */

static int read_bool(jparser *jp, const char *what, int *out)
{
    jp_ws(jp);
    int c = jp_peek(jp);
    if (c != 't' && c != 'f')
        return jp_syntax(jp, "%s must be true or false", what);
    *out = c == 't';
    return jp_literal(jp, c == 't' ? "true" : "false");
}


/* null (*out unchanged) or a boolean. */
static int read_opt_bool(jparser *jp, const char *what, int *out)
{
    jp_ws(jp);
    if (jp_peek(jp) == 'n')
        return jp_literal(jp, "null");
    return read_bool(jp, what, out);
}


static int read_string(jparser *jp, const char *what, char **out)
{
    jp_ws(jp);
    if (jp_peek(jp) != '"')
        return jp_syntax(jp, "%s must be a string", what);
    return jp_string(jp, out);
}


/* An integer in [lo, hi]. */
static int read_int(jparser *jp, const char *what, int64_t lo, int64_t hi,
                    int64_t *out)
{
    jnum n;
    jp_ws(jp);
    size_t at = jp->pos;
    int c = jp_peek(jp);
    if (c != '-' && (c < '0' || c > '9'))
        return jp_syntax(jp, "%s must be an integer", what);
    if (jp_number(jp, &n))
        return -1;
    int64_t v = n.negative ? -(int64_t)n.mag : (int64_t)n.mag;
    if (!n.integral || n.big || v < lo || v > hi) {
        /* A number of any length: show its start. */
        int shown = n.len > 20 ? 20 : (int)n.len;
        jp->pos = at;
        return jp_syntax(jp, "%s = %.*s%s is not an integer in [%lld, %lld]",
                         what, shown, jp->s + n.at, n.len > 20 ? "..." : "",
                         (long long)lo, (long long)hi);
    }
    *out = v;
    return 0;
}


/* Walk an object at the cursor: fn(jp, key, arg) reads each value.
 * Duplicate keys are errors. */
typedef int (*member_fn)(jparser *jp, const char *key, void *arg);

static int read_object(jparser *jp, int depth, const char *what,
                       member_fn fn, void *arg)
{
    keyset ks = {0};
    int first = 1, r;
    char *key, buf[80];
    jp_ws(jp);
    if (jp_peek(jp) != '{')
        return jp_syntax(jp, "%s must be an object", what);
    if (jp_open(jp, '{', depth))
        return -1;
    while ((r = jp_next(jp, '}', &first, &key)) == 1) {
        if (keyset_add(&ks, key)) {
            r = jp_syntax(jp, "out of memory");
            break;
        }
        if ((r = fn(jp, key, arg)))
            break;
    }
    const char *dup = r ? NULL : keyset_dup(&ks);
    if (dup)
        r = jp_syntax(jp, "%s: duplicate key '%s'", what, json_show(dup, buf));
    keyset_free(&ks);
    return r ? -1 : 0;
}


/* A "type" member must say want (anything else is not supported). */
static int check_type(jparser *jp, const char *what, const char *want,
                      const char *also)
{
    char *s, buf[80];
    size_t at = (jp_ws(jp), jp->pos);
    if (read_string(jp, "type", &s))
        return -1;
    int ok = strcmp(s, want) == 0 || (also && strcmp(s, also) == 0);
    if (!ok) {
        jp->pos = at;
        jp_syntax(jp, "%s type '%s' is not supported (dsc reads %s%s%s)",
                  what, json_show(s, buf), want, also ? " and " : "",
                  also ? also : "");
    }
    free(s);
    return ok ? 0 : -1;
}


typedef struct load_state {
    tok_tokenizer *t;
    char *unk_token;
    int have_model, have_normalizer;
    /* "model" and its "vocab" met: a second one is a duplicate key, said
     * before its tokens are read twice (read_object says so only after). */
    int seen_model, seen_vocab;
    /* The post-processor's template, by token name, resolved at the end. */
    char *pre_names[TOK_MAX_SPECIAL], *post_names[TOK_MAX_SPECIAL];
    int n_pre, n_post, seen_sequence;
    size_t template_at;
} load_state;


static int vocab_member(jparser *jp, const char *key, void *arg)
{
    load_state *st = arg;
    int64_t id;
    char buf[80];
    if (read_int(jp, "a vocabulary id", 0, INT32_MAX - 1, &id))
        return -1;
    char *k = strdup(key);
    int r = k ? vocab_add(st->t, k, (int32_t)id) : -1;
    if (r < 0)
        return jp_syntax(jp, "out of memory");
    if (r > 0)
        return jp_syntax(jp, "vocabulary token '%s' appears twice",
                         json_show(key, buf));
    return 0;
}


static int model_member(jparser *jp, const char *key, void *arg)
{
    load_state *st = arg;
    tok_tokenizer *t = st->t;
    if (!strcmp(key, "type"))
        return check_type(jp, "model", "WordPiece", NULL);
    if (!strcmp(key, "unk_token")) {
        free(st->unk_token);
        st->unk_token = NULL;
        return read_string(jp, "unk_token", &st->unk_token);
    }
    if (!strcmp(key, "continuing_subword_prefix")) {
        char *s;
        if (read_string(jp, "continuing_subword_prefix", &s))
            return -1;
        size_t n = strlen(s);
        if (n >= sizeof t->prefix) {
            free(s);
            return jp_syntax(jp, "continuing_subword_prefix is longer than "
                             "%zu bytes", sizeof t->prefix - 1);
        }
        memcpy(t->prefix, s, n + 1);
        t->prefix_len = n;
        free(s);
        return 0;
    }
    if (!strcmp(key, "max_input_chars_per_word"))
        return read_int(jp, "max_input_chars_per_word", 1, 1 << 20,
                        &t->max_chars);
    if (!strcmp(key, "vocab")) {
        if (st->seen_vocab++)
            return jp_syntax(jp, "model: duplicate key 'vocab'");
        st->have_model = 1;
        return read_object(jp, 3, "model.vocab", vocab_member, st);
    }
    return jp_skip(jp, 3);
}


static int normalizer_member(jparser *jp, const char *key, void *arg)
{
    tok_tokenizer *t = ((load_state *)arg)->t;
    if (!strcmp(key, "type"))
        return check_type(jp, "normalizer", "BertNormalizer", NULL);
    if (!strcmp(key, "clean_text"))
        return read_bool(jp, "clean_text", &t->clean_text);
    if (!strcmp(key, "handle_chinese_chars"))
        return read_bool(jp, "handle_chinese_chars", &t->chinese);
    if (!strcmp(key, "strip_accents"))
        return read_opt_bool(jp, "strip_accents", &t->strip_accents);
    if (!strcmp(key, "lowercase"))
        return read_bool(jp, "lowercase", &t->lowercase);
    return jp_skip(jp, 3);
}


static int pretok_member(jparser *jp, const char *key, void *arg)
{
    (void)arg;
    if (!strcmp(key, "type"))
        return check_type(jp, "pre_tokenizer", "BertPreTokenizer", NULL);
    return jp_skip(jp, 3);
}


/* {"SpecialToken": {"id": "[CLS]", "type_id": 0}} or {"Sequence": ...} */
static int template_piece(jparser *jp, const char *key, void *arg)
{
    load_state *st = arg;
    if (!strcmp(key, "Sequence")) {
        st->seen_sequence = 1;
        return jp_skip(jp, 5);
    }
    if (strcmp(key, "SpecialToken"))
        return jp_syntax(jp, "a template piece must be SpecialToken or "
                         "Sequence");
    int first = 1, r;
    char *k, *name = NULL;
    if (jp_open(jp, '{', 5))
        return -1;
    while ((r = jp_next(jp, '}', &first, &k)) == 1) {
        int is_id = !strcmp(k, "id");
        free(k);
        if (is_id) {
            free(name);
            name = NULL;
            r = read_string(jp, "SpecialToken id", &name);
        } else {
            r = jp_skip(jp, 6);
        }
        if (r)
            break;
    }
    if (r || !name) {
        free(name);
        return r ? -1 : jp_syntax(jp, "SpecialToken without an id");
    }
    int *n = st->seen_sequence ? &st->n_post : &st->n_pre;
    char **names = st->seen_sequence ? st->post_names : st->pre_names;
    if (*n == TOK_MAX_SPECIAL) {
        free(name);
        return jp_syntax(jp, "more than %d special tokens on one side",
                         TOK_MAX_SPECIAL);
    }
    names[(*n)++] = name;
    return 0;
}


static int post_member(jparser *jp, const char *key, void *arg)
{
    load_state *st = arg;
    if (!strcmp(key, "type"))
        return check_type(jp, "post_processor", "TemplateProcessing", NULL);
    if (!strcmp(key, "single")) {
        int first = 1, r;
        jp_ws(jp);
        st->template_at = jp->pos;
        if (jp_peek(jp) != '[')
            return jp_syntax(jp, "post_processor.single must be an array");
        if (jp_open(jp, '[', 3))
            return -1;
        while ((r = jp_next(jp, ']', &first, NULL)) == 1)
            if (read_object(jp, 4, "a template piece", template_piece, st))
                return -1;
        return r;
    }
    return jp_skip(jp, 3);
}


typedef struct added_state {
    load_state *st;
    char *content;
    int64_t id;
    int have_id, normalized, lstrip, rstrip, single_word;
} added_state;


static int added_member(jparser *jp, const char *key, void *arg)
{
    added_state *a = arg;
    if (!strcmp(key, "id")) {
        a->have_id = 1;
        return read_int(jp, "added token id", 0, INT32_MAX - 1, &a->id);
    }
    if (!strcmp(key, "content")) {
        free(a->content);
        a->content = NULL;
        return read_string(jp, "content", &a->content);
    }
    if (!strcmp(key, "normalized"))
        return read_bool(jp, "normalized", &a->normalized);
    if (!strcmp(key, "lstrip"))
        return read_bool(jp, "lstrip", &a->lstrip);
    if (!strcmp(key, "rstrip"))
        return read_bool(jp, "rstrip", &a->rstrip);
    if (!strcmp(key, "single_word"))
        return read_bool(jp, "single_word", &a->single_word);
    return jp_skip(jp, 4);
}


static int read_added(jparser *jp, load_state *st)
{
    tok_tokenizer *t = st->t;
    int first = 1, r;
    jp_ws(jp);
    if (jp_peek(jp) != '[')
        return jp_syntax(jp, "added_tokens must be an array");
    if (jp_open(jp, '[', 2))
        return -1;
    while ((r = jp_next(jp, ']', &first, NULL)) == 1) {
        jp_ws(jp);
        size_t at = jp->pos;
        added_state a = { .st = st };
        if (read_object(jp, 3, "an added token", added_member, &a)) {
            free(a.content);
            return -1;
        }
        const char *why = !a.content || !a.content[0] ? "needs a content"
                        : !a.have_id ? "needs an id"
                        : a.normalized || a.lstrip || a.rstrip || a.single_word
                        ? "has normalized, lstrip, rstrip or single_word set "
                          "(not supported)"
                        : t->n_added == TOK_MAX_ADDED ? "is one too many"
                        : strlen(a.content) > TOK_MAX_ADDED_BYTES
                        ? "is longer than " TOK_STR(TOK_MAX_ADDED_BYTES)
                          " bytes"
                        : NULL;
        if (why) {
            free(a.content);
            jp->pos = at;
            return jp_syntax(jp, "added token %s", why);
        }
        if (!(t->n_added & (t->n_added - 1))) {
            tok_added *p = realloc(t->added, (size_t)(t->n_added ? 2 *
                                   t->n_added : 1) * sizeof *p);
            if (!p) {
                free(a.content);
                return jp_syntax(jp, "out of memory");
            }
            t->added = p;
        }
        t->added[t->n_added++] = (tok_added){ a.content, strlen(a.content),
                                              (int32_t)a.id };
        if (a.id >= t->vocab_size)
            t->vocab_size = a.id + 1;
    }
    return r;
}


static int top_member(jparser *jp, const char *key, void *arg)
{
    load_state *st = arg;
    jp_ws(jp);
    int is_null = jp_peek(jp) == 'n';
    if (!strcmp(key, "model")) {
        if (st->seen_model++)
            return jp_syntax(jp, "tokenizer.json: duplicate key 'model'");
        return read_object(jp, 2, "model", model_member, st);
    }
    if (!strcmp(key, "normalizer")) {
        if (is_null) {  /* no normalization at all */
            st->t->clean_text = st->t->chinese = st->t->lowercase = 0;
            st->t->strip_accents = 0;
            return jp_literal(jp, "null");
        }
        st->have_normalizer = 1;
        return read_object(jp, 2, "normalizer", normalizer_member, st);
    }
    if (!strcmp(key, "pre_tokenizer"))
        return is_null ? jp_syntax(jp, "pre_tokenizer null is not supported "
                                   "(dsc reads BertPreTokenizer)")
                       : read_object(jp, 2, "pre_tokenizer", pretok_member, st);
    if (!strcmp(key, "post_processor"))
        return is_null ? jp_literal(jp, "null")
                       : read_object(jp, 2, "post_processor", post_member, st);
    if (!strcmp(key, "added_tokens"))
        return read_added(jp, st);
    return jp_skip(jp, 2);
}


/* The id of a special token's name: an added token, else the vocabulary. */
static int32_t special_id(const tok_tokenizer *t, const char *name)
{
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].content, name))
            return t->added[i].id;
    return vocab_find(t, name, strlen(name));
}


static tok_tokenizer *tok_new(void)
{
    tok_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    /* BertNormalizer's defaults; strip_accents -1: as lowercase says. */
    t->clean_text = t->chinese = t->lowercase = 1;
    t->strip_accents = -1;
    memcpy(t->prefix, "##", 3);
    t->prefix_len = 2;
    t->max_chars = 100;
    t->no_compat = getenv("DSC_TOK_NO_COMPAT") != NULL;
    hash_keys(t);
    return t;
}


static tok_tokenizer *load_json(const char *text, size_t len,
                                const char *path, dsc_err *err)
{
    tok_tokenizer *t = tok_new();
    load_state st = { .t = t };
    jparser jp = { .s = text, .len = len, .path = path, .err = err,
                   .lines = 1 };
    if (!t) {
        err_file(err, path, "out of memory");
        return NULL;
    }
    if (read_object(&jp, 1, "tokenizer.json", top_member, &st))
        goto fail;
    jp_ws(&jp);
    if (jp.pos != jp.len) {
        jp_syntax(&jp, "unexpected text after the JSON object");
        goto fail;
    }
    if (!st.have_model || !t->count) {
        err_file(err, path, "no WordPiece model.vocab: not a BERT "
                 "tokenizer.json");
        goto fail;
    }
    t->unk = vocab_find(t, st.unk_token ? st.unk_token : "[UNK]",
                        strlen(st.unk_token ? st.unk_token : "[UNK]"));
    if (t->unk < 0) {
        err_file(err, path, "the unk_token '%s' is not in the vocabulary",
                 st.unk_token ? st.unk_token : "[UNK]");
        goto fail;
    }
    int32_t pad = special_id(t, "[PAD]");
    t->pad = pad >= 0 ? pad : 0;
    for (int side = 0; side < 2; side++) {
        char **names = side ? st.post_names : st.pre_names;
        int n = side ? st.n_post : st.n_pre;
        for (int i = 0; i < n; i++) {
            int32_t id = special_id(t, names[i]);
            if (id < 0) {
                jp.pos = st.template_at;
                char buf[80];
                jp_syntax(&jp, "post_processor: special token '%s' is neither "
                          "an added token nor in the vocabulary",
                          json_show(names[i], buf));
                goto fail;
            }
            (side ? t->post : t->pre)[i] = id;
        }
        *(side ? &t->n_post : &t->n_pre) = n;
    }
    if (t->strip_accents < 0)
        t->strip_accents = t->lowercase;
    if (index_lengths(t) || build_added_automaton(t)) {
        err_file(err, path, "out of memory");
        goto fail;
    }
    goto done;
fail:
    tok_free(t);
    t = NULL;
done:
    free(st.unk_token);
    for (int i = 0; i < st.n_pre; i++)
        free(st.pre_names[i]);
    for (int i = 0; i < st.n_post; i++)
        free(st.post_names[i]);
    return t;
}


/* vocab.txt: token per line, id = line number - 1; bert-base-uncased's
 * settings, [CLS] ... [SEP] around each sentence, [UNK], [PAD]. */
static tok_tokenizer *load_vocab_txt(const char *text, size_t len,
                                     const char *path, dsc_err *err)
{
    tok_tokenizer *t = tok_new();
    if (!t) {
        err_file(err, path, "out of memory");
        return NULL;
    }
    t->strip_accents = 1;
    int32_t line = 0;
    for (size_t at = 0; at < len; line++) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len, n = end - at;
        if (n && text[at + n - 1] == '\r')
            n--;
        for (size_t i = 0; i < n;) {
            size_t k = json_utf8_seq((const unsigned char *)text + at + i,
                                     n - i);
            if (!k || text[at + i] == '\0') {
                err_set(err, "%s:%d: error: %s at byte %zu of the line", path,
                        (int)line + 1, k ? "a NUL character" : "invalid UTF-8", i);
                tok_free(t);
                return NULL;
            }
            i += k;
        }
        char *key = malloc(n + 1);
        if (!key) {
            err_file(err, path, "out of memory");
            tok_free(t);
            return NULL;
        }
        memcpy(key, text + at, n);
        key[n] = '\0';
        if (vocab_add(t, key, line) < 0) {
            err_file(err, path, "out of memory");
            tok_free(t);
            return NULL;
        }
        at = end + 1;
    }
    int32_t cls = vocab_find(t, "[CLS]", 5), sep = vocab_find(t, "[SEP]", 5);
    t->unk = vocab_find(t, "[UNK]", 5);
    t->pad = vocab_find(t, "[PAD]", 5);
    if (cls < 0 || sep < 0 || t->unk < 0 || t->pad < 0) {
        err_file(err, path, "a BERT vocab.txt needs [CLS], [SEP], [UNK] and "
                 "[PAD]");
        tok_free(t);
        return NULL;
    }
    t->pre[t->n_pre++] = cls;
    t->post[t->n_post++] = sep;
    static const char *const specials[] = { "[PAD]", "[UNK]", "[CLS]",
                                            "[SEP]", "[MASK]" };
    for (size_t i = 0; i < sizeof specials / sizeof *specials; i++) {
        int32_t id = vocab_find(t, specials[i], strlen(specials[i]));
        char *c = id >= 0 ? strdup(specials[i]) : NULL;
        if (id < 0)
            continue;
        tok_added *p = c ? realloc(t->added, (size_t)(t->n_added + 1) *
                                   sizeof *p) : NULL;
        if (!p) {
            free(c);
            err_file(err, path, "out of memory");
            tok_free(t);
            return NULL;
        }
        t->added = p;
        t->added[t->n_added++] = (tok_added){ c, strlen(c), id };
    }
    if (index_lengths(t) || build_added_automaton(t)) {
        err_file(err, path, "out of memory");
        tok_free(t);
        return NULL;
    }
    return t;
}


tok_tokenizer *tok_load_memory(const char *bytes, size_t len,
                               const char *path, dsc_err *err)
{
    size_t n = strlen(path);
    tok_tokenizer *t = n >= 4 && !strcmp(path + n - 4, ".txt")
                       ? load_vocab_txt(bytes, len, path, err)
                       : load_json(bytes, len, path, err);
    if (t && !(t->path = strdup(path))) {
        err_file(err, path, "out of memory");
        tok_free(t);
        return NULL;
    }
    return t;
}


tok_tokenizer *tok_load(const char *path, dsc_err *err)
{
    size_t len;
    char *text = file_read_all(path, &len, err);
    if (!text)
        return NULL;
    tok_tokenizer *t = tok_load_memory(text, len, path, err);
    free(text);
    return t;
}


/* ---- encoding ---------------------------------------------------------- */

/* A growable array of code points. */
typedef struct cps {
    int32_t *v;
    size_t n, cap;
} cps;


static int cps_push(cps *c, int32_t cp)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        int32_t *v = realloc(c->v, cap * sizeof *v);
        if (!v)
            return -1;
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = cp;
    return 0;
}


static int batch_push(tok_batch *b, int32_t id)
{
    if (b->n_ids == b->cap_ids) {
        int64_t cap = b->cap_ids ? b->cap_ids * 2 : 256;
        int32_t *v = realloc(b->ids, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        b->ids = v;
        b->cap_ids = cap;
    }
    b->ids[b->n_ids++] = id;
    return 0;
}


/* Characters the tokenizers crate's older Unicode tables do not know, so
 * that it neither splits, strips nor drops them (tok_compat.h). */
static int is_compat_plain(const tok_tokenizer *t, int32_t c)
{
    size_t lo = 0, hi = sizeof tok_compat_plain / sizeof *tok_compat_plain;
    if (t->no_compat || c < 0x80)
        return 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < tok_compat_plain[mid][0])
            hi = mid;
        else if (c > tok_compat_plain[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}


/* Rust's char::is_whitespace: the White_Space property (PropList.txt;
 * utf8proc has categories, not this property). */
static int is_white_space(int32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 ||
           c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}


/* tokenizers' is_control: "other" characters (Cc, Cf, Co; the crate's
 * unassigned Cn are kept, as measured against BertTokenizerFast) except
 * the three that count as whitespace. */
static int is_control(const tok_tokenizer *t, int32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r' || is_compat_plain(t, c))
        return 0;
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CS;
}


static int is_punctuation(const tok_tokenizer *t, int32_t c)
{
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96)
        || (c >= 123 && c <= 126))
        return 1;
    if (c == 0x111C9 && !t->no_compat)  /* Po in the crate's tables, Mn now */
        return 1;
    if (is_compat_plain(t, c))
        return 0;
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}


/* tokenizers' is_chinese_char (CJK Unified Ideographs and extensions,
 * compatibility ideographs). */
static int is_chinese(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}


/* A nonspacing mark (Mn) as the tokenizers crate's tables say. */
static int is_nonspacing(const tok_tokenizer *t, int32_t c)
{
    if (c == 0x1734 && !t->no_compat)  /* Mn in the crate's tables, Mc now */
        return 1;
    if (c == 0x111C9 && !t->no_compat)  /* Po there (is_punctuation) */
        return 0;
    return utf8proc_category(c) == UTF8PROC_CATEGORY_MN &&
           !is_compat_plain(t, c);
}


/* Canonical decomposition (NFD) of c appended to out, marks in canonical
 * order. */
static int nfd_push(cps *out, int32_t c)
{
    utf8proc_int32_t buf[32];
    int last = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char(c, buf, 32,
                                                 UTF8PROC_DECOMPOSE, &last);
    if (n < 0 || n > 32)
        return cps_push(out, c);
    for (utf8proc_ssize_t i = 0; i < n; i++) {
        if (cps_push(out, buf[i]))
            return -1;
        /* Insertion into the run of nonzero combining classes. */
        int cc = utf8proc_get_property(buf[i])->combining_class;
        for (size_t j = out->n - 1; cc && j > 0; j--) {
            int prev = utf8proc_get_property(out->v[j - 1])->combining_class;
            if (!prev || prev <= cc)
                break;
            int32_t tmp = out->v[j - 1];
            out->v[j - 1] = out->v[j];
            out->v[j] = tmp;
        }
    }
    return 0;
}


/* The BertNormalizer over cp[0..n) into out. */
static int normalize(const tok_tokenizer *t, const int32_t *cp, size_t n,
                     cps *out, cps *tmp)
{
    tmp->n = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t c = cp[i];
        if (t->clean_text) {
            if (c == 0 || c == 0xFFFD || is_control(t, c))
                continue;
            if (is_white_space(c))
                c = ' ';
        }
        if (t->chinese && is_chinese(c)) {
            if (cps_push(tmp, ' ') || cps_push(tmp, c) || cps_push(tmp, ' '))
                return -1;
        } else if (cps_push(tmp, c)) {
            return -1;
        }
    }
    out->n = 0;
    for (size_t i = 0; i < tmp->n; i++) {
        int32_t c = tmp->v[i];
        if (t->strip_accents) {
            size_t at = out->n;
            if (nfd_push(out, c))
                return -1;
            /* Drop the nonspacing marks just added (after ordering). */
            size_t k = at;
            for (size_t j = at; j < out->n; j++)
                if (!is_nonspacing(t, out->v[j]))
                    out->v[k++] = out->v[j];
            out->n = k;
        } else if (cps_push(out, c)) {
            return -1;
        }
    }
    if (t->lowercase) {
        /* Into tmp, then swap: İ becomes two characters, and shifting the
         * rest of the buffer along for each one was quadratic. */
        tmp->n = 0;
        for (size_t i = 0; i < out->n; i++) {
            int32_t c = out->v[i];
            /* The one unconditional full lowercase mapping that is not
             * one character (SpecialCasing.txt): İ -> i + U+0307. */
            if (c == 0x130 ? cps_push(tmp, 'i') || cps_push(tmp, 0x307)
                           : cps_push(tmp, utf8proc_tolower(c)))
                return -1;
        }
        cps swap = *out;
        *out = *tmp;
        *tmp = swap;
    }
    return 0;
}


static size_t put_utf8(char *o, int32_t cp)
{
    return (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)o);
}


/* The hashes of a word's prefixes (wordpiece), grown as words need. */
typedef struct prefix_hashes {
    uint64_t *v;
    size_t cap;
} prefix_hashes;


/* WordPiece of one word (its UTF-8 in w, chars characters): from each
 * start the longest entry that matches there.  Only lengths some entry
 * has are tried, each hash in one multiplication from the word's prefix
 * hashes ph (ph[i]: of w[0..i)), and bytes compared only when hashes
 * agree: re-hashing every length down from the longest entry cost
 * n * L^2 for an entry of L bytes. */
static int wordpiece(const tok_tokenizer *t, const char *w, size_t n,
                     size_t chars, tok_batch *out, prefix_hashes *ph)
{
    if ((int64_t)chars > t->max_chars)
        return batch_push(out, t->unk);
    if (n + 1 > ph->cap) {
        uint64_t *v = realloc(ph->v, (n + 1) * sizeof *v);
        if (!v)
            return -1;
        ph->v = v;
        ph->cap = n + 1;
    }
    uint64_t *h = ph->v;
    h[0] = 0;
    for (size_t i = 0; i < n; i++)
        h[i + 1] = hash_more(t, h[i], w + i, 1);
    int64_t mark = out->n_ids;
    size_t start = 0;
    while (start < n) {
        size_t pre = start ? t->prefix_len : 0, end = start;
        uint64_t hp = start ? t->prefix_hash : 0;
        const uint64_t *pw = start ? t->pow_cont : t->pow_first;
        int32_t id = -1;
        for (size_t k = lens_upto(t, n - start + pre); k-- > 0;) {
            if (t->lens[k] <= pre)
                break;
            size_t e = start + t->lens[k] - pre;
            if (e < n && ((unsigned char)w[e] & 0xC0) == 0x80)
                continue;  /* not at a character boundary */
            /* prefix + w[start..e) = hp x^m + h[e] - h[start] x^m */
            uint64_t hash = add_mod_p(h[e], mul_mod_p(sub_mod_p(hp, h[start]),
                                                      pw[k]));
            id = vocab_find_hashed(t, hash, t->prefix, pre, w + start,
                                   e - start);
            if (id >= 0) {
                end = e;
                break;
            }
        }
        if (id < 0) {
            out->n_ids = mark;
            return batch_push(out, t->unk);
        }
        if (batch_push(out, id))
            return -1;
        start = end;
    }
    return 0;
}


/* Normalize, split and WordPiece one stretch of text without special
 * tokens. */
static int encode_plain(const tok_tokenizer *t, const int32_t *cp, size_t n,
                        tok_batch *out, cps *norm, cps *tmp)
{
    if (normalize(t, cp, n, norm, tmp))
        return -1;
    /* Room for the longest word in UTF-8. */
    char *word = malloc(norm->n * 4 + 1);
    prefix_hashes ph = {0};
    int rc = word ? 0 : -1;
    size_t len = 0, chars = 0;
    for (size_t i = 0; i <= norm->n && !rc; i++) {
        int32_t c = i < norm->n ? norm->v[i] : ' ';
        int space = is_white_space(c), punct = !space && is_punctuation(t, c);
        if ((space || punct) && chars) {
            rc = wordpiece(t, word, len, chars, out, &ph);
            len = chars = 0;
        }
        if (space || rc)
            continue;
        len += put_utf8(word + len, c);
        chars++;
        if (punct) {
            rc = wordpiece(t, word, len, chars, out, &ph);
            len = chars = 0;
        }
    }
    free(word);
    free(ph.v);
    return rc;
}


/* match[i] (i < len): the added token starting at text[i], the longest if
 * several do, else -1.  One pass backwards through the automaton of the
 * reversed tokens, linear in the text: trying every token at every byte
 * cost bytes * tokens * their length. */
static void added_matches(const tok_tokenizer *t, const char *text,
                          size_t len, int16_t *match)
{
    uint32_t u = 0;
    for (size_t i = len; i-- > 0;) {
        unsigned char c = (unsigned char)text[i];
        uint32_t v;
        while (!(v = ac_child(t, u, c)) && u)
            u = t->ac[u].fail;
        u = v;
        match[i] = t->ac[u].longest;
    }
}


int tok_encode(const tok_tokenizer *t, const char *text, size_t len,
               int64_t max_len, tok_batch *out, size_t *bad_at)
{
    cps cp = {0}, norm = {0}, tmp = {0};
    int64_t first = out->n_ids;
    int rc = 0;
    /* Special tokens are taken leftmost first, the longest at one place. */
    int16_t *match = t->n_added && len ? malloc(len * sizeof *match) : NULL;
    if (match)
        added_matches(t, text, len, match);
    else if (t->n_added && len)
        rc = -2;
    for (int i = 0; i < t->n_pre && !rc; i++)
        rc = batch_push(out, t->pre[i]) ? -2 : 0;
    int64_t body = out->n_ids;
    size_t at = 0;
    while (at <= len && !rc) {
        /* Decode up to the next special token (or the end). */
        int special = -1;
        cp.n = 0;
        while (at < len) {
            if (match && (special = match[at]) >= 0)
                break;
            const unsigned char *p = (const unsigned char *)text + at;
            size_t k = json_utf8_seq(p, len - at);
            if (!k) {
                *bad_at = at;
                rc = -1;
                break;
            }
            utf8proc_int32_t c;
            utf8proc_iterate(p, (utf8proc_ssize_t)k, &c);
            if (cps_push(&cp, c)) {
                rc = -2;
                break;
            }
            at += k;
        }
        if (!rc && cp.n && encode_plain(t, cp.v, cp.n, out, &norm, &tmp))
            rc = -2;
        if (rc || special < 0)
            break;
        if (batch_push(out, t->added[special].id))
            rc = -2;
        at += t->added[special].len;
    }
    int64_t room = max_len > 0 ? max_len - t->n_pre - t->n_post : -1;
    if (!rc && room >= 0 && out->n_ids - body > room)
        out->n_ids = body + room;  /* truncate the sentence, keep the ends */
    for (int i = 0; i < t->n_post && !rc; i++)
        rc = batch_push(out, t->post[i]) ? -2 : 0;
    if (rc)
        out->n_ids = first;
    free(match);
    free(cp.v);
    free(norm.v);
    free(tmp.v);
    return rc;
}


int tok_encode_lines(const tok_tokenizer *t, const char *text, size_t len,
                     const char *path, int64_t max_len, tok_batch *out,
                     dsc_err *err)
{
    if (max_len > 0 && max_len < tok_special_count(t))
        return err_file(err, t->path, "a max length of %lld leaves no room "
                        "for the %d special tokens it adds",
                        (long long)max_len, tok_special_count(t));
    int64_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    lines += len && text[len - 1] != '\n';
    memset(out, 0, sizeof *out);
    if (!(out->start = calloc((size_t)lines + 1, sizeof *out->start)))
        return err_file(err, path, "out of memory");
    size_t at = 0;
    for (int64_t line = 0; line < lines; line++) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len, bad = 0;
        int rc = tok_encode(t, text + at, end - at, max_len, out, &bad);
        if (rc == -1) {
            unsigned char b = (unsigned char)text[at + bad];
            tok_batch_free(out);
            return err_set(err, "%s:%lld: error: invalid UTF-8 at byte %zu "
                           "of the line (0x%02x)", path, (long long)line + 1,
                           bad, b);
        }
        if (rc) {
            tok_batch_free(out);
            return err_file(err, path, "out of memory");
        }
        out->start[line + 1] = out->n_ids;
        out->n = line + 1;
        at = end + 1;
    }
    return 0;
}


void tok_batch_free(tok_batch *b)
{
    free(b->ids);
    free(b->start);
    memset(b, 0, sizeof *b);
}
