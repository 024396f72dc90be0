"""What ``3dgp info PATH`` shows: a typed summary of a dataset or a checkpoint (3DGP ref §7.1, §14).

Public API:
  summarise_path(path) -> DatasetSummary | CheckpointSummary   (BadFileError naming the path otherwise)
  describe_checkpoint(path) -> CheckpointSummary
  CheckpointSummary.to_json() -> dict                          (what ``3dgp info --json`` prints)

Extension point: ``INSPECTORS`` maps "does this path look like X" to "summarise X"; the CLI renders any summary.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from stages.common.errors import BadFileError
from stages.common.hashing import sha256_file
from stages.data.summary import DatasetSummary, dataset_summary, is_dataset_dir
from stages.nn.checkpoints import load_checkpoint
from stages.nn.snapshots import is_checkpoint_file


@dataclass(frozen=True)
class CheckpointSummary:
    """A snapshot or training state: where it is in training, what it was trained on, what was measured."""

    kind: str                           # "snapshot" or "training-state"
    path: str                           # absolute path
    sha256: str
    kimg: float                         # training progress when it was written
    format_version: int | None
    preset: str | None                  # the training preset of the run
    dataset: str | None                 # the training data path of the run
    resolution: int | None              # image (eval render) resolution
    c_dim: int | None                   # classes; 0 = unconditional
    depth_channel: bool                 # D saw RGB + depth
    params: dict[str, dict[str, int]]   # per network: parameters per top-level module and "total"
    size_bytes: int
    best: dict[str, Any] | None = None  # training states: the best metric record
    rollbacks: int | None = None        # training states: rollbacks so far
    metrics: list[dict] = field(default_factory=list)  # records of the run's metrics.jsonl at this kimg
    card: str | None = None             # the eval metric card next to it (<ckpt>.metrics.json), if any
    ops: str | None = None              # op implementations the training log recorded

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _param_counts(model_config: dict, which: str = "generator") -> dict[str, int]:
    """Parameters per top-level module of the generator or discriminator (built on the meta device: no memory)."""
    import torch

    from stages.nn.build import build_discriminator, build_generator
    from stages.nn.config import from_dict as model_from_dict

    with torch.device("meta"):
        net = (build_generator if which == "generator" else build_discriminator)(model_from_dict(model_config))
    counts: dict[str, int] = {}
    for name, param in net.named_parameters():
        top = name.split(".", 1)[0]
        counts[top] = counts.get(top, 0) + param.numel()
    counts["total"] = sum(counts.values())
    return counts


def _ops_used(run_dir: Path) -> str | None:
    """The op implementations the training log recorded (``ops: {...}``), if any."""
    log = run_dir / "log.txt"
    if not log.is_file():
        return None
    found = None
    with open(log, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if " ops: {" in line:
                found = line.split(" ops: ", 1)[1].strip()
    return found


def describe_checkpoint(path: str | Path) -> CheckpointSummary:
    """Kind, kimg, preset, dataset, resolution, classes, parameter counts, the metrics recorded for this kimg
    (training's metrics.jsonl, eval cards), the best record and the ops training used."""
    from stages.common.stats import read_jsonl

    path = Path(path)
    obj = load_checkpoint(path)
    kind = obj.get("kind")
    config = obj.get("config") or {}
    model = obj.get("model_config") or config.get("model") or {}
    kimg = float(obj["kimg"]) if kind == "snapshot" else obj["counters"]["cur_nimg"] / 1000
    params = {"G_ema": _param_counts(model)}
    state = {}
    if kind == "training-state":
        params["D"] = _param_counts(model, "discriminator")
        state = {"best": obj.get("best") or {}, "rollbacks": obj["counters"].get("rollbacks", 0)}
    metrics_file, card = path.parent / "metrics.jsonl", path.with_suffix(".metrics.json")
    metrics = [r for r in read_jsonl(metrics_file) if abs(float(r.get("kimg") or -1) - kimg) < 5e-4] \
        if metrics_file.is_file() else []
    return CheckpointSummary(
        kind=str(kind), path=str(path.resolve()), sha256=sha256_file(path), kimg=kimg,
        format_version=obj.get("format_version"), preset=config.get("preset"),
        dataset=(config.get("data") or {}).get("path"), resolution=model.get("img_resolution"),
        c_dim=model.get("c_dim"), depth_channel=model.get("img_channels") == 4, params=params,
        size_bytes=path.stat().st_size, metrics=metrics, card=str(card) if card.is_file() else None,
        ops=_ops_used(path.parent), **state,
    )


# (what it is, matches(path), summarise(path))
INSPECTORS: list[tuple[str, Callable[[Path], bool], Callable[[Path], Any]]] = [
    ("dataset", is_dataset_dir, dataset_summary),
    ("checkpoint (snapshot-*.pt / training-state-*.pt)", is_checkpoint_file, describe_checkpoint),
]


def summarise_path(path: str | Path) -> DatasetSummary | CheckpointSummary:
    """Summarise whatever ``path`` is, or raise a one-line BadFileError naming it."""
    path = Path(path)
    if not path.exists():
        partial = path.with_name(path.name + ".partial")
        hint = f" (an unfinished prep is in {partial}; re-run the same `3dgp prep` command)" if partial.exists() else ""
        raise BadFileError(path, f"no such file or directory{hint}")
    for _, matches, summarise in INSPECTORS:
        if matches(path):
            return summarise(path)
    kinds = ", ".join(name for name, _, _ in INSPECTORS)
    raise BadFileError(path, f"not something 3dgp info understands (expected: {kinds})")
