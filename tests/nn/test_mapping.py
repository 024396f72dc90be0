"""Mapping network: parameter counts, w_avg, truncation, per-class mean w (3DGP ref §1.1, §8.2, §14)."""
from __future__ import annotations

import pytest
import torch

from stages.nn.mapping import MappingNetwork, truncate


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_param_counts_match_reference():
    with torch.device("meta"):
        dogs = MappingNetwork(z_dim=512, c_dim=0, w_dim=512, num_ws=16)
        imagenet = MappingNetwork(z_dim=512, c_dim=1000, w_dim=512, num_ws=16)
    assert _count(dogs) == 525_312
    assert _count(imagenet) == 1_299_968
    assert dogs.embed is None and imagenet.embed.weight.shape == (512, 1000)
    assert [layer.in_features for layer in imagenet.layers] == [1024, 512]


def test_output_shape_and_z_scale_invariance():
    torch.manual_seed(0)
    net = MappingNetwork(z_dim=8, c_dim=3, w_dim=6, num_ws=5)
    z = torch.randn(4, 8)
    c = torch.eye(3)[[0, 1, 2, 0]]
    ws = net(z, c)
    assert ws.shape == (4, 5, 6)
    torch.testing.assert_close(ws[:, 0], ws[:, 4])  # broadcast copies
    # Both z and the class embedding are normalized by their 2nd moment: rescaling them changes nothing.
    torch.testing.assert_close(net(z * 7.0, c * 3.0), ws, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ws[0], ws[3])  # same class, different z


def test_unconditional_accepts_none_or_empty_c():
    net = MappingNetwork(z_dim=8, c_dim=0, w_dim=6, num_ws=2)
    z = torch.randn(3, 8)
    torch.testing.assert_close(net(z, None), net(z, torch.zeros(3, 0)))


def test_w_avg_updates_only_with_update_emas():
    torch.manual_seed(1)
    net = MappingNetwork(z_dim=8, c_dim=0, w_dim=6, num_ws=2, w_avg_beta=0.5)
    z = torch.randn(10, 8)
    net(z, None)
    torch.testing.assert_close(net.w_avg, torch.zeros(6))
    ws = net(z, None, update_emas=True)
    torch.testing.assert_close(net.w_avg, 0.5 * ws[:, 0].mean(dim=0))  # lerp(mean, 0, 0.5)


def test_truncation_psi_zero_returns_w_avg_and_psi_half_lerps():
    torch.manual_seed(2)
    net = MappingNetwork(z_dim=8, c_dim=0, w_dim=6, num_ws=3)
    net.w_avg.copy_(torch.arange(6.0))
    z = torch.randn(4, 8)
    ws0 = net(z, None, truncation_psi=0.0)
    torch.testing.assert_close(ws0, net.w_avg.expand(4, 3, 6))
    ws1 = net(z, None)
    torch.testing.assert_close(net(z, None, truncation_psi=0.5), 0.5 * (ws1 + net.w_avg))
    cut = net(z, None, truncation_psi=0.0, truncation_cutoff=1)
    torch.testing.assert_close(cut[:, 0], net.w_avg.expand(4, 6))
    torch.testing.assert_close(cut[:, 1:], ws1[:, 1:])


def test_per_class_mean_w_and_truncation_centre():
    torch.manual_seed(3)
    net = MappingNetwork(z_dim=8, c_dim=4, w_dim=6, num_ws=2)
    c = torch.eye(4)[[1, 3]]
    w_mean = net.class_mean_w(c, num_samples=64, generator=torch.Generator().manual_seed(0))
    assert w_mean.shape == (2, 6)
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    manual = net(z, c[1:2].expand(64, 4))[:, 0].mean(dim=0)
    torch.testing.assert_close(w_mean[1], manual, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(w_mean[0], w_mean[1])  # the class matters
    ws = net(torch.randn(2, 8), c, truncation_psi=0.0, w_center=w_mean)
    torch.testing.assert_close(ws, w_mean.unsqueeze(1).expand(2, 2, 6))


def test_truncate_identity_at_psi_one():
    ws = torch.randn(2, 3, 4)
    assert truncate(ws, torch.zeros(4), 1.0) is ws


def test_w_avg_beta_none_builds_no_buffer_and_tracks_nothing():
    """The discriminator's mappings (official w_avg_beta=None): no w_avg, update_emas is a no-op (ref §4.2)."""
    torch.manual_seed(3)
    tracked = MappingNetwork(z_dim=0, c_dim=5, w_dim=6, num_ws=1)
    plain = MappingNetwork(z_dim=0, c_dim=5, w_dim=6, num_ws=1, w_avg_beta=None)
    assert "w_avg" in tracked.state_dict() and "w_avg" not in plain.state_dict()
    assert not hasattr(plain, "w_avg") and len(list(plain.buffers())) == 0
    assert _count(plain) == _count(tracked)  # buffers are not parameters
    c = torch.eye(5)[[0, 3]]
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    ws = plain(None, c, update_emas=True)
    assert ws.shape == (2, 1, 6)
    assert all(torch.equal(before[k], v) for k, v in plain.state_dict().items())
    # Truncation needs an explicit centre without w_avg.
    torch.testing.assert_close(plain(None, c, truncation_psi=0.0, w_center=torch.ones(6)), torch.ones(2, 1, 6))
    with pytest.raises(AssertionError, match="w_center"):
        plain(None, c, truncation_psi=0.5)


def test_old_state_dict_with_w_avg_loads_into_a_buffer_free_mapping():
    torch.manual_seed(4)
    old = MappingNetwork(z_dim=0, c_dim=5, w_dim=6, num_ws=1)
    new = MappingNetwork(z_dim=0, c_dim=5, w_dim=6, num_ws=1, w_avg_beta=None)
    new.load_state_dict(old.state_dict())  # strict: the stale w_avg is dropped, nothing else is missing
    c = torch.eye(5)[[1, 2]]
    torch.testing.assert_close(new(None, c), old(None, c))
