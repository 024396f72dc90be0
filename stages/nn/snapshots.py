"""Which snapshots a ``CKPT`` argument designates, and loading one as a ready generator (3DGP ref §8.1, §10.1).

Shared by ``3dgp eval`` and ``3dgp export`` (and ``3dgp info``'s checkpoint test), so it sits below the stages:
``CKPT`` is a ``snapshot-*.pt`` (or a ``training-state-*.pt``: its G_ema), or a run directory with
``--snapshots best`` (the best snapshot recorded by training's first metric; the newest when none is recorded),
``latest`` or ``all`` (every snapshot, oldest first: a metric curve over the run). Files are read through
:func:`stages.nn.checkpoints.load_checkpoint` (format and model checked before the generator is built).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from stages.common import checkpoint as ckpt
from stages.common.errors import BadOptionError, CheckpointError
from stages.common.hashing import sha256_file
from stages.nn.checkpoints import load_checkpoint

logger = logging.getLogger(__name__)
SNAPSHOT_CHOICES = ("best", "latest", "all")


@dataclass
class LoadedSnapshot:
    """G_ema in eval mode plus what the card records about where it came from."""

    G: object  # stages.nn.generator.Generator, eval mode, no grad, on the requested device
    model_config: object  # stages.nn.config.ModelConfig
    config: dict  # the run's full training config (as saved)
    kimg: float
    path: Path
    kind: str  # "snapshot" | "training-state"

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    def describe(self) -> dict:
        return {"path": str(self.path.resolve()), "sha256": sha256_file(self.path), "kind": self.kind,
                "kimg": self.kimg, "preset": self.config.get("preset")}


def _best_snapshot(run_dir: Path, snaps: list[tuple[float, Path]]) -> Path:
    state = ckpt.latest_training_state(run_dir)
    if state is not None:
        # one record of the newest training state: mapped, not read (issue 20 §6); its model is not built here
        best = ckpt.load_checkpoint(state, kind="training-state", mmap=True).get("best") or {}
        name = best.get("snapshot")
        if name and (run_dir / name).is_file():
            logger.info("best snapshot by %s = %.4g: %s", best.get("metric"), best.get("value", float("nan")), name)
            return run_dir / name
    logger.info("no best snapshot recorded in %s; using the newest, %s", run_dir, snaps[-1][1].name)
    return snaps[-1][1]


def resolve_snapshots(path: str | Path, which: str = "best") -> list[Path]:
    """The checkpoint files that ``CKPT`` and ``--snapshots`` designate (module docstring)."""
    if which not in SNAPSHOT_CHOICES:
        raise BadOptionError("--snapshots", f"expected one of {', '.join(SNAPSHOT_CHOICES)}, got {which!r}")
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CheckpointError(path, "no such snapshot file or run directory")
    snaps = ckpt.list_checkpoints(path, ckpt.SNAPSHOT_PREFIX)
    if not snaps:
        raise CheckpointError(path, "no snapshot-*.pt in this run directory (train longer, or pass a file)")
    if which == "all":
        return [p for _, p in snaps]
    if which == "latest":
        return [snaps[-1][1]]
    return [_best_snapshot(path, snaps)]


def load_snapshot(path: str | Path, device) -> LoadedSnapshot:
    """Load a snapshot (or a training state's G_ema), build the generator, put it in eval mode on ``device``."""
    from stages.nn.build import build_generator
    from stages.nn.config import from_dict as model_from_dict

    path = Path(path)
    obj = load_checkpoint(path)
    kind = obj.get("kind")
    if kind == "snapshot":
        model_dict = obj["model_config"]
    elif kind == "training-state":
        model_dict = obj["config"]["model"]
    else:
        raise CheckpointError(path, f"expected a snapshot or a training state, found {kind!r}")
    model_cfg = model_from_dict(model_dict)
    G = build_generator(model_cfg)
    ckpt.load_module_state(G, obj["G_ema"], path, "G_ema")
    G = G.to(device).eval().requires_grad_(False)
    kimg = float(obj["kimg"]) if kind == "snapshot" else obj["counters"]["cur_nimg"] / 1000
    config = json.loads(json.dumps(obj.get("config") or {}))
    return LoadedSnapshot(G=G, model_config=model_cfg, config=config, kimg=kimg, path=path, kind=kind)


def is_checkpoint_file(path: str | Path) -> bool:
    """Whether ``path`` is named like a 3dgp checkpoint (``snapshot-*.pt`` / ``training-state-*.pt``)."""
    return Path(path).is_file() and Path(path).suffix == ".pt"
