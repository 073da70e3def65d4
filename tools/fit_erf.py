"""Regenerate the coefficients of the float32 erf (transformer_np/special.py, ``_TANH_FORM``).

    python tools/fit_erf.py            print the coefficients and their accuracy in float32

The problem (notes/erf.md, (erf.4)): erf(t) = tanh(t S(t^2)) with S a polynomial of degree 7
in z = t^2. On the grid z_i = linspace(0, 3.92^2, 20000), minimise the largest relative error
of erf that an error of S causes,

    max_i  w(z_i) |S(z_i) - S*(z_i)|,   S*(z) = artanh(erf t) / t,   w(z) = (1 - erf^2 t) t / erf t,

subject to 4 S(16) = 10.5 (so that tanh, and erf, is exactly 1 in float32 from the clip at
t = 4 on). The constraint is used to eliminate a_0; the remaining seven coefficients are the
discrete minimax solution, found by the Remez exchange: solve for the coefficients that make
the weighted error equal in size and alternating in sign at 8 reference points, move the
reference to the extremes of the new error, repeat until the reference no longer moves.
Lawson's iteratively reweighted least squares converges (slowly) to the same solution.
Only the standard library's math.erf and math.erfc and NumPy are used.
"""

import math
import sys

import numpy as np

DEGREE = 7  # S(z) = a_0 + a_1 z + ... + a_7 z^7
GRID = 20_000  # points of the grid in z
T_FIT = 3.92  # the fit covers 0 <= t <= 3.92, where erf(t) first rounds to 1 in float32
T_PIN, U_PIN = 4.0, 10.5  # 4 S(16) = 10.5: tanh(10.5) is exactly 1 in float32
SIGNIFICANT = 10  # digits printed and stored in special.py


def target():
    """The grid z (GRID,), the exact S*(z) and the weight w(z) of (erf.4), in float64."""
    z = np.linspace(0.0, T_FIT**2, GRID)
    t = np.sqrt(z[1:])
    erf = np.array([math.erf(v) for v in t])
    erfc = np.array([math.erfc(v) for v in t])
    # artanh(e) = log((1 + e) / (1 - e)) / 2, with 1 - e = erfc(t) exact where e is near 1
    artanh = np.where(erf < 0.5, np.arctanh(erf), 0.5 * np.log((1.0 + erf) / erfc))
    S = np.concatenate([[2.0 / math.sqrt(math.pi)], artanh / t])  # S*(0) = erf'(0) = 2 / sqrt(pi)
    w = np.concatenate([[math.sqrt(math.pi) / 2.0], erfc * (1.0 + erf) * t / erf])  # the limit at t = 0
    return z, S, w


def fit(max_iterations=100):
    """(a_0, ..., a_7) as Python floats rounded to SIGNIFICANT digits, and the minimax weighted error."""
    z, S, w = target()
    z_pin, S_pin = T_PIN**2, U_PIN / T_PIN
    # S(z) = S_pin + sum_j c_j (u^j - 1) with u = z / z_pin meets the constraint for any c.
    u = z / z_pin
    basis = np.stack([u**j - 1.0 for j in range(1, DEGREE + 1)], axis=1)  # (GRID, 7)
    rhs = S - S_pin
    n = DEGREE + 1  # reference points: 7 coefficients and the level E
    reference = np.round(np.linspace(0, GRID - 1, n)).astype(int)
    alternating = (-1.0) ** np.arange(n)
    for _ in range(max_iterations):
        # w (S - S*) = +-E at the reference, alternating in sign
        system = np.hstack([basis[reference], (alternating / w[reference])[:, None]])
        c = np.linalg.solve(system, rhs[reference])[:-1]
        error = w * (basis @ c - rhs)
        new = _extremes(error, n)
        if np.array_equal(new, reference):
            break
        reference = new
    else:
        raise RuntimeError(f"the Remez exchange did not settle in {max_iterations} iterations")
    a = np.concatenate([[S_pin - c.sum()], c / z_pin ** np.arange(1, n)])
    return tuple(float(f"{v:.{SIGNIFICANT}g}") for v in a), float(np.abs(error).max())


def _extremes(error, n):
    """Indices of the n alternating extremes of ``error``: the largest |error| of each run of one
    sign, the smaller end run dropped while there are more than n runs."""
    sign = np.where(error < 0, -1, 1)
    runs = np.split(np.arange(error.size), np.flatnonzero(np.diff(sign)) + 1)
    peaks = [run[np.argmax(np.abs(error[run]))] for run in runs]
    if len(peaks) < n:
        raise RuntimeError(f"the error alternates {len(peaks)} times, fewer than the {n} needed")
    while len(peaks) > n:
        peaks.pop(0 if abs(error[peaks[0]]) < abs(error[peaks[-1]]) else -1)
    return np.array(peaks)


def erf_float32(x, coefficients):
    """special.py's float32 method with the given coefficients: tanh(t S(t^2)), t = clip(x, -4, 4)."""
    t = np.clip(np.asarray(x, dtype=np.float32), -T_PIN, T_PIN)
    z = t * t
    acc = z * coefficients[-1] + coefficients[-2]
    for c in reversed(coefficients[:-2]):
        acc = acc * z + c
    return np.tanh(acc * t)


def accuracy(coefficients):
    """Max absolute error, max and mean units in the last place, on the float32 arguments of notes/erf.md."""
    rng = np.random.default_rng(0)
    x = np.concatenate([
        np.linspace(0.0, 8.0, 8_000_001, dtype=np.float32),  # a dense grid
        rng.uniform(0.0, 4.0, 4_000_000).astype(np.float32),  # random points
        np.logspace(-37, 0.6, 200_001).astype(np.float32),  # down to tiny arguments
    ])
    out = erf_float32(x, coefficients).astype(np.float64)
    ref = np.array([math.erf(v) for v in x.astype(np.float64)])
    ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    err = np.abs(out - ref)
    return {"arguments": x.size, "max_abs": err.max(), "max_ulp": (err / ulp).max(), "mean_ulp": (err / ulp).mean()}


def main():
    coefficients, level = fit()
    print(f"weighted minimax error (relative error of erf caused by S): {level:.4g}")
    print("_TANH_FORM = (")
    for i in range(0, len(coefficients), 4):
        print("    " + ", ".join(f"{c:.{SIGNIFICANT}g}" for c in coefficients[i : i + 4]) + ",")
    print(")")
    if "--no-accuracy" not in sys.argv:
        acc = accuracy(coefficients)
        print(f"float32 on {acc['arguments']} arguments: max abs error {acc['max_abs']:.3g}, "
              f"max {acc['max_ulp']:.2f} ulp, mean {acc['mean_ulp']:.3f} ulp")


if __name__ == "__main__":
    main()
