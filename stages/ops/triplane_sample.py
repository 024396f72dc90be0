"""Tri-plane sampling: bilinear samples of the 3 planes at world points, averaged (3DGP ref §1.3; issue 21 §1).

``sample_triplane(planes [B, 3, F, R, R], points [B, N, 3], cube_scale) -> [B, N, F]``. The reference is
``F.grid_sample`` (bilinear, ``align_corners=True``, zero padding) on the three planes, then the mean. On CPU, a
fused kernel (``csrc/cpu_kernels.c``, built by :mod:`stages.ops._cpu_build`) computes the same numbers without
grid_sample's per-channel strided reads, the stacked coordinate grid, the [B, 3, F, N] intermediate and the
permute: it reads the channels-last planes the backbone produces (no copy), and its backward writes the planes'
gradient in that same layout and the points' gradient directly. Values equal the reference up to float rounding
(the tests check forward and both gradients). The SMALL training step spends ~30 % of its time here (RESULTS.md).

The kernel covers float32 CPU tensors with F a multiple of 8 (up to 128) and first-order gradients; anything
else -- CUDA tensors, other dtypes, a ``create_graph`` backward (recomputed through the reference, like the CUDA
ops do) -- runs the reference. ``impl="ref"`` forces the reference.
"""
from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F

from stages.ops import _impl

IMPLS = ("auto", "ref")
PLANE_AXES = ((0, 1), (0, 2), (1, 2))  # the point coordinates (width, height) that index each plane
MAX_FEATURES = 128  # the kernel keeps up to 16 vectors of 8 features in registers


def sample_triplane_ref(planes: torch.Tensor, points: torch.Tensor, cube_scale: float = 0.5) -> torch.Tensor:
    """The reference: ``grid_sample`` on each plane, mean over the planes. ``[B, N, F]``."""
    batch_size, num_planes, feat_dim, height, width = planes.shape
    coords = points.to(planes.dtype) / cube_scale  # [B, N, 3] in grid_sample units
    x, y, z = coords.unbind(-1)
    axes = (x, y, z)
    grid = torch.stack([torch.stack([axes[u], axes[v]], dim=-1) for u, v in PLANE_AXES], dim=1)  # [B, 3, N, 2]
    grid = grid.reshape(batch_size * 3, 1, -1, 2)  # [B*3, 1, N, 2]
    feats = F.grid_sample(planes.reshape(batch_size * 3, feat_dim, height, width), grid,
                          mode="bilinear", padding_mode="zeros", align_corners=True)  # [B*3, F, 1, N]
    feats = feats.reshape(batch_size, 3, feat_dim, -1).mean(dim=1)  # [B, F, N]
    return feats.permute(0, 2, 1)  # [B, N, F]


def sample_triplane(
    planes: torch.Tensor,            # [B, 3, F, R, R] tri-plane features.
    points: torch.Tensor,            # [B, N, 3] world coordinates.
    cube_scale: float = 0.5,         # Half side of the cube the tri-plane covers.
    impl: str = "auto",              # 'auto' (the CPU kernel where it applies) or 'ref'.
) -> torch.Tensor:
    """Bilinear samples of the 3 planes at ``points``, averaged over the planes: ``[B, N, F]`` (module docstring)."""
    if impl not in IMPLS:
        raise ValueError(f"impl: must be one of {', '.join(IMPLS)}, got {impl!r}")
    batch_size, num_planes = planes.shape[:2]
    assert num_planes == 3, planes.shape
    assert points.ndim == 3 and points.shape[0] == batch_size and points.shape[2] == 3, (points.shape, planes.shape)
    lib = None
    if impl == "auto" and _kernel_applies(planes, points):
        from stages.ops._cpu_build import get_library

        lib = get_library()
    _impl.record("triplane_sample", "cpu" if lib is not None else "ref")
    if lib is None:
        return sample_triplane_ref(planes, points, cube_scale)
    return _TriplaneSample.apply(planes, points, float(cube_scale), lib)


def _kernel_applies(planes: torch.Tensor, points: torch.Tensor) -> bool:
    feat_dim = planes.shape[2]
    return (planes.device.type == "cpu" and points.device.type == "cpu" and planes.dtype == torch.float32
            and points.dtype == torch.float32 and feat_dim % 8 == 0 and 0 < feat_dim <= MAX_FEATURES
            and planes.shape[-1] == planes.shape[-2] >= 2 and points.shape[1] > 0
            and not torch.is_autocast_enabled("cpu"))


def _channels_last(planes: torch.Tensor) -> torch.Tensor:
    """``[B, R, R, 3, F]`` contiguous: a free view of the channels-last planes the backbone makes, else a copy."""
    return planes.permute(0, 3, 4, 1, 2).contiguous()


class _TriplaneSample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, planes, points, cube_scale, lib):
        layout = _channels_last(planes)
        pts = points.contiguous()
        batch_size, res, _, _, feat_dim = layout.shape
        num = pts.shape[1]
        feats = planes.new_empty(batch_size, num, feat_dim)
        lib.threedgp_triplane_forward(layout.data_ptr(), pts.data_ptr(), feats.data_ptr(), batch_size, num, res,
                                      feat_dim // 8, 1.0 / cube_scale, _team(batch_size * num // 256))
        ctx.save_for_backward(planes, points)
        ctx.cube_scale, ctx.lib = cube_scale, lib
        return feats

    @staticmethod
    def backward(ctx, grad_feats):
        planes, points = ctx.saved_tensors
        want_planes, want_points = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if torch.is_grad_enabled():  # create_graph: differentiate the reference so the graph continues
            grads = _impl.reference_grads(lambda p, q: sample_triplane_ref(p, q, ctx.cube_scale), (planes, points),
                                          (want_planes, want_points), grad_feats)
            return grads + (None, None)
        layout = _channels_last(planes)
        pts = points.contiguous()
        grad = grad_feats.contiguous()
        batch_size, res, _, _, feat_dim = layout.shape
        num = pts.shape[1]
        grad_layout = torch.zeros_like(layout) if want_planes else None
        grad_part = planes.new_empty(batch_size, 3, num, 2) if want_points else None
        ctx.lib.threedgp_triplane_backward(
            layout.data_ptr(), pts.data_ptr(), grad.data_ptr(), grad_layout.data_ptr() if want_planes else None,
            grad_part.data_ptr() if want_points else None, batch_size, num, res, feat_dim // 8, 1.0 / ctx.cube_scale,
            int(want_planes), int(want_points), _team(batch_size * 3))
        grad_planes = grad_layout.permute(0, 3, 4, 1, 2) if want_planes else None  # [B, 3, F, R, R] view
        grad_points = None
        if want_points:  # each axis is read by two planes: x by planes 0, 1 (u); y by 0 (v), 2 (u); z by 1, 2 (v)
            u, v = grad_part[..., 0], grad_part[..., 1]  # [B, 3, N]
            grad_points = torch.stack([u[:, 0] + u[:, 1], v[:, 0] + u[:, 2], v[:, 1] + v[:, 2]], dim=-1)
            grad_points = grad_points.to(points.dtype)
        return grad_planes, grad_points, None, None


def _team(max_threads: int):
    from stages.ops._cpu_build import team

    return ctypes.byref(team(max_threads))


def selfcheck(lib) -> str | None:
    """Compare the kernel with the reference on a small input (forward and both gradients, points in and out of
    the cube); a one-line description of the first mismatch, or None. Runs whatever the caller's grad mode."""
    with torch.inference_mode(False), torch.enable_grad():
        return _selfcheck(lib)


def _selfcheck(lib) -> str | None:
    gen = torch.Generator().manual_seed(0)
    planes = torch.randn(2, 3, 8, 5, 5, generator=gen)
    points = (torch.rand(2, 40, 3, generator=gen) * 2.4 - 1.2) * 0.5
    grad = torch.randn(2, 40, 8, generator=gen)
    results = []
    for run in (lambda p, q: _TriplaneSample.apply(p, q, 0.5, lib), sample_triplane_ref):
        p, q = planes.clone().requires_grad_(True), points.clone().requires_grad_(True)
        out = run(p, q)
        out.backward(grad)
        results.append((out.detach(), p.grad, q.grad))
    for name, got, want in zip(("forward", "planes gradient", "points gradient"), *results):
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
            return f"{name} differs from the reference by {(got - want).abs().max().item():.3g}"
    return None
