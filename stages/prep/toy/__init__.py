"""The embedded synthetic toy dataset: labelled 3D shapes rendered with ground-truth and imitated estimated depth.

Public API (issue 3, source 1):
- ``TOY_CLASSES``: the class names; labels index this list.
- ``render_toy_item(seed, index, resolution) -> ToyItem``: one deterministic item.
- ``sample_scene(seed, index) -> ToyScene`` and ``render_scene(scene, resolution) -> RenderResult``: the two
  halves of ``render_toy_item``, for explicit scenes (tests, figures).
- ``toy_contact_sheet(items) -> PIL.Image``: images, GT depth and estimated depth side by side.
"""
from stages.prep.toy.item import ToyItem, render_toy_item
from stages.prep.toy.render import RenderResult, render_scene
from stages.prep.toy.sampling import sample_scene, scene_meta
from stages.prep.toy.scene import Backdrop, Camera, Light, ObjectPose, SurfaceLook, ToyScene
from stages.prep.toy.shapes import TOY_CLASSES, Primitive, Shape, sample_shape
from stages.prep.toy.sheet import toy_contact_sheet

__all__ = [
    "TOY_CLASSES", "ToyItem", "render_toy_item", "sample_scene", "scene_meta", "render_scene", "RenderResult",
    "ToyScene", "Camera", "ObjectPose", "SurfaceLook", "Light", "Backdrop", "Shape", "Primitive", "sample_shape",
    "toy_contact_sheet",
]
