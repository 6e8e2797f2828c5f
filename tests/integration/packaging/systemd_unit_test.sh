#!/bin/sh
# The service files under packaging/: the sample configuration is accepted by kv-tierd and runs
# it (socket mode 0660, kvtierctl reaches it), sysusers/tmpfiles snippets parse and create the
# kvtier group and directories in a scratch root, and `systemd-analyze verify` passes on the unit.
# Exit 77 (skipped) when systemd-analyze is absent, after the checks that do not need it.
# usage: systemd_unit_test.sh BUILD_DIR SOURCE_DIR
set -eu
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
work=$(mktemp -d /tmp/kvt-unit-test.XXXXXX)
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "=== sample configuration"
# allowed_groups names the kvtier group, which sysusers creates on a real install; here root stands in.
sed 's/^allowed_groups: \[kvtier\]/allowed_groups: [root]/' "$src/packaging/config.yaml" > "$work/config.yaml"
"$build/bin/kv-tierd" --config "$work/config.yaml" --print-config
"$build/bin/kv-tierd" --config "$work/config.yaml" --socket "$work/kvt.sock" --data-dir "$work/data" \
    --host-capacity 64MiB --metrics-address off > "$work/daemon.log" 2>&1 &
daemon_pid=$!
i=0
until [ -S "$work/kvt.sock" ]; do
  i=$((i + 1))
  [ $i -lt 500 ] || { echo "kv-tierd did not start with the sample config"; cat "$work/daemon.log"; exit 1; }
  kill -0 "$daemon_pid" 2>/dev/null || { echo "kv-tierd refused the sample config"; cat "$work/daemon.log"; exit 1; }
  sleep 0.02
done
mode=$(stat -c %a "$work/kvt.sock")
[ "$mode" = 660 ] || { echo "socket mode $mode, expected 660"; exit 1; }
"$build/bin/kvtierctl" --socket "$work/kvt.sock" status
kill -TERM "$daemon_pid"
wait "$daemon_pid" || { echo "kv-tierd did not exit cleanly"; cat "$work/daemon.log"; exit 1; }
daemon_pid=""

echo "=== sysusers.d and tmpfiles.d in a scratch root"
mkdir -p "$work/root/etc"
if command -v systemd-sysusers >/dev/null 2>&1; then
  systemd-sysusers --root="$work/root" "$src/packaging/systemd/kv-tierd.sysusers"
  grep -q '^kvtier:' "$work/root/etc/group" || { echo "sysusers did not create the kvtier group"; exit 1; }
  grep -q '^kvtier:.*:/var/lib/kv-tierd:' "$work/root/etc/passwd" || { echo "sysusers did not create the kvtier user"; exit 1; }
  if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create --root="$work/root" "$src/packaging/systemd/kv-tierd.tmpfiles"
    [ "$(stat -c %a "$work/root/run/kv-tierd")" = 750 ] || { echo "tmpfiles: /run/kv-tierd is not 0750"; exit 1; }
    [ -d "$work/root/var/lib/kv-tierd" ] && [ -d "$work/root/etc/kv-tierd" ] || { echo "tmpfiles: directories missing"; exit 1; }
  fi
else
  echo "systemd-sysusers absent: sysusers/tmpfiles not checked"
fi

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "SKIPPED: systemd-analyze not installed; the unit was not verified"
  exit 77
fi
echo "=== systemd-analyze verify"
mkdir -p "$work/units"
sed -e "s|@KVT_DAEMON_PATH@|$build/bin/kv-tierd|" -e "s|@CMAKE_INSTALL_FULL_DOCDIR@|$src/docs|" \
    "$src/packaging/systemd/kv-tierd.service.in" > "$work/units/kv-tierd.service"
if grep -q '@[A-Z_]*@' "$work/units/kv-tierd.service"; then
  echo "unsubstituted variables in the unit:"; grep '@[A-Z_]*@' "$work/units/kv-tierd.service"; exit 1
fi
# verify prints problems on stderr and fails on errors; warnings about the absent system manager
# (a container) are noise, anything about our unit is not.
rc=0
SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$work/units/kv-tierd.service" > "$work/verify.log" 2>&1 || rc=$?
cat "$work/verify.log"
if grep -q "kv-tierd.service" "$work/verify.log"; then
  echo "systemd-analyze verify reported problems in kv-tierd.service"; exit 1
fi
[ $rc -eq 0 ] || { echo "systemd-analyze verify failed ($rc)"; exit 1; }
echo "=== unit verified"
