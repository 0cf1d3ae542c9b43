"""Golden values for crates/xnet-model/tests/optim_golden.rs.

Run from this directory:  /work/venv/bin/python make_optim_golden.py
Writes optim_golden.json: parameters after each of several steps of torch.optim optimisers
fed a fixed sequence of gradients, and the learning rates of torch's ReduceLROnPlateau /
StepLR / CosineAnnealingLR for a fixed sequence of validation losses.
"""
import json
import math

import torch

torch.manual_seed(1)
p0 = torch.randn(6, dtype=torch.float64)
grads = [torch.randn(6, dtype=torch.float64) for _ in range(5)]
grads[3][2] = 0.0  # a zero gradient component

configs = {
    "adam": (torch.optim.Adam, dict(lr=0.01)),
    "adam_wd": (torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    "adamw": (torch.optim.AdamW, dict(lr=0.01, weight_decay=0.05)),
    "rmsprop_keras": (torch.optim.RMSprop, dict(lr=1e-3, alpha=0.9, eps=1e-7)),
    "rmsprop_centered_momentum": (
        torch.optim.RMSprop,
        dict(lr=1e-3, alpha=0.95, eps=1e-6, momentum=0.9, centered=True),
    ),
    "sgd": (torch.optim.SGD, dict(lr=0.1)),
    "sgd_momentum": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
}
runs = {}
for name, (cls, kw) in configs.items():
    p = p0.clone().requires_grad_(True)
    opt = cls([p], **kw)
    traj = []
    for g in grads:
        opt.zero_grad()
        p.grad = g.clone()
        opt.step()
        traj.append(p.detach().clone().tolist())
    runs[name] = {"kwargs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()},
                  "params": traj}

# Schedules, stepped once per epoch.
metrics = [1.0, 0.9, 0.9, 0.95, 0.91, 0.9, 0.89999, 0.95, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]


def lrs_of(make, metric=False):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make(opt)
    out = []
    for m in metrics:
        opt.step()
        sched.step(m) if metric else sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


schedules = {
    "plateau": lrs_of(lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(
        o, factor=0.5, patience=2, threshold=1e-4, cooldown=1, min_lr=0.02), metric=True),
    "step": lrs_of(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    "cosine": lrs_of(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.01)),
}

out = {"p0": p0.tolist(), "grads": [g.tolist() for g in grads], "runs": runs,
       "metrics": metrics, "schedules": schedules}
with open("optim_golden.json", "w") as f:
    json.dump(out, f, indent=1)
print(schedules)
