#!/usr/bin/env bash
# scripts/plot on each kind of JSON gpucal writes: an estimate, a simulation,
# a plan (both modes) and a calibration fitted from the synthetic benchmark
# file; each must give a PNG. Bad input: exit 2, one line, no PNG left.
# Skips (exit 77) only when no python3 with matplotlib is installed.
set -euo pipefail
build="$1"
src="$2"
gpucal="$build/cli/gpucal"
plot="$src/scripts/plot"
if ! { /usr/bin/python3 -c 'import matplotlib' || python3 -c 'import matplotlib'; } >/dev/null 2>&1; then
  echo "skipped: no python3 with matplotlib (scripts/setup installs python3-matplotlib)"
  exit 77
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "plot_test: $*" >&2; exit 1; }

"$gpucal" estimate --model llama-3.1-70b --gpu h200 --tp 2 --json >"$tmp/estimate.json"
"$gpucal" simulate --model llama-3.1-8b --gpu h100 --qps 8 --prompt-len lognormal:1000:0.5 --output-len uniform:50:200 \
  --requests 500 --json >"$tmp/simulate.json"
"$gpucal" plan --model llama-3.1-70b --qps 5 --prompt-len 2000 --output-len 300 --ttft-p99 2 --tpot-p99 0.05 \
  --gpus h100,h200 --mode both --top 20 --json >"$tmp/plan.json"
"$build/tests/gpucal_synthetic_bench" "$tmp/bench.json"
mkdir "$tmp/results"
"$gpucal" fit --bench "$tmp/bench.json" --gpu h100-sxm --out "$tmp/results" >/dev/null
cal="$(find "$tmp/results" -name '*.json' | head -n 1)"
[ -n "$cal" ] || fail "gpucal fit wrote no calibration"
cp "$cal" "$tmp/calibration.json"

for kind in estimate simulate plan calibration; do
  out="$("$plot" "$tmp/$kind.json" -o "$tmp/$kind.png")"
  [ "$out" = "$tmp/$kind.png" ] || fail "$kind: printed '$out'"
  head -c 8 "$tmp/$kind.png" | od -An -c | grep -q 'P   N   G' || fail "$kind: not a PNG"
  [ "$(stat -c %s "$tmp/$kind.png")" -gt 10000 ] || fail "$kind: a PNG under 10 kB"
done

# Bad input.
printf 'not json' >"$tmp/bad.json"
printf '{"schema": "gpucal.other/1"}' >"$tmp/other.json"
printf '{"schema": "gpucal.plan/1", "plans": []}' >"$tmp/empty.json"
for bad in bad other empty missing; do
  set +e
  "$plot" "$tmp/$bad.json" -o "$tmp/$bad.png" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "$bad: exit $rc, not 2"
  [ ! -s "$tmp/out" ] || fail "$bad: printed on stdout"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "$bad: $(cat "$tmp/err")"
  grep -q "$bad.json" "$tmp/err" || fail "$bad: the error does not name the file: $(cat "$tmp/err")"
  [ ! -e "$tmp/$bad.png" ] || fail "$bad: left a PNG"
  ! ls -a "$tmp" | grep -q '^\.plot-' || fail "$bad: left a temporary file"
done
echo "plot_test: 4 pictures, 4 bad inputs refused"
