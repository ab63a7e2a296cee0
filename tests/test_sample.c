/* test_sample.c — the token sampler: greedy, temperature, top-k, top-p. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "driver/sample.h"

static const float logits[6] = { 1.0f, 3.0f, 2.5f, -1.0f, 3.0f, 0.0f };


Test(sample, argmax_takes_the_first_of_equal_maxima)
{
    cr_expect_eq(sample_argmax(logits, 6), 1);
    cr_expect_eq(sample_argmax(logits, 1), 0);
}

Test(sample, zero_temperature_is_greedy)
{
    sample_options o = { .temperature = 0, .top_p = 1 };
    uint64_t rng = 1;
    cr_expect_eq(sample_next(logits, 6, &o, &rng, NULL), 1);
    cr_expect_eq(rng, 1, "greedy draws nothing");
}

Test(sample, top_k_one_and_tiny_top_p_are_greedy)
{
    void *scratch = malloc(sample_scratch_bytes(6));
    uint64_t rng = 42;
    sample_options k1 = { .temperature = 5, .top_k = 1, .top_p = 1 };
    sample_options p0 = { .temperature = 5, .top_p = 1e-6 };
    for (int i = 0; i < 200; i++) {
        cr_expect_eq(sample_next(logits, 6, &k1, &rng, scratch), 1);
        cr_expect_eq(sample_next(logits, 6, &p0, &rng, scratch), 1);
    }
    free(scratch);
}

Test(sample, draws_follow_the_softmax_and_respect_top_k)
{
    void *scratch = malloc(sample_scratch_bytes(6));
    uint64_t rng = 7;
    sample_options o = { .temperature = 1.5, .top_p = 1 };
    int counts[6] = {0}, draws = 60000;
    for (int i = 0; i < draws; i++)
        counts[sample_next(logits, 6, &o, &rng, scratch)]++;
    double z = 0, p[6];
    for (int i = 0; i < 6; i++)
        z += p[i] = exp(logits[i] / 1.5);
    for (int i = 0; i < 6; i++) {
        double expect = p[i] / z * draws, sd = sqrt(expect);
        cr_expect(fabs(counts[i] - expect) < 5 * sd + 1,
                  "token %d: %d draws, expected %.0f", i, counts[i], expect);
    }
    /* top-k 3 keeps tokens 1, 4 (the tied maxima) and 2 only. */
    sample_options k3 = { .temperature = 1.5, .top_k = 3, .top_p = 1 };
    for (int i = 0; i < 2000; i++) {
        int64_t t = sample_next(logits, 6, &k3, &rng, scratch);
        cr_expect(t == 1 || t == 4 || t == 2, "top-k drew %lld", (long long)t);
    }
    free(scratch);
}

Test(sample, a_seed_fixes_the_sequence)
{
    void *scratch = malloc(sample_scratch_bytes(6));
    sample_options o = { .temperature = 1, .top_k = 4, .top_p = 0.9 };
    uint64_t a = 99, b = 99;
    for (int i = 0; i < 100; i++)
        cr_expect_eq(sample_next(logits, 6, &o, &a, scratch),
                     sample_next(logits, 6, &o, &b, scratch));
    free(scratch);
}
