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
3. On a CUDA machine (or ``--device``): sec/kimg of the paper presets (``--presets imagenet,dogs``) with the reference
   ops and with the CUDA ops side by side at fp32, then the CUDA ops at each ``--precisions`` entry (tf32, bf16);
   peak memory; achieved TFLOP/s (FLOPs of one iteration counted by ``torch.utils.flop_counter``) against the
   device's dense matmul rate measured in the same run (fp32, tf32, bf16). ``--ops-policy P`` (repeatable) adds a
   row per ``THREEDGP_OPS`` value at the first precision (e.g. ``ref``, ``bias_act``, ``upfirdn2d``, ``composite``):
   which op's kernel gains or loses in a whole iteration (on the first H200 run all CUDA ops together lost 7 %).

Usage: python benchmarks/train_step.py [--skip-small] [--skip-tiny] [--threads 2] [--device cuda]
           [--presets imagenet,dogs] [--precisions fp32,tf32,bf16] [--ops-policy P ...] [--batch 16]
           [--iterations 17] [--json out.json]
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


def sec_per_kimg(preset: str, device: str, iterations: int = 17, batch: int | None = None,
                 precision: str = "fp32") -> dict:
    """Seconds per kimg of full training iterations of a preset on random data (one Dreg per 16 iterations), the
    FLOPs of one iteration and the peak accelerator memory."""
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from torch.utils.flop_counter import FlopCounterMode

    import stages.nn.config as mc
    from stages.common.distributed import DistInfo
    from stages.train.config import get_train_preset, replace_section
    from stages.train.divergence import StepHealth
    from stages.train.loop import Trainer

    cfg = get_train_preset(preset)
    cfg = replace_section(cfg, "run", metrics=(), precision=precision, **({"batch": batch} if batch else {}))
    cfg = replace(cfg, model=mc.with_overrides(cfg.model, c_dim=0, discriminator={"kd_dim": 64}))
    data = RandomDataset(64, cfg.model.img_resolution, 64)
    cuda = device.startswith("cuda")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp), DistInfo(0, 1, 0, device), data, None)
        health = StepHealth(trainer.device)
        trainer._iteration(health)  # warm-up (includes the first Dreg)
        with FlopCounterMode(display=False) as flops, _cpu_kernels_off():  # the model's FLOPs: every op visible
            trainer._iteration(health)  # a plain iteration (no Dreg): G phase + D phase
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(iterations - 2):
            trainer._iteration(health)
        if cuda:
            torch.cuda.synchronize()
        per_iter = (time.perf_counter() - t0) / (iterations - 2)
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    total_flops = flops.get_total_flops()
    return {"preset": preset, "device": device, "precision": precision, "batch": cfg.run.batch,
            "sec_per_iter": per_iter, "sec_per_kimg": per_iter * 1000 / cfg.run.batch, "peak_mem_gb": peak,
            "flops_per_iter": total_flops, "achieved_tflops": total_flops / per_iter / 1e12}


def matmul_tflops(device: str, n: int = 8192, runs: int = 10) -> dict[str, float]:
    """Dense n x n matmul rate of ``device`` in TFLOP/s: fp32 (TF32 off), tf32 and bf16."""
    results = {}
    before = torch.backends.cuda.matmul.allow_tf32
    for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                              ("bf16", torch.bfloat16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        t = timed(lambda: a @ b, warmup=2, runs=runs)["median"]
        results[name] = 2 * n**3 / t / 1e12
    torch.backends.cuda.matmul.allow_tf32 = before
    return results


@contextmanager
def _cpu_kernels_off():
    """The CPU kernels (ctypes) are invisible to torch's FLOP counter: count with the reference ops."""
    import os

    from stages.ops._cpu_build import ENABLE_ENV

    before = os.environ.get(ENABLE_ENV)
    os.environ[ENABLE_ENV] = "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ[ENABLE_ENV]
        else:
            os.environ[ENABLE_ENV] = before


@contextmanager
def ops_policy(policy: str):
    """Run with ``THREEDGP_OPS=policy`` (``ref``: every op takes the reference path), restored after."""
    import os

    from stages.ops._impl import POLICY_ENV, cuda_policy

    before = os.environ.get(POLICY_ENV)
    os.environ[POLICY_ENV] = policy
    try:
        cuda_policy()  # a bad value fails here, before the minute a row takes
        yield
    finally:
        if before is None:
            del os.environ[POLICY_ENV]
        else:
            os.environ[POLICY_ENV] = before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-small", action="store_true", help="skip the SMALL CPU timings (section 1)")
    parser.add_argument("--skip-tiny", action="store_true", help="skip the tiny CPU sec/kimg (section 2)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else None,
                        help="device of section 3 (default: cuda when present, else section 3 is skipped)")
    parser.add_argument("--presets", default="imagenet,dogs", help="section 3 presets")
    parser.add_argument("--precisions", default="fp32,tf32,bf16", help="section 3 precisions (CUDA ops)")
    parser.add_argument("--ops-policy", action="append", default=[], metavar="P",
                        help="section 3: one more row per THREEDGP_OPS value P at the first precision (repeatable)")
    parser.add_argument("--batch", type=int, default=16, help="section 3 batch")
    parser.add_argument("--iterations", type=int, default=17, help="section 3 iterations per measurement")
    parser.add_argument("--matmul-n", type=int, default=8192, help="matrix size of the matmul-rate measurement")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from stages.ops.cpu_runtime import configure_cpu_training

    configure_cpu_training("cpu")  # as in training on CPU (stages.train.loop): flush denormals, keep big blocks
    results: dict = {}
    if not args.skip_small:
        results["small"] = small_step_timings()
        for key in ("(i) G forward, no grad", "(ii) G fwd + D fwd + G-loss backward",
                    "(iii) D fwd + bwd on reals with R1"):
            t = results["small"][key]
            print(f"SMALL {key:40s} median {t['median']:.3f} s  min {t['min']:.3f}  max {t['max']:.3f}")
        print(f"SMALL params: G {results['small']['G_params']:,}  D {results['small']['D_params']:,}")
    if not args.skip_tiny:
        results["tiny_cpu"] = sec_per_kimg("tiny", "cpu")
        print(f"tiny preset on CPU: {results['tiny_cpu']['sec_per_kimg']:.1f} sec/kimg "
              f"({results['tiny_cpu']['sec_per_iter']:.3f} s/iteration at batch {results['tiny_cpu']['batch']})")
    if args.device:
        results["presets"] = preset_table(args)
    else:
        print("paper presets, ref vs CUDA ops and precisions: no CUDA device here (section skipped)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


def preset_table(args) -> dict:
    """Section 3: every preset x (ref ops fp32, CUDA ops at each precision), with the device's matmul rates."""
    device = args.device
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    rates = matmul_tflops(device, args.matmul_n)
    print(f"{name}: dense matmul " + ", ".join(f"{k} {v:.1f} TFLOP/s" for k, v in rates.items()))
    table: dict = {"device": name, "matmul_tflops": rates, "rows": []}
    for preset in args.presets.split(","):
        precisions = args.precisions.split(",")
        runs = ([("ref", "fp32", "ref")] + [("cuda", p, "auto") for p in precisions] +
                [(f"THREEDGP_OPS={q}", precisions[0], q) for q in args.ops_policy])
        for ops, precision, policy in runs:
            with ops_policy(policy):
                row = sec_per_kimg(preset, device, args.iterations, args.batch, precision)
            row["ops"] = ops
            row["fraction_of_matmul_rate"] = row["achieved_tflops"] / rates["bf16" if precision == "bf16" else
                                                                            "tf32" if precision == "tf32" else "fp32"]
            table["rows"].append(row)
            print(f"{preset:9s} {ops:4s} ops {precision:4s} batch {row['batch']}: {row['sec_per_kimg']:8.2f} sec/kimg"
                  f" | peak {row['peak_mem_gb']:.2f} GiB | {row['achieved_tflops']:.2f} TFLOP/s achieved "
                  f"({100 * row['fraction_of_matmul_rate']:.1f} % of the {precision} matmul rate)")
    return table


if __name__ == "__main__":
    main()
