"""pytest set-up for the whole repository (tests/ and the notebooks that nbmake runs): one BLAS thread.

On a shared machine, two BLAS threads beside another busy process made runs several times
slower (benchmarks/RESULTS.md, "BLAS threads"), so the test suite uses one, as the command line
does (transformer_np/__main__.py). The variables must be set before NumPy is imported: this
file is the first pytest loads, and the notebooks' kernels inherit the environment. A number
chosen in the environment is kept (OPENBLAS_NUM_THREADS=2 python -m pytest uses two).
"""

import os

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

if not any(name in os.environ for name in THREAD_VARIABLES):
    os.environ.update({name: "1" for name in THREAD_VARIABLES})
