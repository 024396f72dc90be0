"""Tri-plane sampling and the decoding MLP (3DGP ref §1.3).

A world point p = (x, y, z) is divided by ``cube_scale`` so the tri-plane covers [-cube_scale, cube_scale]^3 in
grid_sample's [-1, 1] coordinates (the default cube_scale 0.5 gives the cube [-0.5, 0.5]^3). The planes, in channel
order, are

* plane 0 = (x, y): x indexes the width (columns), y the height (rows);
* plane 1 = (x, z): x indexes the width, z the height;
* plane 2 = (y, z): y indexes the width, z the height.

Sampling is bilinear with ``align_corners=True`` (coordinate -1 is the centre of the first texel, +1 the centre of
the last) and zero padding, so points outside the cube get zero features. The per-point feature is the MEAN over
the three planes. The MLP (FC feat_dim -> 64 lrelu, FC 64 -> 4 linear, equalized lr, lr multiplier 1) outputs raw
RGB (channels 0-2, no sigmoid) and raw pre-activation density (channel 3). There is no positional encoding and no
view-direction input.
"""
from __future__ import annotations

import torch
from torch import nn

from stages.nn.layers import FullyConnectedLayer
from stages.ops import triplane_sample
from stages.ops.point_mlp import kernel_applies, point_mlp
from stages.ops.triplane_sample import PLANE_AXES  # noqa: F401 - (width, height) coordinates of each plane


def sample_triplane(
    planes: torch.Tensor,            # [B, 3, F, R, R] tri-plane features.
    points: torch.Tensor,            # [B, N, 3] world coordinates.
    cube_scale: float = 0.5,         # Half side of the cube the tri-plane covers.
) -> torch.Tensor:
    """Bilinearly sample the 3 planes at ``points`` and average them: ``[B, N, F]`` (3DGP ref §1.3).

    Points outside [-cube_scale, cube_scale]^3 (in the coordinates a plane uses) read zeros there. The op
    (:mod:`stages.ops.triplane_sample`) runs a fused kernel on CPU and ``grid_sample`` elsewhere.
    """
    return triplane_sample.sample_triplane(planes, points, cube_scale)


class TriPlaneMLP(nn.Module):
    """Per-point decoder: tri-plane feature -> raw RGB (3) + raw density (1) (3DGP ref §1.3)."""

    def __init__(
        self,
        in_features: int = 32,       # Tri-plane feature width (feat_dim).
        hidden_features: int = 64,   # Hidden width (mlp.hid_dim).
        num_layers: int = 2,         # Number of FC layers (mlp.n_layers); all but the last use lrelu.
        out_features: int = 4,       # 3 raw RGB + 1 raw density.
    ):
        super().__init__()
        assert num_layers >= 1, num_layers
        self.in_features = in_features
        self.out_features = out_features
        widths = [in_features] + [hidden_features] * (num_layers - 1) + [out_features]
        self.layers = nn.ModuleList(
            FullyConnectedLayer(widths[i], widths[i + 1], activation="lrelu" if i < num_layers - 1 else "linear")
            for i in range(num_layers)
        )

    def _fusable(self, x: torch.Tensor) -> bool:
        first, last = self.layers[0], self.layers[-1]
        return (len(self.layers) == 2 and first.activation == "lrelu" and last.activation == "linear"
                and first.bias is not None and last.bias is not None
                and kernel_applies(x, first.out_features, last.out_features))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``[B, N, in_features]`` -> ``[B, N, out_features]`` (channels 0-2 raw RGB, 3 raw sigma)."""
        batch_size, num_points, _ = feats.shape
        x = feats.reshape(batch_size * num_points, -1)  # [B*N, F]
        if self._fusable(x):  # the official two-layer form on CPU: one fused op (stages.ops.point_mlp)
            (w1, b1), (w2, b2) = (layer.effective_params() for layer in self.layers)
            return point_mlp(x, w1, b1, w2, b2).reshape(batch_size, num_points, self.out_features)
        for layer in self.layers:
            x = layer(x)
        return x.reshape(batch_size, num_points, self.out_features)  # [B, N, 4]


def query_triplane(
    planes: torch.Tensor,            # [B, 3, F, R, R]
    mlp: TriPlaneMLP,                # The decoding MLP.
    points: torch.Tensor,            # [B, N, 3] world coordinates.
    cube_scale: float = 0.5,         # Half side of the cube the tri-plane covers.
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode world points: returns raw rgb ``[B, N, 3]`` and raw (pre-softplus) sigma ``[B, N]`` (3DGP ref §1.3)."""
    out = mlp(sample_triplane(planes, points, cube_scale))  # [B, N, 4]
    return out[..., :3], out[..., 3]
