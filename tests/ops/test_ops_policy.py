"""``THREEDGP_OPS`` decides which ops ``impl="auto"`` may run on the CUDA extension (first H200 run: the CUDA ops
made the imagenet step slower at fp32, so the user must be able to choose). CPU tensors are routed through the
CUDA decision as in test_selfcheck.py; the extension loader is replaced by a recorder that builds nothing."""
from __future__ import annotations

import json

import pytest
import torch

from stages.common.errors import ThreeDGPError
from stages.ops import _build, _impl, bias_act, composite, impl_report


@pytest.fixture
def asked(monkeypatch):
    """The ops for which the CUDA extension was asked (the loader answers None: the reference path runs)."""
    calls: list[bool] = []
    _build.reset()
    _impl.reset_report()
    monkeypatch.setattr(_impl, "_is_cuda", lambda x: True)
    monkeypatch.setattr(_build, "get_extension", lambda explicit=False: calls.append(explicit))
    yield calls
    _impl.reset_report()


def _run_both():
    bias_act(torch.randn(2, 4), torch.randn(4))
    t = torch.linspace(0.8, 1.2, 6).expand(5, 6)
    composite(torch.randn(5, 6, 3), torch.randn(5, 6), t)


@pytest.mark.parametrize("policy,expected", [(None, 2), ("auto", 2), ("cuda", 2), ("ref", 0), ("none", 0),
                                             ("composite", 1), (" Bias_Act , composite ", 2)])
def test_the_policy_decides_what_auto_asks_for(monkeypatch, asked, policy, expected):
    if policy is None:
        monkeypatch.delenv(_impl.POLICY_ENV, raising=False)
    else:
        monkeypatch.setenv(_impl.POLICY_ENV, policy)
    _run_both()
    assert len(asked) == expected
    assert impl_report() == {"bias_act": "ref", "composite": "ref"}  # the loader built nothing


def test_an_explicit_cuda_request_is_not_narrowed(monkeypatch, asked):
    monkeypatch.setenv(_impl.POLICY_ENV, "ref")
    bias_act(torch.randn(2, 4), torch.randn(4), impl="cuda")
    assert asked == [True]


def test_an_unknown_op_is_one_clear_error(monkeypatch, asked, run_cli):
    monkeypatch.setenv(_impl.POLICY_ENV, "composite,upfirdn")
    with pytest.raises(ThreeDGPError, match=r"THREEDGP_OPS=composite,upfirdn: unknown op upfirdn \(expected auto"):
        bias_act(torch.randn(2, 4), torch.randn(4))
    code, out, err = run_cli("doctor", "--json")
    assert code == 1 and "THREEDGP_OPS=composite,upfirdn: unknown op upfirdn" in err and "Traceback" not in err


def test_doctor_reports_the_policy(monkeypatch, run_cli):
    monkeypatch.setenv(_impl.POLICY_ENV, "upfirdn2d,composite")
    code, out, _ = run_cli("doctor", "--json")
    assert code == 0
    assert json.loads(out)["ops"]["cuda_policy"] == ["upfirdn2d", "composite"]
