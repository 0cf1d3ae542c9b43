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
# 3. The GPU throughput run: examples/throughput.rs has no device option yet (it always runs
#    on the CPU), so this step only says so; see docs/performance.md.
#
# Environment:
#   CUDA_COMPUTE_CAP  the compute capability candle's kernels are built for (default 80: PTX
#                     for sm_80, which newer GPUs run through the driver's JIT; nvcc 11.8
#                     cannot target 90). Set 90 with an nvcc from CUDA 12 or later.
#   CARGO_TARGET_DIR  as usual (default target/).
#   TEST_THREADS      cargo test threads (default 1: one CUDA context at a time).
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

echo "== GPU throughput (examples/throughput.rs --device cuda)"
cargo build --release --features cuda --example throughput
TARGET=${CARGO_TARGET_DIR:-target}
for mode in forward train; do
  for shape in "1 200" "8 128"; do
    set -- $shape
    "$TARGET/release/examples/throughput" --model xnet --mode "$mode" --batch "$1" --size "$2" \
      --iters 10 --warmup 3 --device cuda
  done
done
for model in unet segnet; do
  "$TARGET/release/examples/throughput" --model "$model" --mode forward --batch 8 --size 128 \
    --iters 10 --warmup 3 --device cuda
done
