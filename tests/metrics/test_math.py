"""FID/KID maths, streaming feature statistics and the non-flatness score (3DGP ref §6.2, §6.4, §6.5)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stages.common.errors import BadOptionError
from stages.metrics import FeatureStats, frechet_distance, kernel_inception_distance, non_flatness_scores, \
    parse_metric, parse_metric_list
from stages.metrics.frechet import fid_from_stats


def test_feature_stats_match_numpy_and_round_trip(tmp_path):
    x = np.random.RandomState(0).randn(50, 6)
    stats = FeatureStats(capture_all=True)
    stats.append(x[:20])
    stats.append(torch.from_numpy(x[20:]))
    mean, cov = stats.mean_cov()
    np.testing.assert_allclose(mean, x.mean(0), atol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False, bias=True), atol=1e-12)  # biased, ref §6.2
    stats.save(tmp_path / "s.npz")
    back = FeatureStats.load(tmp_path / "s.npz")
    np.testing.assert_allclose(back.mean_cov()[1], cov, atol=1e-12)
    assert back.all_features().shape == (50, 6)
    capped = FeatureStats(max_items=30)
    capped.append(x)
    assert capped.num_items == 30 and capped.is_full


def test_fid_golden_values():
    x = np.random.RandomState(1).randn(200, 4)
    s = FeatureStats()
    s.append(x)
    assert fid_from_stats(s, s) == pytest.approx(0.0, abs=1e-6)
    # Diagonal Gaussians: |mu1-mu2|^2 + sum (s1 + s2 - 2 sqrt(s1 s2)).
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 9.0])
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(5.0 + 1.0 + 1.0 + 0.0)


@pytest.mark.parametrize("n1, n2", [(400, 500), (12, 30)])
def test_fid_trace_term_equals_scipy_sqrtm(n1, n2):
    """The eigendecomposition form of Tr(sqrtm(S1 S2)) against the official scipy sqrtm (real part), on full-rank and
    on rank-deficient statistics (fewer samples than features)."""
    import scipy.linalg

    rng = np.random.default_rng(3)
    mix = rng.normal(size=(64, 64)) / 8
    a, b = rng.normal(size=(n1, 64)) @ mix + 0.5, rng.normal(size=(n2, 64)) @ mix
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False, bias=True), np.cov(b, rowvar=False, bias=True)
    official = float(np.square(mu1 - mu2).sum() + np.trace(s1 + s2 - 2.0 * np.real(scipy.linalg.sqrtm(s1 @ s2))))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(official, rel=1e-9 if n1 > 64 else 1e-6)


def test_kid_is_zero_for_identical_sets_and_positive_for_shifted():
    x = np.random.RandomState(2).randn(300, 8).astype(np.float32)
    same = kernel_inception_distance(x, x, num_subsets=20, max_subset_size=100)
    shifted = kernel_inception_distance(x + 1.0, x, num_subsets=20, max_subset_size=100)
    assert shifted > 1.0 and abs(same) < shifted / 20  # unbiased MMD^2: ~0 for one distribution


def test_nfs_golden_values():
    flat = torch.full([1, 1, 8, 8], 1.0)
    assert non_flatness_scores(flat).item() == pytest.approx(1.0)
    # 64 pixels, one per bin centre -> uniform histogram -> exp(H) = 64.
    centres = 0.75 + (torch.arange(64) + 0.5) / 64 * 0.5
    uniform = centres.view(1, 1, 8, 8)
    assert non_flatness_scores(uniform).item() == pytest.approx(64.0, rel=1e-5)
    # Empty rays (depth 0) count as the near plane: two bins of 32 pixels -> 2.
    two = torch.cat([torch.zeros(32), torch.full([32], 1.2)]).view(1, 1, 8, 8)
    assert non_flatness_scores(two).item() == pytest.approx(2.0, rel=1e-5)


def test_metric_names():
    assert parse_metric("fid2k").num_gen == 2000
    assert parse_metric("fid2k_full").num_gen == 2048  # the official fixed size
    assert parse_metric("fid50k_full").num_gen == 50000
    assert parse_metric("nfs256").kind == "nfs" and not parse_metric("nfs256").lower_is_better
    assert parse_metric("kid1k").needs_detector and parse_metric("kid1k").needs_reals
    assert parse_metric("is50k").kind == "is" and not parse_metric("is50k").needs_reals
    kid = parse_metric("KID")
    assert kid.num_gen is None and kid.resolved(300).num_gen == 300 and kid.resolved().num_gen == 2048
    assert parse_metric("nfs32").resolved(300).num_gen == 32  # the name's size wins
    assert [s.name for s in parse_metric_list("fid2k_full, kid,mvc,depth,fid2k_full")] == \
        ["fid2k_full", "kid", "mvc", "depth"]
    with pytest.raises(BadOptionError, match="--metrics: unknown metric 'fidd'"):
        parse_metric("fidd")
    with pytest.raises(BadOptionError, match="--metrics: no metric given"):
        parse_metric_list(" , ")
