"""Golden values for xray_postproc::multi_otsu: scikit-image's threshold_multiotsu on fixed
histograms. Run: /work/venv/bin/python multi_otsu.py (scikit-image 0.26)."""
import numpy as np
from skimage.filters import threshold_multiotsu

rng = np.random.default_rng(7)
cases = []
for k in range(4):
    nb = [32, 64, 128, 256][k]
    x = np.concatenate([rng.normal(m, s, n) for m, s, n in
                        [(0.2, 0.05, 3000), (0.5, 0.08, 5000), (0.8, 0.04, 2000 + 500 * k)]])
    hist, _ = np.histogram(np.clip(x, 0, 1), bins=nb, range=(0, 1))
    centers = np.arange(nb)
    for classes in (2, 3):
        t = threshold_multiotsu(classes=classes, hist=(hist, centers))
        cases.append((hist.tolist(), classes - 1, [int(v) for v in t]))
for hist, n, t in cases:
    print(f"    (&{hist}, {n}, &{t}),")
