"""Camera prior, camera adaptor and its regularizers (3DGP ref §2, §8.3, §13, §14)."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from stages.nn.camera import (
    EMD_WEIGHTS,
    PRIOR_PRESETS,
    CameraAdaptor,
    CameraPrior,
    camera_emd_loss,
    camera_emd_per_param,
    emd_1d_squared,
    force_mean_loss,
    mean_posterior_camera,
)
from stages.nn.inputs import sample_generator_inputs
from stages.nn.rays import (
    CAM_FOV, CAM_LA_PITCH, CAM_LA_RADIUS, CAM_LA_YAW, CAM_PITCH, CAM_RADIUS, CAM_ROLL, CAM_YAW,
)


def _num_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _assert_inside_box(cam: torch.Tensor, prior: CameraPrior):
    assert bool((cam[:, CAM_YAW] >= prior.yaw_min).all() and (cam[:, CAM_YAW] <= prior.yaw_max).all())
    assert bool((cam[:, CAM_PITCH] >= prior.pitch_min).all() and (cam[:, CAM_PITCH] <= prior.pitch_max).all())
    assert bool((cam[:, CAM_ROLL] == 0).all())
    assert bool((cam[:, CAM_FOV] >= prior.fov_min_deg).all() and (cam[:, CAM_FOV] <= prior.fov_max_deg).all())
    assert bool((cam[:, CAM_RADIUS] == prior.radius).all())
    assert bool((cam[:, CAM_LA_YAW].abs() <= math.pi + 1e-6).all())
    assert bool((cam[:, CAM_LA_PITCH] >= 0).all() and (cam[:, CAM_LA_PITCH] <= math.pi + 1e-6).all())
    la_r = cam[:, CAM_LA_RADIUS]
    assert bool((la_r >= prior.la_radius_min).all() and (la_r <= prior.la_radius_max + 1e-6).all())


# --- prior --------------------------------------------------------------------------------------------------


def test_prior_samples_inside_the_box_with_spherical_uniform_look_at():
    prior = CameraPrior()
    cam = prior.sample(20000, generator=torch.Generator().manual_seed(0))
    assert cam.shape == (20000, 8)
    _assert_inside_box(cam, prior)
    assert cam[:, CAM_YAW].mean().item() == pytest.approx(0.0, abs=0.03)
    assert cam[:, CAM_FOV].var().item() == pytest.approx(35.0**2 / 12, rel=0.05)  # uniform FoV
    cos_pitch = torch.cos(cam[:, CAM_LA_PITCH])  # spherical-uniform: cos(la_pitch) ~ U[-1, 1]
    assert cos_pitch.mean().item() == pytest.approx(0.0, abs=0.02)
    assert cos_pitch.var().item() == pytest.approx(1 / 3, rel=0.05)


def test_prior_sampling_is_seeded():
    a = CameraPrior().sample(5, generator=torch.Generator().manual_seed(3))
    b = CameraPrior().sample(5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("kw", [{}, {"angle_dist": "truncnorm", "fov_dist": "truncnorm", "yaw_std": 0.3,
                                       "pitch_std": 0.2, "fov_std_deg": 3.0, "fov_mean_deg": 15.0},
                                {"pitch_min": 0.2, "pitch_max": 1.5, "la_radius_max": 0.05}])
def test_prior_columns_are_the_inverse_cdfs_of_one_uniform_draw(kw):
    """Bitwise the column-by-column definition of ref §2.2 on the [B, 6] uniform draw (the sampler computes the
    uniform columns in one multiply-add)."""
    from stages.nn.camera_prior import _truncnorm_icdf

    prior = CameraPrior(**kw)
    cam = prior.sample(257, generator=torch.Generator().manual_seed(11))
    u = torch.rand(257, 6, generator=torch.Generator().manual_seed(11))
    if prior.angle_dist == "uniform":
        yaw = prior.yaw_min + u[:, 0] * (prior.yaw_max - prior.yaw_min)
        pitch = prior.pitch_min + u[:, 1] * (prior.pitch_max - prior.pitch_min)
    else:
        yaw = _truncnorm_icdf(u[:, 0], 0.0, prior.yaw_std, prior.yaw_min, prior.yaw_max)
        pitch_mid = (prior.pitch_min + prior.pitch_max) / 2  # [quirk] the range mid-point, not a mean
        pitch = _truncnorm_icdf(u[:, 1], pitch_mid, prior.pitch_std, prior.pitch_min, prior.pitch_max)
    if prior.fov_dist == "uniform":
        fov = prior.fov_min_deg + u[:, 2] * (prior.fov_max_deg - prior.fov_min_deg)
    else:
        fov = _truncnorm_icdf(u[:, 2], prior.fov_mean_deg, prior.fov_std_deg, prior.fov_min_deg, prior.fov_max_deg)
    expected = torch.zeros(257, 8)
    expected[:, CAM_YAW], expected[:, CAM_PITCH] = yaw, pitch.clamp(1e-5, math.pi - 1e-5)
    expected[:, CAM_FOV], expected[:, CAM_RADIUS] = fov, prior.radius
    expected[:, CAM_LA_YAW] = -math.pi + u[:, 3] * (2 * math.pi)
    expected[:, CAM_LA_PITCH] = torch.arccos(1.0 - 2.0 * u[:, 4].clamp(1e-5, 1.0 - 1e-5))
    expected[:, CAM_LA_RADIUS] = prior.la_radius_min + u[:, 5] * (prior.la_radius_max - prior.la_radius_min)
    assert torch.equal(cam, expected)


def test_truncnorm_angles_centre_on_the_range_midpoint():
    prior = CameraPrior(yaw_min=-0.5, yaw_max=1.5, angle_dist="truncnorm", yaw_std=0.3, pitch_std=0.2,
                        fov_dist="truncnorm", fov_mean_deg=15.0, fov_std_deg=2.0)
    cam = prior.sample(20000, generator=torch.Generator().manual_seed(1))
    assert cam[:, CAM_YAW].mean().item() == pytest.approx(0.5, abs=0.01)  # [quirk] mid-point, not a configured mean
    assert cam[:, CAM_YAW].std().item() == pytest.approx(0.3, rel=0.05)
    assert cam[:, CAM_PITCH].mean().item() == pytest.approx(math.pi / 2, abs=0.01)
    assert cam[:, CAM_FOV].mean().item() == pytest.approx(15.0, abs=0.1)  # bounded scalars use their mean
    assert bool((cam[:, CAM_YAW] >= -0.5).all() and (cam[:, CAM_YAW] <= 1.5).all())


def test_pitch_is_clamped_away_from_the_poles():
    cam = CameraPrior(pitch_min=0.0, pitch_max=math.pi).sample(1000, generator=torch.Generator().manual_seed(2))
    assert cam[:, CAM_PITCH].min().item() >= 1e-5 - 1e-7 and cam[:, CAM_PITCH].max().item() <= math.pi - 1e-5 + 1e-6


def test_prior_mean_camera_and_presets():
    torch.testing.assert_close(CameraPrior().mean_angles(), torch.tensor([0.0, math.pi / 2, 0.0]))
    mean = CameraPrior().mean_camera()
    torch.testing.assert_close(mean[:5], torch.tensor([0.0, math.pi / 2, 0.0, 27.5, 1.0]))
    torch.testing.assert_close(mean[5:], torch.tensor([0.0, math.pi / 2, 0.1]))  # look-at near the origin
    assert PRIOR_PRESETS["narrow_fov"].fov_max_deg == 21.0 and PRIOR_PRESETS["default"] == CameraPrior()


def test_prior_rejects_bad_ranges():
    with pytest.raises(ValueError, match="camera_fov"):
        CameraPrior(fov_min_deg=50.0)
    with pytest.raises(ValueError, match="camera_angle_dist"):
        CameraPrior(angle_dist="normal")


# --- adaptor ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("c_dim,total,origin,look_at", [(0, 149528, 68100, 81428), (1000, 189752, 88212, 101540)])
def test_adaptor_parameter_counts_match_the_reference(c_dim, total, origin, look_at):
    adaptor = CameraAdaptor(c_dim)
    assert (_num_params(adaptor), _num_params(adaptor.origin_adaptor), _num_params(adaptor.look_at_adaptor)) == (
        total, origin, look_at)
    assert _num_params(CameraAdaptor(c_dim, enabled=False)) == 0


@pytest.mark.parametrize("c_dim", [0, 7])
@pytest.mark.parametrize("logit_bias", [0.0, 1e3, -1e3])
def test_adaptor_output_stays_inside_the_prior_box(c_dim, logit_bias):
    torch.manual_seed(0)
    prior = CameraPrior()
    adaptor = CameraAdaptor(c_dim, z_dim=32, prior=prior)
    with torch.no_grad():  # push every logit to +-1e3 so the sigmoids saturate (stored bias = value / lr_mult)
        for fc in (adaptor.origin_adaptor.output_fc, adaptor.look_at_adaptor.output_fc):
            fc.bias.fill_(logit_bias / 0.1)
    inputs = sample_generator_inputs(256, 32, c_dim, prior, generator=torch.Generator().manual_seed(1))
    post = adaptor(inputs.camera_prior, inputs.z, inputs.c)
    assert post.shape == (256, 8) and torch.isfinite(post).all()
    _assert_inside_box(post, prior)
    if logit_bias > 0:
        torch.testing.assert_close(post[0], torch.tensor([1.57, prior.pitch_max - 1e-5, 0, 45, 1, math.pi, math.pi,
                                                          0.2]))
    elif logit_bias < 0:
        torch.testing.assert_close(post[0], torch.tensor([-1.57, prior.pitch_min + 1e-5, 0, 10, 1, -math.pi, 0,
                                                          0]))


def test_origin_ignores_z_but_look_at_uses_it():
    torch.manual_seed(0)
    adaptor = CameraAdaptor(0, z_dim=16)
    cam = CameraPrior().sample(8, generator=torch.Generator().manual_seed(0))
    a, b = adaptor(cam, torch.randn(8, 16)), adaptor(cam, torch.randn(8, 16))
    torch.testing.assert_close(a[:, :CAM_ROLL], b[:, :CAM_ROLL], atol=0, rtol=0)
    assert not torch.allclose(a[:, CAM_FOV], b[:, CAM_FOV])


def test_look_at_adaptor_receives_origin_logits_and_normalised_prior():
    torch.manual_seed(0)
    prior = CameraPrior()
    adaptor = CameraAdaptor(0, z_dim=8, prior=prior)
    seen = {}
    adaptor.origin_adaptor.register_forward_hook(lambda m, args, out: seen.update(origin_in=args[0], logits=out))
    adaptor.look_at_adaptor.register_forward_pre_hook(lambda m, args: seen.update(look_at_in=args[0]))
    cam = torch.tensor([[prior.yaw_min, prior.pitch_max, 0.0, 10.0, 1.0, 0.0, math.pi / 2, 0.2]])
    adaptor(cam, torch.randn(1, 8))
    torch.testing.assert_close(seen["origin_in"], torch.tensor([[0.0, 1.0, 0.0, 1.0]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(seen["look_at_in"][:, [0, 1, 2, 4]], seen["logits"], atol=0, rtol=0)
    torch.testing.assert_close(seen["look_at_in"][:, [3, 5, 6, 7]], torch.tensor([[0.0, 0.5, 0.5, 1.0]]),
                               atol=1e-6, rtol=0)


def test_la_radius_quirk_uses_the_look_at_pitch_minimum():
    prior = CameraPrior(la_radius_min=0.05)
    cam = prior.sample(4, generator=torch.Generator().manual_seed(0))
    z = torch.randn(4, 512)
    for quirk, expected in [(True, 0.0), (False, 0.05)]:
        adaptor = CameraAdaptor(0, prior=prior, la_radius_quirk=quirk)
        with torch.no_grad():  # la_r' -> -inf: la_radius = its lower bound
            adaptor.look_at_adaptor.output_fc.weight.zero_()
            adaptor.look_at_adaptor.output_fc.bias[3] = -1e3
        torch.testing.assert_close(adaptor(cam, z)[:, CAM_LA_RADIUS], torch.full((4,), expected))


def test_disabled_adaptor_is_a_passthrough():
    cam = CameraPrior().sample(3, generator=torch.Generator().manual_seed(0))
    assert CameraAdaptor(0, enabled=False)(cam, torch.randn(3, 512)) is cam


def test_mean_posterior_camera():
    prior = CameraPrior()
    torch.manual_seed(0)
    adaptor = CameraAdaptor(5, z_dim=16)
    a = mean_posterior_camera(adaptor, prior, 16, 5, n=256, generator=torch.Generator().manual_seed(0))
    b = mean_posterior_camera(adaptor, prior, 16, 5, n=256, generator=torch.Generator().manual_seed(0))
    assert a.shape == (8,) and a[CAM_RADIUS].item() == 1.0 and a[CAM_ROLL].item() == 0.0
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    fixed = mean_posterior_camera(CameraAdaptor(0, enabled=False), prior, 512, 0, n=1024,
                                  generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(fixed[:CAM_RADIUS + 1], prior.mean_camera()[:CAM_RADIUS + 1], atol=0.6,
                               rtol=0.01)  # yaw..radius; fov within 0.6 deg
    assert abs(fixed[CAM_YAW].item()) < 0.1 and abs(fixed[CAM_PITCH].item() - math.pi / 2) < 0.05


# --- regularizers -------------------------------------------------------------------------------------------


def test_emd_equals_sorted_closed_form_and_brute_force():
    gen = torch.Generator().manual_seed(0)
    q, p = torch.randn(6, generator=gen, dtype=torch.float64), torch.rand(6, generator=gen, dtype=torch.float64)
    closed = ((q.sort().values - p.sort().values) ** 2).mean()
    brute = min(((q - p[list(perm)]) ** 2).mean() for perm in itertools.permutations(range(6)))
    torch.testing.assert_close(emd_1d_squared(q, p), closed, atol=1e-15, rtol=0)
    torch.testing.assert_close(emd_1d_squared(q, p), brute, atol=1e-15, rtol=0)
    assert emd_1d_squared(q, q.flip(0)).item() == 0.0
    assert emd_1d_squared(q + 0.3, q).item() == pytest.approx(0.09, abs=1e-12)


def test_emd_gradient_matches_finite_differences():
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(7, generator=gen, dtype=torch.float64, requires_grad=True)
    p = torch.randn(7, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(emd_1d_squared, (q, p))


def test_camera_emd_loss_weights():
    prior = CameraPrior().sample(64, generator=torch.Generator().manual_seed(0))
    shift = torch.tensor([0.1, 0.0, 5.0, 10.0, 3.0, 0.0, 0.0, 0.0])  # yaw, roll (ignored), fov, radius (ignored)
    per_param = camera_emd_per_param(prior + shift, prior)
    torch.testing.assert_close(per_param, shift**2, atol=1e-5, rtol=1e-5)
    expected = 2.0 * 0.01 + 1e-4 * 100.0
    assert camera_emd_loss(prior + shift, prior).item() == pytest.approx(expected, rel=1e-4)
    assert EMD_WEIGHTS == (2.0, 2.0, 0.0, 1e-4, 0.0, 1e-4, 1e-4, 1e-4)
    collapsed = prior.clone()
    collapsed[:, CAM_YAW] = 0.0  # yaw collapse to a point costs ~ 2 Var(U[-1.57, 1.57]) ~ 1.64
    assert camera_emd_loss(collapsed, prior).item() == pytest.approx(2 * prior[:, CAM_YAW].square().mean().item())


def test_force_mean_loss_golden_value():
    post = torch.zeros(4, 8)
    post[:, CAM_YAW] = torch.tensor([0.0, 0.2, 0.1, 0.1])  # mean yaw 0.1
    post[:, CAM_PITCH] = math.pi / 2 + 0.2
    mean_angles = CameraPrior().mean_angles()
    expected = 10.0 * math.sqrt((0.1 + 1e-8) ** 2 + (0.2 + 1e-8) ** 2 + 1e-16)
    assert force_mean_loss(post, mean_angles).item() == pytest.approx(expected, rel=1e-5)
    centred = torch.zeros(2, 8)
    centred[:, CAM_PITCH] = math.pi / 2
    assert force_mean_loss(centred.double(), mean_angles).item() == pytest.approx(10 * math.sqrt(3) * 1e-8, rel=1e-3)


def test_residual_adaptor_starts_at_the_prior_and_learns_away_from_it():
    # Ours (measurements §1): the official adaptor collapses the prior at init; the residual one is the identity.
    prior = CameraPrior()
    cams = prior.sample(512, generator=torch.Generator().manual_seed(0))
    z = torch.randn(512, 32)
    official = CameraAdaptor(0, z_dim=32, hid_dim=32)
    residual = CameraAdaptor(0, z_dim=32, hid_dim=32, residual=True)
    assert sum(p.numel() for p in official.parameters()) == sum(p.numel() for p in residual.parameters())
    post = residual(cams, z)
    assert torch.allclose(post, cams, atol=2e-3)  # identity (up to the pitch eps and the logit clamp)
    assert official(cams, z)[:, CAM_YAW].std() < 0.3 * cams[:, CAM_YAW].std()  # the official init collapses
    # A few steps towards yaw + 0.3 move the posterior: the zero-initialised last layers do get gradients.
    opt = torch.optim.Adam(residual.parameters(), lr=0.05)
    for _ in range(20):
        loss = (residual(cams, z)[:, CAM_YAW] - (cams[:, CAM_YAW] + 0.3).clamp(max=1.5)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    moved = residual(cams, z)[:, CAM_YAW] - cams[:, CAM_YAW]
    assert moved.mean() > 0.1 and residual(cams, z)[:, CAM_YAW].std() > 0.5 * cams[:, CAM_YAW].std()
