"""Building blocks of the 3DGP discriminator: ResNet blocks, minibatch-stddev and the epilogue (3DGP ref §4.1-§4.3).

* ``DiscriminatorBlock``: a StyleGAN2 ResNet block whose conv1 input is hyper-modulated by the patch code h.
* ``MinibatchStdLayer``: appends the per-group standard deviation as extra feature channels.
* ``DiscriminatorEpilogue``: mbstd, conv 3x3, fc, out and the projection logit, plus the optional KD head.

Deliberate deviation (documented in ``stages.nn.param_counts``): the official code builds a ``fromrgb`` layer in
every block although only the first block uses it; we build it only in the first block.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from stages.nn.layers import Conv2dLayer, FullyConnectedLayer

SQRT_HALF = math.sqrt(0.5)  # ResNet branch gain: keeps the variance of skip + residual (ref §4.1)


class DiscriminatorBlock(nn.Module):
    """StyleGAN2 ResNet discriminator block with patch hyper-modulation (3DGP ref §4.1, §4.2).

    out = skip(x) * sqrt(0.5) + conv1(conv0(x) * (1 + tanh(affine(h)))) * sqrt(0.5).
    Input ``x [B, tmp, H, W]`` (or ``img [B, img_channels, H, W]`` for the first block); output
    ``[B, out, H / down, W / down]``.
    """

    def __init__(
        self,
        in_channels: int,                   # Input channels; 0 = first block (reads the image through fromrgb).
        tmp_channels: int,                  # Channels inside the block (= in_channels after the first block).
        out_channels: int,                  # Output channels.
        img_channels: int = 4,              # Image channels read by fromrgb (RGB + depth).
        down: int = 2,                      # Downsampling factor of skip and conv1 (1 for the extra start blocks).
        hyper_mod_dim: int = 512,           # Width of the hyper-modulation code h; 0 = no modulation.
        use_fp16: bool = False,             # Run this block in fp16 (honoured on CUDA only).
        conv_clamp: float | None = None,    # Clamp conv outputs to +-conv_clamp * gain.
        resample_filter: Sequence[int] = (1, 3, 3, 1),  # FIR low-pass filter used when downsampling.
    ):
        super().__init__()
        assert in_channels in (0, tmp_channels), (in_channels, tmp_channels)
        self.in_channels = in_channels
        self.tmp_channels = tmp_channels
        self.out_channels = out_channels
        self.down = down
        self.use_fp16 = use_fp16
        self.fromrgb = (
            Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
            if in_channels == 0 else None
        )
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=down,
                                resample_filter=resample_filter)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=down,
                                 resample_filter=resample_filter, conv_clamp=conv_clamp)
        # The affine starts at 0, so the modulation starts at exactly 1 (ref §4.2).
        self.affine = FullyConnectedLayer(hyper_mod_dim, tmp_channels, bias_init=0.0) if hyper_mod_dim > 0 else None

    def compute_dtype(self, device: torch.device, force_fp32: bool = False) -> torch.dtype:
        """fp16 for an fp16 block on CUDA (unless forced to fp32), else fp32 (ref §4.1 mixed precision)."""
        return torch.float16 if self.use_fp16 and not force_fp32 and device.type == "cuda" else torch.float32

    def forward(
        self,
        x: torch.Tensor | None,             # [B, tmp, H, W], or None for the first block.
        img: torch.Tensor,                  # [B, img_channels, H, W]; read only by the first block.
        h: torch.Tensor | None = None,      # [B, hyper_mod_dim] hyper-modulation code.
        force_fp32: bool = False,
    ) -> torch.Tensor:
        dtype = self.compute_dtype(img.device, force_fp32)
        if self.fromrgb is not None:
            x = self.fromrgb(img.to(dtype))  # [B, tmp, H, W]
        assert x is not None and x.shape[1] == self.tmp_channels, "block input has the wrong channel count"
        x = x.to(dtype)
        y = self.skip(x, gain=SQRT_HALF)  # [B, out, H/down, W/down]
        x = self.conv0(x)  # [B, tmp, H, W]
        if self.affine is not None:
            assert h is not None, "a hyper-modulated block needs the patch code h"
            style = 1.0 + torch.tanh(self.affine(h.float()))  # [B, tmp], in (0, 2)
            x = x * style.to(dtype)[:, :, None, None]
        x = self.conv1(x, gain=SQRT_HALF)  # [B, out, H/down, W/down]
        return y + x


class MinibatchStdLayer(nn.Module):
    """Minibatch standard deviation as extra channels (StyleGAN2 semantics; 3DGP ref §4.1).

    With G = min(group_size, B) and M = B / G, sample n belongs to group n mod M: the batch is viewed as
    ``[G, M, ...]``, so a group is {m, m + M, m + 2M, ...} (strided, not consecutive). For every group the std over
    its G members is averaged over channels (within each of ``num_channels`` channel slices) and pixels, then
    broadcast to every member as ``num_channels`` constant maps. Input ``[B, C, H, W]``, output
    ``[B, C + num_channels, H, W]``.

    ``parts`` > 1 says the batch is that many independent batches stacked along dim 0 (Dmain's fakes and reals in
    one call): the groups are then formed inside each part exactly as if it came alone, so the result equals
    ``parts`` separate calls.
    """

    def __init__(
        self,
        group_size: int = 4,                # Samples per group (capped at the batch size).
        num_channels: int = 1,              # Number of std feature maps appended.
    ):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor, parts: int = 1) -> torch.Tensor:
        batch_size, channels, height, width = x.shape
        assert parts >= 1 and batch_size % parts == 0, (batch_size, parts)
        per_part = batch_size // parts
        group = min(self.group_size, per_part)
        if per_part % group != 0:
            raise ValueError(f"batch: the per-device batch ({per_part}) must be a multiple of the "
                             f"minibatch-stddev group size ({group})")
        feats = self.num_channels
        assert channels % feats == 0, (channels, feats)
        y = x.float().reshape(parts, group, -1, feats, channels // feats, height, width)  # [P, G, M, F, c, H, W]
        y = y - y.mean(dim=1, keepdim=True)  # [P, G, M, F, c, H, W]
        y = (y.square().mean(dim=1) + 1e-8).sqrt()  # [P, M, F, c, H, W]
        y = y.mean(dim=[3, 4, 5])  # [P, M, F]
        y = y.reshape(parts, 1, -1, feats, 1, 1).repeat(1, group, 1, 1, height, width)  # [P, G, M, F, H, W]
        return torch.cat([x, y.reshape(batch_size, feats, height, width).to(x.dtype)], dim=1)  # [B, C + F, H, W]

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 head: mbstd, conv, fc, out, projection logit, and the parallel KD head (3DGP ref §4.1, §4.3).

    Input ``x [B, C, 4, 4]`` and ``cmap [B, cmap_dim]``; output ``(logits [B], kd_features [B, kd_dim] or None)``.
    """

    def __init__(
        self,
        in_channels: int,                   # C, the channels at 4x4.
        cmap_dim: int,                      # Width of the projection embedding (= C in 3DGP).
        resolution: int = 4,                # Spatial size of the input.
        mbstd_group_size: int = 4,          # Minibatch-stddev group size.
        mbstd_num_channels: int = 1,        # Minibatch-stddev feature maps (0 = no mbstd).
        conv_clamp: float | None = None,    # Clamp of the 3x3 conv.
        kd_dim: int = 2048,                 # Output of the knowledge-distillation head; 0 builds no head.
    ):
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.kd_dim = kd_dim
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                                conv_clamp=conv_clamp)
        flat_dim = in_channels * resolution**2
        self.fc = FullyConnectedLayer(flat_dim, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, cmap_dim)
        if kd_dim > 0:
            self.kd_fc = FullyConnectedLayer(flat_dim, in_channels, activation="lrelu")
            self.kd_out = FullyConnectedLayer(in_channels, kd_dim)
        else:
            self.kd_fc = self.kd_out = None

    def forward(
        self,
        x: torch.Tensor,                    # [B, C, 4, 4]
        cmap: torch.Tensor,                 # [B, cmap_dim]
        predict_feat: bool = True,          # Evaluate the KD head (else kd_features is None).
        parts: int = 1,                     # Independent batches stacked along dim 0 (MinibatchStdLayer).
        kd_rows: slice | None = None,       # Rows the KD head is evaluated on (None: all).
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Projection logits ``[B]`` and, if built and ``predict_feat``, KD features ``[B, kd_dim]`` (ref §4.3), or
        ``[len(kd_rows), kd_dim]`` for the rows ``kd_rows`` selects."""
        assert x.shape[1:] == (self.in_channels, self.resolution, self.resolution), list(x.shape)
        x = x.float()
        if self.mbstd is not None:
            x = self.mbstd(x, parts)  # [B, C + F, 4, 4]
        x = self.conv(x).flatten(1)  # [B, C * 16]
        kd_features = None
        if predict_feat and self.kd_fc is not None:
            kd_features = self.kd_out(self.kd_fc(x if kd_rows is None else x[kd_rows]))  # [B or rows, kd_dim]
        out = self.out(self.fc(x))  # [B, cmap_dim]
        logits = (out * cmap.float()).sum(dim=1) / math.sqrt(self.cmap_dim)  # [B]
        return logits, kd_features
