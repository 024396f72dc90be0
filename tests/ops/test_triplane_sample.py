"""The tri-plane sampler's CPU kernel against its grid_sample reference, its build cache and its fallbacks
(issue 21 §1)."""
from __future__ import annotations

import warnings

import pytest
import torch

from stages.common.errors import OpsBuildError
from stages.ops import _cpu_build, _impl
from stages.ops import triplane_sample as ts


@pytest.fixture()
def fresh_build(tmp_path, monkeypatch):
    """An empty kernel cache and a forgotten build attempt (restored afterwards)."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "cache"))
    _cpu_build.reset()
    yield tmp_path / "cache"
    _cpu_build.reset()


def _inputs(batch=3, num=400, feat=16, res=9, seed=0, channels_last=False):
    gen = torch.Generator().manual_seed(seed)
    planes = torch.randn(batch, 3, feat, res, res, generator=gen)
    if channels_last:  # the backbone's layout: [B, 3F, R, R] channels-last viewed as [B, 3, F, R, R]
        planes = planes.reshape(batch, 3 * feat, res, res).contiguous(memory_format=torch.channels_last)
        planes = planes.view(batch, 3, feat, res, res)
    points = (torch.rand(batch, num, 3, generator=gen) * 2.6 - 1.3) * 0.5  # inside and outside the cube
    grad = torch.randn(batch, num, feat, generator=gen)
    return planes, points, grad


def _run(impl, planes, points, grad, cube_scale=0.5):
    p, q = planes.detach().clone().requires_grad_(True), points.detach().clone().requires_grad_(True)
    out = ts.sample_triplane(p, q, cube_scale, impl=impl)
    out.backward(grad)
    return out.detach(), p.grad, q.grad


@pytest.mark.parametrize("feat,batch,channels_last,cube_scale", [
    (16, 3, False, 0.5), (8, 2, True, 0.5), (32, 1, False, 0.7), (16, 4, True, 0.25)])
def test_kernel_equals_reference(feat, batch, channels_last, cube_scale, cpu_kernels):
    planes, points, grad = _inputs(batch=batch, feat=feat, channels_last=channels_last)
    torch.set_num_threads(2)  # several ranges of points / (image, plane) pairs at once
    kernel = _run("auto", planes, points, grad, cube_scale)
    assert _impl.impl_report()["triplane_sample"].startswith("cpu")
    ref = _run("ref", planes, points, grad, cube_scale)
    for got, want in zip(kernel, ref):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert kernel[0].abs().sum() > 0 and kernel[2].abs().sum() > 0  # not vacuous


def test_texel_centres_and_outside_points_exact():
    """At a texel centre the sample IS the texel (bilinear weight 1); beyond the cube every plane reads zero."""
    planes = torch.arange(3 * 8 * 5 * 5, dtype=torch.float32).reshape(1, 3, 8, 5, 5)
    centre = torch.tensor([[[-0.5, 0.25, 0.0], [2.0, 2.0, 2.0]]])  # x -> column 0, y -> row 3, z -> row/col 2
    feats = ts.sample_triplane(planes, centre, 0.5)
    want = (planes[0, 0, :, 3, 0] + planes[0, 1, :, 2, 0] + planes[0, 2, :, 2, 3]) / 3
    torch.testing.assert_close(feats[0, 0], want)
    assert torch.equal(feats[0, 1], torch.zeros(8))


def test_thread_count_does_not_change_results():
    planes, points, grad = _inputs(batch=4, num=1000)
    torch.set_num_threads(1)
    one = _run("auto", planes, points, grad)
    torch.set_num_threads(2)
    two = _run("auto", planes, points, grad)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_second_order_gradients_follow_the_reference():
    """A create_graph backward is recomputed through grid_sample, so higher derivatives stay exact."""
    planes, points, grad = _inputs(batch=2, num=200)
    results = []
    for impl in ("auto", "ref"):
        p, q = planes.clone().requires_grad_(True), points.clone().requires_grad_(True)
        out = ts.sample_triplane(p, q, impl=impl)
        (gq,) = torch.autograd.grad((out * grad).sum(), q, create_graph=True)
        gq.square().sum().backward()
        results.append((p.grad, q.grad))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want)


def test_other_inputs_take_the_reference():
    planes, points, _ = _inputs(feat=12)  # not a multiple of 8
    _impl.reset_report()
    ts.sample_triplane(planes, points)
    ts.sample_triplane(planes.double(), points.double())
    assert _impl.impl_report()["triplane_sample"] == "ref"
    with pytest.raises(ValueError, match="impl"):
        ts.sample_triplane(planes, points, impl="cuda")


def test_build_is_cached_and_reused(fresh_build, monkeypatch, cpu_kernels):
    lib = _cpu_build.get_library()
    assert lib is not None
    built = list(fresh_build.glob("threedgp_cpu-*/" + _cpu_build.LIB_NAME))
    assert len(built) == 1
    assert not list(fresh_build.glob(".threedgp_cpu-*"))  # no temporary folder or lock left behind
    _cpu_build.reset()
    monkeypatch.setattr(_cpu_build, "_compile", lambda *a: pytest.fail("compiled again instead of loading the cache"))
    assert _cpu_build.get_library() is not None
    assert _cpu_build.status()["state"] == "loaded"


def test_no_compiler_falls_back_with_one_warning(fresh_build, monkeypatch):
    monkeypatch.setattr(_cpu_build, "find_compiler", lambda: None)
    planes, points, grad = _inputs()
    with pytest.warns(RuntimeWarning, match="no C compiler found.*reference"):
        fallback = _run("auto", planes, points, grad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per process
        ts.sample_triplane(planes, points)
    for got, want in zip(fallback, _run("ref", planes, points, grad)):
        assert torch.equal(got, want)
    monkeypatch.setenv("THREEDGP_STRICT_OPS", "1")
    with pytest.raises(OpsBuildError, match="no C compiler"):
        ts.sample_triplane(planes, points)


def test_compiler_error_is_named(fresh_build, monkeypatch, tmp_path):
    broken = tmp_path / "cc"
    broken.write_text("#!/bin/sh\necho 'cpu_kernels.c:1: error: simulated failure' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    monkeypatch.setenv("THREEDGP_STRICT_OPS", "1")
    with pytest.raises(OpsBuildError, match="simulated failure"):
        _cpu_build.get_library()
    assert not list(fresh_build.glob("threedgp_cpu-*/*"))  # nothing half-built was published


def test_disabled_by_environment(fresh_build, monkeypatch):
    monkeypatch.setenv(_cpu_build.ENABLE_ENV, "0")
    monkeypatch.setattr(_cpu_build, "build_library", lambda: pytest.fail("built although disabled"))
    _impl.reset_report()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ts.sample_triplane(*_inputs()[:2])
    assert _impl.impl_report()["triplane_sample"] == "ref"


def test_selfcheck_rejects_a_wrong_kernel(fresh_build, monkeypatch, cpu_kernels):
    real = _cpu_build.build_library()

    class Wrong:  # forward writes nothing useful: the self-check must catch it
        threedgp_triplane_backward = real.threedgp_triplane_backward

        @staticmethod
        def threedgp_triplane_forward(*args):
            real.threedgp_triplane_forward(*args)
            ctypes_memset_zero(args[2], args[3] * 8 * args[5])

    assert ts.selfcheck(real) is None
    assert "forward differs" in ts.selfcheck(Wrong())
    monkeypatch.setattr(_cpu_build, "build_library", lambda: Wrong())
    monkeypatch.setenv("THREEDGP_STRICT_OPS", "1")
    with pytest.raises(OpsBuildError, match="self-check"):
        _cpu_build.get_library()


def ctypes_memset_zero(ptr: int, count: int) -> None:
    """Zero ``count`` floats at ``ptr`` (only the first image's features: enough to be wrong)."""
    import ctypes

    ctypes.memset(ptr, 0, 4 * count)
