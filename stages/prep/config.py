"""``PrepConfig`` (what ``3dgp prep`` was asked to do) and ``PrepResult`` (what it did). Torch-free.

The *fingerprint* of a config (``prep_args``) is the subset of fields that determine the dataset's content; a
partial dataset can only be resumed by a command with the same fingerprint (3DGP ref §7; issue 3 "Robustness").
"""
from __future__ import annotations

import dataclasses
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.common.errors import BadOptionError

SOURCES = ("toy", "folder", "zip", "imagenet", "lsun")
DEFAULT_EMBEDDER = "tf_efficientnet_lite0"
AUTO = "auto"  # --depth-model default: toy -> "toy"; precomputed when <name>_depth.png files exist; else "none"
_NOT_CONTENT = ("out", "workers", "preview", "overwrite", "device", "batch_size")  # fields left out of the fingerprint


@dataclass(frozen=True)
class PrepConfig:
    """Options of one ``3dgp prep`` run (see ``3dgp prep SOURCE --help`` for each)."""

    source: str  # one of SOURCES
    out: Path  # output dataset directory
    src: Path | None = None  # input folder / zip / ImageNet root / LSUN LMDB (None for toy)
    resolution: int = 256  # output side, a power of two
    workers: int = 2  # decode/resize processes (0 = in-process)
    depth_model: str = AUTO  # estimator name, or precomputed | toy | none | auto
    depth_weights: Path | None = None  # weights file/dir for the estimator
    embedder: str = DEFAULT_EMBEDDER  # timm model name for distillation embeddings, or none
    embedder_weights: Path | None = None  # weights file for the embedder
    device: str = "cpu"  # torch device for the estimator and embedder
    batch_size: int = 32  # images per estimator/embedder batch (and per LMDB transaction)
    preview: Path | None = None  # write a contact sheet PNG here when done
    overwrite: bool = False  # replace an existing dataset / discard a partial one
    # toy
    num: int = 1024  # toy: number of scenes
    seed: int = 0  # toy: scene seed
    # imagenet
    classes: tuple[str, ...] | None = None  # imagenet: synset subset (None = all)
    classes_file: Path | None = None  # imagenet: file listing more synsets (one per line or comma separated)
    synset_map: Path | None = None  # imagenet: LOC_synset_mapping.txt ("n01440764 tench, Tinca tinca")
    keep_ratio: float = 1.0  # imagenet: per-class instance selection ratio (§7.2)
    max_per_class: int | None = None  # imagenet: cap per class (first files in sorted order)
    reg_covar: float = 1e-5  # imagenet: Gaussian covariance regulariser (§7.2)
    selection_weights: Path | None = None  # imagenet: Inception weights for selection (default: shipped)
    # lsun / any file source
    max_images: int | None = None  # lsun (and folder): use only the first N inputs in key/path order

    def validate(self) -> None:
        """Raise BadOptionError naming the option for anything a user must fix before work starts."""
        if self.source not in SOURCES:
            raise BadOptionError("SOURCE", f"unknown source {self.source!r}; choose one of {', '.join(SOURCES)}")
        res = self.resolution
        if res < 4 or res > 4096 or res & (res - 1):
            raise BadOptionError("--resolution", f"must be a power of two between 4 and 4096, got {res}")
        if self.workers < 0:
            raise BadOptionError("--workers", f"must be >= 0, got {self.workers}")
        if self.batch_size < 1:
            raise BadOptionError("--batch-size", f"must be >= 1, got {self.batch_size}")
        if self.source == "toy":
            if self.num < 1:
                raise BadOptionError("--num", f"must be >= 1, got {self.num}")
        elif self.src is None:
            raise BadOptionError("SRC", f"the {self.source} source needs an input path")
        if not 0.0 < self.keep_ratio <= 1.0:
            raise BadOptionError("--keep-ratio", f"must be in (0, 1], got {self.keep_ratio}")
        if self.max_per_class is not None and self.max_per_class < 1:
            raise BadOptionError("--max-per-class", f"must be >= 1, got {self.max_per_class}")
        if self.max_images is not None and self.max_images < 1:
            raise BadOptionError("--max-images", f"must be >= 1, got {self.max_images}")
        if self.preview is not None and self.preview.suffix.lower() != ".png":
            raise BadOptionError("--preview", f"must be a .png path, got {self.preview}")

    def prep_args(self) -> dict[str, Any]:
        """The content-determining arguments (JSON-ready): the resume fingerprint and the meta record's
        ``prep_args``. Paths are made absolute so that the same command from another folder still matches."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in _NOT_CONTENT:
                continue
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value.resolve())
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def command_line(self) -> str:
        """A ``3dgp prep ...`` command line that rebuilds this dataset (for the meta record and data cards)."""
        args = ["3dgp", "prep", self.source]
        args += [str(self.src)] if self.src is not None else []
        args += [str(self.out), "--resolution", str(self.resolution)]
        defaults = PrepConfig(source=self.source, out=self.out)
        for name in ("num", "seed", "depth_model", "depth_weights", "embedder", "embedder_weights", "classes_file", "synset_map",
                     "keep_ratio", "max_per_class", "reg_covar", "selection_weights", "max_images"):
            value = getattr(self, name)
            if value != getattr(defaults, name) and value is not None:
                args += [f"--{name.replace('_', '-')}", str(value)]
        if self.classes:
            args += ["--classes", ",".join(self.classes)]
        return shlex.join(args)


@dataclass(frozen=True)
class PrepResult:
    """What a prep run produced."""

    out: Path  # the finished dataset directory
    num_items: int  # items in the dataset
    num_skipped: int  # unreadable inputs skipped (listed in report_path)
    num_resumed: int  # items that were already done by an interrupted earlier run (0 for a fresh run)
    seconds: float  # wall time of this run
    images_per_second: float  # items written per second in this run
    report_path: Path  # OUT/prep_report.json
    preview_path: Path | None  # the contact sheet, when asked for
    meta: dict[str, Any]  # the dataset's meta record
    already_complete: bool = False  # the dataset existed with the same arguments; nothing was done


def describe_differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Human-readable list of fingerprint fields that differ, e.g. ``--resolution 64 -> 128``."""
    keys = sorted(set(old) | set(new))
    return ", ".join(
        f"--{k.replace('_', '-')} {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)
    )


def default_workers() -> int:
    """A sane --workers default: the CPU count, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))
