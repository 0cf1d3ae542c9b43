"""Golden values for tests/normalize_resize.rs (PyTorch + NumPy).

Run: /work/venv/bin/python crates/xray-data/tests/golden/normalize_resize.py
and paste the printed constants into the test. Input formula is mirrored in the test.
"""
import numpy as np
import torch
import torch.nn.functional as F


def img(w, h):
    return np.array([[((x * 7 + y * 13) % 11) + 0.25 * x for x in range(w)] for y in range(h)],
                    dtype=np.float32)


def fmt(name, a):
    flat = ", ".join(f"{v:.7}" for v in np.asarray(a, dtype=np.float64).ravel())
    print(f"const {name}: &[f32] = &[{flat}];")


src = img(7, 5)
t = torch.from_numpy(src)[None, None]
fmt("BILINEAR_7X5_TO_3X4", F.interpolate(t, size=(4, 3), mode="bilinear", align_corners=False, antialias=False)[0, 0])
fmt("BILINEAR_7X5_TO_11X9", F.interpolate(t, size=(9, 11), mode="bilinear", align_corners=False, antialias=False)[0, 0])
src8 = img(8, 6)
t8 = torch.from_numpy(src8)[None, None]
fmt("AREA_8X6_TO_4X3", F.adaptive_avg_pool2d(t8, (3, 4))[0, 0])
m = torch.from_numpy(((np.arange(35).reshape(5, 7) * 5) % 3).astype(np.float32))[None, None]
fmt("NEAREST_7X5_TO_4X3", F.interpolate(m, size=(3, 4), mode="nearest-exact")[0, 0])
fmt("NEAREST_7X5_TO_12X8", F.interpolate(m, size=(8, 12), mode="nearest-exact")[0, 0])
fmt("PERCENTILE_7X5_2_98", np.percentile(src.astype(np.float64), [2.0, 98.0]))
fmt("PERCENTILE_7X5_10_50", np.percentile(src.astype(np.float64), [10.0, 50.0]))
