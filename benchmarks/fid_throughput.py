"""Inception feature extraction (FID/KID) in img/s: clean-fid's ``get_folder_features`` versus ours, side by side.

Usage: ``python benchmarks/fid_throughput.py [--num 200] [--resolution 256] [--batch 32] [--repeats 3] [--levers]``

Writes ``--num`` structured PNGs (smooth random colour fields with a few shapes) into a temporary folder, then, for
``--repeats`` interleaved rounds (the order alternates), extracts the 2048-d pool3 features of the whole folder with

* clean-fid 0.1.35, ``get_folder_features(folder, model=..., mode="clean")`` on the CPU, with the unoptimized
  TorchScript network of ``load_inception()`` as its model (``lambda b: net((b - 128) / 128)``, how clean-fid runs
  its own Inception), ``--cleanfid-workers`` DataLoader workers (clean-fid's default 12; 0 if workers fail);
* ours: ``InceptionDetector.extract_from_paths`` with ``resize="clean"`` (identical inputs): the optimized network
  in 1 and 2 worker threads (``--workers`` picks the headline one) while the calling thread decodes and resizes,
  and once with ``prefetch=0`` and 1 worker (no overlap).

It reports img/s (median over rounds), the speed-up (median of the per-round ratios) and the largest absolute
difference between the two feature sets, then a markdown row. ``--levers`` also times the network alone in
several configurations (the levers of the optimization) on ``--lever-images`` pre-resized images.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import glob
import os
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch
from PIL import Image, ImageDraw

from stages.common.compat import ensure_torchvision
from stages.metrics.detector import load_inception, optimize_network


def write_images(folder: str, num: int, resolution: int, seed: int) -> list[str]:
    """``num`` RGB PNGs: a bicubically upsampled 4x4 random colour field plus 3 random ellipses/rectangles."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(num):
        field = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(field).resize((resolution, resolution), Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x0, y0 = rng.integers(0, resolution * 3 // 4, 2)
            x1, y1 = np.array([x0, y0]) + rng.integers(resolution // 8, resolution // 3, 2)
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape([int(x0), int(y0), int(x1), int(y1)], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        paths.append(os.path.join(folder, f"{index:06d}.png"))
        image.save(paths[-1])
    return paths


def cleanfid_features(folder: str, net, args, num=None) -> np.ndarray:
    """clean-fid's own folder pipeline (PIL decode, "clean" resize, DataLoader) around the plain network."""
    from cleanfid import fid

    return fid.get_folder_features(folder, model=lambda batch: net((batch - 128) / 128), num=num,
                                   num_workers=args.cleanfid_workers, batch_size=args.batch,
                                   device=torch.device("cpu"), mode="clean", verbose=False)


def lever_table(detector, plain_net, args) -> None:
    """img/s of the network alone (normalization and layout included) in each configuration, interleaved."""
    from stages.metrics.resize import resize_clean

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (args.lever_images, 64, 64, 3), dtype=np.uint8)
    inputs = torch.from_numpy(resize_clean(images)).permute(0, 3, 1, 2).contiguous()  # [N, 3, 299, 299] 0..255
    fast = detector.network()
    with warnings_off():
        frozen = torch.jit.freeze(plain_net.eval())
        mkldnn = torch.jit.optimize_for_inference(optimize_network(plain_net))
    cl, b = torch.channels_last, args.batch
    # name, module, channels_last input, batch, no_grad (else inference_mode), JIT executor optimization, threads
    variants = [
        ("plain network, NCHW, no_grad (clean-fid's forward)", plain_net, False, b, True, True, args.threads),
        ("plain, inference_mode", plain_net, False, b, False, True, args.threads),
        ("plain, channels_last input", plain_net, True, b, False, True, args.threads),
        ("torch.jit.freeze only", frozen, False, b, False, True, args.threads),
        ("optimized (BN folded, no .contiguous, relu_), NCHW", fast, False, b, False, False, args.threads),
        (f"optimized, channels_last = ours, batch {b}", fast, True, b, False, False, args.threads),
        ("ours, batch 8", fast, True, 8, False, False, args.threads),
        ("ours, batch 16", fast, True, 16, False, False, args.threads),
        ("ours + optimize_for_inference (oneDNN layout)", mkldnn, False, b, False, False, args.threads),
        ("plain, 1 intra-op thread", plain_net, False, b, True, True, 1),
        ("ours, 1 intra-op thread", fast, True, b, False, False, 1),
    ]

    def run(module, channels_last, batch, no_grad, jit_opt, threads):
        torch.set_num_threads(threads)
        outs = []
        with (torch.no_grad() if no_grad else torch.inference_mode()), torch.jit.optimized_execution(jit_opt):
            for start in range(0, len(inputs), batch):
                x = (inputs[start:start + batch] - 128) / 128
                outs.append(module(x.contiguous(memory_format=cl) if channels_last else x))
        torch.set_num_threads(args.threads)
        return torch.cat(outs)

    reference = run(*variants[0][1:])
    outputs = {name: run(*rest) for name, *rest in variants}  # warm-up (JIT profiling, oneDNN primitives)
    times: dict[str, list[float]] = {name: [] for name, *_ in variants}
    for _ in range(args.lever_repeats):
        for name, *rest in variants:
            start = time.perf_counter()
            run(*rest)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times[variants[0][0]])
    print(f"\nnetwork alone, {len(inputs)} images at 299x299, median of {args.lever_repeats} interleaved rounds:")
    print("| configuration | img/s | vs plain | max abs feature diff vs plain |\n|---|---:|---:|---:|")
    for name, *_ in variants:
        median = statistics.median(times[name])
        diff = (outputs[name] - reference).abs().max().item()
        print(f"| {name} | {len(inputs) / median:.2f} | {base / median:.2f}x | {diff:.1e} |")


@contextlib.contextmanager
def warnings_off():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=200, help="images in the folder")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32, help="batch size of both pipelines (clean-fid's default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cleanfid-workers", type=int, default=12, help="clean-fid's num_workers (its default)")
    parser.add_argument("--workers", type=int, default=1, help="our network threads (extract_stream workers)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--levers", action="store_true", help="also time the network alone per configuration")
    parser.add_argument("--lever-images", type=int, default=32)
    parser.add_argument("--lever-repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ensure_torchvision()  # before clean-fid imports torchvision
    warnings.filterwarnings("ignore", message="This DataLoader will create")  # clean-fid's 12 workers on few cores

    detector = load_inception(resize="clean", batch_size=args.batch)  # optimized (the default)
    plain_net = load_inception(optimize=False).net
    start = time.perf_counter()
    detector.network()
    print(f"one-time optimization + check of the network: {time.perf_counter() - start:.1f} s")
    with tempfile.TemporaryDirectory(prefix="fid_throughput_") as folder:
        write_images(folder, args.num, args.resolution, args.seed)
        files = sorted(glob.glob(os.path.join(folder, "**", "*.png"), recursive=True))  # clean-fid's order
        try:
            cleanfid_features(folder, plain_net, args, num=args.batch)  # warm-up
        except Exception as exc:  # noqa: BLE001 - e.g. DataLoader workers unavailable
            print(f"clean-fid with {args.cleanfid_workers} workers failed ({exc!r}); using num_workers=0")
            args.cleanfid_workers = 0
            cleanfid_features(folder, plain_net, args, num=args.batch)
        detector.extract_from_paths(files[:args.batch])  # warm-up
        no_overlap = lambda: np.concatenate([f.numpy() for f in detector.extract_stream(  # noqa: E731
            (torch.from_numpy(np.stack([np.array(Image.open(p).convert("RGB")) for p in files[i:i + args.batch]]))
             .permute(0, 3, 1, 2) for i in range(0, len(files), args.batch)), prefetch=0)])
        methods = {"clean-fid": lambda: cleanfid_features(folder, plain_net, args)}
        for workers in sorted({args.workers, 1, 2}):
            methods[f"ours, {workers} worker(s)"] = functools.partial(
                detector.extract_from_paths, files, batch=args.batch, workers=workers)
        methods["ours, 1 worker, no overlap"] = no_overlap
        ours = f"ours, {args.workers} worker(s)"
        times: dict[str, list[float]] = {name: [] for name in methods}
        features = {}
        print(f"{args.num} PNGs {args.resolution}x{args.resolution}, batch {args.batch}, threads {args.threads}, "
              f"clean-fid num_workers {args.cleanfid_workers}, {args.repeats} interleaved rounds")
        for round_index in range(args.repeats):
            order = list(methods) if round_index % 2 == 0 else list(reversed(methods))
            for name in order:
                start = time.perf_counter()
                features[name] = methods[name]()
                times[name].append(time.perf_counter() - start)
            print(f"round {round_index + 1}: " + ", ".join(f"{n} {args.num / times[n][-1]:.2f} img/s" for n in methods))
    rate = {name: args.num / statistics.median(t) for name, t in times.items()}
    speedup = {name: statistics.median(c / o for c, o in zip(times["clean-fid"], t)) for name, t in times.items()}
    diff = {name: float(np.abs(f - features["clean-fid"]).max()) for name, f in features.items()}
    for name in methods:
        print(f"{name}: {rate[name]:.2f} img/s, {speedup[name]:.2f}x clean-fid (median of per-round ratios: "
              f"{', '.join(f'{c / o:.2f}' for c, o in zip(times['clean-fid'], times[name]))}), "
              f"max |features - clean-fid's| {diff[name]:.1e}")
    print("\n| date | images | clean-fid img/s | ours img/s | speed-up | max abs feature diff |")
    print("|---|---|---:|---:|---:|---:|")
    print(f"| {datetime.date.today()} | {args.num} x {args.resolution}² PNG, batch {args.batch}, {args.threads} "
          f"threads, clean-fid num_workers {args.cleanfid_workers}, ours {args.workers} worker(s) "
          f"| {rate['clean-fid']:.2f} | {rate[ours]:.2f} | {speedup[ours]:.2f}x | {diff[ours]:.1e} |")
    if args.levers:
        lever_table(detector, plain_net, args)


if __name__ == "__main__":
    main()
