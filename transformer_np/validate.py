"""Input checks shared by the layers and the data: fail loudly, naming what was expected and what arrived."""

import numpy as np

from .backend import backend_name, get_array_module


def check_float(x, name="x"):
    """``x`` must be a floating-point array."""
    if not hasattr(x, "dtype") or x.dtype.kind != "f":
        got = getattr(x, "dtype", type(x).__name__)
        raise TypeError(f"{name}: expected a floating-point array, received {got}")


def check_ndim(x, ndims, name="x", shape_doc=None):
    """``x.ndim`` must be one of ``ndims`` (an int or a tuple of ints)."""
    ndims = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if getattr(x, "ndim", None) not in ndims:
        want = " or ".join(str(n) for n in ndims)
        doc = f" {shape_doc}" if shape_doc else ""
        raise ValueError(
            f"{name}: expected {want} dimensions{doc}, received shape {getattr(x, 'shape', None)}"
        )


def check_last_dim(x, size, name="x"):
    """``x.shape[-1]`` must equal ``size`` (the feature size a layer was built for)."""
    if x.shape[-1] != size:
        raise ValueError(f"{name}: expected last dimension {size}, received shape {x.shape}")


def check_finite(x, name="x"):
    """No NaN or inf in ``x``: they would spread silently through every later layer."""
    xp = get_array_module(x)
    if not bool(xp.isfinite(x).all()):
        raise ValueError(f"{name}: expected finite values, received an array containing NaN or inf")


def check_int_ids(ids, low, high, name="ids"):
    """``ids`` must be an integer array with every value in [low, high)."""
    if not hasattr(ids, "dtype") or ids.dtype.kind not in "iu":
        got = getattr(ids, "dtype", type(ids).__name__)
        raise TypeError(f"{name}: expected an integer array, received {got}")
    if not ids.size:
        return
    smallest, largest = ids.min(), ids.max()  # 0-d arrays: on a GPU they stay on the device
    if bool((smallest < low) | (largest >= high)):  # one device-to-host synchronisation, not two
        raise ValueError(
            f"{name}: expected values in [{low}, {high}), received values in "
            f"[{int(smallest)}, {int(largest)}]"
        )


def check_same_backend(a, b, name_a="x", name_b="weight"):
    """``a`` must live on the backend of ``b`` (usually a parameter): a NumPy array given to a model
    on CuPy, or a CuPy array to a model on NumPy, is refused naming both backends and both ways to
    move (the model, or the data). One type check, run where an input meets a layer's parameters."""
    got, want = backend_name(a), backend_name(b)
    if got != want:
        raise TypeError(
            f"{name_a}: expected a {want} array (the backend of {name_b}), received a {got} array; move the "
            f"model with model.to({got!r}), or the data with transformer_np.backend.to_backend({name_a}, {want!r})"
        )


def check_same_dtype(a, b, name_a="x", name_b="weight"):
    """Two arrays must share a backend (``check_same_backend``) and a dtype, so float32 stays float32
    (no silent upcast)."""
    check_same_backend(a, b, name_a, name_b)
    if a.dtype != b.dtype:
        raise TypeError(f"{name_a}: expected dtype {b.dtype} (the dtype of {name_b}), received {a.dtype}")


def check_upstream(dout, shape, dtype, who):
    """An upstream gradient ``dout`` must have the shape and dtype of the output it belongs to.

    ``who`` names the backward (``"Linear.backward"``). Without this check a (3, 2, 4) gradient
    for a (2, 3, 4) output, or a batch-1 gradient for batch 2, would broadcast into a silently
    wrong result.
    """
    got_shape = tuple(getattr(dout, "shape", ()))
    if not hasattr(dout, "dtype") or got_shape != tuple(shape):
        raise ValueError(
            f"{who}: dout: expected the shape of forward's output {tuple(shape)}, received "
            f"{got_shape if hasattr(dout, 'dtype') else type(dout).__name__}"
        )
    if dout.dtype != dtype:
        raise TypeError(f"{who}: dout: expected the dtype of forward's output {dtype}, received {dout.dtype}")


def check_generator(rng, name="rng"):
    """``rng`` must be a ``numpy.random.Generator``, e.g. ``np.random.default_rng(0)``; returns it."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{name}: expected a numpy.random.Generator (np.random.default_rng(seed)), received {type(rng).__name__}"
        )
    return rng


def check_int(value, name, low=1):
    """``value`` must be an integer >= ``low`` (NumPy integers accepted); returns it as a Python int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, received {value!r}")
    return int(value)


def check_sequence(seq, name):
    """``seq`` must be 1-D and of an integer dtype (a list of ints is accepted); returns an int64 array."""
    arr = np.asarray(seq)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of token ids, received shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer token ids, received dtype {arr.dtype}")
    return arr.astype(np.int64)


def check_activations(x, d_model, like, name="x", like_name="the parameters"):
    """``x`` must be a finite floating-point (B, T, d_model) array of the dtype of ``like``.

    The entry check of a stack of layers (an encoder, a decoder) that receives hidden states
    rather than token ids: wrong rank, feature size or dtype, and NaN/inf, all refused.
    """
    check_float(x, name)
    check_ndim(x, 3, name, "(B, T, D)")
    check_last_dim(x, d_model, name)
    check_same_dtype(x, like, name, like_name)
    check_finite(x, name)
