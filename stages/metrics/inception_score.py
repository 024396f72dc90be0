"""The Inception Score (3DGP ref §6.4): exp(E_x KL(p(y|x) || p(y))) over 10 splits, mean and std reported.

The packaged FID network (``default_1.pt``) holds only the layers up to pool3, so it has no classifier; IS therefore
needs a user file, ``--is-weights PATH``, and is reported as unavailable without one (no other network is ever
substituted). Two TorchScript files are accepted, told apart by probing the file once:

* ``"nvidia"``: NVIDIA's ``inception-2015-12-05.pt`` as StyleGAN2-ADA/StyleGAN3 (and so 3DGP) use it. Its forward
  takes a uint8 (or float 0..255) NCHW batch of any size, resizes it itself and returns softmax probabilities over
  1008 classes; it is called with ``return_features=False, no_output_bias=True``, the official IS setting.
* ``"logits"``: any other TorchScript module mapping ``(x - 128) / 128`` at 299x299 to logits ``[N, C]``. We resize
  with NVIDIA's resize (:func:`stages.metrics.resize.resize_for_detector`, mode ``"stylegan"``) and apply a softmax.
  To match the official numbers the module must leave the output layer's bias out (that is the user's job).

Public API:
  inception_score(probs [N, C], num_splits=10) -> (mean, std)
  ISNetwork: images 0..255 [N, 3, H, W] tensor -> float32 probs [N, C] (CPU tensor); .path .sha256 .kind
    .num_classes .device
  load_is_network(path | None, device="cpu") -> ISNetwork
  compute_inception_score(batches of [B, 3, H, W] tensors, net, num_splits=10) -> (mean, std)
"""
from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from stages.common.errors import BadFileError, MetricUnavailable
from stages.common.hashing import sha256_file
from stages.metrics.resize import resize_for_detector

KINDS = ("nvidia", "logits")
NVIDIA_KWARGS = {"return_features": False, "no_output_bias": True}  # StyleGAN3 inception_score.py: no output bias
NO_WEIGHTS_MESSAGE = (
    "IS unavailable: needs --is-weights PATH (NVIDIA's inception-2015-12-05.pt or a TorchScript Inception-v3 with "
    "logits); the packaged FID network has no classifier"
)
_PROBE_SIZE = 16  # the probe image's side; NVIDIA's network resizes it, ours resizes it to 299


def inception_score(probs: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """Inception Score of softmax rows ``probs`` [N, C] as StyleGAN3 / 3DGP compute it (ref §6.4).

    The rows are cut into ``num_splits`` contiguous chunks ``probs[i*N//S:(i+1)*N//S]``; per chunk
    ``exp(mean_rows(sum_classes(p * (log p - log mean_chunk(p)))))``; returns the mean and the population std
    (``np.std``) of those scores. Computed in float64; a zero probability contributes 0 (0 log 0 = 0) where the
    official code would give NaN. Raises MetricUnavailable when N < num_splits and ValueError when the rows are not
    probabilities.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"inception_score: expected probabilities [N, C>=2], got shape {probs.shape}")
    if int(num_splits) != num_splits or num_splits < 1:
        raise ValueError(f"inception_score: num_splits must be a positive integer, got {num_splits!r}")
    num = len(probs)
    if num < num_splits:
        raise MetricUnavailable(f"IS unavailable: needs at least {num_splits} images (one per split), got {num}")
    if not np.isfinite(probs).all() or (probs < 0).any() or (probs > 1 + 1e-6).any():
        raise ValueError("inception_score: rows must be probabilities (finite, in 0..1)")
    sums = probs.sum(axis=1)
    if not np.allclose(sums, 1.0, rtol=0.0, atol=1e-3):
        worst = float(sums[np.argmax(np.abs(sums - 1.0))])
        raise ValueError(f"inception_score: rows must sum to 1 (softmax probabilities); one sums to {worst:.6g}")
    scores = []
    for split in range(num_splits):
        part = probs[split * num // num_splits:(split + 1) * num // num_splits]  # [n_i, C]
        marginal = part.mean(axis=0, keepdims=True)  # p(y) over the split, [1, C]
        positive = part > 0  # where part > 0 the marginal is > 0 too
        log_ratio = np.log(np.where(positive, part, 1.0)) - np.log(np.where(marginal > 0, marginal, 1.0))
        kl = np.where(positive, part * log_ratio, 0.0)  # [n_i, C]
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


def _first_line(exc: BaseException, limit: int = 160) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


class ISNetwork:
    """Callable Inception classifier for IS: images 0..255 [N, 3, H, W] -> float32 softmax probs [N, C] (ref §6.4).

    ``kind`` is ``"nvidia"`` (NVIDIA's ``inception-2015-12-05.pt``: called on the raw batch with
    ``return_features=False, no_output_bias=True``; it resizes itself) or ``"logits"`` (a TorchScript module mapping
    ``(x - 128) / 128`` at 299x299 to logits; we resize with NVIDIA's resize and apply a softmax; the module must
    leave out the output bias itself to match the official IS). ``kind=None`` detects it by probing the module once:
    NVIDIA's keyword signature first, the logits convention if that raises. Bad outputs raise BadFileError.
    """

    def __init__(
        self,
        net,                      # TorchScript module of either kind
        path: str,                # file it was loaded from
        sha256: str,              # sha256 of that file
        device: str = "cpu",      # where to run
        kind: str | None = None,  # "nvidia", "logits" or None (probe)
    ):
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown IS network kind {kind!r} (expected one of {KINDS})")
        self.net = net.eval().to(device)
        self.path = path
        self.sha256 = sha256
        self.device = device
        self.kind = kind
        self.num_classes: int | None = None
        self._probe()

    def _forward(self, x, kind: str):
        """Tensor [N, 3, H, W] 0..255 on self.device -> raw output of ``kind``'s convention (probs for both)."""
        import torch

        if kind == "nvidia":
            if x.dtype != torch.uint8:
                x = x.to(torch.float32)
            return self.net(x, **NVIDIA_KWARGS)  # softmax over 1008 classes, resized inside
        x = resize_for_detector(x, "stylegan")  # float32 [N, 3, 299, 299] 0..255, exactly NVIDIA's resize
        logits = self.net((x - 128.0) / 128.0)
        return torch.softmax(logits.float(), dim=1)

    def _probe(self) -> None:
        """Find (or check) the kind with one mid-gray image; record num_classes; BadFileError when nothing fits."""
        import torch

        probe = torch.full((1, 3, _PROBE_SIZE, _PROBE_SIZE), 128, dtype=torch.uint8, device=self.device)
        errors = []
        with torch.inference_mode():
            for kind in ((self.kind,) if self.kind else KINDS):
                try:
                    out = self._forward(probe, kind)
                except Exception as exc:  # noqa: BLE001 - a module without NVIDIA's kwargs raises a RuntimeError
                    errors.append(f"as {kind}: {_first_line(exc)}")
                    continue
                self._check_output(out, kind, 1)
                self.kind = kind
                self.num_classes = int(out.shape[1])
                return
        raise BadFileError(self.path, "--is-weights: the network accepts neither NVIDIA's call nor (x-128)/128 at "
                                      "299x299 -> logits (" + "; ".join(errors) + ")")

    def _check_output(self, out, kind: str, num: int) -> None:
        import torch

        if not torch.is_tensor(out) or out.ndim != 2 or out.shape[0] != num or out.shape[1] < 2:
            shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise BadFileError(self.path, f"--is-weights: the {kind} network returned {shape}, expected "
                                          f"[{num}, C] class scores with C >= 2")
        out = out.float()
        if not torch.isfinite(out).all():
            raise BadFileError(self.path, f"--is-weights: the {kind} network returned non-finite values")
        if kind == "nvidia" and ((out < 0).any() or not torch.allclose(out.sum(1), torch.ones_like(out[:, 0]),
                                                                         atol=1e-3)):
            raise BadFileError(self.path, "--is-weights: the network takes NVIDIA's arguments but does not return "
                                          "softmax probabilities")

    def __call__(self, images):
        """uint8 or float 0..255 [N, 3, H, W] (tensor or array) -> torch float32 probs [N, num_classes] on the CPU."""
        import torch

        x = images if torch.is_tensor(images) else torch.from_numpy(np.asarray(images))
        assert x.ndim == 4 and x.shape[1] == 3, f"expected [N, 3, H, W], got {tuple(x.shape)}"
        with torch.inference_mode():
            probs = self._forward(x.to(self.device), self.kind)
        assert probs.shape == (len(x), self.num_classes), f"IS network returned {tuple(probs.shape)}"
        return probs.float().cpu()


def load_is_network(path: str | os.PathLike | None, device: str = "cpu") -> ISNetwork:
    """Load ``--is-weights PATH`` as an :class:`ISNetwork` (kind detected by probing; sha256 recorded).

    ``path=None`` raises MetricUnavailable (the packaged FID network has no classifier and nothing is substituted);
    a missing, non-TorchScript or unusable file raises BadFileError with a one-line ``--is-weights: ...`` message.
    """
    if path is None:
        raise MetricUnavailable(NO_WEIGHTS_MESSAGE)
    from stages.metrics.detector import load_torchscript

    path = os.fspath(path)
    net = load_torchscript(path, "--is-weights")
    return ISNetwork(net, path, sha256_file(path), device=device)


def compute_inception_score(batches: Iterable, net: ISNetwork, num_splits: int = 10) -> tuple[float, float]:
    """Run uint8 [B, 3, H, W] batches through ``net`` and return the Inception Score's (mean, std) over splits."""
    import torch

    chunks = []
    with torch.inference_mode():
        for batch in batches:
            chunks.append(net(batch).numpy())
    probs = np.concatenate(chunks) if chunks else np.zeros((0, net.num_classes), np.float32)
    return inception_score(probs, num_splits)
