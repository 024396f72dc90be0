"""FID and KID from detector statistics (3DGP ref §6.2, §6.4): the one implementation eval and train use."""
from __future__ import annotations

import numpy as np


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)), real part of scipy's sqrtm (3DGP ref §6.2)."""
    import scipy.linalg

    diff = np.square(mu1 - mu2).sum()
    covmean = scipy.linalg.sqrtm(np.dot(sigma1, sigma2))
    if not np.isfinite(covmean).all():  # near-singular product: regularise like pytorch-fid
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    fid = diff + np.trace(sigma1 + sigma2 - 2.0 * np.real(covmean))
    return float(max(np.real(fid), 0.0))


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
