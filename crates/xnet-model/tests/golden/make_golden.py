#!/usr/bin/env python3
"""Golden values for xnet-model's parity tests (tests/parity_*.rs), from PyTorch.

Networks: the PyTorch twin /work/shared/peers/xnet_torch.py (`../shared/peers` from the
repository root) — XNet, SimpleSegNet and the 3-level U-Net — at tiny widths (4/8/16/32),
k = 3, 1 input channel, 3 classes. Batch-norm running statistics and affine parameters are
randomised so that eval mode is not the identity. For each network this writes

  <name>_weights.safetensors  weights under the Rust VarBuilder names (see NAME MAPS below)
  <name>_io.safetensors       input x [2,1,16,16]; eval_out (eval-mode logits);
                              train_out (train-mode logits, batch statistics);
                              after.<var> (running statistics after that train forward)

and for the custom ops (ops_golden.safetensors): bilinear resizes (align_corners=False)
with their input gradients for a fixed upstream gradient, and max-pool-with-indices /
max-unpool with gradients.

Run from anywhere: /work/venv/bin/python crates/xnet-model/tests/golden/make_golden.py
(torch 2.15.0+cu132 on CPU, float32 networks, float64 ops).
"""
import os
import re
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.environ.get("XNET_PEERS", os.path.join(HERE, "../../../../../shared/peers"))
sys.path.insert(0, os.path.abspath(PEERS))
import xnet_torch as xt  # noqa: E402

WIDTHS = (4, 8, 16, 32)


def bn_map(rest):
    """`0.weight` (conv) / `1.running_mean` (bn) inside a ConvBNReLU -> conv.* / bn.*."""
    idx, tail = rest.split(".", 1)
    return {"0": "conv", "1": "bn"}[idx] + "." + tail


def xnet_name(n):
    m = re.fullmatch(r"c(\d+)\.(.*)", n)
    i, rest = int(m.group(1)), m.group(2)
    if i == 15:
        return f"conv15.{rest}"
    return f"conv{i}.{bn_map(rest)}"


SEGNET = {"e1": "enc1.conv1", "e2": "enc2.conv1", "e3": "enc3.conv1", "e4": "center.conv1",
          "d4": "center.conv2", "d3": "dec3.conv1", "d2": "dec2.conv1", "d1": "dec1.conv1"}


def segnet_name(n):
    head, rest = n.split(".", 1)
    if head == "out":
        return f"head.{rest}"
    return f"{SEGNET[head]}.{bn_map(rest)}"


def unet_name(n):
    head, rest = n.split(".", 1)
    if head == "out":
        return f"head.{rest}"
    if head.startswith("u"):
        return f"up{head[1]}.{bn_map(rest)}"
    j, rest = rest.split(".", 1)
    base = {"e": f"enc{head[1:]}", "b": "bottleneck", "d": f"dec{head[1:]}"}[head[0]]
    return f"{base}.conv{int(j) + 1}.{bn_map(rest)}"


NETS = {"xnet": (xt.XNet, xnet_name), "segnet": (xt.SimpleSegNet, segnet_name),
        "unet": (xt.UNet, unet_name)}


def randomise_bn(model, g):
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                c = mod.num_features
                mod.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                mod.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                mod.weight.copy_(torch.rand(c, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(c, generator=g) * 0.2)


def state(model, mapper, buffers_only=False):
    out = {}
    for n, t in model.state_dict().items():
        if n.endswith("num_batches_tracked"):
            continue
        if buffers_only and "running" not in n:
            continue
        out[mapper(n)] = t.detach().clone().contiguous()
    return out


def make_net(name):
    cls, mapper = NETS[name]
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    model = cls(in_ch=1, classes=3, k=3, f=WIDTHS)
    randomise_bn(model, g)
    x = torch.rand(2, 1, 16, 16, generator=g)
    weights = state(model, mapper)
    model.eval()
    with torch.no_grad():
        eval_out = model(x)
    model.train()
    with torch.no_grad():
        train_out = model(x)
    io = {"x": x, "eval_out": eval_out, "train_out": train_out}
    for n, t in state(model, mapper, buffers_only=True).items():
        io["after." + n] = t
    save_file(weights, os.path.join(HERE, f"{name}_weights.safetensors"))
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(HERE, f"{name}_io.safetensors"))
    print(name, sum(t.numel() for t in weights.values()), "weights")


def make_ops():
    g = torch.Generator().manual_seed(2)
    out = {}
    for i, (shape, size) in enumerate([((2, 3, 4, 5), (8, 10)), ((1, 2, 5, 7), (8, 3)),
                                       ((1, 1, 6, 6), (4, 9)), ((1, 1, 1, 3), (2, 7))]):
        x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        gy = torch.randn(*y.shape, generator=g, dtype=torch.float64)
        (gx,) = torch.autograd.grad(y, x, gy)
        out.update({f"bilinear{i}.x": x.detach(), f"bilinear{i}.y": y.detach(),
                    f"bilinear{i}.gy": gy, f"bilinear{i}.gx": gx})
    for i, shape in enumerate([(2, 3, 6, 8), (1, 2, 7, 5)]):
        x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
        v, idx = F.max_pool2d(x, 2, return_indices=True)
        gv = torch.randn(*v.shape, generator=g, dtype=torch.float64)
        (gx,) = torch.autograd.grad(v, x, gv)
        u = F.max_unpool2d(v.detach(), idx, 2, output_size=shape[2:])
        out.update({f"pool{i}.x": x.detach(), f"pool{i}.v": v.detach(),
                    f"pool{i}.idx": idx.to(torch.int64), f"pool{i}.gv": gv, f"pool{i}.gx": gx,
                    f"pool{i}.unpooled": u})
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(HERE, "ops_golden.safetensors"))


if __name__ == "__main__":
    for n in NETS:
        make_net(n)
    make_ops()
