"""What every depth estimator shares: the protocol, the stored-depth convention and weight-file helpers.

Stored depth follows the LeReS export used by 3DGP (3DGP ref §3.3): a uint16 map ``depth / depth.max() * 60000``,
larger = farther; the trainer decodes it as ``D / 65536 * 2 - 1`` so the farthest pixel lands at ~0.83.
"""
from __future__ import annotations

import logging
import os
import warnings
from collections import OrderedDict
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from stages.common.hashing import sha256_file  # noqa: F401  (re-exported)
from stages.common.errors import BadFileError

logger = logging.getLogger(__name__)

DEPTH_EXPORT_MAX = 60000  # LeReS demo export: the farthest pixel of each map is stored as 60000 (3DGP ref §3.3)
OutputKind = Literal["depth", "disparity->depth"]


@runtime_checkable
class DepthEstimator(Protocol):
    """A monocular depth estimator as `3dgp prep` uses it (3DGP ref §7.3).

    Attributes:
        name: registry name (``"leres"``, ``"hf"``).
        version: a human-readable description of architecture and code version, stored in the dataset meta.
        weights_sha256: sha256 of the weights file(s), or None when no file was read.
        output_kind: ``"depth"`` when the network predicts depth, ``"disparity->depth"`` when it predicts inverse
            depth that :func:`disparity_to_depth` converted.
    """

    name: str
    version: str
    weights_sha256: str | None
    output_kind: OutputKind

    def predict(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] RGB -> float32 [N, H, W] relative depth, positive, larger = farther."""
        ...


def encode_depth_uint16(depth: np.ndarray) -> np.ndarray:
    """Relative depth float [H, W] -> uint16 [H, W] in the LeReS export convention (3DGP ref §3.3).

    ``depth / max(depth) * 60000``, larger = farther. Non-finite pixels become the farthest value and
    non-positive pixels become 0, so a map with NaNs or a degenerate all-zero map never crashes the writer.
    """
    depth = np.asarray(depth, dtype=np.float64)
    assert depth.ndim == 2, f"expected [H, W], got {depth.shape}"
    finite = np.isfinite(depth)
    if not finite.any():
        return np.full(depth.shape, DEPTH_EXPORT_MAX, dtype=np.uint16)
    clean = np.where(finite, depth, np.max(depth[finite]))  # unknown depth -> as far as the farthest known pixel
    clean = np.maximum(clean, 0.0)
    peak = clean.max()
    if peak <= 0.0:
        return np.zeros(depth.shape, dtype=np.uint16)
    return np.round(clean / peak * DEPTH_EXPORT_MAX).astype(np.uint16)  # [H, W]


def decode_depth_uint16(depth_u16: np.ndarray) -> np.ndarray:
    """uint16 [..., H, W] -> float32 in [-1, 1), as the 3DGP trainer normalises real depth (3DGP ref §3.3)."""
    return (np.asarray(depth_u16, dtype=np.float32) / 65536.0 * 2.0 - 1.0).astype(np.float32)


def disparity_to_depth(disparity: np.ndarray, max_depth_ratio: float = 10.0) -> np.ndarray:
    """Relative inverse depth float [N, H, W] -> relative depth float32 [N, H, W], larger = farther.

    Relative disparity from MiDaS-style networks has an unknown scale *and* shift, so ``1 / disparity`` is not
    defined. Each map is min-max normalised to [0, 1] and mapped through ``1 / (d + c)`` with ``c`` chosen so that
    the farthest pixel is ``max_depth_ratio`` times farther than the nearest; the map is strictly decreasing in
    disparity. A constant map becomes a constant depth of 1.
    """
    assert max_depth_ratio > 1.0
    disp = np.asarray(disparity, dtype=np.float64)
    disp = np.where(np.isfinite(disp), disp, np.nan)
    low = np.nanmin(disp, axis=(-2, -1), keepdims=True)
    high = np.nanmax(disp, axis=(-2, -1), keepdims=True)
    span = np.where(high - low > 0, high - low, 1.0)
    unit = np.nan_to_num((disp - low) / span, nan=0.0)  # [N, H, W] in [0, 1]; NaN -> farthest
    offset = 1.0 / (max_depth_ratio - 1.0)
    depth = (1.0 + offset) / (unit + offset) / max_depth_ratio  # nearest = 1 / ratio ... farthest = 1
    return depth.astype(np.float32)


def shift_positive(depth: np.ndarray, floor: float = 0.01) -> np.ndarray:
    """Make each depth map [N, H, W] positive the LeReS way: ``d - min(d) + floor`` (RelDepthModel.inference)."""
    depth = np.asarray(depth, dtype=np.float32)
    return depth - depth.min(axis=(-2, -1), keepdims=True) + np.float32(floor)


def read_state_dict(path: str | os.PathLike, option: str) -> dict:
    """Load a checkpoint file (.pt/.pth/.bin via ``torch.load(weights_only=True)``, or .safetensors) as a dict.

    Raises BadFileError when the file is missing or cannot be read as tensors; ``option`` names the CLI option
    the path came from (used in the message).
    """
    import torch

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BadFileError(path, f"{option}: no such file")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return dict(load_file(path, device="cpu"))
        with warnings.catch_warnings():  # torch warns before failing on some files (a TorchScript archive): the
            warnings.simplefilter("ignore")  # refusal below is the one line the user sees (issue 19 §7)
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to parse is the file's fault
        raise BadFileError(path, f"{option}: not a readable weights file ({_why_unreadable(exc)})") from None
    if not isinstance(loaded, dict):
        raise BadFileError(path, f"{option}: expected a dict of tensors, found {type(loaded).__name__}")
    return loaded


def _why_unreadable(exc: BaseException) -> str:
    """Why a weights file failed to load, in a few words (torch's own texts suggest unsafe loading)."""
    text = str(exc)
    if "TorchScript" in text:
        return "a TorchScript archive, not a state dict of tensors"
    if "deserializ" in text:  # safetensors' own errors are short and to the point
        return f"damaged safetensors file: {text.strip().splitlines()[0][:120]}"
    from stages.common.checkpoint import describe_load_failure

    return describe_load_failure(exc)


def strip_prefix(state_dict: dict, prefix: str) -> dict:
    """Drop ``prefix`` from every key when *all* keys carry it (DataParallel's ``module.``)."""
    if state_dict and all(key.startswith(prefix) for key in state_dict):
        return OrderedDict((key[len(prefix):], value) for key, value in state_dict.items())
    return state_dict


def describe_mismatch(expected: dict, found: dict, what: str) -> str | None:
    """One line naming how two state dicts differ (missing/unexpected keys, shape mismatches), or None if equal."""
    from stages.common.checkpoint import state_dict_differences

    missing, unexpected, shapes = state_dict_differences(expected, found)
    if not (missing or unexpected or shapes):
        return None
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    if shapes:
        key = shapes[0]
        parts.append(
            f"{len(shapes)} shape mismatches (e.g. {key}: file {tuple(found[key].shape)}, "
            f"model {tuple(expected[key].shape)})"
        )
    return f"weights do not match {what}: " + "; ".join(parts)
