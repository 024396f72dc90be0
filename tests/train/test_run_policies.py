"""The official run policies (issue 12 §3; 3DGP ref §5.3, §5.4): non-finite gradients replaced and counted, blow-up
rules, device-side statistics synced once per tick, EMA half-life scaled with the batch, the paper's global batch."""
from __future__ import annotations

import math

import pytest
import torch

from stages.common.stats import StatsCollector
from stages.train.divergence import StepHealth, nonfinite_loss_reason, tick_loss_blowup
from stages.train.loss import sanitize_grads_
from stages.train.overrides import Override
from stages.train.resume import resolve_new_config
from stages.train.schedules import ema_beta, ema_half_life_kimg
from stages.train.step import plan_batch


def test_gradients_are_sanitised_and_counted_on_the_device():
    a = torch.nn.Parameter(torch.zeros(4))
    b = torch.nn.Parameter(torch.zeros(2))
    a.grad = torch.tensor([1.0, float("nan"), float("inf"), -float("inf")])
    b.grad = torch.tensor([float("nan"), 2.0])
    count = sanitize_grads_([a, b])
    assert isinstance(count, torch.Tensor) and int(count) == 4
    assert a.grad.tolist() == [1.0, 0.0, 1e5, -1e5] and b.grad.tolist() == [0.0, 2.0]


def test_step_health_counts_per_phase_and_the_longest_streak():
    h = StepHealth()
    finite, nan = torch.tensor(1.0), torch.tensor(float("nan"))
    for losses in ([finite], [nan], [finite, nan], [nan], [finite]):  # iterations 2-4 have a non-finite loss
        for loss in losses:
            h.check_loss(loss)
        h.end_step()
    h.add_grads("Dmain", torch.tensor(3))
    h.add_grads("Dmain", torch.tensor(2))
    s = h.summary()
    assert s["Health/nonfinite_loss_steps"] == 3 and s["max_streak"] == 3 and s["streak"] == 0
    assert (s["Health/nonfinite_grads/Gall"], s["Health/nonfinite_grads/Dmain"], s["Health/nonfinite_grads/Dreg"]) \
        == (0, 5, 0)
    # A streak continues across a tick boundary.
    h2 = StepHealth()
    h2.check_loss(nan)
    h2.end_step()
    h3 = StepHealth()
    h3.carry_streak_from(h2)
    h3.check_loss(nan)
    h3.end_step()
    assert h3.summary()["max_streak"] == 2
    assert nonfinite_loss_reason(2, 2, 1.0) is not None and nonfinite_loss_reason(1, 2, 1.0) is None
    assert nonfinite_loss_reason(100, 0, 1.0) is None  # 0 = off


def test_r1_penalty_never_triggers_the_loss_blowup():
    assert tick_loss_blowup({"Loss/D/r1_penalty": 5e4, "Loss/G/adv": 0.7}, 100.0) is None
    assert "Loss/D/r1 " in tick_loss_blowup({"Loss/D/r1": 5e4}, 100.0) + " "
    assert "Loss/G/adv is nan" in tick_loss_blowup({"Loss/G/adv": math.nan}, 100.0)
    assert tick_loss_blowup({"Loss/D/r1_penalty": math.nan}, 100.0) is None


def test_stats_are_summed_on_the_device_without_a_host_sync(monkeypatch):
    stats = StatsCollector()
    values = [torch.tensor([1.0, 3.0]), torch.tensor(float("inf")), torch.tensor(4.0)]

    def no_sync(*args, **kwargs):
        raise AssertionError("report() synced with the host")

    with monkeypatch.context() as m:
        for name in ("cpu", "item", "tolist", "__float__"):
            m.setattr(torch.Tensor, name, no_sync)
        for v in values:
            stats.report("Loss/G/adv", v)
        stats.report("Loss/D/real", torch.tensor(float("nan")))
        stats.report("Schedule/x", 2.0)
    out = stats.reduce()
    assert out["Loss/G/adv"] == 3.0  # mean of 2 and 4: the non-finite observation is left out
    assert math.isnan(out["Loss/D/real"]) and out["Schedule/x"] == 2.0
    assert stats.reduce() == {}


def test_ema_half_life_scales_with_the_batch_as_the_official_config():
    assert ema_half_life_kimg(None, 64) == 20.0 and ema_half_life_kimg(None, 8) == 2.5
    assert ema_half_life_kimg(None, 256) == 80.0 and ema_half_life_kimg(7.0, 256) == 7.0
    # Past the ramp-up one step decays by 0.5 ** (B / (B * 10/32 * 1000)) = 0.5 ** (1/312.5) whatever the batch B:
    # the half-life is 312.5 iterations, as in the official config; a fixed ema_kimg would not scale.
    assert ema_beta(10**9, 64) == pytest.approx(0.5 ** (64 / 20000))
    assert ema_beta(10**9, 128) == pytest.approx(ema_beta(10**9, 64)) == pytest.approx(0.5 ** (1 / 312.5))
    assert ema_beta(10**9, 128, ema_kimg=20.0) == pytest.approx(ema_beta(10**9, 64, ema_kimg=20.0) ** 2)


@pytest.mark.parametrize("preset", ["dogs", "imagenet"])
def test_eight_gpus_with_a_paper_preset_keep_the_paper_global_batch(preset):
    cfg = resolve_new_config(preset, [Override("--data", "data.path", "/data/x"), Override("--gpus", "run.gpus", 8)],
                             fit=False)
    assert cfg.run.batch == 64 and cfg.run.gpus == 8
    plan = plan_batch(cfg.run.batch, cfg.run.batch_gpu, 8, 3, cfg.model.discriminator.mbstd_group_size)
    assert (plan.batch, plan.batch_gpu, plan.rounds) == (64, 8, 1)
    assert ema_half_life_kimg(cfg.ema.ema_kimg, cfg.run.batch) == 20.0


def test_bf16_generator_runs_finite_and_close_to_fp32():
    # Issue 12 §4: bf16 autocast covers the tri-plane backbone and MLP only; rendering stays fp32.
    from stages.nn import config as model_config
    from stages.nn.build import build

    torch.manual_seed(0)
    G, _ = build(model_config.MODEL_PRESETS["tiny"])
    G.eval()
    z = torch.randn(4, G.z_dim)
    cams = torch.tensor([[0.1, 1.5, 0.0, 25.0, 1.0, 0.0, 1.5, 0.05]]).repeat(4, 1)

    def render():
        out = G(z, None, cams, noise_mode="const", generator=torch.Generator().manual_seed(1))
        return out["img"], out["depth"]

    img32, depth32 = render()
    G.set_precision("bf16")
    assert G.compute_dtype == torch.bfloat16
    planes = G.triplanes(G.mapping(z, None), noise_mode="const")
    assert planes.dtype == torch.float32  # cast back before the renderer
    img16, depth16 = render()
    assert img16.dtype == depth16.dtype == torch.float32
    assert torch.isfinite(img16).all() and torch.isfinite(depth16).all()
    assert not torch.equal(img16, img32)  # bf16 really ran
    assert (img16 - img32).abs().mean() < 0.02 * img32.abs().mean() + 1e-3
    assert (depth16 - depth32).abs().max() < 0.02
    G.set_precision("fp32")
    assert torch.equal(render()[0], img32)
    with pytest.raises(ValueError, match="precision"):
        G.set_precision("fp16")


def test_precision_and_minutes_in_a_short_run(toy_dataset, tmp_path):
    import time

    from stages.common.stats import read_jsonl
    from stages.train import run_loop
    from train_helpers import tiny_cfg

    cfg = tiny_cfg(toy_dataset, 1000.0, "run.precision=bf16", "run.minutes=0.05")  # 3 s of a 1000-kimg run
    t0 = time.time()
    res = run_loop(cfg, tmp_path)
    assert time.time() - t0 < 60 and 0 < res.cur_nimg < 1_000_000 and res.rollbacks == 0
    from stages.common import checkpoint as ckpt

    assert ckpt.load_checkpoint(res.last_snapshot, kind="snapshot")["config"]["run"]["precision"] == "bf16"
    stats = read_jsonl(tmp_path / "stats.jsonl")
    assert all(isinstance(r["Loss/G/adv"], float) and math.isfinite(r["Loss/G/adv"]) for r in stats)
    assert res.last_snapshot.endswith(f"{res.cur_nimg / 1000:010.3f}.pt")  # final snapshot at the stop point
    assert "--minutes 0.05 reached" in (tmp_path / "log.txt").read_text()


def test_min_kimg_outlasts_the_minutes_budget(toy_dataset, tmp_path):
    """--minutes with --min-kimg: a budget spent before min_kimg does not stop the run (a busy machine trains longer,
    not less; issue 21 §3), and it stops at the first tick past min_kimg."""
    from stages.common.stats import read_jsonl
    from stages.train import launch
    from train_helpers import tiny_cfg

    cfg = tiny_cfg(toy_dataset, 0.032, "run.minutes=1e-6", "run.min_kimg=0.016")
    result = launch(cfg, tmp_path, None)
    assert result.cur_nimg == 16  # not 8 (the budget alone) and not 32 (the length)
    assert [r["kimg"] for r in read_jsonl(tmp_path / "stats.jsonl")] == [0.008, 0.016]
