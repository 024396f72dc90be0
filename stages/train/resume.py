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
from stages.common.errors import BadFileError, BadOptionError, ConfigValueError, DataFormatError
from stages.common.rundir import latest_run_dir, run_dirs
from stages.train.config import TrainConfig, from_dict, get_train_preset, replace_section
from stages.train.overrides import Override, apply_overrides, get_value, set_value

logger = logging.getLogger(__name__)


@dataclass
class ResumePlan:
    """Where and how to resume."""

    cfg: TrainConfig  # the config to continue with
    run_dir: Path  # the run directory
    state_path: Path | None  # the training state to load; None = the run died before its first state: start it
    conflicts: list[str] = field(default_factory=list)  # reported option conflicts
    config_changed: bool = False  # forced overrides changed the config (rewrite config.json)
    notes: list[tuple[int, str]] = field(default_factory=list)  # (log level, message) to log once accepted

    def log(self) -> None:
        """Log the conflicts and notes (once the start is accepted, so that a refusal stays one line)."""
        for level, message in self.notes:
            logger.log(level, "%s", message)


def _open_dataset(cfg: TrainConfig):
    from stages.data.dataset import LmdbDataset

    if not cfg.data.path:
        raise BadOptionError("--data", "required: a dataset directory written by `3dgp prep`")
    if not Path(cfg.data.path).exists():
        raise BadOptionError("--data", f"{cfg.data.path}: no such dataset directory")
    if not Path(cfg.data.path).is_dir():
        raise BadOptionError("--data", f"{cfg.data.path}: not a directory (give the dataset folder written by "
                                       f"`3dgp prep`)")
    ds = LmdbDataset(cfg.data.path)
    if ds.num_items == 0:
        raise DataFormatError(cfg.data.path, "the dataset has no items")
    return ds


def fit_to_dataset(cfg: TrainConfig) -> TrainConfig:
    """Derive dataset-dependent model fields: resolution, classes, KD embedding size, depth (ref §4.3, §7.1)."""
    from stages.nn.config import with_overrides

    ds = _open_dataset(cfg)
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
    try:
        model = with_overrides(m, img_resolution=ds.resolution, c_dim=c_dim, discriminator={"kd_dim": kd_dim})
    except ConfigValueError as exc:
        raise BadOptionError("--data", f"{cfg.data.path}: does not fit the model ({exc})") from None
    if ds.resolution != m.img_resolution:
        logger.info("img_resolution %d -> %d (the dataset's)", m.img_resolution, ds.resolution)
    ds.close()
    cfg = replace_section(cfg, "loss", kd_weight=kd_weight)
    from dataclasses import replace

    return replace(cfg, model=model)


def check_dataset_matches(cfg: TrainConfig, data_given: bool) -> None:
    """On resume: the run's dataset still exists and fits the saved model (resolution, depth, classes, KD size)."""
    fix = "use the dataset the run was trained on" if data_given else \
        "pass --data NEW --force-override to continue on a copy of it"
    try:
        ds = _open_dataset(cfg)
    except (BadOptionError, BadFileError) as exc:
        if data_given:
            raise
        reason = exc.message
        raise BadOptionError("--data", f"the run's dataset {cfg.data.path} cannot be opened ({reason}); "
                                       f"{fix}") from None
    m, problems = cfg.model, []
    if ds.resolution != m.img_resolution:
        problems.append(f"resolution {ds.resolution} differs from the run's {m.img_resolution}")
    if m.img_channels == 4 and not ds.has_depth:
        problems.append("it has no depth maps but the run trains with depth")
    if m.discriminator.kd_dim and ds.embedding_dim != m.discriminator.kd_dim:
        problems.append(f"embedding dim {ds.embedding_dim} does not match the run's KD head "
                        f"({m.discriminator.kd_dim})")
    if m.c_dim and ds.num_classes != m.c_dim:
        problems.append(f"{ds.num_classes} classes where the run has {m.c_dim}")
    ds.close()
    if problems:
        raise BadOptionError("--data", f"{cfg.data.path}: {'; '.join(problems)}; {fix}")


def resolve_new_config(preset: str, overrides: list[Override], fit: bool = True) -> TrainConfig:
    """Preset, then the user's options in order, then dataset-derived model fields."""
    cfg = apply_overrides(get_train_preset(preset), overrides)
    return fit_to_dataset(cfg) if fit else cfg


def _find_state(outdir: str, resume_from: str | None, notes: list) -> tuple[Path, Path | None]:
    """(run dir, training state or None when that run never saved one)."""
    if resume_from is None:
        run_dir = latest_run_dir(outdir, require_state=True)
        newer = [p for p in run_dirs(outdir) if (p / "config.json").is_file()]
        newer = newer[:newer.index(run_dir)] if run_dir in newer else newer
        if newer:
            notes.append((logging.WARNING, f"skipping {', '.join(p.name for p in newer)}: no training state (the "
                                           f"run stopped before its first one); resume it by name with "
                                           f"`3dgp train --resume {newer[0]}`"))
        if run_dir is None:
            raise BadOptionError("--resume", f"no run directory with a training state under {outdir}")
        target = run_dir
    else:
        target = Path(resume_from)
        if not target.exists():
            raise BadOptionError("--resume", f"{resume_from}: no such run directory or checkpoint")
    if target.is_file():
        return target.parent, target
    state = ckpt.latest_training_state(target)
    if state is None and not (target / "config.json").is_file():
        raise BadOptionError("--resume", f"{target}: not a run directory (no training-state-*.pt, no config.json)")
    return target, state


def resolve_resume(outdir: str, resume_from: str | None, preset: str | None, overrides: list[Override],
                   force_override: bool) -> ResumePlan:
    """The saved config of the run to resume, with conflicting options reported (saved wins unless forced)."""
    notes: list[tuple[int, str]] = []
    run_dir, state_path = _find_state(outdir, resume_from, notes)
    if state_path is not None:
        saved = ckpt.load_checkpoint(state_path, kind="training-state")
        try:
            cfg = from_dict(saved.get("config"))
        except ConfigValueError as exc:
            raise ckpt.CheckpointError(state_path, f"bad saved config: {exc}") from None
        kimg = (saved.get("counters") or {}).get("cur_nimg", 0) / 1000
        check_state_fits(cfg, saved, state_path)
    else:
        cfg, kimg = read_run_config(run_dir), None
    conflicts, forced = [], []
    if preset is not None and preset != cfg.preset:
        conflicts.append(f"--preset {preset} conflicts with the saved preset {cfg.preset}; keeping {cfg.preset}")
    for ov in overrides:
        current = get_value(cfg, ov.key)
        wanted = get_value(set_value(cfg, ov.key, ov.value, ov.flag), ov.key)
        if wanted == current:
            continue
        if force_override and not ov.key.startswith("model."):
            forced.append(ov)
            conflicts.append(f"{ov.flag} {wanted} overrides the saved {ov.key} = {current} (--force-override)")
        elif ov.key.startswith("model."):
            conflicts.append(f"{ov.flag} {wanted} conflicts with the saved {ov.key} = {current}; the architecture "
                             f"cannot change on resume, keeping {current}")
        else:
            conflicts.append(f"{ov.flag} {wanted} conflicts with the saved {ov.key} = {current}; keeping {current} "
                             f"(pass --force-override to use {wanted})")
    if forced:
        cfg = apply_overrides(cfg, forced)
    check_dataset_matches(cfg, data_given=any(ov.key == "data.path" for ov in forced))
    notes += [(logging.WARNING, message) for message in conflicts]
    if state_path is None:
        notes.append((logging.WARNING, f"{run_dir} has no training state (it stopped before its first one): "
                                       f"starting it from its saved config.json"))
    else:
        notes.append((logging.INFO, f"resuming {run_dir} from {state_path.name} (kimg {kimg:.3f})"))
    return ResumePlan(cfg=cfg, run_dir=run_dir, state_path=state_path, conflicts=conflicts,
                      config_changed=bool(forced), notes=notes)


def check_state_fits(cfg: TrainConfig, saved: dict, state_path: Path) -> None:
    """The saved tensors fit the saved model config (compared against networks built on the ``meta`` device: no
    memory, no time), so a damaged state is refused before the run directory is touched."""
    import torch

    from stages.nn.build import build

    with torch.device("meta"):
        G, D = build(cfg.model)
    g_own, d_own = G.state_dict(), D.state_dict()
    for name, own in (("G", g_own), ("D", d_own), ("G_ema", g_own)):
        ckpt.check_module_state(own, saved[name], state_path, name)
    if not isinstance(saved.get("counters"), dict) or not isinstance(saved["counters"].get("cur_nimg"), int):
        raise ckpt.CheckpointError(state_path, "damaged counters record")


def read_run_config(run_dir: str | Path) -> TrainConfig:
    """The ``config.json`` of a run directory."""
    path = Path(run_dir) / "config.json"
    try:
        return from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ckpt.CheckpointError(path, f"cannot read run config ({exc})") from None
    except ConfigValueError as exc:
        raise ckpt.CheckpointError(path, f"bad run config: {exc}") from None
