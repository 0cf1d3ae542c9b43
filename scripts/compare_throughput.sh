#!/usr/bin/env bash
# Runs this project's throughput example and the PyTorch twin alternately, several rounds,
# each in a fresh process with the same thread count, and prints images/s and ratios.
#
#   scripts/compare_throughput.sh [ROUNDS] [CONFIG ...]
#
# CONFIG is model:mode:batch:size:iters, e.g. xnet:forward:1:200:5 (defaults below); deeplab
# and the tiled mode (batch 1) run on our side only, the twin having neither.
# Environment: THREADS (2), PYTHON (/work/venv/bin/python), TWIN (../shared/peers/xnet_torch.py),
# EXTRA (extra flags for our example, e.g. "--no-fold" or "--reference"),
# OURS (a throughput binary to run instead of building the example),
# OUT (JSONL file, default target/compare_throughput.jsonl),
# ISA (unset: each side uses the best the CPU has; "avx2": both sides kept to AVX2 + FMA, as on
# a CPU without AVX-512: ours built with --no-default-features, so `gemm` keeps its AVX2
# kernels, and the twin run with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
shift || true
CONFIGS=("$@")
if [ ${#CONFIGS[@]} -eq 0 ]; then
  CONFIGS=(xnet:forward:1:200:5 xnet:forward:8:128:3 xnet:train:1:200:3 xnet:train:8:128:2
           unet:forward:8:128:3 segnet:forward:8:128:3)
fi
THREADS=${THREADS:-2}
PYTHON=${PYTHON:-/work/venv/bin/python}
TWIN=${TWIN:-../shared/peers/xnet_torch.py}
EXTRA=${EXTRA:-}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$TARGET/compare_throughput.jsonl}
ISA=${ISA:-}
mkdir -p "$(dirname "$OUT")"

BUILD_FLAGS=()
TWIN_ENV=()
case "$ISA" in
  "") ;;
  avx2)
    BUILD_FLAGS=(--no-default-features)
    TWIN_ENV=(ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2)
    ;;
  *) echo "ISA must be unset or avx2, not '$ISA'" >&2; exit 2 ;;
esac
if [ -z "${OURS:-}" ]; then
  cargo build --release "${BUILD_FLAGS[@]}" --example throughput >&2
  OURS="$TARGET/release/examples/throughput"
fi
HAVE_TORCH=1
"$PYTHON" -c "import torch" 2>/dev/null || HAVE_TORCH=0
if [ $HAVE_TORCH = 0 ]; then
  echo "torch is not importable by $PYTHON: only our side runs; compare with ../shared/peers/RESULTS.md" >&2
fi
# The helpers below (a JSON field, a ratio, a median) need any Python 3: without the twin's
# environment (no $PYTHON at all), the system's python3 reads our side's records.
PY=$PYTHON
"$PY" -c "" 2>/dev/null || PY=python3

ours() { # model mode batch size iters warmup
  # EXTRA is split into words on purpose (several flags).
  # shellcheck disable=SC2086
  RAYON_NUM_THREADS=$THREADS "$OURS" --model "$1" --mode "$2" --batch "$3" --size "$4" \
    --iters "$5" --warmup "$6" --threads "$THREADS" $EXTRA
}
twin() {
  env "${TWIN_ENV[@]}" CUDA_VISIBLE_DEVICES='' CPUGUARD_MAX_WAIT=${CPUGUARD_MAX_WAIT:-0} \
    OMP_NUM_THREADS=$THREADS "$PYTHON" "$TWIN" --model "$1" --mode "$2" --batch "$3" --size "$4" --iters "$5" \
    --warmup "$6" --threads "$THREADS" --json --retries 0
}
field() { "$PY" -c "import json,sys; print(json.loads(sys.stdin.readline())['$1'])"; }

echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg) threads=$THREADS extra='$EXTRA' isa='${ISA:-native}'"
printf '%-28s %5s %-6s %12s %12s %8s\n' config round first ours_img/s torch_img/s ratio
declare -A R
for round in $(seq 1 "$ROUNDS"); do
  for c in "${CONFIGS[@]}"; do
    IFS=: read -r model mode batch size iters <<<"$c"
    warm=2; [ "$mode" = train ] && warm=1
    a=""; b=""
    # The twin has no DeepLab and no tiled mode (its argparse refuses them): those configs
    # run on our side alone, with ratio n/a.
    twin_here=$HAVE_TORCH
    case "$model:$mode" in deeplab:* | *:tiled) twin_here=0 ;; esac
    if [ $((round % 2)) = 1 ] || [ $twin_here = 0 ]; then
      a=$(ours "$model" "$mode" "$batch" "$size" "$iters" "$warm"); first=ours
      [ $twin_here = 1 ] && b=$(twin "$model" "$mode" "$batch" "$size" "$iters" "$warm")
    else
      b=$(twin "$model" "$mode" "$batch" "$size" "$iters" "$warm"); first=torch
      a=$(ours "$model" "$mode" "$batch" "$size" "$iters" "$warm")
    fi
    echo "{\"round\": $round, \"isa\": \"${ISA:-native}\", \"config\": \"$c\", \"ours\": $a, \"torch\": ${b:-null}}" >>"$OUT"
    ia=$(field images_per_s <<<"$a")
    if [ -n "$b" ]; then ib=$(field images_per_s <<<"$b"); else ib=nan; fi
    ratio=$("$PY" -c "print(f'{$ia/$ib:.2f}' if '$ib'!='nan' else 'n/a')")
    R["$c"]+="$ratio "
    ibf=$("$PY" -c "print(f'{float(\"$ib\"):.3f}')")
    printf '%-28s %5s %-6s %12.3f %12s %8s\n' "$c" "$round" "$first" "$ia" "$ibf" "$ratio"
  done
done
echo "# ratios (ours / torch) per config over rounds; median:"
for c in "${CONFIGS[@]}"; do
  med=$("$PY" -c "import statistics,sys; v=[float(x) for x in '${R[$c]}'.split() if x!='n/a']; print(f'{statistics.median(v):.2f}' if v else 'n/a')")
  printf '%-28s %s  median %s\n' "$c" "${R[$c]}" "$med"
done
echo "# records appended to $OUT"
