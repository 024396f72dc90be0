"""Phases use the fast paths without changing results: R1 with no_weight_gradients, the KD head only on the
reals of Dmain (3DGP ref §5.1, §4.3, §9)."""
from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
import torch

import stages.nn.config as mc
from stages.common.stats import StatsCollector
from stages.train import phases
from stages.train.config import get_train_preset
from stages.train.schedules import r1_gamma, schedule_state
from stages.train.state import build_networks, camera_prior_for


@pytest.fixture(scope="module")
def ctx():
    torch.set_num_threads(1)
    cfg = get_train_preset("tiny")
    cfg = replace(cfg, model=mc.with_overrides(cfg.model, c_dim=0, discriminator={"kd_dim": 8}))
    torch.manual_seed(0)
    G, D, _ = build_networks(cfg, torch.device("cpu"))
    m = cfg.model
    return phases.PhaseContext(
        G=G, D=D, sched=schedule_state(1000.0, cfg.loss), device=torch.device("cpu"), prior=camera_prior_for(m),
        c_dim=0, label_probs=None, patch_res=m.patch_resolution, min_scale=m.min_patch_scale,
        group_size=m.discriminator.mbstd_group_size, has_depth=m.img_channels == 4,
        gamma=r1_gamma(cfg.loss.gamma, m.img_resolution, 8), r1_interval=cfg.loss.r1_interval, loss_cfg=cfg.loss,
        stats=StatsCollector())


def _reals(ctx, n=4):
    g = torch.Generator().manual_seed(1)
    res = ctx.G.img_resolution
    return {"img": torch.rand(n, 4, res, res, generator=g) * 2 - 1, "c": None,
            "embedding": torch.randn(n, 8, generator=g)}


def _r1_grads(ctx, reals):
    ctx.D.requires_grad_(True)
    torch.manual_seed(5)
    loss = phases.d_reg_loss(ctx, reals)
    grads = torch.autograd.grad(loss, [p for p in ctx.D.parameters()], allow_unused=True)
    ctx.D.requires_grad_(False)
    return loss.detach(), grads


def test_r1_gradients_are_the_same_with_and_without_no_weight_gradients(ctx, monkeypatch):
    reals = _reals(ctx)
    loss_fast, fast = _r1_grads(ctx, reals)
    monkeypatch.setattr(phases, "no_weight_gradients", contextlib.nullcontext)
    loss_plain, plain = _r1_grads(ctx, reals)
    torch.testing.assert_close(loss_fast, loss_plain, rtol=0, atol=0)
    assert sum(g is not None for g in fast) > 10
    for a, b in zip(fast, plain):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_kd_head_runs_only_for_the_reals_of_dmain(ctx):
    img = torch.zeros(4, 4, ctx.patch_res, ctx.patch_res)
    patch = torch.tensor([[1.0, 0.0, 0.0]]).repeat(4, 1)
    assert phases.run_D(ctx, img, None, patch)["kd_features"] is None  # fakes, R1
    assert phases.run_D(ctx, img, None, patch, predict_feat=True)["kd_features"].shape == (4, 8)
    ctx.stats = StatsCollector()
    torch.manual_seed(3)
    phases.d_main_loss(replace(ctx, sched=replace(ctx.sched, kd_weight=0.5)), _reals(ctx))
    assert "Loss/D/kd" in ctx.stats.reduce()  # the reals of Dmain still train the KD head
