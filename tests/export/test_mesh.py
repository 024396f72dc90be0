"""Mesh export (stages.export.mesh) on the analytic sphere generator and on small synthetic fields."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from stages.common.errors import BadOptionError
from stages.export import mesh as M
from stages.nn.build import build_camera_prior
from stages.nn.config import get_preset
from tests.metrics.sphere_generator import sphere_generator

RADIUS = 0.25
COLOR = (0.8, 0.2, 0.2)
COLOR_U8 = np.array([204, 51, 51, 255])  # round(255 * COLOR), opaque
SPHERE_VOLUME = 4.0 / 3.0 * math.pi * RADIUS ** 3


@pytest.fixture(scope="module")
def sphere():
    G = sphere_generator(radius=RADIUS, color=COLOR)
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), None)
    planes = G.triplanes(ws, noise_mode="const")
    return G, ws, planes


@pytest.fixture(scope="module")
def sphere_export(sphere, tmp_path_factory):
    G, ws, _ = sphere
    out = tmp_path_factory.mktemp("sphere")
    summary = M.export_mesh(G, ws, out / "sphere.ply", resolution=128, volume_path=out / "sphere.npy")
    return summary, out


def _camera(yaw=0.0, pitch=math.pi / 2, fov=10.0, radius=1.0) -> torch.Tensor:
    cam = torch.zeros(1, 8)
    cam[0, 0], cam[0, 1], cam[0, 3], cam[0, 4], cam[0, 6] = yaw, pitch, fov, radius, math.pi / 2
    return cam


class _Stub:
    """A minimal G for grid / colour tests: raw sigma = 20 + x + 2y + 3z (softplus ~ identity), rgb = (x, 0, 1)."""

    cube_scale, ray_start, ray_end = 0.5, 0.6, 1.4

    def decode_points(self, planes, points):
        x, y, z = points.unbind(-1)
        rgb = torch.stack([x, torch.zeros_like(x), torch.ones_like(x)], dim=-1)
        return rgb, 20.0 + x + 2.0 * y + 3.0 * z


# ---------------------------------------------------------------------------------------------------------------
# End to end on the sphere


def test_sphere_mesh_watertight_volume_and_colour(sphere_export):
    summary, out = sphere_export
    assert summary["level"] == M.DEFAULT_LEVEL and summary["level_rule"] == "auto-fixed"
    assert summary["box"] == [[-0.5] * 3, [0.5] * 3]  # no cameras: the whole cube
    assert summary["watertight"]
    assert summary["volume"] == pytest.approx(SPHERE_VOLUME, rel=0.05)
    mesh = trimesh.load(out / "sphere.ply", process=False)
    assert len(mesh.vertices) == summary["vertices"] and len(mesh.faces) == summary["faces"]
    assert mesh.is_watertight and mesh.volume > 0  # outward orientation survives the file
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(radii - RADIUS).max() < 0.01  # within about one voxel (1/127) of the analytic surface
    colors = np.asarray(mesh.visual.vertex_colors).astype(int)
    assert np.abs(colors - COLOR_U8).max() <= 2


def test_volume_npy_round_trip(sphere, sphere_export):
    G, _, planes = sphere
    summary, out = sphere_export
    volume = np.load(out / "sphere.npy")
    assert volume.shape == (128, 128, 128) and volume.dtype == np.float32
    assert summary["density_range"] == [float(volume.min()), float(volume.max())]
    # axes (x, y, z) on the integer grid lo + i * step: the centre is inside, the corner and the face centres outside
    assert volume[64, 64, 64] > 1e3 and volume[0, 0, 0] < 1e-3
    step = 1.0 / 127
    i = int(math.ceil((0.5 - RADIUS) / step))  # first index along x inside the sphere on the axis y = z ~ 0
    assert volume[i + 1, 63, 63] > M.DEFAULT_LEVEL > volume[i - 2, 63, 63]


def test_ply_glb_obj_round_trip(sphere, tmp_path):
    G, _, planes = sphere
    lo, hi = np.full(3, -0.3), np.full(3, 0.3)
    density = M.sample_density(G, planes, lo, hi, resolution=32)
    vertices, faces = M.extract_mesh(density, lo, hi, M.DEFAULT_LEVEL)
    colors = M.vertex_colors(G, planes, vertices)
    assert colors.shape == (len(vertices), 4) and colors.dtype == np.uint8
    assert np.abs(colors.astype(int) - COLOR_U8).max() <= 2
    for suffix in (".ply", ".glb", ".obj"):
        path = M.write_mesh(tmp_path / f"m{suffix}", vertices, faces, colors)
        mesh = trimesh.load(path, process=False, force="mesh")
        assert len(mesh.vertices) == len(vertices) and len(mesh.faces) == len(faces), suffix
        np.testing.assert_allclose(mesh.vertices, vertices, atol=1e-6)
        assert np.array_equal(np.asarray(mesh.visual.vertex_colors), colors), suffix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.glb", "m.obj", "m.ply"]  # no temporary left over


def test_level_outside_density_range(sphere, tmp_path):
    G, ws, planes = sphere
    lo, hi = np.full(3, -0.3), np.full(3, 0.3)
    density = M.sample_density(G, planes, lo, hi, resolution=16)
    for level in (float(density.max()) + 1.0, 0.0, -1.0):
        with pytest.raises(BadOptionError) as err:
            M.extract_mesh(density, lo, hi, level)
        assert err.value.option == "--level" and "no surface" in str(err.value)
    with pytest.raises(BadOptionError, match="--level"):
        M.export_mesh(G, ws, tmp_path / "m.ply", resolution=16, level=1e6, volume_path=tmp_path / "v.npy")
    assert not (tmp_path / "m.ply").exists() and (tmp_path / "v.npy").exists()  # the volume is still written


# ---------------------------------------------------------------------------------------------------------------
# Box


def test_mesh_box_without_cameras_is_the_cube(sphere):
    G, _, _ = sphere
    lo, hi = M.mesh_box(G)
    assert lo.tolist() == [-0.5] * 3 and hi.tolist() == [0.5] * 3


def test_mesh_box_narrow_camera_values(sphere):
    G, _, _ = sphere  # rays over [0.6, 1.4]
    half = math.radians(5.0)
    lo, hi = M.mesh_box(G, _camera(fov=10.0), margin=0.05)
    lateral = 1.4 * math.sin(half) + 0.05  # edge-centre rays at the far bound
    near_z = 1.0 - 0.6 / math.sqrt(1.0 + 2.0 * math.tan(half) ** 2) + 0.05  # corner rays at the near bound
    np.testing.assert_allclose(lo, [-lateral, -lateral, -0.45], atol=1e-5)
    np.testing.assert_allclose(hi, [lateral, lateral, near_z], atol=1e-5)
    # margin 0: the box of the clipped segments themselves
    lo0, hi0 = M.mesh_box(G, _camera(fov=10.0), margin=0.0)
    np.testing.assert_allclose(hi0 - lo0, hi - lo - 0.1, atol=1e-6)


def test_mesh_box_prior_cameras_cover_the_sphere(sphere):
    G, _, _ = sphere  # no adaptor: posterior = prior
    from stages.metrics.sources import GeneratorSource

    cameras, _ = GeneratorSource(G, build_camera_prior(get_preset("tiny")), None, "cpu", seed=1).cameras(128)
    assert cameras.shape == (128, 8)
    lo, hi = M.mesh_box(G, cameras)
    assert np.all(lo >= -0.5) and np.all(hi <= 0.5)
    assert np.all(lo <= -RADIUS - 0.05) and np.all(hi >= RADIUS + 0.05)
    # cameras around +z (|yaw|, |pitch - pi/2| <= 0.2) with FoV 32 see part of the cube, still all of the sphere
    front = torch.cat([_camera(yaw=y, pitch=math.pi / 2 + p, fov=32.0) for y in (-0.2, 0.0, 0.2) for p in (-0.2, 0.2)])
    lo, hi = M.mesh_box(G, front, margin=0.0)
    assert np.all(lo > -0.46) and np.all(hi[:2] < 0.46) and hi[2] < 0.495  # strictly inside the cube
    assert np.all(lo < -RADIUS - 0.1) and np.all(hi > RADIUS + 0.1)


def test_mesh_box_cameras_that_miss_the_cube(sphere):
    G, _, _ = sphere
    lo, hi = M.mesh_box(G, _camera(radius=5.0))  # rays end 1.4 from a camera 5 away: nothing of the cube
    assert lo.tolist() == [-0.5] * 3 and hi.tolist() == [0.5] * 3


# ---------------------------------------------------------------------------------------------------------------
# Grid, marching cubes, colours and files on synthetic inputs


def test_sample_density_integer_grid_and_chunks():
    G = _Stub()
    planes = torch.zeros(1, 3, 1, 2, 2)
    lo, hi = np.array([-0.4, -0.2, 0.0]), np.array([0.2, 0.4, 0.3])
    density = M.sample_density(G, planes, lo, hi, resolution=7, chunk=10)
    idx = np.arange(7)
    x, y, z = np.meshgrid(lo[0] + idx * 0.1, lo[1] + idx * 0.1, lo[2] + idx * 0.05, indexing="ij")
    np.testing.assert_allclose(density, 20.0 + x + 2 * y + 3 * z, atol=1e-5)
    np.testing.assert_array_equal(density, M.sample_density(G, planes, lo, hi, resolution=7))
    with pytest.raises(BadOptionError, match="--resolution"):
        M.sample_density(G, planes, lo, hi, resolution=1)


def test_vertex_colors_mapping_and_inset():
    G = _Stub()
    planes = torch.zeros(1, 3, 1, 2, 2)
    vertices = np.array([[-1.0, 0, 0], [0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0]], np.float32)
    colors = M.vertex_colors(G, planes, vertices)
    assert colors[:, 0].tolist() == [0, 128, 255, 255]  # [-1, 1] -> [0, 255], clamped
    assert colors[:, 1].tolist() == [128] * 4 and colors[:, 2:].tolist() == [[255, 255]] * 4
    normals = np.tile(np.array([[1.0, 0, 0]], np.float32), (4, 1))
    inset = M.vertex_colors(G, planes, vertices[1:2], normals[1:2], inset=0.2, taps=3)
    assert inset[0, 0] == round((1.0 - 0.1) / 2 * 255)  # mean of x = 0, -0.1, -0.2


def test_extract_mesh_closes_surfaces_cut_by_the_box():
    res = 9
    density = np.broadcast_to(np.arange(res, dtype=np.float32)[:, None, None], (res, res, res)).copy()  # grows in x
    lo, hi = np.array([0.0, 0.0, 0.0]), np.array([2.0, 1.0, 1.0])
    vertices, faces = M.extract_mesh(density, lo, hi, level=4.0)  # solid: x >= 1 (half the box)
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    assert mesh.is_watertight and mesh.volume == pytest.approx(1.0, abs=1e-6)
    assert vertices.min(0).tolist() == [1.0, 0.0, 0.0] and vertices.max(0).tolist() == [2.0, 1.0, 1.0]
    open_v, open_f = M.extract_mesh(density, lo, hi, level=4.0, close_boundary=False)
    open_mesh = trimesh.Trimesh(open_v, open_f, process=False)
    assert not open_mesh.is_watertight
    np.testing.assert_allclose(open_v[:, 0], 1.0, atol=1e-6)  # the official open plane x = 1


def test_choose_level_rules():
    assert M.choose_level(np.array([0.0, 100.0])) == (M.DEFAULT_LEVEL, "auto-fixed")
    assert M.choose_level(np.array([0.2, 1.0])) == (pytest.approx(0.6), "auto-midrange")  # untrained-like field
    assert M.choose_level(np.array([0.2, 1.0]), 0.5) == (0.5, "explicit")


def test_bad_suffixes_and_volume_formats(tmp_path):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    f = np.array([[0, 1, 2]])
    with pytest.raises(BadOptionError, match="--out"):
        M.write_mesh(tmp_path / "m.stl", v, f)
    density = np.random.default_rng(0).random((4, 4, 4), dtype=np.float32)
    M.write_volume(tmp_path / "d.npy", density, np.zeros(3), np.ones(3))
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), density)
    with pytest.raises(BadOptionError, match="--volume"):
        M.write_volume(tmp_path / "d.raw", density, np.zeros(3), np.ones(3))
    try:
        import mrcfile
    except ImportError:
        with pytest.raises(BadOptionError, match="pip install mrcfile"):
            M.write_volume(tmp_path / "d.mrc", density, np.zeros(3), np.ones(3))
        assert not (tmp_path / "d.mrc").exists()
    else:
        M.write_volume(tmp_path / "d.mrc", density, np.zeros(3), np.ones(3))
        with mrcfile.open(tmp_path / "d.mrc") as mrc:
            np.testing.assert_array_equal(mrc.data.transpose(2, 1, 0), density)
