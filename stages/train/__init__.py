"""``3dgp train``: resolve the config (preset + overrides, or a saved run for --resume), create the run directory,
and run the training loop in one or several processes (3DGP ref §5, §10; issue 5).

Public API:
  TrainRequest(preset, outdir, overrides, resume, resume_from, force_override, dry_run)  # what the CLI collects
  run_request(request) -> TrainResult                                                    # the CLI's one call
  run(cfg, run_dir, resume_path=None) -> LoopResult                                       # train a resolved config
  resolve_new_config(preset, overrides) -> TrainConfig; resolve_resume(...) -> ResumePlan
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from stages.train.config import TRAIN_PRESETS, TrainConfig, get_train_preset, to_dict
from stages.train.overrides import Override
from stages.train.resume import ResumePlan, resolve_new_config, resolve_resume

logger = logging.getLogger(__name__)

__all__ = ["TRAIN_PRESETS", "TrainConfig", "TrainRequest", "TrainResult", "ResumePlan", "get_train_preset", "run",
           "run_request", "resolve_new_config", "resolve_resume"]


@dataclass(frozen=True)
class TrainRequest:
    """Everything the ``3dgp train`` command line says."""

    preset: str | None = None  # --preset (required unless --resume)
    outdir: str = "runs"  # --outdir
    overrides: tuple[Override, ...] = ()  # options the user set, in order
    resume: bool = False  # --resume
    resume_from: str | None = None  # RUN_DIR or training-state file after --resume
    force_override: bool = False  # --force-override
    dry_run: bool = False  # --dry-run


@dataclass
class TrainResult:
    """What ``run_request`` did."""

    run_dir: str | None = None  # the run directory trained in
    printed_config: str | None = None  # the resolved config as JSON (--dry-run)
    conflicts: list[str] = field(default_factory=list)  # --resume conflicts, as reported
    loop: object | None = None  # stages.train.loop.LoopResult of rank 0


def _write_config(run_dir: Path, cfg: TrainConfig) -> None:
    tmp = run_dir / "config.json.tmp"
    tmp.write_text(json.dumps(to_dict(cfg), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, run_dir / "config.json")


def run_request(request: TrainRequest) -> TrainResult:
    """Resolve, then train (or print for ``--dry-run``)."""
    from stages.common.rundir import next_run_dir

    torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if request.resume:
        plan = resolve_resume(request.outdir, request.resume_from, request.preset, list(request.overrides),
                              request.force_override)
        cfg, run_dir, resume_path, conflicts = plan.cfg, plan.run_dir, plan.state_path, plan.conflicts
    else:
        if request.preset is None:
            from stages.common.errors import BadOptionError

            raise BadOptionError("--preset", f"required for a new run (one of {', '.join(TRAIN_PRESETS)}); "
                                             f"or pass --resume")
        cfg, run_dir, resume_path, conflicts = resolve_new_config(request.preset, list(request.overrides)), None, \
            None, []
    if request.dry_run:
        return TrainResult(printed_config=json.dumps(to_dict(cfg), indent=2), conflicts=conflicts)
    if torchrun:  # every rank resolved the same config; rank 0 picks the run dir
        from stages.common.distributed import broadcast_object, init_distributed

        init_distributed(cfg.run.device)
    if run_dir is None and int(os.environ.get("RANK", "0")) == 0:
        run_dir = next_run_dir(request.outdir, f"{cfg.preset}-{Path(cfg.data.path).name}")
    if torchrun:
        run_dir = broadcast_object(run_dir)
    if int(os.environ.get("RANK", "0")) == 0 and (resume_path is None or plan.config_changed):
        _write_config(Path(run_dir), cfg)
    loop = launch(cfg, Path(run_dir), resume_path)
    return TrainResult(run_dir=str(run_dir), conflicts=conflicts, loop=loop)


def launch(cfg: TrainConfig, run_dir: Path, resume_path: Path | None):
    """Run in this process (one process or under torchrun), or spawn ``cfg.run.gpus`` processes."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or cfg.run.gpus <= 1:
        return run(cfg, run_dir, resume_path)
    from stages.common.distributed import spawn

    spawn(_spawned_worker, cfg.run.gpus, (to_dict(cfg), str(run_dir), str(resume_path) if resume_path else None))
    return None


def _spawned_worker(cfg_dict: dict, run_dir: str, resume_path: str | None) -> None:
    from stages.train.config import from_dict

    run(from_dict(cfg_dict), Path(run_dir), Path(resume_path) if resume_path else None)


def run(cfg: TrainConfig, run_dir: str | Path, resume_path: str | Path | None = None):
    """Train ``cfg`` in ``run_dir`` (this process joins the torchrun group if there is one); rank 0's result."""
    from stages.common.distributed import init_distributed
    from stages.common.rundir import attach_log_file
    from stages.data.dataset import LmdbDataset
    from stages.train.loop import Trainer

    run_dir = Path(run_dir)
    dist = init_distributed(cfg.run.device)
    handler = attach_log_file(run_dir) if dist.is_main else None
    try:
        dataset = LmdbDataset(cfg.data.path, mirror=cfg.data.mirror, max_items=cfg.data.max_items)
        trainer = Trainer(cfg, run_dir, dist, dataset, Path(resume_path) if resume_path else None)
        result = trainer.run()
        if dist.is_main:
            logger.info("done: kimg %.3f, %s", result.cur_nimg / 1000, result.last_snapshot)
        return result if dist.is_main else None
    finally:
        if handler is not None:
            logging.getLogger("stages").removeHandler(handler)
            handler.close()
