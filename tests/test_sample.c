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

/* The draws after top-k follow the kept candidates' softmax renormalized
 * to their own mass: p_i / (p_1 + p_4 + p_2), not p_i / (all). */
Test(sample, top_k_renormalizes_over_what_it_keeps)
{
    void *scratch = malloc(sample_scratch_bytes(6));
    uint64_t rng = 11;
    sample_options k3 = { .temperature = 1.5, .top_k = 3, .top_p = 1 };
    int counts[6] = {0}, draws = 40000;
    for (int i = 0; i < draws; i++)
        counts[sample_next(logits, 6, &k3, &rng, scratch)]++;
    const int kept[3] = { 1, 4, 2 };
    double z = 0, p[3];
    for (int i = 0; i < 3; i++)
        z += p[i] = exp(logits[kept[i]] / 1.5);
    for (int i = 0; i < 3; i++) {
        double expect = p[i] / z * draws, sd = sqrt(expect);
        cr_expect(fabs(counts[kept[i]] - expect) < 5 * sd + 1,
                  "token %d: %d draws, expected %.0f", kept[i],
                  counts[kept[i]], expect);
    }
    free(scratch);
}

/* The same after top-p: 0.6 of the mass is reached by tokens 1 and 4
 * (0.628), so those two share the draws evenly. */
Test(sample, top_p_renormalizes_over_what_it_keeps)
{
    void *scratch = malloc(sample_scratch_bytes(6));
    uint64_t rng = 12;
    sample_options o = { .temperature = 1.5, .top_p = 0.6 };
    int counts[6] = {0}, draws = 40000;
    for (int i = 0; i < draws; i++)
        counts[sample_next(logits, 6, &o, &rng, scratch)]++;
    cr_expect_eq(counts[1] + counts[4], draws, "only tokens 1 and 4");
    double expect = draws / 2.0, sd = sqrt(draws * 0.25);
    cr_expect(fabs(counts[1] - expect) < 5 * sd, "token 1: %d of %d",
              counts[1], draws);
    free(scratch);
}

/* Four equal logits: each candidate holds exactly 1/4 of the mass, so the
 * cumulative mass hits 0.25, 0.5 and 0.75 exactly; top-p keeps the
 * smallest set that reaches p, the lowest ids first on ties. */
Test(sample, top_p_keeps_the_set_that_reaches_p_exactly)
{
    static const float flat[4] = { 0.5f, 0.5f, 0.5f, 0.5f };
    void *scratch = malloc(sample_scratch_bytes(4));
    const double ps[3] = { 0.25, 0.5, 0.75 };
    for (int k = 0; k < 3; k++) {
        sample_options o = { .temperature = 1, .top_p = ps[k] };
        uint64_t rng = 5;
        int seen[4] = {0};
        for (int i = 0; i < 4000; i++)
            seen[sample_next(flat, 4, &o, &rng, scratch)]++;
        for (int t = 0; t < 4; t++) {
            if (t <= k)
                cr_expect_gt(seen[t], 800, "top-p %g: token %d drawn %d times",
                             ps[k], t, seen[t]);
            else
                cr_expect_eq(seen[t], 0, "top-p %g kept token %d", ps[k], t);
        }
    }
    free(scratch);
}
