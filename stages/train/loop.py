"""The 3DGP training loop (3DGP ref §5, §10; EDM2-shaped: one ``while True`` with blocks in a fixed order).

Per iteration: schedules at the current kimg -> Gall, Dmain, Dreg (``stages.train.step``) -> G EMA -> counters.
At every tick end: reduce stats and health -> divergence check (rollback) -> metrics (on every rank, sharded) ->
snapshot -> training state -> images -> stats.jsonl + status line. Only rank 0 writes files and prints; every
decision that changes what the ranks do next (rollback, its target, the --minutes stop) is rank 0's, broadcast.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from stages.common import checkpoint as ckpt
from stages.common.distributed import DistInfo, barrier, broadcast_object, local_world_size
from stages.common.errors import TrainingDiverged
from stages.common.seeding import derive_seed, seed_everything
from stages.common.stats import StatsCollector, StatsWriter
from stages.train import maintenance, reporting
from stages.train.config import TrainConfig
from stages.train.data import make_loader, reals_to_device
from stages.train.divergence import StepHealth, nonfinite_loss_reason, run_health, tick_loss_blowup
from stages.train.metrics import MetricRunner
from stages.train.phases import PhaseContext
from stages.train.runtime import configure_runtime
from stages.train.schedules import crossed, ema_beta, r1_gamma, schedule_state
from stages.train.state import Counters, build_networks, build_optimizers, camera_prior_for, ema_tensors, \
    ema_update_, load_state, save_snapshot, save_state
from stages.train.step import plan_batch, train_step

logger = logging.getLogger(__name__)
INIT_SEED_SALT = 0x1417  # derive_seed(run.seed, salt): the initial weights (identical on every rank)


@dataclass
class LoopResult:
    """What a finished run produced."""

    cur_nimg: int  # images shown
    rollbacks: int  # divergence rollbacks
    last_state: str | None = None  # newest training-state file
    last_snapshot: str | None = None  # newest snapshot file
    best: dict = field(default_factory=dict)  # best-metric record
    metrics: dict = field(default_factory=dict)  # last metric values


class Trainer:
    """Holds one run's networks, optimizers, counters and writers; :meth:`run` is the loop."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, dist: DistInfo, dataset, resume_path: Path | None,
                 state: dict | None = None):
        self.cfg, self.run_dir, self.dist, self.dataset = cfg, Path(run_dir), dist, dataset
        self.device = torch.device(dist.device)
        self.runtime = configure_runtime(self.device, cfg.run.precision, cfg.run.threads, local_world_size(dist))
        self.threads = self.runtime.pop("governor")  # --threads auto on CPU: re-sized at every tick
        seed_everything(derive_seed(cfg.run.seed, INIT_SEED_SALT))  # identical initial weights on every rank
        self.nets = build_networks(cfg, self.device, training=True)
        self.opts = build_optimizers(cfg, self.nets.G, self.nets.D)
        self._ema_tensors = ema_tensors(self.nets.G_ema, self.nets.G)  # loads and rollbacks copy in place
        self.counters = load_state(resume_path, self.nets, self.opts, self.device, state) if resume_path \
            else Counters()
        self.resumed = resume_path is not None
        self.plan = plan_batch(cfg.run.batch, cfg.run.batch_gpu, dist.world_size, dist.rank,
                               cfg.model.discriminator.mbstd_group_size)
        self.prior = camera_prior_for(cfg.model)
        self.c_dim = cfg.model.c_dim
        self.label_probs = dataset.label_probs if self.c_dim > 0 else None
        self.stats = StatsCollector(self.device)
        self.writer = StatsWriter(self.run_dir, enabled=dist.is_main)
        self.metrics = MetricRunner(cfg.run.metrics, dataset, self.prior, self.label_probs, self.c_dim, self.device,
                                    self.run_dir, cfg.run.seed, cfg.data.workers)
        self.grid = reporting.fakes_grid_inputs(cfg.run.seed, self.nets.G, self.prior, self.label_probs, self.c_dim,
                                                self.device)
        self.gamma = r1_gamma(cfg.loss.gamma, cfg.model.img_resolution, cfg.run.batch)
        self.last_metrics: dict = {}
        self.ops_logged = not dist.is_main  # rank 0 logs the op implementations once
        self.deadline: float | None = None  # wall-clock end of a --minutes budget (set by run)
        self._open_loader()

    def _open_loader(self) -> None:
        c = self.cfg
        self.loader = make_loader(self.dataset, c.run.seed, c.run.batch, self.dist.rank, self.dist.world_size,
                                  self.counters.cur_nimg, c.data.workers, self.device)

    def _context(self, kimg: float) -> PhaseContext:
        m = self.cfg.model
        sched = schedule_state(kimg, self.cfg.loss)
        G = self.nets.G
        if getattr(G, "depth_adaptor", None) is not None:
            G.depth_adaptor.set_progress(sched.depth_progress)
        return PhaseContext(G=G, D=self.nets.D, sched=sched, device=self.device, prior=self.prior, c_dim=self.c_dim,
                            label_probs=self.label_probs, patch_res=m.patch_resolution, min_scale=m.min_patch_scale,
                            group_size=m.discriminator.mbstd_group_size, has_depth=m.img_channels == 4,
                            gamma=self.gamma, r1_interval=self.cfg.loss.r1_interval, loss_cfg=self.cfg.loss,
                            stats=self.stats)

    def _iteration(self, health: StepHealth) -> PhaseContext:
        c = self.counters
        ctx = self._context(c.cur_nimg / 1000)
        reals = reals_to_device(next(self.loader), self.device, ctx.has_depth, self.c_dim)
        train_step(ctx, reals, self.opts, self.plan, self.cfg.run.seed, c.seed_stream, c.cur_nimg, c.batch_idx,
                   health)
        beta = ema_beta(c.cur_nimg, self.cfg.run.batch, self.cfg.ema.ema_kimg, self.cfg.ema.rampup)
        ema_update_(self.nets.G_ema, self.nets.G, beta, self._ema_tensors)
        c.cur_nimg += self.cfg.run.batch
        c.batch_idx += 1
        return ctx

    def save(self, what: str) -> str:
        """Write a training state or a snapshot of the current counters (rank 0); its path."""
        path = (save_state(self.run_dir, self.cfg, self.nets, self.opts, self.counters) if what == "state"
                else save_snapshot(self.run_dir, self.cfg, self.nets.G_ema, self.counters))
        return str(path)

    def _rollback(self, reason: str) -> None:
        c = self.counters
        rollbacks = c.rollbacks + 1
        logger.warning("divergence at kimg %.3f: %s", c.cur_nimg / 1000, reason)
        self.writer.write(c.cur_nimg / 1000, c.cur_tick, {"Progress/rollbacks": float(rollbacks)},
                          event=f"divergence: {reason}")
        if rollbacks > self.cfg.run.max_rollbacks:
            raise TrainingDiverged(f"training diverged {rollbacks} times (last: {reason}); giving up after "
                                   f"--max-rollbacks {self.cfg.run.max_rollbacks}. Lower the learning rates or "
                                   f"raise --gamma, then resume from {self.run_dir}")
        barrier()
        # rank 0 alone lists the run folder (on a network file system ranks may see different listings) and
        # every rank loads the state it chose (issue 18 row 12)
        target = broadcast_object(ckpt.latest_training_state(self.run_dir) if self.dist.is_main else None)
        assert target is not None, "the kimg-0 state is always written"
        self.counters = load_state(target, self.nets, self.opts, self.device)
        self.counters.rollbacks = rollbacks
        self.counters.seed_stream = rollbacks  # a fresh random stream from the restored point on
        logger.warning("rolled back to %s (rollback %d of at most %d, seed stream %d)", target.name, rollbacks,
                       self.cfg.run.max_rollbacks, rollbacks)
        self.stats.reduce(self.dist.world_size)  # drop the diverged tick's stats
        self._open_loader()

    def _divergence(self, health: StepHealth, scalars: dict) -> tuple[str | None, bool]:
        """(rollback reason or None, whether a streak of non-finite losses is still going) from this tick's health."""
        counts = run_health(health, self.dist.world_size)
        max_streak, mid_streak = counts.pop("max_streak"), counts.pop("streak") > 0
        scalars.update(counts)
        r = self.cfg.run
        reason = nonfinite_loss_reason(max_streak, r.nonfinite_loss_steps, self.counters.cur_nimg / 1000) or \
            tick_loss_blowup(scalars, r.diverge_loss_max)
        return reason, mid_streak

    def _tick_end(self, ctx: PhaseContext, health: StepHealth, prev_nimg: int, done: bool, timer) -> bool:
        """Maintenance at a tick boundary, on every rank; returns False when the tick was rolled back."""
        c, r = self.counters, self.cfg.run
        sec_per_kimg, t0 = timer.sec_per_kimg(c.cur_nimg), time.time()
        scalars = self.stats.reduce(self.dist.world_size)
        reason, mid_streak = self._divergence(health, scalars)
        c.cur_tick += 1
        if reason is None and self.metrics.primary is not None and (done or crossed(prev_nimg, c.cur_nimg,
                                                                                      r.metrics_kimg)):
            reason = maintenance.evaluate_metrics(self, scalars)
        if self.dist.world_size > 1:
            reason = broadcast_object(reason)
        if reason is not None:
            self._rollback(reason)
            timer.reset(self.counters.cur_nimg)
            return False
        if self.dist.is_main:
            maintenance.periodic_writes(self, prev_nimg, done, mid_streak)
            maintenance.report_tick(self, ctx, scalars, sec_per_kimg, time.time() - t0)
        barrier()
        timer.reset(c.cur_nimg)
        return True

    def _out_of_time(self, deadline: float, total_nimg: int) -> bool:
        """At a tick boundary: has ``--minutes`` run out (and ``--min-kimg`` been reached)? Rank 0's clock decides
        for every process."""
        min_nimg = int(round((self.cfg.run.min_kimg or 0) * 1000))
        stop = time.time() >= deadline and self.counters.cur_nimg >= min_nimg
        if self.dist.world_size > 1:
            stop = broadcast_object(stop)
        if stop and self.dist.is_main:
            logger.info("--minutes %g reached at kimg %.3f of %.3f: finishing with a snapshot and a training state",
                        self.cfg.run.minutes, self.counters.cur_nimg / 1000, total_nimg / 1000)
        return stop

    def run(self) -> LoopResult:
        """Train until ``cfg.run.kimg``; returns what was written."""
        maintenance.first_artefacts(self)
        r = self.cfg.run
        total_nimg = int(round(r.kimg * 1000))
        timer = reporting.TickTimer(self.counters.cur_nimg)
        tick_start = self.counters.cur_nimg
        deadline = time.time() + r.minutes * 60 if r.minutes is not None else None
        self.deadline = deadline  # for the status line's ETA
        health = StepHealth(self.device)
        while self.counters.cur_nimg < total_nimg:
            ctx = self._iteration(health)
            done = self.counters.cur_nimg >= total_nimg
            if not done and self.counters.cur_nimg < tick_start + r.tick_kimg * 1000:
                continue
            if deadline is not None and not done:
                done = self._out_of_time(deadline, total_nimg)
            kept = self._tick_end(ctx, health, tick_start, done, timer)
            if self.threads is not None:
                self.threads.update()
            tick_start = self.counters.cur_nimg
            previous, health = health, StepHealth(self.device)
            if kept:
                health.carry_streak_from(previous)
                if done:
                    break  # the --minutes budget ended the run early
        self.writer.close()
        return self._result()

    def _result(self) -> LoopResult:
        states = ckpt.list_training_states(self.run_dir)
        snaps = ckpt.list_checkpoints(self.run_dir, ckpt.SNAPSHOT_PREFIX)
        return LoopResult(cur_nimg=self.counters.cur_nimg, rollbacks=self.counters.rollbacks,
                          last_state=str(states[-1][1]) if states else None,
                          last_snapshot=str(snaps[-1][1]) if snaps else None, best=dict(self.counters.best),
                          metrics=self.last_metrics)
