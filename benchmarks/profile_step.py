"""Where a training step's time goes: a per-layer timer (self time of every layer class's forward
and backward) and, with ``--cprofile``, Python's cProfile of the same steps.

    OPENBLAS_NUM_THREADS=1 python benchmarks/profile_step.py [--workload gpt-small-train] [--steps 10] [--cprofile]

The workloads are those of benchmarks/vs_torch.py (the training steps and the encoder forward).
Times are CPU time of this process (``time.process_time``): with one BLAS thread that is the
time the step actually ran, whatever other users' jobs take. The timer wraps every module's ``forward`` and ``backward`` on the instance (the library is not
changed) and charges each call's time, less the time of the calls nested in it, to the class:
"Linear backward 12.3 ms" is the time spent in Linear.backward's own lines per step. The
optimiser, the loss and the clipping are timed as three more rows.
"""

import argparse
import cProfile
import os
import pstats
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vs_torch  # noqa: E402


class LayerTimer:
    """Self time per (class, forward|backward), summed over calls; a stack removes nested time."""

    def __init__(self):
        self.self_time = defaultdict(float)
        self.stack = []  # [start, time of the nested calls] per open call

    def wrap(self, key, function):
        def timed(*args, **kwargs):
            self.stack.append([time.process_time(), 0.0])
            try:
                return function(*args, **kwargs)
            finally:
                start, nested = self.stack.pop()
                total = time.process_time() - start
                self.self_time[key] += total - nested
                if self.stack:
                    self.stack[-1][1] += total

        return timed

    def instrument(self, module):
        for m in module.modules():
            for method in ("forward", "backward"):
                setattr(m, method, self.wrap((type(m).__name__, method), getattr(m, method)))

    def instrument_object(self, obj, methods, name):
        for method in methods:
            setattr(obj, method, self.wrap((name, method), getattr(obj, method)))


def build_instrumented(workload, timer):
    """The step of ``workload`` (vs_torch's), its model, loss and optimiser timed."""
    kind, arg = vs_torch.WORKLOADS[workload][:2]
    step = getattr(vs_torch, f"ours_{kind}")(arg)
    timer.instrument(step.parts["model"])
    if "loss" in step.parts:
        timer.instrument(step.parts["loss"])
        timer.instrument_object(step.parts["optimizer"], ("step", "zero_grad"), "AdamW")
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", default="gpt-small-train",
                        choices=[n for n, w in vs_torch.WORKLOADS.items() if w[0] != "gpt_generate"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cprofile", action="store_true", help="also print cProfile's top 25 by total time")
    args = parser.parse_args()
    timer = LayerTimer()
    step = build_instrumented(args.workload, timer)
    step()  # warm up
    timer.self_time.clear()
    start = time.process_time()
    for _ in range(args.steps):
        step()
    wall = (time.process_time() - start) / args.steps
    print(f"{args.workload}: {1e3 * wall:.1f} ms CPU time per step (timers included), load {os.getloadavg()[0]:.1f}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    rows = sorted(timer.self_time.items(), key=lambda kv: -kv[1])
    for (name, method), seconds in rows:
        ms = 1e3 * seconds / args.steps
        if ms >= 0.05:
            print(f"  {name:<32} {method:<9} {ms:8.2f} ms  {seconds / args.steps / wall:6.1%}")
    print(f"  {'(outside the timed layers)':<42} {1e3 * (wall - sum(timer.self_time.values()) / args.steps):8.2f} ms")
    if args.cprofile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.steps):
            step()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
