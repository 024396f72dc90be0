"""Instance selection with one full-covariance Gaussian on Inception features (3DGP ref §7.2)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from stages.common.errors import BadOptionError
from stages.prep.selection import gaussian_log_likelihood, select_instances, select_per_class


def _inliers_and_outliers(num_inliers=190, num_outliers=10, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim))
    inliers = rng.normal(size=(num_inliers, dim)) @ mixing + 3.0  # correlated Gaussian
    directions = rng.normal(size=(num_outliers, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    outliers = 3.0 + 8.0 * directions @ mixing  # ~8 sigma out along random directions
    features = np.concatenate([inliers, outliers])
    order = rng.permutation(len(features))
    is_outlier = np.arange(len(features)) >= num_inliers
    return features[order], is_outlier[order]


def test_log_likelihood_matches_scipy():
    features, _ = _inliers_and_outliers()
    mean = features.mean(axis=0)
    covariance = np.cov(features, rowvar=False, bias=True) + 1e-3 * np.eye(features.shape[1])
    expected = multivariate_normal(mean, covariance).logpdf(features)
    np.testing.assert_allclose(gaussian_log_likelihood(features, reg_covar=1e-3), expected, rtol=1e-9)


def test_outliers_are_dropped_first():
    features, is_outlier = _inliers_and_outliers()
    kept = select_instances(features, keep_ratio=0.95)  # keep exactly 190 of 200
    assert kept.dtype == np.int64 and np.all(np.diff(kept) > 0)
    np.testing.assert_array_equal(kept, np.flatnonzero(~is_outlier))
    kept_half = select_instances(features, keep_ratio=0.5)
    assert len(kept_half) == 100 and not is_outlier[kept_half].any()


def test_counts_and_edge_cases():
    features = np.random.default_rng(1).normal(size=(7, 3))
    assert len(select_instances(features, 0.5)) == 3  # floor(7 * 0.5)
    assert len(select_instances(features, 0.01)) == 1  # at least one
    np.testing.assert_array_equal(select_instances(features, 1.0), np.arange(7))
    assert select_instances(features[:0], 0.5).shape == (0,)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(BadOptionError, match="--keep-ratio"):
            select_instances(features, bad)


def test_fewer_images_than_feature_dims():
    features = np.abs(np.random.default_rng(2).normal(size=(40, 2048))).astype(np.float32)  # like pool3 features
    features[5] += 3.0  # one atypical image
    kept = select_instances(features, keep_ratio=0.9, reg_covar=1e-5)
    assert len(kept) == 36 and 5 not in kept


def test_per_class_keeps_floor_of_each_class():
    rng = np.random.default_rng(3)
    sizes = {0: 10, 1: 25, 2: 7, 5: 1}
    labels = rng.permutation(np.concatenate([np.full(n, c) for c, n in sizes.items()]))
    features = rng.normal(size=(len(labels), 4)) + labels[:, None] * 10.0
    kept = select_per_class(features, labels, keep_ratio=0.5)
    assert np.all(np.diff(kept) > 0)
    counts = {c: int(np.sum(labels[kept] == c)) for c in sizes}
    assert counts == {0: 5, 1: 12, 2: 3, 5: 1}


def test_per_class_selects_within_each_class():
    a, a_out = _inliers_and_outliers(seed=4)
    b, b_out = _inliers_and_outliers(seed=5)
    features = np.concatenate([a, b + 100.0])  # two far-apart classes: a global fit would be useless
    labels = np.repeat([0, 1], len(a))
    kept = select_per_class(features, labels, keep_ratio=0.95)
    is_outlier = np.concatenate([a_out, b_out])
    np.testing.assert_array_equal(kept, np.flatnonzero(~is_outlier))
