#!/bin/sh
# make install into a temporary prefix, then use it as an outsider would:
#   1. the installed files are where the package says (daemon, tools, libraries, headers,
#      CMake package, pkg-config file, units)
#   2. libkvtier.a is one archive holding every kvt_* function, the sequence plane's included (no
#      kvt symbol it uses is left undefined, no two members share a name)
#   3. an out-of-tree CMake project finds kvtier (find_package) and links kvtier::kvtier and
#      kvtier::kvtier_static; plain cc links through pkg-config, shared and --static
#   4. each consumer runs a sequence in process on the CPU (no daemon, no GPU), then against the
#      installed kv-tierd (a real store/lookup/retrieve)
#   5. the Python package installs offline with pip (--no-index --no-build-isolation), bundling
#      the installed libkvtier, and talks to the same daemon
# usage: install_test.sh BUILD_DIR SOURCE_DIR
set -eu
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
work=$(mktemp -d /tmp/kvt-install-test.XXXXXX)
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
prefix=$work/prefix
step() { echo "=== $*"; }

step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" > "$work/install.log" || { cat "$work/install.log"; exit 1; }
libdir=$(cd "$prefix" && ls -d lib lib/*-linux-gnu 2>/dev/null | while read -r d; do
           [ -e "$prefix/$d/libkvtier.so" ] && echo "$d"; done | head -n1)
[ -n "$libdir" ] || { echo "libkvtier.so not installed"; cat "$work/install.log"; exit 1; }
for f in bin/kv-tierd bin/kvtierctl "$libdir/libkvtier.so" "$libdir/libkvtier.a" include/kvt/kvt.h \
         include/kvt/kvt.hpp "$libdir/cmake/kvtier/kvtierConfig.cmake" \
         "$libdir/cmake/kvtier/kvtierConfigVersion.cmake" "$libdir/pkgconfig/kvtier.pc" \
         lib/systemd/system/kv-tierd.service lib/sysusers.d/kv-tierd.conf lib/tmpfiles.d/kv-tierd.conf \
         share/kv-tierd/config.yaml.example; do
  [ -e "$prefix/$f" ] || { echo "missing after install: $f"; exit 1; }
done
soname=$(objdump -p "$prefix/$libdir/libkvtier.so" | awk '/SONAME/ {print $2}')
[ "$soname" = "libkvtier.so.1" ] || { echo "SONAME is '$soname', expected libkvtier.so.1 (C ABI major)"; exit 1; }
exported=$(nm -D --defined-only "$prefix/$libdir/libkvtier.so" | awk '$2 != "A" {print $3}' | grep -v '^kvt_' || true)
[ -z "$exported" ] || { echo "libkvtier.so exports non-kvt_ symbols:"; echo "$exported" | head; exit 1; }
ls "$prefix/include" | grep -qv '^kvt$' && { echo "headers besides include/kvt/ were installed"; exit 1; }
grep -q "ExecStart=$prefix/bin/kv-tierd " "$prefix/lib/systemd/system/kv-tierd.service" ||
  { echo "the unit's ExecStart does not point at the installed daemon"; grep ExecStart "$prefix/lib/systemd/system/kv-tierd.service"; exit 1; }

step "libkvtier.a carries the sequence plane"
archive=$prefix/$libdir/libkvtier.a
nm --defined-only -g "$archive" 2>/dev/null | awk 'NF == 3 {print $3}' | sort -u > "$work/defined"
for sym in kvt_client_open kvt_sequence_open kvt_sequence_append kvt_sequence_attend kvt_sequence_close \
           kvt_sequence_open_on_device; do
  grep -qx "$sym" "$work/defined" || { echo "libkvtier.a does not define $sym"; exit 1; }
done
# Every kvt function or kvt:: symbol its objects use is defined in it (what is left is the C++
# runtime, oneTBB, xxHash, the CUDA runtime: the link interface).
nm --undefined-only "$archive" 2>/dev/null | awk '$1 == "U" || $1 == "w" {print $2}' | sort -u > "$work/undefined"
missing=$(comm -23 "$work/undefined" "$work/defined" | grep -E '^(kvt_|_ZNK?3kvt)' || true)
[ -z "$missing" ] || { echo "libkvtier.a uses kvt symbols it does not define:"; echo "$missing" | head; exit 1; }
# Members are named by basename: two of one name are extracted (ar x) or replaced (ar r) as one.
dups=$(ar t "$archive" | sort | uniq -d)
[ -z "$dups" ] || { echo "libkvtier.a has two members of one name:"; echo "$dups"; exit 1; }
echo "libkvtier.a: $(ar t "$archive" | wc -l) objects, $(wc -l < "$work/defined") global symbols"

step "find_package(kvtier) consumer"
cmake -S "$src/tests/integration/packaging/consumer" -B "$work/consumer" -G Ninja \
      -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release > "$work/consumer.log" 2>&1 ||
  { cat "$work/consumer.log"; exit 1; }
cmake --build "$work/consumer" >> "$work/consumer.log" 2>&1 || { cat "$work/consumer.log"; exit 1; }
if ldd "$work/consumer/consumer_static" | grep -q libkvtier; then
  echo "consumer_static links libkvtier.so: kvtier::kvtier_static is not the static archive"; exit 1
fi
ldd "$work/consumer/consumer_shared" | grep -q "libkvtier.so.1 => $prefix" ||
  { echo "consumer_shared does not use the installed libkvtier.so.1"; ldd "$work/consumer/consumer_shared"; exit 1; }

step "find_package(kvtier) without the static archive's libraries"
# A consumer of the shared library needs none of them; one that asks for the static component is
# told which is missing (oneTBB hidden from find_package here).
mkdir -p "$work/shared_only"
cat > "$work/shared_only/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(kvtier_shared_only C)
find_package(kvtier 0.1 REQUIRED \${KVT_COMPONENTS})
add_executable(consumer_shared "$src/tests/integration/packaging/consumer/consumer.c")
target_link_libraries(consumer_shared PRIVATE kvtier::kvtier)
CMAKE
cmake -S "$work/shared_only" -B "$work/shared_only/build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_DISABLE_FIND_PACKAGE_TBB=ON > "$work/shared_only.log" 2>&1 ||
  { echo "find_package(kvtier) needs TBB for the shared library"; cat "$work/shared_only.log"; exit 1; }
if cmake -S "$work/shared_only" -B "$work/shared_only/build-static" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_DISABLE_FIND_PACKAGE_TBB=ON "-DKVT_COMPONENTS=COMPONENTS;static" > "$work/static_missing.log" 2>&1; then
  echo "find_package(kvtier COMPONENTS static) succeeded without TBB"; exit 1
fi
grep -q "kvtier::kvtier_static needs TBB" "$work/static_missing.log" ||
  { echo "the missing-TBB message does not name TBB:"; cat "$work/static_missing.log"; exit 1; }

step "pkg-config consumer (plain cc)"
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
pkg-config --exists --print-errors kvtier
echo "kvtier.pc: version $(pkg-config --modversion kvtier), ABI $(pkg-config --variable=abi_version kvtier)"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror -o "$work/consumer_pc" "$src/tests/integration/packaging/consumer/consumer.c" \
   $(pkg-config --cflags --libs kvtier) -Wl,-rpath,"$(pkg-config --variable=libdir kvtier)"
# Static: Libs.private names what libkvtier.a's objects need; -l:libkvtier.a picks the archive
# over the libkvtier.so beside it.
static_libs=""
for f in $(pkg-config --static --libs kvtier); do
  [ "$f" = "-lkvtier" ] && f="-l:libkvtier.a"
  static_libs="$static_libs $f"
done
echo "pkg-config --static: $static_libs"
# shellcheck disable=SC2086
cc -std=c11 -Wall -Werror -o "$work/consumer_pc_static" "$src/tests/integration/packaging/consumer/consumer.c" \
   $(pkg-config --cflags kvtier) $static_libs
if ldd "$work/consumer_pc_static" | grep -q libkvtier; then
  echo "consumer_pc_static links libkvtier.so"; exit 1
fi

step "consumers against the installed kv-tierd"
socket=$work/kvt.sock
"$prefix/bin/kv-tierd" --socket "$socket" --data-dir "$work/data" --host-capacity 64MiB \
    --metrics-address off > "$work/daemon.log" 2>&1 &
daemon_pid=$!
i=0
until [ -S "$socket" ]; do
  i=$((i + 1))
  [ $i -lt 500 ] || { echo "kv-tierd did not start"; cat "$work/daemon.log"; exit 1; }
  kill -0 "$daemon_pid" 2>/dev/null || { echo "kv-tierd exited"; cat "$work/daemon.log"; exit 1; }
  sleep 0.02
done
sleep 0.1
for c in "$work/consumer/consumer_shared" "$work/consumer/consumer_static" "$work/consumer/consumer_c_static" \
         "$work/consumer_pc" "$work/consumer_pc_static"; do
  echo "--- $(basename "$c")"
  "$c"                    # version and an in-process sequence
  "$c" "$socket"          # the same, then through the daemon
done
"$prefix/bin/kvtierctl" --socket "$socket" status

step "pip install ./python offline (bundling the installed libkvtier)"
py=""
for candidate in ${KVT_PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import setuptools, wheel, numpy' 2>/dev/null &&
     "$candidate" -m pip --version >/dev/null 2>&1; then py=$candidate; break; fi
done
if [ -z "$py" ]; then
  echo "SKIPPED this step: no python3 with pip, setuptools, wheel and numpy"
else
  # pip builds in place; copy the package so the source tree stays clean.
  cp -r "$src/python" "$work/pysrc"
  KVTIER_BUNDLE_LIBRARY="$prefix/$libdir/libkvtier.so.1" PIP_NO_INDEX=1 \
    "$py" -m pip install --quiet --no-index --no-build-isolation --no-deps --target "$work/site" "$work/pysrc"
  [ -e "$work/site/kvtier/__init__.pyi" ] || { echo "typed stubs not installed"; exit 1; }
  (cd "$work" && env -u KVT_LIBRARY PYTHONPATH="$work/site" "$py" - "$socket" "$work/site" <<'PY'
import sys, numpy as np, kvtier
assert kvtier.library_path().startswith(sys.argv[2]), kvtier.library_path()
with kvtier.connect(socket=sys.argv[1]) as c:
    ns = c.namespace(model_id="pip", num_layers=1, num_kv_heads=1, head_dim=64, tokens_per_chunk=16)
    kv = ns.empty(1)
    kv[...] = np.arange(kv.size, dtype=np.float16).reshape(kv.shape)
    assert ns.store(np.arange(16), kv) == 1 and ns.lookup(np.arange(16)) == 16
    print("python (pip-installed):", kvtier.__version__, "ABI", kvtier.version(), "->", kvtier.library_path())
PY
  )
fi

kill -TERM "$daemon_pid"
wait "$daemon_pid" || { echo "kv-tierd did not exit cleanly"; cat "$work/daemon.log"; exit 1; }
daemon_pid=""
echo "=== install test passed"
