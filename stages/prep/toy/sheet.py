"""Contact sheets of toy items: image | ground-truth depth | estimated depth, composed with PIL only."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


def depth_to_rgb(depth: np.ndarray) -> np.ndarray:
    """Colour-code a depth map [R, R] (near = bright, far = dark) by its own 1st..99th percentile range -> uint8 [R, R, 3]."""
    lo, hi = np.percentile(depth, [1, 99])
    x = 1.0 - np.clip((depth - lo) / max(hi - lo, 1e-9), 0.0, 1.0)   # 1 = near
    # A small warm colour ramp (dark blue -> magenta -> orange -> pale yellow) so depth steps are easy to read.
    stops = np.array([[0.05, 0.03, 0.2], [0.55, 0.1, 0.5], [0.95, 0.5, 0.15], [1.0, 0.97, 0.75]])
    pos = x * (len(stops) - 1)
    i = np.minimum(pos.astype(int), len(stops) - 2)
    frac = (pos - i)[..., None]
    rgb = stops[i] * (1.0 - frac) + stops[i + 1] * frac
    return np.round(rgb * 255.0).astype(np.uint8)


def toy_contact_sheet(items: Sequence, columns: int = 4, pad: int = 2) -> Image.Image:
    """Tile ``items`` (``ToyItem``s) as [image | depth_gt | depth_est] triplets, ``columns`` triplets per row."""
    assert len(items) > 0
    res = items[0].image.shape[0]
    rows = (len(items) + columns - 1) // columns
    cell_w, cell_h = 3 * res + 2 * pad + 3 * pad, res + pad
    sheet = np.full((rows * cell_h + pad, columns * cell_w + pad, 3), 24, np.uint8)
    for k, item in enumerate(items):
        top, left = pad + (k // columns) * cell_h, pad + (k % columns) * cell_w
        panels = (item.image, depth_to_rgb(item.depth_gt), depth_to_rgb(item.depth_est))
        for j, panel in enumerate(panels):
            x0 = left + j * (res + pad)
            sheet[top:top + res, x0:x0 + res] = panel
    return Image.fromarray(sheet)
