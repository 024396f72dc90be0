"""One side of ``benchmarks/lockstep.py``: a long-lived process that imports ONE source tree and times single
repetitions on request, so that two trees can take turns on the same cores.

    python benchmarks/lockstep_worker.py TREE THREADS

The tree's own ``benchmarks/train_step.py`` builds the SMALL configuration (ref §15) exactly as that commit
measured it: its ``timed`` is replaced by a recorder, so ``small_step_timings`` hands over its three closures
((i) G forward, (ii) G step, (iii) D step + R1) instead of timing them. Three more closures run 16 full training
iterations (one lazy R1 included) of (3) the ``tiny`` preset, (4) the demo's networks (``tiny`` without the depth
adaptor, what ``make demo`` trained before the demo preset existed) and (5) the ``demo`` preset itself (24 + 24
samples per ray; commits older than 2026-12-03 lack it, and asking them for it stops the run with the reason) on
the in-memory random dataset of ``train_step.py``, built by the tree's own Trainer. Then, per line ``k`` on stdin,
closure k runs once and its seconds are printed. Both sides apply ``configure_cpu_training("cpu")`` first, as
``3dgp train`` and ``train_step.py`` do. Works for any commit whose train_step.py has ``small_step_timings``
calling ``timed`` on those three closures in that order, and ``RandomDataset`` (every commit since the benchmark
exists).
"""
from __future__ import annotations

import sys
import time

PRESET_ITERATIONS = 16  # one lazy-R1 interval


def preset_closure(preset: str, model_overrides: dict):
    """``PRESET_ITERATIONS`` training iterations of ``preset`` (batch and everything else as the preset says)."""
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    import stages.nn.config as mc
    import train_step
    from stages.common.distributed import DistInfo
    from stages.train.config import get_train_preset, replace_section
    from stages.train.divergence import StepHealth
    from stages.train.loop import Trainer

    cfg = get_train_preset(preset)
    cfg = replace_section(cfg, "run", metrics=())
    cfg = replace(cfg, model=mc.with_overrides(cfg.model, c_dim=0, discriminator={"kd_dim": 64}, **model_overrides))
    data = train_step.RandomDataset(64, cfg.model.img_resolution, 64)
    trainer = Trainer(cfg, Path(tempfile.mkdtemp(prefix="lockstep-")), DistInfo(0, 1, 0, "cpu"), data, None)
    try:
        health = StepHealth(trainer.device)
    except TypeError:  # older commits
        health = StepHealth()

    def run():
        for _ in range(PRESET_ITERATIONS):
            trainer._iteration(health)

    return run, cfg.run.batch


def _unavailable(reason: str):
    def run():
        raise SystemExit(f"timing unavailable in this tree ({reason})")

    return run


def main() -> None:
    tree, threads = sys.argv[1], int(sys.argv[2])
    sys.path[:0] = [tree, f"{tree}/benchmarks"]
    import torch

    torch.set_num_threads(threads)
    try:  # as training on CPU does (flush-to-zero on every thread, big blocks kept in the heap), on both sides
        from stages.ops.cpu_runtime import configure_cpu_training
    except ImportError:  # a commit from before it existed
        pass
    else:
        configure_cpu_training("cpu")
    import train_step

    closures = []

    def record(fn, *args, **kwargs):
        closures.append(fn)
        return {"median": 0.0, "min": 0.0, "max": 0.0}

    train_step.timed = record
    info = train_step.small_step_timings(batch=8)
    assert len(closures) == 3, f"{tree}: expected 3 timed closures, got {len(closures)}"
    batches = []
    for preset, overrides in (("tiny", {}), ("tiny", {"depth_adaptor": {"enabled": False}}), ("demo", {})):
        try:
            fn, batch = preset_closure(preset, overrides)
        except Exception as exc:  # noqa: BLE001 -- a commit older than the preset: fail only if asked for
            fn, batch = _unavailable(f"{tree}: preset {preset!r}: {type(exc).__name__}: {exc}"), None
        closures.append(fn)
        batches.append(batch)
    print(f"ready G={info.get('G_params')} D={info.get('D_params')} batches={batches}", flush=True)
    for line in sys.stdin:
        k = int(line)
        start = time.perf_counter()
        closures[k]()
        print(f"{time.perf_counter() - start:.6f}", flush=True)


if __name__ == "__main__":
    main()
