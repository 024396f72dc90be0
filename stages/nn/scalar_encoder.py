"""Encoding of the patch parameters [s, o_x, o_y] for the discriminator (3DGP ref §4.2).

Each scalar x in [0, 1] is scaled to X = x_multiplier * x and encoded as
[sin(w_0 X) .. sin(w_{K-1} X), cos(w_0 X) .. cos(w_{K-1} X), E[round(X)]] with K = ceil(log2(x_multiplier)) Fourier
frequencies w_k = pi * 2^k / 2^K and a learned table E = Embedding(ceil(x_multiplier) + 1, const_emb_dim) (N(0, 1)
init; ceil like the official code, so a non-integer multiplier still has a row for every round(X)).
The per-scalar vectors are concatenated. With the defaults (3 scalars, x 1000, 256-d table): 3 x (20 + 256) = 828.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class ScalarEncoder1d(nn.Module):
    """Fourier + learned-embedding encoder of ``coord_dim`` scalars in [0, 1] (3DGP ref §4.2).

    Input ``[B, coord_dim]``; output ``[B, coord_dim * (2 * num_freqs + const_emb_dim)]``.
    """

    def __init__(
        self,
        coord_dim: int = 3,                 # Number of scalars encoded (patch scale, x offset, y offset).
        x_multiplier: float = 1000.0,       # X = x_multiplier * x; also fixes the table size and the frequencies.
        const_emb_dim: int = 256,           # Width of the learned embedding per scalar (0 = Fourier features only).
    ):
        super().__init__()
        assert coord_dim > 0 and x_multiplier >= 2, (coord_dim, x_multiplier)
        self.coord_dim = coord_dim
        self.x_multiplier = float(x_multiplier)
        self.const_emb_dim = const_emb_dim
        self.num_freqs = int(math.ceil(math.log2(x_multiplier)))
        self.num_embeddings = int(math.ceil(x_multiplier)) + 1  # ceil, as the official table (ref §4.2)
        freqs = torch.tensor([math.pi * 2.0**k / 2.0**self.num_freqs for k in range(self.num_freqs)])
        self.register_buffer("freqs", freqs, persistent=False)  # [K]
        self.const_embed = nn.Embedding(self.num_embeddings, const_emb_dim) if const_emb_dim > 0 else None

    @property
    def dim_per_scalar(self) -> int:
        """Output width for one scalar: 2 * num_freqs + const_emb_dim (276 by default)."""
        return 2 * self.num_freqs + self.const_emb_dim

    @property
    def out_dim(self) -> int:
        """Total output width: coord_dim * dim_per_scalar (828 by default)."""
        return self.coord_dim * self.dim_per_scalar

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` ``[B, coord_dim]`` (values in [0, 1]) into ``[B, out_dim]`` (3DGP ref §4.2)."""
        assert x.ndim == 2 and x.shape[1] == self.coord_dim, f"expected [B, {self.coord_dim}], got {list(x.shape)}"
        batch_size = x.shape[0]
        x_scaled = x.float() * self.x_multiplier  # [B, D]
        phases = x_scaled.unsqueeze(2) * self.freqs.to(x_scaled.device)  # [B, D, K]
        parts = [phases.sin(), phases.cos()]  # 2 x [B, D, K]
        if self.const_embed is not None:
            idx = x_scaled.round().long().clamp(0, self.num_embeddings - 1)  # [B, D]
            parts.append(self.const_embed(idx))  # [B, D, E]
        out = torch.cat(parts, dim=2)  # [B, D, 2K + E]
        return out.reshape(batch_size, self.out_dim)  # [B, D * (2K + E)]
