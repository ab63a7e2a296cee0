/* timing.h — wall-clock milliseconds for the figures dsc prints. */
#ifndef DSC_TIMING_H
#define DSC_TIMING_H

#include <time.h>

/* Needs _POSIX_C_SOURCE >= 199309L in the including file. */
static inline double timing_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

#endif
