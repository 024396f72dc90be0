"""Any Hugging Face ``transformers`` depth-estimation model saved in a local folder (3DGP ref §7.3 substitutes).

Covers Depth-Anything(-V2), DPT/MiDaS, ZoeDepth, GLPN, DepthPro: whatever ``AutoModelForDepthEstimation`` and
``AutoImageProcessor`` load from a folder holding ``config.json``, ``preprocessor_config.json`` and the weights.
``transformers`` is an optional extra (``pip install 'threedgp[hf]'``) and is imported only here.

Relative models (DPT/MiDaS, Depth-Anything "relative") predict inverse depth with unknown scale and shift; we
convert with :func:`~stages.prep.depth.base.disparity_to_depth` and report ``output_kind="disparity->depth"``.
Metric models (ZoeDepth, GLPN, DepthPro, Depth-Anything "metric") already predict depth (larger = farther).
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import os

import numpy as np

from stages.common.errors import BadFileError, BadOptionError
from stages.prep.depth.base import disparity_to_depth, sha256_file

logger = logging.getLogger(__name__)

METRIC_MODEL_TYPES = frozenset({"zoedepth", "glpn", "depth_pro"})
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def _import_transformers():
    """Import transformers after the torchvision shim; a clear BadOptionError when the extra is missing."""
    from stages.common.compat import ensure_torchvision

    ensure_torchvision()  # transformers' image utilities import torchvision
    try:
        import transformers
    except ImportError as exc:
        raise BadOptionError(
            "--depth-model", "'hf' needs the optional 'transformers' package: pip install 'threedgp[hf]'"
        ) from exc
    transformers.utils.logging.disable_progress_bar()
    return transformers


def output_kind_of(config) -> str:
    """``"depth"`` for metric-depth architectures, ``"disparity->depth"`` for relative inverse-depth ones."""
    if getattr(config, "depth_estimation_type", None) == "metric" or config.model_type in METRIC_MODEL_TYPES:
        return "depth"
    return "disparity->depth"


def weights_digest(model_dir: str) -> str | None:
    """sha256 of the folder's weight file, or of the sorted ``name:sha256`` lines when it is sharded."""
    names = sorted(name for name in os.listdir(model_dir) if name.endswith(WEIGHT_SUFFIXES))
    if not names:
        return None
    digests = [(name, sha256_file(os.path.join(model_dir, name))) for name in names]
    if len(digests) == 1:
        return digests[0][1]
    return hashlib.sha256("".join(f"{name}:{sha}\n" for name, sha in digests).encode()).hexdigest()


def _check_loading_info(model_dir: str, info: dict) -> None:
    """transformers fills missing or mis-shaped tensors with random values and only warns: refuse that."""
    missing = list(info.get("missing_keys") or [])
    mismatched = list(info.get("mismatched_keys") or [])
    if missing or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
        if mismatched:
            first = mismatched[0]
            parts.append(f"{len(mismatched)} shape mismatches (e.g. {first[0] if isinstance(first, tuple) else first})")
        raise BadFileError(model_dir, "--depth-weights: weights do not match config.json: " + "; ".join(parts))


class HFDepthEstimator:
    """:class:`~stages.prep.depth.base.DepthEstimator` wrapping a transformers depth-estimation model."""

    name = "hf"

    def __init__(
        self,
        model,                              # a transformers *ForDepthEstimation model in eval mode
        processor,                          # its image processor
        weights_sha256: str | None = None,  # digest of the weight file(s)
        source: str = "",                   # folder (or hub id) it came from, for the version string
        device: str = "cpu",                # where to run
        batch_size: int = 8,                # images per forward pass
    ):
        import transformers

        self.model = model.eval().to(device)
        self.processor = processor
        self.device = device
        self.batch_size = batch_size
        self.weights_sha256 = weights_sha256
        self.output_kind = output_kind_of(model.config)
        self.version = (
            f"hf:{model.config.model_type} ({type(model).__name__}, {os.path.basename(source.rstrip('/'))}) "
            f"transformers {transformers.__version__}"
        )

    def _raw_depth(self, batch: np.ndarray):
        """uint8 [B, H, W, 3] -> the network's raw prediction at the input size, float [B, H, W]."""
        import torch
        import torch.nn.functional as F

        height, width = batch.shape[1:3]
        inputs = self.processor(images=list(batch), return_tensors="pt").to(self.device)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        post = getattr(self.processor, "post_process_depth_estimation", None)
        if post is not None:
            kwargs = {"target_sizes": [(height, width)] * len(batch)}
            if "source_sizes" in inspect.signature(post).parameters:  # ZoeDepth: undo its padding first
                kwargs["source_sizes"] = [(height, width)] * len(batch)
            results = post(outputs, **kwargs)
            return torch.stack([r["predicted_depth"].float() for r in results]).cpu().numpy()
        raw = outputs.predicted_depth.float()  # [B, h, w]
        raw = F.interpolate(raw[:, None], size=(height, width), mode="bicubic", align_corners=False)[:, 0]
        return raw.cpu().numpy()

    def predict(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] RGB -> float32 [N, H, W] relative depth, positive, larger = farther."""
        images = np.asarray(images)
        assert images.ndim == 4 and images.shape[-1] == 3, f"expected [N, H, W, 3], got {images.shape}"
        outputs = []
        for start in range(0, len(images), self.batch_size):
            raw = self._raw_depth(images[start:start + self.batch_size])  # [B, H, W]
            if self.output_kind == "disparity->depth":
                outputs.append(disparity_to_depth(raw))
            else:
                raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
                outputs.append(np.maximum(raw, 1e-6))  # metric depth; guard the odd non-positive pixel
        return np.concatenate(outputs).astype(np.float32)


def load_hf(weights: str | None, device: str = "cpu", allow_download: bool = False) -> HFDepthEstimator:
    """The ``hf`` registry entry: a local transformers model folder -> a ready estimator.

    ``weights`` is the folder. With ``allow_download=True`` it may also be a hub model id, fetched only when the
    environment allows network access (``HF_HUB_OFFLINE=0`` set before starting). Raises BadOptionError/
    BadFileError for a missing folder, a folder without a depth model, or weights that do not fit its config.
    """
    if weights is None:
        raise BadOptionError("--depth-weights", "'hf' needs a local transformers model folder (config.json + weights)")
    local = os.path.isdir(weights)
    if not local and not allow_download:
        raise BadFileError(weights, "--depth-weights: no such folder (hub downloads happen only when allowed)")
    if local and not os.path.isfile(os.path.join(weights, "config.json")):
        raise BadFileError(weights, "--depth-weights: no config.json in this folder (not a transformers model)")
    transformers = _import_transformers()
    verbosity = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()  # its loading report is long; our error says it in one line
    offline = local or not allow_download
    try:
        model, info = transformers.AutoModelForDepthEstimation.from_pretrained(
            weights, local_files_only=offline, output_loading_info=True
        )
        processor = transformers.AutoImageProcessor.from_pretrained(weights, local_files_only=offline)
    except RuntimeError as exc:  # transformers >= 5 refuses size mismatches outright
        if "mismatch" not in str(exc):
            raise
        message = "--depth-weights: weights do not match config.json (tensor size mismatches)"
        raise BadFileError(weights, message) from exc
    except (OSError, ValueError, KeyError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BadFileError(weights, f"--depth-weights: cannot load a depth model ({first_line[:200]})") from exc
    finally:
        transformers.utils.logging.set_verbosity(verbosity)
    _check_loading_info(weights, info)
    digest = weights_digest(weights) if local else None
    logger.info("hf depth model %s (%s)", weights, output_kind_of(model.config))
    return HFDepthEstimator(model, processor, weights_sha256=digest, source=weights, device=device)
