"""The memory claims of issue 13, measured as benchmarks/attention_memory.py measures them
(tracemalloc peak of one forward + backward), at small T so that the suite stays fast: doubling T
multiplies the standard path's peak by about 4 and the tiled path's by less than 2."""

import runpy

import pytest

from notes_labels import ROOT

measure = runpy.run_path(str(ROOT / "benchmarks" / "attention_memory.py"))["measure"]


@pytest.fixture(scope="module")
def peaks():
    return {(kind, T): measure(kind, T, heads=1, d_head=16)[0]
            for kind in ("standard", "tiled", "window", "linear") for T in (512, 1024)}


def test_standard_attention_memory_grows_as_T_squared(peaks):
    assert 3.5 < peaks["standard", 1024] / peaks["standard", 512] < 4.5


def test_tiled_attention_memory_grows_at_most_linearly(peaks):
    assert peaks["tiled", 1024] / peaks["tiled", 512] < 2.05
    assert peaks["tiled", 1024] < peaks["standard", 1024] / 8


def test_window_and_linear_attention_memory_grow_linearly(peaks):
    for kind in ("window", "linear"):
        assert peaks[kind, 1024] / peaks[kind, 512] < 2.05, kind
