#!/usr/bin/env bash
# gpu-check.sh [BUILD_DIR] — every GPU test and GPU benchmark on this machine's CUDA device.
#   1. configures (if needed) and builds the build dir with CUDA,
#   2. runs `ctest -L gpu` (tests compare each CUDA kernel with its CPU twin),
#   3. runs the GPU benchmarks, writing JSON to bench/results/<bench>-<device>-<date>.json.
# Exits non-zero if there is no device, a test fails or a benchmark fails.
# Other areas append their GPU benchmarks to the BENCHES list below.
set -euo pipefail

BUILD="${1:-build}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no CUDA device visible (nvidia-smi -L failed)" >&2
  exit 1
fi
DEVICE="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr -c 'A-Za-z0-9\n' '-' | sed 's/-\+/-/g; s/-$//')"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$ROOT/bench/results"
mkdir -p "$RESULTS"

if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" -DKVT_ENABLE_CUDA=ON
fi
cmake --build "$BUILD" -j "$(nproc)"

echo "== ctest -L gpu ($DEVICE)"
status=0
ctest --test-dir "$BUILD" -L gpu --output-on-failure | tee "$RESULTS/gpu-tests-$DEVICE-$STAMP.log" || status=1
if grep -q "Not Run\|Skipped" "$RESULTS/gpu-tests-$DEVICE-$STAMP.log"; then
  echo "gpu-check: some GPU tests were skipped on a machine with a device" >&2
  status=1
fi

# name | command producing one JSON document on stdout
BENCHES=(
  "kernels|$BUILD/bin/kvt-bench kernels --json --gpu-only"
  "decode|$BUILD/bin/kvt-bench decode --json --gpu-only"
)
for entry in "${BENCHES[@]}"; do
  name="${entry%%|*}"
  cmd="${entry#*|}"
  out="$RESULTS/$name-$DEVICE-$STAMP.json"
  echo "== $name -> $out"
  if ! $cmd > "$out"; then
    echo "gpu-check: benchmark $name failed" >&2
    status=1
  fi
done
exit $status
