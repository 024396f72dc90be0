"""Instance selection: keep the images an Inception-feature Gaussian finds most typical (3DGP ref §7.2).

As in "Instance Selection for GANs" and 3DGP's ``run_instance_selection.py``: fit one full-covariance Gaussian to
the 2048-d Inception features (sklearn ``GaussianMixture(n_components=1, reg_covar)`` semantics: maximum-likelihood
mean and biased covariance plus ``reg_covar`` on the diagonal), score each image's log-likelihood and keep the top
``floor(N * keep_ratio)`` (at least one). ``select_per_class`` does this per class folder (``--subdir_wise``), as
used for ImageNet. Plain numpy; no sklearn.
"""
from __future__ import annotations

import logging
import math

import numpy as np

from stages.common.errors import BadOptionError

logger = logging.getLogger(__name__)

DEFAULT_REG_COVAR = 1e-5  # the ImageNet value of the official script (needed whenever N < feature dim)


def gaussian_log_likelihood(features: np.ndarray, reg_covar: float = DEFAULT_REG_COVAR) -> np.ndarray:
    """Fit one full-covariance Gaussian to ``features`` [N, D] and return each row's log-density, float64 [N]."""
    x = np.asarray(features, dtype=np.float64)
    assert x.ndim == 2 and len(x) > 0, f"expected [N, D] features, got {x.shape}"
    num, dim = x.shape
    centred = x - x.mean(axis=0, keepdims=True)  # [N, D]
    covariance = centred.T @ centred / num  # [D, D], maximum-likelihood (biased) estimate like sklearn
    covariance[np.diag_indices(dim)] += reg_covar
    try:
        chol = np.linalg.cholesky(covariance)  # covariance = L L^T
    except np.linalg.LinAlgError as exc:
        raise BadOptionError(
            "--reg-covar", f"covariance is singular with reg_covar={reg_covar:g}; use a larger value (e.g. 1e-5)"
        ) from exc
    from scipy.linalg import solve_triangular

    whitened = solve_triangular(chol, centred.T, lower=True)  # [D, N] = L^-1 (x - mu)
    mahalanobis = np.sum(whitened**2, axis=0)  # [N]
    log_det = 2.0 * np.sum(np.log(np.diag(chol)))
    return -0.5 * (dim * math.log(2.0 * math.pi) + log_det + mahalanobis)


def _check_ratio(keep_ratio: float) -> None:
    if not 0.0 < keep_ratio <= 1.0:
        raise BadOptionError("--keep-ratio", f"must be in (0, 1], got {keep_ratio}")


def _top_k(scores: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the ``keep`` highest scores (ties broken by index), returned sorted."""
    order = np.lexsort((np.arange(len(scores)), -scores))  # primary: score descending, then index ascending
    return np.sort(order[:keep])


def select_instances(
    features: np.ndarray,
    keep_ratio: float,
    reg_covar: float = DEFAULT_REG_COVAR,
) -> np.ndarray:
    """Indices (sorted, int64) of the ``max(1, floor(N * keep_ratio))`` most likely rows (3DGP ref §7.2).

    Args:
        features: float [N, 2048] Inception pool features (any [N, D] works).
        keep_ratio: fraction to keep, in (0, 1].
        reg_covar: added to the covariance diagonal (sklearn ``reg_covar``).
    """
    _check_ratio(keep_ratio)
    features = np.asarray(features)
    if len(features) == 0:
        return np.zeros(0, np.int64)
    keep = max(1, math.floor(len(features) * keep_ratio))
    if keep >= len(features):
        return np.arange(len(features), dtype=np.int64)
    return _top_k(gaussian_log_likelihood(features, reg_covar), keep).astype(np.int64)


def select_per_class(
    features: np.ndarray,
    labels: np.ndarray,
    keep_ratio: float,
    reg_covar: float = DEFAULT_REG_COVAR,
) -> np.ndarray:
    """Per-class instance selection (``--subdir_wise``, used for ImageNet; 3DGP ref §7.2).

    Each class c with n_c rows keeps its ``max(1, floor(n_c * keep_ratio))`` most likely rows under a Gaussian
    fitted to that class alone. Returns the kept global indices, sorted (int64).
    """
    _check_ratio(keep_ratio)
    features = np.asarray(features)
    labels = np.asarray(labels)
    assert len(features) == len(labels), f"{len(features)} feature rows but {len(labels)} labels"
    kept = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        local = select_instances(features[members], keep_ratio, reg_covar)
        kept.append(members[local])
        logger.debug("class %s: kept %d of %d", label, len(local), len(members))
    return np.sort(np.concatenate(kept)).astype(np.int64) if kept else np.zeros(0, np.int64)
