"""Per-class instance selection before writing (``3dgp prep imagenet --keep-ratio``; 3DGP ref §7.2).

For each class: decode its images at the dataset resolution, extract Inception pool features, fit one
full-covariance Gaussian and keep the top ``floor(n * keep_ratio)`` by likelihood (the selection helper's
``select_instances``). Each class's result is committed to the partial dataset as soon as it is known, so an
interrupted run re-selects only the classes it had not finished.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import groupby

import numpy as np

from stages.common.errors import BadFileError, BadOptionError
from stages.common.progress import progress_bar
from stages.data.format import PLAN_PREFIX, SKIP_PREFIX
from stages.data.lmdb_store import DatasetWriter
from stages.prep.config import PrepConfig
from stages.prep.sources.units import Loaded, Skipped, Unit

logger = logging.getLogger(__name__)


def _plan_key(label: int) -> bytes:
    return PLAN_PREFIX + f"{label:06d}".encode()


def selects(cfg: PrepConfig) -> bool:
    """Whether this prep runs instance selection."""
    return cfg.source == "imagenet" and cfg.options.keep_ratio < 1.0


def load_selection_detector(cfg: PrepConfig):
    """The Inception feature extractor instance selection uses, or None without selection. Loaded before the
    output is touched (issue 19 §5): bad ``--selection-weights`` must leave no ``OUT.partial`` behind."""
    if not selects(cfg):
        return None
    from stages.metrics.detector import load_inception

    return _load_detector(cfg, load_inception)


def select_units(
    cfg: PrepConfig,  # keep_ratio, reg_covar, device
    units: list[Unit],  # all candidate units, grouped by label (as the imagenet source lists them)
    writer: DatasetWriter,  # the partial dataset (holds finished per-class plans)
    map_units: Callable[[list[Unit]], list[Loaded | Skipped]],  # decodes units (in the worker pool)
    detector=None,  # load_selection_detector(cfg); required when selection runs
) -> list[Unit]:
    """The units that survive per-class instance selection, in their original order (3DGP ref §7.2)."""
    if not selects(cfg):
        return units
    from stages.prep.selection import select_instances

    assert detector is not None, "load_selection_detector(cfg) before the output is opened"
    done = dict(writer.items_with_prefix(PLAN_PREFIX))
    kept = []
    groups = [(label, list(group)) for label, group in groupby(units, key=lambda u: u.label)]
    todo = sum(len(g) for label, g in groups if _plan_key(label) not in done)
    with progress_bar(todo, "select", unit="img") as advance:
        for label, group in groups:
            key = _plan_key(label)
            if key not in done:
                done[key] = _select_class(cfg, label, group, writer, map_units, detector, select_instances)
                advance(len(group))
            kept += [group[i] for i in done[key]]
    logger.info("instance selection kept %d of %d images (keep ratio %.3f)", len(kept), len(units),
                cfg.options.keep_ratio)
    return kept


def _load_detector(cfg: PrepConfig, load_inception):
    """The Inception feature extractor for selection; its errors name --selection-weights (not eval's option)."""
    weights = None if cfg.options.selection_weights is None else str(cfg.options.selection_weights)
    try:
        from stages.prep.models import check_device

        return load_inception(weights, device=check_device(cfg.device), resize="clean")  # as before eval existed
    except BadFileError as exc:
        raise BadFileError(exc.path, exc.message.replace("--inception", "--selection-weights")) from None
    except BadOptionError as exc:
        raise BadOptionError("--selection-weights", exc.message) from None


def _select_class(cfg, label, group, writer, map_units, detector, select_instances) -> list[int]:
    """Select within one class and commit the kept positions (and any unreadable files) in one transaction."""
    results = map_units(group)
    readable = [i for i, r in enumerate(results) if isinstance(r, Loaded)]
    skips = {SKIP_PREFIX + f"select/{r.source}".encode(): {"source": r.source, "reason": r.reason}
             for r in results if isinstance(r, Skipped)}
    keep: list[int] = []
    if readable:
        images = np.stack([results[i].image for i in readable])  # [n, R, R, 3] uint8
        features = detector.extract_features(images)  # [n, 2048]
        chosen = select_instances(features, cfg.options.keep_ratio, cfg.options.reg_covar)
        keep = sorted(readable[int(j)] for j in chosen)
    writer.commit({}, {_plan_key(label): keep, **skips})
    return keep
