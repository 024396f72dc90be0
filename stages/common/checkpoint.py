"""Checkpoint files: data, not code (style guide principle 9; 3DGP ref §10 and what it got wrong).

Two artefacts, both plain ``dict``s of tensors and primitive containers, loadable with
``torch.load(path, weights_only=True)``:

* ``training-state-<kimg>.pt`` (kind ``"training-state"``): ``G``, ``D``, ``G_ema`` state_dicts, ``opt_G``/``opt_D``
  optimizer state_dicts, ``counters`` (cur_nimg, cur_tick, batch_idx, seed stream, rollbacks), ``rng`` states,
  ``sampler`` position, ``best`` metric record, the resolved ``config`` and ``format_version``.
* ``snapshot-<kimg>.pt`` (kind ``"snapshot"``): ``G_ema`` state_dict, the ``model_config`` dict (what
  ``stages.nn.build`` needs), the full ``config``, ``kimg`` and ``format_version``. Eval and export read this.

Files are written to ``<name>.tmp`` and renamed with ``os.replace``, so a crash never leaves a torn file under the
final name; :func:`list_training_states` ignores ``*.tmp`` leftovers. Compatibility shims for older formats go in
:func:`_upgrade` and nowhere else.

A checkpoint is data from elsewhere (issue 19 §6): :func:`load_checkpoint` validates its format before anything is
built from it -- version, kind, the required records, ``kimg`` / ``counters`` as numbers, the best-snapshot record
and ``config`` as plain JSON data. The checks that need the networks (the stored model config like a user's, with the
caps of :mod:`stages.nn.config`; ``G_ema``'s tensors against a generator built on the ``meta`` device; NaN weights)
are one floor up, in :mod:`stages.nn.checkpoints`, whose ``load_checkpoint`` does both: eval, export, info and a
resume read checkpoints through it. Every problem is one :class:`~stages.common.errors.CheckpointError` line naming
the file. This module imports nothing above ``stages.common``.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any

from stages.common.configs import plain
from stages.common.errors import CheckpointError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
STATE_PREFIX = "training-state-"
SNAPSHOT_PREFIX = "snapshot-"
_KIMG_RE = re.compile(r"^(training-state|snapshot)-(\d+(?:\.\d+)?)\.pt$")


def kimg_tag(cur_nimg: int) -> str:
    """File-name tag for a progress point: kimg with 3 decimals, zero padded (sorts lexicographically)."""
    return f"{cur_nimg / 1000:010.3f}"


def state_path(run_dir: str | Path, cur_nimg: int) -> Path:
    """``<run_dir>/training-state-<kimg>.pt``."""
    return Path(run_dir) / f"{STATE_PREFIX}{kimg_tag(cur_nimg)}.pt"


def snapshot_path(run_dir: str | Path, cur_nimg: int) -> Path:
    """``<run_dir>/snapshot-<kimg>.pt``."""
    return Path(run_dir) / f"{SNAPSHOT_PREFIX}{kimg_tag(cur_nimg)}.pt"


def save_atomic(obj: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` to ``<path>.tmp``, fsync, then ``os.replace`` onto ``path`` (atomic on POSIX)."""
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def save_training_state(path: str | Path, *, G, D, G_ema, opt_G, opt_D, counters: dict, rng: dict,
                        sampler: dict, best: dict, config: dict) -> Path:
    """Write a resumable training state (module/optimizer state_dicts + counters + RNG + config) atomically."""
    obj = {
        "format_version": FORMAT_VERSION,
        "kind": "training-state",
        "G": G.state_dict(),
        "D": D.state_dict(),
        "G_ema": G_ema.state_dict(),
        "opt_G": opt_G.state_dict(),
        "opt_D": opt_D.state_dict(),
        "counters": dict(counters),
        "rng": rng,
        "sampler": dict(sampler),
        "best": plain(best),
        "config": plain(config),
    }
    return save_atomic(obj, path)


def save_snapshot(path: str | Path, *, G_ema, model_config: dict, config: dict, cur_nimg: int,
                  extra: dict | None = None) -> Path:
    """Write an inference snapshot (G_ema + model config + run config + format version) atomically."""
    obj = {
        "format_version": FORMAT_VERSION,
        "kind": "snapshot",
        "G_ema": G_ema.state_dict(),
        "model_config": plain(model_config),
        "config": plain(config),
        "kimg": cur_nimg / 1000,
        "extra": plain(extra or {}),
    }
    return save_atomic(obj, path)


def _upgrade(obj: dict, path: Path) -> dict:
    """Bring an older checkpoint dict to :data:`FORMAT_VERSION` (no older formats exist yet)."""
    version = obj.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(path, f"unsupported checkpoint format_version {version!r} (this 3dgp reads "
                                    f"{FORMAT_VERSION})")
    return obj


def load_checkpoint(path: str | Path, kind: str | None = None, map_location: Any = "cpu", mmap: bool = False) -> dict:
    """Load a checkpoint with ``weights_only=True``; check its format version and (optionally) its kind. With
    ``mmap`` the tensors are mapped, not read: cheap when only a record (counters, best) is needed."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol warnings are not for the user
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - a torn or foreign file is a user-facing problem
        raise CheckpointError(path, f"cannot read checkpoint: {describe_load_failure(exc)}") from None
    if not isinstance(obj, dict) or "format_version" not in obj:
        raise CheckpointError(path, "not a 3dgp checkpoint (no format_version)")
    obj = _upgrade(obj, path)
    if kind is not None and obj.get("kind") != kind:
        raise CheckpointError(path, f"expected a {kind} checkpoint, found {obj.get('kind')!r}")
    missing = [key for key in REQUIRED_KEYS.get(obj.get("kind"), ()) if key not in obj]
    if missing:
        raise CheckpointError(path, f"incomplete {obj.get('kind')} checkpoint: no {', '.join(missing)}")
    check_contents(obj, path)
    return obj


def check_contents(obj: dict, path: str | Path) -> None:
    """Validate the records of a loaded snapshot or training state (module docstring; the model's own checks are
    :func:`stages.nn.checkpoints.check_model_contents`); CheckpointError naming ``path``. Other kinds are left
    alone."""
    kind = obj.get("kind")
    if kind == "snapshot":
        kimg = obj["kimg"]
        if not _is_number(kimg) or not 0 <= kimg < 1e12:
            raise CheckpointError(path, f"damaged snapshot: kimg must be a number >= 0, got {kimg!r:.40}")
    elif kind == "training-state":
        counters = obj["counters"]
        nimg = counters.get("cur_nimg") if isinstance(counters, dict) else None
        if not (isinstance(nimg, int) and not isinstance(nimg, bool) and nimg >= 0):
            raise CheckpointError(path, f"damaged training state: counters.cur_nimg must be an integer >= 0, got "
                                        f"{nimg!r:.40}")
        _check_best(obj.get("best"), path)
    else:
        return
    try:
        json.dumps(obj.get("config") or {})
    except (TypeError, ValueError):
        raise CheckpointError(path, f"damaged {kind}: its config is not plain JSON data") from None
    if not isinstance(obj.get("config") or {}, dict):
        raise CheckpointError(path, f"damaged {kind}: its config is not a mapping")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_best(best: Any, path: str | Path) -> None:
    """A training state's best-metric record: a mapping whose ``snapshot`` (if any) is a file name in the run."""
    if best is None:
        return
    name = best.get("snapshot") if isinstance(best, dict) else None
    if not isinstance(best, dict) or not (name is None or (isinstance(name, str) and name == Path(name).name
                                                            and name not in ("", ".", ".."))):
        raise CheckpointError(path, "damaged training state: its best-snapshot record is not a snapshot file name")


REQUIRED_KEYS = {
    "training-state": ("G", "D", "G_ema", "opt_G", "opt_D", "counters", "config"),
    "snapshot": ("G_ema", "model_config", "kimg"),
}


def describe_load_failure(exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in one line (torch's own text suggests unsafe loading)."""
    import pickle

    text = str(exc)
    if isinstance(exc, EOFError) or "EOF" in text:
        return "the file is empty or truncated (an interrupted copy?)"
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in text:
        match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if match:
            return (f"it refers to Python code ({match.group(1)}); 3dgp only loads tensors and plain containers, "
                    f"so this is not a 3dgp checkpoint")
        return "damaged or not a torch checkpoint (unreadable pickle data)"
    if "zip archive" in text or "PytorchStreamReader" in text:
        return "damaged or truncated (not a complete torch zip file)"
    return f"damaged or not a torch checkpoint ({type(exc).__name__})"


def state_dict_differences(expected: dict, found: dict) -> tuple[list[str], list[str], list[str]]:
    """(missing keys, unexpected keys, keys whose shapes differ) of ``found`` against ``expected`` (state dicts)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [k for k in expected
              if k in found and tuple(getattr(found[k], "shape", ())) != tuple(expected[k].shape)]
    return missing, unexpected, shapes


def check_module_state(own: dict, state: Any, path: str | Path, name: str) -> None:
    """``CheckpointError`` (one line saying what differs) unless ``state`` has exactly the tensors of ``own`` (a
    module's ``state_dict()``, e.g. of a model built on the ``meta`` device) with the same shapes."""
    if not isinstance(state, dict):
        raise CheckpointError(path, f"{name} is not a state dict")
    missing, unexpected, mismatched = state_dict_differences(own, state)
    shapes = [f"{k} {list(getattr(state[k], 'shape', []))} vs {list(own[k].shape)}" for k in mismatched]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s) (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s) (e.g. {unexpected[0]})")
    if shapes:
        problems.append(f"{len(shapes)} tensor(s) of another shape (e.g. {shapes[0]})")
    if problems:
        raise CheckpointError(path, f"{name} does not match the configured model: {'; '.join(problems)}")


def load_module_state(module, state: Any, path: str | Path, name: str) -> None:
    """``module.load_state_dict(state, strict=True)``, or one ``CheckpointError`` line that says what differs."""
    check_module_state(module.state_dict(), state, path, name)
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(path, f"{name} does not match the configured model ({first})") from None


def list_checkpoints(run_dir: str | Path, prefix: str = STATE_PREFIX) -> list[tuple[float, Path]]:
    """``[(kimg, path)]`` of complete checkpoints with ``prefix`` in ``run_dir``, oldest first."""
    run_dir = Path(run_dir)
    found = []
    for p in run_dir.glob(f"{prefix}*.pt"):
        match = _KIMG_RE.match(p.name)
        if match and p.name.startswith(prefix):
            found.append((float(match.group(2)), p))
    return sorted(found)


def list_training_states(run_dir: str | Path) -> list[tuple[float, Path]]:
    """``[(kimg, path)]`` of the training states in ``run_dir``, oldest first (``*.tmp`` leftovers ignored)."""
    return list_checkpoints(run_dir, STATE_PREFIX)


def latest_training_state(run_dir: str | Path) -> Path | None:
    """The most advanced training state in ``run_dir``, or ``None``."""
    states = list_training_states(run_dir)
    return states[-1][1] if states else None


def prune_training_states(run_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` training states (and stale ``*.tmp`` files); returns what was removed."""
    removed = []
    states = list_training_states(run_dir)
    for _, path in states[: max(len(states) - max(keep, 1), 0)]:
        path.unlink(missing_ok=True)
        removed.append(path)
    for tmp in Path(run_dir).glob(f"{STATE_PREFIX}*.pt.tmp"):
        tmp.unlink(missing_ok=True)
    return removed
