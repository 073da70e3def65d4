"""How many BLAS threads, on a shared machine? Wall time of a training command and of part of the
test suite with 1 and with 2 BLAS threads, alone and beside another CPU-bound process.

    python benchmarks/blas_threads.py [--steps 60] [--tests tests/test_train.py ...] [--timeout 600] [--only tests]

Each command runs in a fresh process with OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and
MKL_NUM_THREADS set (they must be set before NumPy is imported, hence a process each). The
neighbour is a pure-Python busy loop: one core's worth of work that uses no BLAS, like another
user's job. On a machine other people use, "alone" means "without our neighbour": the load
average printed with each row says how busy the machine was anyway.
"""

import argparse
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def timed(command, threads, timeout):
    """Wall seconds of ``command`` with ``threads`` BLAS threads; None when stopped after ``timeout``."""
    env = {**os.environ, "PYTHONPATH": ROOT, **{name: str(threads) for name in THREAD_VARIABLES}}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds


def machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    import numpy

    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, NumPy {numpy.__version__}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="steps of the shakespeare recipe")
    parser.add_argument("--timeout", type=float, default=600, help="stop a run after this many seconds")
    parser.add_argument("--only", choices=("train", "tests"), help="one of the two commands")
    parser.add_argument("--tests", nargs="+", default=["tests/test_train.py", "tests/test_gpt.py",
                                                       "tests/test_encoder_decoder.py"])
    args = parser.parse_args()
    commands = {
        f"train shakespeare {args.steps} steps": [sys.executable, "-m", "transformer_np", "train", "--task",
                                                  "shakespeare", "--steps", str(args.steps), "--quiet"],
        "pytest " + " ".join(os.path.basename(t) for t in args.tests): [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.tests],
    }
    if args.only:
        commands = {k: v for k, v in commands.items() if k.startswith(args.only if args.only == "train" else "pytest")}
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {machine()}")
    print(f"{'command':<58} {'neighbour':>9} {'threads':>7} {'seconds':>9}  load before")
    for name, command in commands.items():
        for neighbour in (False, True):
            for threads in (1, 2):
                busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if neighbour else None
                try:
                    load = os.getloadavg()[0]
                    seconds = timed(command, threads, args.timeout)
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
                shown = f"{seconds:8.1f}s" if seconds is not None else f">{args.timeout:.0f}s".rjust(9)
                print(f"{name:<58} {'busy' if neighbour else 'none':>9} {threads:>7} {shown}  {load:.1f}", flush=True)

if __name__ == "__main__":
    main()
