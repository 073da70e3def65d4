"""Keep freed memory for reuse: a process setting that makes NumPy training steps faster.

A training step allocates and frees the same few hundred arrays every step. glibc's malloc
returns large freed blocks to the system (arrays above its mmap threshold, and the top of the
heap beyond its trim threshold), so the next step faults the same pages in again: about 3400
page faults (13 MiB) per step of the small GPT, a tenth of its time (benchmarks/RESULTS.md).
``keep_freed_memory()`` raises those thresholds, so the memory stays in the process and is
reused, as PyTorch's CPU performance guides obtain with jemalloc or tcmalloc. It changes no
result, only where memory comes from. The command line calls it before training; a script or
a notebook may call it too. On systems without glibc it does nothing and returns False.
"""

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters
MiB = 2**20


def keep_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse; True when the settings were applied.

    The same as setting MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ and MALLOC_TOP_PAD_ in
    the environment before starting Python.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, 256 * MiB)  # arrays below 256 MiB come from the heap ...
    ok &= mallopt(M_TRIM_THRESHOLD, 1024 * MiB)  # ... which is not trimmed below 1 GiB ...
    ok &= mallopt(M_TOP_PAD, 256 * MiB)  # ... and grows in steps of 256 MiB
    return bool(ok)
