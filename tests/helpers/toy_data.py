"""A tiny LMDB dataset written through the data writer API, shared by the train and eval tests."""
from __future__ import annotations

import numpy as np


def make_toy_dataset(path, num: int = 16, resolution: int = 32, emb_dim: int = 8, depth: bool = True,
                     num_classes: int = 2, seed: int = 0):
    """Coloured discs over a gradient with a matching depth map (near disc, far background)."""
    from stages.data.format import encode_depth_png, encode_embedding, encode_image_png, item_key, pack_item
    from stages.data.lmdb_store import DatasetWriter

    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:resolution, 0:resolution] / (resolution - 1)
    writer = DatasetWriter(path)
    counts = [0] * num_classes
    for i in range(num):
        label = i % num_classes
        counts[label] += 1
        cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        colour = rng.uniform(0, 255, size=3)
        img = np.stack([yy * 200, xx * 120 + 40, np.full_like(xx, 90.0)], axis=-1)
        img[disc] = colour
        blobs = {"image": encode_image_png(img.astype(np.uint8))}
        if depth:
            d = np.where(disc, 0.3, 0.8) + 0.05 * yy
            blobs["depth"] = encode_depth_png((d / d.max() * 60000).astype(np.uint16))
        if emb_dim:
            blobs["embedding"] = encode_embedding(rng.randn(emb_dim).astype(np.float32))
        writer.commit({item_key(i): pack_item(blobs, label, f"toy/{i}.png")})
    meta = {
        "format_version": 1, "resolution": resolution, "num_items": num,
        "class_names": [f"c{k}" for k in range(num_classes)], "label_counts": counts,
        "source": {"kind": "test", "path": "-"}, "prep_args": {}, "prep_command": "test",
        "depth": {"name": "test", "version": "0", "weights_sha256": None, "output_kind": "depth"} if depth else None,
        "has_depth_gt": False,
        "embedder": {"name": "test", "dim": emb_dim, "weights_sha256": None} if emb_dim else None,
        "num_skipped": 0, "created": "2026-01-01T00:00:00Z", "code_version": "test",
    }
    writer.finish(meta)
    writer.close()
    return path
