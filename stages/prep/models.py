"""Which depth and embedding models a prep run uses, and their meta-record descriptions (3DGP ref §3.3, §7.3, §7.5).

``--depth-model auto`` (the default) means: ``toy`` for the toy source; ``precomputed`` when a ``<name>_depth.png``
sits beside *every* image (the official 3DGP zips); ``none`` when no image has one. When only some images have one,
``auto`` and ``precomputed`` are an error that says how many lack one: pass ``--depth-model none`` to ignore the
depth files, or an estimator (``leres``, ``hf``) to estimate depth for every image (mixing two depth sources in
one dataset would give the depth adaptor two different scales). ``precomputed``, ``toy`` and ``none`` are handled
here; every other name goes to :func:`stages.prep.depth.load_depth_estimator`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from stages.common.errors import BadFileError, BadOptionError
from stages.prep.config import AUTO, PrepConfig
from stages.prep.sources.units import SourcePlan

logger = logging.getLogger(__name__)
PIPELINE_DEPTH = ("precomputed", "toy", "none")


@dataclass
class DepthSetup:
    """The depth decision of one run."""

    mode: str  # "precomputed" | "toy" | "none" | "model"
    estimator: Any  # a loaded DepthEstimator when mode == "model", else None
    info: dict | None  # meta["depth"] (None when mode == "none")


def resolve_depth_name(cfg: PrepConfig, plan: SourcePlan) -> str:
    """The effective --depth-model name (``auto`` resolved), validated against the source."""
    name = cfg.depth_model
    with_depth = 0 if plan.kind == "toy" else sum(u.depth_member is not None for u in plan.units)
    total = len(plan.units)
    if name == AUTO:
        name = "toy" if plan.kind == "toy" else "precomputed" if with_depth else "none"
        logger.debug("--depth-model auto -> %s", name)
    if name == "toy" and plan.kind != "toy":
        raise BadOptionError("--depth-model", "'toy' works only with the toy source")
    if name == "precomputed" and plan.kind in ("toy", "lsun"):
        raise BadOptionError("--depth-model", f"'precomputed' reads <name>_depth.png files; the {plan.kind} source has none")
    if name == "precomputed" and not with_depth:
        raise BadOptionError("--depth-model", f"'precomputed' needs <name>_depth.png files beside the images; none in {cfg.src}")
    if name == "precomputed" and with_depth < total:
        first = next(u.source for u in plan.units if u.depth_member is None)
        raise BadFileError(
            cfg.src, f"{total - with_depth} of {total} images lack a <name>_depth.png (first: {first}); add the "
            "missing depth files, or pass --depth-model none to ignore the depth files, or --depth-model leres/hf "
            "to estimate depth for every image"
        )
    if name in PIPELINE_DEPTH and cfg.depth_weights is not None:
        raise BadOptionError("--depth-weights", f"not used by --depth-model {name}")
    return name


def setup_depth(cfg: PrepConfig, name: str) -> DepthSetup:
    """Load the depth estimator ``name`` (from :func:`resolve_depth_name`) when it is a network; fails fast on
    unknown names or bad weights."""
    if name == "none":
        return DepthSetup("none", None, None)
    if name == "precomputed":
        info = {"name": "precomputed", "version": "<name>_depth.png beside each image (16-bit as is, 8-bit x256, "
                "channel 0), resized in float, re-encoded depth/max*60000", "weights_sha256": None, "output_kind": "depth"}
        return DepthSetup("precomputed", None, info)
    if name == "toy":
        info = {"name": "toy", "version": "toy renderer's imitation monocular estimate (depth_est)",
                "weights_sha256": None, "output_kind": "depth"}
        return DepthSetup("toy", None, info)
    from stages.prep.depth import load_depth_estimator

    device = check_device(cfg.device)
    weights = None if cfg.depth_weights is None else str(cfg.depth_weights)
    estimator = load_depth_estimator(name, weights, device=device)
    info = {"name": estimator.name, "version": estimator.version, "weights_sha256": estimator.weights_sha256,
            "output_kind": estimator.output_kind}
    return DepthSetup("model", estimator, info)


def setup_embedder(cfg: PrepConfig) -> tuple[Any, dict | None]:
    """Load the distillation embedder (None for ``--embedder none``) and its meta-record entry."""
    from stages.prep.embed import load_embedder

    device = check_device(cfg.device) if cfg.embedder != "none" else "cpu"
    weights = None if cfg.embedder_weights is None else str(cfg.embedder_weights)
    embedder = load_embedder(cfg.embedder, weights, device=device, batch_size=cfg.batch_size)
    if embedder is None:
        return None, None
    return embedder, {"name": embedder.name, "dim": int(embedder.dim), "weights_sha256": embedder.weights_sha256}


def check_device(device: str) -> str:
    """The torch device ``device`` names on this machine (``stages.common.devices``: one rule, one message)."""
    from stages.common.devices import resolve_device

    return resolve_device(device)