"""Upsample, pad, FIR-filter and downsample 2-D images in one op (3DGP ref §9, "upfirdn2d").

G upsamples feature maps and skip images with it, D downsamples with it, and the blur warm-up (ref §5.2) uses
:func:`filter2d`. The reference path is the spec: zero-insert upsample -> pad (negative = crop) -> FIR
convolution -> keep every ``down``-th pixel. The CUDA path (``csrc/upfirdn2d.cu``) does the same per output pixel.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from stages.ops import _impl
from stages.ops._fir import fir_correlate, fir_scatter

CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def setup_filter(
    f,
    device: torch.device = torch.device("cpu"),
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: bool | None = None,
) -> torch.Tensor:
    """Turn filter taps into the float32 tensor the resampling ops take (3DGP ref §9: [1,3,3,1] sums to 1).

    Args:
        f: taps as a list/array/tensor (1-D or 2-D); None means the identity filter ``[1]``.
        device: where the result lives.
        normalize: divide by the sum of the taps, so a constant image keeps its value.
        flip_filter: flip the taps (``upfirdn2d`` then correlates instead of convolving).
        gain: overall gain of the 2-D filter; a separable filter gets ``sqrt(gain)`` per axis.
        separable: keep a 1-D filter 1-D (applied once per axis); default: only when it has 8 taps or more,
            otherwise 1-D taps become their outer product.

    Returns:
        float32 tensor ``[taps]`` (separable) or ``[taps_y, taps_x]``.
    """
    f = torch.as_tensor(1 if f is None else f, dtype=torch.float32)
    if f.ndim == 0:
        f = f.reshape(1)
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"filter: must have 1 or 2 non-empty dimensions, got shape {tuple(f.shape)}")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)  # [taps, taps]
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def parse_padding(padding) -> tuple[int, int, int, int]:
    """``int`` -> all sides, ``[px, py]`` -> symmetric per axis, ``[x0, x1, y0, y1]`` as is."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    if len(padding) == 4:
        return tuple(padding)  # type: ignore[return-value]
    raise ValueError(f"padding: must be an int, [px, py] or [x0, x1, y0, y1], got {padding}")


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) in taps of a filter from :func:`setup_filter` (None is 1x1)."""
    if f is None:
        return 1, 1
    assert f.ndim in (1, 2), f.shape
    return int(f.shape[-1]), int(f.shape[0])


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding=0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "auto",
) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with a FIR filter and downsample (3DGP ref §9).

    Args:
        x: images ``[B, C, H, W]``.
        f: filter from :func:`setup_filter` (1-D = separable, 2-D), or None for the identity.
        up: integer upsampling factor (``up - 1`` zeros inserted after every pixel).
        down: integer downsampling factor (keep every ``down``-th pixel of the filtered image).
        padding: pixels added (negative: removed) around the upsampled image: int, [px, py] or [x0, x1, y0, y1].
        flip_filter: correlate with ``f`` instead of convolving.
        gain: overall gain of the filter.
        impl: "auto", "ref" or "cuda"; CPU tensors always use "ref".

    Returns:
        ``[B, C, (H*up + y0 + y1 - fh) // down + 1, (W*up + x0 + x1 - fw) // down + 1]``.
    """
    assert isinstance(x, torch.Tensor) and x.ndim == 4, getattr(x, "shape", None)
    up, down = int(up), int(down)
    if up < 1 or down < 1:
        raise ValueError(f"up/down: resampling factors must be >= 1, got up={up}, down={down}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    pads = parse_padding(padding)
    fw, fh = filter_size(f)
    out_w = (x.shape[3] * up + pads[0] + pads[1] - fw) // down + 1
    out_h = (x.shape[2] * up + pads[2] + pads[3] - fh) // down + 1
    if out_w < 1 or out_h < 1:
        raise ValueError(f"padding: input {tuple(x.shape)} with these settings gives an empty output")
    covered = x.dtype in CUDA_DTYPES
    ext = _impl.choose("upfirdn2d", impl, x, cuda_ok=covered and x.numel() > 0,
                       why=None if covered else f"x {x.dtype}")
    if ext is not None:
        from stages.ops._upfirdn2d_cuda import upfirdn2d_cuda

        return upfirdn2d_cuda(ext, x, f, up=up, down=down, pads=pads, flip_filter=flip_filter, gain=gain)
    return upfirdn2d_ref(x, f, up=up, down=down, padding=pads, flip_filter=flip_filter, gain=gain)


def pad_or_crop(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """Zero-pad the last two axes by (x0, x1, y0, y1); negative amounts crop instead."""
    x0, x1, y0, y1 = pads
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    h, w = x.shape[2], x.shape[3]
    return x[:, :, max(-y0, 0) : h - max(-y1, 0), max(-x0, 0) : w - max(-x1, 0)]


def upfirdn2d_ref(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding=0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Reference :func:`upfirdn2d` in plain differentiable PyTorch (any order of derivatives) (3DGP ref §9)."""
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    pads = parse_padding(padding)
    # conv2d correlates; flip the taps unless asked to correlate.  Separable filters scale by sqrt(gain) per axis.
    f = f.to(device=x.device, dtype=x.dtype)
    if gain != 1:
        f = f * (gain ** (f.ndim / 2))
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))  # the correlation taps
    if f.requires_grad:  # a filter being learnt: the literal pipeline with grouped convolutions
        return _grouped_fir(pad_or_crop(_zero_insert(x, up), pads), f, down)
    # Constant filter: ops._fir (cheap exact double backward); a 1-D filter runs as a W pass then an H pass.
    fw, fh = filter_size(f)
    x0, x1, y0, y1 = pads
    if up > 1:
        # Correlating the padded zero-inserted image with f = scattering every input pixel with flip(f), shifted
        # by the padding (see stages.ops._fir.fir_scatter): no zeros materialised, 1/up^2 of the work.
        crop = ((fw - 1) - x0, fw - up - x1, (fh - 1) - y0, fh - up - y1)  # removed from each side of the scatter
        if crop[0] == crop[1] >= 0 and crop[2] == crop[3] >= 0:  # the transposed conv's own padding crops it
            x = _fir_passes(fir_scatter, x, f.flip(list(range(f.ndim))), up, crop[2], crop[0])
        else:
            x = pad_or_crop(_fir_passes(fir_scatter, x, f.flip(list(range(f.ndim))), up, 0, 0),
                            tuple(-c for c in crop))
        return x[:, :, ::down, ::down] if down > 1 else x
    if x0 == x1 >= 0 and y0 == y1 >= 0:  # symmetric zero padding: let the convolution pad (no extra pass)
        return _fir_passes(fir_correlate, x, f, down, y0, x0)
    return _fir_passes(fir_correlate, pad_or_crop(x, pads), f, down, 0, 0)


def _fir_passes(op, x: torch.Tensor, f: torch.Tensor, stride: int, pad_y: int, pad_x: int) -> torch.Tensor:
    """``op`` (fir_correlate or fir_scatter) with a 2-D filter, or with a 1-D one along W and then along H."""
    if f.ndim == 2:
        return op(x, f, stride, (pad_y, pad_x))
    x = op(x, f[None, :], (1, stride), (0, pad_x))  # along W
    return op(x, f[:, None], (stride, 1), (pad_y, 0))  # along H


def _zero_insert(x: torch.Tensor, up: int) -> torch.Tensor:
    """Zero-insertion upsampling: ``up - 1`` zeros after every pixel. ``[B, C, H*up, W*up]``"""
    if up == 1:
        return x
    batch, channels, in_h, in_w = x.shape
    x = x.reshape(batch, channels, in_h, 1, in_w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
    return x.reshape(batch, channels, in_h * up, in_w * up)


def _grouped_fir(x: torch.Tensor, f: torch.Tensor, down: int) -> torch.Tensor:
    """Depthwise FIR (already flipped/scaled) as grouped ``F.conv2d``; differentiable w.r.t. the filter too."""
    channels = x.shape[1]
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat(channels, 1, 1, 1), groups=channels)  # [C, 1, fh, fw]
    else:
        x = F.conv2d(x, f[None, None, None, :].repeat(channels, 1, 1, 1), groups=channels)  # along W
        x = F.conv2d(x, f[None, None, :, None].repeat(channels, 1, 1, 1), groups=channels)  # along H
    return x[:, :, ::down, ::down] if down > 1 else x


def filter2d(x: torch.Tensor, f: torch.Tensor | None, padding=0, flip_filter: bool = False, gain: float = 1,
             impl: str = "auto") -> torch.Tensor:
    """Filter ``x`` with ``f`` keeping its size (extra ``padding`` grows it) (3DGP ref §5.2 blur, §9)."""
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(f)
    pads = [x0 + fw // 2, x1 + (fw - 1) // 2, y0 + fh // 2, y1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=pads, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x: torch.Tensor, f: torch.Tensor | None, up: int = 2, padding=0, flip_filter: bool = False,
               gain: float = 1, impl: str = "auto") -> torch.Tensor:
    """Upsample ``x`` by ``up`` with FIR filter ``f``; output ``[B, C, H*up, W*up]`` (+ padding) (3DGP ref §9).

    The filter gain is multiplied by ``up**2`` so that a constant image keeps its value despite the inserted zeros.
    """
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(f)
    pads = [x0 + (fw + up - 1) // 2, x1 + (fw - up) // 2, y0 + (fh + up - 1) // 2, y1 + (fh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=pads, flip_filter=flip_filter, gain=gain * up * up, impl=impl)


def downsample2d(x: torch.Tensor, f: torch.Tensor | None, down: int = 2, padding=0, flip_filter: bool = False,
                 gain: float = 1, impl: str = "auto") -> torch.Tensor:
    """Low-pass with ``f`` and downsample by ``down``; output ``[B, C, H//down, W//down]`` (3DGP ref §9)."""
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(f)
    pads = [x0 + (fw - down + 1) // 2, x1 + (fw - down) // 2, y0 + (fh - down + 1) // 2, y1 + (fh - down) // 2]
    return upfirdn2d(x, f, down=down, padding=pads, flip_filter=flip_filter, gain=gain, impl=impl)
