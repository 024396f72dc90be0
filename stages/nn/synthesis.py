"""The tri-plane synthesis backbone: a StyleGAN2 "skip" generator from a 4x4 constant (3DGP ref §1.2).

Blocks run at resolutions 4, 8, ..., ``tri_plane_res`` with min(cbase // r, cmax) channels at
resolution r. The first block holds the learned constant and one modulated 3x3 conv; every other block holds an
upsampling (x2, FIR [1,3,3,1]) modulated conv followed by a modulated conv. Every block has a ToRGB (1x1 modulated
conv without demodulation) to ``3 * feat_dim`` channels, added to the upsampled running "image" (skip architecture).
The final image is the tri-plane ``[B, 3, feat_dim, R, R]``.

ws bookkeeping: block i consumes ``num_conv + num_torgb`` consecutive ws starting at a running index that
advances by ``num_conv`` only (ToRGB shares its w with the next block's first conv), so
num_ws = 1 + 2 * (num_blocks - 1) + 1 (16 at 512, 12 at 128).

The generator is FP32 only (ref §1.2: ``num_fp16_res = 0``, ``conv_clamp = None``); ``conv_clamp`` stays a
constructor argument for completeness.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from stages.nn import rng
from stages.nn.layers import FullyConnectedLayer, activation_gain
from stages.ops import bias_act, conv2d_resample, setup_filter, upsample2d
from stages.ops.modulation import epilogue, modulate

DEMODULATION_EPS = 1e-8


def demodulation_coefficients(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """``[B, O]`` = rsqrt(sum over i, k of (W[o, i, k] s[b, i])^2 + eps) for weight ``[O, I, k, k]`` and styles
    ``[B, I]`` (3DGP ref §1.2), as the matmul ``s^2 (sum_k W^2)^T``: the same sum regrouped, without the ``[B, O, I,
    k, k]`` modulated weight (7-18x less time forward + backward at 32-128 channels). The matmul runs in the input
    dtype even under autocast, as the elementwise form did."""
    dtype = torch.promote_types(weight.dtype, styles.dtype)  # as the elementwise product promoted (bf16 styles)
    w_sq = weight.to(dtype).square().sum(dim=[2, 3])  # [O, I]
    s_sq = styles.to(dtype).square()  # [B, I]
    device_type = styles.device.type
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        with torch.autocast(device_type, enabled=False):
            return (s_sq.mm(w_sq.t()) + DEMODULATION_EPS).rsqrt()  # [B, O]
    return (s_sq.mm(w_sq.t()) + DEMODULATION_EPS).rsqrt()  # [B, O]


def modulated_conv2d(
    x: torch.Tensor,                 # Input activations [B, I, H, W].
    weight: torch.Tensor,            # Base weight [O, I, k, k].
    styles: torch.Tensor,            # Per-sample input-channel scales [B, I].
    noise: torch.Tensor | None = None,  # Noise added to the output, broadcastable to [B, O, H', W'].
    up: int = 1,                     # Integer upsampling factor.
    down: int = 1,                   # Integer downsampling factor.
    padding: int = 0,                # Padding with respect to the upsampled image.
    resample_filter: torch.Tensor | None = None,  # FIR filter from setup_filter (None = box).
    demodulate: bool = True,         # Normalize each output channel's weight to unit L2 norm?
    flip_weight: bool = True,        # False = convolution, True = correlation (conv_transpose needs False).
    fused_modconv: bool = True,      # One grouped conv over the batch (eval) or scale activations (training)?
) -> torch.Tensor:
    """StyleGAN2 modulated convolution with weight demodulation, eps 1e-8 (3DGP ref §1.2).

    The fused path builds per-sample weights and runs one grouped convolution; the non-fused path scales the
    input activations by ``styles`` and the output by the demodulation coefficients. Both compute the same maps.

    Returns:
        ``[B, O, H * up / down, W * up / down]``.
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    assert styles.shape == (batch_size, in_channels), (styles.shape, (batch_size, in_channels))

    dcoefs = demodulation_coefficients(weight, styles) if demodulate else None  # [B, O]

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)  # [B, I, H, W]
        x = conv2d_resample(
            x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight,
        )  # [B, O, H', W']
        if dcoefs is not None:
            x = x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [B, O, I, k, k]
    if dcoefs is not None:
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)  # [B, O, I, k, k]
    x = x.reshape(1, -1, *x.shape[2:])  # [1, B*I, H, W]
    w = w.reshape(-1, in_channels, kh, kw)  # [B*O, I, k, k]
    x = conv2d_resample(
        x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=batch_size,
        flip_weight=flip_weight,
    )  # [1, B*O, H', W']
    x = x.reshape(batch_size, -1, *x.shape[2:])  # [B, O, H', W']
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv + per-pixel noise + bias + lrelu (3DGP ref §1.2)."""

    def __init__(
        self,
        in_channels: int,            # Number of input channels.
        out_channels: int,           # Number of output channels.
        w_dim: int,                  # Dimensionality of w.
        resolution: int,             # Output resolution (size of the constant noise map).
        kernel_size: int = 3,        # Convolution kernel size.
        up: int = 1,                 # Integer upsampling factor (1 or 2).
        use_noise: bool = True,      # Add per-pixel noise with a learned strength (init 0)?
        activation: str = "lrelu",   # Activation applied by bias_act.
        resample_filter: Sequence[int] = (1, 3, 3, 1),  # FIR filter used for upsampling.
        conv_clamp: float | None = None,  # Clamp the output (None = off; the 3DGP generator is fp32).
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter), device=None))
        self.padding = kernel_size // 2
        self.act_gain = activation_gain(activation)

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))

    def forward(
        self,
        x: torch.Tensor,             # [B, I, H, W]
        w: torch.Tensor,             # [B, w_dim]
        noise_mode: str = "random",  # 'random', 'const' or 'none'.
        fused_modconv: bool = True,  # Grouped-conv path (eval) or activation-scaling path (training).
        gain: float = 1,             # Extra output gain.
        generator: torch.Generator | None = None,  # RNG of the 'random' noise (None = global RNG).
    ) -> torch.Tensor:
        assert noise_mode in ("random", "const", "none"), noise_mode
        styles = self.affine(w)  # [B, I]
        noise = None
        if self.use_noise and noise_mode == "random":
            shape = [x.shape[0], 1, self.resolution, self.resolution]
            noise = rng.randn(shape, generator, x.device, x.dtype) * self.noise_strength  # [B, 1, R, R]
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength  # [R, R]
        act_gain = self.act_gain * gain
        if not fused_modconv and not x.is_cuda and self.activation == "lrelu" and act_gain > 0:
            return self._forward_unfused_folded(x, styles, noise, act_gain, gain)
        x = modulated_conv2d(
            x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
            resample_filter=self.resample_filter, flip_weight=(self.up == 1), fused_modconv=fused_modconv,
        )  # [B, O, R, R]
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp)

    def _forward_unfused_folded(self, x, styles, noise, act_gain: float, gain: float) -> torch.Tensor:
        """The non-fused (training) modconv + noise + bias + lrelu off CUDA in fewer passes (3DGP ref §1.2).

        lrelu(g y) = g lrelu(y) for g > 0, so the activation gain is folded into the demodulation coefficients,
        the noise and the bias: out = lrelu(conv(x * s) * (g d) + g b + g n). Same values as
        ``modulated_conv2d(fused_modconv=False)`` + ``bias_act`` up to float rounding.
        """
        dcoefs = demodulation_coefficients(self.weight, styles)  # [B, O]
        x = modulate(x, styles.to(x.dtype))  # [B, I, H, W]
        x = conv2d_resample(x, self.weight.to(x.dtype), f=self.resample_filter, up=self.up, padding=self.padding,
                            flip_weight=(self.up == 1))  # [B, O, R, R]
        x = epilogue(x, dcoefs.to(x.dtype) * act_gain, self.bias.to(x.dtype) * act_gain,
                     noise.to(x.dtype) * act_gain if noise is not None else None)  # one pass each way on CPU
        if self.conv_clamp is not None:
            x = x.clamp(-self.conv_clamp * gain, self.conv_clamp * gain)
        return x

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, resolution={self.resolution}, "
            f"up={self.up}, activation={self.activation}"
        )


class ToRGBLayer(nn.Module):
    """1x1 modulated conv without demodulation, then bias (3DGP ref §1.2)."""

    def __init__(
        self,
        in_channels: int,            # Number of input channels.
        out_channels: int,           # Number of output ("image") channels: 3 * feat_dim.
        w_dim: int,                  # Dimensionality of w.
        kernel_size: int = 1,        # Convolution kernel size.
        conv_clamp: float | None = None,  # Clamp the output (None = off).
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain  # [B, I]
        if not x.is_cuda and self.weight.shape[2:] == (1, 1):
            return self._forward_batched_matmul(x, styles)
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)  # [B, O, H, W]
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def _forward_batched_matmul(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        """Off CUDA, the 1x1 modulated conv + bias as one batched matmul with per-sample weights W * s (the
        fused form, without a pass over x for the styles); on channels_last input no copy is made. Same values
        up to float rounding (ref §1.2)."""
        batch_size, in_channels, height, width = x.shape
        weight = self.weight.to(x.dtype).reshape(1, -1, in_channels) * styles.to(x.dtype).unsqueeze(1)  # [B, O, I]
        pixels = x.permute(0, 2, 3, 1).reshape(batch_size, height * width, in_channels)  # [B, H*W, I]
        y = torch.baddbmm(self.bias.to(x.dtype).reshape(1, 1, -1), pixels, weight.transpose(1, 2))  # [B, H*W, O]
        y = y.reshape(batch_size, height, width, -1).permute(0, 3, 1, 2)  # [B, O, H, W] (channels_last)
        return y.clamp(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else y

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}"


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: (const | up-conv) + conv + ToRGB (3DGP ref §1.2)."""

    def __init__(
        self,
        in_channels: int,            # Input channels; 0 = first block (learned 4x4 constant).
        out_channels: int,           # Output channels.
        w_dim: int,                  # Dimensionality of w.
        resolution: int,             # Resolution of this block.
        img_channels: int,           # Channels of the skip "image": 3 * feat_dim.
        use_noise: bool = True,      # Per-pixel noise in the convs?
        resample_filter: Sequence[int] = (1, 3, 3, 1),  # FIR filter for conv and skip upsampling.
        conv_clamp: float | None = None,  # Clamp conv outputs (None = off).
        fused_modconv_default: bool | str = "inference_only",  # Default modconv path ('inference_only' = eval).
    ):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer("resample_filter", setup_filter(list(resample_filter), device=None))
        layer_kwargs = dict(w_dim=w_dim, resolution=resolution, use_noise=use_noise, conv_clamp=conv_clamp,
                            resample_filter=resample_filter)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **layer_kwargs)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer_kwargs)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(
        self,
        x: torch.Tensor | None,      # [B, I, r/2, r/2] or None for the first block.
        img: torch.Tensor | None,    # [B, img_channels, r/2, r/2] or None for the first block.
        ws: torch.Tensor,            # [B, num_conv + num_torgb, w_dim]
        noise_mode: str = "random",  # 'random', 'const' or 'none'.
        fused_modconv: bool | str | None = None,  # None = fused_modconv_default.
        generator: torch.Generator | None = None,  # RNG of the per-pixel noise (None = global RNG).
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if fused_modconv is None:
            fused_modconv = self.fused_modconv_default
        if fused_modconv == "inference_only":
            fused_modconv = not self.training
        w_iter = iter(ws.unbind(dim=1))
        layer_kwargs = dict(noise_mode=noise_mode, fused_modconv=fused_modconv, generator=generator)
        if self.conv0 is None:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)  # [B, O, 4, 4]
            if not x.is_cuda:  # channels_last from the start: oneDNN's CPU convolutions are ~15 % faster on it
                x = x.contiguous(memory_format=torch.channels_last)
            x = self.conv1(x, next(w_iter), **layer_kwargs)
        else:
            x = self.conv0(x, next(w_iter), **layer_kwargs)  # [B, O, r, r]
            x = self.conv1(x, next(w_iter), **layer_kwargs)
        if img is not None:
            img = upsample2d(img, self.resample_filter)  # [B, img_channels, r, r]
        y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)  # [B, img_channels, r, r]
        img = y if img is None else img + y
        return x, img


def block_channels(resolution: int, cbase: int, cmax: int) -> int:
    """Channels of the synthesis block at ``resolution``: min(cbase // r, cmax) (3DGP ref §1.2)."""
    return min(cbase // resolution, cmax)


class TriPlaneSynthesis(nn.Module):
    """StyleGAN2 skip synthesis network producing the tri-plane ``[B, 3, feat_dim, R, R]`` (3DGP ref §1.2)."""

    def __init__(
        self,
        w_dim: int = 512,            # Dimensionality of w.
        tri_plane_res: int = 512,    # Tri-plane resolution R (a power of 2, >= 4).
        feat_dim: int = 32,          # Features per plane; the skip "image" has 3 * feat_dim channels.
        cbase: int = 32768,          # Channels at resolution r are min(cbase // r, cmax).
        cmax: int = 512,             # Upper bound on channels per block.
        use_noise: bool = True,      # Per-pixel noise inputs?
        resample_filter: Sequence[int] = (1, 3, 3, 1),  # FIR filter for upsampling.
        conv_clamp: float | None = None,  # Clamp conv outputs (None = off: the generator is fp32).
        fused_modconv_default: bool | str = "inference_only",  # Grouped conv in eval only.
    ):
        super().__init__()
        assert tri_plane_res >= 4 and tri_plane_res & (tri_plane_res - 1) == 0, tri_plane_res
        self.w_dim = w_dim
        self.tri_plane_res = tri_plane_res
        self.feat_dim = feat_dim
        self.img_channels = 3 * feat_dim
        self.block_resolutions = [2**i for i in range(2, tri_plane_res.bit_length())]
        self.num_ws = 0
        self.blocks = nn.ModuleList()
        for res in self.block_resolutions:
            in_channels = block_channels(res // 2, cbase, cmax) if res > 4 else 0
            block = SynthesisBlock(
                in_channels, block_channels(res, cbase, cmax), w_dim=w_dim, resolution=res,
                img_channels=self.img_channels, use_noise=use_noise, resample_filter=resample_filter,
                conv_clamp=conv_clamp, fused_modconv_default=fused_modconv_default,
            )
            self.num_ws += block.num_conv
            self.blocks.append(block)
        self.num_ws += self.blocks[-1].num_torgb

    def forward(
        self,
        ws: torch.Tensor,            # [B, num_ws, w_dim]
        noise_mode: str = "random",  # 'random' (training), 'const' (visualisation) or 'none'.
        fused_modconv: bool | str | None = None,  # None = each block's default ('inference_only').
        generator: torch.Generator | None = None,  # RNG of the per-pixel noise (None = global RNG).
    ) -> torch.Tensor:
        """Run the blocks; returns the tri-plane ``[B, 3, feat_dim, R, R]`` (3DGP ref §1.2)."""
        assert ws.ndim == 3 and ws.shape[1:] == (self.num_ws, self.w_dim), (ws.shape, self.num_ws, self.w_dim)
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for block in self.blocks:
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)  # [B, n, w_dim]
            x, img = block(x, img, block_ws, noise_mode=noise_mode, fused_modconv=fused_modconv, generator=generator)
            w_idx += block.num_conv
        res = self.tri_plane_res
        return img.reshape(ws.shape[0], 3, self.feat_dim, res, res)  # [B, 3, F, R, R]
