"""Number formats (notes/precision.md): the constants of each format, bfloat16 emulated exactly
(checked bit for bit against PyTorch's bfloat16), float16 rounding, and bad requests."""

import numpy as np
import pytest

from transformer_np.precision import (
    FORMATS,
    bfloat16_bits,
    cast,
    from_bfloat16_bits,
    get_format,
    round_to,
    storage_dtype,
    zeroed_fraction,
)


def awkward_float32(n=20000, seed=0):
    """Values of every magnitude, ties of the bfloat16 rounding, subnormals, the extremes, inf and NaN."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    ties = (rng.integers(0, 2**16, 2000, dtype=np.uint64).astype(np.uint32) << 16) | 0x8000  # exactly half-way
    special = np.array([0.0, -0.0, 1.0, -1.0, 65504.0, 65520.0, 1e-8, 6e-8, 3e-8, 1e-45,
                        np.finfo(np.float32).max, -np.finfo(np.float32).max, np.finfo(np.float32).tiny,
                        np.inf, -np.inf, 1e9, -1e9], dtype=np.float32)
    return np.concatenate([bits.view(np.float32), ties.view(np.float32), special, rng.normal(size=n).astype(np.float32)])


def test_the_constants_of_each_format():
    f16, bf16, f32 = FORMATS["float16"], FORMATS["bfloat16"], FORMATS["float32"]
    assert f16.max == 65504.0 == float(np.finfo(np.float16).max)  # (prec.2)
    assert f16.smallest_normal == float(np.finfo(np.float16).tiny)  # (prec.3)
    assert f16.smallest_subnormal == 2.0 ** -24
    assert f32.max == float(np.finfo(np.float32).max) and f32.eps == float(np.finfo(np.float32).eps)
    assert bf16.max == pytest.approx(3.3895e38, rel=1e-4) and bf16.smallest_normal == f32.smallest_normal
    assert (f16.unit_roundoff, bf16.unit_roundoff) == (2.0 ** -11, 2.0 ** -8)  # (prec.4)
    assert (f16.itemsize, bf16.itemsize, f32.itemsize) == (2, 2, 4)


def test_bfloat16_equals_pytorch_bit_for_bit():
    torch = pytest.importorskip("torch")
    x = awkward_float32()
    ours = round_to(x, "bfloat16")
    theirs = torch.from_numpy(x.copy()).to(torch.bfloat16).to(torch.float32).numpy()
    nan = np.isnan(x)
    assert np.array_equal(np.isnan(ours), nan)
    assert np.array_equal(ours[~nan].view(np.uint32), theirs[~nan].view(np.uint32))
    torch_bits = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(bfloat16_bits(x)[~nan], torch_bits[~nan])


def test_float16_rounding_equals_pytorch():
    torch = pytest.importorskip("torch")
    x = awkward_float32()
    ours = round_to(x, "float16")
    theirs = torch.from_numpy(x.copy()).to(torch.float16).to(torch.float32).numpy()
    nan = np.isnan(x)
    assert np.array_equal(np.isnan(ours), nan)
    assert np.array_equal(ours[~nan], theirs[~nan])


def test_bfloat16_rounds_ties_to_even_and_overflows_to_inf():
    one = np.float32(1.0).view(np.uint32)
    half_up = np.array([one + 0x8000, one + 0x18000, one + 0x8001], dtype=np.uint32).view(np.float32)
    # 1 + half a step: ties to even (down to 1); 1 + 1.5 steps: ties to even (up); a hair above half: up
    assert round_to(half_up, "bfloat16").tolist() == [1.0, 1.0 + 2 * 2**-7, 1.0 + 2**-7]
    assert np.isinf(round_to(np.array([np.finfo(np.float32).max], np.float32), "bfloat16"))[0]
    assert from_bfloat16_bits(bfloat16_bits(np.float32([3.0])))[0] == 3.0


def test_the_rounding_error_is_within_the_unit_roundoff():
    x = np.random.default_rng(1).normal(size=10000).astype(np.float32)
    for name in ("float16", "bfloat16"):
        rel = np.abs(round_to(x, name).astype(np.float64) - x) / np.abs(x)
        u = get_format(name).unit_roundoff
        assert rel.max() <= u  # (prec.4)
        assert rel.max() > 0.9 * u  # and the bound is reached, not loose


def test_what_rounds_to_zero_and_what_overflows():
    x = np.float32([1e-4, 3e-5, 1e-7, 2.9e-8, 1e5, -1e9])
    assert round_to(x, "float16")[[3]].tolist() == [0.0]  # below half the smallest subnormal (prec.3)
    assert round_to(x, "float16")[2] != 0  # 1e-7 is a subnormal, kept with few bits
    assert np.isinf(round_to(x, "float16")[4:]).all()  # 1e5 > 65504, and the -1e9 mask constant (prec.8)
    assert np.isfinite(round_to(x, "bfloat16")).all() and (round_to(x, "bfloat16") != 0).all()
    assert zeroed_fraction(x, "float16") == pytest.approx(1 / 6)
    assert zeroed_fraction(np.zeros(3, np.float32), "float16") == 0.0


def test_cast_stores_float16_in_two_bytes():
    x = np.linspace(-3, 3, 7, dtype=np.float32)
    assert cast(x, "float16").dtype == np.float16 and cast(x, "float16").nbytes == 14
    assert np.array_equal(cast(x, "bfloat16"), round_to(x, "bfloat16"))
    assert storage_dtype("float16") == np.float16


def test_bad_requests_name_expected_and_received():
    with pytest.raises(ValueError, match=r"expected one of 'float32', 'float16', 'bfloat16', received 'float8'"):
        get_format("float8")
    with pytest.raises(ValueError, match="received dtype\\('float64'\\)|received 'float64'|float64"):
        get_format(np.float64)
    with pytest.raises(TypeError, match="expected a dtype backend numpy can hold .*received 'bfloat16'"):
        storage_dtype("bfloat16")
    with pytest.raises(TypeError, match="expected a float32 array, received dtype float64"):
        round_to(np.zeros(2), "float16")
