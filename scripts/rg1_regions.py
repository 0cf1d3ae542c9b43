#!/usr/bin/env python3
"""A coarse look at a checkpoint's labels on the real NEMA chest RG1, where no mask exists.

Reads `<dir>/RG1_UNCR.labels.png` as written by
`cargo run --release --example segment -- [--weights RUN] ../shared/data/nema-cr/RG1_UNCR.dcm --out DIR`
and prints, for each DIR given:

- abdomen: the label shares in two boxes under the diaphragm's domes (rows 80–95 % of the
  height, columns 25–42 % and 58–75 %: liver and stomach). Mostly soft tissue, but the
  lower posterior ribs may cross them, so the true soft share is high, not 1;
- spine: the bone share in a strip over the thoracic spine (rows 15–70 %, columns 48–52 %),
  which is bone in projection;
- the whole image's bone share (the synthetic chests' masks hold 50–66 % bone in the body).

An indicator for comparing checkpoints on one real image, not a score: the boxes were
placed by eye on this one radiograph. Needs numpy and opencv-python.

    python3 scripts/rg1_regions.py seg/ seg-other/
"""
import sys

import cv2
import numpy as np


def main(dirs):
    for d in dirs:
        m = cv2.imread(d.rstrip("/") + "/RG1_UNCR.labels.png", cv2.IMREAD_UNCHANGED)
        if m is None:
            sys.exit(f"{d}: no RG1_UNCR.labels.png (run the segment example on RG1 first)")
        h, w = m.shape
        y0, y1 = int(0.80 * h), int(0.95 * h)
        abdomen = np.concatenate(
            [m[y0:y1, int(0.25 * w):int(0.42 * w)].ravel(),
             m[y0:y1, int(0.58 * w):int(0.75 * w)].ravel()])
        spine = m[int(0.15 * h):int(0.70 * h), int(0.48 * w):int(0.52 * w)].ravel()
        print(f"{d}: abdomen soft {np.mean(abdomen == 1):.3f} bone {np.mean(abdomen == 2):.3f}"
              f" | spine bone {np.mean(spine == 2):.3f} | whole image bone {np.mean(m == 2):.3f}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
