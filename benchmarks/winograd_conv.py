"""Winograd F(4x4, 3x3) against the direct (oneDNN) convolution, per shape, side by side (issue 21 §1 (iii)).

    python benchmarks/winograd_conv.py [--threads 1,2] [--reps 20]

For each shape of D's and G's 3x3 stride-1 convolutions in the SMALL and tiny presets (batch 8), times the three
products -- forward, input gradient, weight gradient -- both ways in one process, alternating (direct, winograd,
winograd, direct per repetition; medians), with the training process settings (``configure_cpu_training``), and
prints the ratio direct / winograd and the largest error of each against a float64 convolution, relative to the
largest value. ``stages.ops.winograd.MIN_MACS`` is chosen from this table.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.ops import winograd  # noqa: E402
from stages.ops.cpu_runtime import configure_cpu_training  # noqa: E402

SHAPES = ((8, 128, 128, 32), (8, 64, 128, 32), (8, 64, 64, 32), (8, 32, 64, 32), (8, 32, 32, 32), (8, 128, 128, 16),
          (8, 64, 64, 16), (8, 128, 128, 8), (8, 32, 32, 16), (8, 64, 64, 8))  # N, C, O, H = W


def _products(x, w, gy):
    direct = (lambda: F.conv2d(x, w, padding=1),
              lambda: torch.ops.aten.convolution_backward(gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                                          [True, False, False])[0],
              lambda: torch.ops.aten.convolution_backward(gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                                          [False, True, False])[1])
    fast = (lambda: winograd.conv3x3(x, w), lambda: winograd.conv3x3_input_grad(gy, w),
            lambda: winograd.conv3x3_weight_grad(x, gy))
    return direct, fast


def _error(got, want) -> float:
    return float((got.double() - want).abs().max() / want.abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    if winograd._library() is None:
        sys.exit("the CPU kernels are not available (no C compiler?)")
    print("| threads | N x C x H^2 -> O | MACs | forward ms (direct -> winograd) | input gradient | weight gradient "
          "| error fwd / in / w |")
    print("|---:|---|---:|---|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        configure_cpu_training()
        for n, c, o, h in SHAPES:
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(n, c, h, h, generator=gen).contiguous(memory_format=torch.channels_last)
            w = torch.randn(o, c, 3, 3, generator=gen) / (3 * c**0.5)
            gy = torch.randn(n, o, h, h, generator=gen).contiguous(memory_format=torch.channels_last)
            direct, fast = _products(x, w, gy)
            exact = (F.conv2d(x.double(), w.double(), padding=1),
                     torch.nn.grad.conv2d_input(x.shape, w.double(), gy.double(), padding=1),
                     torch.nn.grad.conv2d_weight(x.double(), w.shape, gy.double(), padding=1))
            cells, errors = [], []
            for d, f, want in zip(direct, fast, exact):
                times = {"d": [], "f": []}
                for _ in range(3):
                    d(), f()
                for _ in range(args.reps):
                    for key, fn in (("d", d), ("f", f), ("f", f), ("d", d)):
                        start = time.perf_counter()
                        fn()
                        times[key].append(time.perf_counter() - start)
                td, tf = (statistics.median(times[k]) * 1e3 for k in ("d", "f"))
                cells.append(f"{td:.2f} -> {tf:.2f} ({td / tf:.2f}x)")
                errors.append(f"{_error(f(), want):.0e}")
            macs = n * h * h * c * o * 9
            print(f"| {threads} | {n} x {c} x {h}^2 -> {o} | 2^{macs.bit_length() - 1} | " + " | ".join(cells)
                  + f" | {' / '.join(errors)} |", flush=True)


if __name__ == "__main__":
    main()
