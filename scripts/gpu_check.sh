#!/usr/bin/env bash
# The checks of xnet-model's CUDA path, for a machine with an NVIDIA GPU.
#
#   scripts/gpu_check.sh                      # builds here with cargo and nvcc
#   scripts/gpu_check.sh --bundle gpu-bundle  # runs what scripts/gpu_bundle.sh built elsewhere
#
# 1. Shows the GPU (nvidia-smi) and, when building, the CUDA compiler.
# 2. Runs xnet-model's `cuda_ops` test: NVRTC compiles every kernel of
#    crates/xnet-model/src/ops/cuda_kernels.cu, and each custom op's CUDA forward and
#    backward are compared with the CPU's (within 1e-5), tiny networks within 1e-4. Without
#    --bundle it is `cargo test -p xnet-model --features cuda --test cuda_ops`, which builds
#    the crate with the `cuda` feature first (about 14 minutes on 2 cores from scratch:
#    candle's own kernels go through nvcc).
# 3. End to end: `segment` and `evaluate` on 8 synthetic radiographs, the same binary with
#    --device cpu and --device cuda; the label maps must agree on ≥ 99.9 % of pixels, and
#    both evaluations' scores are printed.
# 4. The GPU throughput: `throughput --device cuda` for XNet forward and train at 1×200² and
#    8×128², U-Net and SegNet forward at 8×128², each next to the PyTorch twin on the same
#    GPU (scripts/torch_twin_device.py, which imports the twin's models from TWIN_DIR),
#    alternately, with the ratio per config; with a bundle that holds `throughput-cudnn`
#    (candle's convolutions through cuDNN), that one too.
#
# With --bundle DIR, no Rust toolchain or nvcc is needed: the binaries in DIR/bin were built
# against CUDA 13.0 and find cuBLAS, cuRAND, NVRTC and cuDNN in the Python packages of
# NVIDIA's libraries (nvidia-cublas, ... as PyTorch installs them), which this script puts
# on LD_LIBRARY_PATH. The twin's files default to DIR/twin.
#
# Environment:
#   CUDA_COMPUTE_CAP  (building only) the compute capability of candle's kernels (default
#                     80: PTX for sm_80, which newer GPUs run through the driver's JIT;
#                     nvcc 11.8 cannot target 90). Set 90 with an nvcc from CUDA 12 or later.
#   CARGO_TARGET_DIR  (building only) as usual (default target/).
#   TEST_THREADS      test threads (default 1: one CUDA context at a time).
#   RUN_TIMEOUT       seconds allowed to each throughput run, ours or the twin's (default
#                     120), so that one hang does not spend a lease.
#   PYTHON            the Python with PyTorch for the twin (default python3); the twin step
#                     is skipped with a message when it cannot import torch or find the twin.
#   TWIN_DIR          folder of xnet_torch.py and cpuguard.py (default DIR/twin with a
#                     bundle, else ../shared/peers).
#   OUT               when set (as on the device tool's machines), a copy of everything
#                     printed goes to $OUT/gpu_check.log.
#
# Exits with the tests' status (non-zero when one fails), after the throughput runs; a test
# that found no GPU prints "skipped: no CUDA device" and passes, so read the output, which
# gives a count of skips.
set -euo pipefail
cd "$(dirname "$0")/.."

BUNDLE=""
if [ "${1:-}" = "--bundle" ]; then
  BUNDLE=${2:?"--bundle needs the folder that scripts/gpu_bundle.sh wrote"}
  # The binaries travel xz-compressed (the device tool carries 64 MiB in all).
  for packed in "$BUNDLE"/bin/*.xz; do
    [ -e "$packed" ] || continue
    python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)' "$packed" "${packed%.xz}"
    chmod +x "${packed%.xz}"
    rm -f "$packed"
  done
  if [ ! -x "$BUNDLE/bin/throughput" ] || [ ! -x "$BUNDLE/bin/cuda_ops" ]; then
    echo "$BUNDLE/bin holds no throughput and cuda_ops: run scripts/gpu_bundle.sh" >&2
    exit 2
  fi
  BUNDLE=$(cd "$BUNDLE" && pwd)
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--bundle DIR]" >&2
  exit 2
fi
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
  exec > >(tee -a "$OUT/gpu_check.log") 2>&1
fi

export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80}
TEST_THREADS=${TEST_THREADS:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
PYTHON=${PYTHON:-python3}
if [ -n "$BUNDLE" ] && [ -d "$BUNDLE/twin" ]; then
  export TWIN_DIR=${TWIN_DIR:-$BUNDLE/twin}
fi

echo "== GPU"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv || true
else
  echo "nvidia-smi not found: the comparison tests will report 'skipped: no CUDA device'"
fi

if [ -n "$BUNDLE" ]; then
  echo "== bundle $BUNDLE"
  cat "$BUNDLE/MANIFEST" 2>/dev/null || true
  # Every lib folder of the `nvidia` Python packages (cu13/lib, cudnn/lib, ...).
  libs=$("$PYTHON" - <<'PY' 2>/dev/null || true
import importlib.util, pathlib
spec = importlib.util.find_spec("nvidia")
dirs = sorted({str(p.parent) for root in (spec.submodule_search_locations if spec else [])
               for p in pathlib.Path(root).glob("**/lib/lib*.so*")})
print(":".join(dirs))
PY
)
  # The driver's libcuda.so.1, where the loader does not already know it.
  if ! grep -q 'libcuda\.so\.1 ' <<<"$(ldconfig -p 2>/dev/null)"; then
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
      [ -e "$d/libcuda.so.1" ] && libs=${libs:+$libs:}$d
    done
  fi
  export LD_LIBRARY_PATH=${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  missing=0
  for b in "$BUNDLE"/bin/*; do
    if ldd "$b" | grep "not found"; then
      echo "$(basename "$b") cannot start: the libraries above are missing"
      missing=1
    fi
  done
  [ $missing = 0 ] || exit 3
else
  echo "== CUDA compiler (needed to build candle's kernels)"
  if command -v nvcc >/dev/null 2>&1; then
    nvcc --version | tail -n 2
  else
    echo "nvcc not found. On Debian 12: enable the non-free component in"
    echo "/etc/apt/sources.list.d/debian.sources, then apt-get update &&"
    echo "apt-get install -y nvidia-cuda-toolkit (CUDA 11.8); see ../shared/DESIGN.md."
    echo "Or build a bundle on another machine with scripts/gpu_bundle.sh and pass --bundle."
    exit 2
  fi
fi

echo "== cuda_ops tests"
LOG=$(mktemp)
set +e
if [ -n "$BUNDLE" ]; then
  "$BUNDLE/bin/cuda_ops" --nocapture --test-threads="$TEST_THREADS" 2>&1 | tee "$LOG"
else
  echo "(CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP)"
  cargo test -p xnet-model --features cuda --test cuda_ops -- \
    --nocapture --test-threads="$TEST_THREADS" 2>&1 | tee "$LOG"
fi
status=${PIPESTATUS[0]}
set -e
skips=$(grep -c "skipped: no CUDA device" "$LOG" || true)
rm -f "$LOG"
echo "== cuda_ops: exit status $status, $skips test(s) skipped for want of a CUDA device"
# Device time is scarce: a failed comparison does not stop the throughput runs below; the
# script still exits with the tests' status at the end.
TEST_STATUS=$status

echo "== end to end: segment and evaluate, --device cpu against --device cuda (same binary)"
if [ -n "$BUNDLE" ]; then
  BIN=$BUNDLE/bin
  CHECK_DATA=$BUNDLE/check-data
else
  cargo build --release --features cuda --example segment --example evaluate --example synth
  BIN=${CARGO_TARGET_DIR:-target}/release/examples
  CHECK_DATA=$(mktemp -d)/check-data
  "$BIN/synth" --out "$CHECK_DATA" --count 8 --size 256 --seed 5 --previews 0 >/dev/null
fi
E2E=$(mktemp -d)
e2e_status=0
for dev in cpu cuda; do
  start=$(date +%s%N)
  if ! timeout "$RUN_TIMEOUT" "$BIN/segment" --device "$dev" "$CHECK_DATA/images" \
    --out "$E2E/seg-$dev" --probs >"$E2E/seg-$dev.txt" 2>&1; then
    echo "segment --device $dev failed:"; tail -n 5 "$E2E/seg-$dev.txt"; e2e_status=1
  fi
  echo "segment --device $dev: $(grep -c ' → ' "$E2E/seg-$dev.txt") images in $((($(date +%s%N) - start) / 1000000)) ms"
  if timeout "$RUN_TIMEOUT" "$BIN/evaluate" --device "$dev" --data "$CHECK_DATA" \
    --out "$E2E/eval-$dev" >"$E2E/eval-$dev.txt" 2>&1; then
    echo "evaluate --device $dev: $(head -n 1 "$E2E/eval-$dev.txt")"
  else
    echo "evaluate --device $dev failed:"; tail -n 5 "$E2E/eval-$dev.txt"; e2e_status=1
  fi
done
# Labels compared pixel by pixel (8-bit grey PNGs, decoded with the standard library only).
python3 - "$E2E/seg-cpu" "$E2E/seg-cuda" <<'PY' || e2e_status=1
import pathlib, struct, sys, zlib

def grey8(path):
    data = pathlib.Path(path).read_bytes()
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour == 0 and interlace == 0, f"{path}: not 8-bit grey"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, rows, prev = zlib.decompress(idat), [], bytearray(width)
    for y in range(height):
        f, line = raw[y * (width + 1)], bytearray(raw[y * (width + 1) + 1:(y + 1) * (width + 1)])
        for x in range(width):
            a = line[x - 1] if x else 0
            b, c = prev[x], (prev[x - 1] if x else 0)
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return b"".join(rows)

cpu, gpu = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
files = sorted(cpu.glob("*.labels.png"))
if not files or len(list(gpu.glob("*.labels.png"))) != len(files):
    print(f"labels: {len(files)} from the CPU, {len(list(gpu.glob('*.labels.png')))} from the GPU")
    sys.exit(1)
total = same = 0
for f in files:
    a, b = grey8(f), grey8(gpu / f.name)
    total += len(a)
    same += sum(x == y for x, y in zip(a, b))
print(f"labels: {same}/{total} pixels equal ({100 * same / total:.3f} %) over {len(files)} images")
sys.exit(0 if same >= 0.999 * total else 1)
PY
echo "== end to end: exit status $e2e_status (labels must agree on at least 99.9 % of pixels)"
[ $e2e_status = 0 ] || TEST_STATUS=1
rm -rf "$E2E"

echo "== GPU throughput (examples/throughput.rs --device cuda, then the PyTorch twin)"
if [ -n "$BUNDLE" ]; then
  OURS=("$BUNDLE/bin/throughput")
  [ -x "$BUNDLE/bin/throughput-cudnn" ] && OURS+=("$BUNDLE/bin/throughput-cudnn")
else
  cargo build --release --features cuda --example throughput
  OURS=("${CARGO_TARGET_DIR:-target}/release/examples/throughput")
fi
TWIN_OK=1
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "$PYTHON cannot import torch: only our side runs"
  TWIN_OK=0
fi
RESULTS=$(mktemp)
for config in xnet:forward:1:200 xnet:forward:8:128 xnet:train:1:200 xnet:train:8:128 \
              unet:forward:8:128 segnet:forward:8:128; do
  IFS=: read -r model mode batch size <<<"$config"
  for bin in "${OURS[@]}"; do
    ours=$(timeout "$RUN_TIMEOUT" "$bin" --model "$model" --mode "$mode" --batch "$batch" \
      --size "$size" --iters 10 --warmup 3 --device cuda --tag "$(basename "$bin")" \
      | tail -n 1) || ours=""
    echo "${ours:-$(basename "$bin") failed}"
    printf '%s\t%s\t%s\n' "$config" "$(basename "$bin")" "$ours" >>"$RESULTS"
  done
  if [ $TWIN_OK = 1 ]; then
    twin=$(timeout "$RUN_TIMEOUT" "$PYTHON" scripts/torch_twin_device.py --model "$model" --mode "$mode" \
      --batch "$batch" --size "$size" --iters 10 --warmup 3 --device cuda | tail -n 1) \
      || twin=""
    echo "${twin:-twin failed}"
    printf '%s\t%s\t%s\n' "$config" "twin" "$twin" >>"$RESULTS"
  fi
done
echo "== ratios (ours / twin images/s on the same GPU)"
python3 - "$RESULTS" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    config, who, js = (line.rstrip("\n").split("\t") + ["", ""])[:3]
    try:
        rows.setdefault(config, {})[who] = json.loads(js)["images_per_s"]
    except (ValueError, KeyError):
        rows.setdefault(config, {})[who] = None
for config, r in rows.items():
    twin = r.get("twin")
    for who, v in r.items():
        if who == "twin":
            continue
        if v is None:
            print(f"{config:22} {who:18} failed")
        elif twin:
            print(f"{config:22} {who:18} {v:9.2f} img/s  twin {twin:9.2f}  ratio {v / twin:5.2f}")
        else:
            print(f"{config:22} {who:18} {v:9.2f} img/s  twin -")
PY
rm -f "$RESULTS"
exit "$TEST_STATUS"
