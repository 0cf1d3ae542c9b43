#!/usr/bin/env bash
# The checks of xnet-model's CUDA path, for a machine with an NVIDIA GPU.
#
#   scripts/gpu_check.sh
#
# 1. Shows the GPU (nvidia-smi) and the CUDA compiler the build will use.
# 2. Runs `cargo test -p xnet-model --features cuda --test cuda_ops`: NVRTC compiles every
#    kernel of crates/xnet-model/src/ops/cuda_kernels.cu, and each custom op's CUDA forward
#    and backward are compared with the CPU's (within 1e-5). It builds the crate with the
#    `cuda` feature first if the target dir does not hold that build yet (about 14 minutes on
#    2 cores from scratch: candle's own kernels go through nvcc).
# 3. The GPU throughput: `throughput --device cuda` (built with `--features cuda`) for XNet
#    forward and train at 1×200² and 8×128², U-Net and SegNet forward at 8×128², each next to
#    the PyTorch twin on the same GPU (scripts/torch_twin_device.py, which imports the twin's
#    models from TWIN_DIR, default ../shared/peers), alternately, with the ratio per config.
#
# Environment:
#   CUDA_COMPUTE_CAP  the compute capability candle's kernels are built for (default 80: PTX
#                     for sm_80, which newer GPUs run through the driver's JIT; nvcc 11.8
#                     cannot target 90). Set 90 with an nvcc from CUDA 12 or later.
#   CARGO_TARGET_DIR  as usual (default target/).
#   TEST_THREADS      cargo test threads (default 1: one CUDA context at a time).
#   PYTHON            the Python with PyTorch for the twin (default python3); the twin step
#                     is skipped with a message when it cannot import torch or find the twin.
#   TWIN_DIR          folder of xnet_torch.py and cpuguard.py (default ../shared/peers).
#
# Fails (non-zero) when a test fails; a test that found no GPU prints
# "skipped: no CUDA device" and passes, so read the output, which ends with a count of skips.
set -euo pipefail
cd "$(dirname "$0")/.."

export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80}
TEST_THREADS=${TEST_THREADS:-1}

echo "== GPU"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv || true
else
  echo "nvidia-smi not found: the comparison tests will report 'skipped: no CUDA device'"
fi

echo "== CUDA compiler (needed to build candle's kernels)"
if command -v nvcc >/dev/null 2>&1; then
  nvcc --version | tail -n 2
else
  echo "nvcc not found. On Debian 12: enable the non-free component in"
  echo "/etc/apt/sources.list.d/debian.sources, then apt-get update &&"
  echo "apt-get install -y nvidia-cuda-toolkit (CUDA 11.8); see ../shared/DESIGN.md."
  exit 2
fi

echo "== cuda_ops tests (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP)"
LOG=$(mktemp)
set +e
cargo test -p xnet-model --features cuda --test cuda_ops -- \
  --nocapture --test-threads="$TEST_THREADS" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e
skips=$(grep -c "skipped: no CUDA device" "$LOG" || true)
rm -f "$LOG"
echo "== cuda_ops: exit status $status, $skips test(s) skipped for want of a CUDA device"
if [ "$status" -ne 0 ]; then
  exit "$status"
fi

echo "== GPU throughput (examples/throughput.rs --device cuda, then the PyTorch twin)"
cargo build --release --features cuda --example throughput
TARGET=${CARGO_TARGET_DIR:-target}
PYTHON=${PYTHON:-python3}
TWIN_OK=1
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "$PYTHON cannot import torch: only our side runs"
  TWIN_OK=0
fi
OUT=$(mktemp)
for config in xnet:forward:1:200 xnet:forward:8:128 xnet:train:1:200 xnet:train:8:128 \
              unet:forward:8:128 segnet:forward:8:128; do
  IFS=: read -r model mode batch size <<<"$config"
  ours=$("$TARGET/release/examples/throughput" --model "$model" --mode "$mode" \
    --batch "$batch" --size "$size" --iters 10 --warmup 3 --device cuda | tail -n 1) || ours=""
  echo "$ours"
  twin=""
  if [ $TWIN_OK = 1 ]; then
    twin=$("$PYTHON" scripts/torch_twin_device.py --model "$model" --mode "$mode" \
      --batch "$batch" --size "$size" --iters 10 --warmup 3 --device cuda 2>/dev/null | tail -n 1) \
      || twin=""
    echo "${twin:-twin failed}"
  fi
  printf '%s\t%s\t%s\n' "$config" "$ours" "$twin" >>"$OUT"
done
echo "== ratios (ours / twin images/s on the same GPU)"
python3 - "$OUT" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    config, ours, twin = (line.rstrip("\n").split("\t") + ["", ""])[:3]
    try:
        o = json.loads(ours)["images_per_s"]
    except (ValueError, KeyError):
        print(f"{config:24} ours failed")
        continue
    try:
        t = json.loads(twin)["images_per_s"]
        print(f"{config:24} ours {o:9.2f}  twin {t:9.2f}  ratio {o / t:5.2f}")
    except (ValueError, KeyError):
        print(f"{config:24} ours {o:9.2f}  twin -")
PY
rm -f "$OUT"
