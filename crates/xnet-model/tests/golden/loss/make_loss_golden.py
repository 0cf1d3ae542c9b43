"""Golden values for crates/xnet-model/tests/loss_golden.rs.

Run from this directory:  /work/venv/bin/python make_loss_golden.py
Writes loss_golden.json. Cross-entropy uses PyTorch's F.cross_entropy; focal and Dice are
written out in PyTorch from their definitions (documented in src/loss.rs); gradients come
from PyTorch autograd; the boundary weight map uses scipy.ndimage (label, distance_transform_edt).
"""
import json

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

torch.manual_seed(0)
N, C, H, W = 2, 3, 4, 5
logits = (torch.randn(N, C, H, W, dtype=torch.float64) * 2.0)
labels = torch.randint(0, C, (N, H, W))
labels[0, 0, :3] = 255
labels[1, 2, 1] = 255
labels[1, 3, 4] = 255
cw = torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64)
pw = torch.rand(N, H, W, dtype=torch.float64) * 2.0
valid = labels != 255
safe = torch.where(valid, labels, torch.zeros_like(labels))


def grad_of(fn):
    x = logits.clone().requires_grad_(True)
    loss = fn(x)
    loss.backward()
    return loss.item(), x.grad.flatten().tolist()


def ce_plain(x):
    return F.cross_entropy(x, labels, ignore_index=255)


def ce_weighted(x):
    return F.cross_entropy(x, labels, weight=cw, ignore_index=255)


def ce_pixel_weighted(x):
    per = F.cross_entropy(x, labels, weight=cw, ignore_index=255, reduction="none")
    return (per * pw).sum() / (cw[safe] * valid).sum()


def focal(x, gamma, alpha):
    logp = F.log_softmax(x, dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    a = alpha[safe] * valid
    fl = -((1 - logp.exp()) ** gamma) * logp
    return (a * fl).sum() / a.sum()


def dice(x, smooth, alpha):
    p = F.softmax(x, dim=1) * valid.unsqueeze(1)
    g = F.one_hot(safe, C).permute(0, 3, 1, 2).double() * valid.unsqueeze(1)
    inter = (p * g).sum(dim=(0, 2, 3))
    den = p.sum(dim=(0, 2, 3)) + g.sum(dim=(0, 2, 3))
    d = (2 * inter + smooth) / (den + smooth)
    if alpha is None:
        return 1 - d.mean()
    return 1 - (alpha * d).sum() / alpha.sum()


ones = torch.ones(C, dtype=torch.float64)
cases = {}
for name, fn in [
    ("ce", ce_plain),
    ("ce_weighted", ce_weighted),
    ("ce_pixel_weighted", ce_pixel_weighted),
    ("focal_g2", lambda x: focal(x, 2.0, ones)),
    ("focal_g2_weighted", lambda x: focal(x, 2.0, cw)),
    ("focal_g0", lambda x: focal(x, 0.0, ones)),
    ("dice", lambda x: dice(x, 1.0, None)),
    ("dice_weighted", lambda x: dice(x, 1.0, cw)),
]:
    value, grad = grad_of(fn)
    cases[name] = {"value": value, "grad": grad}

# Boundary weight map (U-Net eq. 2, w_c = 1, weight on background pixels only).
bl = np.zeros((20, 24), dtype=np.uint8)
bl[2:8, 2:10] = 1      # object A (tissue)
bl[4:6, 4:8] = 2       # bone inside A (same object)
bl[10:18, 3:9] = 1     # object B, 2 px below A
bl[3:16, 12:15] = 1    # object C, to the right
bl[0, 20:24] = 255     # ignored pixels
bl[19, 0] = 255


def boundary(labels, w0=10.0, sigma=5.0, balance=False):
    valid_px = labels != 255
    obj = (labels != 0) & valid_px
    comp, k = ndi.label(obj)  # 4-connectivity
    d = np.stack([ndi.distance_transform_edt(comp != i) for i in range(1, k + 1)], axis=-1)
    d.sort(axis=-1)
    d1, d2 = d[..., 0], d[..., 1]
    wc = np.ones(labels.shape)
    if balance:
        vals, counts = np.unique(labels[valid_px], return_counts=True)
        total = counts.sum()
        for v, c in zip(vals, counts):
            wc[labels == v] = total / (len(vals) * c)
    w = wc + w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2)) * (labels == 0)
    w[~valid_px] = 0.0
    return w


out = {
    "shape": [N, C, H, W],
    "logits": logits.flatten().tolist(),
    "labels": labels.flatten().tolist(),
    "class_weights": cw.tolist(),
    "pixel_weights": pw.flatten().tolist(),
    "cases": cases,
    "boundary": {
        "height": 20,
        "width": 24,
        "labels": bl.flatten().tolist(),
        "weights": boundary(bl).flatten().tolist(),
        "weights_balanced_w0_5_sigma_3": boundary(bl, 5.0, 3.0, True).flatten().tolist(),
    },
}
with open("loss_golden.json", "w") as f:
    json.dump(out, f)
print({k: v["value"] for k, v in cases.items()})
