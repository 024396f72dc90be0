"""The CUDA code paths on CPU: autograd wrappers driven by a kernel mirror, dispatch and the fallback policy.

The mirror (``_kernel_mirror.py``) follows the kernels' algorithms, so these tests check the wrappers' plumbing
(filter flips, gradient padding, separable passes, the create_graph fallback) and the kernels' maths without a
GPU. Real kernels are compared with the reference in ``test_gpu_parity.py``.
"""
from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from _kernel_mirror import MirrorExtension
from stages.common.errors import OpsBuildError
from stages.ops import _build, _impl, bias_act, composite, impl_report, setup_filter, upfirdn2d
from stages.ops._bias_act_cuda import bias_act_cuda
from stages.ops._composite_cuda import composite_cuda
from stages.ops._upfirdn2d_cuda import grad_params, upfirdn2d_cuda
from stages.ops.bias_act import ACTIVATIONS, bias_act_ref
from stages.ops.upfirdn2d import upfirdn2d_ref
from stages.ops.volume_composite import composite_ref


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch):
    from stages.ops import selfcheck

    monkeypatch.setattr(selfcheck, "verify", lambda op, ext, device: True)  # tested in test_selfcheck.py
    _build.reset()
    _impl.reset_report()
    yield
    _build.reset()
    _impl.reset_report()


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_bias_act_wrapper_matches_ref_with_grads(act):
    ext = MirrorExtension()
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(2, 3, 5, generator=gen, dtype=torch.float64) + 0.1).requires_grad_(True)
    b = torch.randn(3, generator=gen, dtype=torch.float64).requires_grad_(True)
    kwargs = dict(dim=1, act=act, alpha=0.2, gain=1.3, clamp=0.9)
    torch.testing.assert_close(bias_act_cuda(ext, x, b, **kwargs), bias_act_ref(x, b, **kwargs))
    assert gradcheck(lambda x, b: bias_act_cuda(ext, x, b, **kwargs), (x, b), eps=1e-6, atol=1e-5)
    assert "bias_act_backward" in ext.calls
    assert gradgradcheck(lambda x, b: bias_act_cuda(ext, x, b, **kwargs), (x, b), eps=1e-6, atol=1e-5)


def test_bias_act_wrapper_without_bias_and_last_dim():
    ext = MirrorExtension()
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(bias_act_cuda(ext, x, None, 1, "lrelu", 0.2, 2 ** 0.5, -1.0),
                               bias_act_ref(x, None, act="lrelu"))
    assert gradcheck(lambda x, b: bias_act_cuda(ext, x, b, 1, "swish", 0.0, 1.0, -1.0), (x, b), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("in_size,up,down,pad0,pad1,taps", [
    (5, 1, 1, 0, 0, 3), (5, 2, 1, 2, 1, 4), (6, 1, 2, 1, 1, 4), (5, 2, 2, 1, 2, 4), (7, 3, 2, 0, -1, 3),
])
def test_grad_params_give_the_input_size(in_size, up, down, pad0, pad1, taps):
    out_size = (in_size * up + pad0 + pad1 - taps) // down + 1
    gup, gdown, g0, g1 = grad_params(in_size, up, down, pad0, pad1, taps)
    assert (gup, gdown) == (down, up)
    assert (out_size * gup + g0 + g1 - taps) // gdown + 1 == in_size


UPFIRDN_CASES = [  # (up, down, pads, taps, separable)
    (1, 1, (1, 1, 1, 1), [1, 2, 3], False),
    (2, 1, (2, 1, 2, 1), [1, 3, 3, 1], False),
    (1, 2, (1, 1, 1, 1), [1, 3, 3, 1], False),
    (2, 2, (1, 2, 0, 3), [1, 3, 3, 1], False),
    (3, 1, (0, -1, 1, -2), [1, 2, 1], False),
    (2, 1, (4, 3, 4, 3), [1, 2, 3, 4, 4, 3, 2, 1], True),
]


@pytest.mark.parametrize("up,down,pads,taps,separable", UPFIRDN_CASES)
@pytest.mark.parametrize("flip_filter", [False, True])
def test_upfirdn2d_wrapper_matches_ref_with_grads(up, down, pads, taps, separable, flip_filter):
    ext = MirrorExtension()
    x = torch.randn(1, 1, 4, 3, dtype=torch.float64, requires_grad=True)
    f = setup_filter(taps, separable=separable, normalize=False)
    if not separable:
        f = f * torch.arange(1, f.numel() + 1, dtype=torch.float32).reshape(f.shape)  # make it asymmetric

    def fn(x):
        return upfirdn2d_cuda(ext, x, f, up=up, down=down, pads=pads, flip_filter=flip_filter, gain=1.7)

    expected = upfirdn2d_ref(x, f.double(), up=up, down=down, padding=pads, flip_filter=flip_filter, gain=1.7)
    torch.testing.assert_close(fn(x), expected, rtol=1e-5, atol=1e-5)  # the kernel takes float32 taps
    assert gradcheck(fn, (x,), eps=1e-6, atol=1e-5)
    if flip_filter and up * down > 1:  # second order re-enters the same kernel; one flip setting suffices
        assert gradgradcheck(fn, (x,), eps=1e-6, atol=1e-5)


def test_composite_wrapper_matches_ref_with_grads():
    ext = MirrorExtension()
    gen = torch.Generator().manual_seed(2)
    rgb = torch.randn(3, 5, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    sigma_raw = (torch.randn(3, 5, generator=gen, dtype=torch.float64) * 2).requires_grad_(True)
    t = (0.75 + 0.5 * torch.sort(torch.rand(3, 5, generator=gen, dtype=torch.float64), 1)[0]).requires_grad_(True)
    for got, want in zip(composite_cuda(ext, rgb, sigma_raw, t), composite_ref(rgb, sigma_raw, t)):
        torch.testing.assert_close(got, want)
    assert gradcheck(lambda *a: composite_cuda(ext, *a), (rgb, sigma_raw, t), eps=1e-6, atol=1e-5)
    assert "composite_backward" in ext.calls
    assert gradgradcheck(lambda *a: composite_cuda(ext, *a), (rgb, sigma_raw, t), eps=1e-6, atol=1e-5)


def test_composite_backward_survives_an_opaque_sample():
    """q = 1 - alpha + 1e-10 can be ~1e-10: the reverse sweep must not divide by it."""
    ext = MirrorExtension()
    rgb = torch.randn(1, 4, 3, dtype=torch.float64, requires_grad=True)
    sigma_raw = torch.tensor([[0.0, 80.0, 0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[0.8, 0.9, 1.0, 1.1]], dtype=torch.float64, requires_grad=True)
    out = composite_cuda(ext, rgb, sigma_raw, t)
    grads = torch.autograd.grad(sum(o.sum() for o in out), (rgb, sigma_raw, t))
    ref = torch.autograd.grad(sum(o.sum() for o in composite_ref(rgb, sigma_raw, t)), (rgb, sigma_raw, t))
    for got, want in zip(grads, ref):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want)


def test_public_ops_dispatch_to_the_extension(monkeypatch):
    ext = MirrorExtension()

    def fake_choose(op, impl, x, cuda_ok=True, why=None):
        _impl.record(op, "cuda")
        return ext

    monkeypatch.setattr(_impl, "choose", fake_choose)
    x = torch.randn(1, 2, 4, 4)
    bias_act(x, torch.zeros(2), act="lrelu")
    upfirdn2d(x, setup_filter([1, 3, 3, 1]), up=2, padding=[2, 1, 2, 1])
    composite(torch.rand(2, 3, 3), torch.randn(2, 3), torch.sort(torch.rand(2, 3))[0])
    assert {"bias_act_forward", "upfirdn2d_forward", "composite_forward"} <= set(ext.calls)
    assert impl_report() == {"bias_act": "cuda", "composite": "cuda", "upfirdn2d": "cuda"}


def test_cpu_tensors_always_take_ref(monkeypatch):
    def must_not_build(explicit=False):
        raise AssertionError("a CPU tensor must never trigger a build")

    monkeypatch.setattr(_build, "get_extension", must_not_build)
    x = torch.randn(2, 3)
    torch.testing.assert_close(bias_act(x, impl="cuda"), x)  # impl="cuda" on CPU: documented fallback to ref
    upfirdn2d(torch.randn(1, 1, 3, 3), None, impl="cuda")
    assert impl_report() == {"bias_act": "ref", "upfirdn2d": "ref"}
    bias_act(x, impl="ref")
    assert impl_report()["bias_act"] == "ref"


def test_report_marks_mixed_use():
    _impl.record("upfirdn2d", "cuda")
    _impl.record("upfirdn2d", "ref")
    assert impl_report() == {"upfirdn2d": "cuda+ref"}


def _failing_build(calls):
    def build(verbose=False):
        calls.append(1)
        raise OpsBuildError("building the CUDA ops failed: nvcc exploded")
    return build


def test_failed_build_warns_once_and_falls_back(monkeypatch):
    calls = []
    monkeypatch.delenv(_build.STRICT_ENV, raising=False)
    monkeypatch.setattr(_build, "build_extension", _failing_build(calls))
    cuda_like = SimpleNamespace(is_cuda=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _impl.choose("bias_act", "auto", cuda_like) is None
        assert _impl.choose("upfirdn2d", "auto", cuda_like) is None
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "nvcc exploded" in messages[0] and "reference" in messages[0]
    assert calls == [1]  # built (tried) once per process
    assert impl_report() == {"bias_act": "ref", "upfirdn2d": "ref"}
    assert _build.ops_status()["state"] == "failed"


def test_failed_build_is_fatal_when_strict_or_explicit(monkeypatch):
    monkeypatch.setattr(_build, "build_extension", _failing_build([]))
    cuda_like = SimpleNamespace(is_cuda=True)
    with pytest.raises(OpsBuildError, match="nvcc exploded"):
        _impl.choose("bias_act", "cuda", cuda_like)
    monkeypatch.setenv(_build.STRICT_ENV, "1")
    with pytest.raises(OpsBuildError, match="THREEDGP_STRICT_OPS"):
        _impl.choose("bias_act", "auto", cuda_like)


def test_successful_build_is_cached_in_process(monkeypatch):
    ext = MirrorExtension()
    calls = []
    monkeypatch.setattr(_build, "build_extension", lambda verbose=False: calls.append(1) or ext)
    cuda_like = SimpleNamespace(is_cuda=True)
    assert _impl.choose("composite", "auto", cuda_like) is ext
    assert _impl.choose("composite", "cuda", cuda_like) is ext
    assert _impl.choose("composite", "ref", cuda_like) is None
    assert calls == [1]
    assert impl_report() == {"composite": "cuda+ref"}


def test_build_refuses_clearly_on_cpu_torch(monkeypatch):
    if torch.version.cuda is not None:
        pytest.skip("this torch is a CUDA build")  # pragma: no cover - the CPU CI venv runs it
    with pytest.raises(OpsBuildError, match="CPU-only build"):
        _build.build_extension()


def test_bias_act_cuda_dispatch_gets_the_swish_default_gain(monkeypatch):
    """The kernel has no gain table: the public op must hand it the resolved default gain sqrt(2) for swish."""
    ext = MirrorExtension()
    seen = []
    forward = ext.bias_act_forward

    def spy(x, b, dim, act, alpha, gain, clamp):
        seen.append(gain)
        return forward(x, b, dim, act, alpha, gain, clamp)

    ext.bias_act_forward = spy
    monkeypatch.setattr(_impl, "choose", lambda op, impl, x, cuda_ok=True, why=None: ext)
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    b = torch.randn(3, dtype=torch.float64)
    got = bias_act(x, b, act="swish")
    assert seen == [pytest.approx(2 ** 0.5)]
    torch.testing.assert_close(got, torch.nn.functional.silu(x + b[None, :, None]) * 2 ** 0.5)
