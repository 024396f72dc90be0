"""What ``3dgp eval`` is asked to do: a checked request (issue 19 §4, issue 20 §3).

:class:`EvalRequest` validates every field on construction like the train and model configs
(``stages.common.validate.CheckedRequest``): types, ranges, caps, choices and the device's syntax, one line naming the
option. :func:`preflight` then checks what depends on the file system, before anything is computed: the inputs
exist, and every place the evaluation will write (metric cards, the run's ``metrics.jsonl``) is writable. So a
rejected evaluation has written nothing, and a long one cannot fail at its end for a read-only folder.

Where eval writes: the card of a checkpoint goes beside it (``<snapshot>.metrics.json``) and one line is appended
to its run's ``metrics.jsonl`` -- unless ``--out`` is given, in which case the card goes there and nothing else is
written. The card of an image set goes beside it (``<fakes>.metrics.json``) or to ``--out``.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stages.common.errors import BadFileError, BadOptionError, ConfigValueError
from stages.common.validate import CheckedRequest, Range, one_of
from stages.nn.snapshots import SNAPSHOT_CHOICES

RESIZE_CHOICES = ("stylegan", "clean")
_PATHS = ("ckpt", "fakes", "data", "inception", "is_weights", "out", "cache_dir")


@dataclass(frozen=True)
class EvalRequest(CheckedRequest):
    """Everything the ``3dgp eval`` command line says (None = default)."""

    ckpt: str | None = None  # snapshot / training state / run directory
    fakes: str | None = None  # --fakes: folder, zip or dataset of generated images
    data: str | None = None  # --data: the reference dataset (default: the run's dataset)
    metrics: str | None = None  # --metrics comma list (None = the default list; "" is an error)
    snapshots: str = "best"  # --snapshots best|latest|all (run directories)
    num_gen: int | None = None  # --num-gen: fakes for the plain kinds (fid, kid, is, mvc, depth, camera)
    seed: int = 0  # --seed
    truncation: float = 1.0  # --truncation psi
    device: str | None = None  # --device (None = auto)
    gpus: int = 1  # --gpus: processes on this node, each evaluating its share
    workers: int = 2  # --workers: image decoding threads/processes
    resize: str = "stylegan"  # --resize stylegan|clean
    inception: str | None = None  # --inception PATH
    is_weights: str | None = None  # --is-weights PATH
    resolution: int | None = None  # --resolution for folder image sets
    out: str | None = None  # --out card path (a folder with several snapshots)
    cache_dir: str | None = None  # reference statistics cache (default ~/.cache/3dgp/metrics)

    _RANGES = {"seed": Range(0, 2**32 - 1), "truncation": Range(0, 2),
               "gpus": Range(1, 1024), "workers": Range(0, 256), "resolution": Range(8, 4096), "num_gen": Range(2)}

    _ARGUMENTS = {"ckpt": "CKPT"}

    def _check_values(self) -> None:
        from stages.common.devices import check_device_spec
        from stages.metrics.registry import check_sample_count

        for name in _PATHS:
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise ConfigValueError(name, "an empty path")
        if self.metrics is not None and not self.metrics.strip(" ,"):
            raise ConfigValueError("metrics", "no metric given (omit --metrics for the default list)")
        one_of("snapshots", self.snapshots, SNAPSHOT_CHOICES)
        one_of("resize", self.resize, RESIZE_CHOICES)
        if self.num_gen is not None:
            check_sample_count(self.num_gen, "--num-gen")
        if self.device is not None:
            check_device_spec(self.device, "--device")

    def _check_combinations(self) -> None:
        if (self.ckpt is None) == (self.fakes is None):
            raise ConfigValueError("fakes", "give either a checkpoint (CKPT) or --fakes DIR_OR_DATASET, not both"
                                   if self.ckpt is not None else "nothing to evaluate: give CKPT or --fakes")


def _nearest_existing(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent
    return Path(".")


def check_writable(path: Path, option: str, folder: bool) -> None:
    """One line unless a file (or, with ``folder``, files inside a folder) can be created at ``path``: the nearest
    existing folder on its way must be a folder we can create a file in (probed, then removed)."""
    def refuse(message: str):
        # an option's error names the option; the checkpoint's names its own folder
        return BadOptionError(option, f"{path}: {message}") if option.startswith("-") else BadFileError(path, message)

    existing = _nearest_existing(path if folder else path.parent)
    if not existing.is_dir():
        raise refuse(f"{existing} is a file, not a folder")
    if not folder and path.is_dir():
        return  # a folder given for one card: the card goes inside it
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".3dgp-write-probe-"):
            pass
    except OSError as exc:
        raise refuse(f"cannot write there ({exc.strerror or exc}; pass --out to write the card elsewhere)"
                      if not option.startswith("-") else f"cannot write there ({exc.strerror or exc})") from None


def preflight(req: EvalRequest) -> None:
    """What depends on the file system (module docstring): inputs exist, outputs are writable."""
    if req.ckpt is not None and not os.path.exists(req.ckpt):
        raise BadFileError(req.ckpt, "no such snapshot file or run directory")
    for option, path in (("--data", req.data), ("--fakes", req.fakes)):
        if path is not None and not os.path.exists(path):
            raise BadOptionError(option, f"{path}: no such file or folder")
    for option, path in (("--inception", req.inception), ("--is-weights", req.is_weights)):
        if path is not None and not os.path.isfile(path):
            raise BadFileError(path, f"{option}: no such file")
    if req.out is not None:
        check_writable(Path(req.out), "--out", folder=req.snapshots == "all" or Path(req.out).is_dir())
    elif req.ckpt is not None:
        ckpt = Path(req.ckpt)
        folder = ckpt if ckpt.is_dir() else ckpt.parent
        check_writable(folder, "CKPT", folder=True)
    else:
        fakes = Path(req.fakes.rstrip("/"))
        check_writable(fakes.with_name(fakes.name + ".metrics.json"), "--out", folder=False)
