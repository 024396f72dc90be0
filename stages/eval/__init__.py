"""``3dgp eval``: score checkpoints or any image set with the one metrics package, and write metric cards (issue 8).

Two modes:

* ``CKPT`` (a snapshot, a training state or a run directory with ``--snapshots best|latest|all``): fakes from G_ema
  (``stages.metrics.sources.GeneratorSource``) against the dataset recorded in the run's config, or ``--data``.
* ``--fakes DIR_OR_DATASET --data DS``: any image set (another generator's output too) against a reference set.

Per evaluated checkpoint or image set: a list of ``stages.metrics.compute.MetricResult``, a metric card
(``stages.eval.card``; default ``<snapshot>.metrics.json`` beside the checkpoint, ``<fakes>.metrics.json`` beside an
image set, or ``--out``) and, for checkpoints in a run directory, one line in the run's ``metrics.jsonl``.

Public API:
  EvalRequest(...)                       # what the command line says
  run_eval(request) -> EvalResult        # the CLI's one call
"""
from __future__ import annotations

import logging
import math
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from stages.common.errors import BadFileError, BadOptionError

logger = logging.getLogger(__name__)
DEFAULT_CKPT_METRICS = "fid2k_full,nfs256"
DEFAULT_FAKES_METRICS = "fid,kid"


@dataclass(frozen=True)
class EvalRequest:
    """Everything the ``3dgp eval`` command line says (None = default)."""

    ckpt: str | None = None  # snapshot / training state / run directory
    fakes: str | None = None  # --fakes: folder, zip or dataset of generated images
    data: str | None = None  # --data: the reference dataset (default: the run's dataset)
    metrics: str | None = None  # --metrics comma list
    snapshots: str = "best"  # --snapshots best|latest|all (run directories)
    num_gen: int | None = None  # --num-gen: fakes for the plain kinds (fid, kid, is, mvc, depth, camera)
    batch: int = 8  # --batch: generation batch
    seed: int = 0  # --seed
    truncation: float = 1.0  # --truncation psi
    device: str | None = None  # --device (None = cuda when available)
    workers: int = 2  # --workers: image decoding threads/processes
    resize: str = "stylegan"  # --resize stylegan|clean
    inception: str | None = None  # --inception PATH
    is_weights: str | None = None  # --is-weights PATH
    resolution: int | None = None  # --resolution for folder image sets
    out: str | None = None  # --out card path (a folder with several snapshots)
    cache_dir: str | None = None  # reference statistics cache (default ~/.cache/3dgp/metrics)


@dataclass
class EvalTarget:
    """One evaluated checkpoint or image set."""

    label: str  # snapshot file name or image set path
    results: list  # [MetricResult]
    card_path: str
    card: dict


@dataclass
class EvalResult:
    targets: list[EvalTarget] = field(default_factory=list)
    metrics_jsonl: list[str] = field(default_factory=list)  # run metrics.jsonl files appended to


def default_cache_dir() -> Path:
    """``$THREEDGP_CACHE_DIR`` or ``~/.cache/3dgp``, plus ``/metrics``."""
    root = os.environ.get("THREEDGP_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "3dgp")
    return Path(root) / "metrics"


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadOptionError("--device", f"{device}: no CUDA device is available")
    if not (device == "cpu" or device.startswith("cuda")):
        raise BadOptionError("--device", f"expected auto, cpu or cuda[:N], got {device!r}")
    return device


def _validate(req: EvalRequest) -> None:
    if (req.ckpt is None) == (req.fakes is None):
        raise BadOptionError("--fakes", "give either a checkpoint (CKPT) or --fakes DIR_OR_DATASET, not both"
                             if req.ckpt is not None else "nothing to evaluate: give CKPT or --fakes")
    for option, value, low in (("--batch", req.batch, 1), ("--workers", req.workers, 0)):
        if value < low:
            raise BadOptionError(option, f"must be >= {low}, got {value}")
    if req.num_gen is not None and req.num_gen < 2:
        raise BadOptionError("--num-gen", f"must be >= 2, got {req.num_gen}")
    if not 0.0 <= req.truncation <= 2.0:
        raise BadOptionError("--truncation", f"must be in [0, 2], got {req.truncation}")
    if req.resolution is not None and not 8 <= req.resolution <= 4096:
        raise BadOptionError("--resolution", f"must be in [8, 4096], got {req.resolution}")
    from stages.metrics.resize import RESIZE_MODES

    if req.resize not in RESIZE_MODES:
        raise BadOptionError("--resize", f"expected stylegan or clean, got {req.resize!r}")
    for option, path in (("--inception", req.inception), ("--is-weights", req.is_weights)):
        if path is not None and not os.path.isfile(path):
            raise BadFileError(path, f"{option}: no such file")
    if not math.isfinite(req.truncation):
        raise BadOptionError("--truncation", f"must be finite, got {req.truncation}")
    if not 0 <= req.seed < 2**32:
        raise BadOptionError("--seed", f"must be in [0, 2^32), got {req.seed}")
    if req.workers > 256:
        raise BadOptionError("--workers", f"must be <= 256, got {req.workers}")
    if req.device is not None and not re.fullmatch(r"auto|cpu|cuda(:\d+)?", req.device):
        raise BadOptionError("--device", f"expected auto, cpu or cuda[:N], got {req.device!r}")
    if req.device is not None and ":" in req.device:
        import torch

        if torch.cuda.is_available() and int(req.device.split(":")[1]) >= torch.cuda.device_count():
            raise BadOptionError("--device", f"{req.device}: only {torch.cuda.device_count()} CUDA device(s) exist")
    from stages.eval.snapshots import SNAPSHOT_CHOICES

    if req.snapshots not in SNAPSHOT_CHOICES:
        raise BadOptionError("--snapshots", f"expected one of {', '.join(SNAPSHOT_CHOICES)}, got {req.snapshots!r}")
    for option, path in (("--data", req.data), ("--fakes", req.fakes)):
        if path is not None and not os.path.exists(path):
            raise BadOptionError(option, f"{path}: no such file or folder")
    if req.out is not None:
        for parent in [Path(req.out), *Path(req.out).parents]:
            if parent.exists():
                if parent != Path(req.out) and not parent.is_dir():
                    raise BadOptionError("--out", f"{req.out}: {parent} is a file, not a folder")
                break


def _loaders(req: EvalRequest, device: str):
    from stages.metrics.detector import load_inception

    def detector():
        return load_inception(req.inception, device=device, resize=req.resize)

    def is_network():
        from stages.metrics.inception_score import load_is_network

        return load_is_network(req.is_weights, device=device)

    return detector, is_network


def _detector_card(ctx) -> dict | None:
    det = ctx._detector
    if det is None:
        return None
    from stages.eval.card import DETECTOR_NAME

    return {"name": DETECTOR_NAME, "path": det.path, "sha256": det.sha256, "resize": det.resize}


def _reference_card(reals, ctx) -> dict | None:
    if reals is None:
        return None
    return {**reals.describe(), **ctx.real_info}


def _command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["3dgp", *sys.argv[1:]]) if sys.argv else "3dgp eval"


def _evaluate(specs, fakes, reals, req: EvalRequest, device: str, checkpoint: dict | None):
    from stages.eval.card import build_card
    from stages.metrics.compute import MetricContext, compute_metrics

    detector, is_network = _loaders(req, device)
    cache = Path(req.cache_dir) if req.cache_dir else default_cache_dir()
    ctx = MetricContext(fakes, reals, detector_loader=detector, is_loader=is_network, cache_dir=cache,
                        num_gen=req.num_gen)
    t0 = time.time()
    results = compute_metrics(specs, ctx)
    card = build_card(results, fakes=fakes.describe(), reference=_reference_card(reals, ctx),
                      detector=_detector_card(ctx), device=device, wall_seconds=time.time() - t0,
                      command=_command_line(), checkpoint=checkpoint)
    return results, card


def _check_needs(specs, has_reals: bool) -> None:
    for spec in specs:
        if spec.needs_reals and not has_reals:
            raise BadOptionError("--data", f"{spec.name} needs a reference set: pass --data DATASET_OR_FOLDER")


def _card_path(req: EvalRequest, default: Path, several: bool) -> Path:
    if req.out is None:
        return default
    out = Path(req.out)
    return out / default.name if several or out.is_dir() else out


def _eval_checkpoints(req: EvalRequest, specs, device: str) -> EvalResult:
    from stages.eval.card import append_metrics_line, metrics_record, write_json_atomic
    from stages.eval.image_sets import open_reference
    from stages.eval.snapshots import load_snapshot, resolve_snapshots
    from stages.metrics.sources import GeneratorSource
    from stages.nn.build import build_camera_prior

    paths = resolve_snapshots(req.ckpt, req.snapshots)
    result = EvalResult()
    reals = None
    for path in paths:
        snap = load_snapshot(path, device)
        data = req.data or (snap.config.get("data") or {}).get("path")
        if reals is None and any(s.needs_reals for s in specs):
            if not data:
                raise BadOptionError("--data", f"{path}: the checkpoint records no dataset; pass --data")
            reals = open_reference(data, snap.G.img_resolution, req.workers)
        if reals is not None and reals.resolution != snap.G.img_resolution:
            raise BadOptionError("--data", f"{data}: resolution {reals.resolution} differs from the checkpoint's "
                                           f"{snap.G.img_resolution}")
        label_probs = None
        if snap.G.c_dim > 0 and reals is not None and hasattr(reals, "dataset"):
            label_probs = reals.dataset.label_probs
        fakes = GeneratorSource(snap.G, build_camera_prior(snap.model_config), label_probs, device, seed=req.seed,
                                truncation=req.truncation, batch=req.batch)
        logger.info("evaluating %s (kimg %.3f) on %s", path, snap.kimg, device)
        results, card = _evaluate(specs, fakes, reals, req, device, snap.describe())
        card_path = write_json_atomic(card, _card_path(req, path.with_suffix(".metrics.json"), len(paths) > 1))
        result.targets.append(EvalTarget(path.name, results, str(card_path), card))
        if (snap.run_dir / "config.json").is_file():
            result.metrics_jsonl.append(str(append_metrics_line(snap.run_dir, metrics_record(card, card_path))))
    return result


def _eval_image_set(req: EvalRequest, specs, device: str) -> EvalResult:
    from stages.eval.card import write_json_atomic
    from stages.eval.image_sets import is_dataset, open_fakes, open_reference

    if req.data is None:
        _check_needs(specs, has_reals=False)
    reals = open_reference(req.data, req.resolution, req.workers) if req.data is not None else None
    resolution = reals.resolution if reals is not None else req.resolution
    if resolution is None:
        if not is_dataset(req.fakes):
            raise BadOptionError("--resolution", "say at which resolution to read the --fakes folder")
        from stages.eval.image_sets import open_dataset

        resolution = open_dataset(req.fakes, "--fakes").resolution
    fakes = open_fakes(req.fakes, resolution, req.workers)
    if req.num_gen is None:  # the plain kinds score every image of the set
        req = _with(req, num_gen=fakes.count)
    results, card = _evaluate(specs, fakes, reals, req, device, None)
    default = Path(req.fakes.rstrip("/")).with_name(Path(req.fakes.rstrip("/")).name + ".metrics.json")
    card_path = write_json_atomic(card, _card_path(req, default, False))
    return EvalResult(targets=[EvalTarget(req.fakes, results, str(card_path), card)])


def _with(req: EvalRequest, **changes) -> EvalRequest:
    from dataclasses import replace

    return replace(req, **changes)


def run_eval(req: EvalRequest) -> EvalResult:
    """Evaluate what ``req`` names (module docstring)."""
    from stages.metrics.registry import parse_metric_list

    _validate(req)
    default = DEFAULT_CKPT_METRICS if req.ckpt is not None else DEFAULT_FAKES_METRICS
    specs = parse_metric_list(req.metrics or default)
    device = resolve_device(req.device)
    if req.ckpt is not None:
        return _eval_checkpoints(req, specs, device)
    return _eval_image_set(req, specs, device)
