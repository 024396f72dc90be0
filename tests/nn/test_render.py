"""Volume rendering (3DGP ref §1.5, §1.6, §6.5)."""
from __future__ import annotations

import math

import pytest
import torch

from stages.nn import render as render_mod
from stages.nn.rays import make_rays
from stages.nn.render import cut_densities_below_quantile, render_rays, sample_pdf, stratified_samples

SPHERE_RADIUS = 0.2


def sphere_decode(points: torch.Tensor):
    """Opaque sphere of radius 0.2 at the origin: raw density +1e4 inside, -1e4 outside; rgb = (1, 0.5, -1)."""
    inside = points.norm(dim=-1) < SPHERE_RADIUS  # [B, N]
    sigma_raw = torch.where(inside, 1e4, -1e4).to(points.dtype)
    rgb = torch.tensor([1.0, 0.5, -1.0], dtype=points.dtype).expand(*points.shape[:2], 3)
    return rgb, sigma_raw


def _frontal(batch=1, fov=30.0):
    return torch.tensor([[0.0, math.pi / 2, 0.0, fov, 1.0, 0.0, math.pi / 2, 0.0]]).repeat(batch, 1)


def _analytic_sphere_depth(origins, dirs):
    """First intersection t of each ray with the sphere (nan where it misses), and the chord length."""
    b = (origins * dirs).sum(-1)
    c = origins.square().sum(-1) - SPHERE_RADIUS**2
    disc = b.square() - c
    root = disc.clamp(min=0).sqrt()
    return torch.where(disc > 0, -b - root, torch.nan), 2 * root


def test_stratified_samples_stay_in_their_strata():
    s = stratified_samples((3, 5), 8, generator=torch.Generator().manual_seed(0))  # [3, 5, 8]
    base = torch.linspace(0, 1, 8)
    mids = (base[1:] + base[:-1]) / 2
    lower, upper = torch.cat([base[:1], mids]), torch.cat([mids, base[-1:]])
    assert s.shape == (3, 5, 8)
    assert bool(((s >= lower) & (s <= upper)).all())
    assert bool((s[..., 1:] >= s[..., :-1]).all())


def test_sample_pdf_concentrates_on_heavy_bins():
    gen = torch.Generator().manual_seed(1)
    bins = torch.linspace(0, 1, 11).expand(2, 11)
    weights = torch.zeros(2, 10)
    weights[0, 3] = 1.0  # all mass in [0.3, 0.4]
    weights[1, 1], weights[1, 7] = 1.0, 3.0  # 1 : 3 between [0.1, 0.2] and [0.7, 0.8]
    samples = sample_pdf(bins, weights, 4000, generator=gen)
    assert samples.shape == (2, 4000)
    assert bool(((samples[0] >= 0.3) & (samples[0] <= 0.4)).all())
    in_first = ((samples[1] >= 0.1) & (samples[1] <= 0.2)).float().mean().item()
    in_second = ((samples[1] >= 0.7) & (samples[1] <= 0.8)).float().mean().item()
    assert in_first == pytest.approx(0.25, abs=0.03) and in_second == pytest.approx(0.75, abs=0.03)


def test_sample_pdf_with_uniform_weights_inverts_linearly():
    samples = sample_pdf(torch.linspace(0, 1, 5).expand(1, 5), torch.ones(1, 4), 20000,
                         generator=torch.Generator().manual_seed(2))
    hist = torch.histc(samples, bins=4, min=0, max=1) / samples.numel()
    torch.testing.assert_close(hist, torch.full((4,), 0.25), atol=0.015, rtol=0)


def test_sphere_renders_analytic_depth_and_unit_weights():
    camera = _frontal()
    origins, dirs = make_rays(camera, resolution=9)
    out = render_rays(sphere_decode, origins, dirs, generator=torch.Generator().manual_seed(3))
    assert out["rgb"].shape == (1, 81, 3) and out["depth"].shape == (1, 81, 1)
    assert out["weights"].shape == (1, 81, 64) and out["t"].shape == (1, 81, 64)
    centre = 40
    assert out["depth"][0, centre, 0].item() == pytest.approx(1.0 - SPHERE_RADIUS, abs=0.5 / 31)
    assert out["weight_sum"][0, centre, 0].item() == pytest.approx(1.0, abs=1e-4)
    torch.testing.assert_close(out["rgb"][0, centre], torch.tensor([1.0, 0.5, -1.0]), atol=1e-4, rtol=0)
    # every ray with a long enough chord hits at the analytic depth; the rest see nothing (weights ~ 0)
    t_hit, chord = _analytic_sphere_depth(origins[0], dirs[0])
    # (error bound: a surface just past a coarse sample, before the next bin midpoint, is missed by the fine
    # samples, so the depth lands up to one coarse stratum, 0.5 / 31 = 0.016, behind it)
    solid = chord > 0.05
    torch.testing.assert_close(out["depth"][0, solid, 0], t_hit[solid], atol=0.5 / 31, rtol=0)
    assert bool((out["weight_sum"][0, t_hit.isnan(), 0] < 1e-6).all())
    # importance samples cluster at the surface: at least the 32 fine ones lie within 0.02 of it
    near_surface = ((out["t"][0, centre] - (1.0 - SPHERE_RADIUS)).abs() < 0.02).sum().item()
    assert near_surface >= 32


def test_coarse_pass_uses_s_space_depths(monkeypatch):
    calls = []
    real = render_mod.composite

    def spy(rgb, sigma_raw, t, impl="auto"):
        calls.append((t.min().item(), t.max().item(), t.shape[-1]))
        return real(rgb, sigma_raw, t, impl=impl)

    monkeypatch.setattr(render_mod, "composite", spy)
    origins, dirs = make_rays(_frontal(), resolution=4)
    render_rays(sphere_decode, origins, dirs, num_coarse=8, num_fine=6, generator=torch.Generator().manual_seed(4))
    (lo_c, hi_c, n_c), (lo_f, hi_f, n_f) = calls
    assert 0.0 <= lo_c and hi_c <= 1.0 and n_c == 8  # [quirk] proposal weights in s-space
    assert 0.75 <= lo_f and hi_f <= 1.25 and n_f == 14  # final composite in t-space on merged samples


def test_cut_quantile_zeroes_the_lower_half():
    sigma = torch.arange(10.0).view(2, 5) - 5.0
    cut = cut_densities_below_quantile(sigma, 0.5)
    density = torch.nn.functional.softplus(cut)
    assert bool((density.flatten()[:5] == 0).all()) and bool((density.flatten()[5:] > 0).all())
    torch.testing.assert_close(cut.flatten()[5:], sigma.flatten()[5:], atol=0, rtol=0)
    assert cut_densities_below_quantile(sigma, 0.0) is sigma


def test_cut_quantile_in_render_empties_low_density_rays():
    def half_decode(points):  # left half of the world dense-ish, right half denser
        sigma_raw = torch.where(points[..., 0] < 0, -2.0, 3.0)
        return torch.zeros(*points.shape[:2], 3), sigma_raw

    origins, dirs = make_rays(_frontal(), resolution=4)
    out = render_rays(half_decode, origins, dirs, cut_quantile=0.5, generator=torch.Generator().manual_seed(5))
    depth = out["depth"].view(4, 4)
    assert bool((depth[:, :2] == 0).all())  # all densities cut -> depth 0 (NFS clamps this to the near plane)
    assert bool((depth[:, 2:] > 0.75).all())
    plain = render_rays(half_decode, origins, dirs, generator=torch.Generator().manual_seed(5))
    assert bool((plain["depth"].view(4, 4)[:, :2] > 0.75).all())


def test_chunked_render_matches_shapes_and_geometry():
    origins, dirs = make_rays(_frontal(batch=2), resolution=6)
    seen = []

    def counting_decode(points):
        seen.append(points.shape[1])
        return sphere_decode(points)

    out = render_rays(counting_decode, origins, dirs, num_coarse=16, num_fine=16, chunk_rays=10,
                      generator=torch.Generator().manual_seed(6))
    assert max(seen) == 10 * 16 and len(seen) == 2 * 4  # 4 chunks (10, 10, 10, 6) x 2 passes
    assert out["depth"].shape == (2, 36, 1) and out["t"].shape == (2, 36, 32)
    t_hit, chord = _analytic_sphere_depth(origins[0], dirs[0])
    solid = chord > 0.1
    torch.testing.assert_close(out["depth"][1, solid, 0], t_hit[solid], atol=0.5 / 15, rtol=0)


def test_density_noise_and_seeding():
    origins, dirs = make_rays(_frontal(), resolution=3)
    kw = dict(num_coarse=8, num_fine=8)
    a = render_rays(sphere_decode, origins, dirs, generator=torch.Generator().manual_seed(7), **kw)
    b = render_rays(sphere_decode, origins, dirs, generator=torch.Generator().manual_seed(7), **kw)
    torch.testing.assert_close(a["depth"], b["depth"], atol=0, rtol=0)

    def soft_decode(points):
        return torch.ones(*points.shape[:2], 3), torch.zeros(points.shape[:2])

    c = render_rays(soft_decode, origins, dirs, generator=torch.Generator().manual_seed(7), **kw)
    d = render_rays(soft_decode, origins, dirs, density_noise_std=1.0, generator=torch.Generator().manual_seed(7),
                    **kw)
    assert not torch.allclose(c["depth"], d["depth"])


def test_render_is_differentiable_wrt_camera():
    camera = torch.tensor([[0.1, 1.5, 0.0, 30.0, 1.0, 0.2, 1.4, 0.05]], requires_grad=True)

    def smooth_decode(points):
        sigma_raw = 10.0 * (0.15 - points.norm(dim=-1)) * 10
        rgb = torch.stack([points[..., 0], points[..., 1], points[..., 2]], dim=-1)
        return rgb, sigma_raw

    origins, dirs = make_rays(camera, resolution=4)
    out = render_rays(smooth_decode, origins, dirs, num_coarse=8, num_fine=8,
                      generator=torch.Generator().manual_seed(8))
    (out["rgb"].sum() + out["depth"].sum()).backward()
    assert torch.isfinite(camera.grad).all()
    assert camera.grad[0, 0] != 0 and camera.grad[0, 3] != 0


def test_bad_arguments_raise_value_errors():
    origins, dirs = make_rays(_frontal(), resolution=2)
    with pytest.raises(ValueError, match="cut_quantile"):
        render_rays(sphere_decode, origins, dirs, cut_quantile=1.0)
    with pytest.raises(ValueError, match="ray_start"):
        render_rays(sphere_decode, origins, dirs, ray_start=1.3)
    with pytest.raises(ValueError, match="num_coarse"):
        render_rays(sphere_decode, origins, dirs, num_coarse=2)


@pytest.mark.gpu
def test_cuda_composite_matches_reference_inside_the_renderer():
    camera = _frontal(batch=2).cuda()
    origins, dirs = make_rays(camera, resolution=16)
    outs = [
        render_rays(sphere_decode, origins, dirs, density_noise_std=0.3, composite_impl=impl,
                    generator=torch.Generator(device="cuda").manual_seed(9))
        for impl in ("ref", "cuda")
    ]
    for key in ("rgb", "depth", "weights", "t"):
        torch.testing.assert_close(outs[0][key], outs[1][key], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("q", [0.1, 0.5, 0.73])
def test_cut_quantile_agrees_with_torch_quantile(q):
    sigma = torch.randn(3, 50, 7, generator=torch.Generator().manual_seed(10))
    density = torch.nn.functional.softplus(sigma)
    expected_cut = density < torch.quantile(density.flatten(), q)
    cut = cut_densities_below_quantile(sigma, q)
    assert torch.equal(torch.nn.functional.softplus(cut) == 0, expected_cut)


def test_num_fine_zero_composites_coarse_samples_in_t_space(monkeypatch):
    """Deliberate deviation (module docstring): with num_fine=0 the only composite is in t-space, world units.

    The official code would composite these in s-space (depth in [0, 1]); keep ours, do not "fix" it.
    """
    calls = []
    real = render_mod.composite

    def spy(rgb, sigma_raw, t, impl="auto"):
        calls.append((t.min().item(), t.max().item(), t.shape[-1]))
        return real(rgb, sigma_raw, t, impl=impl)

    monkeypatch.setattr(render_mod, "composite", spy)
    origins, dirs = make_rays(_frontal(), resolution=5)
    out = render_rays(sphere_decode, origins, dirs, num_coarse=48, num_fine=0,
                      generator=torch.Generator().manual_seed(4))
    ((lo, hi, n),) = calls
    assert 0.75 <= lo and hi <= 1.25 and n == 48
    assert out["depth"][0, 12, 0].item() == pytest.approx(1.0 - SPHERE_RADIUS, abs=0.5 / 47 + 1e-4)
