"""CUDA ops verify themselves against the reference on first use (issue 12 §1), tested on CPU with kernel mirrors."""
from __future__ import annotations

import warnings

import pytest
import torch

from _kernel_mirror import MirrorExtension
from stages.common.errors import OpsBuildError
from stages.ops import _build, _impl, bias_act, composite, impl_report, selfcheck, upfirdn2d
from stages.ops.bias_act import bias_act_ref
from stages.ops.upfirdn2d import setup_filter


class WrongBiasAct(MirrorExtension):
    """A kernel that builds but computes a wrong value (1 % too large)."""

    def bias_act_forward(self, *args):
        return super().bias_act_forward(*args) * 1.01


class WrongCompositeGrad(MirrorExtension):
    """Forward right, backward wrong: only the gradient check can catch it."""

    def composite_backward(self, *args):
        d_rgb, d_sigma, d_t = super().composite_backward(*args)
        return d_rgb, d_sigma * 0.5, d_t


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    _build.reset()
    _impl.reset_report()
    selfcheck.reset()
    monkeypatch.delenv(_build.STRICT_ENV, raising=False)
    monkeypatch.setattr(_impl, "_is_cuda", lambda x: True)  # route CPU tensors through the "CUDA" path
    yield
    _build.reset()
    _impl.reset_report()
    selfcheck.reset()


def _use(monkeypatch, ext):
    monkeypatch.setattr(_build, "get_extension", lambda explicit=False: ext)


def test_correct_kernels_pass_and_are_used(monkeypatch):
    ext = MirrorExtension()
    _use(monkeypatch, ext)
    x = torch.randn(2, 4, 3, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bias_act(x, torch.randn(4), act="lrelu")
        upfirdn2d(x, setup_filter([1, 3, 3, 1]), up=2, padding=(2, 1, 2, 1))
        composite(torch.randn(5, 6, 3), torch.randn(5, 6), torch.linspace(0.8, 1.2, 6).expand(5, 6))
    rep = selfcheck.report()
    assert set(rep) == {"bias_act", "upfirdn2d", "composite"}
    assert all(r["passed"] and r["max_error"] < 1e-5 for r in rep.values())
    assert impl_report() == {"bias_act": "cuda", "composite": "cuda", "upfirdn2d": "cuda"}


def test_a_wrong_kernel_is_caught_once_and_the_reference_runs(monkeypatch):
    _use(monkeypatch, WrongBiasAct())
    x, b = torch.randn(2, 4, 3, 3), torch.randn(4)
    with pytest.warns(RuntimeWarning, match=r"bias_act failed its self-check on cpu \(max relative error"):
        y = bias_act(x, b, act="lrelu")
    torch.testing.assert_close(y, bias_act_ref(x, b, act="lrelu"))  # the reference ran
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, not at every call
        bias_act(x, b, act="lrelu")
    assert selfcheck.report()["bias_act"]["passed"] is False
    assert impl_report()["bias_act"] == "ref"


def test_a_wrong_gradient_is_caught(monkeypatch):
    _use(monkeypatch, WrongCompositeGrad())
    with pytest.warns(RuntimeWarning, match="composite failed its self-check"):
        composite(torch.randn(5, 6, 3), torch.randn(5, 6), torch.linspace(0.8, 1.2, 6).expand(5, 6))
    assert selfcheck.report()["composite"]["max_error"] > 0.01


def test_strict_mode_fails_instead(monkeypatch):
    _use(monkeypatch, WrongBiasAct())
    monkeypatch.setenv(_build.STRICT_ENV, "1")
    with pytest.raises(OpsBuildError, match="bias_act failed its self-check"):
        bias_act(torch.randn(2, 4), torch.randn(4))
