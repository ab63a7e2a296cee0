/* fuzz_tokenizer.c — libFuzzer: any bytes as a tokenizer.json or as text
 * through the WordPiece tokenizer (see fuzz_entry.h). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_tokenizer(data, size, "fuzz.txt", NULL);
    return 0;
}
