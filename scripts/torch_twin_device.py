#!/usr/bin/env python3
"""The PyTorch twin (../shared/peers/xnet_torch.py) timed on a chosen device, for the GPU
half of the throughput comparison (scripts/gpu_check.sh).

The peer script itself only runs on the CPU. This imports its model classes and its L2
term unchanged and times the same steps as its `bench` (forward: softmax of the logits under
`torch.inference_mode`; train: zero_grad, cross-entropy + L2 over every conv kernel,
backward, Adam step), on `--device cuda` with a `torch.cuda.synchronize()` before each
clock read, so that a step's time includes its kernels. Prints one JSON line with the
fields of `cargo run --release --example throughput` (model, mode, batch, size, device,
images_per_s, median_s, params).

    python3 scripts/torch_twin_device.py --model xnet --mode train --batch 8 --size 128 \
        --device cuda [--twin-dir ../shared/peers]
"""
import argparse
import json
import os
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    default_dir = os.environ.get("TWIN_DIR") or next(
        (d for d in (os.path.join(here, "..", "..", "shared", "peers"),
                     os.path.join(here, "..", "shared", "peers"))
         if os.path.isfile(os.path.join(d, "xnet_torch.py"))),
        os.path.join(here, "..", "..", "shared", "peers"))
    ap.add_argument("--twin-dir", default=default_dir,
                    help="folder holding xnet_torch.py and cpuguard.py (env TWIN_DIR)")
    ap.add_argument("--model", choices=["xnet", "unet", "segnet"], default="xnet")
    ap.add_argument("--mode", choices=["forward", "train"], default="forward")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--l2", type=float, default=5e-4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="let cuDNN pick algorithms by timing them (off in PyTorch by default)")
    args = ap.parse_args()

    twin = os.path.join(args.twin_dir, "xnet_torch.py")
    if not os.path.isfile(twin):
        sys.exit(f"the PyTorch twin is not at {twin}; pass --twin-dir or set TWIN_DIR")
    sys.path.insert(0, os.path.abspath(args.twin_dir))
    import torch
    import torch.nn.functional as F
    import xnet_torch

    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("torch sees no CUDA device (torch.cuda.is_available() is False)")
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    torch.manual_seed(0)
    m = xnet_torch.MODELS[args.model]().to(dev)
    x = torch.rand(args.batch, 1, args.size, args.size, device=dev)
    y = torch.randint(0, 3, (args.batch, args.size, args.size), device=dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    times = []
    if args.mode == "forward":
        m.eval()
        with torch.inference_mode():
            for i in range(args.warmup + args.iters):
                sync()
                t0 = time.perf_counter()
                torch.softmax(m(x), dim=1)
                sync()
                if i >= args.warmup:
                    times.append(time.perf_counter() - t0)
    else:
        m.train()
        opt = torch.optim.Adam(m.parameters(), lr=args.lr)
        for i in range(args.warmup + args.iters):
            sync()
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(m(x), y) + xnet_torch.l2_penalty(m, args.l2)
            loss.backward()
            opt.step()
            sync()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({
        "impl": "pytorch-twin", "model": args.model, "mode": args.mode,
        "batch": args.batch, "size": args.size, "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "cudnn_benchmark": args.cudnn_benchmark, "iters": args.iters, "warmup": args.warmup,
        "median_s": med, "min_s": min(times), "max_s": max(times),
        "images_per_s": args.batch / med,
        "params": sum(p.numel() for p in m.parameters() if p.requires_grad),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
