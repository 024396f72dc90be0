"""``3dgp train``: resolve the config (preset + overrides, or a saved run for --resume), create the run directory,
and run the training loop in one or several processes (3DGP ref §5, §10; issue 5).

Public API:
  TrainRequest(preset, outdir, overrides, resume, resume_from, force_override, dry_run)  # what the CLI collects
  run(request) -> TrainResult                                                            # the CLI's one call
  run_loop(cfg, run_dir, resume_path=None) -> LoopResult        # train a resolved config in this process
  launch(cfg, run_dir, resume_path) -> LoopResult | None        # ... in this process or cfg.run.gpus spawned ones
  resolve_new_config(preset, overrides) -> TrainConfig; resolve_resume(...) -> ResumePlan
The options that set config values, and the keys they set: ``stages.train.flags`` (``flag_overrides``).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from stages.common.errors import BadOptionError, ConfigValueError
from stages.common.validate import CheckedRequest
from stages.train.config import TRAIN_PRESETS, TrainConfig, get_train_preset, to_dict
from stages.train.overrides import Override
from stages.train.resume import ResumePlan, resolve_new_config, resolve_resume

logger = logging.getLogger(__name__)

__all__ = ["TRAIN_PRESETS", "TrainConfig", "TrainRequest", "TrainResult", "ResumePlan", "get_train_preset", "launch",
           "run", "run_loop", "resolve_new_config", "resolve_resume"]

@dataclass(frozen=True)
class TrainRequest(CheckedRequest):
    """Everything the ``3dgp train`` command line says; checked on construction (``stages.common.validate``).
    The options that set config values arrive as ``overrides`` (``stages.train.flags.flag_overrides``) and are
    checked when they are applied to the preset or the resumed run's config."""

    preset: str | None = None  # --preset (required unless --resume)
    outdir: str = "runs"  # --outdir
    overrides: tuple[Override, ...] = ()  # options the user set, in order
    resume: bool = False  # --resume
    resume_from: str | None = None  # RUN_DIR or training-state file after --resume
    force_override: bool = False  # --force-override
    dry_run: bool = False  # --dry-run

    _ARGUMENTS = {"resume_from": "RESUME_FROM"}

    def _check_values(self) -> None:
        for name in ("outdir", "resume_from"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise ConfigValueError(name, "must not be empty")

    def _check_combinations(self) -> None:
        # BadOptionError, not ConfigValueError: the messages quote a path, which is no {placeholder} template
        if self.resume_from is not None and not self.resume:
            raise BadOptionError("--resume", f"{self.resume_from} names a run to continue: add --resume "
                                             f"(`3dgp train --resume {self.resume_from}`)")
        if self.force_override and not self.resume:
            raise BadOptionError("--force-override", "only applies with --resume (options given now then win over "
                                                     "the resumed run's saved config)")


@dataclass
class TrainResult:
    """What ``run`` did."""

    run_dir: str | None = None  # the run directory trained in
    printed_config: str | None = None  # the resolved config as JSON (--dry-run)
    conflicts: list[str] = field(default_factory=list)  # --resume conflicts, as reported
    loop: object | None = None  # stages.train.loop.LoopResult of rank 0


def _write_config(run_dir: Path, cfg: TrainConfig) -> None:
    tmp = run_dir / "config.json.tmp"
    tmp.write_text(json.dumps(to_dict(cfg), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, run_dir / "config.json")


def _check_outdir(request: TrainRequest) -> None:
    """``--outdir`` is, or can become, a folder (what the request alone cannot say)."""
    out = Path(request.outdir)
    for parent in [out, *out.parents]:
        if parent.exists():
            if not parent.is_dir():
                where = "" if parent == out else f"{request.outdir}: "
                raise BadOptionError("--outdir", f"{where}{parent} is a file, not a folder")
            break


def _preflight(cfg: TrainConfig, torchrun: bool) -> None:
    """What a start checks before it creates or locks a run directory: the device of every process this node will
    run (``stages.common.devices``) and the batch split."""
    from stages.common.devices import process_device
    from stages.train.flags import option_for
    from stages.train.step import plan_batch

    world = int(os.environ.get("WORLD_SIZE", "1")) if torchrun else cfg.run.gpus
    local = int(os.environ.get("LOCAL_RANK", "0")) if torchrun else cfg.run.gpus - 1  # the last process spawned
    process_device(cfg.run.device, local, world, option_for("run.device"))
    plan_batch(cfg.run.batch, cfg.run.batch_gpu, world, 0, cfg.model.discriminator.mbstd_group_size)


def _discard_if_unstarted(run_dir: Path) -> None:
    """Remove a run directory this start created when it failed before the first training state."""
    import shutil

    from stages.common import checkpoint as ckpt

    if ckpt.latest_training_state(run_dir) is None and not ckpt.list_checkpoints(run_dir, ckpt.SNAPSHOT_PREFIX):
        shutil.rmtree(run_dir, ignore_errors=True)


def _resolve(request: TrainRequest):
    """(config, resume plan or None): the resumed run's config with the request's overrides, or a new run's
    preset + overrides fitted to its dataset."""
    from stages.train.resume import fit_to_dataset

    if request.resume:
        plan = resolve_resume(request.outdir, request.resume_from, request.preset, list(request.overrides),
                              request.force_override)
        return plan.cfg, plan
    if request.preset is None:
        raise BadOptionError("--preset", f"required for a new run (one of {', '.join(TRAIN_PRESETS)}); "
                                         f"or pass --resume")
    cfg = resolve_new_config(request.preset, list(request.overrides), fit=False)
    if cfg.data.path or not request.dry_run:  # a dry run without --data shows the preset as resolved
        cfg = fit_to_dataset(cfg)
    else:
        logger.warning("no --data: dataset-dependent fields (resolution, classes, KD size) are the preset's")
    return cfg, None


def run(request: TrainRequest) -> TrainResult:
    """Resolve and check, then train (or print for ``--dry-run``).

    A start that is rejected leaves nothing behind: the numbered run directory is created (and locked) only once
    everything that can be checked up front has passed, and it is removed again if training fails before its
    first training state. A run directory being trained by another process is refused (``RunLock``).
    """
    from stages.common.rundir import RunLock, next_run_dir

    _check_outdir(request)
    torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1
    cfg, plan = _resolve(request)
    run_dir, resume_path = (plan.run_dir, plan.state_path) if plan is not None else (None, None)
    conflicts = plan.conflicts if plan is not None else []
    _preflight(cfg, torchrun)
    if request.dry_run:
        if plan is not None:
            plan.log()
        return TrainResult(printed_config=json.dumps(to_dict(cfg), indent=2), conflicts=conflicts)
    if torchrun:  # every rank resolved the same config; rank 0 picks the run dir
        from stages.common.distributed import broadcast_object, init_distributed

        init_distributed(cfg.run.device)
    is_main = int(os.environ.get("RANK", "0")) == 0
    lock, created = None, False
    try:
        if is_main:
            if run_dir is None:
                run_dir = next_run_dir(request.outdir, f"{cfg.preset}-{Path(cfg.data.path).name}")
                created = True
            lock = RunLock.acquire(run_dir)
            if plan is not None:
                _accept_resume(plan)
            if resume_path is None or plan.config_changed:
                _write_config(Path(run_dir), cfg)
        if torchrun:
            run_dir = broadcast_object(run_dir)
        loop = launch(cfg, Path(run_dir), resume_path, plan.take_state() if plan is not None else None)
        if torchrun:
            from stages.common.distributed import finish_distributed

            finish_distributed()
    except BaseException:
        if created:
            if lock is not None:
                lock.release()
            _discard_if_unstarted(Path(run_dir))
        raise
    finally:
        if lock is not None:
            lock.release()
    return TrainResult(run_dir=str(run_dir), conflicts=conflicts, loop=loop)


def _accept_resume(plan: ResumePlan) -> None:
    """Once a resume is accepted (rank 0, run directory locked): log its notes (runtime options changed, the
    dataset, conflicts) to the console and ``log.txt``, and move aside what a later continuation wrote after the
    state resumed from (``stages.common.rundir.set_aside_later_progress``; issue 19 §7)."""
    from stages.common.rundir import attach_log_file, set_aside_later_progress

    handler = attach_log_file(plan.run_dir)
    try:
        plan.log()
        if plan.resume_nimg is not None:
            for message in set_aside_later_progress(plan.run_dir, plan.resume_nimg):
                logger.warning("%s", message)
    finally:
        logging.getLogger("stages").removeHandler(handler)
        handler.close()


def launch(cfg: TrainConfig, run_dir: Path, resume_path: Path | None, state: dict | None = None):
    """Run in this process (one process or under torchrun), or spawn ``cfg.run.gpus`` processes.

    ``state`` is the training state at ``resume_path`` when the caller already read it (in this process it is used
    as is; spawned processes read the file themselves). A user-facing error in a spawned process comes back to this
    one as the same one-line error."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or cfg.run.gpus <= 1:
        return run_loop(cfg, run_dir, resume_path, state)
    import torch.multiprocessing as mp

    from stages.common.distributed import spawn
    from stages.common.errors import ThreeDGPError

    errors = mp.get_context("spawn").SimpleQueue()
    try:
        spawn(_spawned_worker, cfg.run.gpus, (to_dict(cfg), str(run_dir), str(resume_path) if resume_path else None,
                                              errors))
    except Exception:
        if not errors.empty():
            raise ThreeDGPError(errors.get()) from None
        raise
    return None


def _spawned_worker(cfg_dict: dict, run_dir: str, resume_path: str | None, errors=None) -> None:
    from stages.common.errors import ThreeDGPError
    from stages.train.config import from_dict

    try:
        run_loop(from_dict(cfg_dict), Path(run_dir), Path(resume_path) if resume_path else None)
    except ThreeDGPError as exc:
        if errors is not None:
            errors.put(str(exc))
        raise


def run_loop(cfg: TrainConfig, run_dir: str | Path, resume_path: str | Path | None = None, state: dict | None = None):
    """Train ``cfg`` in ``run_dir`` (this process joins the torchrun group if there is one); rank 0's result.
    ``state``: the training state at ``resume_path``, when already read."""
    from stages.common.distributed import init_distributed
    from stages.common.rundir import attach_log_file
    from stages.data.dataset import LmdbDataset
    from stages.train.loop import Trainer

    run_dir = Path(run_dir)
    dist = init_distributed(cfg.run.device)
    handler = attach_log_file(run_dir) if dist.is_main else None
    try:
        dataset = LmdbDataset(cfg.data.path, mirror=cfg.data.mirror, max_items=cfg.data.max_items)
        trainer = Trainer(cfg, run_dir, dist, dataset, Path(resume_path) if resume_path else None, state)
        result = trainer.run()
        if dist.is_main:
            logger.info("done: kimg %.3f, %s", result.cur_nimg / 1000, result.last_snapshot)
        return result if dist.is_main else None
    finally:
        if handler is not None:
            logging.getLogger("stages").removeHandler(handler)
            handler.close()
