"""The named steps of a training run's maintenance, outside the hot loop (3DGP ref §6.1, §10; issue 20 §7).

Each takes the :class:`stages.train.loop.Trainer` whose run it maintains:

* :func:`first_artefacts`: at the start of a fresh run, the reals/fakes grids, the kimg-0 metrics (the curve starts
  at initialisation, as StyleGAN's tick 0) and the first training state (the rollback target);
* :func:`evaluate_metrics`: the configured metrics on every rank (sharded, ``stages.train.metrics``); rank 0 records
  them and saves a new best snapshot; returns the metric blow-up reason, if any;
* :func:`periodic_writes`: snapshot, training state and fakes grid when their intervals were crossed (rank 0);
* :func:`report_tick`: ``stats.jsonl`` (+ TensorBoard) and the status line (rank 0).
"""
from __future__ import annotations

import logging
import time

from stages.common import checkpoint as ckpt
from stages.common.distributed import barrier
from stages.train import reporting
from stages.train.data import make_loader, reals_to_device
from stages.train.divergence import metric_blowup
from stages.train.schedules import crossed, ema_half_life_kimg

logger = logging.getLogger(__name__)


def _start_line(t) -> str:
    how = f"resumed at kimg {t.counters.cur_nimg / 1000:.3f}" if t.resumed else "fresh start"
    p = t.plan
    device = str(t.device)
    if t.device.type == "cpu":  # the thread count decides the order of the arithmetic, hence the exact model
        device += f" ({t.runtime['threads']} thread(s){', auto: follows the free cores' if t.threads else ''})"
    return (f"run dir {t.run_dir}; {how}; device {device}, {t.dist.world_size} process(es), batch {p.batch} = "
            f"{t.dist.world_size} x {p.rounds} rounds x {p.batch_gpu}; G EMA half-life "
            f"{ema_half_life_kimg(t.cfg.ema.ema_kimg, p.batch):.4g} kimg")


def first_artefacts(t) -> None:
    """A fresh start's grids, kimg-0 metrics and rollback target (module docstring); a resume only logs."""
    if t.dist.is_main:
        logger.info(_start_line(t))
    if t.resumed:
        return
    if t.dist.is_main:
        batch = next(iter(make_loader(t.dataset, t.cfg.run.seed, reporting.GRID_SIZE, 0, 1, 0, 0, t.device)))
        reporting.save_reals_grid(reals_to_device(batch, t.device, t.cfg.model.img_channels == 4, 0)["img"],
                                  t.run_dir / "reals.png")
        reporting.render_fakes_grid(t.nets.G_ema, t.grid, t.run_dir / "fakes_init.png")
    if t.metrics.primary is not None:
        evaluate_metrics(t, {})  # every rank; saves snapshot-000000.000.pt as the first best
    elif t.cfg.run.snapshot_kimg > 0 and t.dist.is_main:
        t.save("snapshot")  # the initial model, to compare against (e.g. `make demo`)
    if t.dist.is_main:
        t.save("state")
    barrier()


def evaluate_metrics(t, scalars: dict) -> str | None:
    """The configured metrics on every rank (the same values everywhere); rank 0 records them and saves a new best
    snapshot; the blow-up reason (``stages.train.divergence.metric_blowup``) or None."""
    spec, c = t.metrics.primary, t.counters
    t0 = time.time()
    results = t.metrics.evaluate(t.nets.G_ema)
    if t.dist.is_main:
        reporting.append_metric(t.run_dir, {"kimg": c.cur_nimg / 1000, "tick": c.cur_tick, **results,
                                            "seconds": round(time.time() - t0, 2), "processes": t.dist.world_size})
        logger.info("metrics at kimg %.3f (%d process(es), %.1f s): %s", c.cur_nimg / 1000, t.dist.world_size,
                    time.time() - t0, ", ".join(f"{k} {v:.4g}" for k, v in results.items()))
    t.last_metrics = results
    scalars.update({f"Metrics/{k}": v for k, v in results.items()})
    value, best = results[spec.name], c.best.get("value")
    reason = metric_blowup(spec.name, value, best, t.cfg.run.diverge_metric_factor, spec.lower_is_better)
    if reason is None and (best is None or (value < best if spec.lower_is_better else value > best)):
        snap = ckpt.snapshot_path(t.run_dir, c.cur_nimg).name
        if t.dist.is_main:
            t.save("snapshot")
            logger.info("new best %s %.4g -> %s", spec.name, value, snap)
        c.best = {"metric": spec.name, "value": value, "kimg": c.cur_nimg / 1000, "snapshot": snap}
    return reason


def periodic_writes(t, prev_nimg: int, done: bool, mid_streak: bool) -> None:
    """Snapshot, training state and fakes grid when their intervals were crossed (rank 0)."""
    c, r = t.counters, t.cfg.run
    if done or crossed(prev_nimg, c.cur_nimg, r.snapshot_kimg):
        t.save("snapshot")
    if (done or crossed(prev_nimg, c.cur_nimg, r.state_kimg)) and not mid_streak:
        t.save("state")  # never a rollback target in the middle of non-finite losses
    if done or crossed(prev_nimg, c.cur_nimg, r.image_kimg):
        reporting.render_fakes_grid(t.nets.G_ema, t.grid, t.run_dir / f"fakes{ckpt.kimg_tag(c.cur_nimg)}.png")


def report_tick(t, ctx, scalars: dict, sec_per_kimg: float, maintenance_sec: float) -> None:
    """stats.jsonl (+ TensorBoard) and the status line; the op implementations once (rank 0)."""
    c = t.counters
    scalars.update({f"Schedule/{k}": v for k, v in ctx.sched.to_dict().items() if k != "kimg"})
    scalars.update({"Timing/sec_per_kimg": sec_per_kimg, "Timing/maintenance_sec": maintenance_sec,
                    "Progress/rollbacks": float(c.rollbacks)})
    t.writer.write(c.cur_nimg / 1000, c.cur_tick, scalars)
    seconds_left = None if t.deadline is None else t.deadline - time.time()
    if seconds_left is not None and t.cfg.run.min_kimg is not None:  # --min-kimg can outlast --minutes
        seconds_left = max(seconds_left, (t.cfg.run.min_kimg - c.cur_nimg / 1000) * sec_per_kimg)
    logger.info(reporting.status_line(c.cur_tick, c.cur_nimg / 1000, t.cfg.run.kimg, sec_per_kimg, scalars,
                                      t.device, seconds_left))
    if not t.ops_logged:
        reporting.log_ops_report()
        t.ops_logged = True
