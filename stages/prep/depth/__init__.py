"""Monocular depth estimators for `3dgp prep` and the stored-depth convention (3DGP ref §3.3, §7.3).

Registry (``--depth-model NAME``):

* ``leres``: LeReS, the paper's estimator, our implementation loading the official ``res50.pth``/``res101.pth``
  (``--depth-weights PATH``; see :mod:`stages.prep.depth.leres`).
* ``hf``: any local Hugging Face ``transformers`` depth-estimation folder (Depth-Anything(-V2), DPT/MiDaS,
  ZoeDepth, ...; optional extra; see :mod:`stages.prep.depth.hf`).
* ``precomputed``, ``toy``, ``none``: not models. The prep pipeline handles them itself (read ``<name>_depth.png``
  beside the images, degrade the toy renderer's ground truth, store no depth). They are listed by
  :func:`list_depth_estimators` so the CLI can validate names, and :func:`load_depth_estimator` refuses them with
  a BadOptionError saying so; test membership in :data:`PIPELINE_DEPTH_SOURCES` before loading.

Every estimator returns relative depth, positive, larger = farther; the pipeline stores each map with
:func:`encode_depth_uint16` (the LeReS export, ``depth / max * 60000``) and the trainer reads it back as
``D / 65536 * 2 - 1`` (:func:`decode_depth_uint16`).
"""
from __future__ import annotations

from stages.common.errors import BadOptionError
from stages.prep.depth.base import (
    DEPTH_EXPORT_MAX,
    DepthEstimator,
    decode_depth_uint16,
    disparity_to_depth,
    encode_depth_uint16,
    sha256_file,
)

MODEL_ESTIMATORS = ("leres", "hf")
PIPELINE_DEPTH_SOURCES = ("precomputed", "toy", "none")

__all__ = [
    "DEPTH_EXPORT_MAX",
    "DepthEstimator",
    "MODEL_ESTIMATORS",
    "PIPELINE_DEPTH_SOURCES",
    "decode_depth_uint16",
    "disparity_to_depth",
    "encode_depth_uint16",
    "list_depth_estimators",
    "load_depth_estimator",
    "sha256_file",
]


def list_depth_estimators() -> list[str]:
    """Every valid ``--depth-model`` name: the loadable models, then the names the pipeline handles itself."""
    return [*MODEL_ESTIMATORS, *PIPELINE_DEPTH_SOURCES]


def load_depth_estimator(
    name: str,
    weights: str | None = None,
    device: str = "cpu",
    allow_download: bool = False,
) -> DepthEstimator:
    """Build the estimator ``name`` from the user's weights (3DGP ref §7.3).

    Args:
        name: ``"leres"`` or ``"hf"`` (see the module docstring for the other names).
        weights: ``--depth-weights``: the LeReS checkpoint file, or the transformers model folder.
        device: torch device string.
        allow_download: let ``hf`` treat ``weights`` as a hub model id and fetch it. Never the default.

    Raises:
        BadOptionError: unknown name, a pipeline-handled name, or missing ``weights``.
        BadFileError: a missing weights file, or weights that do not fit the architecture (one line saying how).
    """
    if name == "leres":
        from stages.prep.depth.leres import load_leres

        return load_leres(weights, device=device)
    if name == "hf":
        from stages.prep.depth.hf import load_hf

        return load_hf(weights, device=device, allow_download=allow_download)
    if name in PIPELINE_DEPTH_SOURCES:
        raise BadOptionError(
            "--depth-model", f"'{name}' is not a network; the prep pipeline handles it (check PIPELINE_DEPTH_SOURCES)"
        )
    raise BadOptionError(
        "--depth-model", f"unknown estimator '{name}'; choose one of {', '.join(list_depth_estimators())}"
    )
