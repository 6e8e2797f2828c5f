#!/usr/bin/env bash
# Installs the Debian packages kv-tierd needs, only those missing. Idempotent; safe to run every time.
# Usage: scripts/install-deps.sh            (build + test dependencies)
#        scripts/install-deps.sh fuzz       (also clang and libFuzzer, for `make fuzz`)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libboost-dev libtbb-dev libhwloc-dev liburing-dev prometheus-cpp-dev
  libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev libxxhash-dev libhiredis-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  pybind11-dev python3-dev python3-numpy python3-pytest python3-pip
  prometheus redis-server redis-tools gnuplot-nox jq curl
)
if [ "${1:-}" = fuzz ]; then
  packages+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The prometheus and redis packages start system services on install; the tests start their own on
# loopback with their own ports, so the system ones are not needed (and must not hold test ports).
for svc in prometheus redis-server; do
  "${sudo_cmd[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
done
