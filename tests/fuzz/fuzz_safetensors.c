/* fuzz_safetensors.c — libFuzzer: any bytes through st_open_memory, and
 * every tensor of a file that opens through st_read_f32. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_safetensors(data, size, "fuzz.safetensors", NULL);
    return 0;
}
