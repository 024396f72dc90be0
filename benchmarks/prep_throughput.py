"""Prep throughput on an ImageNet-like tree of real-sized JPEGs (issue 21 §2).

    python benchmarks/prep_throughput.py [--num 600] [--classes 3] [--resolution 256] [--workers 1 2]

1. Generates ``--num`` photo-like JPEGs in class folders (sizes 380-500 x 300-420 like ImageNet's, quality 90:
   smooth colour fields, edges and fine texture, about 45 KB each).
2. Times ``3dgp prep imagenet SRC OUT --depth-model none --embedder none`` (decode + centre crop + resize + encode +
   LMDB write; the depth model and the embedder are excluded) for each ``--workers`` count: images per second of wall
   time, and images per CPU-second of every process of the run (its own and its workers'): "per core".
3. The levers, each timed alone on the same files in this process (ms per image): decoding (full, and with the
   JPEG's DCT-domain reduction), crop + resize, and the stored encoding (PNG level 1, the format-1 writer, against
   the format-2 3UPZ blob).

Prints a Markdown table to paste into benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_tree(root: Path, num: int, classes: int, seed: int = 0) -> None:
    """``num`` photo-like JPEGs of ImageNet-like sizes in ``classes`` class folders (module docstring)."""
    rng = np.random.default_rng(seed)
    for i in range(num):
        width, height = int(rng.integers(380, 501)), int(rng.integers(300, 421))
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        phase, freq = rng.uniform(0, 2 * np.pi, (3, 2)), rng.uniform(0.003, 0.02, (3, 2))
        image = np.stack([120 + 90 * np.sin(xx * freq[c, 0] + phase[c, 0]) * np.cos(yy * freq[c, 1] + phase[c, 1])
                          for c in range(3)], -1)
        cx, cy, r = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height, rng.uniform(40, 120)
        image[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)  # an object with sharp edges
        image += rng.normal(0, 6, image.shape)  # sensor-like texture
        folder = root / f"n{i % classes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"img_{i:05d}.JPEG", quality=90)


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_once(src: Path, out: Path, resolution: int, workers: int) -> dict:
    """One prep of ``src``: images per wall-second and per CPU-second."""
    from stages.prep import PrepConfig, run

    cfg = PrepConfig.make("imagenet", out, src, resolution=resolution, workers=workers, depth_model="none",
                          embedder="none", batch_size=64)
    cpu, start = _cpu_seconds(), time.perf_counter()
    result = run(cfg)
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    n = result.summary.num_items if hasattr(result, "summary") else result.num_items
    return {"workers": workers, "images": n, "per_second": n / wall, "per_cpu_second": n / cpu}


def levers(files: list[Path], resolution: int) -> dict[str, float]:
    """ms per image of each piece of the per-image work, alone (module docstring, 3)."""
    from stages.data.decode import center_crop_box, load_rgb
    from stages.data.format import encode_image, encode_image_png

    datas = [f.read_bytes() for f in files]

    def per_image(fn) -> float:
        start = time.perf_counter()
        for d in datas:
            fn(d)
        return (time.perf_counter() - start) / len(datas) * 1e3

    def decode(d, draft):
        with Image.open(io.BytesIO(d)) as im:
            if draft:
                im.draft("RGB", (resolution, resolution))
            im.load()
            return im.copy()

    decoded = [decode(d, True) for d in datas]
    arrays = [load_rgb(d, resolution) for d in datas]
    start = time.perf_counter()
    for im in decoded:
        im.resize((resolution, resolution), Image.Resampling.LANCZOS, box=center_crop_box(*im.size))
    resize = (time.perf_counter() - start) / len(decoded) * 1e3
    start = time.perf_counter()
    png = [encode_image_png(a) for a in arrays]
    png_ms = (time.perf_counter() - start) / len(arrays) * 1e3
    start = time.perf_counter()
    upz = [encode_image(a) for a in arrays]
    upz_ms = (time.perf_counter() - start) / len(arrays) * 1e3
    return {"decode full": per_image(lambda d: decode(d, False)), "decode with DCT reduction": per_image(
            lambda d: decode(d, True)), "crop + Lanczos resize": resize, "load_rgb (all of the above)": per_image(
            lambda d: load_rgb(d, resolution)), "encode PNG level 1 (format 1)": png_ms,
            "encode 3UPZ (format 2)": upz_ms, "PNG KB": np.mean([len(b) for b in png]) / 1024,
            "3UPZ KB": np.mean([len(b) for b in upz]) / 1024, "JPEG KB": np.mean([len(d) for d in datas]) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=600)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    os.environ.setdefault("THREEDGP_NO_PROGRESS", "1")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "train"
        make_tree(src, args.num, args.classes)
        print(f"{args.num} JPEGs in {args.classes} classes -> {args.resolution}^2 on {machine}")
        print("| workers | images | img/s (wall) | img per CPU-second |\n|---:|---:|---:|---:|")
        for workers in args.workers:
            r = run_once(src, Path(tmp) / f"out_{workers}", args.resolution, workers)
            print(f"| {workers} | {r['images']} | {r['per_second']:.1f} | {r['per_cpu_second']:.1f} |")
        print("\n| lever | value |\n|---|---:|")
        for name, value in levers(sorted(src.rglob("*.JPEG"))[:200], args.resolution).items():
            print(f"| {name} | {value:.2f} {'KB' if name.endswith('KB') else 'ms'} |")


if __name__ == "__main__":
    main()
