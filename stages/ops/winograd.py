"""3x3 stride-1 convolutions on CPU by Winograd's F(4x4, 3x3) (issue 21 §1 (iii); ``csrc/winograd_cpu.c``).

The D step with R1 is made of convolutions: each of D's layers runs six per step (the forward, R1's input
gradient, that gradient's own two derivatives, the backward of the forward), and oneDNN's direct kernels already
run them at this CPU's peak FLOP rate, so only fewer multiplications can make them faster. Winograd's F(4x4, 3x3)
computes a 4x4 output tile with 36 multiplications per input/output channel pair instead of 144: the tiles'
transforms are cheap passes (C kernels), the kernels' a 36 x 9 matrix product, the rest 36 matrix products
(``torch.bmm``, at 150-190 GFLOP/s on two cores of the AMD host against the direct kernels' ~225). This is
what cuDNN picks for the same convolutions on a GPU (the official code's ``cudnn.benchmark``), and it computes the
same function: a 3x3 kernel, stride 1, zero padding 1, no change of the algorithm; in float32 the results differ
from a direct convolution by about 1e-5 of their largest value (tested; the direct kernels' own rounding is ~3e-7).

Three entry points, used by :mod:`stages.ops.conv2d_gradfix` (whose three autograd functions are each other's
derivatives, so every derivative order takes them):

* :func:`conv3x3`              ``F.conv2d(x, w, padding=1)``;
* :func:`conv3x3_input_grad`   the gradient w.r.t. the input, given the output gradient (= the correlation with
  the flipped, transposed kernel, a conv3x3 itself);
* :func:`conv3x3_weight_grad`  the gradient w.r.t. the kernel: the transpose of the Winograd forward.

:func:`usable` decides: CPU float32 tensors, channel counts multiples of 8, the kernels built
(:mod:`stages.ops._cpu_build`), and a convolution large enough to pay for its transforms
(:data:`MIN_MACS`, measured; below it oneDNN's direct kernel is as fast). ``THREEDGP_WINOGRAD=0`` turns it off
(the direct kernels run; results then differ at the 1e-5 level, so a run's trajectory does too). Outputs are
channels-last (the layout the transforms read and write, so a chain of such convolutions never reorders).

Measured on the 2-core AMD EPYC VM, two threads, per convolution (benchmarks/RESULTS.md "Training step against
d25bb9d", sixth session): 8 x 128 x 32^2 -> 128: forward 10.8 -> 5.5 ms, input gradient 10.7 -> 5.5, weight
gradient 11.3 -> 5.5; 8 x 64 x 16^2 -> 64 (2^26 multiply-adds) still 1.5x; at 2^24 (8 x 64 x 8^2 -> 64) a wash.
"""
from __future__ import annotations

import contextlib
import ctypes
import os

import torch
import torch.nn.functional as F

from stages.ops import _impl

ENABLE_ENV = "THREEDGP_WINOGRAD"
MIN_MACS = 1 << 25  # multiply-adds of the direct convolution below which it stays direct (benchmarks/RESULTS.md)
MIN_SIZE = 8  # images smaller than 8 x 8 stay direct (a tile or two per image)
GRAIN = 1 << 15  # elements per thread below which extra threads are not worth waking


def enabled() -> bool:
    """False when ``THREEDGP_WINOGRAD=0``."""
    return os.environ.get(ENABLE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def usable(x: torch.Tensor, w_shape, stride, padding, groups: int, dilation=(1, 1)) -> bool:
    """Whether a convolution of ``x [N, C, H, W]`` with a ``w_shape = [O, C, kh, kw]`` kernel runs here."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.ndim != 4 or not enabled():
        return False
    out_ch, in_ch, kh, kw = w_shape
    if (kh, kw) != (3, 3) or tuple(stride) != (1, 1) or tuple(padding) != (1, 1) or tuple(dilation) != (1, 1):
        return False
    if groups != 1 or in_ch % 8 or out_ch % 8 or x.shape[1] != in_ch:
        return False
    n, _, h, w = x.shape
    if min(h, w) < MIN_SIZE or n * h * w * in_ch * out_ch * 9 < MIN_MACS:
        return False
    return _library() is not None


def conv3x3(x: torch.Tensor, w: torch.Tensor, remember: bool = False) -> torch.Tensor:
    """``F.conv2d(x, w, padding=1)`` for ``x [N, C, H, W]``, ``w [O, C, 3, 3]`` -> ``[N, O, H, W]`` channels-last.

    ``remember``: keep ``x``'s tiles with ``x`` for a :func:`conv3x3_weight_grad` of the same ``x`` (the backward)."""
    return _correlate(x, w, flip=False, remember=remember, lib=_library())


def conv3x3_input_grad(gy: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The gradient w.r.t. ``x`` of ``conv3x3(x, w)`` given ``gy [N, O, H, W]`` -> ``[N, C, H, W]``."""
    return _correlate(gy, w, flip=True, lib=_library())


def conv3x3_weight_grad(x: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """The gradient w.r.t. ``w`` of ``conv3x3(x, w)`` given ``gy`` -> ``[O, C, 3, 3]`` (contiguous)."""
    return _weight_grad(x, gy, _library())


def _weight_grad(x: torch.Tensor, gy: torch.Tensor, lib) -> torch.Tensor:
    c, o = x.shape[1], gy.shape[1]
    team = _team(x.numel() + gy.numel())
    v = _input_tiles(x, team, False, lib)                   # [36, T, C]
    g = _tiles(lib.threedgp_wino_grad_output, gy, team)     # [36, T, O]
    du = torch.bmm(g.transpose(1, 2), v)                    # [36, O, C]
    gw = torch.mm(_transform(x.dtype).t(), du.view(36, o * c))  # [9, O * C]: G^T dU G per channel pair
    _impl.record("conv3x3", "winograd")
    return gw.t().reshape(o, c, 3, 3)


def _correlate(x: torch.Tensor, w: torch.Tensor, flip: bool, lib, remember: bool = False) -> torch.Tensor:
    """The forward (``flip`` False: ``[36, C, O]`` kernel tiles) or the input gradient (``flip``: the kernel
    flipped and transposed, ``[36, O, C]``)."""
    n, _, h, wd = x.shape
    out_ch, in_ch = w.shape[:2]
    team = _team(x.numel())
    v = _input_tiles(x, team, remember, lib)                # [36, T, K]
    u = _memo(w, "flipped" if flip else "kernel", lambda: _kernel_tiles(w, flip))  # [36, O, C]
    prod = torch.bmm(v, u if flip else u.transpose(1, 2))   # [36, T, M]
    m = prod.shape[2]
    y = torch.empty((n, m, h, wd), dtype=x.dtype, memory_format=torch.channels_last)
    lib.threedgp_wino_output(prod.data_ptr(), y.data_ptr(), n, h, wd, m, ctypes.byref(team))
    _impl.record("conv3x3", "winograd")
    return y


def _kernel_tiles(w: torch.Tensor, flip: bool) -> torch.Tensor:
    """``U = G g G^T`` of every 3x3 kernel of ``w [O, C, 3, 3]`` -> ``[36, O, C]``; ``flip`` rotates each kernel
    by 180 degrees first (reversing its 9 taps = reversing the transform's columns)."""
    t = _transform(w.dtype)
    out_ch, in_ch = w.shape[:2]
    return torch.mm(t.flip(1) if flip else t, w.detach().reshape(out_ch * in_ch, 9).t()).view(36, out_ch, in_ch)


# G of F(4x4, 3x3) (6 x 3): rows are the interpolation points 0, 1, -1, 2, -2 and infinity.
_G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6), (1 / 24, 1 / 12, 1 / 6),
      (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))
_TRANSFORMS: dict = {}


def _transform(dtype: torch.dtype) -> torch.Tensor:
    """``kron(G, G)`` ``[36, 9]`` (computed in float64): ``U.flat = kron(G, G) @ g.flat`` for a 3x3 kernel ``g``."""
    if dtype not in _TRANSFORMS:
        g = torch.tensor(_G, dtype=torch.float64)
        _TRANSFORMS[dtype] = torch.kron(g, g).to(dtype)
    return _TRANSFORMS[dtype]


def _input_tiles(x: torch.Tensor, team, remember: bool, lib) -> torch.Tensor:
    """``B^T d B`` of ``x``'s tiles: from the memo when an earlier call kept them, else computed (and kept when
    ``remember``)."""
    make = lambda: _tiles(lib.threedgp_wino_input, x, team)  # noqa: E731
    return _memo(x, "tiles", make) if remember else _memo(x, "tiles", make, lookup_only=True)


_MEMO = "_threedgp_winograd"  # attribute of a tensor holding (its version and address, {name: transform})
_shared: dict[int, torch.Tensor] = {}  # id -> tensor without grad_fn whose transforms :func:`share` keeps a while


def _memo(t: torch.Tensor, name: str, make, lookup_only: bool = False) -> torch.Tensor:
    """``make()``, kept on tensor ``t`` itself for as long as ``t`` lives unchanged.

    Within a training step one kernel is transformed four times and one input twice (the forward, R1's input
    gradient, its double backward and the forward's backward reuse them): a kernel's two transforms and an input's
    tiles are computed once. The memo lives on the tensor object (autograd hands a saved tensor back as the same
    object) and dies with it. It is kept only for tensors made by autograd-recorded ops (``grad_fn`` set), which
    change only through recorded in-place ops, and those bump the version counter that voids the memo; a leaf
    (a parameter) may change without that (the fused Adam does not bump it), so a leaf's transforms are kept only
    inside :func:`share`. ``lookup_only`` computes without keeping."""
    if t.grad_fn is None and id(t) not in _shared:
        return make()
    stamp = (t._version, t.data_ptr())
    memo = getattr(t, _MEMO, None)
    if memo is not None and memo[0] == stamp and name in memo[1]:
        return memo[1][name]
    value = make()
    if not lookup_only:
        if memo is None or memo[0] != stamp:
            memo = (stamp, {})
            setattr(t, _MEMO, memo)
        memo[1][name] = value
    return value


@contextlib.contextmanager
def share(t: torch.Tensor):
    """Inside, the transforms of ``t`` (a gradient without ``grad_fn``: the double backward's input to two
    convolutions) are computed once; they are dropped on exit."""
    _shared[id(t)] = t
    try:
        yield
    finally:
        _shared.pop(id(t), None)
        if hasattr(t, _MEMO):
            delattr(t, _MEMO)


def _tiles(fn, x: torch.Tensor, team) -> torch.Tensor:
    """``fn`` (an input-side transform) of ``x [N, C, H, W]`` -> ``[36, T, C]``."""
    n, c, h, w = x.shape
    x = x.detach().contiguous(memory_format=torch.channels_last)
    out = x.new_empty((36, n * ((h + 3) // 4) * ((w + 3) // 4), c))
    fn(x.data_ptr(), out.data_ptr(), n, h, w, c, ctypes.byref(team))
    return out


def selfcheck(lib) -> str | None:
    """The three products against direct convolutions on a small input (odd sizes: partial tiles); the first
    mismatch in one line, or None."""
    gen = torch.Generator().manual_seed(0)
    x, w, gy = (torch.randn(*s, generator=gen) for s in ((2, 8, 7, 10), (16, 8, 3, 3), (2, 16, 7, 10)))
    with torch.inference_mode(False), torch.no_grad():
        grad = torch.nn.grad
        checks = (("output", _correlate(x, w, False, lib), F.conv2d(x, w, padding=1)),
                  ("input gradient", _correlate(gy, w, True, lib), grad.conv2d_input(x.shape, w, gy, padding=1)),
                  ("weight gradient", _weight_grad(x, gy, lib), grad.conv2d_weight(x, w.shape, gy, padding=1)))
    for name, got, want in checks:
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max())):
            return f"winograd conv3x3 {name} differs from a direct convolution by {(got - want).abs().max().item():.3g}"
    return None


def _library():
    from stages.ops._cpu_build import get_library

    return get_library()


def _team(numel: int):
    from stages.ops._cpu_build import team

    return team(numel // GRAIN)
