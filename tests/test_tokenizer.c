/* test_tokenizer.c — the WordPiece tokenizer (compiler/tokenizer): each
 * rule of the BERT normalizer, pre-tokenizer and WordPiece on a small
 * hand-written tokenizer.json; strict UTF-8 and tokenizer.json errors
 * naming line and byte; vocab.txt; and, when tools/get-minilm.sh has
 * fetched the real all-MiniLM-L6-v2 tokenizer.json, the ids of
 * tests/fixtures/minilm/corpus.txt against BertTokenizerFast's (recorded by
 * tools/record_minilm.py), whole and truncated, through `dsc tokenize`. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/fileio.h"
#include "tokenizer/tokenizer.h"

/* ids: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, then words. */
#define VOCAB \
    "\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 2, \"[SEP]\": 3, \"[MASK]\": 4," \
    "\"hello\": 5, \",\": 6, \"world\": 7, \"!\": 8, \"un\": 9, " \
    "\"##aff\": 10, \"##able\": 11, \"cafe\": 12, \"café\": 13, " \
    "\"你\": 14, \"好\": 15, \"'\": 16, \"s\": 17, \"a\": 18, \"##a\": 19, " \
    "\"i\": 20, \"\u0307\": 21, \"x\": 22, \"##x\": 23, \"ab\": 24"

#define ADDED \
    "\"added_tokens\": [" \
    "{\"id\": 0, \"content\": \"[PAD]\", \"single_word\": false, " \
    "\"lstrip\": false, \"rstrip\": false, \"normalized\": false, " \
    "\"special\": true}," \
    "{\"id\": 3, \"content\": \"[SEP]\", \"single_word\": false, " \
    "\"lstrip\": false, \"rstrip\": false, \"normalized\": false, " \
    "\"special\": true}," \
    "{\"id\": 4, \"content\": \"[MASK]\", \"single_word\": false, " \
    "\"lstrip\": false, \"rstrip\": false, \"normalized\": false, " \
    "\"special\": true}],\n"

#define POST \
    "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [" \
    "{\"SpecialToken\": {\"id\": \"[CLS]\", \"type_id\": 0}}, " \
    "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, " \
    "{\"SpecialToken\": {\"id\": \"[SEP]\", \"type_id\": 0}}]},\n"

/* A tokenizer.json with the normalizer settings given. */
static tok_tokenizer *load(const char *normalizer, int max_chars)
{
    char json[8192];
    snprintf(json, sizeof json,
             "{\"version\": \"1.0\",\n" ADDED
             "\"normalizer\": %s,\n"
             "\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"},\n" POST
             "\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", "
             "\"continuing_subword_prefix\": \"##\", "
             "\"max_input_chars_per_word\": %d, \"vocab\": {" VOCAB "}}}\n",
             normalizer, max_chars);
    dsc_err err;
    tok_tokenizer *t = tok_load_memory(json, strlen(json), "t.json", &err);
    cr_assert_not_null(t, "%s", err.msg);
    return t;
}

#define BERT_NORM \
    "{\"type\": \"BertNormalizer\", \"clean_text\": true, " \
    "\"handle_chinese_chars\": true, \"strip_accents\": null, " \
    "\"lowercase\": true}"


/* The ids of text, as "2,5,3". */
static const char *ids(const tok_tokenizer *t, const char *text,
                       int64_t max_len)
{
    static char buf[1024];
    tok_batch b = {0};
    size_t bad;
    cr_assert_eq(tok_encode(t, text, strlen(text), max_len, &b, &bad), 0);
    size_t at = 0;
    buf[0] = '\0';
    for (int64_t i = 0; i < b.n_ids; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%d",
                               i ? "," : "", (int)b.ids[i]);
    tok_batch_free(&b);
    return buf;
}


Test(tokenizer, bert_rules)
{
    tok_tokenizer *t = load(BERT_NORM, 100);
    /* lowercase, punctuation split, [CLS] ... [SEP] */
    cr_assert_str_eq(ids(t, "Hello, WORLD!", 0), "2,5,6,7,8,3");
    /* greedy longest match with ## continuations */
    cr_assert_str_eq(ids(t, "unaffable", 0), "2,9,10,11,3");
    /* no full cover: the whole word is [UNK] */
    cr_assert_str_eq(ids(t, "unaffablez hello", 0), "2,1,5,3");
    /* accents stripped when lowercasing (strip_accents null) */
    cr_assert_str_eq(ids(t, "Café", 0), "2,12,3");
    cr_assert_str_eq(ids(t, "Cafe\xcc\x81", 0), "2,12,3");
    /* CJK characters are words of their own */
    cr_assert_str_eq(ids(t, "你好hello", 0), "2,14,15,5,3");
    /* apostrophes are punctuation */
    cr_assert_str_eq(ids(t, "a's", 0), "2,18,16,17,3");
    /* control and format characters and U+FFFD dropped, whitespace of
     * every kind splits */
    cr_assert_str_eq(ids(t, "a\x01" "b", 0), "2,24,3");
    cr_assert_str_eq(ids(t, "a\xe2\x80\x8b" "b\xef\xbf\xbd", 0), "2,24,3");
    cr_assert_str_eq(ids(t, "a\xc2\xa0" "a\xe3\x80\x80" "a\ta\r\n", 0),
                     "2,18,18,18,18,3");
    /* special tokens in the text are taken whole, before normalizing */
    cr_assert_str_eq(ids(t, "hello[SEP]x[MASK]", 0), "2,5,3,22,4,3");
    cr_assert_str_eq(ids(t, "[sep]", 0), "2,1,1,1,3");
    /* the empty sentence */
    cr_assert_str_eq(ids(t, "", 0), "2,3");
    /* truncation keeps [CLS] and [SEP] */
    cr_assert_str_eq(ids(t, "hello, world!", 4), "2,5,6,3");
    cr_assert_str_eq(ids(t, "hello, world!", 2), "2,3");
    cr_assert_eq(tok_special_count(t), 2);
    cr_assert_eq(tok_pad_id(t), 0);
    cr_assert_eq(tok_vocab_size(t), 25);
    tok_free(t);
}


Test(tokenizer, long_words)
{
    tok_tokenizer *t = load(BERT_NORM, 4);
    cr_assert_str_eq(ids(t, "aaaa", 0), "2,18,19,19,19,3");
    cr_assert_str_eq(ids(t, "aaaaa", 0), "2,1,3");  /* over 4 characters */
    cr_assert_str_eq(ids(t, "你好", 0), "2,14,15,3");
    tok_free(t);
}


Test(tokenizer, normalizer_settings)
{
    /* lowercase without accent stripping: İ lowercases to i + U+0307 */
    tok_tokenizer *t = load("{\"type\": \"BertNormalizer\", \"clean_text\": "
                            "true, \"handle_chinese_chars\": false, "
                            "\"strip_accents\": false, \"lowercase\": true}",
                            100);
    cr_assert_str_eq(ids(t, "CAFÉ", 0), "2,13,3");
    cr_assert_str_eq(ids(t, "\xc4\xb0", 0), "2,1,3");  /* "i̇" not a token */
    cr_assert_str_eq(ids(t, "你好", 0), "2,1,3");  /* one word, no split */
    tok_free(t);
    t = load("{\"type\": \"BertNormalizer\", \"clean_text\": false, "
             "\"handle_chinese_chars\": true, \"strip_accents\": true, "
             "\"lowercase\": false}", 100);
    cr_assert_str_eq(ids(t, "Hello", 0), "2,1,3");
    cr_assert_str_eq(ids(t, "café", 0), "2,12,3");
    cr_assert_str_eq(ids(t, "a\x01" "b", 0), "2,1,3");  /* kept */
    tok_free(t);
}


/* A text of n copies of the UTF-8 unit, then tail (malloc'd). */
static char *repeat(const char *unit, size_t n, const char *tail, size_t *len)
{
    size_t u = strlen(unit), k = strlen(tail);
    char *s = malloc(u * n + k + 1);
    cr_assert_not_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * u, unit, u);
    memcpy(s + u * n, tail, k + 1);
    *len = u * n + k;
    return s;
}


/* The ids of text[0..len) as "2,5,3" (cut at 200 characters). */
static const char *ids_n(const tok_tokenizer *t, const char *text, size_t len)
{
    static char buf[256];
    tok_batch b = {0};
    size_t bad, at = 0;
    cr_assert_eq(tok_encode(t, text, len, 0, &b, &bad), 0);
    buf[0] = '\0';
    for (int64_t i = 0; i < b.n_ids && at < 200; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%d",
                               i ? "," : "", (int)b.ids[i]);
    tok_batch_free(&b);
    return buf;
}


/* İ lowercases to two characters; each one used to shift the rest of the
 * text along, so a million took a minute. */
Test(tokenizer, dotted_capital_i_linear, .timeout = 10)
{
    tok_tokenizer *t = load("{\"type\": \"BertNormalizer\", \"clean_text\": "
                            "true, \"handle_chinese_chars\": false, "
                            "\"strip_accents\": false, \"lowercase\": true}",
                            100);
    size_t len;
    char *s = repeat("\xc4\xb0", 1000000, " AB", &len);
    cr_assert_str_eq(ids_n(t, s, len), "2,1,24,3");
    free(s);
    s = repeat("\xc4\xb0 ", 3, "A\xc4\xb0", &len);
    cr_assert_str_eq(ids_n(t, s, len), "2,1,1,1,1,3");
    free(s);
    tok_free(t);
}


/* A tokenizer.json of a WordPiece model alone (BertNormalizer's defaults,
 * no [CLS] or [SEP]) with the vocabulary members given; [UNK] is 0. */
static tok_tokenizer *load_vocab(const char *members, long max_chars)
{
    size_t n = strlen(members) + 256;
    char *json = malloc(n);
    cr_assert_not_null(json);
    snprintf(json, n, "{\"model\": {\"type\": \"WordPiece\", \"unk_token\": "
             "\"[UNK]\", \"max_input_chars_per_word\": %ld, \"vocab\": "
             "{\"[UNK]\": 0, %s}}}", max_chars, members);
    dsc_err err;
    tok_tokenizer *t = tok_load_memory(json, strlen(json), "t.json", &err);
    cr_assert_not_null(t, "%s", err.msg);
    free(json);
    return t;
}


/* A 20,000-byte entry: WordPiece tried every length down from it at each
 * start, hashing each anew, which took minutes for a word of 20,000 a's. */
Test(tokenizer, long_entry_linear, .timeout = 10)
{
    size_t len;
    char *x = repeat("x", 20000, "", &len);
    char *members = malloc(len + 128);
    cr_assert_not_null(members);
    sprintf(members, "\"a\": 1, \"##a\": 2, \"aaa\": 3, \"##aa\": 4, "
            "\"\xd0\xb6\": 6, \"##\xd0\xb6\": 7, \"%s\": 5", x);
    tok_tokenizer *t = load_vocab(members, 1 << 20);
    cr_assert_str_eq(ids_n(t, "aaaaaa", 6), "3,4,2");
    cr_assert_str_eq(ids_n(t, "a\xd0\xb6\xd0\xb6" "aaa", 8), "1,7,7,4,2");
    cr_assert_str_eq(ids_n(t, x, len), "5");
    cr_assert_str_eq(ids_n(t, x, len - 1), "0");  /* no cover */
    free(x);
    char *a = repeat("a", 20000, "", &len);
    tok_batch b = {0};
    size_t bad;
    cr_assert_eq(tok_encode(t, a, len, 0, &b, &bad), 0);
    /* aaa, then 9,998 ##aa, then ##a */
    cr_assert_eq(b.n_ids, 10000);
    cr_assert_eq(b.ids[0], 3);
    for (int64_t i = 1; i < 9999; i++)
        cr_assert_eq(b.ids[i], 4);
    cr_assert_eq(b.ids[9999], 2);
    tok_batch_free(&b);
    free(a);
    free(members);
    tok_free(t);
}


/* FNV-1a, the vocabulary's old unkeyed hash. */
static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}


/* The next key lead + 6 letters from *counter + one last alphanumeric
 * whose FNV-1a ends in the 16 bits want (the slot in a table of 65,536),
 * into out. */
static void colliding_key(char lead, uint32_t *counter, uint16_t want,
                          char out[9])
{
    /* The last byte b must give ((h ^ b) * prime) mod 2^16 = want, so
     * (h ^ b) mod 2^16 = want / prime: solve for b, check it is one. */
    uint64_t inv = 1099511628211ULL;
    for (int i = 0; i < 5; i++)
        inv *= 2 - 1099511628211ULL * inv;
    uint16_t u = (uint16_t)(want * inv);
    for (;; ++*counter) {
        uint32_t c = *counter;
        out[0] = lead;
        for (int i = 1; i <= 6; i++, c /= 26)
            out[i] = (char)('a' + c % 26);
        uint16_t h = (uint16_t)fnv1a(out, 7);
        unsigned b = (h ^ u) & 0xFFFF;
        if (b < 256 && ((b >= '0' && b <= '9') || (b >= 'a' && b <= 'z'))) {
            out[7] = (char)b;
            out[8] = '\0';
            ++*counter;
            return;
        }
    }
}


/* 30,000 entries chosen to share one FNV-1a slot, and words that land
 * there too: each lookup walked the whole run (minutes); with a keyed
 * hash the entries scatter.  The ids must not depend on the key. */
Test(tokenizer, vocab_hash_flooding, .timeout = 10)
{
    enum { ENTRIES = 30000, WORDS = 1000, REPEAT = 300 };
    char (*keys)[9] = malloc(ENTRIES * sizeof *keys);
    char *members = malloc(ENTRIES * 20), *text = malloc(WORDS * 9 * REPEAT);
    cr_assert(keys && members && text);
    uint32_t counter = 0;
    size_t at = 0;
    for (int i = 0; i < ENTRIES; i++) {
        colliding_key('q', &counter, 0x1234, keys[i]);
        at += (size_t)sprintf(members + at, "%s\"%s\": %d", i ? ", " : "",
                              keys[i], i + 1);
    }
    tok_tokenizer *t = load_vocab(members, 100);
    for (int i = 0; i < WORDS; i++)  /* not entries, 'z' never leads one */
        colliding_key('z', &counter, 0x1234, text + 9 * i);
    for (int i = 0; i < WORDS; i++)
        text[9 * i + 8] = ' ';
    for (int r = 1; r < REPEAT; r++)
        memcpy(text + r * WORDS * 9, text, WORDS * 9);
    tok_batch b = {0};
    size_t bad;
    cr_assert_eq(tok_encode(t, text, WORDS * 9 * REPEAT, 0, &b, &bad), 0);
    cr_assert_eq(b.n_ids, WORDS * REPEAT);
    for (int64_t i = 0; i < b.n_ids; i++)
        cr_assert_eq(b.ids[i], 0);  /* [UNK] */
    tok_batch_free(&b);
    for (int i = 0; i < ENTRIES; i += 997) {
        char word[16];
        sprintf(word, "%s", keys[i]);
        char want[16];
        sprintf(want, "%d", i + 1);
        cr_assert_str_eq(ids_n(t, word, strlen(word)), want);
    }
    tok_free(t);
    free(keys);
    free(members);
    free(text);
}


/* load_vocab with added tokens too: "content": id members. */
static tok_tokenizer *load_added(const char *added, const char *vocab)
{
    size_t n = strlen(added) * 2 + strlen(vocab) + 256;
    char *json = malloc(n);
    cr_assert_not_null(json);
    size_t at = (size_t)sprintf(json, "{\"added_tokens\": [");
    /* "c": 7, "d": 8 -> {"content": "c", "id": 7}, ... */
    for (const char *p = added; *p;) {
        const char *q = strchr(p + 1, '"'), *comma = strchr(q, ',');
        at += (size_t)sprintf(json + at, "%s{\"content\": %.*s, \"id\": %ld}",
                              p == added ? "" : ", ", (int)(q + 1 - p), p,
                              strtol(strchr(q, ':') + 1, NULL, 10));
        p = comma ? comma + 2 : q + strlen(q);
    }
    sprintf(json + at, "], \"model\": {\"type\": \"WordPiece\", \"vocab\": "
            "{\"[UNK]\": 0, %s}}}", vocab);
    dsc_err err;
    tok_tokenizer *t = tok_load_memory(json, strlen(json), "t.json", &err);
    cr_assert_not_null(t, "%s", err.msg);
    free(json);
    return t;
}


/* Added tokens split the text leftmost first, the longest at one place,
 * the first of two the same. */
Test(tokenizer, added_tokens_leftmost_longest)
{
    tok_tokenizer *t = load_added(
        "\"ab\": 10, \"bcd\": 11, \"xy\": 12, \"xyz\": 13, \"dup\": 14, "
        "\"dup\": 15, \"\xc3\xa9!\": 16, \"aa\": 17",
        "\"a\": 1, \"##a\": 2, \"cd\": 3, \"x\": 4");
    cr_assert_str_eq(ids_n(t, "abcd", 4), "10,3");
    cr_assert_str_eq(ids_n(t, "xyzxyx", 6), "13,12,4");
    cr_assert_str_eq(ids_n(t, "dup", 3), "14");
    cr_assert_str_eq(ids_n(t, "zabz", 4), "0,10,0");
    cr_assert_str_eq(ids_n(t, "a\xc3\xa9!aaa", 7), "1,16,17,1");
    cr_assert_str_eq(ids_n(t, "AB", 2), "0");  /* raw text: no lowercase */
    tok_free(t);
}


/* 1,024 added tokens of 1,004 bytes sharing 1,000: trying each at every
 * byte of a million took 20 s. */
Test(tokenizer, added_tokens_linear, .timeout = 10)
{
    size_t len;
    char *a = repeat("a", 1000, "", &len);
    char *added = malloc(1024 * 1020);
    cr_assert_not_null(added);
    size_t at = 0;
    for (int i = 0; i < 1024; i++)
        at += (size_t)sprintf(added + at, "%s\"%s%04d\": %d", i ? ", " : "",
                              a, i, 100 + i);
    tok_tokenizer *t = load_added(added, "\"a\": 1");
    char *text = repeat(a, 1000, "0512aaaa0512", &len);
    cr_assert_str_eq(ids_n(t, text, len), "0,612,0");  /* word over 100 */
    free(text);
    tok_free(t);
    free(added);
    free(a);
}


Test(tokenizer, invalid_utf8_names_line_and_byte)
{
    tok_tokenizer *t = load(BERT_NORM, 100);
    const char *bad[] = { "ok\nhe\xc3(llo\n", "ok\nab\xed\xa0\x80\n",
                          "ok\nab\xc0\xaf\n", "ok\nab\xf4\x90\x80\x80\n",
                          "ok\nab\xe2\x82" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tok_batch b;
        dsc_err err;
        cr_assert_neq(tok_encode_lines(t, bad[i], strlen(bad[i]), "s.txt", 0,
                                       &b, &err), 0);
        cr_assert_not_null(strstr(err.msg, "s.txt:2: error: invalid UTF-8 "
                                  "at byte 2"), "%s", err.msg);
    }
    tok_batch b;
    dsc_err err;
    const char *good = "hello\n\nworld\nx";
    cr_assert_eq(tok_encode_lines(t, good, strlen(good), "s.txt", 0, &b,
                                  &err), 0, "%s", err.msg);
    cr_assert_eq(b.n, 4);  /* the empty line is a sentence, the last too */
    cr_assert_eq(b.start[2] - b.start[1], 2);
    tok_batch_free(&b);
    cr_assert_neq(tok_encode_lines(t, good, strlen(good), "s.txt", 1, &b,
                                   &err), 0);
    cr_assert_not_null(strstr(err.msg, "t.json: error: a max length of 1 "
                              "leaves no room for the 2 special tokens"),
                       "%s", err.msg);
    tok_free(t);
}


static void load_fails(const char *json, const char *path, const char *want)
{
    dsc_err err;
    tok_tokenizer *t = tok_load_memory(json, strlen(json), path, &err);
    cr_assert_null(t, "%s loaded", json);
    cr_assert_not_null(strstr(err.msg, want), "got: %s\nwant: %s", err.msg,
                       want);
}


Test(tokenizer, bad_files)
{
    load_fails("{\"model\": {\"type\": \"WordPiece\",\n\"vocab\": "
               "{\"a\": 0,\n\"a\": 1}}}", "t.json",
               "t.json:3: error: vocabulary token 'a' appears twice");
    load_fails("{\"model\": {\"type\": \"BPE\"}}", "t.json",
               "t.json:1: error: model type 'BPE' is not supported");
    load_fails("{\"normalizer\": {\"type\": \"NFC\"}}", "t.json",
               "normalizer type 'NFC' is not supported");
    load_fails("{\"model\": {\"vocab\": {\"a\": -1}}}", "t.json",
               "a vocabulary id = -1 is not an integer");
    load_fails("{\"model\": {\"vocab\": {\"a\": 0}}\n,}", "t.json",
               "t.json:2: error: expected a key string");
    load_fails("{\"model\": {\"vocab\": {\"a\": 0}}} x", "t.json",
               "unexpected text after the JSON object");
    load_fails("{\"model\": {\"vocab\": {\"[UNK]\": 0}}, \"post_processor\": "
               "{\"type\": \"TemplateProcessing\", \"single\": "
               "[{\"SpecialToken\": {\"id\": \"[CLS]\"}}]}}", "t.json",
               "special token '[CLS]' is neither");
    load_fails("{\"model\": {\"vocab\": {\"b\": 0}}}", "t.json",
               "the unk_token '[UNK]' is not in the vocabulary");
    load_fails("{}", "t.json", "no WordPiece model.vocab");
    load_fails("{\"added_tokens\": [{\"id\": 1, \"content\": \"x\", "
               "\"lstrip\": true}]}", "t.json", "not supported");
    /* An added token's content is bounded: its automaton grows with it. */
    char long_added[1200];
    snprintf(long_added, sizeof long_added, "{\"added_tokens\": [{\"id\": 1, "
             "\"content\": \"%01025d\"}]}", 0);
    load_fails(long_added, "t.json", "added token is longer than 1024 bytes");
    load_fails("[PAD]\n[UNK]\n", "vocab.txt", "needs [CLS], [SEP]");
    load_fails("[PAD]\n\xff\n", "vocab.txt", "vocab.txt:2: error: invalid "
               "UTF-8");
    /* a second model is a duplicate, not its tokens appearing twice */
    load_fails("{\"model\": {\"vocab\": {\"[UNK]\": 0}},\n\"model\": "
               "{\"vocab\": {\"[UNK]\": 0}}}", "t.json",
               "t.json:2: error: tokenizer.json: duplicate key 'model'");
    load_fails("{\"model\": {\"vocab\": {\"[UNK]\": 0}, \"vocab\": "
               "{\"[UNK]\": 0}}}", "t.json", "model: duplicate key 'vocab'");
    /* a number of any length is shown by its start */
    char json[256];
    int at = sprintf(json, "{\"model\": {\"vocab\": {\"a\": 1");
    for (int i = 0; i < 100; i++)
        json[at++] = '0';
    strcpy(json + at, "}}}");
    load_fails(json, "t.json", "a vocabulary id = 10000000000000000000... "
               "is not an integer in [0, 2147483646]");
    dsc_err err;
    cr_assert_null(tok_load_memory("[PAD]\nx\0y\n", 9, "vocab.txt", &err));
    cr_assert_not_null(strstr(err.msg, "vocab.txt:2: error: a NUL character "
                              "at byte 1 of the line"), "%s", err.msg);
}


Test(tokenizer, vocab_txt)
{
    const char *v = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n##s\n";
    dsc_err err;
    tok_tokenizer *t = tok_load_memory(v, strlen(v), "vocab.txt", &err);
    cr_assert_not_null(t, "%s", err.msg);
    cr_assert_str_eq(ids(t, "HELLOS [MASK] x", 0), "2,5,6,4,1,3");
    tok_free(t);
}


/* ---- the real tokenizer.json, when fetched ---------------------------- */

static void check_corpus(const char *max_len, const char *want_file)
{
    const char *dir = getenv("MINILM_DIR") && *getenv("MINILM_DIR")
                      ? getenv("MINILM_DIR") : "build/minilm/model";
    char tok[512];
    snprintf(tok, sizeof tok, "%s/tokenizer.json", dir);
    if (access(tok, R_OK) != 0)
        cr_skip_test("%s is absent (tools/get-minilm.sh fetches it)", tok);
    const char *dsc = getenv("DSC") ? getenv("DSC") : "build/dsc";
    char out[] = "/tmp/dsc_tok_XXXXXX";
    int fd = mkstemp(out);
    cr_assert_geq(fd, 0);
    close(fd);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s --text "
             "tests/fixtures/minilm/corpus.txt %s > %s", dsc, tok, max_len,
             out);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s", cmd);
    size_t n1, n2;
    dsc_err err;
    char *got = file_read_all(out, &n1, &err);
    unlink(out);
    cr_assert_not_null(got, "%s", err.msg);
    char *want = file_read_all(want_file, &n2, &err);
    cr_assert_not_null(want, "%s", err.msg);
    /* Line by line, to name the first that differs. */
    int line = 1;
    char *g = got, *w = want;
    while (*g || *w) {
        char *ge = strchr(g, '\n'), *we = strchr(w, '\n');
        cr_assert(ge && we, "line %d: one output ends early", line);
        *ge = *we = '\0';
        cr_assert_str_eq(g, w, "corpus.txt line %d", line);
        g = ge + 1;
        w = we + 1;
        line++;
    }
    cr_assert_gt(line, 50);
    free(got);
    free(want);
}

Test(tokenizer_real, corpus_ids_as_hf)
{
    check_corpus("", "tests/fixtures/minilm/corpus_ids.txt");
}

Test(tokenizer_real, corpus_ids_truncated_as_hf)
{
    check_corpus("--max-length 16", "tests/fixtures/minilm/corpus_ids_16.txt");
}
