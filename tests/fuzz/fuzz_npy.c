/* fuzz_npy.c — libFuzzer: any bytes through npy_read_memory. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_npy(data, size, "fuzz.npy", NULL);
    return 0;
}
