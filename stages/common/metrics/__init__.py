"""Metric maths shared by ``3dgp train`` (periodic metrics) and ``3dgp eval`` (3DGP ref §6).

* :mod:`.features`: :class:`FeatureStats`, streaming accumulation of detector features (mean/covariance in
  float64, optionally the raw features for KID), with save/load for the cached real statistics.
* :mod:`.frechet`: FID from two stats (ref §6.2) and KID from two feature sets (ref §6.4).
* :mod:`.nfs`: the Non-Flatness Score from raw depth maps (ref §6.5 steps 3-6).
* :mod:`.runner`: metric names (``fid2k``, ``kid1k``, ``nfs256`` ...), and the generic loops that feed generated and
  real images through a detector. They take callables (generate / detect), so they never import the model.
"""
from stages.common.metrics.features import FeatureStats
from stages.common.metrics.frechet import frechet_distance, kernel_inception_distance
from stages.common.metrics.nfs import non_flatness_scores
from stages.common.metrics.runner import MetricSpec, parse_metric

__all__ = ["FeatureStats", "frechet_distance", "kernel_inception_distance", "non_flatness_scores", "MetricSpec",
           "parse_metric"]
