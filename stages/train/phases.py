"""One micro-batch of each training phase: Gall, Dmain, Dreg (3DGP ref §5.1, §2.4, §4.3, §1.7, §1.8).

Each ``*_loss`` function draws its own fresh z, classes, prior cameras and patch parameters from the global RNGs
(seeded per micro-batch by the loop, ``stages.common.seeding.seed_step``), runs the networks and returns the scalar
loss to backpropagate for that micro-batch, reporting its named parts to ``ctx.stats``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from stages.common.stats import StatsCollector
from stages.nn.camera import camera_emd_loss, force_mean_loss
from stages.nn.inputs import sample_generator_inputs
from stages.nn.patches import extract_patches, sample_patch_params
from stages.nn.rays import (
    CAM_FOV, CAM_LA_PITCH, CAM_LA_RADIUS, CAM_LA_YAW, CAM_PITCH, CAM_RADIUS, CAM_YAW, CAMERA_DIM, CAMERA_FIELDS,
)
from stages.ops.conv2d_gradfix import no_weight_gradients
from stages.train import loss as L
from stages.train.schedules import ScheduleState

_REPORTED_CAMERA_FIELDS = ("yaw", "pitch", "fov_deg", "la_yaw", "la_pitch", "la_radius")


@dataclass
class PhaseContext:
    """What every phase needs; rebuilt each iteration with the current schedule state."""

    G: Any  # the generator being trained
    D: Any  # the discriminator
    sched: ScheduleState  # schedule values at the current kimg
    device: torch.device  # compute device
    prior: Any  # stages.nn.camera.CameraPrior
    c_dim: int  # conditioning size (0 = unconditional)
    label_probs: np.ndarray | None  # dataset label distribution for fake classes (None = unconditional)
    patch_res: int  # training render / D input resolution
    min_scale: float  # patch_res / img_res
    group_size: int  # minibatch-std group: patch params are shared per group
    has_depth: bool  # D sees RGB + depth
    gamma: float  # R1 weight
    r1_interval: int  # lazy R1 interval (also the R1 loss gain)
    loss_cfg: Any  # LossConfig
    stats: StatsCollector  # named scalars


def sample_fake_inputs(ctx: PhaseContext, n: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor,
                                                            torch.Tensor]:
    """Fresh z ``[n, z_dim]``, classes from the dataset label distribution, prior cameras ``[n, 8]`` (all from
    ``stages.nn.inputs`` on the global RNGs) and patch parameters ``[n, 3]`` (ref §5.1 'fresh per phase', §1.7
    beta scheme)."""
    inputs = sample_generator_inputs(n, ctx.G.z_dim, ctx.c_dim, ctx.prior, label_probs=ctx.label_probs,
                                     device=ctx.device)
    patch = sample_patch_params(n, ctx.min_scale, ctx.sched.patch_beta, ctx.group_size, device=ctx.device)
    return inputs.z, inputs.c, inputs.camera_prior, patch


def fake_d_input(out: dict, has_depth: bool, ray_start: float, ray_end: float) -> torch.Tensor:
    """[img, adapted depth] ``[B, 4, r, r]`` (or img alone without depth) from a G output dict (ref §1.8, §3.4)."""
    if not has_depth:
        return out["img"]
    depth = out["depth_adapted"]
    if depth is None:  # no adaptor at all: normalised raw depth
        from stages.nn.depth_adaptor import normalize_depth

        depth = normalize_depth(out["depth"], ray_start, ray_end)
    return torch.cat([out["img"], depth.to(out["img"].dtype)], dim=1)


def run_G(ctx: PhaseContext, z, c, cameras, patch, update_emas: bool = False) -> tuple[torch.Tensor, dict]:
    """G forward on patches at the patch resolution with the current density noise; returns (D input, outputs)."""
    out = ctx.G(z, c, cameras, patch_params=patch, resolution=ctx.patch_res, update_emas=update_emas,
                nerf_noise_std=ctx.sched.nerf_noise_std)
    return fake_d_input(out, ctx.has_depth, ctx.G.ray_start, ctx.G.ray_end), out


def run_D(ctx: PhaseContext, img: torch.Tensor, c, patch, predict_feat: bool = False, parts: int = 1,
          kd_rows: slice | None = None) -> dict:
    """D on a blurred input (blur warm-up, ref §5.2). The KD head runs only with ``predict_feat`` (on ``kd_rows``:
    the reals of Dmain, ref §4.3); fakes and the R1 pass skip it, so ``kd_features`` is then None. ``parts``: see
    ``Discriminator.forward``."""
    img = L.blur_d_input(img, ctx.sched.blur_sigma, ctx.has_depth)
    return ctx.D(img, c, patch, predict_feat=predict_feat, parts=parts, kd_rows=kd_rows)


def report_camera(stats: StatsCollector, cameras: torch.Tensor) -> None:
    """Camera/<field>/mean|std of posterior cameras ``[B, 8]``."""
    cams = cameras.detach().float()
    for i, name in enumerate(CAMERA_FIELDS):
        if name in _REPORTED_CAMERA_FIELDS:
            stats.report(f"Camera/{name}/mean", cams[:, i].mean())
            stats.report(f"Camera/{name}/std", cams[:, i].std(unbiased=False))


def camera_regularizers(ctx: PhaseContext) -> torch.Tensor:
    """m(t) * EMD(posterior, prior) + force-mean on fresh samples with uniform classes (ref §2.4)."""
    total = torch.zeros([], device=ctx.device)
    adaptor = getattr(ctx.G, "camera_adaptor", None)
    if adaptor is None or not getattr(adaptor, "enabled", True):
        return total
    cfg = ctx.loss_cfg
    if ctx.sched.emd_multiplier > 0 and cfg.emd_num_samples > 1:
        n = cfg.emd_num_samples
        inputs = sample_generator_inputs(n, ctx.G.z_dim, ctx.c_dim, ctx.prior, device=ctx.device)  # uniform classes
        prior = inputs.camera_prior  # [n, 8]
        post = ctx.G.camera_posterior(prior, inputs.z, inputs.c)
        weights = [0.0] * CAMERA_DIM  # per camera field; roll is excluded (0)
        weights[CAM_YAW] = weights[CAM_PITCH] = cfg.emd_weight_angles
        weights[CAM_FOV] = cfg.emd_weight_fov
        weights[CAM_RADIUS] = cfg.emd_weight_radius
        weights[CAM_LA_YAW] = weights[CAM_LA_PITCH] = weights[CAM_LA_RADIUS] = cfg.emd_weight_look_at
        emd = camera_emd_loss(post, prior, weights) * ctx.sched.emd_multiplier
        ctx.stats.report("Loss/G/emd", emd)
        total = total + emd
    if cfg.force_mean_weight > 0 and cfg.force_mean_num_samples > 0:
        n = cfg.force_mean_num_samples
        inputs = sample_generator_inputs(n, ctx.G.z_dim, ctx.c_dim, ctx.prior, device=ctx.device)  # uniform classes
        post = ctx.G.camera_posterior(inputs.camera_prior, inputs.z, inputs.c)
        target = ctx.prior.mean_angles(device=post.device)  # built once per device (issue 18 row 6)
        fm = force_mean_loss(post, target, weight=cfg.force_mean_weight)
        ctx.stats.report("Loss/G/force_mean", fm)
        total = total + fm
    return total


def g_loss(ctx: PhaseContext, n: int) -> torch.Tensor:
    """Gall: mean softplus(-D(G(z))) + camera regularizers (ref §5.1, §2.4)."""
    z, c, cameras, patch = sample_fake_inputs(ctx, n)
    img, out = run_G(ctx, z, c, cameras, patch)
    logits = run_D(ctx, img, c, patch)["logits"]  # [n]
    adv = L.g_adversarial_loss(logits).mean()
    ctx.stats.report("Loss/G/adv", adv)
    ctx.stats.report("Scores/fake", logits)
    report_camera(ctx.stats, out["camera"])
    return adv + camera_regularizers(ctx)


def real_patches(ctx: PhaseContext, reals: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Patches of the 4-channel reals with independent patch params (ref §1.7): ``[n, C, r, r]``, ``[n, 3]``."""
    images = reals["img"]  # [n, C, R, R]
    patch = sample_patch_params(images.shape[0], ctx.min_scale, ctx.sched.patch_beta, ctx.group_size,
                                device=ctx.device)
    return extract_patches(images, patch, ctx.patch_res), patch


def _stack_rows(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    """``cat([a, b])`` along dim 0; None when either is None (unconditional: no labels)."""
    return None if a is None or b is None else torch.cat([a, b.to(a.dtype)])


def d_main_loss(ctx: PhaseContext, reals: dict) -> torch.Tensor:
    """Dmain: softplus(D(fake)) + softplus(-D(real)) + lambda(t) KD (ref §5.1, §4.3).

    Fakes and reals go through D in one call of twice the batch (``parts=2``: each half keeps its own
    minibatch-stddev groups, the KD head runs on the reals only), which equals the official two calls to float
    rounding and halves D's per-call cost (RESULTS.md, "Training step against d25bb9d")."""
    n = reals["img"].shape[0]
    with torch.no_grad():
        z, c, cameras, patch = sample_fake_inputs(ctx, n)
        fake, _ = run_G(ctx, z, c, cameras, patch, update_emas=True)
    real, real_patch = real_patches(ctx, reals)
    both = torch.cat([fake, real.detach()])  # [2n, C, r, r] (cat promotes a mixed pair to the wider dtype)
    out = run_D(ctx, both, _stack_rows(c, reals["c"]), torch.cat([patch, real_patch]), predict_feat=True,
                parts=2, kd_rows=slice(n, None))
    fake_logits, real_logits = out["logits"][:n], out["logits"][n:]
    loss_fake = L.d_fake_loss(fake_logits).mean()
    loss_real = L.d_real_loss(real_logits)
    ctx.stats.report("Loss/D/fake", loss_fake)
    ctx.stats.report("Loss/D/real", loss_real.mean())
    ctx.stats.report("Scores/real", real_logits)
    total = loss_fake + loss_real.mean()
    kd_w = ctx.sched.kd_weight
    if out.get("kd_features") is not None and reals.get("embedding") is not None and kd_w > 0:
        kd = L.kd_loss(out["kd_features"], reals["embedding"], real_patch[:, 0])  # [n]
        ctx.stats.report("Loss/D/kd", kd.mean())
        total = total + kd_w * kd.mean()
    return total


def d_reg_loss(ctx: PhaseContext, reals: dict) -> torch.Tensor:
    """Dreg: lazy R1 = gain * mean (gamma / 2) ||grad_x D(x)||^2 w.r.t. the extracted real patch (ref §5.1)."""
    real, real_patch = real_patches(ctx, reals)
    real = real.detach().requires_grad_(True)  # the 4-channel patch, before the blur
    logits = run_D(ctx, real, reals["c"], real_patch)["logits"]
    with no_weight_gradients():  # the R1 gradient is w.r.t. the image only (ref §9 conv2d_gradfix)
        penalty = L.r1_penalty(logits, real)  # [n]
    loss_r1 = penalty * (ctx.gamma / 2)
    ctx.stats.report("Loss/D/r1", loss_r1.mean())
    ctx.stats.report("Loss/D/r1_penalty", penalty.mean())
    return loss_r1.mean() * ctx.r1_interval
