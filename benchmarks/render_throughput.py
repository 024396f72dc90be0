"""Rays per second of ``stages.nn.render.render_rays`` with the reference and the CUDA compositing op, side by side.

Usage: ``python benchmarks/render_throughput.py [--device cuda] [--batch 4] [--resolution 64] ...``

The decoder is a stand-in for the tri-plane + MLP of 3DGP ref §1.3 (random planes sampled with bilinear
``grid_sample``, mean over planes, FC 32 -> 64 lrelu -> 4), so the timing covers the whole renderer of ref §1.6:
stratified coarse pass, s-space proposal composite, importance sampling, fine pass, sort and final composite.
Each column is a forward + backward (gradients w.r.t. the planes and the rays, as in a G step), median of
``--repeats`` runs after ``--warmup``. On a machine without CUDA the CUDA column says it is unavailable.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

from stages.nn.rays import make_rays
from stages.nn.render import render_rays


def make_decoder(batch: int, channels: int, plane_res: int, device: torch.device):
    """A random tri-plane + 2-layer MLP decoder ``points [B, N, 3] -> (rgb [B, N, 3], sigma_raw [B, N])``."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    planes = torch.randn(batch, 3, channels, plane_res, plane_res, generator=gen).to(device).requires_grad_(True)
    w1 = (torch.randn(channels, 64, generator=gen) / math.sqrt(channels)).to(device)
    w2 = (torch.randn(64, 4, generator=gen) / 8.0).to(device)

    def decode(points: torch.Tensor):
        coords = points / 0.5  # cube_scale 0.5 (ref §1.3)
        pairs = [coords[..., [0, 1]], coords[..., [0, 2]], coords[..., [1, 2]]]
        feats = sum(
            F.grid_sample(planes[:, i], pair.unsqueeze(1), mode="bilinear", align_corners=True)[:, :, 0]
            for i, pair in enumerate(pairs)
        ) / 3  # [B, C, N]
        hidden = F.leaky_relu(feats.transpose(1, 2) @ w1, 0.2) * math.sqrt(2)  # [B, N, 64]
        out = hidden @ w2  # [B, N, 4]
        return out[..., :3], out[..., 3]

    return decode, planes


def time_impl(impl: str, args, device: torch.device) -> list[float]:
    """Seconds per forward + backward of one batch, for ``--repeats`` runs after ``--warmup``."""
    decode, planes = make_decoder(args.batch, args.channels, args.plane_res, device)
    camera = torch.tensor([[0.2, 1.4, 0.0, 25.0, 1.0, 0.0, math.pi / 2, 0.05]], device=device)
    camera = camera.repeat(args.batch, 1).requires_grad_(True)
    times = []
    for i in range(args.warmup + args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        origins, dirs = make_rays(camera, args.resolution)
        out = render_rays(decode, origins, dirs, num_coarse=args.num_coarse, num_fine=args.num_fine,
                          density_noise_std=0.5, composite_impl=impl)
        (out["rgb"].square().mean() + out["depth"].mean()).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
        planes.grad = camera.grad = None
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=64, help="rays per side (a 64x64 training patch)")
    parser.add_argument("--num-coarse", type=int, default=32)
    parser.add_argument("--num-fine", type=int, default=32)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--plane-res", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    num_rays = args.batch * args.resolution**2
    print(f"device={device} batch={args.batch} rays/batch={num_rays} samples/ray={args.num_coarse}+{args.num_fine} "
          f"threads={args.threads} (forward + backward, median of {args.repeats})")
    ref = time_impl("ref", args, device)
    rows = [("ref", ref)]
    if device.type == "cuda":
        rows.append(("cuda", time_impl("cuda", args, device)))
    print(f"{'impl':<6} {'rays/s':>12} {'ms/batch':>10} {'min ms':>8} {'max ms':>8} {'vs ref':>7}")
    ref_median = statistics.median(ref)
    for name, times in rows:
        median = statistics.median(times)
        print(f"{name:<6} {num_rays / median:>12,.0f} {1e3 * median:>10.1f} {1e3 * min(times):>8.1f} "
              f"{1e3 * max(times):>8.1f} {ref_median / median:>6.2f}x")
    if device.type != "cuda":
        print(f"{'cuda':<6} {'unavailable: no CUDA device (run with --device cuda on a GPU machine)':>12}")
    try:
        from stages.ops import impl_report

        print("ops used:", impl_report())
    except Exception:  # pragma: no cover - the report is informational only
        pass


if __name__ == "__main__":
    main()
