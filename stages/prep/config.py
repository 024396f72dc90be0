"""``PrepConfig`` (what ``3dgp prep`` was asked to do) and ``PrepResult`` (what it did). Torch-free.

The *fingerprint* of a config (``prep_args``) is the subset of fields that determine the dataset's content; a
partial dataset can only be resumed by a command with the same fingerprint (3DGP ref §7; issue 3 "Robustness").
"""
from __future__ import annotations

import dataclasses
import math
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.common.devices import device_syntax_error
from stages.common.errors import BadFileError, BadOptionError, ThreeDGPError
from stages.data.summary import DatasetSummary

SOURCES = ("toy", "folder", "zip", "imagenet", "lsun")
DEFAULT_EMBEDDER = "tf_efficientnet_lite0"
AUTO = "auto"  # --depth-model default: toy -> "toy"; precomputed when <name>_depth.png files exist; else "none"
# Not in the fingerprint: they change how the work runs (or whether it may start), never what the dataset holds.
_NOT_CONTENT = ("out", "workers", "preview", "overwrite", "device", "batch_size", "max_classes", "resource_check")
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's decompression-bomb limit (Image.MAX_IMAGE_PIXELS)
DEFAULT_MAX_FILE_MB = 512  # one zip member / LSUN value / dataset.json, uncompressed
MAX_ITEMS = 10**9 - 1  # item keys have 9 digits (stages.data.format.INDEX_DIGITS)
MAX_WORKERS = 256
MAX_BATCH = 4096
MAX_CLASSES = 100_000  # --max-classes: the model's own cap on c_dim (stages.nn.config.ModelConfig)
MAX_PIXELS_CAP = 1 << 32  # --max-pixels: 4.3 gigapixels, 13 GB decoded per worker, is the most it may allow
MAX_FILE_MB_CAP = 16 << 10  # --max-file-mb: 16 GiB, read into memory in one piece
_PATH_FIELDS = ("out", "src", "depth_weights", "embedder_weights", "preview", "classes_file", "synset_map",
                "selection_weights")


@dataclass(frozen=True)
class ToyOptions:
    """``3dgp prep toy``: which scenes."""

    num: int = 1024  # number of scenes
    seed: int = 0  # scene seed
    scenes: str = "full"  # full (deliberately hard) or simple (stages.prep.toy.simple)

    def check(self) -> None:
        _int("--num", self.num, 1, MAX_ITEMS)
        _int("--seed", self.seed, 0, 2**32 - 1)
        from stages.prep.toy.item import SCENE_KINDS

        if self.scenes not in SCENE_KINDS:
            raise BadOptionError("--scenes", f"expected one of {', '.join(SCENE_KINDS)}, got {self.scenes!r}")


@dataclass(frozen=True)
class FolderOptions:
    """``3dgp prep folder|zip``: how many inputs, and the dataset.json label cap."""

    max_images: int | None = None  # use only the first N inputs in path order
    max_classes: int | None = None  # dataset.json labels: at most this many classes (None: max(1000, labelled files))

    def check(self) -> None:
        if self.max_images is not None:
            _int("--max-images", self.max_images, 1, MAX_ITEMS)
        if self.max_classes is not None:  # each class is a count in memory and a one-hot column of the model
            _int("--max-classes", self.max_classes, 1, MAX_CLASSES)


@dataclass(frozen=True)
class LsunOptions:
    """``3dgp prep lsun``: how many keys."""

    max_images: int | None = None  # use only the first N keys

    def check(self) -> None:
        if self.max_images is not None:
            _int("--max-images", self.max_images, 1, MAX_ITEMS)


@dataclass(frozen=True)
class ImagenetOptions:
    """``3dgp prep imagenet``: class subset and per-class instance selection (ref §7.2)."""

    classes: tuple[str, ...] | None = None  # synset subset (None = all)
    classes_file: Path | None = None  # file listing more synsets (one per line or comma separated)
    synset_map: Path | None = None  # LOC_synset_mapping.txt ("n01440764 tench, Tinca tinca")
    keep_ratio: float = 1.0  # per-class instance selection ratio
    max_per_class: int | None = None  # cap per class (first files in sorted order)
    reg_covar: float = 1e-5  # Gaussian covariance regulariser
    selection_weights: Path | None = None  # Inception weights for selection (default: shipped)

    def check(self) -> None:
        if not _is_number(self.keep_ratio) or not 0.0 < self.keep_ratio <= 1.0:
            raise BadOptionError("--keep-ratio", f"must be in (0, 1], got {self.keep_ratio}")
        if not _is_number(self.reg_covar) or not (math.isfinite(self.reg_covar) and self.reg_covar > 0):
            raise BadOptionError("--reg-covar", f"must be a finite number > 0, got {self.reg_covar}")
        if self.max_per_class is not None:
            _int("--max-per-class", self.max_per_class, 1, MAX_ITEMS)
        if self.classes is not None and not (isinstance(self.classes, tuple)
                                             and all(isinstance(c, str) for c in self.classes)):
            raise BadOptionError("--classes", f"expected synset names, got {self.classes!r}")
        if self.keep_ratio >= 1.0 and self.selection_weights is not None:
            raise BadOptionError("--selection-weights", "used only for instance selection (--keep-ratio below 1)")


SOURCE_OPTIONS: dict[str, type] = {"toy": ToyOptions, "folder": FolderOptions, "zip": FolderOptions,
                                   "imagenet": ImagenetOptions, "lsun": LsunOptions}
SourceOptions = ToyOptions | FolderOptions | ImagenetOptions | LsunOptions


@dataclass(frozen=True)
class PrepConfig:
    """Options of one ``3dgp prep`` run (see ``3dgp prep SOURCE --help`` for each): the options every source
    shares, plus ``options``, the source's own (:data:`SOURCE_OPTIONS`). Build it with :meth:`make` from flat
    keyword options, as the CLI does."""

    source: str  # one of SOURCES
    out: Path  # output dataset directory
    src: Path | None = None  # input folder / zip / ImageNet root / LSUN LMDB (None for toy)
    options: SourceOptions | None = None  # the source's own options (None = its defaults)
    resolution: int = 256  # output side, a power of two
    workers: int | None = None  # decode/resize processes (0 = in-process; None = default_workers())
    depth_model: str = AUTO  # estimator name, or precomputed | toy | none | auto
    depth_weights: Path | None = None  # weights file/dir for the estimator
    embedder: str = DEFAULT_EMBEDDER  # timm model name for distillation embeddings, or none
    embedder_weights: Path | None = None  # weights file for the embedder
    device: str = "cpu"  # torch device for the estimator and embedder (stages.common.devices: auto|cpu|cuda[:N]|mps)
    batch_size: int = 32  # images per estimator/embedder batch (and per LMDB transaction)
    preview: Path | None = None  # write a contact sheet PNG here when done
    overwrite: bool = False  # replace an existing dataset / discard a partial one
    # resource caps on untrusted input (overrides for the rare real case)
    max_pixels: int = DEFAULT_MAX_PIXELS  # an image with more pixels is skipped (listed in prep_report.json)
    max_file_mb: int = DEFAULT_MAX_FILE_MB  # a zip member / LSUN value larger than this (MiB) is skipped
    resource_check: bool = True  # refuse to start when the output clearly cannot fit the disk or memory

    @classmethod
    def make(cls, source: str, out: Path | str, src: Path | str | None = None, **options: Any) -> "PrepConfig":
        """A config from flat keyword options: those of the source (``SOURCE_OPTIONS[source]``) go to
        ``options``, the rest are shared; an option of another source is a one-line error naming it."""
        if source not in SOURCES:
            raise BadOptionError("SOURCE", f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
        own_fields = {f.name for f in dataclasses.fields(SOURCE_OPTIONS[source])}
        shared_fields = {f.name for f in dataclasses.fields(cls)} - {"source", "out", "src", "options"}
        own, shared = {}, {}
        for name, value in options.items():
            if name in own_fields:
                own[name] = value
            elif name in shared_fields:
                shared[name] = value
            else:
                users = [s for s, opts in SOURCE_OPTIONS.items() if name in {f.name for f in dataclasses.fields(opts)}]
                where = (f"applies only to the {' and '.join(users)} source{'s' if len(users) > 1 else ''}" if users
                         else "unknown option")
                raise BadOptionError(f"--{name.replace('_', '-')}", where)
        return cls(source=source, out=out, src=src, options=SOURCE_OPTIONS[source](**own), **shared)

    def __post_init__(self) -> None:
        """Check every value on construction (type, range, finiteness, combinations), so the CLI and the API get
        the same one-line errors naming the option; checks that need the file system are in :meth:`validate`."""
        for name in ("out", "src", "depth_weights", "embedder_weights", "preview"):
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, Path(getattr(self, name)))
        if self.source in SOURCE_OPTIONS:
            if self.options is None:
                object.__setattr__(self, "options", SOURCE_OPTIONS[self.source]())
            for name in ("classes_file", "synset_map", "selection_weights"):
                if isinstance(getattr(self.options, name, None), str):
                    object.__setattr__(self.options, name, Path(getattr(self.options, name)))
        if self.workers is None:
            object.__setattr__(self, "workers", default_workers())
        self._check_values()
        self._check_combinations()

    def _paths(self) -> dict[str, Path | None]:
        """Every path option, shared and the source's own."""
        paths = {name: getattr(self, name) for name in ("out", "src", "depth_weights", "embedder_weights", "preview")}
        paths.update({name: getattr(self.options, name) for name in _PATH_FIELDS if hasattr(self.options, name)})
        return paths

    def validate(self) -> None:
        """Raise for anything a user must fix before work starts (the checks of ``__post_init__`` and those that
        look at the file system: option files exist, OUT is not inside SRC)."""
        self._check_values()
        self._check_combinations()
        paths = self._paths()
        for option in ("depth_weights", "embedder_weights", "selection_weights", "classes_file", "synset_map"):
            path = paths.get(option)
            if path is not None and not path.exists():
                raise BadOptionError(option, f"{path}: no such file or directory")
        out = self.out.resolve()
        if self.preview is not None and self.preview.resolve() in (out, out.with_name(out.name + ".partial")):
            raise BadOptionError("--preview", "must not be the output dataset folder")
        if self.src is not None:
            src = self.src.resolve()
            if out == src or src in out.parents:
                raise BadFileError(self.out, f"is inside the source {self.src}; choose an output folder outside it")

    def _check_values(self) -> None:
        if self.source not in SOURCES:
            raise BadOptionError("SOURCE", f"unknown source {self.source!r}; choose one of {', '.join(SOURCES)}")
        if not isinstance(self.options, SOURCE_OPTIONS[self.source]):
            raise BadOptionError("options", f"expected {SOURCE_OPTIONS[self.source].__name__} for the {self.source} "
                                            f"source, got {type(self.options).__name__}")
        for name, value in self._paths().items():
            if not (isinstance(value, Path) or value is None and name != "out"):
                raise BadOptionError(name, f"expected a path, got {value!r}")
        if self.out.name in ("", ".", ".."):  # OUT.partial and OUT.lock are siblings named after it
            raise BadFileError(self.out, "OUT must name the dataset folder itself (e.g. ./my-dataset)")
        res = _int("--resolution", self.resolution)
        if res < 4 or res > 4096 or res & (res - 1):
            raise BadOptionError("--resolution", f"must be a power of two between 4 and 4096, got {res}")
        _int("--workers", self.workers, 0, MAX_WORKERS)
        _int("--batch-size", self.batch_size, 1, MAX_BATCH)
        _int("--max-pixels", self.max_pixels, 1, MAX_PIXELS_CAP)
        _int("--max-file-mb", self.max_file_mb, 1, MAX_FILE_MB_CAP)
        for name in ("depth_model", "embedder"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise BadOptionError(name, f"expected a name, got {getattr(self, name)!r}")
        for name in ("overwrite", "resource_check"):
            if not isinstance(getattr(self, name), bool):
                raise BadOptionError(name, f"expected true or false, got {getattr(self, name)!r}")
        if not isinstance(self.device, str) or device_syntax_error(self.device):
            raise BadOptionError("--device", device_syntax_error(str(self.device)) or "expected a device name")
        if self.source != "toy" and self.src is None:
            raise ThreeDGPError(f"SRC: the {self.source} source needs an input path")
        self.options.check()
        if self.preview is not None and self.preview.suffix.lower() != ".png":
            raise BadOptionError("--preview", f"must be a .png path, got {self.preview}")

    def _check_combinations(self) -> None:
        """Options that make no sense together."""
        if self.embedder == "none" and self.embedder_weights is not None:
            raise BadOptionError("--embedder-weights", "not used with --embedder none")
        if self.depth_model in ("none", "precomputed", "toy") and self.depth_weights is not None:
            raise BadOptionError("--depth-weights", f"not used by --depth-model {self.depth_model}")

    def prep_args(self) -> dict[str, Any]:
        """The content-determining arguments (JSON-ready, flat: shared and source options side by side): the resume
        fingerprint and the meta record's ``prep_args``. Paths are made absolute so that the same command from
        another folder still matches."""
        out = {}
        fields = [(self, f.name) for f in dataclasses.fields(self) if f.name != "options"]
        fields += [(self.options, f.name) for f in dataclasses.fields(self.options)]
        for obj, name in fields:
            if name in _NOT_CONTENT:
                continue
            value = getattr(obj, name)
            if isinstance(value, Path):
                value = str(value.resolve())
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out

    def command_line(self) -> str:
        """A ``3dgp prep ...`` command line that rebuilds this dataset (for the meta record and data cards)."""
        args = ["3dgp", "prep", self.source]
        args += [str(self.src)] if self.src is not None else []
        args += [str(self.out), "--resolution", str(self.resolution)]
        defaults = _content_defaults()
        values = {name: getattr(self, name) for name in ("depth_model", "depth_weights", "embedder",
                                                         "embedder_weights", "max_pixels", "max_file_mb")}
        values.update(dataclasses.asdict(self.options))
        for name, value in values.items():
            if name != "classes" and value != defaults.get(name) and value is not None:
                args += [f"--{name.replace('_', '-')}", str(value)]
        if getattr(self.options, "classes", None):
            args += ["--classes", ",".join(self.options.classes)]
        return shlex.join(args)


@dataclass(frozen=True)
class PrepResult:
    """What a prep run produced."""

    out: Path  # the finished dataset directory
    num_items: int  # items in the dataset
    num_skipped: int  # inputs skipped: unreadable, too large, special files (listed in report_path)
    num_resumed: int  # items that were already done by an interrupted earlier run (0 for a fresh run)
    seconds: float  # wall time of this run
    images_per_second: float  # items written per second in this run
    report_path: Path  # OUT/prep_report.json
    preview_path: Path | None  # the contact sheet, when asked for
    summary: DatasetSummary  # the finished dataset (its meta record, typed; stages.data.summary)
    already_complete: bool = False  # the dataset existed with the same arguments; nothing was done


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(option: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as a checked integer (no bools, floats or strings), within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadOptionError(option, f"must be an integer, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low:,} and {high:,}" if high is not None else f">= {low:,}"
        raise BadOptionError(option, f"must be {bounds}, got {value:,}")
    return value


def args_match(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a stored fingerprint ``old`` equals ``new``. An option missing on one side counts as its default:
    options added since ``old`` was written, and other sources' options (which fingerprints written before the
    per-source split hold at their defaults), so older datasets stay "already complete"."""
    defaults = _content_defaults()
    return all(old.get(k, defaults.get(k)) == new.get(k, defaults.get(k)) for k in set(old) | set(new))


def _content_defaults() -> dict[str, Any]:
    """Defaults of every content option: the shared ones and those of every source."""
    defaults = {}
    for cls in (PrepConfig, *SOURCE_OPTIONS.values()):
        defaults.update({f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING})
    return defaults


def describe_differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Human-readable list of fingerprint fields that differ, e.g. ``--resolution 64 -> 128``."""
    keys, defaults = sorted(set(old) | set(new)), _content_defaults()
    return ", ".join(
        f"--{k.replace('_', '-')} {old.get(k, defaults.get(k))!r} -> {new.get(k, defaults.get(k))!r}"
        for k in keys if old.get(k, defaults.get(k)) != new.get(k, defaults.get(k))
    )


def default_workers() -> int:
    """A sane --workers default: the CPU count, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))
