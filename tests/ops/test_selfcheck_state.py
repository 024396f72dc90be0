"""The ops self-check judges the kernel, not its caller's state, and never saves a failure (issue 18 row 11).

The first op call usually happens inside the generator's bf16 autocast; there the reference convolution of
upfirdn2d ran in bf16 and a correct kernel failed its check, a verdict then saved for every later run. Tested on CPU
with the kernel mirror, as in test_selfcheck.py.
"""
from __future__ import annotations

import json
import warnings

import pytest
import torch

from _kernel_mirror import MirrorExtension
from stages.ops import _build, _impl, selfcheck


class WrongBiasAct(MirrorExtension):
    """A kernel that builds but computes a wrong value (1 % too large)."""

    def bias_act_forward(self, *args):
        return super().bias_act_forward(*args) * 1.01


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    _build.reset()
    _impl.reset_report()
    selfcheck.reset()
    monkeypatch.delenv(_build.STRICT_ENV, raising=False)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(_build, "build_key", lambda: "build")
    (tmp_path / "build").mkdir()
    yield
    _build.reset()
    _impl.reset_report()
    selfcheck.reset()


def _loaded(ext):
    """Pretend ``ext`` is the built extension, so verdicts go to the disk cache beside it."""
    _build._state.update(tried=True, module=ext)
    return _build.cache_root() / "build" / "selfcheck-cpu.json"


def _saved(path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def test_correct_kernels_pass_under_the_callers_bf16_autocast():
    disk = _loaded(MirrorExtension())
    with warnings.catch_warnings(), torch.autocast("cpu", dtype=torch.bfloat16):
        warnings.simplefilter("error")  # no "failed its self-check" warning
        results = selfcheck.verify_all(_build._state["module"], "cpu")
    assert {op: r["passed"] for op, r in results.items()} == {op: True for op in selfcheck.OPS}
    assert all(r["max_error"] < 1e-5 for r in results.values())  # float32 maths, not bf16
    assert {op: r["passed"] for op, r in _saved(disk).items()} == {op: True for op in selfcheck.OPS}


def test_the_check_runs_outside_the_callers_inference_mode():
    _loaded(MirrorExtension())
    with torch.inference_mode():
        assert selfcheck.verify("composite", _build._state["module"], "cpu") is True


def test_a_failure_is_not_saved():
    disk = _loaded(WrongBiasAct())
    with pytest.warns(RuntimeWarning, match="bias_act failed its self-check"):
        assert selfcheck.verify("bias_act", _build._state["module"], "cpu") is False
    assert "bias_act" not in _saved(disk)


def test_a_saved_failure_is_checked_again():
    disk = _loaded(MirrorExtension())
    old = {"passed": False, "max_error": 3.9e-3, "device": "cpu", "problem": "max relative error 3.90e-03 > 0.001"}
    disk.write_text(json.dumps({"upfirdn2d": old}))  # what an earlier 3dgp saved under bf16 autocast
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert selfcheck.verify("upfirdn2d", _build._state["module"], "cpu") is True
    assert selfcheck.report()["upfirdn2d"]["source"] == "checked"
    assert _saved(disk)["upfirdn2d"]["passed"] is True
