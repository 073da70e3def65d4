"""erf (transformer_np/special.py) against math.erf, element by element."""

import math

import numpy as np
import pytest

from transformer_np.special import erf


def reference(x):
    return np.array([math.erf(float(v)) for v in np.ravel(x)]).reshape(np.shape(x))


def test_float64_dense_grid_matches_math_erf_to_rounding():
    x = np.linspace(-30.0, 30.0, 240_001)  # step 2.5e-4, both expansions and the switch at |x| = 2
    err = np.abs(erf(x) - reference(x))
    assert err.max() < 1e-15, f"max abs error {err.max():.3g} at x = {x[err.argmax()]}"


def test_float64_around_the_switch_between_series_and_continued_fraction():
    x = np.concatenate([np.linspace(1.9, 2.1, 20_001), np.nextafter(2.0, [0.0, 4.0])])
    assert np.abs(erf(x) - reference(x)).max() < 1e-15


def test_small_arguments_have_small_relative_error():
    x = np.logspace(-300, 0, 3_001)
    ref = reference(x)
    assert np.max(np.abs(erf(x) - ref) / ref) < 1e-15
    assert erf(np.array([1e-10]))[0] == pytest.approx(2e-10 / math.sqrt(math.pi), rel=1e-15)


def test_zero_sign_and_odd_symmetry():
    out = erf(np.array([0.0, -0.0]))
    assert out[0] == 0.0 and not np.signbit(out[0])
    assert out[1] == 0.0 and np.signbit(out[1])
    x = np.linspace(0.0, 10.0, 10_001)
    assert np.array_equal(erf(-x), -erf(x))


def test_tails_saturate_at_exactly_one():
    x = np.array([5.9, 6.0, 10.0, 27.3, 30.0, 1e10, 1e300, np.inf])
    assert np.array_equal(erf(x), reference(np.where(np.isinf(x), 1e300, x)))
    assert np.array_equal(erf(x[2:]), np.ones(6))
    assert np.array_equal(erf(-x[2:]), -np.ones(6))
    assert np.isnan(erf(np.array([np.nan]))[0])


def test_float32_in_float32_out_and_accurate():
    x = np.linspace(-8.0, 8.0, 160_001).astype(np.float32)
    out = erf(x)
    assert out.dtype == np.float32
    err = np.abs(out.astype(np.float64) - reference(x))
    assert err.max() < 2.5e-7, f"max abs error {err.max():.3g} at x = {x[err.argmax()]}"  # ~4 ulp of 1
    assert np.isfinite(erf(np.array([1e20, -1e20, 3e38], dtype=np.float32))).all()


def test_float32_relative_error_down_to_tiny_arguments():
    x = np.logspace(-37, 0.5, 20_001).astype(np.float32)
    ref = reference(x)
    assert np.max(np.abs(erf(x).astype(np.float64) - ref) / ref) < 5e-7


def test_float32_is_odd_monotone_and_saturates_where_the_true_value_rounds_to_one():
    x = np.linspace(0.0, 6.0, 600_001).astype(np.float32)
    out = erf(x)
    assert np.all(np.diff(out) >= 0)
    assert np.array_equal(erf(-x), -out)
    assert np.all(out[x >= 3.95] == 1.0) and not np.any(out[x < 3.919] == 1.0)  # true value: 1 from 3.9192
    assert np.all(out[(x >= 3.919) & (x < 3.95)] >= np.nextafter(np.float32(1), np.float32(0)))
    special = erf(np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=np.float32))
    assert not np.signbit(special[0]) and special[0] == 0.0 and np.signbit(special[1]) and special[1] == 0.0
    assert special[2] == 1.0 and special[3] == -1.0 and np.isnan(special[4])


def test_float16_is_computed_in_float32_and_rounded_back():
    x = np.linspace(-4.0, 4.0, 801).astype(np.float16)
    out = erf(x)
    assert out.dtype == np.float16
    assert np.array_equal(out, reference(x).astype(np.float16))


def test_shape_is_kept_and_integers_are_promoted():
    x = np.arange(-6, 6).reshape(3, 4)
    out = erf(x)
    assert out.shape == (3, 4) and out.dtype == np.float64
    assert np.abs(out - reference(x)).max() < 1e-15
    assert float(erf(0.5)) == pytest.approx(math.erf(0.5), abs=1e-16)


def test_complex_input_is_refused():
    with pytest.raises(TypeError, match="expected a real .* received complex128"):
        erf(np.array([1.0 + 1.0j]))
