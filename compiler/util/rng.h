/* rng.h — the one random number generator dsc uses for weights, inputs and
 * sampling: splitmix64, small, seedable, the same on every machine. */
#ifndef DSC_RNG_H
#define DSC_RNG_H

#include <stdint.h>

/* splitmix64's state only advances by this per draw. */
#define RNG_STEP 0x9e3779b97f4a7c15ULL

static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += RNG_STEP);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The state n draws after state, at once: draw k of a sequence costs
 * one multiplication to reach. */
static inline uint64_t rng_skip(uint64_t state, uint64_t n)
{
    return state + n * RNG_STEP;
}

#endif
