"""A strict CPU stand-in for CuPy, for tests only: NumPy underneath, CuPy's manners on top.

CI has no GPU, so the CuPy backend cannot run there. Code that works on NumPy can still break
on CuPy in a few well-known ways; this module makes those ways fail on the CPU too:

    import strict_backend as strict
    backend.register_backend("strict", strict, strict.StrictArray)   # test_strict_backend.py does it
    model.to("strict")          # every parameter becomes a StrictArray
    model.forward(strict.asarray(ids))

What it imitates (each a TypeError, as CuPy raises one):
- Its arrays are a type of their own (``StrictArray``, not an ``ndarray`` subclass):
  ``isinstance(x, np.ndarray)`` is False, as for a ``cupy.ndarray``.
- No implicit way to the host: ``np.asarray(x)``, ``np.array(x)``, ``x.__array__()`` raise with
  CuPy's sentence ("Implicit conversion to a NumPy array is not allowed ..."). ``x.get()`` and
  ``asnumpy(x)`` are the only ways back, and they return copies (as a device-to-host copy does).
- Mixing the two kinds of array raises: ``strict_array + numpy_array``, ``numpy_array * strict_array``,
  ``strict.exp(numpy_array)``, ``strict.matmul(a, numpy_array)``. CuPy refuses a NumPy array as an
  operand of its functions (only ``asarray``/``array`` take host data), and NumPy scalars
  (``np.float32(2)``) and Python numbers are accepted, as there.
- Reductions and integer indexing give 0-d arrays, not NumPy scalars (``x.sum()``, ``x[0, 1]``),
  as CuPy's do. ``float(x)``, ``int(x)``, ``bool(x)``, ``operator.index(x)`` and ``x.item()`` work
  on a 0-d array (a device synchronisation on a GPU; counted in ``host_syncs``) and raise on
  anything larger (``bool`` of a larger array raises NumPy's "ambiguous" error). ``x.tolist()``
  is an explicit copy, as in CuPy.
- Lists and tuples are refused as operands of element-wise functions (``strict.exp([1.0])``), as
  CuPy's ufuncs refuse them.
- ``strict.random.default_rng`` gives a generator whose draws are StrictArrays.

Stricter than CuPy, on purpose:
- Every NumPy function called on a StrictArray raises (``np.exp(x)``, ``np.sum(x)``, ``np.shape(x)``).
  CuPy implements ``__array_function__``/``__array_ufunc__`` and so runs the NumPy functions it
  also has; relying on that dispatch is fragile (a function CuPy lacks, a NumPy-only argument)
  and the library's rule is ``xp = get_array_module(x)``, so the stand-in enforces the rule.
- Writing a NumPy array into a StrictArray (``x[...] = numpy_array``) raises; move it first
  (CuPy may copy it to the device silently).
- Attributes cannot be set (``x.shape = ...``; use ``reshape``).

What it cannot imitate:
- Speed, memory and asynchrony: everything runs on the CPU, synchronously, in host memory.
- Numerical differences (cuBLAS summation order, float-to-int casts of negative or infinite
  values, out-of-bounds integer indices that CuPy wraps around instead of refusing).
- Functions NumPy has and CuPy lacks: the stand-in offers all of NumPy's, so a call to one CuPy
  does not implement passes here. ``cupyx`` (``scatter_add``) is imitated by ``add.at``.
- Views: a StrictArray may share memory with another exactly as a NumPy array does.
"""

import functools
import types

import numpy as np

# --- the array type ---------------------------------------------------------------------------

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a "
            "NumPy array explicitly.")

host_syncs = {"count": 0}  # float()/int()/bool() on a 0-d StrictArray: each a device sync on a GPU


_PLAIN = {int, float, bool, str, type(None), type(Ellipsis), np.dtype}  # passed through as they are


def _mixing(what):
    return TypeError(f"Unsupported type {what}: a NumPy array cannot be an operand of the strict (CuPy-like) "
                     "backend; move it with strict.asarray(x) (or move the StrictArray to the host with .get())")


def _unwrap(value, where, allow_host=False, sequences=True):
    """The NumPy array inside ``value`` (recursing into lists and tuples); a raw ndarray is refused.

    ``where`` names the call for the error message (the strict module's function, the operator).
    """
    kind = type(value)
    if kind is StrictArray:
        return value._data
    if kind in _PLAIN or kind is slice:
        return value
    if isinstance(value, np.ndarray) and not allow_host:
        raise _mixing(f"{type(value).__module__}.{type(value).__name__} (in {where})")
    if isinstance(value, (list, tuple)):
        if not sequences:
            raise TypeError(f"Unsupported type {type(value).__name__} (in {where}): the strict (CuPy-like) backend's "
                            "element-wise functions take its arrays and scalars only")
        return type(value)(_unwrap(v, where, allow_host) for v in value)
    return value


def _wrap(value):
    """NumPy results as StrictArrays: arrays and NumPy scalars (as 0-d arrays, like CuPy's reductions)."""
    if type(value) in _PLAIN:
        return value
    if type(value) is np.ndarray:
        return StrictArray(value)
    if isinstance(value, np.generic):
        return StrictArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class StrictArray:
    """An array of the strict backend: a NumPy array inside, no implicit way out.

    Attributes and methods are NumPy's (``shape``, ``dtype``, ``reshape``, ``sum``, ``astype``
    ...), with StrictArrays in and out. ``get()`` returns a NumPy copy.
    """

    __slots__ = ("_data",)
    __array_ufunc__ = None  # NumPy's ufuncs (and ndarray operators) refuse us; Python then tries ours

    def __init__(self, data):
        if not isinstance(data, np.ndarray):
            raise TypeError(f"StrictArray wraps a numpy.ndarray, received {type(data).__name__}")
        self._data = data

    # the only ways to the host
    def get(self):
        """A NumPy copy of the data (a device-to-host copy)."""
        return self._data.copy()

    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT)

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} was called on a StrictArray: {IMPLICIT} Inside the library, use "
                        "xp = get_array_module(x) and xp.{0}(...)".format(func.__name__))

    # Python scalars: 0-d only (a synchronisation on a GPU)
    def _scalar(self, kind):
        if self._data.ndim != 0:
            raise TypeError(f"{kind}() of a StrictArray of shape {self._data.shape}: only a 0-d array converts "
                            f"to a Python scalar ({IMPLICIT})")
        host_syncs["count"] += 1
        return self._data[()]

    def __float__(self):
        return float(self._scalar("float"))

    def __int__(self):
        return int(self._scalar("int"))

    def __bool__(self):
        if self._data.size > 1:
            return bool(self._data)  # NumPy's own "truth value ... is ambiguous" ValueError
        return bool(self._scalar("bool"))

    def __complex__(self):
        return complex(self._scalar("complex"))

    def __index__(self):
        if self._data.dtype.kind not in "iu":
            raise TypeError(f"only integer 0-d StrictArrays can be an index, received dtype {self._data.dtype}")
        return int(self._scalar("index"))

    def __format__(self, spec):
        return format(self._scalar("format"), spec) if spec else repr(self)

    def item(self):
        host_syncs["count"] += 1
        return self._data.item()

    def tolist(self):
        return self._data.tolist()  # explicit, as CuPy's tolist (a host copy)

    # attributes, methods, indexing
    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    T = property(lambda self: StrictArray(self._data.T))

    def __getattr__(self, name):
        if name.startswith("__"):  # __array_interface__, __array_struct__, __dlpack__: no way around __array__
            raise AttributeError(f"StrictArray has no attribute {name!r}")
        value = getattr(self._data, name)
        if callable(value):
            def method(*args, **kwargs):
                if kwargs:
                    kwargs = {k: _unwrap(v, name) for k, v in kwargs.items()}
                return _wrap(value(*_unwrap(args, name), **kwargs))
            return method
        return _wrap(value)


    def __getitem__(self, key):
        return _wrap(self._data[_unwrap(key, "indexing")])

    def __setitem__(self, key, value):
        self._data[_unwrap(key, "indexing")] = _unwrap(value, "assignment")

    def __len__(self):
        return len(self._data)

    def __iter__(self):
        return (_wrap(row) for row in self._data)

    def __repr__(self):
        return "strict." + repr(self._data)

    __str__ = __repr__
    __hash__ = None

    def __copy__(self):
        return StrictArray(self._data.copy())

    def __deepcopy__(self, memo):
        return StrictArray(self._data.copy())

    def __reduce__(self):
        raise TypeError(f"a StrictArray cannot be pickled: {IMPLICIT}")


def _operator(name):
    op = getattr(np.ndarray, name)

    def method(self, *other):
        if other:
            o = other[0]
            if type(o) is StrictArray:
                o = o._data
            elif isinstance(o, (np.ndarray, list, tuple)):
                o = _unwrap(o, f"operator {name}")
            other = (o,)
        out = op(self._data, *other)
        if out is NotImplemented:
            return out
        if name.startswith("__i") and name not in ("__invert__", "__index__"):
            return self  # in place: the wrapped array was updated
        return _wrap(out)

    method.__name__ = name
    return method


for _name in ("add sub mul truediv floordiv mod pow matmul and or xor lshift rshift "
              "radd rsub rmul rtruediv rfloordiv rmod rpow rmatmul rand ror rxor "
              "iadd isub imul itruediv ifloordiv imod ipow imatmul iand ior ixor "
              "lt le gt ge eq ne neg pos abs invert").split():
    setattr(StrictArray, f"__{_name}__", _operator(f"__{_name}__"))

ndarray = StrictArray


# --- the module's functions -------------------------------------------------------------------

HOST_DATA = {"asarray", "array", "asanyarray", "ascontiguousarray"}  # the ways onto the device


def asarray(a, dtype=None, **kwargs):
    """A StrictArray of ``a`` (a host-to-device copy for NumPy data; ``a`` itself when it already is one
    of ``dtype``)."""
    if isinstance(a, StrictArray) and (dtype is None or np.dtype(dtype) == a._data.dtype):
        return a
    data = _unwrap(a, "asarray", allow_host=True)
    out = np.asarray(data, dtype=dtype, **kwargs)
    shared = isinstance(data, np.ndarray) and np.shares_memory(out, data)
    return StrictArray(out.copy() if shared else out)  # a copy, as a host-to-device copy is


def array(a, dtype=None, copy=True, **kwargs):
    return StrictArray(np.array(_unwrap(a, "array", allow_host=True), dtype=dtype, **kwargs))


def asnumpy(a):
    """A NumPy copy of ``a`` (StrictArray) or ``a`` as a NumPy array (host data), as ``cupy.asnumpy``."""
    return a.get() if isinstance(a, StrictArray) else np.asarray(a)


def get_array_module(*arrays):
    return _this if any(isinstance(a, StrictArray) for a in arrays) else np


def _function(func, name):
    is_ufunc = isinstance(func, np.ufunc)

    where = f"strict.{name}"

    @functools.wraps(func)
    def wrapped(*args, **kwargs):
        if is_ufunc:
            args = tuple(_unwrap(a, where, sequences=False) for a in args)
        else:
            args = _unwrap(args, where)
        if kwargs:
            kwargs = {k: _unwrap(v, where) for k, v in kwargs.items()}
        return _wrap(func(*args, **kwargs))

    if is_ufunc:  # keep ufunc methods: add.at (cupyx.scatter_add), maximum.reduce, ...
        for method in ("at", "reduce", "accumulate", "outer", "reduceat"):
            setattr(wrapped, method, _function(getattr(func, method), f"{name}.{method}"))
    return wrapped


class _Namespace(types.SimpleNamespace):
    """A sub-module (``random``, ``linalg``) whose functions take and give StrictArrays."""


def _wrap_namespace(module, name):
    ns = _Namespace()
    for attr in dir(module):
        if attr.startswith("_"):
            continue
        value = getattr(module, attr)
        setattr(ns, attr, _function(value, f"{name}.{attr}") if _is_function(value) else value)
    return ns


def _is_function(value):
    return isinstance(value, (types.FunctionType, types.BuiltinFunctionType, np.ufunc)) or (
        callable(value) and type(value).__name__ == "_ArrayFunctionDispatcher")


class Generator:
    """``strict.random.default_rng(seed)``: NumPy's generator, its draws StrictArrays (as
    ``cupy.random.default_rng``; the numbers are NumPy's, CuPy's stream differs)."""

    def __init__(self, seed=None):
        self._rng = np.random.default_rng(seed)

    def __getattr__(self, name):
        value = getattr(self._rng, name)
        return _function(value, f"random.Generator.{name}") if callable(value) else value


random = _wrap_namespace(np.random, "random")
random.default_rng = Generator
random.Generator = Generator
linalg = _wrap_namespace(np.linalg, "linalg")
_this = None  # set below to this module


def __getattr__(name):
    """Every other NumPy name: functions take and give StrictArrays; types, dtypes and constants
    (``float32``, ``newaxis``, ``inf``, ``finfo``) are NumPy's own, as in CuPy."""
    value = getattr(np, name)
    if _is_function(value) and name not in {"dtype", "finfo", "iinfo", "result_type", "promote_types",
                                             "can_cast", "issubdtype"}:
        value = _function(value, name)
        globals()[name] = value
    return value


def _register_this():
    import sys

    global _this
    _this = sys.modules[__name__]


_register_this()
