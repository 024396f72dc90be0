"""``ExportRequest`` checks its fields on construction, naming the option (issue 20 §3): no snapshot, no files."""
from __future__ import annotations

import dataclasses

import pytest

from stages.common.errors import BadOptionError
from stages.export.pipeline import ExportRequest


@pytest.mark.parametrize("change, message", [
    ({"grid": False}, "--video: nothing to export: add --video, --grid, --mesh FORMAT and/or --report"),
    ({"video_format": "avi"}, "--format: expected mp4 or gif, got 'avi'"),
    ({"video_kind": "x"}, "--video-kind: expected one of rgb, depth, both, got 'x'"),
    ({"volume": "npy"}, "--volume: the density volume is written with a mesh: add --mesh obj|ply|glb"),
    ({"fps": 0}, "--fps: must be in [1, 120], got 0"),
    ({"grid_views": 1.5}, "--grid-views: expected int, got 1.5"),
    ({"truncation": float("inf")}, "--truncation: must be finite, got inf"),
    ({"level": 0.0}, "--level: must be a finite density > 0, got 0"),
    ({"seeds": "3-1"}, "--seeds: bad seed range '3-1': the end is before the start"),
    ({"ckpt": " "}, "CKPT: must not be empty"),
])
def test_bad_fields_are_one_line_naming_the_option(change, message):
    good = ExportRequest(ckpt="run", outdir="out", grid=True)
    with pytest.raises(BadOptionError) as info:
        dataclasses.replace(good, **change)
    assert str(info.value) == message


def test_a_good_request_keeps_its_values():
    req = ExportRequest(ckpt="run", outdir="out", video=True, mesh="glb", volume="mrc", truncation=1, frames=8)
    assert req.truncation == 1.0 and isinstance(req.truncation, float) and req.frames == 8
