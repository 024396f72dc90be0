"""2-D convolution with optional FIR up/downsampling, StyleGAN2-style (3DGP ref §1.2, §4.1, §9).

Semantics (the general path, :func:`conv2d_resample_general`, is the spec):

    y = down_fir( conv_w( pad( up_fir(x) ) ) )

where ``up_fir`` zero-inserts by ``up`` and filters with ``f`` (gain ``up**2``), ``pad`` applies ``padding`` plus
what the filter needs for an exact ``H*up`` (or ``H/down``) size, ``conv_w`` is a *valid* convolution with ``w``,
and ``down_fir`` filters with ``f`` and keeps every ``down``-th pixel. The fast paths compute the same thing with
less work: for ``up > 1`` a transposed convolution (the convolution of the zero-inserted image) followed by the
FIR filter; for ``down > 1`` the FIR filter followed by a strided convolution. Everything is built from
:func:`upfirdn2d` and convolutions (plain ones through :mod:`stages.ops.conv2d_gradfix`, whose exact double
backward is cheap and which honours ``no_weight_gradients`` in the R1 pass), so second-order gradients work.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from stages.ops import conv2d_gradfix
from stages.ops.upfirdn2d import filter_size, parse_padding, upfirdn2d


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding=0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Convolve ``x`` with ``w``, upsampling or downsampling with FIR filter ``f`` around it (3DGP ref §9).

    Args:
        x: input ``[B, C_in, H, W]``.
        w: weight ``[C_out, C_in // groups, kh, kw]``.
        f: resampling filter from ``setup_filter`` (None = box, i.e. plain zero-insert / stride).
        up: integer upsampling factor.
        down: integer downsampling factor.
        padding: padding of the upsampled image: int, [px, py] or [x0, x1, y0, y1] (``kernel_size // 2`` keeps
            the output at ``H*up/down``).
        groups: grouped convolution (modulated convs fold the batch into groups).
        flip_weight: True = correlation with ``w`` (what ``F.conv2d`` does); False = true convolution.
        flip_filter: correlate with ``f`` instead of convolving.

    Returns:
        ``[B, C_out, H_out, W_out]``; with ``padding = kernel_size // 2``: ``H_out = H * up // down``.
    """
    assert isinstance(x, torch.Tensor) and x.ndim == 4, getattr(x, "shape", None)
    assert isinstance(w, torch.Tensor) and w.ndim == 4 and w.dtype == x.dtype, (w.shape, w.dtype, x.dtype)
    up, down = int(up), int(down)
    if up < 1 or down < 1:
        raise ValueError(f"up/down: resampling factors must be >= 1, got up={up}, down={down}")
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(f)
    # Grow the padding by what the FIR filter consumes, so the sizes come out exactly H*up or H/down.
    if up > 1:
        x0, x1, y0, y1 = x0 + (fw + up - 1) // 2, x1 + (fw - up) // 2, y0 + (fh + up - 1) // 2, y1 + (fh - up) // 2
    if down > 1:
        x0, x1 = x0 + (fw - down + 1) // 2, x1 + (fw - down) // 2
        y0, y1 = y0 + (fh - down + 1) // 2, y1 + (fh - down) // 2
    pads = (x0, x1, y0, y1)
    if up == 1 and down == 1:
        if x0 == x1 >= 0 and y0 == y1 >= 0:  # symmetric, non-negative: let the convolution pad (no extra pass)
            return _conv(x, w, groups=groups, flip_weight=flip_weight, padding=(y0, x0))
        return _conv(pad_input(x, pads), w, groups=groups, flip_weight=flip_weight)
    if up == 1:  # FIR low-pass first, then the strided convolution does the decimation.
        if w.shape[2:] == (1, 1):  # pointwise conv: decimate inside the FIR (1/down^2 of its work), same values
            x = upfirdn2d(x, f, down=down, padding=pads, flip_filter=flip_filter)
            return _conv(x, w, groups=groups, flip_weight=flip_weight)
        x = upfirdn2d(x, f, padding=pads, flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if down == 1:
        return _conv_up(x, w, f, up=up, pads=pads, groups=groups, flip_weight=flip_weight, flip_filter=flip_filter)
    return conv2d_resample_general(x, w, f, up, down, pads, groups, flip_weight, flip_filter)


def conv2d_resample_general(x, w, f, up, down, pads, groups, flip_weight, flip_filter) -> torch.Tensor:
    """The literal pipeline up_fir -> pad -> valid conv -> down_fir; ``pads`` already include the filter's share."""
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=pads, gain=up**2, flip_filter=flip_filter)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


def pad_input(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """Pad (negative: crop) the last two axes by (x0, x1, y0, y1) without filtering.

    Only the asymmetric or negative paddings of the plain (up = down = 1) path come here; symmetric non-negative
    padding is done by ``F.conv2d`` itself, which is the same zero padding without an extra pass.
    """
    if pads == (0, 0, 0, 0):
        return x
    return upfirdn2d(x, None, padding=pads)


def _conv(x, w, stride: int = 1, groups: int = 1, flip_weight: bool = True, padding=(0, 0)) -> torch.Tensor:
    """Convolution with zero ``padding`` (py, px), valid by default; ``flip_weight=False`` = true convolution."""
    if not flip_weight:
        w = w.flip([2, 3])
    return conv2d_gradfix.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def _conv_up(x, w, f, up, pads, groups, flip_weight, flip_filter) -> torch.Tensor:
    """Upsampling conv as transposed conv + FIR filter, equal to the general path.

    ``conv_transpose2d(x, W, stride=up)`` is the *full* correlation of the zero-inserted image (length
    (H-1)*up+1, padded by k-1 on both sides) with ``flip(W)``. The general path pads the zero-inserted image
    (length H*up) by (p0, p1); a valid correlation of that equals the full one padded by (p0 - (k-1),
    p1 + (up-1) - (k-1)) (negative = crop), and the FIR filter commutes with the convolution, so the filter
    pass takes that padding.
    """
    c_out, c_in_per_group, kh, kw = w.shape
    if not flip_weight:  # a true convolution with w is a correlation with flip(w)
        w = w.flip([2, 3])
    # conv_transpose2d wants [C_in, C_out // groups, kh, kw]; its taps are the correlation taps flipped.
    w = w.reshape(groups, c_out // groups, c_in_per_group, kh, kw).transpose(1, 2)
    w = w.reshape(groups * c_in_per_group, c_out // groups, kh, kw).flip([2, 3])
    x = F.conv_transpose2d(x, w, stride=up, groups=groups)
    x0, x1, y0, y1 = pads
    pads = (x0 - (kw - 1), x1 + up - kw, y0 - (kh - 1), y1 + up - kh)
    return upfirdn2d(x, f, padding=pads, gain=up**2, flip_filter=flip_filter)
