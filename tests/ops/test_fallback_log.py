"""A CUDA call that falls back to the reference path says so, once, in the log (issue 18 row 10).

A kernel that refuses its inputs (a bf16 feature map with a float32 bias) used to run the slow reference path with
no trace but the ``impl_report``. CPU tensors are routed through the CUDA decision as in test_selfcheck.py.
"""
from __future__ import annotations

import logging
import warnings

import pytest
import torch

from stages.common.errors import OpsBuildError
from stages.ops import _build, _impl, bias_act, composite, impl_report


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    _build.reset()
    _impl.reset_report()
    monkeypatch.delenv(_build.STRICT_ENV, raising=False)
    monkeypatch.setattr(_impl, "_is_cuda", lambda x: True)
    yield
    _build.reset()
    _impl.reset_report()


def _fallbacks(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "reference" in r.getMessage()]


def test_a_refused_dtype_mix_is_logged_once(caplog):
    x, b = torch.randn(2, 4, 3, 3, dtype=torch.bfloat16), torch.randn(4)
    with caplog.at_level(logging.WARNING, logger="stages.ops"):
        bias_act(x, b, act="lrelu")
        bias_act(x, b, act="lrelu")
    assert _fallbacks(caplog) == ["bias_act: the CUDA kernel does not cover x torch.bfloat16 with bias torch.float32; "
                                  "running the slow reference implementation"]
    assert impl_report() == {"bias_act": "ref"}


def test_each_op_and_cause_is_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="stages.ops"):
        bias_act(torch.randn(2, 4, dtype=torch.bfloat16), torch.randn(4))
        bias_act(torch.randn(2, 4, dtype=torch.float16), torch.randn(4))
        bias_act(torch.randn(2, 4, dtype=torch.bfloat16), torch.randn(4))  # the same cause again
        t = torch.linspace(0.8, 1.2, 6).expand(5, 6)
        composite(torch.randn(5, 6, 3), torch.randn(5, 6, dtype=torch.float64), t)
    messages = _fallbacks(caplog)
    assert [m.split(":")[0] for m in messages] == ["bias_act", "bias_act", "composite"]
    assert "rgb torch.float32, sigma torch.float64, t torch.float32" in messages[2]


def test_harmless_refusals_are_quiet(caplog):
    with caplog.at_level(logging.WARNING, logger="stages.ops"):
        bias_act(torch.randn(0, 4), torch.randn(4), impl="auto")  # empty: nothing to compute
        bias_act(torch.randn(2, 4, dtype=torch.bfloat16), torch.randn(4), impl="ref")  # asked for the reference
    assert _fallbacks(caplog) == []


def test_a_failed_build_is_logged_too(monkeypatch, caplog):
    def fail():
        raise OpsBuildError("cannot build the CUDA ops: no CUDA toolkit found (nvcc)")

    monkeypatch.setattr(_build, "build_extension", fail)
    with caplog.at_level(logging.WARNING, logger="stages.ops"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bias_act(torch.randn(2, 4), torch.randn(4))
    assert any("no CUDA toolkit found" in m for m in _fallbacks(caplog))
