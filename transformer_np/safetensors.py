"""Reading a .safetensors file with NumPy alone: no pickle, no new dependency.

The format (Hugging Face's safetensors) is three parts, in this order:

    8 bytes      N, the length of the header, an unsigned 64-bit little-endian integer
    N bytes      the header: UTF-8 JSON, {name: {"dtype": "F32", "shape": [..],
                 "data_offsets": [begin, end]}, ..., optionally "__metadata__": {str: str}}
    the rest     the data: every tensor's bytes, row-major, little-endian, at
                 [begin, end) counted from the start of this part

    arrays = load_safetensors("model.safetensors")          {name: NumPy array}
    arrays, metadata = load_safetensors(path, metadata=True)

Nothing in the file is executed or trusted: the header must be a JSON object, every entry's
byte range must lie inside the data part and have exactly the size its dtype and shape say,
and the ranges must not overlap. A file that breaks any of these is refused with
``SafetensorsError`` naming the file, the tensor, what was expected and what was received.
bfloat16 (BF16), which NumPy lacks, is widened to float32 exactly (its bits are the upper
half of a float32's).
"""

import json
import math
import os

import numpy as np

# safetensors dtype -> NumPy dtype, little-endian ("<"); BF16 is read as 16-bit words first.
DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
    "BOOL": "?",
}  # fmt: skip
HEADER_LIMIT = 100_000_000  # the reference implementation's bound on the header length


class SafetensorsError(ValueError):
    """A file that is not a well-formed safetensors file (the message names the problem)."""


def _refuse(path, message):
    raise SafetensorsError(f"safetensors file {path}: {message}")


def read_header(f, path, size):
    """(header dict, start of the data part) from an open binary file of ``size`` bytes."""
    if size < 8:
        _refuse(path, f"expected at least 8 bytes (the header length), received a file of {size}")
    (n,) = np.frombuffer(f.read(8), dtype="<u8")
    n = int(n)
    if n > min(HEADER_LIMIT, size - 8):
        _refuse(path, f"expected a header length of at most {min(HEADER_LIMIT, size - 8)} bytes (the rest of the "
                      f"file), received {n}: the file is truncated or not safetensors")
    try:
        header = json.loads(f.read(n).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        _refuse(path, f"expected a UTF-8 JSON header of {n} bytes, received one that does not parse ({error})")
    if not isinstance(header, dict):
        _refuse(path, f"expected a JSON object as header, received {type(header).__name__}")
    return header, 8 + n


def _entry(path, name, info, data_size):
    """(NumPy dtype string, shape, begin, end) of one header entry, checked."""
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        _refuse(path, f"tensor {name!r}: expected an entry with dtype, shape and data_offsets, received {info!r}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in DTYPES:
        _refuse(path, f"tensor {name!r}: expected a dtype among {', '.join(DTYPES)}, received {dtype!r}")
    if not (isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
        _refuse(path, f"tensor {name!r}: expected a shape of non-negative integers, received {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
        _refuse(path, f"tensor {name!r}: expected data_offsets [begin, end], received {offsets!r}")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        _refuse(path, f"tensor {name!r}: expected 0 <= begin <= end <= {data_size} (the data part's size), "
                      f"received data_offsets [{begin}, {end}]: the header lies or the file is truncated")
    expected = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
    if end - begin != expected:
        _refuse(path, f"tensor {name!r}: expected {expected} bytes for {dtype} of shape {tuple(shape)}, "
                      f"received data_offsets [{begin}, {end}] ({end - begin} bytes)")
    return DTYPES[dtype], tuple(shape), begin, end


def load_safetensors(path, metadata=False):
    """{name: NumPy array} of every tensor in the file, in header order (each a copy in native
    byte order; BF16 widened to float32); with ``metadata=True`` also the "__metadata__" dict.

    Raises SafetensorsError for a truncated file, a header that is not JSON or lies about
    offsets or sizes, overlapping tensors, or an unsupported dtype; FileNotFoundError for a
    missing file.
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header, start = read_header(f, path, size)
        data = f.read()
    meta = header.pop("__metadata__", {})
    entries = {name: _entry(path, name, info, len(data)) for name, info in header.items()}
    ranges = sorted((begin, end, name) for name, (_, _, begin, end) in entries.items() if end > begin)
    for (_, end_a, a), (begin_b, _, b) in zip(ranges, ranges[1:]):
        if begin_b < end_a:
            _refuse(path, f"tensors {a!r} and {b!r}: expected disjoint byte ranges, received overlapping ones")
    arrays = {}
    for name, (dtype, shape, begin, end) in entries.items():
        raw = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=begin).reshape(shape)
        if header[name]["dtype"] == "BF16":  # the upper 16 bits of a float32
            arrays[name] = (raw.astype(np.uint32) << 16).view(np.float32)
        else:
            arrays[name] = raw.astype(raw.dtype.newbyteorder("="))  # a native-order copy
    return (arrays, meta) if metadata else arrays


def save_safetensors(path, arrays, metadata=None):
    """Write ``arrays`` ({name: NumPy array}) as a safetensors file (atomically); the tests use
    it to craft files. float64/32/16, integers and bool; no bfloat16."""
    from .files import atomic_write

    names = {np.dtype(v): k for k, v in DTYPES.items() if k != "BF16"}
    header, chunks, offset = {}, [], 0
    for name, a in arrays.items():
        a = np.asarray(a, order="C")  # (ascontiguousarray would turn a 0-d array into 1-d)
        le = a.astype(a.dtype.newbyteorder("<"))
        key = names.get(le.dtype) or names.get(np.dtype(le.dtype.str))
        if key is None:
            raise ValueError(f"arrays[{name!r}]: expected a dtype among {sorted(set(names.values()))}, "
                             f"received {a.dtype}")
        chunks.append(le.tobytes())
        header[name] = {"dtype": key, "shape": list(a.shape), "data_offsets": [offset, offset + len(chunks[-1])]}
        offset += len(chunks[-1])
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data part starts 8-aligned, as the reference writer does
    with atomic_write(path) as f:
        f.write(np.array([len(text)], dtype="<u8").tobytes())
        f.write(text)
        for chunk in chunks:
            f.write(chunk)
    return path
