"""``LmdbDataset``: the training-side reader of a prepped dataset (3DGP ref §3.3, §4.3, §7.1).

Random access by index; the LMDB env is opened lazily in whichever process first reads (so each DataLoader worker
opens its own, read-only and without a lock). ``mirror=True`` doubles the length: items ``N .. 2N-1`` are the
x-flipped copies of ``0 .. N-1`` (image and depth flip together; the embedding stays the un-mirrored one, §7.1).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stages.common.errors import DataFormatError
from stages.data.format import (
    decode_depth_gt,
    decode_depth,
    decode_embedding,
    decode_image,
    depth_u16_to_unit,
    item_key,
    unpack_item,
)
from stages.data.lmdb_store import open_readonly, read_meta


class LmdbDataset(torch.utils.data.Dataset):
    """A prepped 3dgp dataset as a torch Dataset.

    ``__getitem__`` returns a dict: ``image`` uint8 [3, R, R]; ``depth`` float32 [1, R, R] in [-1, 1) (absent
    without depth); ``label`` int (-1 when unlabelled); ``embedding`` float32 [D] (absent without an embedder);
    ``depth_gt`` float32 [1, R, R] (only with ``load_depth_gt`` and a toy dataset); ``index`` int (the stored
    item); ``mirrored`` bool.
    """

    def __init__(
        self,
        path: str | os.PathLike,  # the dataset directory written by `3dgp prep`
        mirror: bool = False,  # double the length with x-flipped copies (§7.1)
        max_items: int | None = None,  # use only the first max_items stored items
        load_depth_gt: bool = False,  # also return ground-truth depth when the dataset has it
    ):
        self.path = Path(path)
        self.meta: dict[str, Any] = read_meta(self.path)
        self.mirror = bool(mirror)
        num = int(self.meta["num_items"])
        self.num_items = num if max_items is None else max(0, min(num, int(max_items)))
        self.resolution = int(self.meta["resolution"])
        self.load_depth_gt = bool(load_depth_gt) and bool(self.meta["has_depth_gt"])
        self._env = None  # opened lazily per process
        self._env_pid = None  # the process that opened _env (a forked worker must open its own)
        self._check_items(num)

    def _check_items(self, num: int) -> None:
        """The meta record agrees with a few items (first, middle, last, and none after the last)."""
        def bad(index: int, what: str) -> DataFormatError:
            return DataFormatError(self.path, f"item {index} disagrees with the meta record: {what}; the dataset is "
                                              f"damaged or was not written by `3dgp prep`: re-run the prep")

        self._env, self._env_pid = open_readonly(self.path), os.getpid()
        probes = sorted({0, num // 2, num - 1} if num else ())
        with self._env.begin(buffers=False) as txn:
            if txn.get(item_key(num)) is not None:
                raise bad(num, f"it exists although num_items is {num}")
            for index in probes:
                if txn.get(item_key(index)) is None:
                    raise bad(index, f"it is missing although num_items is {num}")
        res, dim = self.resolution, self.embedding_dim
        for index in probes:
            header, blobs = self._read(index)
            if "image" not in blobs:
                raise bad(index, "it has no image")
            try:
                shape = decode_image(blobs["image"]).shape
            except Exception as exc:  # noqa: BLE001 - any decoder error means a damaged item
                raise bad(index, f"its image does not decode ({type(exc).__name__})") from None
            if shape[:2] != (res, res):
                raise bad(index, f"its image is {shape[1]}x{shape[0]} but the resolution is {res}")
            if self.has_depth != ("depth" in blobs):
                raise bad(index, "it has a depth map although the meta record says none" if "depth" in blobs
                          else "it has no depth map although the meta record names a depth model")
            if dim and ("embedding" not in blobs or len(blobs["embedding"]) != 2 * dim):
                got = len(blobs["embedding"]) // 2 if "embedding" in blobs else 0
                raise bad(index, f"its embedding has {got} values but the embedder dim is {dim}")
            label = header.get("label")
            if label is not None and (not isinstance(label, int) or isinstance(label, bool)
                                      or not -1 <= label < self.num_classes):
                raise bad(index, f"label {label!r} is not a class index below {self.num_classes}")

    # --- what the trainer needs to know -------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of classes (0 when unlabelled)."""
        return len(self.meta["class_names"])

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def has_depth(self) -> bool:
        """Whether items carry a depth map (False for ``--depth-model none``)."""
        return self.meta["depth"] is not None

    @property
    def embedding_dim(self) -> int:
        """Dimension of the stored distillation embedding, 0 when none was computed."""
        return int(self.meta["embedder"]["dim"]) if self.meta["embedder"] else 0

    @property
    def label_counts(self) -> np.ndarray:
        """int64 [C]: items per class (over all stored items)."""
        return np.asarray(self.meta["label_counts"], dtype=np.int64)

    @property
    def label_probs(self) -> np.ndarray:
        """float64 [C]: the empirical label distribution, for sampling fake classes."""
        counts = self.label_counts.astype(np.float64)
        return counts / counts.sum() if counts.size and counts.sum() > 0 else counts

    # --- torch Dataset ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.num_items * (2 if self.mirror else 1)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_env"], state["_env_pid"] = None, None  # each worker opens its own env
        return state

    def _read(self, index: int) -> tuple[dict, dict]:
        if self._env is None or self._env_pid != os.getpid():
            self._env, self._env_pid = open_readonly(self.path), os.getpid()
        with self._env.begin(buffers=False) as txn:
            value = txn.get(item_key(index))
        if value is None:
            raise DataFormatError(self.path, f"item {index} is missing")
        try:
            return unpack_item(value)
        except (ValueError, KeyError) as exc:
            raise DataFormatError(self.path, f"item {index} is malformed ({exc})") from None

    def __getitem__(self, idx: int) -> dict[str, Any]:
        if not 0 <= idx < len(self):
            raise IndexError(idx)
        index, mirrored = idx % self.num_items, idx >= self.num_items
        header, blobs = self._read(index)
        if "image" not in blobs:
            raise DataFormatError(self.path, f"item {index} has no image")
        image = decode_image(blobs["image"])  # [R, R, 3]
        out: dict[str, Any] = {"label": -1 if header["label"] is None else int(header["label"])}
        if self.has_depth:
            if "depth" not in blobs:
                raise DataFormatError(self.path, f"item {index} has no depth map")
            depth = depth_u16_to_unit(decode_depth(blobs["depth"]))[None]  # [1, R, R]
        if self.embedding_dim:
            if "embedding" not in blobs:
                raise DataFormatError(self.path, f"item {index} has no embedding")
            out["embedding"] = torch.from_numpy(decode_embedding(blobs["embedding"]))  # [D], never mirrored
        if self.load_depth_gt:
            depth_gt = decode_depth_gt(blobs["depth_gt"], self.resolution)[None]  # [1, R, R]
        if mirrored:  # x-flip image and depth together (§7.1)
            image = image[:, ::-1]
            depth = depth[:, :, ::-1] if self.has_depth else None
            depth_gt = depth_gt[:, :, ::-1] if self.load_depth_gt else None
        out["image"] = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))  # [3, R, R] uint8
        if self.has_depth:
            out["depth"] = torch.from_numpy(np.ascontiguousarray(depth))  # [1, R, R] float32
        if self.load_depth_gt:
            out["depth_gt"] = torch.from_numpy(np.ascontiguousarray(depth_gt))  # [1, R, R] float32
        out["index"] = index
        out["mirrored"] = mirrored
        return out

    def source_of(self, index: int) -> str:
        """The source path/key that stored item ``index`` came from."""
        return self._read(index)[0]["source"]

    def close(self) -> None:
        """Drop this reader's handle (the process-wide env stays open for other readers; see ``release_readonly``)."""
        self._env = self._env_pid = None
