#!/usr/bin/env bash
# make fuzz: every fuzz target (tests/fuzz/) under libFuzzer, coverage-guided, with ASan + UBSan.
#   FUZZ_SECONDS=60  how long each target runs (default 60)
#   FUZZ_TARGETS="plan protocol"  which targets (default: all)
# Builds build-fuzz with clang; each target's corpus starts from its seeds (written by its replay
# driver) and grows in build-fuzz/corpus/<name>; a crash leaves its input in
# build-fuzz/artifacts/<name>/ and fails the run. Reproduce one with
#   build-fuzz/tests/<name>_fuzz build-fuzz/artifacts/<name>/crash-...
# (or with the libFuzzer binary build-fuzz/fuzz/<name>_libfuzzer and the same file).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
targets=(${FUZZ_TARGETS:-plan sequence_image protocol handshake config redis_reply nvme_recovery lorc_factors
                     model_file})
jobs=$(nproc)

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKVT_ENABLE_CUDA=OFF -DKVT_BUILD_BENCHMARKS=OFF -DKVT_BUILD_FUZZERS=ON \
  -DKVT_SANITIZE="fuzzer-no-link;address;undefined" > /dev/null
build_targets=()
for t in "${targets[@]}"; do build_targets+=("${t}_fuzz" "${t}_libfuzzer"); done
cmake --build build-fuzz -j "$jobs" --target "${build_targets[@]}"

export KVT_SHARED_DATA=${KVT_SHARED_DATA:-$PWD/../shared/data}
failed=()
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t seeds=build-fuzz/seeds/$t artifacts=build-fuzz/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  build-fuzz/tests/${t}_fuzz --write-seeds "$seeds" > /dev/null
  # Inputs as long as the longest seed (a model file is ~1 MB), at least libFuzzer's 4 KiB.
  max_len=$(find "$seeds" -type f -printf '%s\n' | sort -n | tail -n 1)
  max_len=$(( max_len > 4096 ? max_len : 4096 ))
  echo "=== fuzz $t for ${seconds}s"
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       build-fuzz/fuzz/${t}_libfuzzer "$corpus" "$seeds" -max_total_time="$seconds" \
       -max_len="$max_len" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 \
       -artifact_prefix="$artifacts/" 2> "build-fuzz/$t.log"; then
    failed+=("$t")
    tail -n 40 "build-fuzz/$t.log"
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|Done [0-9]+ runs" "build-fuzz/$t.log" || true
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${failed[*]} failed; inputs in build-fuzz/artifacts/" >&2
  exit 1
fi
echo "=== fuzz: no failure in ${targets[*]}"
