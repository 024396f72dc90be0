"""Inception Score (3DGP ref §6.4): the split/KL arithmetic, both accepted network kinds, and the error paths."""
from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stages.common.errors import BadFileError, MetricUnavailable, ThreeDGPError
from stages.metrics.inception_score import (
    ISNetwork,
    compute_inception_score,
    inception_score,
    load_is_network,
)

NUM_CLASSES = 7


class TinyLogits(nn.Module):
    """(x - 128) / 128 at 299x299 -> [N, 7] logits: average pool to 4x4, then a seeded linear layer."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(3 * 4 * 4, NUM_CLASSES)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(NUM_CLASSES, 48, generator=generator) * 3.0)
            self.fc.bias.copy_(torch.randn(NUM_CLASSES, generator=generator))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(x).flatten(1))


class FakeNvidia(nn.Module):
    """NVIDIA's call signature; softmax probs whose bias term and input-size term show how it was called."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([[0.02, -0.01, 0.0], [-0.03, 0.01, 0.02], [0.0, 0.02, -0.02]]))
        self.bias = nn.Parameter(torch.tensor([5.0, -5.0, 0.0]))

    def forward(self, img: Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> Tensor:
        x = img.to(torch.float32).mean(dim=(2, 3))  # [N, 3]
        if return_features:
            return x
        logits = x @ self.weight.t()
        logits = logits + float(img.shape[-1]) / 64.0  # depends on the input width: proves nobody resized first
        logits[:, 0] = logits[:, 0] + float(img.shape[-1]) / 16.0
        if not no_output_bias:
            logits = logits + self.bias
        return torch.softmax(logits, dim=1)


def _script(module: nn.Module):
    with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript; NVIDIA's file is TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(module)


def _save_scripted(module: nn.Module, path) -> str:
    _script(module).save(str(path))
    return str(path)


def _reference_resize(images: Tensor) -> Tensor:
    """NVIDIA's in-network resize written out independently (ref §6.2)."""
    x = images.to(torch.float32)
    n, _, h, w = x.shape
    theta = torch.tensor([[1.0, 0.0, 1.0 / w - 1.0 / 299], [0.0, 1.0, 1.0 / h - 1.0 / 299]]).repeat(n, 1, 1)
    grid = F.affine_grid(theta, [n, 3, 299, 299], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _reference_is(probs: np.ndarray, splits: int) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) per contiguous split, written with scipy's KL terms."""
    from scipy.special import rel_entr

    scores = []
    for part in np.array_split(probs.astype(np.float64), splits):
        marginal = part.mean(axis=0)
        scores.append(np.exp(np.mean([rel_entr(row, marginal).sum() for row in part])))
    return float(np.mean(scores)), float(np.std(scores))


def test_uniform_probs_score_one():
    assert inception_score(np.full((40, 8), 1 / 8), num_splits=10) == (1.0, 0.0)
    mean, std = inception_score(np.full((30, 10), 0.1, np.float32), num_splits=3)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_cycling_one_hot_scores_num_classes():
    classes, splits = 5, 4
    probs = np.eye(classes)[np.arange(classes * splits * 3) % classes]  # every split holds each class 3 times
    mean, std = inception_score(probs, num_splits=splits)
    assert mean == pytest.approx(classes, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_matches_reference_with_uneven_splits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(23, 6)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    mean, std = inception_score(probs, num_splits=4)  # 23 rows: chunks of 5, 6, 6, 6 (i*N//S bounds)
    bounds = [i * 23 // 4 for i in range(5)]
    assert bounds == [0, 5, 11, 17, 23]
    scores = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = probs[lo:hi]
        kl = part * (np.log(part) - np.log(part.mean(0, keepdims=True)))
        scores.append(np.exp(kl.sum(1).mean()))
    assert mean == pytest.approx(np.mean(scores), rel=1e-12) and std == pytest.approx(np.std(scores), rel=1e-9)
    assert 1.0 < mean < 6.0 and std > 0


def test_inception_score_validation():
    with pytest.raises(MetricUnavailable, match="needs at least 10 images.*got 9"):
        inception_score(np.full((9, 4), 0.25))
    assert issubclass(MetricUnavailable, ThreeDGPError)
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(np.full((10, 4), 0.3))
    with pytest.raises(ValueError, match="probabilities"):
        inception_score(np.full((10, 2), [1.5, -0.5]))
    with pytest.raises(ValueError, match="shape"):
        inception_score(np.full((10,), 0.5))


def test_logits_network_matches_direct_computation(tmp_path):
    path = _save_scripted(TinyLogits(), tmp_path / "tiny.pt")
    net = load_is_network(path)
    assert net.kind == "logits" and net.num_classes == NUM_CLASSES and net.device == "cpu"
    with open(path, "rb") as handle:
        assert net.sha256 == hashlib.sha256(handle.read()).hexdigest() and net.path == path

    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (20, 3, 32, 40), dtype=np.uint8))
    batches = [images[:7], images[7:13], images[13:]]
    mean, std = compute_inception_score(batches, net, num_splits=4)

    reference = TinyLogits().eval()
    with torch.no_grad():
        probs = torch.softmax(reference((_reference_resize(images) - 128) / 128), dim=1).numpy()
    np.testing.assert_allclose(net(images).numpy(), probs, rtol=1e-5, atol=1e-6)
    ref_mean, ref_std = _reference_is(probs, 4)
    assert mean == pytest.approx(ref_mean, rel=1e-5) and std == pytest.approx(ref_std, rel=1e-4, abs=1e-6)
    assert 1.0 < mean < NUM_CLASSES and std > 0  # the tiny network spreads its classes, so not a degenerate case


def test_nvidia_kind_is_called_without_output_bias_and_unresized(tmp_path):
    path = _save_scripted(FakeNvidia(), tmp_path / "inception-2015-12-05.pt")
    net = load_is_network(path)
    assert net.kind == "nvidia" and net.num_classes == 3

    images = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (10, 3, 24, 24), dtype=np.uint8))
    scripted = _script(FakeNvidia()).eval()
    with torch.no_grad():
        without_bias = scripted(images, return_features=False, no_output_bias=True).numpy()
        with_bias = scripted(images, return_features=False, no_output_bias=False).numpy()
        resized = scripted(_reference_resize(images), no_output_bias=True).numpy()
    got = net(images).numpy()
    np.testing.assert_allclose(got, without_bias, rtol=1e-6, atol=1e-7)
    assert np.abs(got - with_bias).max() > 0.1 and np.abs(got - resized).max() > 0.1
    assert compute_inception_score([images[:4], images[4:]], net, num_splits=2) == pytest.approx(
        _reference_is(without_bias, 2), rel=1e-5, abs=1e-7)


def test_no_weights_is_unavailable():
    with pytest.raises(MetricUnavailable, match="^IS unavailable: needs --is-weights PATH") as info:
        load_is_network(None)
    assert "packaged FID network has no classifier" in str(info.value)


def test_bad_weights_files(tmp_path):
    with pytest.raises(BadFileError, match="--is-weights: no such file"):
        load_is_network(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(BadFileError, match="--is-weights: not a TorchScript") as info:
        load_is_network(junk)
    assert "\n" not in str(info.value)

    class OneClass(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x.mean(dim=(1, 2, 3))[:, None]

    with pytest.raises(BadFileError, match=r"--is-weights: the logits network returned \(1, 1\)"):
        load_is_network(_save_scripted(OneClass(), tmp_path / "one.pt"))

    class NeedsTwoInputs(nn.Module):
        def forward(self, x: Tensor, y: Tensor) -> Tensor:
            return x + y

    with pytest.raises(BadFileError, match="--is-weights: the network accepts neither") as info:
        load_is_network(_save_scripted(NeedsTwoInputs(), tmp_path / "two.pt"))
    assert "\n" not in str(info.value)


def test_is_network_accepts_floats_and_arrays(tmp_path):
    net = ISNetwork(_script(TinyLogits()), "mem", "0" * 64)
    assert net.kind == "logits"
    images = np.random.default_rng(3).integers(0, 256, (2, 3, 17, 17), dtype=np.uint8)
    probs = net(images)
    assert probs.dtype == torch.float32 and probs.shape == (2, NUM_CLASSES)
    np.testing.assert_allclose(net(torch.from_numpy(images).float()).numpy(), probs.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(probs.sum(1).numpy(), 1.0, atol=1e-6)
