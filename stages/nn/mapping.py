"""The mapping network z, c -> ws, with w_avg tracking and truncation (3DGP ref §1.1, §8.2).

z [B, z_dim] is normalized by its second moment; for class-conditional models (c_dim > 0) the one-hot class goes
through a linear embedding FC (lr multiplier 1), is normalized the same way and concatenated after z. Then
``num_layers`` equalized-lr FC layers with lrelu and lr multiplier 0.01 give w, broadcast to ``num_ws`` copies
(no style mixing in 3DGP).

``w_avg`` (an EMA of w with beta 0.998) is updated only when ``update_emas=True``. Truncation is
w <- lerp(w_center, w, psi), where w_center is the global ``w_avg`` or, for conditional models at inference, a
per-class mean w from ``class_mean_w`` (the mean of mapping(z_i, c) over 256 random z, ref §8.2).

``w_avg_beta=None`` builds no ``w_avg`` buffer and tracks nothing (the discriminator's hyper-modulation and head
mappings, ref §4.2); ``update_emas`` is then a no-op and truncation needs an explicit ``w_center``. A stale
``w_avg`` entry in an older state dict is dropped on load.
"""
from __future__ import annotations

import torch
from torch import nn

from stages.nn import rng
from stages.nn.layers import FullyConnectedLayer, normalize_2nd_moment


def truncate(
    ws: torch.Tensor,                # [B, num_ws, w_dim]
    w_center: torch.Tensor,          # [w_dim] (global w_avg) or [B, w_dim] (per-class mean w).
    psi: float,                      # Truncation psi; 1 = no truncation, 0 = w_center.
    cutoff: int | None = None,       # Truncate only the first `cutoff` ws (None = all).
) -> torch.Tensor:
    """Return ws with w <- lerp(w_center, w, psi) on the first ``cutoff`` ws (3DGP ref §1.1, §8.2)."""
    if psi == 1:
        return ws
    center = w_center.to(ws.dtype)
    center = center.reshape(1, 1, -1) if center.ndim == 1 else center.unsqueeze(1)  # [B or 1, 1, w_dim]
    cutoff = ws.shape[1] if cutoff is None else cutoff
    head = center.lerp(ws[:, :cutoff], psi)  # [B, cutoff, w_dim]
    return torch.cat([head, ws[:, cutoff:]], dim=1)


class MappingNetwork(nn.Module):
    """z, c -> ws ``[B, num_ws, w_dim]`` (3DGP ref §1.1)."""

    def __init__(
        self,
        z_dim: int,                  # Input latent (z) dimensionality; 512 in 3DGP.
        c_dim: int,                  # Class-label dimensionality (one-hot); 0 = unconditional.
        w_dim: int,                  # Intermediate latent (w) dimensionality; 512 in 3DGP.
        num_ws: int,                 # Number of ws to broadcast to (the synthesis network's num_ws).
        num_layers: int = 2,         # Number of FC layers (map_depth).
        embed_features: int | None = None,  # Class-embedding width (None = w_dim).
        layer_features: int | None = None,  # Hidden FC width (None = w_dim).
        activation: str = "lrelu",   # Activation of the FC layers.
        lr_multiplier: float = 0.01,  # Learning-rate multiplier of the FC layers.
        w_avg_beta: float | None = 0.998,  # EMA decay of w_avg; None = no w_avg buffer, no tracking.
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = w_dim if embed_features is None else embed_features
        layer_features = w_dim if layer_features is None else layer_features
        if c_dim == 0:
            embed_features = 0
        self.embed = FullyConnectedLayer(c_dim, embed_features) if c_dim > 0 else None

        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        self.layers = nn.ModuleList(
            FullyConnectedLayer(features[i], features[i + 1], activation=activation, lr_multiplier=lr_multiplier)
            for i in range(num_layers)
        )
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Drop a ``w_avg`` entry saved before ``w_avg_beta=None`` meant "no buffer" (old D checkpoints)."""
        if self.w_avg_beta is None:
            state_dict.pop(prefix + "w_avg", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def embed_inputs(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Normalized z, concatenated with the normalized class embedding if conditional: ``[B, z_dim + E]``."""
        parts = []
        if self.z_dim > 0:
            assert z.ndim == 2 and z.shape[1] == self.z_dim, (z.shape, self.z_dim)
            parts.append(normalize_2nd_moment(z.to(torch.float32)))  # [B, z_dim]
        if self.embed is not None:
            assert c is not None and c.ndim == 2 and c.shape[1] == self.c_dim, (None if c is None else c.shape)
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))  # [B, E]
        assert parts, "mapping network with z_dim = c_dim = 0"
        return torch.cat(parts, dim=1)

    def forward(
        self,
        z: torch.Tensor,             # [B, z_dim]
        c: torch.Tensor | None,      # [B, c_dim] one-hot, or None / [B, 0] when unconditional.
        truncation_psi: float = 1.0,  # Truncation psi (1 = off).
        truncation_cutoff: int | None = None,  # Truncate only the first `cutoff` ws.
        update_emas: bool = False,   # Update w_avg (only in the D-main fake pass, ref §1.1)?
        w_center: torch.Tensor | None = None,  # Truncation centre [B, w_dim] (None = global w_avg).
    ) -> torch.Tensor:
        """Map z (and c) to ws ``[B, num_ws, w_dim]``, optionally updating w_avg and truncating (ref §1.1)."""
        x = self.embed_inputs(z, c)  # [B, z_dim + E]
        for layer in self.layers:
            x = layer(x)  # [B, w_dim]
        if update_emas and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # [B, num_ws, w_dim]
        if truncation_psi != 1:
            assert w_center is not None or self.w_avg_beta is not None, "no w_avg (w_avg_beta=None): pass w_center"
            center = self.w_avg if w_center is None else w_center
            ws = truncate(ws, center, truncation_psi, truncation_cutoff)
        return ws

    @torch.no_grad()
    def class_mean_w(
        self,
        c: torch.Tensor,             # [B, c_dim] one-hot classes.
        num_samples: int = 256,      # Number of random z averaged per class.
        generator: torch.Generator | None = None,  # RNG for the z draws (None = global RNG).
    ) -> torch.Tensor:
        """Per-class mean w: the mean of mapping(z_i, c) over ``num_samples`` random z, ``[B, w_dim]`` (ref §8.2).

        For an unconditional model this is the same estimate of the global mean w (use ``w_avg`` instead).
        """
        batch_size = c.shape[0]
        z = rng.randn([num_samples, self.z_dim], generator, c.device)  # [S, z_dim], drawn on the generator's device
        z = z.repeat(batch_size, 1)  # [B*S, z_dim]
        c_rep = c.repeat_interleave(num_samples, dim=0)  # [B*S, c_dim]
        x = self.embed_inputs(z, c_rep)
        for layer in self.layers:
            x = layer(x)  # [B*S, w_dim]
        return x.reshape(batch_size, num_samples, self.w_dim).mean(dim=1)  # [B, w_dim]

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"
