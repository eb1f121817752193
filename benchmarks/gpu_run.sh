#!/usr/bin/env bash
# One call on a machine with a CUDA GPU (the device tool; see benchmarks/README.md): build fastlr with its
# kernels, run tests/test_cuda.py, then benchmarks/gpu_check.py (checks and timings), then the quick checks
# under compute-sanitizer's memcheck and racecheck. Logs and JSON go to $OUT (or ./gpu_out).
#
#   bash benchmarks/gpu_run.sh            # everything
#   STAGES="build tests" bash benchmarks/gpu_run.sh
#   STAGES="info wheel tests check sanitize suite" bash benchmarks/gpu_run.sh   # a carried wheel instead
#
# Uses the machine's own python3, torch, pybind11 and scikit-build-core (nothing can be fetched there).
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
STAGES=${STAGES:-"info build tests check sanitize"}
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
status=0
has() { [[ " $STAGES " == *" $1 "* ]]; }
stage() { echo; echo "=== $1 ($(date +%T))"; }

if has info; then
  stage info
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv 2>&1 | tee "$OUT/info.txt"
  $PY -c "import sys, torch, numpy; print(sys.version); print('torch', torch.__version__, torch.version.cuda, torch.cuda.get_device_name()); print('numpy', numpy.__version__)" 2>&1 | tee -a "$OUT/info.txt"
  nvcc --version | tail -1 | tee -a "$OUT/info.txt"
fi

if has wheel; then
  # A wheel built elsewhere (CI's wheel step: FASTLR_CUDA=ON, sm_75/80/90 + PTX), carried in .whl/:
  # what users install, instead of the source build below.
  stage wheel
  whl=$(ls .whl/fastlr-*-cp$($PY -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')-*.whl 2>/dev/null | head -1)
  if [ -z "$whl" ]; then echo "no fastlr wheel for this Python in .whl/"; exit 1; fi
  $PY -m pip install -q --no-deps --no-index --force-reinstall "$whl" > "$OUT/wheel.log" 2>&1 || { cat "$OUT/wheel.log"; exit 1; }
  (cd /tmp && $PY -c "import fastlr, fastlr._cuda as c; print('fastlr', fastlr.__version__, 'from', fastlr.__file__, 'devices', c.device_count())")
fi

if has build; then
  stage build
  # sm_90 only (this machine), warnings as errors, as CI builds the host code.
  FASTLR_WERROR=ON FASTLR_CUDA=ON timeout 400 $PY -m pip install --no-build-isolation --no-deps --no-cache-dir \
    -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90 -Cbuild-dir=build/gpu . > "$OUT/build.log" 2>&1
  rc=$?
  tail -3 "$OUT/build.log"
  if [ $rc -ne 0 ]; then echo "BUILD FAILED ($rc)"; tail -40 "$OUT/build.log"; exit 1; fi
  (cd /tmp && $PY -c "import fastlr, fastlr._cuda as c; print('fastlr', fastlr.__version__, fastlr.__file__, 'devices', c.device_count())")
fi

if has tests; then
  stage "tests/test_cuda.py"
  FASTLR_REQUIRE_CUDA_KERNELS=1 timeout ${TEST_TIMEOUT:-240} $PY -m pytest tests/test_cuda.py -q -p no:cacheprovider \
    -n ${WORKERS:-8} --junitxml="$OUT/test_cuda.xml" -o junit_family=xunit1 > "$OUT/test_cuda.log" 2>&1
  rc=$?; status=$((status | (rc != 0)))
  grep -E "^(FAILED|ERROR)|passed|failed" "$OUT/test_cuda.log" | tail -40
  [ $rc -ne 0 ] && echo "tests/test_cuda.py: rc=$rc"
fi

if has check; then
  stage "benchmarks/gpu_check.py"
  timeout ${CHECK_TIMEOUT:-150} $PY benchmarks/gpu_check.py --json "$OUT/gpu_check.json" > "$OUT/gpu_check.log" 2>&1
  rc=$?; status=$((status | (rc != 0)))
  grep -E "FAIL|^\|" "$OUT/gpu_check.log"; tail -3 "$OUT/gpu_check.log"
fi

if has sanitize; then
  for tool in memcheck racecheck; do
    stage "compute-sanitizer --tool $tool"
    # racecheck instruments every kernel's shared memory: only fastlr's kernels (their names hold "fastlr").
    filter=(); [ $tool = racecheck ] && filter=(--kernel-regex kns=fastlr)
    timeout ${SAN_TIMEOUT:-120} compute-sanitizer --tool $tool "${filter[@]}" --error-exitcode 3 --print-limit 20 \
      $PY benchmarks/gpu_check.py --quick > "$OUT/sanitize_$tool.log" 2>&1
    rc=$?; status=$((status | (rc != 0)))
    grep -E "ERROR SUMMARY|FAIL|Invalid|Race|checks passed" "$OUT/sanitize_$tool.log" | head -20
    echo "$tool: rc=$rc"
  done
fi

if has suite; then
  stage "the whole test suite (this machine's python and torch)"
  timeout ${SUITE_TIMEOUT:-200} $PY -m pytest ${SUITE_TESTS:-tests} -q -p no:cacheprovider -n ${WORKERS:-16} -x \
    --ignore=tests/test_cuda.py > "$OUT/suite.log" 2>&1
  rc=$?; status=$((status | (rc != 0)))
  grep -E "^(FAILED|ERROR)|passed|failed" "$OUT/suite.log" | tail -30
fi
echo; echo "=== done ($(date +%T)): status $status"
exit $status
