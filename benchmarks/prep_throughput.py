"""Prep throughput: images/s of decode + center-crop + Lanczos resize + PNG encode + LMDB write at 256x256.

The depth estimator and embedder are excluded (``--depth-model none --embedder none``), as issue 3 asks. Inputs
are generated JPEGs (smooth colour fields plus texture, 640x480, quality 90, roughly like photos). Usage:

    python benchmarks/prep_throughput.py [--num 400] [--resolution 256] [--workers 0 2]

Prints one line per worker count and a Markdown table row to paste into benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_jpegs(folder: Path, num: int, size=(640, 480), seed: int = 0) -> None:
    """Write ``num`` photo-like JPEGs: low-frequency colour fields plus fine texture."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(num):
        phase = rng.uniform(0, 2 * np.pi, (3, 2))
        freq = rng.uniform(0.002, 0.02, (3, 2))
        channels = [
            127 + 100 * np.sin(xx * freq[c, 0] + phase[c, 0]) * np.cos(yy * freq[c, 1] + phase[c, 1]) for c in range(3)
        ]
        image = np.stack(channels, -1) + rng.normal(0, 12, (height, width, 3))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"img_{i:05d}.jpg", quality=90)


def run_once(src: Path, out: Path, resolution: int, workers: int) -> float:
    """One prep of ``src``; returns images per second."""
    from stages.prep import PrepConfig, run

    cfg = PrepConfig.make("folder", out, src, resolution=resolution, workers=workers,
                          depth_model="none", embedder="none", batch_size=64)
    start = time.perf_counter()
    result = run(cfg)
    seconds = time.perf_counter() - start
    assert result.num_items == len(list(src.glob("*.jpg"))), result
    return result.num_items / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=400, help="number of generated JPEGs")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, os.cpu_count() or 1])
    args = parser.parse_args()
    os.environ.setdefault("THREEDGP_NO_PROGRESS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "jpegs"
        src.mkdir()
        make_jpegs(src, args.num)
        machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
        for workers in args.workers:
            rate = run_once(src, Path(tmp) / f"out_{workers}", args.resolution, workers)
            print(f"workers={workers}: {rate:.1f} img/s ({args.num} JPEGs 640x480 -> {args.resolution}^2)")
            print(f"| {args.resolution}^2 | {args.num} | {workers} | {rate:.1f} | {machine} |")


if __name__ == "__main__":
    main()
