"""FID and KID from detector statistics (3DGP ref §6.2, §6.4): the one implementation eval and train use."""
from __future__ import annotations

import numpy as np


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr(sqrtm(S1 S2)) of two covariance matrices, by symmetric eigendecompositions.

    S1 S2 is similar to the symmetric positive semi-definite S1^1/2 S2 S1^1/2, so its eigenvalues are real and
    >= 0 and the trace of its principal square root (what scipy's ``sqrtm`` computes, the official code taking its
    real part) is the sum of their square roots. Two ``eigh``-type decompositions take about 1.6 s at 2048
    features against 10-11 s for ``sqrtm``'s Schur method on a 2-core CPU; the FIDs agree to 1e-11 relative on
    full-rank statistics and to 1e-7 on rank-deficient ones (fewer samples than features), where ``sqrtm`` itself
    is the less accurate (tests/metrics/test_math.py)."""
    w, v = np.linalg.eigh(sigma1)
    root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T  # S1^1/2
    product = root @ sigma2 @ root
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2.0)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)) (3DGP ref §6.2), the trace term by
    :func:`trace_sqrt_product`."""
    diff = np.square(mu1 - mu2).sum()
    fid = diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(max(fid, 0.0))


def kernel_inception_distance(feats_gen: np.ndarray, feats_real: np.ndarray, num_subsets: int = 100,
                              max_subset_size: int = 1000, seed: int = 0) -> float:
    """Unbiased MMD^2 with the cubic kernel (x.y/d + 1)^3 averaged over random subsets (3DGP ref §6.4)."""
    rng = np.random.RandomState(seed)
    n = feats_real.shape[1]
    m = min(min(feats_real.shape[0], feats_gen.shape[0]), max_subset_size)
    t = 0.0
    for _ in range(num_subsets):
        x = feats_gen[rng.choice(feats_gen.shape[0], m, replace=False)].astype(np.float64)
        y = feats_real[rng.choice(feats_real.shape[0], m, replace=False)].astype(np.float64)
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / num_subsets / m)


def fid_from_stats(gen, real) -> float:
    """FID between two :class:`stages.metrics.features.FeatureStats` (ref §6.2)."""
    mu_g, cov_g = gen.mean_cov()
    mu_r, cov_r = real.mean_cov()
    return frechet_distance(mu_g, cov_g, mu_r, cov_r)
