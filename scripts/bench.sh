#!/usr/bin/env bash
# make bench: every CPU benchmark, each printing one JSON document, saved under
# bench/results/<bench>-cpu-<host>.json (the machine is named inside each document).
# Benchmarks report ratios against the physical limit measured in the same run; they are never
# run by the test suite. Set KVT_BENCH_QUICK=1 for short runs.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
bin="$build/bin/kvt-bench"
quick=()
[ "${KVT_BENCH_QUICK:-0}" = 1 ] && quick=(--quick)
host=$(hostname -s 2>/dev/null || echo host)
mkdir -p bench/results
status=0
run() {
  local name=$1
  shift
  local out="bench/results/$name-cpu-$host.json"
  echo "== kvt-bench $name $* -> $out"
  if "$bin" "$name" --json "$@" > "$out.tmp"; then
    mv "$out.tmp" "$out"
    cat "$out"
  else
    echo "kvt-bench $name failed (see above)" >&2
    rm -f "$out.tmp"
    status=1
  fi
}
run block "${quick[@]}"
run kernels --cpu-only "${quick[@]}"
run lowrank "${quick[@]}"
exit $status
