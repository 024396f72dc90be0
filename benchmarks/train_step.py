"""Training-step cost of 3dgp (issue 5 acceptance 4; 3DGP ref §15).

1. The SMALL configuration exactly per ref §15: dogs defaults with G/D cbase 4096, cmax 128, tri-plane 128 x 16,
   patch 32, dataset 128 (2 extra D start blocks, min scale 0.25), 16 + 16 ray samples, tensor batch 8, total batch
   64 for gamma (0.0512) and EMA, 2 threads, fp32, schedule state at kimg 1000 (blur 0, density noise 0.8, patch
   Beta(1, 0.0809), EMD 0.1, KD 0.99, depth start_p 0.235). Timings, median/min/max of 5 after 2 warm-ups:
   (i) G forward without grad; (ii) G forward + D forward + backward of the non-saturating G loss (G requires grad,
   D does not); (iii) D forward + backward on real 4-channel patches with R1 (create_graph) -- the Dreg phase.
   Targets: (ii) < 0.5 s, (iii) < 0.18 s (official: ~1.0 s and ~0.36 s on a 2-core CPU).
2. sec/kimg of the ``tiny`` training preset on CPU (full iterations: Gall + Dmain + lazy Dreg + EMA, on an
   in-memory random dataset; Dreg amortised over its 16-iteration interval).
3. On a CUDA machine: sec/kimg of the ``imagenet`` preset with the reference ops and with the CUDA ops side by side.

Usage: python benchmarks/train_step.py [--skip-tiny] [--threads 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import contextmanager

import torch


def timed(fn, warmup: int = 2, runs: int = 5) -> dict[str, float]:
    """median/min/max seconds of ``fn()`` over ``runs`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def _context(cfg, device, batch_total: int):
    from stages.common.stats import StatsCollector
    from stages.train.phases import PhaseContext
    from stages.train.schedules import r1_gamma, schedule_state
    from stages.train.state import build_networks, camera_prior_for

    torch.manual_seed(0)
    G, D, _ = build_networks(cfg, device)
    sched = schedule_state(1000.0, cfg.loss)
    if G.depth_adaptor is not None:
        G.depth_adaptor.set_progress(sched.depth_progress)
    m = cfg.model
    return PhaseContext(G=G, D=D, sched=sched, device=device, prior=camera_prior_for(m), c_dim=m.c_dim,
                        label_probs=None, patch_res=m.patch_resolution, min_scale=m.min_patch_scale,
                        group_size=m.discriminator.mbstd_group_size, has_depth=m.img_channels == 4,
                        gamma=r1_gamma(cfg.loss.gamma, m.img_resolution, batch_total),
                        r1_interval=cfg.loss.r1_interval, loss_cfg=cfg.loss, stats=StatsCollector())


def small_step_timings(batch: int = 8, device: str = "cpu") -> dict:
    """The three §15 timings of the SMALL configuration."""
    from dataclasses import replace

    import stages.nn.config as mc
    from stages.train import phases
    from stages.train.config import TrainConfig
    from stages.train.loss import g_adversarial_loss

    cfg = TrainConfig(model=mc.MODEL_PRESETS["small"])
    cfg = replace(cfg, model=mc.with_overrides(cfg.model, discriminator={"kd_dim": 2048}))
    dev = torch.device(device)
    ctx = _context(cfg, dev, batch_total=64)
    G, D = ctx.G, ctx.D
    n_g = sum(p.numel() for p in G.parameters())
    n_d = sum(p.numel() for p in D.parameters())

    def inputs():
        return phases.sample_fake_inputs(ctx, batch)

    def g_forward():
        with torch.no_grad():
            phases.run_G(ctx, *inputs())

    def g_step():
        G.requires_grad_(True)
        z, c, cams, patch = inputs()
        img, _ = phases.run_G(ctx, z, c, cams, patch)
        g_adversarial_loss(phases.run_D(ctx, img, c, patch)["logits"]).mean().backward()
        G.requires_grad_(False)
        G.zero_grad(set_to_none=True)

    reals = {"img": torch.rand(batch, 4, 128, 128, device=dev) * 2 - 1, "c": None, "embedding": None}

    def d_r1_step():
        D.requires_grad_(True)
        phases.d_reg_loss(ctx, reals).backward()
        D.requires_grad_(False)
        D.zero_grad(set_to_none=True)

    return {"config": "SMALL (ref §15)", "batch": batch, "threads": torch.get_num_threads(), "device": device,
            "G_params": n_g, "D_params": n_d, "gamma": ctx.gamma,
            "(i) G forward, no grad": timed(g_forward), "(ii) G fwd + D fwd + G-loss backward": timed(g_step),
            "(iii) D fwd + bwd on reals with R1": timed(d_r1_step)}


class RandomDataset:
    """In-memory stand-in with the LmdbDataset item dict (uint8 image, depth in [-1, 1), embedding, label)."""

    def __init__(self, num: int, res: int, emb_dim: int):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (num, 3, res, res), generator=g, dtype=torch.uint8)
        self.depth = torch.rand(num, 1, res, res, generator=g) * 2 - 1
        self.emb = torch.randn(num, emb_dim, generator=g)
        self.num_items, self.resolution, self.embedding_dim, self.has_depth = num, res, emb_dim, True
        self.label_probs = None

    def __len__(self):
        return self.num_items

    def __getitem__(self, i):
        return {"image": self.images[i], "depth": self.depth[i], "embedding": self.emb[i], "label": -1, "index": i,
                "mirrored": False}


def sec_per_kimg(preset: str, device: str, iterations: int = 17, batch: int | None = None) -> dict:
    """Seconds per kimg of full training iterations of a preset on random data (one Dreg per 16 iterations)."""
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    import stages.nn.config as mc
    from stages.common.distributed import DistInfo
    from stages.train.config import get_train_preset, replace_section
    from stages.train.divergence import StepHealth
    from stages.train.loop import Trainer

    cfg = get_train_preset(preset)
    cfg = replace_section(cfg, "run", metrics=(), **({"batch": batch} if batch else {}))
    cfg = replace(cfg, model=mc.with_overrides(cfg.model, c_dim=0, discriminator={"kd_dim": 64}))
    data = RandomDataset(64, cfg.model.img_resolution, 64)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp), DistInfo(0, 1, 0, device), data, None)
        health = StepHealth(trainer.device)
        trainer._iteration(health)  # warm-up (includes the first Dreg)
        t0 = time.perf_counter()
        for _ in range(iterations - 1):
            trainer._iteration(health)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        per_iter = (time.perf_counter() - t0) / (iterations - 1)
    return {"preset": preset, "device": device, "batch": cfg.run.batch, "sec_per_iter": per_iter,
            "sec_per_kimg": per_iter * 1000 / cfg.run.batch}


@contextmanager
def forced_ref_ops():
    """Make every op take the reference path (for the ref-vs-CUDA comparison)."""
    import stages.ops._impl as impl

    original = impl.choose
    impl.choose = lambda op, which, x, cuda_ok=True: original(op, "ref", x, cuda_ok)
    try:
        yield
    finally:
        impl.choose = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-tiny", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from stages.ops.cpu_runtime import configure_cpu_training

    configure_cpu_training("cpu")  # as in training on CPU (stages.train.loop): flush denormals, keep big blocks
    results = {"small": small_step_timings()}
    for key in ("(i) G forward, no grad", "(ii) G fwd + D fwd + G-loss backward", "(iii) D fwd + bwd on reals with R1"):
        t = results["small"][key]
        print(f"SMALL {key:40s} median {t['median']:.3f} s  min {t['min']:.3f}  max {t['max']:.3f}")
    print(f"SMALL params: G {results['small']['G_params']:,}  D {results['small']['D_params']:,}")
    if not args.skip_tiny:
        results["tiny_cpu"] = sec_per_kimg("tiny", "cpu")
        print(f"tiny preset on CPU: {results['tiny_cpu']['sec_per_kimg']:.1f} sec/kimg "
              f"({results['tiny_cpu']['sec_per_iter']:.3f} s/iteration at batch {results['tiny_cpu']['batch']})")
    if torch.cuda.is_available():
        with forced_ref_ops():
            ref = sec_per_kimg("imagenet", "cuda", batch=16)
        cuda = sec_per_kimg("imagenet", "cuda", batch=16)
        results["imagenet_gpu"] = {"ref": ref, "cuda": cuda}
        print(f"imagenet preset on {torch.cuda.get_device_name()}, batch 16: ref ops {ref['sec_per_kimg']:.1f} "
              f"sec/kimg | CUDA ops {cuda['sec_per_kimg']:.1f} sec/kimg | speed-up "
              f"{ref['sec_per_kimg'] / cuda['sec_per_kimg']:.2f}x")
    else:
        print("imagenet preset, ref vs CUDA ops: no CUDA device here (column unavailable)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
