"""Image sets for ``3dgp eval``: ``--fakes`` (any generator's output) and ``--data`` (the reference set).

A path is either a prepped dataset (a folder holding ``data.mdb``; read un-mirrored) or a folder / ``.zip`` of image
files, read as ``3dgp prep folder`` reads it (both use :mod:`stages.data.image_files` and :mod:`stages.data.decode`):
recursive, sorted by relative path, ``<name>_depth.png`` files are depth maps (not images), every image
EXIF-oriented, centre-cropped to a square and Lanczos-resized to ``resolution``. A ``dataset.json`` is not read.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from stages.common.errors import BadFileError, BadOptionError
from stages.metrics.sources import DatasetSource, ImageSetSource

logger = logging.getLogger(__name__)


def is_dataset(path: str | Path) -> bool:
    from stages.data.summary import is_dataset_dir

    return is_dataset_dir(path)


def open_dataset(path: str | Path, option: str, workers: int = 0) -> DatasetSource:
    """A prepped dataset as a :class:`DatasetSource` (one-line errors name ``option``)."""
    from stages.data.dataset import LmdbDataset

    path = Path(path)
    if not path.exists():
        raise BadFileError(path, f"{option}: no such dataset or folder")
    dataset = LmdbDataset(path)
    if dataset.num_items < 1:
        raise BadFileError(path, f"{option}: the dataset holds no items")
    return DatasetSource(dataset, workers=workers)


def _images(path: Path, option: str):
    """The listed images (:class:`stages.data.image_files.ImageFile`) of a folder or zip."""
    from stages.data.image_files import list_image_files

    if not path.exists():
        raise BadFileError(path, f"{option}: no such dataset, folder or zip")
    try:
        return list_image_files(path).images
    except BadFileError as exc:
        raise BadFileError(path, f"{option}: {exc.message}") from None


def _load(image, resolution: int) -> np.ndarray | None:
    from stages.data import decode
    from stages.data.image_files import image_data

    try:
        return decode.load_rgb(image_data(image), resolution)  # [R, R, 3] uint8
    except (decode.Unreadable, OSError) as exc:
        # prep's reasons say which prep option raises a cap (--max-file-mb, --max-pixels); eval has no such option
        reason = re.sub(r"[:;] raise it with --max-[a-z-]+ if the (file|image) is real", "", str(exc))
        logger.warning("skipping %s: %s", image.rel, reason)
        return None


def _listing_sha256(path: Path, images) -> str:
    """sha256 of (relative path, size, mtime) of every image: the cache key of a folder's statistics."""
    digest = hashlib.sha256(str(path.resolve()).encode())
    for image in images:
        stat = os.stat(image.path)  # the file, or the zip holding it
        digest.update(f"{image.rel}\0{image.member}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def open_folder(path: str | Path, resolution: int, option: str, workers: int = 0) -> ImageSetSource:
    """A folder or zip of images as an :class:`ImageSetSource` at ``resolution``."""
    path = Path(path)
    images = _images(path, option)

    skipped = [0]

    def load(image) -> np.ndarray | None:
        pixels = _load(image, resolution)
        skipped[0] += pixels is None
        return pixels

    def batches(start: int, stop: int, batch: int) -> Iterator[torch.Tensor]:
        pending: list[np.ndarray] = []
        pool = None
        if workers > 0:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(workers)
        try:
            chosen = images[start:stop]
            loaded = pool.map(load, chosen) if pool else (load(i) for i in chosen)
            for pixels in loaded:
                if pixels is not None:
                    pending.append(pixels)
                if len(pending) == batch:
                    yield torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2).contiguous()
                    pending = []
            if pending:
                yield torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2).contiguous()
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    description = {"path": str(path.resolve()), "format": "zip" if path.suffix.lower() == ".zip" else "folder",
                   "content_sha256": _listing_sha256(path, images), "resize": "center crop + Lanczos (as prep)"}
    return ImageSetSource(batches, len(images), description, resolution, skipped=lambda: skipped[0])


def open_fakes(path: str | Path, resolution: int, workers: int = 0) -> ImageSetSource:
    """``--fakes``: a dataset's images or a folder of images, as an image set at ``resolution``."""
    if is_dataset(path):
        source = open_dataset(path, "--fakes", workers)
        if source.resolution != resolution:
            raise BadOptionError("--fakes", f"{path}: resolution {source.resolution} differs from the reference "
                                            f"set's {resolution}")
        return ImageSetSource(lambda start, stop, batch: source.images(range(start, stop), batch), source.count,
                              source.describe(), source.resolution)
    return open_folder(path, resolution, "--fakes", workers)


def open_reference(path: str | Path, resolution: int | None, workers: int = 0) -> DatasetSource | ImageSetSource:
    """``--data``: a prepped dataset (preferred: depth maps, labels) or a folder of images at ``resolution``."""
    if is_dataset(path):
        return open_dataset(path, "--data", workers)
    if resolution is None:
        raise BadOptionError("--resolution", f"--data {path} is a folder: say which resolution to read it at")
    return open_folder(path, resolution, "--data", workers)
