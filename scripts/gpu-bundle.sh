#!/usr/bin/env bash
# gpu-bundle.sh [BUILD_DIR] [DEST] — packs what `gpu-check.sh --bundle DEST` needs on a GPU machine
# that has the CUDA driver but none of this project's -dev packages and no network.
#
# DEST (default gpu-bundle/, ignored by git) receives:
#   bin/kvt-bench           stripped, the CUDA runtime already linked in statically
#   bin/kv-tierd            stripped: the daemon the GPU-tier test starts (gpu-check.sh sets
#                           KVT_BIN_DIR=DEST/bin, where tests/support/daemon_process looks for it)
#   tests/<name>            every ctest test labelled `gpu`, stripped
#   tests.list              "<name>" per line, in ctest order
#   lib/                    libkvtier.so.<major> (stripped) and the shared libraries `ldd` shows
#                           all of them need, except the C library itself
#   python/                 the kvtier package and the Python GPU test (tests/test_sequence_device.py),
#                           which gpu-check.sh runs against lib/libkvtier when the machine's python3
#                           has numpy and pytest
# and DEST.tar.gz, the same tree compressed (about a third of it): carry that one to a device call
# (its 64 MiB limit) and `gpu-check.sh --bundle DEST.tar.gz` unpacks it. Build with CUDA first
# (`make build` here; nvcc targets sm_90 without a device).
set -euo pipefail

BUILD="${1:-build}"
DEST="${2:-gpu-bundle}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

cmake --build "$BUILD" -j "$(nproc)"

rm -rf "$DEST"
mkdir -p "$DEST/bin" "$DEST/tests" "$DEST/lib"

# name <TAB> executable, for every test labelled gpu.
mapfile -t GPU_TESTS < <(ctest --test-dir "$BUILD" -L gpu --show-only=json-v1 | python3 -c '
import json, sys
for t in json.load(sys.stdin)["tests"]:
    print(t["name"] + "\t" + t["command"][0])')
if [[ ${#GPU_TESTS[@]} -eq 0 ]]; then
  echo "gpu-bundle: no test labelled gpu in $BUILD: is it a CUDA build? (nvcc in /usr/local/cuda, -DKVT_ENABLE_CUDA=ON)" >&2
  exit 1
fi

binaries=("$BUILD/bin/kvt-bench" "$BUILD/bin/kv-tierd")
: > "$DEST/tests.list"
for entry in "${GPU_TESTS[@]}"; do
  name="${entry%%$'\t'*}"
  exe="${entry#*$'\t'}"
  strip -o "$DEST/tests/$name" "$exe"
  echo "$name" >> "$DEST/tests.list"
  binaries+=("$exe")
done
strip -o "$DEST/bin/kvt-bench" "$BUILD/bin/kvt-bench"
strip -o "$DEST/bin/kv-tierd" "$BUILD/bin/kv-tierd"
# The C ABI for the Python test, under its SONAME (what kvtier loads).
libkvtier="$(readlink -f "$BUILD/lib/libkvtier.so")"
soname="$(objdump -p "$libkvtier" | awk '$1 == "SONAME" {print $2}')"
strip -o "$DEST/lib/$soname" "$libkvtier"
binaries+=("$libkvtier")
mkdir -p "$DEST/python/tests"
cp -r python/kvtier "$DEST/python/"
find "$DEST/python" -name __pycache__ -prune -exec rm -rf {} +
cp python/tests/test_sequence_device.py "$DEST/python/tests/"

# Shared libraries, minus the C library and the dynamic loader (those must match the machine's).
for exe in "${binaries[@]}"; do
  ldd "$exe" | awk '$3 ~ /^\// {print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*) ;;
    *) cp -L "$lib" "$DEST/lib/" ;;
  esac
done

tar -C "$(dirname "$DEST")" -czf "$DEST.tar.gz" "$(basename "$DEST")"
echo "gpu-bundle: $DEST ($(du -sh "$DEST" | cut -f1)), $DEST.tar.gz ($(du -sh "$DEST.tar.gz" | cut -f1)):" \
     "${#GPU_TESTS[@]} GPU tests, kvt-bench, kv-tierd, libkvtier + the Python GPU test, $(ls "$DEST/lib" | wc -l) libraries"
