"""The 3DGP discriminator (3DGP ref §4).

A StyleGAN2 ResNet discriminator over the 4-channel (RGB + depth) patch, with:

* ``num_additional_start_blocks = log2(img_resolution / patch_resolution)`` non-downsampling blocks at the patch
  resolution, so the blocks follow the *virtual* resolutions img_resolution, img_resolution / 2, ..., 8 (ref §4.1);
  channels at virtual resolution r are min(cbase / r, cmax);
* patch-parameter conditioning: [s, o_x, o_y] -> ``ScalarEncoder1d`` (828-d) -> ``hyper_mod_mapping`` -> h, which
  modulates every block's conv1 input by (1 + tanh(affine(h))) (ref §4.2);
* a projection head: logit = <out, cmap> / sqrt(cmap_dim) with cmap = ``head_mapping``([c_onehot, patch_embedding]);
  both mappings are built with ``w_avg_beta=None`` like the official code: no ``w_avg`` buffer, nothing tracked;
* a knowledge-distillation head regressing the ResNet-50 embedding of the real image (ref §4.3), built only when
  kd_dim > 0 and evaluated only when ``forward(..., predict_feat=True)`` (the default). The official code computes
  it only for the reals of the D-main pass, so the training loop runs it on those rows only (``kd_rows``; Dmain
  sends fakes and reals through D in one call) and passes ``predict_feat=False`` for the G pass and the R1 pass
  (kd_features is then None);
* mixed precision: the blocks at the highest ``num_fp16_res`` virtual resolutions run in fp16 on CUDA; everything
  runs in fp32 on CPU. conv_clamp applies to every conv of D (ref §4.1).

Deliberate deviation: the dead ``fromrgb`` layers the official code builds in every block (used only in the first)
are not built; ``stages.nn.param_counts`` reports both counts.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from stages.nn.disc_blocks import DiscriminatorBlock, DiscriminatorEpilogue
from stages.nn.mapping import MappingNetwork
from stages.nn.scalar_encoder import ScalarEncoder1d

PATCH_PARAMS_DIM = 3  # [scale, offset_x, offset_y]
CHANNELS_LAST_ON_CPU = True  # run D in channels_last memory format on CPU (same values, faster convolutions)


def disc_channels(resolution: int, cbase: int, cmax: int) -> int:
    """Channels of D at (virtual) resolution r: min(cbase // r, cmax) (3DGP ref §4.1, fmaps = 1)."""
    return min(cbase // resolution, cmax)


def num_additional_start_blocks(img_resolution: int, patch_resolution: int) -> int:
    """log2(img_resolution / patch_resolution): the non-downsampling start blocks (3DGP ref §4.1)."""
    ratio = img_resolution // patch_resolution
    if patch_resolution * ratio != img_resolution or ratio & (ratio - 1):
        raise ValueError(f"patch_resolution: img_resolution / patch_resolution must be a power of two, "
                             f"got {img_resolution} / {patch_resolution}")
    return int(math.log2(ratio))


def _blocks(resolutions: list[int], num_start_blocks: int, cbase: int, cmax: int, img_channels: int, code_dim: int,
            fp16_resolution: int, conv_clamp: float | None) -> nn.ModuleDict:
    """``b{res}`` blocks over the virtual resolutions, highest first; the first ``num_start_blocks`` keep the
    resolution (the patch is smaller than the dataset's images), the others halve it (ref §4.1)."""
    blocks = nn.ModuleDict()
    for idx, res in enumerate(resolutions):
        tmp = disc_channels(res, cbase, cmax)
        blocks[f"b{res}"] = DiscriminatorBlock(
            in_channels=0 if idx == 0 else tmp,
            tmp_channels=tmp,
            out_channels=disc_channels(res // 2, cbase, cmax),
            img_channels=img_channels,
            down=1 if idx < num_start_blocks else 2,
            hyper_mod_dim=code_dim,
            use_fp16=res >= fp16_resolution,
            conv_clamp=conv_clamp,
        )
    return blocks


class Discriminator(nn.Module):
    """D(img, c, patch_params) -> {'logits' [B], 'kd_features' [B, kd_dim] or None} (3DGP ref §4)."""

    def __init__(
        self,
        c_dim: int = 0,                     # Class-label dimensionality (one-hot); 0 = unconditional.
        img_resolution: int = 256,          # Dataset resolution = the highest virtual resolution.
        patch_resolution: int = 64,         # Actual input resolution.
        img_channels: int = 4,              # Input channels (RGB + depth).
        cbase: int = 32768,                 # Channel base.
        cmax: int = 512,                    # Channel maximum.
        num_fp16_res: int = 4,              # Blocks at the highest num_fp16_res virtual resolutions use fp16 on CUDA.
        conv_clamp: float | None = 256.0,   # Clamp of every conv output (x gain); None = off.
        mbstd_group_size: int = 4,          # Minibatch-stddev group size.
        mbstd_num_channels: int = 1,        # Minibatch-stddev feature maps.
        hyper_mod: bool = True,             # Hyper-modulate conv1 of every block with the patch code.
        hyper_mod_dim: int = 512,           # Width of the patch code h (output of hyper_mod_mapping).
        mapping_num_layers: int = 2,        # FC layers of hyper_mod_mapping and head_mapping.
        mapping_lr_multiplier: float = 0.01,  # Their learning-rate multiplier.
        patch_x_multiplier: float = 1000.0,  # Scalar encoder multiplier.
        patch_const_emb_dim: int = 256,     # Scalar encoder learned-embedding width.
        kd_dim: int = 2048,                 # Knowledge-distillation head output; 0 = no head.
    ):
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.patch_resolution = patch_resolution
        self.img_channels = img_channels
        self.kd_dim = kd_dim
        self.num_additional_start_blocks = num_additional_start_blocks(img_resolution, patch_resolution)
        resolution_log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2**i for i in range(resolution_log2, 2, -1)]  # virtual: img_res .. 8
        fp16_resolution = max(2 ** (resolution_log2 + 1 - num_fp16_res), 8)

        self.patch_encoder = ScalarEncoder1d(PATCH_PARAMS_DIM, patch_x_multiplier, patch_const_emb_dim)
        patch_emb_dim = self.patch_encoder.out_dim
        code_dim = hyper_mod_dim if hyper_mod else 0
        self.hyper_mod_mapping = (
            MappingNetwork(z_dim=0, c_dim=patch_emb_dim, w_dim=hyper_mod_dim, num_ws=1,
                           num_layers=mapping_num_layers, lr_multiplier=mapping_lr_multiplier, w_avg_beta=None)
            if hyper_mod else None
        )
        self.blocks = _blocks(self.block_resolutions, self.num_additional_start_blocks, cbase, cmax, img_channels,
                              code_dim, fp16_resolution, conv_clamp)
        self.cmap_dim = disc_channels(4, cbase, cmax)
        self.head_mapping = MappingNetwork(
            z_dim=0, c_dim=c_dim + patch_emb_dim, w_dim=self.cmap_dim, num_ws=1,
            num_layers=mapping_num_layers, lr_multiplier=mapping_lr_multiplier, w_avg_beta=None,
        )
        self.epilogue = DiscriminatorEpilogue(
            in_channels=self.cmap_dim,
            cmap_dim=self.cmap_dim,
            resolution=4,
            mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels,
            conv_clamp=conv_clamp,
            kd_dim=kd_dim,
        )

    def patch_codes(
        self,
        c: torch.Tensor | None,             # [B, c_dim] one-hot class, or None when unconditional.
        patch_params: torch.Tensor,         # [B, 3] = [scale, offset_x, offset_y].
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The hyper-modulation code h ``[B, hyper_mod_dim]`` (or None) and the projection cmap ``[B, cmap_dim]``."""
        batch_size = patch_params.shape[0]
        patch_emb = self.patch_encoder(patch_params)  # [B, 828]
        h = self.hyper_mod_mapping(None, patch_emb)[:, 0] if self.hyper_mod_mapping is not None else None
        if self.c_dim > 0:
            assert c is not None and c.shape == (batch_size, self.c_dim), "c must be [B, c_dim]"
            head_in = torch.cat([c.float(), patch_emb], dim=1)  # [B, c_dim + 828]
        else:
            head_in = patch_emb
        cmap = self.head_mapping(None, head_in)[:, 0]  # [B, cmap_dim]
        return h, cmap

    def forward(
        self,
        img: torch.Tensor,                  # [B, img_channels, patch_res, patch_res] RGB + depth patch.
        c: torch.Tensor | None,             # [B, c_dim] one-hot class (None or [B, 0] if unconditional).
        patch_params: torch.Tensor,         # [B, 3] = [scale, offset_x, offset_y], each in [0, 1].
        force_fp32: bool = False,           # Run every block in fp32 even on CUDA.
        predict_feat: bool = True,          # Evaluate the KD head (reals of D-main only; False for fakes and R1).
        parts: int = 1,                     # Independent batches stacked along dim 0 (e.g. Dmain's fakes + reals).
        kd_rows: slice | None = None,       # Rows the KD head runs on (None: all rows).
    ) -> dict[str, torch.Tensor | None]:
        """Logits ``[B]`` and KD features ``[B, kd_dim]`` for a batch of patches (ref §4, §4.3).

        ``kd_features`` is None when kd_dim = 0 or ``predict_feat=False`` (the head is then not evaluated at all);
        with ``kd_rows`` it holds those rows only. ``parts`` > 1: the batch is that many equal batches stacked, each
        with its own minibatch-stddev groups, so one call equals ``parts`` calls (every other layer is per
        sample); the training loop sends Dmain's fakes and reals through D together this way (half the per-call
        cost of the small presets).
        """
        expected = (self.img_channels, self.patch_resolution, self.patch_resolution)
        assert img.ndim == 4 and tuple(img.shape[1:]) == expected, f"D input {list(img.shape)}, want [B, {expected}]"
        assert patch_params.shape == (img.shape[0], PATCH_PARAMS_DIM), list(patch_params.shape)
        h, cmap = self.patch_codes(c, patch_params)
        if CHANNELS_LAST_ON_CPU and not img.is_cuda:  # oneDNN's CPU convs (and R1 double backward) run faster
            img = img.contiguous(memory_format=torch.channels_last)
        x = None
        for block in self.blocks.values():
            x = block(x, img, h, force_fp32=force_fp32)
        logits, kd_features = self.epilogue(x, cmap, predict_feat=predict_feat, parts=parts, kd_rows=kd_rows)
        return {"logits": logits, "kd_features": kd_features}

    def extra_repr(self) -> str:
        return (f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, "
                f"patch_resolution={self.patch_resolution}, kd_dim={self.kd_dim}")
