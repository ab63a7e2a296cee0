/* fuzz_hf_json.c — libFuzzer: any bytes as a config.json and as a
 * model.safetensors.index.json. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_hf_json(data, size, "fuzz.json", NULL);
    return 0;
}
