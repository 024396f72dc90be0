"""The embedded toy dataset renderer (issue 3, source 1): determinism, geometry, depth conventions, depth imitation."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from stages.common.errors import BadOptionError
from stages.prep.toy import (TOY_CLASSES, Backdrop, Camera, Light, ObjectPose, Primitive, Shape, SurfaceLook,
                             ToyScene, render_scene, render_toy_item, sample_scene, sample_shape, toy_contact_sheet)
from stages.prep.toy.render import camera_rays


def _sphere_scene(fov_deg: float = 30.0) -> ToyScene:
    # A unit sphere centred 1 above the ground, seen level from 5 units away: analytic depths are easy.
    return ToyScene(
        shape=Shape("sphere", (Primitive("sphere", (1.0,)),)),
        pose=ObjectPose(position=(0.0, 1.0, 0.0)),
        material=SurfaceLook(),
        camera=Camera(look_at=(0.0, 1.0, 0.0), yaw_deg=0.0, pitch_deg=90.0, radius=5.0, fov_deg=fov_deg),
        light=Light(),
        backdrop=Backdrop(dome_radius=60.0),
    )


def _ray_sphere(origin, direction, centre, radius) -> float:
    rel = origin - centre
    b = direction @ rel
    return float(-b - math.sqrt(b * b - (rel @ rel - radius * radius)))


def test_item_shapes_dtypes_and_json_meta():
    item = render_toy_item(seed=7, index=3, resolution=32)
    assert item.image.shape == (32, 32, 3) and item.image.dtype == np.uint8
    assert item.depth_gt.shape == (32, 32) and item.depth_gt.dtype == np.float32
    assert item.depth_est.shape == (32, 32) and item.depth_est.dtype == np.float32
    assert isinstance(item.label, int) and 0 <= item.label < len(TOY_CLASSES)
    assert item.meta["class"] == TOY_CLASSES[item.label]
    assert (item.depth_gt > 0).all() and (item.depth_est > 0).all()
    assert np.isfinite(item.depth_gt).all() and np.isfinite(item.depth_est).all()
    assert item.image.std() > 5.0                      # not a blank frame
    decoded = json.loads(json.dumps(item.meta))        # the record must be JSON-serialisable
    assert set(decoded["camera"]) >= {"fov_deg", "yaw_deg", "pitch_deg", "radius", "look_at", "cam2world"}


def test_determinism_and_variation():
    a, b = render_toy_item(11, 4, 24), render_toy_item(11, 4, 24)
    for field in ("image", "depth_gt", "depth_est", "object_mask"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.meta == b.meta
    c = render_toy_item(11, 5, 24)
    assert not np.array_equal(a.image, c.image) and not np.array_equal(a.depth_gt, c.depth_gt)
    d = render_toy_item(12, 4, 24)
    assert not np.array_equal(a.image, d.image)


def test_scene_does_not_depend_on_resolution():
    small, large = render_toy_item(2, 9, 16), render_toy_item(2, 9, 48)
    assert small.meta["camera"] == large.meta["camera"] and small.meta["object"] == large.meta["object"]
    assert small.meta["depth_est"] == large.meta["depth_est"]
    # The 48 px image box-downsampled by 3 is close to the 16 px one (same scene, same framing).
    pooled = large.image.astype(float).reshape(16, 3, 16, 3, 3).mean(axis=(1, 3))
    assert np.abs(pooled - small.image).mean() < 12.0


def test_all_classes_appear_with_varied_framing():
    items = [render_toy_item(0, i, 12) for i in range(50)]
    assert {it.label for it in items} == set(range(len(TOY_CLASSES)))
    fovs = [it.meta["camera"]["fov_deg"] for it in items]
    assert min(fovs) < 25.0 and max(fovs) > 45.0
    # Object not always in the middle: the coverage centroid of the object mask moves around.
    centroids = []
    for i in range(12):
        mask = render_toy_item(0, i, 32).object_mask
        ys, xs = np.nonzero(mask > 0.5)
        centroids.append((xs.mean() / 31.0, ys.mean() / 31.0))
    spread = np.asarray(centroids).std(axis=0)
    assert (spread > 0.05).all(), spread


def test_analytic_sphere_depth_at_centre_and_off_centre():
    scene = _sphere_scene()
    view = render_scene(scene, resolution=33)
    assert view.depth[16, 16] == pytest.approx(4.0, abs=2e-3)          # camera 5 from centre, radius 1
    assert view.object_mask[16, 16] == 1.0 and view.object_mask[0, 0] == 0.0
    origin, dirs, _ = camera_rays(scene, 33, supersample=1)
    dirs = dirs.reshape(33, 33, 3)
    for row, col in ((12, 19), (20, 14)):                               # other pixels on the sphere
        expected = _ray_sphere(origin, dirs[row, col], np.array([0.0, 1.0, 0.0]), 1.0)
        assert view.depth[row, col] == pytest.approx(expected, abs=3e-3)
    # Bottom-centre pixel: misses the sphere (fov 30) and hits the ground y = 0 at t = 1 / -d_y.
    bottom = dirs[32, 16]
    assert view.object_mask[32, 16] == 0.0
    assert view.depth[32, 16] == pytest.approx(1.0 / -bottom[1], rel=1e-3)  # 2x2 sub-ray mean: 2nd-order error
    # Top-centre pixel looks above the horizon: it ends on the sky dome, 60 from the origin.
    top = origin + dirs[0, 16] * view.depth[0, 16]
    assert np.linalg.norm(top) == pytest.approx(60.0, rel=1e-4)


def test_object_is_nearer_than_the_background_behind_it():
    for index in range(6):
        scene = sample_scene(5, index)
        view = render_scene(scene, 32)
        hidden = dataclasses.replace(scene, pose=dataclasses.replace(scene.pose, position=(0.0, -1e3, 0.0)))
        backdrop_only = render_scene(hidden, 32)
        on_object = view.object_mask == 1.0
        assert on_object.sum() > 20
        assert (view.depth[on_object] < backdrop_only.depth[on_object]).all()
        off = view.object_mask == 0.0
        np.testing.assert_allclose(view.depth[off], backdrop_only.depth[off], rtol=1e-6)


@pytest.mark.parametrize("name", TOY_CLASSES)
def test_support_function_and_sdf_bound(name):
    # The support function sets ground contact; compare it with a brute-force max over interior grid points.
    shape = sample_shape(name, np.random.default_rng(3))
    r = shape.bounding_radius()
    axis = np.linspace(-r, r, 61)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    inside = grid[shape.sdf(grid) <= 0.0]
    assert len(inside) > 100
    assert np.linalg.norm(inside, axis=1).max() <= r + 1e-9
    step = axis[1] - axis[0]
    # Sphere tracing needs a distance bound: the SDF must be 1-Lipschitz.
    a = np.random.default_rng(2).uniform(-1.5 * r, 1.5 * r, size=(500, 3))
    b = a + np.random.default_rng(4).normal(scale=0.05, size=a.shape)
    assert (np.abs(shape.sdf(a) - shape.sdf(b)) <= np.linalg.norm(a - b, axis=1) * (1 + 1e-9)).all()
    for direction in np.random.default_rng(1).normal(size=(6, 3)):
        direction /= np.linalg.norm(direction)
        brute = (inside @ direction).max()
        assert brute - 1e-9 <= shape.support(direction) <= brute + 1.8 * step + shape.blend


def test_objects_stand_on_the_ground_unless_hovering():
    for index in range(10):
        scene = sample_scene(1, index)
        shape, pose = scene.shape, scene.pose
        lowest = pose.position[1] - pose.scale * shape.support(np.asarray(pose.rotation).T @ [0.0, -1.0, 0.0])
        assert lowest >= -1e-9
        assert lowest == pytest.approx(0.0, abs=1e-9) or lowest > 0.05 * scene.object_bounds()[1]


def test_estimated_depth_is_monotone_ish_but_not_affine():
    correlations = []
    for index in range(10):
        item = render_toy_item(4, index, 32)
        gt, est = item.depth_gt.ravel().astype(np.float64), item.depth_est.ravel().astype(np.float64)
        correlations.append(spearmanr(gt, est)[0])
        design = np.stack([gt, np.ones_like(gt)], axis=1)
        coef, *_ = np.linalg.lstsq(design, est, rcond=None)
        residual = np.abs(design @ coef - est).mean() / est.std()
        assert residual > 1e-3                                          # not an affine copy of the truth
        assert (item.depth_est > 0).all()
    assert np.mean(correlations) > 0.8, correlations
    assert min(correlations) > 0.2


def test_resolution_too_small_is_a_user_error():
    with pytest.raises(BadOptionError, match="--resolution"):
        render_toy_item(0, 0, 4)


def test_contact_sheet_layout():
    items = [render_toy_item(0, i, 16) for i in range(5)]
    sheet = toy_contact_sheet(items, columns=2, pad=2)
    assert sheet.size == (2 * (3 * 16 + 5 * 2) + 2, 3 * (16 + 2) + 2)
    pixels = np.asarray(sheet)
    np.testing.assert_array_equal(pixels[2:18, 2:18], items[0].image)


def test_simple_scenes_are_centred_upright_and_plain():
    # `--scenes simple` (make demo): centred, upright objects on the ground, no walls, narrow FoV range.
    items = [render_toy_item(0, i, 32, "simple") for i in range(24)]
    assert {it.label for it in items} == set(range(len(TOY_CLASSES)))
    for it in items:
        cam = it.meta["camera"]
        assert 25.0 <= cam["fov_deg"] <= 35.0 and 55.0 <= cam["pitch_deg"] <= 80.0
        assert it.meta["scenes"] == "simple" and it.meta["object"]["position"][0] == 0.0
        ys, xs = np.nonzero(it.object_mask > 0.5)
        assert abs(xs.mean() / 31.0 - 0.5) < 0.12 and abs(ys.mean() / 31.0 - 0.5) < 0.2  # near the centre
    from stages.prep.toy.simple import sample_simple_scene

    assert all(sample_simple_scene(0, i).backdrop.walls == () for i in range(24))
    # Deterministic, independent of the resolution, and not the full scene of the same index.
    a, b = render_toy_item(3, 5, 16, "simple"), render_toy_item(3, 5, 16, "simple")
    assert np.array_equal(a.image, b.image)
    assert render_toy_item(3, 5, 32, "simple").meta["camera"] == a.meta["camera"]
    assert render_toy_item(3, 5, 16).meta["camera"] != a.meta["camera"]
    with pytest.raises(ValueError, match="scenes"):
        render_toy_item(0, 0, 16, "hard")
