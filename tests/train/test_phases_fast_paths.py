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


def test_r1_with_winograd_convolutions_equals_the_direct_ones_within_float_tolerance(ctx, monkeypatch):
    """Issue 21 §1: the (iii) step's loss and every D gradient, Winograd F(4x4, 3x3) against oneDNN's direct
    convolutions (every 3x3 stride-1 convolution of this small D takes Winograd here, the size gate lowered)."""
    from stages.ops import _cpu_build, _impl, winograd

    if _cpu_build.get_library() is None:
        pytest.skip("no CPU kernels (no C compiler): the direct convolutions run either way")
    monkeypatch.setattr(winograd, "MIN_MACS", 0)
    monkeypatch.setattr(winograd, "MIN_SIZE", 1)
    reals = _reals(ctx)
    runs = []
    for mode in ("1", "0"):
        monkeypatch.setenv(winograd.ENABLE_ENV, mode)
        _impl.reset_report()
        runs.append(_r1_grads(ctx, reals))
        assert ("conv3x3" in _impl.impl_report()) == (mode == "1")
    (loss_w, fast), (loss_d, direct) = runs
    assert float(loss_d) > 0
    torch.testing.assert_close(loss_w, loss_d, rtol=1e-4, atol=0)
    for a, b in zip(fast, direct):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4 * float(b.abs().max()))


def test_kd_head_runs_only_for_the_reals_of_dmain(ctx):
    img = torch.zeros(4, 4, ctx.patch_res, ctx.patch_res)
    patch = torch.tensor([[1.0, 0.0, 0.0]]).repeat(4, 1)
    assert phases.run_D(ctx, img, None, patch)["kd_features"] is None  # fakes, R1
    assert phases.run_D(ctx, img, None, patch, predict_feat=True)["kd_features"].shape == (4, 8)
    ctx.stats = StatsCollector()
    torch.manual_seed(3)
    phases.d_main_loss(replace(ctx, sched=replace(ctx.sched, kd_weight=0.5)), _reals(ctx))
    assert "Loss/D/kd" in ctx.stats.reduce()  # the reals of Dmain still train the KD head


def _d_main_two_calls(ctx, reals):
    """Dmain as the official code runs it: D on the fakes, then D on the reals (ref §5.1)."""
    from stages.train import loss as L

    n = reals["img"].shape[0]
    with torch.no_grad():
        z, c, cameras, patch = phases.sample_fake_inputs(ctx, n)
        fake, _ = phases.run_G(ctx, z, c, cameras, patch, update_emas=True)
    loss_fake = L.d_fake_loss(phases.run_D(ctx, fake, c, patch)["logits"]).mean()
    real, real_patch = phases.real_patches(ctx, reals)
    out = phases.run_D(ctx, real, reals["c"], real_patch, predict_feat=True)
    kd = L.kd_loss(out["kd_features"], reals["embedding"], real_patch[:, 0]).mean()
    return loss_fake + L.d_real_loss(out["logits"]).mean() + ctx.sched.kd_weight * kd


def test_dmain_in_one_d_call_equals_the_two_calls(ctx):
    """Fakes and reals through D together (parts=2) give the official loss and D gradients to float rounding."""
    c2 = replace(ctx, sched=replace(ctx.sched, kd_weight=0.5))
    reals = _reals(ctx, n=8)
    results = []
    for fn in (phases.d_main_loss, _d_main_two_calls):
        ctx.D.requires_grad_(True)
        torch.manual_seed(7)
        loss = fn(c2, reals)
        grads = torch.autograd.grad(loss, list(ctx.D.parameters()), allow_unused=True)
        ctx.D.requires_grad_(False)
        results.append((loss.detach(), grads))
    (loss_one, g_one), (loss_two, g_two) = results
    torch.testing.assert_close(loss_one, loss_two, rtol=1e-5, atol=1e-6)
    assert sum(g is not None for g in g_one) > 10
    for a, b in zip(g_one, g_two):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_cpu_adam_is_fused_and_equals_the_plain_adam():
    """build_optimizers picks the fused Adam on CPU (no per-parameter .item()); its updates equal torch's plain
    per-parameter Adam to float rounding, with the lazy-R1 corrected D settings, and it survives a state round trip."""
    from stages.train.state import build_optimizers, fast_adam_on_cpu

    cfg = get_train_preset("tiny")
    torch.manual_seed(0)
    G, D, _ = build_networks(cfg, torch.device("cpu"))
    G2, D2, _ = build_networks(cfg, torch.device("cpu"))
    G2.load_state_dict(G.state_dict()), D2.load_state_dict(D.state_dict())
    fast = build_optimizers(cfg, G, D)
    assert all(g["fused"] and not g["foreach"] for o in fast for g in o.param_groups)
    plain = [torch.optim.Adam(m.parameters(), foreach=False, **{k: o.param_groups[0][k] for k in ("lr", "betas",
                                                                                                   "eps")})
             for m, o in ((G2, fast.G), (D2, fast.D))]
    start = [p.detach().clone() for p in G.parameters()]
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        for a, b in ((G, G2), (D, D2)):
            for p, q in zip(a.parameters(), b.parameters()):
                p.grad = torch.randn(p.shape, generator=gen)
                q.grad = p.grad.clone()
        for o in (*fast, *plain):
            o.step()
    for a, b in ((G, G2), (D, D2)):
        worst = max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))
        assert 0 <= worst < 1e-5
    assert max((p - q).abs().max().item() for p, q in zip(G.parameters(), start)) > 1e-4  # the steps did something
    reloaded = torch.optim.Adam(G.parameters(), lr=1.0)
    fast_adam_on_cpu(reloaded).load_state_dict(fast.G.state_dict())
    assert fast_adam_on_cpu(reloaded).param_groups[0]["fused"]


def test_run_phase_switches_exactly_the_modules_parameters_and_ema_with_cached_lists():
    """run_phase toggles requires_grad through the optimizer's list: it must hold every parameter of its module,
    and nothing else; the EMA with ema_tensors' cached lists equals the one that walks the modules."""
    from stages.train.state import build_optimizers, ema_tensors, ema_update_
    from stages.train.step import StepPlan, run_phase
    from stages.train.divergence import StepHealth

    cfg = get_train_preset("tiny")
    torch.manual_seed(0)
    G, D, G_ema = build_networks(cfg, torch.device("cpu"))
    opts = build_optimizers(cfg, G, D)
    for module, opt in ((G, opts.G), (D, opts.D)):
        listed = [p for g in opt.param_groups for p in g["params"]]
        assert [id(p) for p in listed] == [id(p) for p in module.parameters()]
    seen = {}

    def loss_fn(k):
        seen["G"] = all(p.requires_grad for p in G.parameters())
        seen["D"] = any(p.requires_grad for p in D.parameters())
        return sum(p.float().square().sum() for p in list(G.parameters())[:3])

    G.requires_grad_(False), D.requires_grad_(False)
    plan = StepPlan(batch=8, batch_gpu=8, rounds=1, rank=0, world_size=1)
    run_phase("Gall", loss_fn, opts.G, plan, 0, 0, 0, StepHealth(torch.device("cpu")))
    assert seen == {"G": True, "D": False}
    assert not any(p.requires_grad for p in G.parameters())

    cached = ema_tensors(G_ema, G)
    twin = build_networks(cfg, torch.device("cpu"))[2]
    twin.load_state_dict(G_ema.state_dict())
    ema_update_(G_ema, G, 0.9, cached)
    ema_update_(twin, G, 0.9)
    for a, b in zip(G_ema.state_dict().values(), twin.state_dict().values()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(G_ema.parameters(), G.parameters()))
