"""Export: meshes, videos and the HTML report of a trained generator (3DGP ref §8).

Entry point: ``run(ExportRequest) -> ExportResult`` (:mod:`stages.export.pipeline`; importing this package is light,
the pipeline and torch load inside :func:`run`).

Modules:
  trajectories  camera trajectories around the mean posterior camera (front_circle, wiggle, line, points, orbit)
  media         render views with one tri-plane per sample; depth colour map; mp4/gif videos, video and PNG grids
  mesh          density grid -> marching cubes -> obj/ply/glb meshes
  pipeline      ``3dgp export``: samples, videos, grids, meshes and the report of one snapshot
  report        the self-contained ``report.html`` of a run
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stages.export.pipeline import ExportRequest, ExportResult

__all__ = ["run"]


def run(request: ExportRequest) -> ExportResult:
    """Export what ``request`` asks for (see :func:`stages.export.pipeline.run`)."""
    from stages.common.allocator import tune_glibc_malloc
    from stages.common.cpu_share import apply_threads
    from stages.export.pipeline import run as export

    apply_threads(None)  # $THREEDGP_THREADS (make demo: auto), else torch's default
    tune_glibc_malloc()  # big temporaries stay in the heap (stages.common.allocator)
    return export(request)
