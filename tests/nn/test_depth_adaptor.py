"""Depth adaptor (3DGP ref §3.1, §3.2, §13, §14)."""
from __future__ import annotations

import math

import pytest
import torch

from stages.nn.depth_adaptor import DepthAdaptor, normalize_depth


def _depth(batch=2, size=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return 0.75 + 0.5 * torch.rand(batch, 1, size, size, generator=gen)  # [B, 1, H, W] world units


def test_parameter_count_matches_the_reference():
    assert sum(p.numel() for p in DepthAdaptor().parameters()) == 206658


def test_near_plane_offset_at_init():
    adaptor = DepthAdaptor()
    offset = adaptor.near_plane_offset().item()
    assert offset == pytest.approx(0.125 / (1 + math.exp(3.0)), rel=1e-6)
    assert offset == pytest.approx(0.0059, abs=5e-5)
    near = 0.75 + offset  # ~0.756: the normalised range starts there
    assert near == pytest.approx(0.756, abs=5e-4)
    ends = adaptor.candidates(torch.tensor([near, 1.25]).view(1, 1, 1, 2))[0, 0, 0, 0]
    torch.testing.assert_close(ends, torch.tensor([-1.0, 1.0]), atol=1e-6, rtol=0)


def test_normalize_depth_maps_planes_to_unit_range():
    d = torch.tensor([0.75, 1.0, 1.25])
    torch.testing.assert_close(normalize_depth(d, 0.75, 1.25), torch.tensor([-1.0, 0.0, 1.0]))


@pytest.mark.parametrize("progress,expected", [
    (0.0, [0.25, 0.25, 0.25, 0.25]),
    (1.0, [0.1, 0.2, 0.3, 0.4]),
    (0.5, [0.175, 0.225, 0.275, 0.325]),
    (7.0, [0.1, 0.2, 0.3, 0.4]),  # clamped to 1
])
def test_selection_probabilities(progress, expected):
    adaptor = DepthAdaptor()
    adaptor.set_progress(progress)
    torch.testing.assert_close(adaptor.selection_probs(), torch.tensor(expected))


def test_eval_returns_the_last_candidate():
    torch.manual_seed(0)
    adaptor = DepthAdaptor().eval()
    depth = _depth()
    out = adaptor(depth)
    candidates = adaptor.candidates(depth)  # [B, 4, 1, H, W]
    assert candidates.shape == (2, 4, 1, 8, 8) and out.shape == (2, 1, 8, 8)
    torch.testing.assert_close(out, candidates[:, -1], atol=0, rtol=0)
    near = 0.75 + adaptor.near_plane_offset()
    torch.testing.assert_close(candidates[:, 0], 2 * (depth - (1.25 + near) / 2) / (1.25 - near + 1e-12))


def test_training_selects_per_sample_with_the_annealed_probabilities():
    torch.manual_seed(0)
    adaptor = DepthAdaptor(hid_dim=4).train()
    adaptor.set_progress(1.0)
    depth = _depth(batch=4000, size=2)
    out = adaptor(depth, generator=torch.Generator().manual_seed(1))  # [B, 1, 2, 2]
    candidates = adaptor.candidates(depth)  # [B, 4, 1, 2, 2]
    match = (out.unsqueeze(1) == candidates).flatten(2).all(-1)  # [B, 4]
    assert bool(match.any(1).all())
    freq = match.float().argmax(1).bincount(minlength=4).float() / 4000
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.2, 0.3, 0.4]), atol=0.025, rtol=0)
    again = adaptor(depth, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, again, atol=0, rtol=0)


def test_fixed_probabilities_and_disabled_adaptor():
    depth = _depth()
    raw_only = DepthAdaptor(fixed_p=(1.0, 0.0, 0.0, 0.0)).train()
    torch.testing.assert_close(raw_only(depth), raw_only.candidates(depth)[:, 0], atol=0, rtol=0)
    disabled = DepthAdaptor(enabled=False).train()
    assert sum(p.numel() for p in disabled.parameters()) == 1
    torch.testing.assert_close(disabled(depth), disabled.candidates(depth)[:, 0], atol=0, rtol=0)
    with pytest.raises(ValueError, match="depth_fixed_p"):
        DepthAdaptor(fixed_p=(0.5, 0.5))


def test_progress_is_a_checkpointed_buffer_and_rho_gets_gradients():
    adaptor = DepthAdaptor(hid_dim=4)
    adaptor.set_progress(0.3)
    state = adaptor.state_dict()
    assert state["progress"].item() == pytest.approx(0.3)
    clone = DepthAdaptor(hid_dim=4)
    clone.load_state_dict(state)
    assert clone.progress.item() == pytest.approx(0.3)
    clone.eval()(_depth()).sum().backward()
    assert clone.near_plane_offset_raw.grad is not None and clone.near_plane_offset_raw.grad.item() != 0


@pytest.mark.parametrize("p", [0.0, 0.5, 0.9, 1.0])
def test_ablation_probability_of_the_adapted_depth(p):
    # Issue 10: --depth-adaptor-p P = probability that D sees the adapted depth; 0.9 = the official end point.
    from stages.nn.depth_adaptor import adapted_depth_probs

    probs = adapted_depth_probs(p, 4)
    assert probs[0] == pytest.approx(1 - p) and sum(probs) == pytest.approx(1.0)
    if p == 0.9:
        assert probs == pytest.approx((0.1, 0.2, 0.3, 0.4))
    adaptor = DepthAdaptor().train()
    adaptor.fixed_p = probs
    depth = _depth().repeat(512, 1, 1, 1)[:512]
    cand = adaptor.candidates(depth)
    picked = adaptor(depth, generator=torch.Generator().manual_seed(0))
    raw = (picked == cand[:, 0]).flatten(1).all(1).float().mean().item()
    assert raw == pytest.approx(1 - p, abs=0.06)
    with pytest.raises(ValueError):
        adapted_depth_probs(1.5)
