#!/usr/bin/env bash
# make demo: start kv-tierd with its embedded defaults, run the demo workload through libkvtier,
# show the operator's view, stop the daemon cleanly.
set -euo pipefail
build=${1:-build}
bin="$build/bin"
log=$(mktemp /tmp/kv-tierd-demo.XXXXXX.log)

"$bin/kv-tierd" --print-config | sed 's/^/  /' | sed '1i kv-tierd embedded defaults:'
"$bin/kv-tierd" > "$log" 2>&1 &
daemon=$!
stop() {
  if kill -0 "$daemon" 2>/dev/null; then
    kill -TERM "$daemon"
    wait "$daemon" && echo "kv-tierd stopped cleanly" || echo "kv-tierd exited with status $?"
  fi
}
trap stop EXIT

# Wait for the socket (the daemon locks and prefaults its host arena first).
for _ in $(seq 1 300); do
  "$bin/kvtierctl" status >/dev/null 2>&1 && break
  kill -0 "$daemon" 2>/dev/null || { echo "kv-tierd failed to start:"; cat "$log"; exit 1; }
  sleep 0.1
done
"$bin/kvtierctl" status

"$bin/kvt-demo" --engines 4 --requests 60
"$bin/kvtierctl" ls
echo "daemon log: $log"
