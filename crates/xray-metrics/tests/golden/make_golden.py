#!/usr/bin/env python3
"""Golden values for xray-metrics, computed with scikit-learn, torchmetrics and scipy.

Run:  /work/venv/bin/python crates/xray-metrics/tests/golden/make_golden.py
Writes golden.json beside this file (inputs and expected outputs; the Rust tests read it).
Probabilities are stored class-major (C planes of pixels), float32 values written exactly.
"""
import json
import os
import sys

import numpy as np
import scipy
import sklearn
import torch
import torchmetrics
from scipy import ndimage, optimize
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize
from torchmetrics.functional.classification import multiclass_calibration_error

IGNORE = 255


def f32list(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def softmax32(z):
    z = z.astype(np.float32)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def torch_ce(probs, labels, c, n_bins, norm):
    return float(multiclass_calibration_error(
        torch.from_numpy(np.ascontiguousarray(probs)), torch.from_numpy(labels.astype(np.int64)),
        num_classes=c, n_bins=n_bins, norm=norm, ignore_index=IGNORE))


def bins_right(x, n_bins):
    b = torch.linspace(0, 1, n_bins + 1, dtype=torch.float32).numpy()
    return np.searchsorted(b, x, side="right") - 1, b


def classwise_ece(probs, y, c, n_bins):
    out = []
    for k in range(c):
        p = probs[:, k]
        idx, _ = bins_right(p, n_bins)
        hit = (y == k).astype(np.float64)
        e = 0.0
        for b in range(n_bins + 1):
            m = idx == b
            if m.any():
                e += abs(hit[m].mean() - p[m].astype(np.float64).mean()) * m.sum() / len(p)
        out.append(e)
    return out


def equal_mass_ece(conf, correct, n_bins):
    order = np.lexsort((correct, conf))
    parts = np.array_split(order, n_bins)
    e, mx = 0.0, 0.0
    for part in parts:
        if len(part) == 0:
            continue
        g = abs(correct[part].mean() - conf[part].astype(np.float64).mean())
        e += g * len(part) / len(conf)
        mx = max(mx, g)
    return e, mx


def classification_case(name, y_full, probs, c, pred=None):
    """probs: (N, C) float32 rows summing to 1 (pixel-major here, stored class-major)."""
    keep = y_full != IGNORE
    y = y_full[keep]
    p = probs[keep]
    if pred is None:
        pred_full = probs.argmax(axis=1).astype(np.uint8)
    else:
        pred_full = pred
    yp = pred_full[keep]
    labels = list(range(c))
    out = {"name": name, "num_classes": c, "labels": [int(v) for v in y_full],
           "probs_class_major": f32list(probs.T), "pred": [int(v) for v in pred_full]}
    e = {}
    e["confusion"] = skm.confusion_matrix(y, yp, labels=labels).tolist()
    e["accuracy"] = skm.accuracy_score(y, yp)
    e["balanced_accuracy"] = skm.balanced_accuracy_score(y, yp)
    for zd in (0, 1):
        for avg in ("micro", "macro", "weighted", None):
            key = f"{avg or 'none'}_zd{zd}"
            kw = dict(average=avg, zero_division=zd)
            conv = (lambda v: v.tolist()) if avg is None else float
            e[f"precision_{key}"] = conv(skm.precision_score(y, yp, **kw))
            e[f"recall_{key}"] = conv(skm.recall_score(y, yp, **kw))
            e[f"f1_{key}"] = conv(skm.f1_score(y, yp, **kw))
            e[f"f2_{key}"] = conv(skm.fbeta_score(y, yp, beta=2.0, **kw))
            e[f"jaccard_{key}"] = conv(skm.jaccard_score(y, yp, **kw))
    mcm = skm.multilabel_confusion_matrix(y, yp, labels=labels)
    tn, fp = mcm[:, 0, 0], mcm[:, 0, 1]
    e["specificity_per_class"] = (tn / (tn + fp)).tolist()
    present = [k for k in range(c) if (y == k).any()]
    if len(present) == c and probs is not None:
        e["auc_macro"] = skm.roc_auc_score(y, p, multi_class="ovr", average="macro")
        e["auc_weighted"] = skm.roc_auc_score(y, p, multi_class="ovr", average="weighted")
        e["auc_micro"] = skm.roc_auc_score(label_binarize(y, classes=labels), p, average="micro")
        e["auc_per_class"] = [skm.roc_auc_score(y == k, p[:, k]) for k in labels]
        for nb in (10, 15):
            for norm in ("l1", "l2", "max"):
                e[f"ce_{norm}_{nb}"] = torch_ce(probs, y_full, c, nb, norm)
            e[f"classwise_ece_{nb}"] = classwise_ece(p, y, c, nb)
            conf = p.max(axis=1)
            correct = (p.argmax(axis=1) == y).astype(np.float64)
            e[f"equal_mass_ece_{nb}"], e[f"equal_mass_mce_{nb}"] = equal_mass_ece(conf, correct, nb)
        e["confidence"] = float(p.max(axis=1).astype(np.float64).mean())
        e["torch_argmax_matches_numpy"] = bool(
            (torch.from_numpy(p).max(dim=1).indices.numpy() == p.argmax(axis=1)).all())
    out["expected"] = e
    return out


def temperature_case(rng):
    n, c = 2000, 3
    y = rng.integers(0, c, n)
    z = rng.standard_normal((n, c)).astype(np.float32)
    z[np.arange(n), y] += 1.2
    z = (z * 2.5).astype(np.float32)  # over-confident logits

    def nll(t):
        s = z.astype(np.float64) / t
        s = s - s.max(axis=1, keepdims=True)
        lse = np.log(np.exp(s).sum(axis=1))
        return float(np.mean(lse - s[np.arange(n), y]))

    r = optimize.minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded",
                                 options={"xatol": 1e-10})
    t = float(r.x)
    p1 = softmax32(z)
    pt = softmax32(z.astype(np.float64) / t)
    y8 = y.astype(np.uint8)
    return {"name": "temperature", "num_classes": c, "labels": [int(v) for v in y],
            "logits_class_major": f32list(z.T),
            "expected": {"temperature": t, "nll_before": nll(1.0), "nll_after": nll(t),
                         "ece_before_15": torch_ce(p1, y8, c, 15, "l1"),
                         "ece_after_15": torch_ce(pt, y8, c, 15, "l1")}}


def surface(mask):
    cross = ndimage.generate_binary_structure(2, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=cross, border_value=0)


def boundary_case():
    h, w = 40, 48
    yy, xx = np.mgrid[0:h, 0:w]
    truth = np.zeros((h, w), np.uint8)
    truth[8:30, 6:26] = 1
    truth[(yy - 20) ** 2 + (xx - 34) ** 2 < 81] = 2
    pred = np.zeros((h, w), np.uint8)
    pred[10:31, 7:28] = 1
    pred[(yy - 21) ** 2 + (xx - 33) ** 2 < 100] = 2
    pred[2:4, 40:44] = 1  # a spurious blob far away
    exp = []
    for k in range(3):
        a, b = truth == k, pred == k
        if not a.any() or not b.any():
            exp.append(None)
            continue
        sa, sb = surface(a), surface(b)
        dab = ndimage.distance_transform_edt(~sb)[sa]
        dba = ndimage.distance_transform_edt(~sa)[sb]
        exp.append({"hd95": float(max(np.percentile(dab, 95), np.percentile(dba, 95))),
                    "assd": float(np.concatenate([dab, dba]).mean()),
                    "hausdorff": float(max(dab.max(), dba.max()))})
    return {"name": "boundary", "width": w, "height": h, "num_classes": 3,
            "truth": truth.ravel().tolist(), "pred": pred.ravel().tolist(), "expected": exp}


def main():
    rng = np.random.default_rng(20261128)
    cases = []
    # 1. random 3-class probabilities with 5 % ignored pixels
    n, c = 1500, 3
    y = rng.integers(0, c, n)
    z = rng.standard_normal((n, c)).astype(np.float32)
    z[np.arange(n), y] += 1.5
    probs = softmax32(z)
    y = y.astype(np.uint8)
    y[rng.random(n) < 0.05] = IGNORE
    cases.append(classification_case("random3", y, probs, c))
    # 2. 4 classes, probabilities on a 1/16 grid: many tied scores
    n, c = 1200, 4
    y = rng.integers(0, c, n).astype(np.uint8)
    d = rng.dirichlet(np.ones(c), n)
    d[np.arange(n), y] += 0.3
    d /= d.sum(axis=1, keepdims=True)
    q = np.floor(d[:, :3] * 16) / 16
    probs = np.concatenate([q, 1 - q.sum(axis=1, keepdims=True)], axis=1).astype(np.float32)
    cases.append(classification_case("ties4", y, probs, c))
    # 3. zero division: class 3 never true, class 2 never predicted (labels only)
    y = rng.integers(0, 3, 500).astype(np.uint8)
    pred = rng.integers(0, 4, 500).astype(np.uint8)
    pred[pred == 2] = 0
    cases.append(classification_case("zero_division", y, np.full((500, 4), 0.25, np.float32), 4,
                                     pred=pred))
    out = {"generator": "make_golden.py",
           "versions": {"numpy": np.__version__, "scikit-learn": sklearn.__version__,
                        "scipy": scipy.__version__, "torch": torch.__version__,
                        "torchmetrics": torchmetrics.__version__},
           "boundaries": {str(nb): f32list(torch.linspace(0, 1, nb + 1, dtype=torch.float32))
                          for nb in (5, 7, 10, 13, 15, 20, 100)},
           "classification": cases,
           "temperature": temperature_case(rng),
           "boundary": boundary_case()}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
