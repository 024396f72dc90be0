"""Networks, optimizers, EMA and the resumable training state (3DGP ref §5.3, §5.4, §10).

:class:`Counters` is everything besides tensors that a resumed run needs to continue bit-identically; it travels in
the training-state file next to the state_dicts (``stages.common.checkpoint``).
"""
from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from stages.common import checkpoint as ckpt
from stages.common.seeding import capture_rng_state
from stages.nn.checkpoints import load_checkpoint
from stages.train.config import TrainConfig, to_dict
from stages.train.loss import lazy_reg_adam_params

logger = logging.getLogger(__name__)


@dataclass
class Counters:
    """Progress counters of a run (all ints/floats/str: checkpoint-safe)."""

    cur_nimg: int = 0  # real images shown to D so far
    cur_tick: int = 0  # ticks completed
    batch_idx: int = 0  # iterations so far (lazy-R1 phase: batch_idx % r1_interval == 0)
    seed_stream: int = 0  # changes after every divergence rollback
    rollbacks: int = 0  # divergence rollbacks so far
    best: dict = field(default_factory=dict)  # {"metric", "value", "kimg", "snapshot"} of the best metric so far

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Counters":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class Networks(NamedTuple):
    """The three networks of a run (a tuple, so ``G, D, G_ema = nets`` works too)."""

    G: torch.nn.Module  # generator being trained
    D: torch.nn.Module  # discriminator
    G_ema: torch.nn.Module  # exponential moving average of G: what snapshots, metrics and images use


class Optimizers(NamedTuple):
    """Adam of G and of D."""

    G: torch.optim.Optimizer
    D: torch.optim.Optimizer


def camera_prior_for(model_cfg):
    """The ``CameraPrior`` described by ``ModelConfig.camera`` (3DGP ref §2.2)."""
    from stages.nn.build import build_camera_prior

    return build_camera_prior(model_cfg)


def build_networks(cfg: TrainConfig, device: torch.device, training: bool = False) -> Networks:
    """G, D (train mode) and G_ema (eval mode, no grad) on ``device`` from ``cfg.model`` (via ``stages.nn.build``).

    With ``training``, G's training passes run at ``run.precision`` (G_ema, for metrics and images, stays fp32) and
    the depth-adaptor ablation's fixed P(adapted depth) is set (``loss.depth_adaptor_p``)."""
    from stages.nn.build import build

    G, D = build(cfg.model)
    G = G.to(device).train().requires_grad_(False)
    D = D.to(device).train().requires_grad_(False)
    G_ema = copy.deepcopy(G).eval()
    if training:
        G.set_precision(cfg.run.precision)
        adaptor = getattr(G, "depth_adaptor", None)
        if adaptor is not None and cfg.loss.depth_adaptor_p is not None:
            from stages.nn.depth_adaptor import adapted_depth_probs

            adaptor.fixed_p = adapted_depth_probs(cfg.loss.depth_adaptor_p, adaptor.num_outputs)
    return Networks(G, D, G_ema)


def build_optimizers(cfg: TrainConfig, G, D) -> Optimizers:
    """Adam for G (lr 0.0025, betas (0, 0.99)) and D with the lazy-regularisation correction (ref §5.3)."""
    o = cfg.optim
    opt_G = torch.optim.Adam(G.parameters(), lr=o.g_lr, betas=(o.g_beta1, o.g_beta2), eps=o.eps)
    d_lr, d_betas = lazy_reg_adam_params(o.d_lr, (o.d_beta1, o.d_beta2), cfg.loss.r1_interval)
    opt_D = torch.optim.Adam(D.parameters(), lr=d_lr, betas=d_betas, eps=o.eps)
    return Optimizers(fast_adam_on_cpu(opt_G), fast_adam_on_cpu(opt_D))


def fast_adam_on_cpu(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """On CPU, the fused Adam (one kernel per parameter, the step counters read without a host round trip each):
    the same update as the default per-parameter loop to float rounding, and cheaper than the multi-tensor
    ("foreach") form, which reads every parameter's step counter with ``.item()`` (RESULTS.md, "Training step
    against d25bb9d"). On CUDA torch's own choice (foreach) stays. A runtime choice, re-applied after
    ``load_state_dict`` (which restores the saved groups' flags); the state dict is the same for every form, so
    resumes cross freely."""
    on_cpu = all(p.device.type == "cpu" for group in opt.param_groups for p in group["params"])
    if on_cpu:
        for group in opt.param_groups:
            group["foreach"], group["fused"] = False, True
    return opt


def ema_tensors(G_ema, G) -> tuple[list, list, list, list]:
    """(G_ema's parameters, G's, G_ema's buffers, G's), listed once for :func:`ema_update_` (walking both module
    trees every iteration costs ~3 ms on the small presets). Valid while both keep their tensors (loads copy in
    place; every buffer update in ``stages.nn`` is in place)."""
    return list(G_ema.parameters()), list(G.parameters()), list(G_ema.buffers()), list(G.buffers())


@torch.no_grad()
def ema_update_(G_ema, G, beta: float, tensors: tuple[list, list, list, list] | None = None) -> None:
    """G_ema <- lerp(G, G_ema, beta) for parameters; buffers are copied (w_avg, depth progress, ...) (ref §5.4).

    ``tensors``: :func:`ema_tensors` of the pair, when the caller keeps it (the training loop)."""
    ema, live, ema_buffers, live_buffers = tensors if tensors is not None else ema_tensors(G_ema, G)
    torch._foreach_copy_(ema, torch._foreach_lerp(live, ema, beta))  # per tensor: p.lerp(p_ema, beta), 2 calls
    if ema_buffers:  # no_grad: no detach needed
        torch._foreach_copy_(ema_buffers, live_buffers)


def save_state(run_dir: Path, cfg: TrainConfig, nets: Networks, opts: Optimizers, counters: Counters) -> Path:
    """Write ``training-state-<kimg>.pt`` for the current counters (rank 0 only)."""
    G, D, G_ema = nets
    path = ckpt.state_path(run_dir, counters.cur_nimg)
    ckpt.save_training_state(
        path, G=G, D=D, G_ema=G_ema, opt_G=opts.G, opt_D=opts.D, counters=counters.to_dict(),
        rng=capture_rng_state(), sampler={"position": counters.cur_nimg, "seed": cfg.run.seed},
        best=counters.best, config=to_dict(cfg),
    )
    ckpt.prune_training_states(run_dir, cfg.run.keep_states)
    return path


def save_snapshot(run_dir: Path, cfg: TrainConfig, G_ema, counters: Counters, extra: dict | None = None) -> Path:
    """Write ``snapshot-<kimg>.pt`` (G_ema + model config), what eval and export read."""
    from stages.nn.config import to_dict as model_to_dict

    path = ckpt.snapshot_path(run_dir, counters.cur_nimg)
    return ckpt.save_snapshot(path, G_ema=G_ema, model_config=model_to_dict(cfg.model), config=to_dict(cfg),
                              cur_nimg=counters.cur_nimg, extra=extra)


def load_state(path: Path, nets: Networks, opts: Optimizers, device: torch.device,
               state: dict | None = None) -> Counters:
    """Load a training state into existing networks/optimizers on ``device`` (strict); returns its counters.
    ``state``: the file's contents when the caller already read them (a resume reads the file once).

    The file is read to the CPU whatever ``device`` is, and each part is placed by its owner (issue 18 row 5):
    ``load_state_dict`` copies into the modules' own tensors on ``device``, and ``Optimizer.load_state_dict`` casts
    Adam's moments to their parameter's device but keeps the ``step`` counters as they come. Read with
    ``map_location=cuda``, those counters stayed on the GPU, and the foreach Adam then synchronised with the host
    once per parameter at every step after a resume or a rollback; read to the CPU they stay on the CPU, where
    torch keeps them (the fused or capturable Adam moves them to the device itself).

    Anything that does not fit (missing or extra tensors, other shapes, another optimizer layout) is one
    ``CheckpointError`` line."""
    if state is None:
        state = load_checkpoint(path, kind="training-state", map_location="cpu")
    G, D, G_ema = nets
    for name, module in (("G", G), ("D", D), ("G_ema", G_ema)):
        ckpt.load_module_state(module, state[name], path, name)
    for name, opt in (("opt_G", opts.G), ("opt_D", opts.D)):
        try:
            fast_adam_on_cpu(opt).load_state_dict(state[name])
            fast_adam_on_cpu(opt)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:160]
            raise ckpt.CheckpointError(path, f"{name} does not match the configured optimizer ({first})") from None
    try:
        counters = Counters.from_dict(state["counters"])
        counters.best = dict(state.get("best") or {})
    except (TypeError, ValueError, AttributeError):
        counters = None
    if counters is None or not isinstance(counters.cur_nimg, int) or counters.cur_nimg < 0:
        raise ckpt.CheckpointError(path, "damaged counters record")
    return counters
