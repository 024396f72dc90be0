"""The prep stage: ``run(PrepConfig) -> PrepResult`` builds an LMDB dataset from a source (3DGP ref §7).

Importing this package is light (no torch): the pipeline and its models load inside :func:`run`.
"""
from __future__ import annotations

from stages.prep.config import SOURCES, PrepConfig, PrepResult

__all__ = ["SOURCES", "PrepConfig", "PrepResult", "run"]


def run(cfg: PrepConfig) -> PrepResult:
    """Build, resume or confirm the dataset ``cfg`` describes (see :mod:`stages.prep.pipeline`)."""
    from stages.prep.pipeline import run_prep

    return run_prep(cfg)
