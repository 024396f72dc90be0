"""The metrics stage: every metric 3dgp reports, used by ``3dgp train`` (periodic), ``3dgp eval`` and prep's
instance selection (3DGP ref §6, §7.2). Nothing else keeps a copy.

* :mod:`.registry`: metric names -> :class:`~.registry.MetricSpec` (kind, sample count, what it needs).
* :mod:`.resize`, :mod:`.detector`: the StyleGAN3 TF-Inception detector and its two resize modes.
* :mod:`.features`: :class:`~.features.FeatureStats`, streaming feature statistics (FID/KID).
* :mod:`.frechet`: FID and KID arithmetic. :mod:`.inception_score`: IS from Inception logits.
* :mod:`.nfs`: the non-flatness score (ref §6.5-6.6). :mod:`.geometry`: multi-view consistency, depth realism,
  camera posterior statistics.
* :mod:`.sources`: fakes from a generator or an image set, reals from a dataset (un-mirrored), with cached real
  statistics. :mod:`.compute`: one function that evaluates a list of specs over those sources.
"""
from stages.metrics.features import FeatureStats
from stages.metrics.frechet import frechet_distance, kernel_inception_distance
from stages.metrics.nfs import non_flatness_scores
from stages.metrics.registry import KINDS, MetricSpec, parse_metric, parse_metric_list

__all__ = ["FeatureStats", "frechet_distance", "kernel_inception_distance", "non_flatness_scores", "KINDS",
           "MetricSpec", "parse_metric", "parse_metric_list"]
