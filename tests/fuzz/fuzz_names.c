/* fuzz_names.c — libFuzzer: any strings as the names, keys, config, paths
 * and constants of a small model; the C the emitter writes must hold none
 * of them outside comments, compile, and define only dsc's functions
 * (tests/fuzz/fuzz_names.h says what is checked). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_names(data, size, "fuzz.lua", NULL);
    return 0;
}
