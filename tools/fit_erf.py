#!/usr/bin/env python3
"""Fit the rational erf of runtime/rt_internal.h (rt_erf):

    erf(x) ~= x P(x^2) / Q(x^2) on [-4, 4],  Q(0) = 1,

P of degree 6 and Q of degree 5 in x^2, by Loeb's linearized least squares
with Lawson's reweighting toward the smallest largest error.  Prints the
coefficients for C and the largest absolute error against math.erf: of
the fit in double on its grid (0, 4], and as the runtime computes it over
[-6, 6] (coefficients and Horner steps in float32, +-1 from |x| = 3.92 on
and never past +-1), beside Abramowitz & Stegun 7.1.26 (the runtime's erf
before) evaluated the same way.

  /work/venv/bin/python tools/fit_erf.py
(needs numpy)."""
import math

import numpy as np

CLAMP = 4.0      # the fit's interval is [-CLAMP, CLAMP]
SATURATE = 3.92  # from here on erf(x) rounds to +-1 in float
NP, NQ = 7, 6  # coefficients of P and of Q, in t = x^2


def fit():
    x = np.linspace(1e-6, CLAMP, 40001)
    f = np.array([math.erf(v) for v in x])
    t = x * x
    # x P(t) - f (Q(t) - 1) = f, linear in the unknowns p_0.., q_1..
    a = np.concatenate([np.stack([x * t**i for i in range(NP)], 1),
                        np.stack([-f * t**i for i in range(1, NQ)], 1)], 1)
    w, q_prev = np.ones_like(x), np.ones_like(x)
    for _ in range(200):
        s = np.sqrt(w) / q_prev  # Loeb: divide by the last Q
        sol = np.linalg.lstsq(a * s[:, None], f * s, rcond=None)[0]
        p, q = sol[:NP], np.concatenate([[1.0], sol[NP:]])
        q_prev = np.polyval(q[::-1], t)
        err = np.abs(x * np.polyval(p[::-1], t) / q_prev - f)
        w = w * (err + 1e-20)  # Lawson: weight where the error is large
        w /= w.mean()
    return p, q, err.max()


def horner32(c, t):
    r = np.float32(c[-1])
    for v in c[-2::-1]:
        r = r * t + np.float32(v)
    return r


def rational32(p, q, x):
    t = x * x
    r = x * horner32(p, t) / horner32(q, t)
    return np.where((np.abs(x) >= np.float32(SATURATE)) | (np.abs(r) > 1),
                    np.copysign(np.float32(1), x), r)


def abramowitz_stegun32(x):
    ax = np.abs(x)
    t = np.float32(1) / (np.float32(1) + np.float32(0.3275911) * ax)
    r = horner32([0.254829592, -0.284496736, 1.421413741, -1.453152027,
                  1.061405429], t)
    e = np.float32(1) - r * t * np.exp(-ax * ax)
    return np.where(x < 0, -e, e)


def main():
    p, q, err64 = fit()
    x = np.linspace(-6, 6, 2000001).astype(np.float32)
    ref = np.array([math.erf(float(v)) for v in x])
    print("P:", ", ".join("%.9ef" % v for v in p))
    print("Q:", ", ".join("%.9ef" % v for v in q))
    print("largest |error|: %.3g in double, %.3g in float32 "
          "(Abramowitz-Stegun 7.1.26 in float32: %.3g)" % (
              err64, np.abs(rational32(p, q, x) - ref).max(),
              np.abs(abramowitz_stegun32(x) - ref).max()))


if __name__ == "__main__":
    main()
