"""NFS exactly as ref §6.5-6.6 (hand-computed values, the official chunking, the quantile cut) and the fakes source."""
from __future__ import annotations

import math

import pytest
import torch

from stages.metrics.nfs import non_flatness_scores
from stages.metrics.sources import GeneratorSource, nfs_chunk_rays
from stages.nn.render import cut_densities_below_quantile


def test_two_plane_depth_gives_the_hand_computed_score():
    depth = torch.full([1, 1, 16, 16], 0.8)
    depth[..., 12:, :] = 1.2  # a quarter of the pixels on a far plane
    p = torch.tensor([0.75, 0.25])
    expected = math.exp(-(p * torch.log(p)).sum().item())  # 1.7548
    assert non_flatness_scores(depth).item() == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(1.7548, abs=1e-4)
    beyond = depth.clone()
    beyond[..., :2, :] = 3.0  # beyond the far plane clamps into the last bin, like empty rays into the first
    assert non_flatness_scores(beyond).item() > expected


def test_official_chunk_size():
    assert nfs_chunk_rays(4, 32) == 43_690  # floor(2^24 / (4 * 32 * 3)), ref §6.5 step 2
    assert nfs_chunk_rays(4, 64) == 21_845


def test_quantile_cut_matches_a_direct_implementation():
    gen = torch.Generator().manual_seed(0)
    for shape in ([4, 100, 48], [2, 7, 5], [1, 3000, 64]):
        sigma_raw = torch.randn(shape, generator=gen) * 3
        out = cut_densities_below_quantile(sigma_raw, 0.5)
        density = torch.nn.functional.softplus(sigma_raw)
        threshold = torch.quantile(density.flatten(), 0.5)  # linear interpolation over the whole chunk tensor
        cut = density < threshold
        assert torch.equal(out[~cut], sigma_raw[~cut])
        assert (torch.nn.functional.softplus(out[cut]) == 0).all()
        assert cut.float().mean().item() == pytest.approx(0.5, abs=1.0 / density.numel() + 1e-6)


class _SpyG:
    """Records what the source asks of the generator; returns constant outputs."""

    z_dim, c_dim, img_resolution, num_coarse_steps, ray_start, ray_end = 4, 0, 8, 32, 0.75, 1.25

    def __init__(self):
        self.calls = []
        self.mapping = lambda z, c, truncation_psi=1.0, w_center=None: z[:, None, :]

    def camera_posterior(self, prior, z, c):
        return prior

    def synthesis(self, ws, camera, noise_mode="random", generator=None, **kw):
        self.calls.append({"batch": ws.shape[0], "camera": camera.clone(), **kw})
        b = ws.shape[0]
        return {"img": torch.zeros(b, 3, 8, 8), "depth": torch.full([b, 1, 8, 8], 1.0), "depth_adapted": None}


def _source():
    from stages.nn.camera_prior import CameraPrior

    return GeneratorSource(_SpyG(), CameraPrior(), None, "cpu", seed=3)


def test_nfs_renders_frontal_cameras_in_official_chunks():
    src = _source()
    depths = list(src.nfs_depths(10))
    assert [d.shape[0] for d in depths] == [4, 4, 2]  # 4 images per chunk
    call = src.G.calls[0]
    assert call["cut_quantile"] == 0.5 and call["chunk_rays"] == 43_690
    assert torch.all(call["camera"][:, 0] == 0) and torch.allclose(call["camera"][:, 1], torch.full([4], math.pi / 2))
    assert call["camera"][:, 3].std() > 0  # FoV still from the prior


def test_sample_inputs_do_not_depend_on_n_or_the_part():
    a, b = _source(), _source()
    first = a.inputs_range("images", 0, 150)
    again = torch.cat([inp.z for inp, _ in b.batches("images", 70)])
    assert torch.equal(first.z[:70], again)
    assert torch.equal(torch.cat([inp.z for inp, _ in b.batches("images", range(64, 72))]), first.z[64:72])
    assert torch.equal(a.inputs_range("images", 60, 70).camera_prior, first.camera_prior[60:70])
    assert not torch.equal(a.inputs_range("nfs", 0, 4).z, first.z[:4])  # streams are independent


def test_the_generator_runs_on_aligned_units_of_four_and_the_detector_on_batches_of_32():
    """Float kernels are not batch-invariant, so the units are fixed: sample i is rendered with the same three
    neighbours and seen by the detector in the same batch, whichever part of the samples a process computes."""
    src = _source()
    batches = [b.shape[0] for b in src.images(range(32, 75))]
    assert batches == [32, 11] and [c["batch"] for c in src.G.calls] == [4] * 10 + [3]
    with pytest.raises(AssertionError):
        next(src.images(range(4, 8)))  # a part must start on a detector batch
    gens = [g for _, g in src.batches("mvc", range(8, 13))]
    assert [len(g) for g in gens] == [4, 1]  # one render generator per sample


def test_nfs_card_reports_the_share_of_pixels_the_density_cut_emptied():
    from stages.metrics.compute import compute_metrics
    from stages.metrics.context import MetricContext
    from stages.metrics.registry import MetricSpec

    class _HalfEmptyG(_SpyG):
        def synthesis(self, ws, camera, noise_mode="random", generator=None, **kw):
            out = super().synthesis(ws, camera, noise_mode, generator, **kw)
            out["depth"][:, :, :2] = 0.0  # 2 of 8 rows: rays the cut emptied (depth 0)
            out["depth"][:, :, 2:3] = 0.5  # 1 row: thinned below the near plane
            return out

    src = GeneratorSource(_HalfEmptyG(), _source().prior, None, "cpu", seed=3)
    ctx = MetricContext(src, detector_loader=lambda: None, progress=False)
    (result,) = compute_metrics([MetricSpec("nfs8", "nfs", 8)], ctx)
    assert result.details["empty_ray_fraction"] == pytest.approx(3 / 8)
    p = torch.tensor([3 / 8, 5 / 8])  # near-plane bin and the depth-1.0 bin
    assert result.value == pytest.approx(math.exp(-(p * torch.log(p)).sum().item()), rel=1e-5)


def test_fakes_stay_on_the_generator_device_for_the_detector():
    """Issue 18 row 8: fakes are not copied to the host and back between the generator and the detector ("meta"
    stands for a GPU)."""

    class _MetaG(_SpyG):
        def synthesis(self, ws, camera, noise_mode="random", generator=None, **kw):
            b = ws.shape[0]
            return {"img": torch.zeros(b, 3, 8, 8, device="meta"), "depth": torch.ones(b, 1, 8, 8, device="meta"),
                    "depth_adapted": None}

    src = GeneratorSource(_MetaG(), _source().prior, None, "cpu", seed=3)
    batches = list(src.images(40))
    assert [b.shape[0] for b in batches] == [32, 8] and all(b.device.type == "meta" for b in batches)
    assert all(d.device.type == "meta" for d in src.depths(8))
