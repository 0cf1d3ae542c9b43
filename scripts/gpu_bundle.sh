#!/usr/bin/env bash
# Builds, on a machine without a GPU, everything scripts/gpu_check.sh needs on a GPU machine
# that has no Rust toolchain: the CUDA build of `throughput` (with and without cuDNN) and of
# xnet-model's `cuda_ops` test, against CUDA 13.0, stripped, with the PyTorch twin's files.
#
#   scripts/gpu_bundle.sh            # writes gpu-bundle/ (git-ignored)
#   scripts/gpu_check.sh --bundle gpu-bundle    # then, on the GPU machine
#
# Why CUDA 13.0: the accelerator machines lent to this project run driver 580 (CUDA 13.0)
# with CUDA 13 libraries (cuBLAS, cuRAND, NVRTC, cuDNN 9) from PyTorch's pip packages.
# A build against Debian's CUDA 11.8 wants libcublas.so.11 & co., which are not there; and
# candle's kernels are loaded as PTX, which a driver only takes up to its own PTX version,
# so the compiler must not be newer than 13.0 either.
#
# The toolkit: $CUDA_HOME if it holds a CUDA 13.0 nvcc, otherwise NVIDIA's pip wheels of
# CUDA 13.0 (nvcc, crt, nvvm, runtime, cccl, cuBLAS, cuRAND, NVRTC; about 700 MB
# downloaded, 1.2 GB unpacked) fetched with pip into $CUDA13_DIR (default
# ~/.cache/xray-seg/cuda13). The build itself takes about 25 minutes on 2 cores
# from scratch (candle's CUDA kernels go through nvcc).
#
# Environment:
#   CUDA_COMPUTE_CAP  compute capability of candle's PTX (default 90: Hopper, the H200).
#   CARGO_TARGET_DIR  as usual (default target/).
#   TWIN_DIR          folder of xnet_torch.py and cpuguard.py (default ../shared/peers).
#   PIP               pip to fetch the wheels with (default: python3 -m pip).
#   CUDNN_HOME        a cuDNN 9 for CUDA 13 (include/cudnn.h, lib/libcudnn.so.9), e.g. the
#                     nvidia/cudnn folder of a PyTorch install; default: the wheel
#                     nvidia-cudnn-cu13, fetched into $CUDA13_DIR.
#   NO_CUDNN=1        skip the cuDNN build of throughput.
set -euo pipefail
cd "$(dirname "$0")/.."

BUNDLE=gpu-bundle
CUDA13_DIR=${CUDA13_DIR:-$HOME/.cache/xray-seg/cuda13}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
TWIN_DIR=${TWIN_DIR:-../shared/peers}
PIP=${PIP:-python3 -m pip}
TARGET=${CARGO_TARGET_DIR:-target}

# fetch_wheels GROUP SPEC...: downloads the wheels (pip requirement specifiers) into
# $CUDA13_DIR/wheels/GROUP and unpacks each into $CUDA13_DIR (a wheel is a zip whose
# nvidia/ tree is the library).
fetch_wheels() {
  local dir=$CUDA13_DIR/wheels/$1
  shift
  mkdir -p "$dir"
  $PIP download --no-deps --dest "$dir" "$@"
  for w in "$dir"/*.whl; do
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
      "$w" "$CUDA13_DIR"
  done
}

nvcc_version() { "$1/bin/nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\),.*/\1/p'; }

if [ -n "${CUDA_HOME:-}" ] && [ "$(nvcc_version "$CUDA_HOME")" = "13.0" ]; then
  TOOLKIT=$CUDA_HOME
else
  TOOLKIT=$CUDA13_DIR/nvidia/cu13
  if [ "$(nvcc_version "$TOOLKIT")" != "13.0" ]; then
    echo "== fetching the CUDA 13.0 wheels into $CUDA13_DIR"
    fetch_wheels toolkit "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-nvvm==13.0.*" \
      "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*" "nvidia-cublas==13.0.*" \
      "nvidia-cuda-nvrtc==13.0.*" "nvidia-curand==10.4.0.*"
    chmod +x "$TOOLKIT"/bin/* "$TOOLKIT"/nvvm/bin/* 2>/dev/null || true
  fi
fi
CUDNN_HOME=${CUDNN_HOME:-$CUDA13_DIR/nvidia/cudnn}
if [ "${NO_CUDNN:-0}" != 1 ] && [ ! -e "$CUDNN_HOME/include/cudnn.h" ]; then
  echo "== fetching cuDNN 9 for CUDA 13 (about 700 MB) into $CUDA13_DIR"
  fetch_wheels cudnn "nvidia-cudnn-cu13==9.*"
fi
echo "== toolkit $TOOLKIT: nvcc $(nvcc_version "$TOOLKIT"), CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP"

# The linker wants unversioned names, and the wheels ship only the sonames. In the
# toolkit's own lib folder, which the build scripts put first on the link path: through
# LIBRARY_PATH, a system CUDA's libcudart.so (Debian's 11.8, say) would win.
for lib in "$TOOLKIT"/lib/lib*.so.*; do
  base=$(basename "$lib")
  [ -e "$TOOLKIT/lib/${base%%.so.*}.so" ] || ln -s "$base" "$TOOLKIT/lib/${base%%.so.*}.so"
done
LINK_DIR=$TARGET/cudnn-link
mkdir -p "$LINK_DIR"
for lib in "$CUDNN_HOME"/lib/libcudnn.so.*; do
  [ -e "$lib" ] || continue
  ln -sf "$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")" "$LINK_DIR/libcudnn.so"
done
# The driver's libcuda.so is linked from the system (the GPU machine's driver provides the
# real one at run time): Debian's libcuda1 (non-free) or any NVIDIA driver package.
if ! grep -q 'libcuda\.so ' <<<"$(ldconfig -p 2>/dev/null)"; then
  echo "no libcuda.so to link against: install the NVIDIA driver's library (Debian: enable" >&2
  echo "non-free, apt-get install libcuda1)" >&2
  exit 2
fi

export CUDA_HOME=$TOOLKIT CUDA_PATH=$TOOLKIT NVCC=$TOOLKIT/bin/nvcc
export PATH=$TOOLKIT/bin:$PATH
export CUDARC_CUDA_VERSION=13000
LINK_DIR=$(cd "$LINK_DIR" && pwd)
export LIBRARY_PATH=$LINK_DIR${LIBRARY_PATH:+:$LIBRARY_PATH}
export CPATH=$CUDNN_HOME/include${CPATH:+:$CPATH}

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/bin" "$BUNDLE/twin"

echo "== cargo build --release --features cuda --example throughput"
cargo build --release --features cuda --example throughput
cp "$TARGET/release/examples/throughput" "$BUNDLE/bin/throughput"

echo "== cargo build --release --features cuda --example segment --example evaluate --example synth"
cargo build --release --features cuda --example segment --example evaluate --example synth
cp "$TARGET/release/examples/segment" "$TARGET/release/examples/evaluate" "$BUNDLE/bin/"
# A small labelled set for the end-to-end check (segment and evaluate, CPU against GPU).
# (The CUDA build links the toolkit's runtime even where no GPU is used.)
LD_LIBRARY_PATH=$TOOLKIT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
  "$TARGET/release/examples/synth" --out "$BUNDLE/check-data" --count 8 --size 256 --seed 5 \
  --previews 0 >/dev/null

echo "== cargo test --release -p xnet-model --features cuda --test cuda_ops --no-run"
test_bin=$(cargo test --release -p xnet-model --features cuda --test cuda_ops --no-run \
  --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cuda_ops":
        print(m["executable"])')
cp "$test_bin" "$BUNDLE/bin/cuda_ops"

if [ "${NO_CUDNN:-0}" != 1 ]; then
  echo "== cargo build --release --features cudnn --example throughput"
  cargo build --release --features cudnn --example throughput
  cp "$TARGET/release/examples/throughput" "$BUNDLE/bin/throughput-cudnn"
fi

strip "$BUNDLE"/bin/*
if [ -f "$TWIN_DIR/xnet_torch.py" ]; then
  cp "$TWIN_DIR/xnet_torch.py" "$TWIN_DIR/cpuguard.py" "$BUNDLE/twin/"
else
  echo "no PyTorch twin at $TWIN_DIR: the bundle will time our side only"
fi
{
  echo "commit $(git rev-parse HEAD)$(git diff --quiet HEAD || echo ' (with uncommitted changes)')"
  echo "built $(date -u +%FT%TZ) on $(uname -m), nvcc $(nvcc_version "$TOOLKIT"), CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP"
  for b in "$BUNDLE"/bin/*; do
    glibc=$(objdump -T "$b" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
    echo "$(basename "$b"): $(stat -c %s "$b") bytes, needs $glibc and $(ldd "$b" 2>/dev/null | awk '/=>/ {print $1}' | grep -E 'cu|nvrtc' | tr '\n' ' ')"
  done
} >"$BUNDLE/MANIFEST"
cat "$BUNDLE/MANIFEST"
# Mostly candle's PTX, text that xz shrinks about eightfold; gpu_check.sh unpacks them.
xz -T0 -6 -f "$BUNDLE"/bin/*
echo "== $(du -sh "$BUNDLE" | cut -f1) in $BUNDLE (the device tool carries at most 64 MiB in all)"
echo "On the GPU machine: bash scripts/gpu_check.sh --bundle $BUNDLE   (carry: [\"$BUNDLE\"])"
