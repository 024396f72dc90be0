"""One item of the toy dataset: image, ground-truth depth, imitated estimated depth, label and scene record."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stages.common.errors import BadOptionError
from stages.prep.toy.depth_imitation import imitate_monocular_depth
from stages.prep.toy.render import render_scene
from stages.prep.toy.sampling import sample_scene, scene_meta

MIN_RESOLUTION = 8
SCENE_KINDS = ("full", "simple")  # `3dgp prep toy --scenes` (stages.prep.toy.simple)


@dataclass
class ToyItem:
    """A rendered toy scene (issue 3, source 1). Depths are larger = farther (3DGP ref §3.3)."""

    image: np.ndarray                    # [R, R, 3] uint8
    depth_gt: np.ndarray                 # [R, R] float32 Euclidean distance from the camera along each pixel's ray
    depth_est: np.ndarray                # [R, R] float32 relative depth imitating a monocular estimator, > 0
    label: int                           # index into TOY_CLASSES
    meta: dict = field(default_factory=dict)  # JSON-friendly: class, camera, object pose, colours, light, backdrop
    object_mask: np.ndarray | None = None     # [R, R] float32 fraction of each pixel covered by the object


def render_toy_item(seed: int, index: int, resolution: int, scenes: str = "full") -> ToyItem:
    """Render item ``index`` of the toy dataset with ``seed`` at ``resolution``² (deterministic); ``scenes`` is
    ``full`` (:func:`sample_scene`) or ``simple`` (:func:`stages.prep.toy.simple.sample_simple_scene`).

    The scene depends only on (seed, index, scenes), so the same item at two resolutions shows the same scene.
    """
    if resolution < MIN_RESOLUTION:
        raise BadOptionError("--resolution", f"the toy renderer needs at least {MIN_RESOLUTION} pixels, got {resolution}")
    if scenes == "simple":
        from stages.prep.toy.simple import sample_simple_scene

        scene = sample_simple_scene(seed, index)
    elif scenes == "full":
        scene = sample_scene(seed, index)
    else:
        raise ValueError(f"scenes: expected one of {SCENE_KINDS}, got {scenes!r}")
    view = render_scene(scene, resolution)
    est_rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), 0xDE9])
    depth_est, est_info = imitate_monocular_depth(view.depth, view.image, view.object_mask, est_rng)
    meta = scene_meta(scene)
    meta.update(seed=int(seed), index=int(index), scenes=scenes, resolution=int(resolution), depth_est=est_info,
                depth_gt_range=[float(view.depth.min()), float(view.depth.max())])
    return ToyItem(image=view.image, depth_gt=view.depth, depth_est=depth_est, label=scene.shape.label, meta=meta,
                   object_mask=view.object_mask)
