"""A checkpoint's model, checked before anything is built from it (issue 19 §6; 3DGP ref §10).

:func:`stages.common.checkpoint.load_checkpoint` reads a snapshot or a training state and checks its format (version,
kind, required records, ``kimg`` / ``counters`` as numbers, ``config`` as plain JSON data). The checks that need the
networks live here, one floor up: the stored model config is validated like a user's (types, ranges and the caps of
:mod:`stages.nn.config`, so a forged ``tri_plane_res`` or ``cmax`` is one line, not a division by zero or a terabyte
allocation), and ``G_ema``'s tensors are compared with a generator built on the ``meta`` device (no memory) and
checked for NaN or infinite weights. :func:`load_checkpoint` is both: what eval, export, info and a resume read.
Every problem is one :class:`~stages.common.errors.CheckpointError` line naming the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.common import checkpoint as ckpt
from stages.common.errors import CheckpointError, ConfigValueError


def load_checkpoint(path: str | Path, kind: str | None = None, map_location: Any = "cpu") -> dict:
    """:func:`stages.common.checkpoint.load_checkpoint` (format, kind, records) plus :func:`check_model_contents`."""
    obj = ckpt.load_checkpoint(path, kind=kind, map_location=map_location)
    check_model_contents(obj, path)
    return obj


def check_model_contents(obj: dict, path: str | Path) -> None:
    """The stored model config and ``G_ema`` of a loaded snapshot or training state (module docstring); other
    kinds are left alone. CheckpointError naming ``path``."""
    kind = obj.get("kind")
    if kind == "snapshot":
        model, where = obj["model_config"], "model_config"
    elif kind == "training-state":
        config = obj["config"]
        model, where = (config.get("model") if isinstance(config, dict) else None), "config.model"
    else:
        return
    check_generator_state(validate_model_config_dict(model, path, where), obj["G_ema"], path)


def validate_model_config_dict(data: Any, path: str | Path, where: str = "model_config"):
    """The ``ModelConfig`` a checkpoint stores (``where`` names the record), validated like a user's config (types,
    ranges, caps, combinations); CheckpointError naming ``path`` and the field otherwise."""
    from stages.nn.config import from_dict

    try:
        return from_dict(data)
    except ConfigValueError as exc:
        raise CheckpointError(path, f"its stored model config is not valid ({where}.{exc}); the file is damaged "
                                    "or was not written by 3dgp") from None


def check_generator_state(model_cfg, state: Any, path: str | Path, name: str = "G_ema") -> None:
    """``state`` holds exactly the tensors of the generator ``model_cfg`` describes (built on the ``meta`` device:
    no memory, so a mismatch is found before anything is allocated) and no NaN or infinite weight."""
    import torch

    from stages.nn.build import build_generator

    with torch.device("meta"):
        G = build_generator(model_cfg)
    ckpt.check_module_state(G.state_dict(), state, path, name)
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(path, f"{name}: {not_tensors[0]} is not a tensor")
    bad = [k for k, v in state.items()
           if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(path, f"{name} holds NaN or infinite weights ({len(bad)} tensor(s), e.g. {bad[0]}): "
                                    "training had diverged when this was saved; use an earlier snapshot")
