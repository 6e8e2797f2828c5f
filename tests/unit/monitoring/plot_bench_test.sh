#!/bin/sh
# scripts/plot-bench.sh on a fixed kvt-bench JSON document: every chart is a real PNG; bad input
# is refused with status 1. Exit 77 (skipped) without jq or gnuplot.
set -eu
script=$1
fixture=$2
for tool in jq gnuplot; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool not installed: skipped"; exit 77; }
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$script" -o "$out" "$fixture"
for png in block-B_s block-ops_s block-ratio block-lines; do
  head -c 8 "$out/$png.png" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a" || { echo "$png.png is not a PNG"; exit 1; }
done
if echo '{"results": []}' | "$script" -o "$out" - 2>/dev/null; then echo "empty results accepted"; exit 1; fi
if echo '{"results": [{"name": "x"}]}' | "$script" -o "$out" - 2>/dev/null; then echo "missing value accepted"; exit 1; fi
echo "plot-bench: 4 charts, bad input refused"
