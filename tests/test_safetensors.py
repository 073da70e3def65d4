"""The NumPy safetensors reader (transformer_np/safetensors.py): round trips of every dtype,
bfloat16 widened exactly, agreement with the safetensors package where installed, and a
clear refusal of files crafted to be broken: truncated, lying offsets or sizes, overlapping
tensors, a header that is not JSON, an unsupported dtype."""

import json

import numpy as np
import pytest

from transformer_np.safetensors import SafetensorsError, load_safetensors, save_safetensors


def _raw(path, header, data=b"", length=None):
    """Write a file by hand: 8-byte length, JSON header, data."""
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(np.array([len(text) if length is None else length], dtype="<u8").tobytes())
        f.write(text)
        f.write(data)
    return path


ARRAYS = {
    "f64": np.linspace(-1, 1, 6).reshape(2, 3),
    "f32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "f16": np.array([0.5, -2.0, 65504.0], dtype=np.float16),
    "i64": np.arange(5, dtype=np.int64)[None],
    "i32": np.array([-3, 7], dtype=np.int32),
    "u8": np.array([[1, 255]], dtype=np.uint8),
    "bool": np.array([True, False, True]),
    "scalar": np.array(3.5, dtype=np.float32),
    "empty": np.zeros((0, 4), dtype=np.float32),
}


def test_round_trip_of_every_dtype(tmp_path):
    path = save_safetensors(tmp_path / "a.safetensors", ARRAYS, metadata={"format": "np"})
    back, meta = load_safetensors(path, metadata=True)
    assert list(back) == list(ARRAYS) and meta == {"format": "np"}
    for name, a in ARRAYS.items():
        assert back[name].dtype == a.dtype and back[name].shape == a.shape and np.array_equal(back[name], a)


def test_big_endian_arrays_are_written_little_endian(tmp_path):
    a = np.arange(4, dtype=">f4")
    back = load_safetensors(save_safetensors(tmp_path / "b.safetensors", {"a": a}))["a"]
    assert back.dtype == np.float32 and np.array_equal(back, a)


def test_bfloat16_is_widened_exactly(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 1e-3], dtype=np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2")  # bfloat16: the upper half (truncated)
    path = _raw(tmp_path / "bf16.safetensors", {"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}},
                bits.tobytes())
    w = load_safetensors(path)["w"]
    assert w.dtype == np.float32
    assert np.array_equal(w, (bits.astype(np.uint32) << 16).view(np.float32))
    assert np.array_equal(w[:3], values[:3])  # exactly representable in bfloat16


def test_agrees_with_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    path = str(tmp_path / "c.safetensors")
    st.save_file({k: v for k, v in ARRAYS.items() if k not in ("scalar",)}, path)
    ours = load_safetensors(path)
    theirs = st.load_file(path)
    assert set(ours) == set(theirs) and all(np.array_equal(ours[k], theirs[k]) for k in theirs)
    save_safetensors(tmp_path / "d.safetensors", ARRAYS)
    theirs = st.load_file(str(tmp_path / "d.safetensors"))
    assert all(np.array_equal(theirs[k], v) for k, v in ARRAYS.items())


ENTRY = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}


@pytest.mark.parametrize("case, match", [
    ("short", r"expected at least 8 bytes \(the header length\), received a file of 3"),
    ("header_too_long", r"expected a header length of at most \d+ bytes .* received 9999: the file is truncated"),
    ("truncated_data", r"tensor 'w': expected 0 <= begin <= end <= 8 .* received data_offsets \[0, 16\]"),
    ("lying_size", r"tensor 'w': expected 16 bytes for F32 of shape \(2, 2\), received data_offsets \[0, 12\] \(12 bytes\)"),
    ("negative", r"tensor 'w': expected 0 <= begin <= end .* received data_offsets \[8, 4\]"),
    ("overlap", r"tensors 'a' and 'b': expected disjoint byte ranges"),
    ("dtype", r"tensor 'w': expected a dtype among F64, F32, .* received 'F8_E4M3'"),
    ("not_json", r"expected a UTF-8 JSON header of 5 bytes, received one that does not parse"),
    ("not_object", r"expected a JSON object as header, received list"),
    ("bad_entry", r"tensor 'w': expected an entry with dtype, shape and data_offsets"),
])
def test_broken_files_are_refused(tmp_path, case, match):
    path = tmp_path / f"{case}.safetensors"
    data = np.arange(4, dtype="<f4").tobytes()
    if case == "short":
        path.write_bytes(b"abc")
    elif case == "header_too_long":
        _raw(path, ENTRY, data, length=9999)
    elif case == "truncated_data":
        _raw(path, ENTRY, data[:8])
    elif case == "lying_size":
        _raw(path, {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}, data)
    elif case == "negative":
        _raw(path, {"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}, data)
    elif case == "overlap":
        _raw(path, {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, data)
    elif case == "dtype":
        _raw(path, {"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}}, data)
    elif case == "not_json":
        path.write_bytes(np.array([5], dtype="<u8").tobytes() + b"{nope" + data)
    elif case == "not_object":
        _raw(path, [1, 2], data)
    elif case == "bad_entry":
        _raw(path, {"w": {"dtype": "F32", "shape": [4]}}, data)
    with pytest.raises(SafetensorsError, match=match):
        load_safetensors(path)


def test_the_error_names_the_file(tmp_path):
    path = tmp_path / "named.safetensors"
    path.write_bytes(b"")
    with pytest.raises(SafetensorsError, match=f"safetensors file {path}:"):
        load_safetensors(path)


def test_no_pickle_anywhere():
    import transformer_np.safetensors as module
    source = open(module.__file__).read()
    assert "pickle" not in source.replace("no pickle", "") and "allow_pickle=True" not in source
