/* fuzz_frontend.c — libFuzzer: any bytes as model text, then the passes,
 * the planners and the emitter over every graph that loads. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_frontend(data, size, "fuzz.lua", NULL);
    return 0;
}
