"""Config resolution for new runs (preset + overrides + dataset) and for ``--resume`` (saved config + guarded
overrides) (issue 5; peers-and-user-pain §3 item 5: "resume is broken" that was really a different config).

On resume the saved config wins: every option given with ``--resume`` that disagrees with it is reported by name
(``--batch 32 conflicts with the saved run.batch = 64``) and ignored unless ``--force-override``; architecture
(``model.*``) can never change on resume.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from stages.common import checkpoint as ckpt
from stages.common.errors import BadOptionError
from stages.common.rundir import latest_run_dir
from stages.train.config import TrainConfig, from_dict, get_train_preset, replace_section
from stages.train.overrides import Override, apply_overrides, get_value, set_value

logger = logging.getLogger(__name__)


@dataclass
class ResumePlan:
    """Where and how to resume."""

    cfg: TrainConfig  # the config to continue with
    run_dir: Path  # the run directory
    state_path: Path  # the training state to load
    conflicts: list[str] = field(default_factory=list)  # reported option conflicts
    config_changed: bool = False  # forced overrides changed the config (rewrite config.json)


def fit_to_dataset(cfg: TrainConfig) -> TrainConfig:
    """Derive dataset-dependent model fields: resolution, classes, KD embedding size, depth (ref §4.3, §7.1)."""
    from stages.data.dataset import LmdbDataset
    from stages.nn.config import with_overrides

    if not cfg.data.path:
        raise BadOptionError("--data", "required: a dataset directory written by `3dgp prep`")
    if not Path(cfg.data.path).exists():
        raise BadOptionError("--data", f"{cfg.data.path}: no such dataset directory")
    ds = LmdbDataset(cfg.data.path)
    m = cfg.model
    if ds.resolution < m.patch_resolution:
        raise BadOptionError("--data", f"resolution {ds.resolution} is below the preset's patch resolution "
                                       f"{m.patch_resolution}; use a smaller preset")
    if m.img_channels == 4 and not ds.has_depth:
        raise BadOptionError("--data", f"{cfg.data.path} has no depth maps; prep it with a depth model or train "
                                       f"with --no-depth")
    c_dim = 0
    if cfg.data.cond:
        if ds.num_classes == 0:
            raise BadOptionError("--set data.cond", f"{cfg.data.path} has no class labels")
        c_dim = ds.num_classes
    kd_weight = cfg.loss.kd_weight
    if kd_weight > 0 and ds.embedding_dim == 0:
        logger.warning("%s has no embeddings: knowledge distillation is off (--kd-weight 0)", cfg.data.path)
        kd_weight = 0.0
    kd_dim = ds.embedding_dim if kd_weight > 0 else 0
    model = with_overrides(m, img_resolution=ds.resolution, c_dim=c_dim, discriminator={"kd_dim": kd_dim})
    if ds.resolution != m.img_resolution:
        logger.info("img_resolution %d -> %d (the dataset's)", m.img_resolution, ds.resolution)
    ds.close()
    cfg = replace_section(cfg, "loss", kd_weight=kd_weight)
    from dataclasses import replace

    return replace(cfg, model=model)


def resolve_new_config(preset: str, overrides: list[Override], fit: bool = True) -> TrainConfig:
    """Preset, then the user's options in order, then dataset-derived model fields."""
    cfg = apply_overrides(get_train_preset(preset), overrides)
    _validate(cfg)
    return fit_to_dataset(cfg) if fit else cfg


def _validate(cfg: TrainConfig) -> None:
    r = cfg.run
    if r.batch < 1 or r.kimg < 0 or r.tick_kimg <= 0:
        raise BadOptionError("--batch", "batch must be >= 1, kimg >= 0 and tick_kimg > 0")
    from stages.metrics.registry import parse_metric

    for name in r.metrics:
        if parse_metric(name).kind == "is":
            raise BadOptionError("--metrics", f"{name}: the Inception score needs --is-weights; compute it with "
                                              f"`3dgp eval` instead")


def _find_state(outdir: str, resume_from: str | None) -> tuple[Path, Path]:
    if resume_from is None:
        run_dir = latest_run_dir(outdir)
        if run_dir is None:
            raise BadOptionError("--resume", f"no run directory with a config.json under {outdir}")
        target = run_dir
    else:
        target = Path(resume_from)
        if not target.exists():
            raise BadOptionError("--resume", f"{resume_from}: no such run directory or checkpoint")
    if target.is_file():
        return target.parent, target
    state = ckpt.latest_training_state(target)
    if state is None:
        raise BadOptionError("--resume", f"{target}: no training-state-*.pt to resume from")
    return target, state


def resolve_resume(outdir: str, resume_from: str | None, preset: str | None, overrides: list[Override],
                   force_override: bool) -> ResumePlan:
    """The saved config of the run to resume, with conflicting options reported (saved wins unless forced)."""
    run_dir, state_path = _find_state(outdir, resume_from)
    saved = ckpt.load_checkpoint(state_path, kind="training-state")
    cfg = from_dict(saved["config"])
    conflicts, changed = [], False
    if preset is not None and preset != cfg.preset:
        conflicts.append(f"--preset {preset} conflicts with the saved preset {cfg.preset}; keeping {cfg.preset}")
    for ov in overrides:
        current = get_value(cfg, ov.key)
        wanted = get_value(set_value(cfg, ov.key, ov.value, ov.flag), ov.key)
        if wanted == current:
            continue
        if force_override and not ov.key.startswith("model."):
            cfg = set_value(cfg, ov.key, ov.value, ov.flag)
            changed = True
            conflicts.append(f"{ov.flag} {wanted} overrides the saved {ov.key} = {current} (--force-override)")
        elif ov.key.startswith("model."):
            conflicts.append(f"{ov.flag} {wanted} conflicts with the saved {ov.key} = {current}; the architecture "
                             f"cannot change on resume, keeping {current}")
        else:
            conflicts.append(f"{ov.flag} {wanted} conflicts with the saved {ov.key} = {current}; keeping {current} "
                             f"(pass --force-override to use {wanted})")
    for message in conflicts:
        logger.warning("%s", message)
    logger.info("resuming %s from %s (kimg %.3f)", run_dir, state_path.name, saved["counters"]["cur_nimg"] / 1000)
    return ResumePlan(cfg=cfg, run_dir=run_dir, state_path=state_path, conflicts=conflicts, config_changed=changed)


def read_run_config(run_dir: str | Path) -> TrainConfig:
    """The ``config.json`` of a run directory."""
    path = Path(run_dir) / "config.json"
    try:
        return from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        raise ckpt.CheckpointError(path, f"cannot read run config ({exc})") from None
