/* cmd_tokenize.c — dsc tokenize: the WordPiece ids of each line. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "io/fileio.h"
#include "tokenizer/tokenizer.h"

int cmd_tokenize(const cli *c)
{
    if (c->model_path)
        return cli_usage_error("tokenize takes no model file, got '%s'",
                               c->model_path);
    if (!c->tokenizer_path || !c->text_path)
        return cli_usage_error("%s needs --tokenizer FILE and --text FILE",
                               "tokenize");
    dsc_err err;
    tok_tokenizer *t = tok_load(c->tokenizer_path, &err);
    if (!t) {
        cli_print_err(&err);
        return 1;
    }
    size_t len;
    char *text = file_read_all(c->text_path, &len, &err);
    tok_batch b;
    if (!text || tok_encode_lines(t, text, len, c->text_path, c->max_length,
                                  &b, &err)) {
        cli_print_err(&err);
        free(text);
        tok_free(t);
        return 1;
    }
    for (int64_t i = 0; i < b.n; i++) {
        for (int64_t k = b.start[i]; k < b.start[i + 1]; k++)
            printf("%s%d", k > b.start[i] ? "," : "", (int)b.ids[k]);
        putchar('\n');
    }
    int rc = fflush(stdout) || ferror(stdout);
    if (rc)
        fprintf(stderr, "dsc: error: cannot write the ids\n");
    tok_batch_free(&b);
    free(text);
    tok_free(t);
    return rc;
}
