#!/usr/bin/env bash
# The device run rehearsed on a machine without a GPU (CTest gpu_run_rehearsal):
# scripts/gpu-run --rehearse must finish within 60 s, report every GPU step as
# "no device", salvage a benchmark file cut in half, fit the synthetic runs
# into a calibration file, and return exactly three files.
#   tests/gpu_run_rehearsal.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$1"
root="$2"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bundle" "$tmp/out"
ln -s "$build/cli/gpucal" "$tmp/bundle/gpucal"  # the rehearsal runs no GPU binary
"$build/tests/gpucal_synthetic_bench" "$tmp/synthetic.json"

fail() { echo "rehearsal: $*" >&2; echo "--- gpu-run.log ---" >&2; cat "$tmp/out/gpu-run.log" >&2 2>/dev/null; exit 1; }
t0=$SECONDS
OUT="$tmp/out" timeout 60 bash "$root/scripts/gpu-run" --rehearse --bundle "$tmp/bundle" \
  --synthetic-bench "$tmp/synthetic.json" --gpu h100-sxm-80gb --budget 60 >/dev/null || fail "gpu-run exited $?"
took=$(( SECONDS - t0 ))
log="$tmp/out/gpu-run.log"

files="$(cd "$tmp/out" && ls | sort | tr '\n' ' ')"
[ "$files" = "bench.json gpu-run.log results.tar.gz " ] || fail "expected exactly bench.json gpu-run.log results.tar.gz, got: $files"
for s in "kernel tests" "engine tests" headline bm_gemm bm_bandwidth bm_paged_attention bm_w4a16 bm_layer_ops; do
  grep -q "gpu-run: $s: no device" "$log" || fail "step '$s' did not report 'no device'"
done
grep -q "bench_synthetic_cut.json: .* cut off mid-write" "$log" || fail "the cut file was not salvaged"
grep -q "fit: ok" "$log" || fail "the fit did not run"
grep -q "summary after" "$log" || fail "no summary"
runs="$(grep -o '"run_name"' "$tmp/out/bench.json" | wc -l)"
whole="$(grep -o '"run_name"' "$tmp/synthetic.json" | wc -l)"
[ "$runs" -gt "$whole" ] && [ "$runs" -lt $(( 2 * whole )) ] || fail "bench.json holds $runs runs; expected between $whole and $(( 2 * whole ))"
packed="$(tar -tzf "$tmp/out/results.tar.gz")"  # listed whole: grep -q would cut tar's pipe
grep -q '^results/h100-sxm-80gb/.*\.json$' <<<"$packed" || fail "no calibration file in results.tar.gz"
grep -q '^raw/bench_synthetic_cut.json$' <<<"$packed" || fail "the raw family files are not packed"
echo "rehearsal: ok in ${took} s ($runs runs merged, calibration fitted, 3 files)"
