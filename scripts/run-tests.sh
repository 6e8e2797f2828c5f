#!/usr/bin/env bash
# make test: the whole suite.
#   1. the normal build (CUDA compiled when nvcc is present; GPU tests skip without a device)
#   2. the core, the kernels' and sequence plane's unit tests and the fuzz replays again under
#      AddressSanitizer + UndefinedBehaviorSanitizer (build-asan)
#   3. the concurrency-heavy core tests under ThreadSanitizer (build-tsan, tests labelled `tsan`)
# The sanitizer builds carry line tables only (KVT_DEBUG_INFO=lines): reports keep file:line.
# Exits non-zero on the first failing stage. KVT_SKIP_SANITIZERS=1 runs stage 1 only.
set -euo pipefail
build=${1:-build}
jobs=$(nproc)
cd "$(dirname "$0")/.."

echo "=== [1/3] tests: $build"
ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 600

if [ "${KVT_SKIP_SANITIZERS:-0}" = 1 ]; then
  echo "sanitizer stages skipped (KVT_SKIP_SANITIZERS=1)"
  exit 0
fi

# The daemon, the client library and their tests: the code that runs in a long-lived service and
# touches shared memory.
core_targets=(kv-tierd kvtierctl status_test extent_allocator_test spsc_ring_test chunk_key_test
              block_store_test config_test block_plane_test bad_input_test nvme_io_queue_test
              nvme_tier_test transfer_scheduler_test nvme_integration_test sequence_scheduler_test
              sequence_metrics_test gpu_tier_test gpu_tier_absent_test
              gpu_tier_simulated_test sequence_suspend_file_test sequence_write_back_test
              sequence_client_killed_test sequence_in_client_test sequence_host_tier_memory_test)

# The numerical core and the sequence plane's unit tests (SIMD kernels, packed layouts, the policies'
# caches, sequence plans and suspend images, the C ABI) run under ASan + UBSan too. The reference
# engine's are left to stage 1 (the engine's build and its tests at -O0 would add minutes; run by
# hand on 2026-11-24 they passed: llama_model_test 32 s, sequence_engine_test 21 s).
kernel_targets=(kernels_quant_test kernels_selection_test policies_test lowrank_kernels_test
                lowrank_policies_test sequence_core_test sequence_device_test sequence_method_layers_test
                sequence_kvcompose_global_test sequence_mirror_plan_test sequence_abi_test
                remote_value_test redis_connection_test)

# The fuzz targets' replay drivers (tests/fuzz: seeds + deterministic mutations of client-supplied
# plans, suspend images, raw protocol entries and handshakes, configuration files and Redis
# replies, NVMe segment files, LoRC factor files) run under ASan + UBSan too.
asan_targets=("${core_targets[@]}" "${kernel_targets[@]}" plan_fuzz sequence_image_fuzz protocol_fuzz handshake_fuzz config_fuzz
              redis_reply_fuzz nvme_recovery_fuzz lorc_factors_fuzz)

echo "=== [2/3] ASan + UBSan: build-asan"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKVT_DEBUG_INFO=lines -DKVT_SANITIZE="address;undefined" \
      -DKVT_ENABLE_CUDA=OFF -DKVT_BUILD_EXAMPLES=OFF -DKVT_BUILD_BENCHMARKS=OFF > /dev/null
cmake --build build-asan -j "$jobs" --target "${asan_targets[@]}"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" --timeout 600 \
        -R "^($(IFS='|'; echo "${asan_targets[*]:2}"))\$"

# Of the core tests, the ones labelled `tsan` (the thread-heavy ones), and only those are built:
# the list comes from the labels, so labelling a test is all it takes to add it here.
echo "=== [3/3] TSan: build-tsan"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVT_SANITIZE=thread \
      -DKVT_ENABLE_CUDA=OFF -DKVT_BUILD_EXAMPLES=OFF -DKVT_BUILD_BENCHMARKS=OFF > /dev/null
core_tests="^($(IFS='|'; echo "${core_targets[*]:2}"))\$"
mapfile -t tsan_targets < <(ctest --test-dir build-tsan -N -L tsan -R "$core_tests" | sed -n 's/^ *Test *#[0-9]*: //p')
if [ "${#tsan_targets[@]}" -eq 0 ]; then
  echo "no core test is labelled tsan" >&2
  exit 1
fi
cmake --build build-tsan -j "$jobs" --target "${tsan_targets[@]}"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  ctest --test-dir build-tsan --output-on-failure -j "$jobs" --timeout 600 \
        -R "^($(IFS='|'; echo "${tsan_targets[*]}"))\$"
echo "=== all test stages passed"
