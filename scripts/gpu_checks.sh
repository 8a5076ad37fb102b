#!/usr/bin/env bash
# The device checks of issue 17 in one call on a GPU machine (the `device` tool's run):
# build with nvcc, the `cuda` tests, then benchmarks/bench_gpu.py; everything under $OUT.
#
# Before the call, on the development machine, in the repository root (once):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl cffi pycparser vegas gvar
# (the GPU image has torch, numpy, scipy, pybind11, pytest, tqdm, rich, matplotlib and
# mpmath, but not these, and reaches no registry). Then two calls back to back (the
# machine stays warm 30 s between them, and keeps the build):
#   run(command="bash scripts/gpu_checks.sh build test", carry=[".whl"], timeout_s=590)
#   run(command="bash scripts/gpu_checks.sh bench", carry=[".whl"], timeout_s=400)
# Stages: build, test, bench (any of them, in that order; none: all three). Each stage
# is cut at its limit (build 240 s, tests 330 s, bench 360 s) and the script goes on, so
# what finished still comes back under $OUT.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
STAGES=" ${*:-build test bench} "
want() { [[ "$STAGES" == *" $1 "* ]]; }
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

if ls .whl/*.whl > /dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# the built-in processes as the package madnis_py.processes, without pip install
[ -e madnis_py/processes ] || ln -s ../processes madnis_py/processes

{
    date -u
    nvidia-smi -L
    nvcc --version | tail -1
    $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA DEVICE')"
    $PY -c "import vegas, cffi; print('vegas', vegas.__version__, 'cffi', cffi.__version__)"
} 2>&1 | tee "$OUT/env.txt"

if want build; then
    # sm_90 only (H100/H200): half the nvcc work of the default "80;90"
    MADNIS_PY_CUDA=1 MADNIS_PY_CUDA_ARCH=90 timeout 240 $PY setup.py build_ext --inplace \
        -j 16 > "$OUT/build.log" 2>&1
    rc=$?
    echo "build: exit $rc" | tee -a "$OUT/env.txt"
    [ $rc -eq 0 ] || { tail -40 "$OUT/build.log"; exit 1; }
    $PY -c "from madnis_py import _ext; assert _ext.WITH_CUDA; print('ext: CUDA', _ext.cuda_device_count(), 'device(s)')" \
        2>&1 | tee -a "$OUT/env.txt"
fi

if want test; then
    # every file with cuda-marked tests (a missing optional package skips a file, it
    # does not stop the run)
    files=$(grep -rl "mark.cuda" tests --include='*.py' | sort)
    timeout 330 $PY -m pytest -q -m cuda -p no:cacheprovider -rs \
        --continue-on-collection-errors $files 2>&1 | tee "$OUT/pytest_cuda.txt"
    echo "tests: exit ${PIPESTATUS[0]}" | tee -a "$OUT/env.txt"
fi

if want bench; then
    timeout 360 $PY benchmarks/bench_gpu.py --quick --out "$OUT" 2>&1 | tee "$OUT/bench.txt"
    echo "bench: exit ${PIPESTATUS[0]}" | tee -a "$OUT/env.txt"
fi
