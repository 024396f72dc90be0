"""The depth adaptor: rendered world-unit depth -> "LeReS-like" depth for the discriminator (3DGP ref §3.1, §3.2).

1. ``normalize_depth`` maps [near', far] to [-1, 1], where near' = near + sigmoid(rho) * max_fraction * (far - near)
   and rho is one learned scalar initialised to -3 (offset at init ~ 0.0059, so near' ~ 0.756; ref §13).
2. A stack of ``num_hid_layers`` equalized-lr 5x5 convs (lrelu, 1 -> 64 -> 64 -> 64) and ONE shared 1x1 linear head
   give the candidates O = [d_n, head(h_1), head(h_2), head(h_3)] (N = 4).
3. Selection (``out_strategy: random``): in training each sample independently draws an index with
   p_i = start_p + i * slope, start_p = (1 - progress) / N + selection_start_p * progress,
   slope = 2 (1 - N start_p) / (N (N - 1)), so p goes from [0.25] * 4 (progress 0) to [0.1, 0.2, 0.3, 0.4]
   (progress 1). In eval the last candidate is returned. ``progress`` is a buffer in [0, 1] (saved in
   checkpoints, copied to G_ema); the trainer sets it to lin(t; 0 -> 1 over 10000 kimg) with ``set_progress``.

Parameters: 206,658 with the defaults (ref §14). ``enabled=False`` returns the normalised depth only (no convs);
``fixed_p`` (N probabilities) replaces the annealed selection probabilities, e.g. (1, 0, 0, 0) = always raw depth;
``adapted_depth_probs(P, N)`` builds them for the paper's ablation "P = probability that D sees the adapted depth":
(1 - P, then P split over the adapted candidates in the official end-of-schedule ratios 2 : 3 : 4), so P = 0.9 is
exactly the annealed schedule's end point [0.1, 0.2, 0.3, 0.4], P = 0 feeds only the raw depth (no adaptor) and
P = 1 only adapted depth.

Public API:
  normalize_depth(depth, near, far, near_offset=0.0) -> same shape, [near + offset, far] -> [-1, 1]
  DepthAdaptor(ray_start=0.75, ray_end=1.25, ...)(depth [B, 1, H, W], generator=None) -> [B, 1, H, W]
  DepthAdaptor.candidates(depth) -> [B, N, 1, H, W];  .selection_probs() -> [N];  .near_plane_offset() -> []
  DepthAdaptor.set_progress(value);  DepthAdaptor.fixed_p = adapted_depth_probs(P, N) | None
  adapted_depth_probs(p_adapted, num_outputs=4) -> tuple of N probabilities
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from stages.nn import rng
from stages.nn.layers import Conv2dLayer

DENOM_EPS = 1e-12  # added to (far - near') in the normalisation (ref §3.1)


def adapted_depth_probs(p_adapted: float, num_outputs: int = 4) -> tuple[float, ...]:
    """Selection probabilities with P(adapted depth) = ``p_adapted``: raw depth 1 - P, adapted candidate i (1-based)
    P * (i + 1) / sum (the 2 : 3 : 4 ratios of the official end point for N = 4). See the module docstring."""
    if not 0.0 <= p_adapted <= 1.0:
        raise ValueError(f"p_adapted must be in [0, 1], got {p_adapted}")
    if num_outputs == 1:
        return (1.0,)
    weights = [i + 1 for i in range(1, num_outputs)]
    return (1.0 - p_adapted, *(p_adapted * w / sum(weights) for w in weights))


def normalize_depth(
    depth: torch.Tensor,
    near: float,
    far: float,
    near_offset: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """Map depth in [near + near_offset, far] linearly to [-1, 1] (3DGP ref §3.1, §8.4 with offset 0)."""
    near_shifted = near + near_offset
    return 2.0 * (depth - (far + near_shifted) / 2.0) / (far - near_shifted + DENOM_EPS)


class DepthAdaptor(nn.Module):
    """Learned near-plane shift + shallow conv stack with a shared head and random output selection (ref §3)."""

    def __init__(
        self,
        ray_start: float = 0.75,            # Near plane of the renderer (ref §1.5).
        ray_end: float = 1.25,              # Far plane of the renderer.
        num_hid_layers: int = 3,            # Number of 5x5 conv layers (candidates = num_hid_layers + 1).
        hid_dim: int = 64,                  # Channels of the conv layers.
        kernel_size: int = 5,               # Conv kernel size ('same' padding).
        near_plane_offset_bias: float = -3.0,  # Initial value of the learned scalar rho.
        near_plane_offset_max_fraction: float = 0.25,  # Max shift of the near plane, as a fraction of the range.
        selection_start_p: float = 0.1,     # Probability of the raw depth at progress 1.
        enabled: bool = True,               # False = return the normalised depth (no conv stack).
        fixed_p: Sequence[float] | None = None,  # Fixed selection probabilities (None = annealed schedule).
    ):
        super().__init__()
        if not ray_start < ray_end:
            raise ValueError(f"ray_start: must be below ray_end, got {ray_start} >= {ray_end}")
        self.ray_start, self.ray_end = float(ray_start), float(ray_end)
        self.enabled = enabled
        self.max_fraction = near_plane_offset_max_fraction
        self.selection_start_p = selection_start_p
        self.num_outputs = num_hid_layers + 1 if enabled else 1
        self.near_plane_offset_raw = nn.Parameter(torch.tensor(float(near_plane_offset_bias)))  # rho, shape []
        self.register_buffer("progress", torch.zeros([]))
        if fixed_p is not None:
            fixed_p = [float(p) for p in fixed_p]
            if len(fixed_p) != self.num_outputs or min(fixed_p) < 0 or abs(sum(fixed_p) - 1.0) > 1e-6:
                raise ValueError(f"depth_fixed_p: need {self.num_outputs} non-negative probabilities "
                                     f"summing to 1, got {fixed_p}")
        self.fixed_p = fixed_p
        if enabled:
            self.convs = nn.ModuleList([
                Conv2dLayer(1 if i == 0 else hid_dim, hid_dim, kernel_size, activation="lrelu")
                for i in range(num_hid_layers)
            ])
            self.head = Conv2dLayer(hid_dim, 1, 1, activation="linear")  # shared by every hidden layer

    def set_progress(self, value: float) -> None:
        """Set the annealing progress in [0, 1] (lin(t; 0 -> 1 over anneal_kimg), ref §3.2)."""
        self.progress.fill_(min(max(float(value), 0.0), 1.0))

    def near_plane_offset(self) -> torch.Tensor:
        """sigmoid(rho) * max_fraction * (far - near): the learned near-plane shift (ref §3.1). Shape []."""
        return torch.sigmoid(self.near_plane_offset_raw) * self.max_fraction * (self.ray_end - self.ray_start)

    def selection_probs(self) -> torch.Tensor:
        """``[N]`` output-selection probabilities at the current progress (ref §3.2)."""
        if self.fixed_p is not None:
            return torch.tensor(self.fixed_p, device=self.progress.device)
        n = self.num_outputs
        if n == 1:
            return torch.ones(1, device=self.progress.device)
        start_p = (1.0 - self.progress) / n + self.selection_start_p * self.progress  # []
        slope = 2.0 * (1.0 - n * start_p) / (n * (n - 1))
        return start_p + slope * torch.arange(n, device=self.progress.device, dtype=torch.float32)  # [N]

    def candidates(self, depth: torch.Tensor) -> torch.Tensor:
        """All candidate outputs ``[B, N, 1, H, W]``: the normalised depth, then head(h_i) per layer (ref §3.1)."""
        assert depth.ndim == 4 and depth.shape[1] == 1, f"depth must be [B, 1, H, W], got {list(depth.shape)}"
        depth_n = normalize_depth(depth, self.ray_start, self.ray_end, self.near_plane_offset())  # [B, 1, H, W]
        outputs = [depth_n]
        if self.enabled:
            hidden = depth_n
            for conv in self.convs:
                hidden = conv(hidden)  # [B, hid, H, W]
                outputs.append(self.head(hidden))  # [B, 1, H, W]
        return torch.stack(outputs, dim=1)  # [B, N, 1, H, W]

    def forward(self, depth: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Adapted depth ``[B, 1, H, W]``: a random candidate per sample in training, the last in eval (ref §3.2)."""
        outputs = self.candidates(depth)  # [B, N, 1, H, W]
        if not self.training or outputs.shape[1] == 1:
            return outputs[:, -1]
        probs = self.selection_probs().to(torch.float32)  # [N]
        index = rng.multinomial(probs.expand(depth.shape[0], -1), 1, generator)  # [B, 1]
        index = index.to(depth.device).view(-1, 1, 1, 1, 1).expand(-1, 1, *outputs.shape[2:])
        return outputs.gather(1, index).squeeze(1)  # [B, 1, H, W]

    def extra_repr(self) -> str:
        return f"ray_start={self.ray_start}, ray_end={self.ray_end}, num_outputs={self.num_outputs}"
