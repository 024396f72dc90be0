"""``3dgp eval``: score checkpoints or any image set with the one metrics package, and write metric cards (issue 8).

Two modes:

* ``CKPT`` (a snapshot, a training state or a run directory with ``--snapshots best|latest|all``): fakes from G_ema
  (``stages.metrics.sources.GeneratorSource``) against the dataset recorded in the run's config, or ``--data``.
* ``--fakes DIR_OR_DATASET --data DS``: any image set (another generator's output too) against a reference set.

Per evaluated checkpoint or image set: a list of ``stages.metrics.compute.MetricResult`` and a metric card
(``stages.metrics.card``); where they are written is said in ``stages.eval.request``. Evaluation is a measurement:
the same seed gives the same fakes, bit for bit, whatever the number of processes (the generator and the detector
run on fixed units, ``stages.metrics.sources``: there is no batch size to choose), TF32 is off, and the card is
strict JSON recording everything that determines the numbers.

Several processes (``--gpus N`` spawned here, or ``torchrun ... -m threedgp_cli eval``): every process evaluates its
share of every metric (``stages.metrics.shard``), rank 0 writes; the card equals the one-process card up to float
rounding of summed statistics.

Public API:
  EvalRequest(...)                 # what the command line says (stages.eval.request)
  run(request) -> EvalResult       # the CLI's one call
"""
from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from stages.common.errors import BadOptionError
from stages.eval.request import EvalRequest, preflight

logger = logging.getLogger(__name__)
DEFAULT_CKPT_METRICS = "fid2k_full,nfs256"
DEFAULT_FAKES_METRICS = "fid,kid"

__all__ = ["EvalRequest", "EvalResult", "EvalTarget", "run"]


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
    processes: int = 1  # processes that computed it


def default_cache_dir() -> Path:
    """``$THREEDGP_CACHE_DIR`` or ``~/.cache/3dgp``, plus ``/metrics``."""
    root = os.environ.get("THREEDGP_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "3dgp")
    return Path(root) / "metrics"


def _loaders(req: EvalRequest, device: str):
    from stages.metrics.detector import load_inception

    def detector():
        return load_inception(req.inception, device=device, resize=req.resize)

    def is_network():
        from stages.metrics.inception_score import load_is_network

        return load_is_network(req.is_weights, device=device)

    return detector, is_network


def _command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["3dgp", *sys.argv[1:]]) if sys.argv else "3dgp eval"


def _evaluate(specs, fakes, reals, req: EvalRequest, device: str, shard, checkpoint: dict | None, label: str):
    """The metrics of one target on every rank; the card (rank 0's). The detector loads (and a user's file is
    checked) before anything is said or computed."""
    from stages.metrics.card import build_card, detector_card
    from stages.metrics.compute import compute_metrics
    from stages.metrics.context import MetricContext
    from stages.metrics.memory import check_memory

    if reals is not None and shard.is_main:
        check_memory([s.resolved(req.num_gen) for s in specs], reals.count, fakes.resolution)
    detector, is_network = _loaders(req, device)
    cache = Path(req.cache_dir) if req.cache_dir else default_cache_dir()
    ctx = MetricContext(fakes, reals, detector_loader=detector, is_loader=is_network, cache_dir=cache,
                        num_gen=req.num_gen, shard=shard)
    if any(s.needs_detector for s in specs):
        ctx.detector()
    if shard.is_main:
        logger.info("evaluating %s on %s x %d process(es)", label, device, shard.world_size)
    t0 = time.time()
    results = compute_metrics(specs, ctx)
    reference = None if reals is None else {**reals.describe(), **ctx.real_info, "unreadable": ctx.skipped["reals"]}
    fakes_card = {**fakes.describe(), **({"unreadable": ctx.skipped["fakes"]} if fakes.kind == "images" else {})}
    for side in ("fakes", "reals"):
        if ctx.skipped[side]:
            logger.warning("%d %s image(s) did not decode and were left out (the card counts them)",
                           ctx.skipped[side], side[:-1])
    card = build_card(results, fakes=fakes_card, reference=reference, detector=detector_card(ctx.loaded_detector),
                      device=device, processes=shard.world_size, wall_seconds=time.time() - t0,
                      command=_command_line(), checkpoint=checkpoint)
    return results, card


def _card_path(req: EvalRequest, default: Path, several: bool) -> Path:
    if req.out is None:
        return default
    out = Path(req.out)
    return out / default.name if several or out.is_dir() else out


def _run_dataset(req: EvalRequest, snap, required: bool) -> str | None:
    """The reference dataset: ``--data`` as given (e.g. the full ImageNet, as the paper), else the one the run
    trained on, checked against the fingerprint the run recorded (one line when it is gone or another;
    ``stages.data.fingerprint``). Without ``required`` (no metric needs reals) a missing dataset is None: the label
    distribution of a conditional model's fakes is then uniform, and the card says so."""
    from stages.data.fingerprint import check_run_dataset

    if req.data is not None:
        return req.data
    try:
        return check_run_dataset(snap.config, req.data)
    except BadOptionError:
        if required:
            raise
        return None


def _label_probs(G, reals, data: str | None):
    """The class distribution of a conditional model's fakes: the reference dataset's, else the run's dataset's
    when it is still there; None (uniform, said on the card) otherwise."""
    if G.c_dim == 0:
        return None
    if reals is not None and hasattr(reals, "dataset"):
        return reals.dataset.label_probs
    from stages.eval.image_sets import is_dataset

    if data and is_dataset(data):
        from stages.data.dataset import LmdbDataset

        return LmdbDataset(data).label_probs
    return None


def _eval_checkpoints(req: EvalRequest, specs, device: str, shard) -> EvalResult:
    from stages.metrics.card import append_metrics_line, metrics_record, write_json_atomic
    from stages.eval.image_sets import open_reference
    from stages.nn.snapshots import load_snapshot, resolve_snapshots
    from stages.metrics.sources import GeneratorSource
    from stages.nn.build import build_camera_prior

    paths = resolve_snapshots(req.ckpt, req.snapshots)
    result = EvalResult(processes=shard.world_size)
    reals = None
    for path in paths:
        snap = load_snapshot(path, device)
        needs_reals = any(s.needs_reals for s in specs)
        data = _run_dataset(req, snap, needs_reals)
        if reals is None and needs_reals:
            reals = open_reference(data, snap.G.img_resolution, req.workers)
        if reals is not None and reals.resolution != snap.G.img_resolution:
            raise BadOptionError("--data", f"{data}: resolution {reals.resolution} differs from the checkpoint's "
                                           f"{snap.G.img_resolution}")
        fakes = GeneratorSource(snap.G, build_camera_prior(snap.model_config), _label_probs(snap.G, reals, data),
                                device, seed=req.seed, truncation=req.truncation)
        results, card = _evaluate(specs, fakes, reals, req, device, shard, snap.describe(),
                                  f"{path} (kimg {snap.kimg:.3f})")
        if not shard.is_main:
            continue
        card_path = write_json_atomic(card, _card_path(req, path.with_suffix(".metrics.json"), len(paths) > 1))
        result.targets.append(EvalTarget(path.name, results, str(card_path), card))
        if req.out is None and (snap.run_dir / "config.json").is_file():  # only where asked (stages.eval.request)
            result.metrics_jsonl.append(str(append_metrics_line(snap.run_dir, metrics_record(card, card_path))))
    return result


def _eval_image_set(req: EvalRequest, specs, device: str, shard) -> EvalResult:
    from stages.metrics.card import write_json_atomic
    from stages.eval.image_sets import is_dataset, open_fakes, open_reference

    if req.data is None:
        for spec in specs:
            if spec.needs_reals:
                raise BadOptionError("--data", f"{spec.name} needs a reference set: pass --data DATASET_OR_FOLDER")
    reals = open_reference(req.data, req.resolution, req.workers) if req.data is not None else None
    resolution = reals.resolution if reals is not None else req.resolution
    if resolution is None:
        if not is_dataset(req.fakes):
            raise BadOptionError("--resolution", "say at which resolution to read the --fakes folder")
        from stages.eval.image_sets import open_dataset

        resolution = open_dataset(req.fakes, "--fakes").resolution
    fakes = open_fakes(req.fakes, resolution, req.workers)
    from stages.metrics.compute import require_samples

    for spec in specs:  # an undefined statistic is refused before any work (issue 19 §4)
        if spec.kind in ("fid", "kid"):
            require_samples(spec.kind.upper(), fakes.count, reals.count if reals is not None else None)
    if req.num_gen is None:  # the plain kinds score every image of the set
        req = replace(req, num_gen=max(fakes.count, 2))
    results, card = _evaluate(specs, fakes, reals, req, device, shard, None, req.fakes)
    if not shard.is_main:
        return EvalResult(processes=shard.world_size)
    default = Path(req.fakes.rstrip("/")).with_name(Path(req.fakes.rstrip("/")).name + ".metrics.json")
    card_path = write_json_atomic(card, _card_path(req, default, False))
    return EvalResult(targets=[EvalTarget(req.fakes, results, str(card_path), card)], processes=shard.world_size)


def run_here(req: EvalRequest, specs) -> EvalResult:
    """Evaluate in this process, as one rank of the torchrun / spawned group when there is one."""
    from stages.common.allocator import tune_glibc_malloc
    from stages.common.cpu_share import apply_threads
    from stages.common.distributed import init_distributed
    from stages.metrics.shard import Shard

    apply_threads(None)  # $THREEDGP_THREADS (make demo: auto), else torch's default
    tune_glibc_malloc()  # Inception's activations stay in the heap (no page faults per batch)
    dist = init_distributed(req.device)
    shard = Shard(dist.rank, dist.world_size)
    if req.ckpt is not None:
        return _eval_checkpoints(req, specs, dist.device, shard)
    return _eval_image_set(req, specs, dist.device, shard)


def run(req: EvalRequest) -> EvalResult:
    """Evaluate what ``req`` names (module docstring); rank 0's result."""
    from stages.eval.parallel import run_spawned, under_launcher
    from stages.metrics.registry import parse_metric_list

    default = DEFAULT_CKPT_METRICS if req.ckpt is not None else DEFAULT_FAKES_METRICS
    specs = parse_metric_list(default if req.metrics is None else req.metrics)
    preflight(req)
    if req.gpus > 1 and not under_launcher():
        return run_spawned(req, specs)
    result = run_here(req, specs)
    if under_launcher():  # one rank of a torchrun job: leave the group together, before interpreter exit
        from stages.common.distributed import finish_distributed

        finish_distributed()
    return result
