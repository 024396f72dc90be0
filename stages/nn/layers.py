"""Equalized-learning-rate building blocks shared by G and D (3DGP ref §1.1, §1.2, §3.1, §4.1).

* ``normalize_2nd_moment``: x / sqrt(mean(x^2) + eps) along one dimension.
* ``FullyConnectedLayer``: the equalized-lr FC layer used by every FC in G and D. The stored weight is
  N(0, 1) / lr_multiplier and the stored bias bias_init / lr_multiplier; at run time they are scaled by
  lr_multiplier / sqrt(fan_in) and lr_multiplier, so the effective learning rate of the layer is multiplied by
  lr_multiplier under Adam. The activation goes through ``bias_act`` with its default gain (lrelu sqrt(2)).
* ``Conv2dLayer``: the StyleGAN2 equalized-lr conv with 'same' padding (k // 2), optional FIR up/down-sampling
  through ``conv2d_resample``, and bias + activation (+ optional clamp) through ``bias_act``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stages.ops import bias_act, conv2d_resample, setup_filter
from stages.ops.act_grad import bias_lrelu_clamp

# Default output gain of each activation, the one bias_act applies when gain=None (3DGP ref §1.1).
ACTIVATION_GAIN = {
    "linear": 1.0,
    "relu": math.sqrt(2),
    "lrelu": math.sqrt(2),
    "tanh": 1.0,
    "sigmoid": 1.0,
    "elu": 1.0,
    "selu": 1.0,
    "softplus": 1.0,
    "swish": math.sqrt(2),
}


# Activations with act(g x) = g act(x) for g > 0: their gain can be folded into the weights (FullyConnectedLayer).
_HOMOGENEOUS = ("relu", "lrelu")


def activation_gain(activation: str) -> float:
    """The default output gain ``bias_act`` uses for ``activation`` (lrelu sqrt(2), linear 1; 3DGP ref §1.1)."""
    assert activation in ACTIVATION_GAIN, f"unknown activation {activation!r}"
    return ACTIVATION_GAIN[activation]


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Divide ``x`` by the root mean square along ``dim``: x / sqrt(mean(x^2) + eps) (3DGP ref §1.1)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def _like(b: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """The bias in the dtype of the layer's output ``x``. Under bf16 autocast the matmul/conv output is bf16 while
    a bias cast to the (float32) input dtype stays float32; the CUDA ``bias_act`` refuses that mix and the slow
    reference path would run (issue 18 row 10)."""
    return b if b is None or b.dtype == x.dtype else b.to(x.dtype)


class FullyConnectedLayer(nn.Module):
    """Equalized-learning-rate fully connected layer (3DGP ref §1.1).

    Input ``[B, in_features]``, output ``[B, out_features]``.
    """

    def __init__(
        self,
        in_features: int,           # Number of input features.
        out_features: int,          # Number of output features.
        bias: bool = True,          # Add a learned bias?
        activation: str = "linear",  # Activation applied by bias_act: 'linear', 'lrelu', 'softplus', ...
        lr_multiplier: float = 1.0,  # Learning-rate multiplier of this layer.
        bias_init: float = 0.0,     # Initial value of the effective bias.
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init) / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_cuda:
            if x.ndim == 2:
                return self._forward_scaled_addmm(x)
            if self.activation in _HOMOGENEOUS:
                return self._forward_folded(x)
        return self._forward_general(x)

    def _forward_general(self, x: torch.Tensor) -> torch.Tensor:
        """The literal layer (CUDA, where ``bias_act`` is one fused kernel): scaled weight, matmul, bias + act."""
        w = self.weight.to(x.dtype) * self.weight_gain  # [out, in]
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return F.linear(x, w, b)  # [B, out]; = addmm(b, x, w^T), bitwise, in one call
        x = F.linear(x, w)  # [B, out]
        return bias_act(x, _like(b, x), act=self.activation)

    def effective_params(self, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The weight ``[out, in]`` and bias ``[out]`` (or None) the layer applies: equalized-lr gains in, and for
        relu/lrelu the activation gain too (act(g y) = g act(y), g > 0), so ``act(x w^T + b)`` is the output."""
        gain = activation_gain(self.activation) if self.activation in _HOMOGENEOUS else 1.0
        w = self.weight.to(dtype) * (self.weight_gain * gain)  # [out, in]
        b = self.bias.to(dtype) * (self.bias_gain * gain) if self.bias is not None else None
        return w, b

    def _forward_scaled_addmm(self, x: torch.Tensor) -> torch.Tensor:
        """Off CUDA, ``[B, in]`` input: the gains ride on the matmul (``addmm``'s ``alpha`` and ``beta``) instead of
        scaling the weight and the bias first, so a layer is one autograd node instead of three or four (the tiny
        presets run thousands of such small calls per iteration). For relu/lrelu the activation gain is folded in
        too (act(g y) = g act(y), g > 0). Same values up to float rounding, any order of derivatives."""
        gain = activation_gain(self.activation) if self.activation in _HOMOGENEOUS else 1.0
        w = self.weight.to(x.dtype).t()  # [in, out]
        if self.bias is not None:
            x = torch.addmm(self.bias.to(x.dtype), x, w, beta=self.bias_gain * gain, alpha=self.weight_gain * gain)
        else:
            x = torch.mm(x, w) if self.weight_gain * gain == 1 else torch.mm(x, w) * (self.weight_gain * gain)
        if self.activation == "relu":
            return torch.relu_(x)
        if self.activation == "lrelu":
            return F.leaky_relu_(x, 0.2)
        return x if self.activation == "linear" else bias_act(x, None, act=self.activation)

    def _forward_folded(self, x: torch.Tensor) -> torch.Tensor:
        """relu/lrelu off CUDA: act(x W^T + b) * g = act(x (g W)^T + g b) for g > 0, so the activation gain is
        folded into the (small) weight and bias and the big [B, out] output sees one matmul and one in-place
        activation instead of four passes (same values up to float rounding; any order of derivatives)."""
        w, b = self.effective_params(x.dtype)
        x = F.linear(x, w, b)  # [B, out]
        if self.activation == "relu":
            return torch.relu_(x)
        return F.leaky_relu_(x, 0.2)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """StyleGAN2 equalized-lr convolution with optional FIR up/down-sampling (3DGP ref §3.1, §4.1).

    Input ``[B, in_channels, H, W]``; output ``[B, out_channels, H * up / down, W * up / down]``.
    """

    def __init__(
        self,
        in_channels: int,           # Number of input channels.
        out_channels: int,          # Number of output channels.
        kernel_size: int,           # Width and height of the kernel; padding is kernel_size // 2.
        bias: bool = True,          # Add a learned bias (initialised to 0)?
        activation: str = "linear",  # Activation applied by bias_act.
        up: int = 1,                # Integer upsampling factor.
        down: int = 1,              # Integer downsampling factor.
        resample_filter: Sequence[int] = (1, 3, 3, 1),  # Low-pass FIR filter used for up/down-sampling.
        conv_clamp: float | None = None,  # Clamp the output to +-conv_clamp (None = off).
        channels_last: bool = False,  # Store the weight in channels_last memory format?
        trainable: bool = True,     # Register weight and bias as parameters (else as buffers)?
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter), device=None))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = activation_gain(activation)

        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias_value = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(bias_value) if bias_value is not None else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias_value)

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        if (self.activation in _HOMOGENEOUS or self.activation == "linear") and gain > 0 and not x.is_cuda:
            return self._forward_folded(x, gain)
        w = self.weight * self.weight_gain  # [out, in, k, k]
        b = self.bias.to(x.dtype) if self.bias is not None else None
        flip_weight = self.up == 1  # conv_transpose2d (up > 1) expects the unflipped kernel
        x = conv2d_resample(
            x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
            padding=self.padding, flip_weight=flip_weight,
        )
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, _like(b, x), act=self.activation, gain=act_gain, clamp=act_clamp)

    def _forward_folded(self, x: torch.Tensor, gain: float) -> torch.Tensor:
        """linear/relu/lrelu off CUDA: the output gain folded into weight and bias (act(g y) = g act(y), g > 0),
        then one bias add, an in-place activation and the clamp: same values up to float rounding, fewer passes
        over the feature map forward, backward and in the R1 double backward."""
        act_gain = self.act_gain * gain
        w = self.weight * (self.weight_gain * act_gain)  # [out, in, k, k]
        x = conv2d_resample(
            x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
            padding=self.padding, flip_weight=(self.up == 1),
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        if self.activation == "lrelu" and x.dtype == torch.float32:  # one-pass derivative, cheap R1 (stages.ops.act_grad)
            return bias_lrelu_clamp(x, self.bias * act_gain if self.bias is not None else None, 0.2, clamp)
        if self.bias is not None:
            x = x + (self.bias.to(x.dtype) * act_gain).reshape(1, -1, 1, 1)
        in_place = self.bias is not None  # x is then our own fresh tensor (no autograd node needs it)
        if self.activation == "lrelu":
            x = F.leaky_relu_(x, 0.2) if in_place else F.leaky_relu(x, 0.2)
        elif self.activation == "relu":
            x = torch.relu_(x) if in_place else torch.relu(x)
        if self.conv_clamp is not None:
            x = x.clamp(-self.conv_clamp * gain, self.conv_clamp * gain)
        return x

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, activation={self.activation}, "
            f"up={self.up}, down={self.down}"
        )
