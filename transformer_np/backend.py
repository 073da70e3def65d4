"""The array module: NumPy, or CuPy on a GPU.

Layers never name ``numpy`` on a data path. They ask the array they were given which module it
belongs to (``xp = get_array_module(x)``) and call ``xp.exp``, ``xp.matmul``, ... on it, so the
same code runs on CuPy arrays. CuPy is imported only when it is asked for by name, so importing
this package never requires it.
"""

import importlib

import numpy as np

BACKENDS = ("numpy", "cupy")

_registered = {}  # name -> (module, array type): backends added with register_backend (tests' stand-ins)

_default_dtype = np.dtype(np.float32)


def get_default_dtype():
    """The floating dtype new parameters get when a layer is given none (float32 at start)."""
    return _default_dtype


def set_default_dtype(dtype):
    """Set the dtype of new parameters: float32 (training) or float64 (gradient checks)."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"default dtype must be float32 or float64, got {dtype}")
    _default_dtype = dtype


def resolve_dtype(dtype=None):
    """``dtype`` as a NumPy dtype, or the default dtype when it is None."""
    return _default_dtype if dtype is None else np.dtype(dtype)


def register_backend(name, module, array_type):
    """Make ``module`` (with arrays of ``array_type``) a backend called ``name``, beside NumPy and CuPy.

    For stand-ins such as the tests' strict CPU imitation of CuPy (tests/strict_backend.py): the
    module offers NumPy's functions on its own arrays, plus ``asarray`` (host -> backend) and
    ``asnumpy`` (backend -> host); ``add.at`` serves ``scatter_add``. Library code is unchanged:
    it still asks ``get_array_module(x)``. ``unregister_backend(name)`` removes it.
    """
    if name in BACKENDS:
        raise ValueError(f"backend {name!r} is built in: expected a new name, received {name!r}")
    _registered[name] = (module, array_type)


def unregister_backend(name):
    """Remove a backend added by ``register_backend`` (a name never registered is ignored)."""
    _registered.pop(name, None)


def backend_names():
    """Every backend name a model can be moved to: ``"numpy"``, ``"cupy"`` and any registered."""
    return BACKENDS + tuple(_registered)


def get_backend(name):
    """The array module called ``name``: ``"numpy"`` or ``"cupy"`` (or a registered one).

    Raises ValueError for any other name and ImportError (with the install command) when CuPy
    is asked for but not installed.
    """
    if name in _registered:
        return _registered[name][0]
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(map(repr, backend_names()))}")
    if name == "numpy":
        return np
    try:
        return importlib.import_module("cupy")
    except ImportError as err:
        raise ImportError(
            "backend 'cupy' needs CuPy and a CUDA GPU: pip install -e \".[gpu]\""
        ) from err


def backend_name(x):
    """``"cupy"`` if ``x`` is a CuPy array, else ``"numpy"`` (decided without importing CuPy).

    An array of a registered backend gives that backend's name.
    """
    for name, (_, array_type) in _registered.items():
        if isinstance(x, array_type):
            return name
    return "cupy" if type(x).__module__.split(".")[0] == "cupy" else "numpy"


def get_array_module(x):
    """The module that owns array ``x`` (``numpy`` or ``cupy``), for writing backend-free code."""
    name = backend_name(x)
    return np if name == "numpy" else get_backend(name)


def to_backend(x, name):
    """Array ``x`` moved to backend ``name`` (a no-op when it is already there)."""
    xp = get_backend(name)
    source = backend_name(x)
    if source == name:
        return x
    if source != "numpy":
        x = x.get()  # device -> host (CuPy, or a registered backend)
    if name == "numpy":
        return x
    return xp.asarray(x)  # host -> device


def to_numpy(x):
    """A NumPy copy-or-view of ``x``, wherever it lives (for printing, plotting and saving)."""
    return to_backend(x, "numpy") if backend_name(x) != "numpy" else np.asarray(x)


def cupy_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        cp = get_backend("cupy")
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or a CUDA error when no driver/GPU is present
        return False


def scatter_add(a, indices, values):
    """``a[indices] += values`` in place, where repeated indices ADD up (plain ``+=`` keeps only one).

    ``a[i] += v`` with a repeated index i writes one of the sums and loses the others, because
    the right-hand side is evaluated before any element is written. The unbuffered version is
    ``numpy.add.at`` on NumPy and ``cupyx.scatter_add`` on CuPy; this picks the one that
    matches ``a``. Used by Embedding.backward, where a token occurring twice in a batch must
    receive the sum of both gradients.
    """
    name = backend_name(a)
    if name == "cupy":
        importlib.import_module("cupyx").scatter_add(a, indices, values)
    elif name == "numpy":
        np.add.at(a, indices, values)
    else:
        get_backend(name).add.at(a, indices, values)  # a registered backend's own ufunc
