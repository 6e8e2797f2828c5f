#!/bin/sh
# plot-bench.sh — PNG charts from `kvt-bench <subcommand> --json` output, for the README.
#
#   kvt-bench block --json > block.json
#   scripts/plot-bench.sh [-o OUTDIR] [-t TITLE] block.json [more.json ...]   ('-' reads stdin)
#
# Input (one JSON document per file; kvt-bench's --json format):
#   { "bench": "block",                          subcommand (names the charts)
#     "results": [                               or the document itself is this array
#       { "name": "retrieve 64 KiB",             one bar / point
#         "value": 3.1e9, "unit": "B/s",         the measured figure
#         "limit": 9.8e9,                        optional: physical limit measured in the same run
#         "limit_name": "memcpy",                optional: what the limit is
#         "series": "retrieve", "x": 65536,      optional: line charts, value against x per series
#         "x_label": "request bytes" }           optional: the x axis title (first result with x)
#     ] }
# Output, in OUTDIR (default .):
#   <bench>-<unit>.png   bars of value (and limit, when given) per name, one chart per unit
#   <bench>-ratio.png    value / limit in percent per name (results with a limit)
#   <bench>-lines.png    value against x, one line per series (results with x), log x axis
# Needs jq and gnuplot (Debian: jq, gnuplot-nox). Exit status: 0, 1 on bad input, 2 on bad usage.
set -eu

usage() {
  sed -n '2,25s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

out=.
title=""
while getopts "o:t:h" opt; do
  case $opt in
    o) out=$OPTARG ;;
    t) title=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
for tool in jq gnuplot; do
  command -v "$tool" >/dev/null 2>&1 || { echo "plot-bench: $tool not found (apt install jq gnuplot-nox)" >&2; exit 1; }
done
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# Quotes a string for a gnuplot double-quoted literal.
gq() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }

plot_file() {
  src=$1
  if [ "$src" = - ]; then src=$tmp/stdin.json; cat >"$src"; fi
  if ! jq -e '(if type == "array" then . else .results end) | type == "array" and length > 0' "$src" >/dev/null 2>&1; then
    echo "plot-bench: $1: not kvt-bench JSON (want {\"results\": [...]} with at least one result)" >&2
    return 1
  fi
  if ! jq -e '(if type == "array" then . else .results end) | all(has("name") and (.value | type == "number"))' \
      "$src" >/dev/null; then
    echo "plot-bench: $1: every result needs a \"name\" and a numeric \"value\"" >&2
    return 1
  fi
  bench=$(jq -r 'if type == "object" and has("bench") then .bench else "bench" end' "$src" | tr -c 'A-Za-z0-9_.\n-' '_')
  heading=${title:-kvt-bench $bench}
  R='(if type == "array" then . else .results end)'

  # One bar chart per unit: value, and the physical limit next to it when there is one.
  jq -r "$R | map(.unit // \"\") | unique | .[]" "$src" >"$tmp/units"
  while IFS= read -r unit; do
    jq -r --arg u "$unit" "$R | map(select((.unit // \"\") == \$u))[] |
        [.name, .value, (.limit // \"NaN\"), (.limit_name // \"limit\")] | @tsv" "$src" >"$tmp/bars.tsv"
    slug=$(printf '%s' "${unit:-value}" | tr -c 'A-Za-z0-9' '_')
    limit_name=$(awk -F'\t' '$3 != "NaN" { print $4; exit }' "$tmp/bars.tsv")
    n=$(wc -l <"$tmp/bars.tsv")
    width=$((400 + 90 * n)); [ $width -gt 1600 ] && width=1600
    if [ -n "$limit_name" ]; then
      plot="'$tmp/bars.tsv' using 2:xtic(1) title 'measured' lc rgb '#1f77b4', '' using 3 title \"$(gq "$limit_name") (limit)\" lc rgb '#bbbbbb'"
    else
      plot="'$tmp/bars.tsv' using 2:xtic(1) notitle lc rgb '#1f77b4'"
    fi
    gnuplot <<EOF
set terminal pngcairo size $width,480 font "sans,10"
set output "$(gq "$out/$bench-$slug.png")"
set datafile separator "\t"
set datafile missing "NaN"
set title "$(gq "$heading")"
set ylabel "$(gq "${unit:-value}")"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:*]
set format y "%.1s%c"
set grid ytics
set xtics rotate by -30 noenhanced
set key outside top center horizontal noenhanced
plot $plot
EOF
    echo "$out/$bench-$slug.png"
  done <"$tmp/units"

  # Share of the physical limit reached.
  jq -r "$R | map(select(.limit != null and .limit > 0))[] | [.name, (100 * .value / .limit)] | @tsv" \
      "$src" >"$tmp/ratio.tsv"
  if [ -s "$tmp/ratio.tsv" ]; then
    n=$(wc -l <"$tmp/ratio.tsv")
    width=$((400 + 70 * n)); [ $width -gt 1600 ] && width=1600
    gnuplot <<EOF
set terminal pngcairo size $width,420 font "sans,10"
set output "$(gq "$out/$bench-ratio.png")"
set datafile separator "\t"
set title "$(gq "$heading"): share of the physical limit"
set ylabel "% of limit"
set style data histograms
set style fill solid 0.85 border -1
set boxwidth 0.7
set yrange [0:110]
set grid ytics
set xtics rotate by -30 noenhanced
plot "$tmp/ratio.tsv" using 2:xtic(1) notitle lc rgb '#2ca02c', \
     '' using 0:(\$2 + 4):(sprintf("%.0f%%", \$2)) with labels notitle
EOF
    echo "$out/$bench-ratio.png"
  fi

  # Lines: value against x, one line per series.
  if jq -e "$R | any(has(\"x\"))" "$src" >/dev/null; then
    jq -r "$R | map(select(has(\"x\"))) | group_by(.series // .name) | .[] |
        (\"\\\"\" + (.[0].series // .[0].name) + \"\\\"\"), (sort_by(.x)[] | [.x, .value] | @tsv), \"\", \"\"" \
        "$src" >"$tmp/lines.dat"
    nseries=$(jq -r "$R | map(select(has(\"x\"))) | group_by(.series // .name) | length" "$src")
    unit=$(jq -r "$R | map(select(has(\"x\")))[0].unit // \"value\"" "$src")
    xlabel=$(jq -r "$R | map(select(has(\"x\")))[0].x_label // \"x\"" "$src")
    gnuplot <<EOF
set terminal pngcairo size 800,480 font "sans,10"
set output "$(gq "$out/$bench-lines.png")"
set title "$(gq "$heading")"
set ylabel "$(gq "$unit")"
set xlabel "$(gq "$xlabel")"
set logscale x 2
set format x "%.0b%B"
set offsets graph 0.03, graph 0.03, 0, 0
set format y "%.1s%c"
set grid
set key top left noenhanced
plot for [i=0:$((nseries - 1))] "$tmp/lines.dat" index i using 1:2 with linespoints pt 7 title columnheader(1)
EOF
    echo "$out/$bench-lines.png"
  fi
}

status=0
for f in "$@"; do
  plot_file "$f" || status=1
done
exit $status
