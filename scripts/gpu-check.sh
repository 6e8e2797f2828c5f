#!/usr/bin/env bash
# gpu-check.sh [BUILD_DIR] | --bundle DIR — every GPU test and GPU benchmark on this machine's device.
#
#   scripts/gpu-check.sh build          builds BUILD_DIR with CUDA here (needs the -dev packages),
#                                       then runs the tests labelled gpu and the GPU benchmarks;
#   scripts/gpu-check.sh --bundle DIR   runs from a bundle made by scripts/gpu-bundle.sh on a machine
#                                       with the packages: for a GPU machine that has only the driver
#                                       (DIR may be the bundle's .tar.gz: it is unpacked first).
#
# Each GPU test compares a CUDA kernel (or kvt-llama's CUDA forward, on $KVT_SHARED_DATA) with its CPU
# twin; a test that skips (exit 77) on a machine with a device counts as a failure. Then
# compute-sanitizer's memcheck and racecheck run over the kernel tests when the toolkit has it. Results go to bench/results/<name>-<device>-<stamp>.{log,json},
# and also to $OUT when that is set (the device tool brings $OUT back). The CPU KIVI kernels are
# benchmarked there too (kernels-cpu-host-*): the GPU host is the many-core machine this project sees.
# Exits non-zero if there is no device, a test fails or skips, or a benchmark fails.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

MODE=build
BUILD=build
if [[ "${1:-}" == "--bundle" ]]; then
  MODE=bundle
  BUNDLE="${2:?usage: gpu-check.sh --bundle DIR|DIR.tar.gz}"
  if [[ -f "$BUNDLE" ]]; then  # the compressed bundle: unpack it under $TMPDIR
    unpack="$(mktemp -d "${TMPDIR:-/tmp}/kvt-gpu-bundle.XXXXXX")"
    tar -C "$unpack" -xzf "$BUNDLE"
    BUNDLE="$(find "$unpack" -mindepth 1 -maxdepth 1 -type d | head -1)"
  fi
  BUNDLE="$(cd "$BUNDLE" && pwd)"
elif [[ -n "${1:-}" ]]; then
  BUILD="$1"
fi

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no CUDA device visible (nvidia-smi -L failed)" >&2
  exit 1
fi
DEVICE="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr -c 'A-Za-z0-9\n' '-' | sed 's/-\+/-/g; s/-$//')"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$ROOT/bench/results"
mkdir -p "$RESULTS"
export KVT_SOURCE_DIR="$ROOT"
export KVT_SHARED_DATA="${KVT_SHARED_DATA:-$ROOT/../shared/data}"
[[ -d "$KVT_SHARED_DATA" ]] || KVT_SHARED_DATA="$ROOT/shared/data"

save() {  # save FILE: keep a copy under $OUT for the device tool
  if [[ -n "${OUT:-}" ]]; then cp "$1" "$OUT/"; fi
}

status=0
LOG="$RESULTS/gpu-tests-$DEVICE-$STAMP.log"
if [[ "$MODE" == build ]]; then
  if [[ ! -f "$BUILD/build.ninja" ]]; then
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" -DKVT_ENABLE_CUDA=ON
  fi
  cmake --build "$BUILD" -j "$(nproc)"
  BENCH="$BUILD/bin/kvt-bench"
  echo "== ctest -L gpu ($DEVICE)"
  ctest --test-dir "$BUILD" -L gpu --output-on-failure 2>&1 | tee "$LOG" || status=1
  if grep -q "Not Run\|Skipped" "$LOG"; then
    echo "gpu-check: some GPU tests were skipped on a machine with a device" >&2
    status=1
  fi
else
  export LD_LIBRARY_PATH="$BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export KVT_BIN_DIR="$BUNDLE/bin"
  BENCH="$BUNDLE/bin/kvt-bench"
  echo "== GPU tests from $BUNDLE ($DEVICE)" | tee "$LOG"
  while read -r name; do
    [[ -n "$name" ]] || continue
    rc=0
    (cd "$BUNDLE/tests" && "./$name") >> "$LOG" 2>&1 || rc=$?
    case $rc in
      0) echo "PASS    $name" | tee -a "$LOG" ;;
      77) echo "SKIPPED $name (a skip on a machine with a device is a failure)" | tee -a "$LOG"; status=1 ;;
      *) echo "FAIL    $name (exit $rc)" | tee -a "$LOG"; status=1 ;;
    esac
  done < "$BUNDLE/tests.list"
fi

# The Python binding's GPU test (device pointers and __cuda_array_interface__ against the host
# calls), when this python3 has numpy and pytest; otherwise it says so and moves on.
if [[ "$MODE" == bundle ]]; then
  PY_PATH="$BUNDLE/python"; PY_TEST="$BUNDLE/python/tests/test_sequence_device.py"
  PY_LIB="$(ls "$BUNDLE"/lib/libkvtier.so.* 2>/dev/null | head -1)"
else
  PY_PATH="$ROOT/python"; PY_TEST="$ROOT/python/tests/test_sequence_device.py"; PY_LIB="$BUILD/lib/libkvtier.so"
fi
PY="$(sh "$ROOT/python/tests/find_python.sh" || true)"
if [[ -f "$PY_TEST" && -n "$PY_LIB" && -n "$PY" ]]; then
  rc=0
  py_log="$(mktemp)"
  PYTHONPATH="$PY_PATH" KVT_LIBRARY="$PY_LIB" "$PY" -m pytest -q -rs -p no:cacheprovider "$PY_TEST" > "$py_log" 2>&1 || rc=$?
  cat "$py_log" >> "$LOG"
  if [[ $rc -ne 0 ]]; then echo "FAIL    python $PY_TEST (exit $rc)" | tee -a "$LOG"; status=1
  elif grep -q "^SKIPPED" "$py_log"; then  # only the device test can skip, and only without a device
    echo "SKIPPED python test_device_calls_match_host_calls (a skip on a machine with a device is a failure)" | tee -a "$LOG"
    status=1
  else echo "PASS    python test_sequence_device.py" | tee -a "$LOG"; fi
else
  echo "NOT RUN python test_sequence_device.py: no python3 with numpy >= 1.22 and pytest (KVT_PYTHON picks one), or no libkvtier" | tee -a "$LOG"
fi

# compute-sanitizer over the kernel tests, when the toolkit has it (KVT_GPU_SANITIZE=0 skips):
# memcheck on every kernel test, racecheck on the kernels that share memory between warps.
SANITIZER="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
if [[ "${KVT_GPU_SANITIZE:-1}" != 0 && -x "$SANITIZER" ]]; then
  if [[ "$MODE" == bundle ]]; then TESTS_DIR="$BUNDLE/tests"; else TESTS_DIR="$BUILD"; fi
  for check in "memcheck kernels_gpu_test *" "memcheck lowrank_gpu_test *" "memcheck sequence_device_gpu_test *" \
               "racecheck lowrank_gpu_test TaleAttentionCuda.*:LorcAttentionCuda.*:ObservedAttentionScoresCuda.*" "racecheck kernels_gpu_test *Attention*"; do
    read -r tool name filter <<< "$check"
    exe="$( (find "$TESTS_DIR" -maxdepth 6 -type f -name "$name" -perm -u+x 2>/dev/null || true) | head -1)"
    if [[ -z "$exe" ]]; then
      echo "SKIPPED $tool $name (not built)" | tee -a "$LOG"
      continue
    fi
    rc=0
    (cd "$(dirname "$exe")" && "$SANITIZER" --tool "$tool" --error-exitcode 3 "./$name" --gtest_filter="$filter") \
      >> "$LOG" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]]; then echo "CLEAN   $tool $name $filter" | tee -a "$LOG"
    else echo "FAIL    $tool $name $filter (exit $rc)" | tee -a "$LOG"; status=1; fi
  done
else
  echo "compute-sanitizer not found (or KVT_GPU_SANITIZE=0): no memcheck/racecheck" | tee -a "$LOG"
fi
save "$LOG"

# name | arguments to kvt-bench producing one JSON document on stdout
BENCHES=(
  "kernels|kernels --json --gpu-only"
  "kernels-cpu-host|kernels --json --cpu-only --op kivi_"
  "lowrank|lowrank --json"
  "decode|decode --json --gpu-only"
)
for entry in "${BENCHES[@]}"; do
  name="${entry%%|*}"
  read -r -a args <<< "${entry#*|}"
  out="$RESULTS/$name-$DEVICE-$STAMP.json"
  echo "== kvt-bench ${args[*]} -> $out"
  if ! "$BENCH" "${args[@]}" > "$out"; then
    echo "gpu-check: benchmark $name failed" >&2
    status=1
  fi
  save "$out"
done
exit $status
