"""Config resolution for new runs (preset + overrides + dataset) and for ``--resume`` (saved config + guarded
overrides) (issue 5; peers-and-user-pain §3 item 5: "resume is broken" that was really a different config).

On resume the saved config wins: every option given with ``--resume`` that disagrees with it is reported by name
(``--batch 32 conflicts with the saved run.batch = 64``) and ignored unless ``--force-override``; architecture
(``model.*``) can never change on resume. Runtime options (:data:`RUNTIME_KEYS`: device, process count, micro-batch,
loader workers, the session's ``--minutes`` and ``--min-kimg``, CPU ``--threads``) are not part of a run's identity and change freely,
logged (issue 18 row 13); the global batch stays, so another process count splits the same batch differently.

The dataset is stored as an absolute path plus its fingerprint (``data.meta_sha256``, issue 19 §3); a resume checks
both (``stages.data.fingerprint``), and ``--data PATH`` points it at the same dataset moved elsewhere.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from stages.common import checkpoint as ckpt
from stages.common.errors import BadFileError, BadOptionError, ConfigValueError, DataFormatError
from stages.common.rundir import latest_run_dir, run_dirs
from stages.common.validate import deferred_combinations
from stages.data.fingerprint import meta_fingerprint, resolve_run_dataset
from stages.nn.checkpoints import load_checkpoint
from stages.train.config import TrainConfig, from_dict, get_train_preset, replace_section, to_dict
from stages.train.overrides import Override, apply_overrides, get_value, set_value

logger = logging.getLogger(__name__)

# Options that say where and how a run computes, not what: free to change on resume (issue 18 row 13: a queue gives
# 4 GPUs today, 8 tomorrow). The global batch (run.batch) is part of the run; the process count and the micro-batch
# only split it (stages.train.step: every micro-batch reseeds from its global slot, the sampler positions itself
# from cur_nimg), so with the same micro-batch a resume on another process count continues exactly.
RUNTIME_KEYS = ("run.gpus", "run.device", "run.batch_gpu", "data.workers", "run.minutes", "run.min_kimg",
                "run.threads")


@dataclass
class ResumePlan:
    """Where and how to resume."""

    cfg: TrainConfig  # the config to continue with
    run_dir: Path  # the run directory
    state_path: Path | None  # the training state to load; None = the run died before its first state: start it
    conflicts: list[str] = field(default_factory=list)  # reported option conflicts
    config_changed: bool = False  # the config differs from the saved one (rewrite config.json)
    resume_nimg: int | None = None  # cur_nimg of the training state resumed from (None: no state yet)
    notes: list[tuple[int, str]] = field(default_factory=list)  # (log level, message) to log once accepted
    state: dict | None = field(default=None, repr=False)  # the training state as read (handed to the loop once)

    def take_state(self) -> dict | None:
        """The training state read while resolving, handed over once (the run keeps no second copy)."""
        state, self.state = self.state, None
        return state

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
    fingerprint = meta_fingerprint(ds.meta)
    ds.close()
    cfg = replace_section(cfg, "loss", kd_weight=kd_weight)
    # Paths resolve once (issue 19 §3): the run records where its dataset is, and which dataset it is.
    cfg = replace_section(cfg, "data", path=os.path.abspath(cfg.data.path), meta_sha256=fingerprint)
    from dataclasses import replace

    return replace(cfg, model=model)


def check_dataset_matches(cfg: TrainConfig, data_given: bool) -> None:
    """On resume: the run's dataset opens and fits the saved model (resolution, depth, classes, KD size); its path
    and fingerprint were checked before (:func:`resolve_resume_dataset`)."""
    fix = "use the dataset the run was trained on" if data_given else \
        "pass --data PATH to the dataset the run was trained on"
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


def _saved_config(run_dir: Path, state_path: Path | None) -> tuple[TrainConfig, int | None, dict | None]:
    """(the config to continue, the state's cur_nimg, the state as read): from the training state (read once,
    issue 20 §6), or ``config.json`` without one."""
    if state_path is None:
        return read_run_config(run_dir), None, None
    saved = load_checkpoint(state_path, kind="training-state")
    try:
        cfg = from_dict(saved.get("config"))
    except ConfigValueError as exc:
        raise ckpt.CheckpointError(state_path, f"bad saved config: {exc}") from None
    check_state_fits(cfg, saved, state_path)
    return cfg, saved["counters"]["cur_nimg"], saved


def _sort_overrides(cfg: TrainConfig, preset: str | None, overrides: list[Override], force_override: bool):
    """The options given with ``--resume``, sorted: (conflict messages, runtime overrides, forced overrides, the
    ``--data`` value or None). Values equal to the saved ones are dropped."""
    conflicts, runtime, forced, data = [], [], [], None
    if preset is not None and preset != cfg.preset:
        conflicts.append(f"--preset {preset} conflicts with the saved preset {cfg.preset}; keeping {cfg.preset}")
    for ov in overrides:
        if ov.key == "data.path":  # checked against the run's dataset fingerprint (resolve_resume_dataset)
            data = ov.value
            continue
        current = get_value(cfg, ov.key)
        with deferred_combinations():  # each value alone; combinations once the kept ones are applied
            wanted = get_value(set_value(cfg, ov.key, ov.value, ov.flag), ov.key)
        if wanted == current:
            continue
        if ov.key in RUNTIME_KEYS:
            runtime.append(ov)
        elif force_override and not ov.key.startswith("model."):
            forced.append(ov)
            conflicts.append(f"{ov.flag} {wanted} overrides the saved {ov.key} = {current} (--force-override)")
        elif ov.key.startswith("model."):
            conflicts.append(f"{ov.flag} {wanted} conflicts with the saved {ov.key} = {current}; the architecture "
                             f"cannot change on resume, keeping {current}")
        else:
            conflicts.append(f"{ov.flag} {wanted} conflicts with the saved {ov.key} = {current}; keeping {current} "
                             f"(pass --force-override to use {wanted})")
    return conflicts, runtime, forced, data


def apply_runtime_overrides(cfg: TrainConfig, runtime: list[Override], notes: list) -> TrainConfig:
    """``cfg`` with the runtime options given on resume (:data:`RUNTIME_KEYS`), each noted for the log.

    Another process count keeps the global batch: each process then takes ``batch / gpus`` (refused in one line
    when that does not divide). A micro-batch saved with the run that no longer fits the new per-process batch is
    dropped (``--batch-gpu`` unset: one round of ``batch / gpus``) unless ``--batch-gpu`` is given too."""
    if not runtime:
        return cfg
    batch, given = cfg.run.batch, {ov.key: ov for ov in runtime}
    if "run.gpus" in given:
        gpus_ov = given["run.gpus"]
        with deferred_combinations():
            gpus = get_value(set_value(cfg, gpus_ov.key, gpus_ov.value, gpus_ov.flag), gpus_ov.key)
        if batch % gpus:
            raise BadOptionError(gpus_ov.flag, f"{gpus} processes cannot split the run's global batch {batch} (the "
                                               f"batch stays on resume); use a process count that divides {batch}")
        per_rank, batch_gpu = batch // gpus, cfg.run.batch_gpu
        if "run.batch_gpu" not in given and batch_gpu is not None and (batch_gpu > per_rank or per_rank % batch_gpu):
            runtime = [*runtime, Override(gpus_ov.flag, "run.batch_gpu", None)]
            notes.append((logging.WARNING, f"the run's micro-batch (--batch-gpu {batch_gpu}) does not fit {per_rank} "
                                           f"images per process: using {per_rank}"))
    new = apply_overrides(cfg, runtime)
    for ov in given.values():
        notes.append((logging.INFO, f"{ov.flag} {get_value(new, ov.key)} (the run had {get_value(cfg, ov.key)}): "
                                    f"a runtime option, changed on resume"))
    if new.run.gpus != cfg.run.gpus:
        notes.append((logging.INFO, f"{cfg.run.gpus} -> {new.run.gpus} processes: the global batch {batch} stays, "
                                    f"{batch // new.run.gpus} per process; counters, EMA and the data order continue"))
    return new


def resolve_resume_dataset(cfg: TrainConfig, data: str | None, force_override: bool, notes: list) -> TrainConfig:
    """``cfg`` with the dataset checked and recorded (absolute path, fingerprint; issue 19 §3).

    Without ``--data`` the recorded dataset must be where the run says and hold its fingerprint. ``--data PATH``
    moves the run to that path: accepted when it is the same dataset (same fingerprint), refused in one line
    otherwise unless ``--force-override``. Then the dataset must fit the saved model."""
    before = cfg.data.path
    path, fingerprint = resolve_run_dataset(to_dict(cfg), data, strict_override=not force_override,
                                            warn=lambda message: notes.append((logging.WARNING, message)))
    if path != before:
        notes.append((logging.INFO, f"the run's dataset is {path} (recorded: {before or 'none'})"))
    cfg = replace_section(cfg, "data", path=path, meta_sha256=fingerprint)
    check_dataset_matches(cfg, data_given=data is not None)
    return cfg


def resolve_resume(outdir: str, resume_from: str | None, preset: str | None, overrides: list[Override],
                   force_override: bool) -> ResumePlan:
    """The saved config of the run to resume, with conflicting options reported (saved wins unless forced),
    runtime options applied, and the dataset checked."""
    notes: list[tuple[int, str]] = []
    run_dir, state_path = _find_state(outdir, resume_from, notes)
    saved, nimg, state = _saved_config(run_dir, state_path)
    conflicts, runtime, forced, data = _sort_overrides(saved, preset, overrides, force_override)
    cfg = apply_runtime_overrides(saved, runtime, notes)
    if forced:
        cfg = apply_overrides(cfg, forced)
    cfg = resolve_resume_dataset(cfg, data, force_override, notes)
    notes += [(logging.WARNING, message) for message in conflicts]
    if state_path is None:
        notes.append((logging.WARNING, f"{run_dir} has no training state (it stopped before its first one): "
                                       f"starting it from its saved config.json"))
    else:
        notes.append((logging.INFO, f"resuming {run_dir} from {state_path.name} (kimg {nimg / 1000:.3f})"))
    return ResumePlan(cfg=cfg, run_dir=run_dir, state_path=state_path, conflicts=conflicts,
                      config_changed=cfg != saved, notes=notes, resume_nimg=nimg, state=state)


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
