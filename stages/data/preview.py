"""Contact sheets: a grid of dataset images with their depth maps beneath (for ``--preview``; torch-free)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stages.data.format import decode_depth, decode_depth_gt, decode_image, item_key, unpack_item
from stages.data.lmdb_store import open_readonly, read_meta

# A perceptual dark-to-bright ramp (near = dark purple, far = bright yellow), interpolated linearly.
_RAMP = np.array(
    [[13, 8, 135], [126, 3, 168], [204, 71, 120], [248, 149, 64], [240, 249, 33]], dtype=np.float32
)


def colorize_depth(depth: np.ndarray) -> np.ndarray:
    """Depth [H, W] (any scale, larger = farther) -> uint8 [H, W, 3], min-max normalised per map."""
    depth = np.asarray(depth, dtype=np.float32)
    finite = np.isfinite(depth)
    lo, hi = (float(depth[finite].min()), float(depth[finite].max())) if finite.any() else (0.0, 1.0)
    t = np.clip((np.where(finite, depth, hi) - lo) / max(hi - lo, 1e-12), 0.0, 1.0) * (len(_RAMP) - 1)
    i0 = np.minimum(t.astype(np.int64), len(_RAMP) - 2)
    frac = (t - i0)[..., None]
    return (_RAMP[i0] * (1 - frac) + _RAMP[i0 + 1] * frac + 0.5).astype(np.uint8)


def contact_sheet(
    images: np.ndarray,  # uint8 [N, R, R, 3]
    depth_rows: list[np.ndarray] | None = None,  # each [N, R, R], drawn under the images (e.g. estimated, GT)
    columns: int = 8,  # items per row of the sheet
    gap: int = 2,  # pixels between tiles
) -> np.ndarray:
    """Tile items into one uint8 [H, W, 3] sheet: per item a column of image, then each depth row."""
    depth_rows = depth_rows or []
    num, res = images.shape[0], images.shape[1]
    columns = max(1, min(columns, num))
    rows = (num + columns - 1) // columns
    tile_h = res * (1 + len(depth_rows)) + gap * len(depth_rows)
    sheet = np.full((rows * (tile_h + gap) + gap, columns * (res + gap) + gap, 3), 255, dtype=np.uint8)
    for n in range(num):
        top = gap + (n // columns) * (tile_h + gap)
        left = gap + (n % columns) * (res + gap)
        sheet[top : top + res, left : left + res] = images[n]
        for k, depths in enumerate(depth_rows):
            y = top + (k + 1) * (res + gap)
            sheet[y : y + res, left : left + res] = colorize_depth(depths[n])
    return sheet


def save_dataset_preview(
    path: str | os.PathLike,  # a finished dataset directory
    out_png: str | os.PathLike,  # where to write the sheet
    num_items: int = 16,  # how many items (the first ones, evenly spread over the dataset)
    columns: int = 8,  # items per sheet row
) -> Path:
    """Write a contact sheet of ``num_items`` items of a dataset: images, stored depth, and GT depth if any."""
    from PIL import Image

    from stages.common.errors import BadFileError

    meta = read_meta(path)
    total, res = int(meta["num_items"]), int(meta["resolution"])
    picks = np.unique(np.linspace(0, total - 1, num=min(num_items, total)).round().astype(int)) if total else []
    images, depths, depths_gt = [], [], []
    with open_readonly(path).begin() as txn:
        for index in picks:
            _, blobs = unpack_item(txn.get(item_key(int(index))))
            images.append(decode_image(blobs["image"]))
            if "depth" in blobs:
                depths.append(decode_depth(blobs["depth"]))
            if "depth_gt" in blobs:
                depths_gt.append(decode_depth_gt(blobs["depth_gt"], res))
    if not images:
        raise BadFileError(path, "dataset has no items to preview")
    rows = [np.stack(d) for d in (depths, depths_gt) if len(d) == len(images)]
    sheet = contact_sheet(np.stack(images), rows, columns=columns)
    out_png = Path(out_png)
    try:
        out_png.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet).save(out_png)
    except OSError as exc:
        raise BadFileError(out_png, f"cannot write the preview ({exc.strerror or exc})") from None
    return out_png
