"""Backend selection: NumPy always, CuPy when a GPU is present (skipped visibly otherwise)."""

import numpy as np
import pytest

from transformer_np import backend
from transformer_np.layers import Linear


def test_numpy_arrays_belong_to_numpy():
    assert backend.get_array_module(np.ones(2)) is np
    assert backend.backend_name(np.ones(2)) == "numpy"


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="unknown backend 'jax': expected one of 'numpy', 'cupy'"):
        backend.get_backend("jax")


def test_default_dtype_is_float32_and_settable():
    assert backend.get_default_dtype() == np.float32
    try:
        backend.set_default_dtype(np.float64)
        assert Linear(2, 2).weight.dtype == np.float64
    finally:
        backend.set_default_dtype(np.float32)
    assert Linear(2, 2).weight.dtype == np.float32
    with pytest.raises(ValueError, match="float32 or float64, got int32"):
        backend.set_default_dtype(np.int32)


def test_importing_the_package_does_not_import_cupy():
    import subprocess
    import sys

    code = "import sys, transformer_np, transformer_np.layers; print('cupy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.skipif(not backend.cupy_available(), reason="CuPy with a CUDA GPU is not available on this machine")
def test_a_layer_runs_on_cupy_and_agrees_with_numpy():
    cp = backend.get_backend("cupy")
    layer = Linear(5, 3, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 4, 5))
    y_cpu = layer.forward(x)
    dx_cpu = layer.backward(np.ones_like(y_cpu))
    layer.zero_grad()
    layer.to("cupy")
    y_gpu = layer.forward(cp.asarray(x))
    dx_gpu = layer.backward(cp.ones_like(y_gpu))
    assert backend.backend_name(y_gpu) == "cupy"
    np.testing.assert_allclose(backend.to_numpy(y_gpu), y_cpu, rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(dx_gpu), dx_cpu, rtol=1e-12)
