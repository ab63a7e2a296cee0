/* tokenizer.h — BERT's WordPiece tokenizer, as Hugging Face's
 * BertTokenizerFast computes it, read from a tokenizer.json (or a
 * vocab.txt with BERT-uncased settings).
 *
 * Text goes through the BertNormalizer (clean text, CJK characters set
 * apart, NFD + accent stripping, lowercasing, as the file says), the
 * BertPreTokenizer (split at whitespace and punctuation), then greedy
 * longest-match WordPiece; special tokens written in the text ("[SEP]")
 * are matched first, and the post-processor's [CLS] ... [SEP] wrap the
 * result.  Unicode properties come from utf8proc.  Knows nothing of
 * graphs or models. */
#ifndef DSC_TOKENIZER_H
#define DSC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "util/diag.h"

typedef struct tok_tokenizer tok_tokenizer;

/* Token ids of many sentences: sentence i is ids[start[i] .. start[i+1]). */
typedef struct tok_batch {
    int32_t *ids;
    int64_t *start;
    int64_t n;            /* sentences */
    int64_t n_ids, cap_ids;
} tok_batch;

/* path ending in .txt: a vocab.txt (one token per line, id = line - 1)
 * with bert-base-uncased's settings; anything else: a tokenizer.json.
 * NULL with an error naming the file and line. */
tok_tokenizer *tok_load(const char *path, dsc_err *err);
/* The same from bytes in memory (path names them in messages). */
tok_tokenizer *tok_load_memory(const char *bytes, size_t len,
                               const char *path, dsc_err *err);
void tok_free(tok_tokenizer *t);

/* Ids in the vocabulary (the largest id + 1) and the padding id. */
int64_t tok_vocab_size(const tok_tokenizer *t);
int32_t tok_pad_id(const tok_tokenizer *t);
/* Special tokens the post-processor adds around each sentence. */
int tok_special_count(const tok_tokenizer *t);

/* Append the ids of one sentence (len bytes of UTF-8, no NUL needed) to
 * out.  max_len > 0 truncates to that many ids, specials included (it must
 * be at least tok_special_count).  Returns 0; -1 for invalid UTF-8 with
 * *bad_at the byte offset of the first bad byte; -2 out of memory. */
int tok_encode(const tok_tokenizer *t, const char *text, size_t len,
               int64_t max_len, tok_batch *out, size_t *bad_at);

/* Every line of text (separated by \n; a last line without one counts; an
 * empty line is an empty sentence) as one sentence.  Errors name
 * path:LINE and the byte offset in the line. */
int tok_encode_lines(const tok_tokenizer *t, const char *text, size_t len,
                     const char *path, int64_t max_len, tok_batch *out,
                     dsc_err *err);

void tok_batch_free(tok_batch *b);

#endif
