"""Training schedules as functions of kimg (thousands of real images shown to D), never of steps (3DGP ref §5.5).

Every quantity that anneals during training is one small function here, so the loop, the benchmark and the tests
agree on the values. ``lin(t; a -> b over P)`` is the clamped linear ramp of ref §0 (equals ``a`` at t <= 0 and ``b``
at t >= P). :func:`schedule_state` bundles them for one kimg value.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


def lin(t: float, start: float, end: float, period: float) -> float:
    """Clamped linear ramp from ``start`` (t <= 0) to ``end`` (t >= ``period``) (3DGP ref §0, training_utils lin)."""
    if period <= 0:
        return float(end)
    frac = min(max(t / period, 0.0), 1.0)
    return float(start + (end - start) * frac)


def blur_sigma(kimg: float, init_sigma: float = 10.0, fade_kimg: float = 200.0) -> float:
    """Blur warm-up sigma of D inputs: 10 -> 0 over 200 kimg (3DGP ref §5.2)."""
    if fade_kimg <= 0:
        return 0.0
    return float(init_sigma * max(1.0 - kimg / fade_kimg, 0.0))


def nerf_noise_std(kimg: float, init_std: float = 1.0, growth_kimg: float = 5000.0) -> float:
    """Density-noise std added to raw sigma: 1 -> 0 over 5000 kimg (3DGP ref §1.6 step 2)."""
    return lin(kimg, init_std, 0.0, growth_kimg)


def patch_beta(kimg: float, start: float = 0.001, end: float = 0.8, period_kimg: float = 10000.0) -> float:
    """Beta(1, beta) parameter of the patch-scale sampler: 0.001 -> 0.8 over 10000 kimg (3DGP ref §1.7)."""
    return lin(kimg, start, end, period_kimg)


def depth_progress(kimg: float, anneal_kimg: float = 10000.0) -> float:
    """Depth-adaptor annealing progress pi(t): 0 -> 1 over 10000 kimg (3DGP ref §3.2)."""
    return lin(kimg, 0.0, 1.0, anneal_kimg)


def depth_start_p(progress: float, num_outputs: int = 4, final_start_p: float = 0.1) -> float:
    """P(raw depth to D) = (1/N)(1 - pi) + 0.1 pi: 0.25 -> 0.10 (3DGP ref §3.2)."""
    return float((1.0 / num_outputs) * (1.0 - progress) + final_start_p * progress)


def emd_multiplier(kimg: float, anneal_kimg: float = 10000.0) -> float:
    """Camera EMD multiplier m(t): 0 -> 1 over 10000 kimg (3DGP ref §2.4a)."""
    return lin(kimg, 0.0, 1.0, anneal_kimg)


def kd_weight(kimg: float, weight: float = 1.0, anneal_kimg: float = 100000.0) -> float:
    """Knowledge-distillation weight lambda(t): w -> 0 over 100000 kimg (3DGP ref §4.3)."""
    return lin(kimg, weight, 0.0, anneal_kimg)


def ema_half_life_kimg(ema_kimg: float | None, batch: int) -> float:
    """The G EMA half-life in kimg: ``ema_kimg``, or None = the official ``batch * 10 / 32`` (ref §5.4)."""
    return batch * 10.0 / 32.0 if ema_kimg is None else float(ema_kimg)


def ema_beta(cur_nimg: int, batch: int, ema_kimg: float | None = None, rampup: float | None = 0.05) -> float:
    """G EMA decay per step: half-life min(ema_kimg, rampup * t) kimg, beta = 0.5 ** (batch / ema_nimg) (ref §5.4);
    ``ema_kimg`` None scales the half-life with the batch like the official config."""
    ema_nimg = ema_half_life_kimg(ema_kimg, batch) * 1000.0
    if rampup is not None and rampup > 0:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return float(0.5 ** (batch / max(ema_nimg, 1e-8)))


def r1_gamma(gamma: float | None, resolution: int, batch: int) -> float:
    """R1 weight; ``None`` means the official 'auto' rule 0.0002 * res^2 / batch (3DGP ref §5.1)."""
    if gamma is not None:
        return float(gamma)
    return 0.0002 * resolution**2 / batch


@dataclass(frozen=True)
class ScheduleState:
    """Every annealed quantity at one point of training (3DGP ref §5.5)."""

    kimg: float  # training progress in thousands of images
    blur_sigma: float  # D-input blur sigma (px at dataset resolution)
    nerf_noise_std: float  # density noise std (pre-softplus)
    patch_beta: float  # Beta(1, beta) for patch scales
    depth_progress: float  # depth-adaptor progress buffer value
    depth_start_p: float  # P(raw depth to D) implied by the progress
    emd_multiplier: float  # camera EMD multiplier
    kd_weight: float  # KD loss weight

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def schedule_state(kimg: float, loss_cfg) -> ScheduleState:
    """Evaluate every schedule of ref §5.5 at ``kimg`` from the fields of a :class:`LossConfig`.

    With a fixed ``loss_cfg.depth_adaptor_p`` (the ablation's P(adapted depth), applied by the trainer through
    :func:`stages.nn.depth_adaptor.adapted_depth_probs`), P(raw depth) is 1 - P at every kimg.
    """
    progress = depth_progress(kimg, loss_cfg.depth_anneal_kimg)
    raw_p = depth_start_p(progress) if loss_cfg.depth_adaptor_p is None else 1.0 - loss_cfg.depth_adaptor_p
    return ScheduleState(
        kimg=float(kimg),
        blur_sigma=blur_sigma(kimg, loss_cfg.blur_init_sigma, loss_cfg.blur_fade_kimg),
        nerf_noise_std=nerf_noise_std(kimg, loss_cfg.nerf_noise_std_init, loss_cfg.nerf_noise_kimg),
        patch_beta=patch_beta(kimg, loss_cfg.patch_beta_start, loss_cfg.patch_beta_end, loss_cfg.patch_beta_kimg),
        depth_progress=progress,
        depth_start_p=raw_p,
        emd_multiplier=emd_multiplier(kimg, loss_cfg.emd_anneal_kimg),
        kd_weight=kd_weight(kimg, loss_cfg.kd_weight, loss_cfg.kd_anneal_kimg),
    )


def crossed(prev_nimg: int, cur_nimg: int, interval_kimg: float) -> bool:
    """Whether a multiple of ``interval_kimg`` lies in (prev_nimg, cur_nimg] (0 = never): the tick-end intervals."""
    if interval_kimg <= 0:
        return False
    step = max(int(round(interval_kimg * 1000)), 1)
    return cur_nimg // step > prev_nimg // step
