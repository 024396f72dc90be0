"""Export media: rendering views, depth colour map, video and grid writers (stages.export.media; 3DGP ref §8.4)."""
from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from stages.common.errors import BadFileError, BadOptionError
from stages.export.media import compose_views, depth_to_color, render_views, side_by_side, tile, write_grid_png, \
    write_video
from stages.export.trajectories import make_trajectory
from stages.nn.rays import CAM_FOV, CAM_PITCH, CAM_RADIUS, CAM_YAW
from tests.metrics.sphere_generator import RAY_END, RAY_START, sphere_generator

RES = 16  # render size of these tests (G.render takes any size)
NUM_FRAMES = 4


def _base_camera() -> torch.Tensor:
    camera = torch.zeros(8)
    camera[CAM_YAW], camera[CAM_PITCH], camera[CAM_FOV], camera[CAM_RADIUS] = 0.0, torch.pi / 2, 30.0, 1.0
    return camera


@pytest.fixture(scope="module")
def sphere():
    """An off-centre textured sphere: turning the camera changes both its depth map and its colours."""
    return sphere_generator(radius=0.2, textured=True, offset=(0.15, 0.0, 0.0))


@pytest.fixture(scope="module")
def rendered(sphere):
    ws = torch.zeros(2, sphere.num_ws, sphere.w_dim)
    cameras = make_trajectory("orbit", _base_camera(), num_frames=NUM_FRAMES, yaw_range=(-0.8, 0.8))  # [F, 8]
    frames, depth = render_views(sphere, ws, cameras, resolution=RES, generator=torch.Generator().manual_seed(0))
    return ws, cameras, frames, depth


def test_render_views_shapes_and_ranges(rendered):
    _, _, frames, depth = rendered
    assert frames.shape == (2, NUM_FRAMES, 3, RES, RES) and frames.dtype == torch.uint8
    assert depth.shape == (2, NUM_FRAMES, 1, RES, RES) and depth.dtype == torch.float32
    assert frames.device.type == depth.device.type == "cpu"
    assert float(depth.min()) >= RAY_START and float(depth.max()) <= RAY_END + 1e-4
    assert int(frames.max()) > 100 and int(frames.min()) < 60  # red stripes on a dark background, not a blank


def test_turning_the_camera_changes_depth_and_colour(rendered):
    _, _, frames, depth = rendered
    depth_change = (depth[:, 1:] - depth[:, :1]).abs().mean(dim=(2, 3, 4))  # [B, F - 1]
    assert float(depth_change.min()) > 0.05  # measured 0.11-0.16
    colour_change = (frames[:, 1:].float() - frames[:, :1].float()).abs().mean(dim=(2, 3, 4))
    assert float(colour_change.min()) > 10.0  # measured 50-54 (of 255)
    # Same latent (the sphere ignores ws) and same cameras: both samples show the same frames.
    assert (frames[0].float() - frames[1].float()).abs().mean() < 4.0  # renderer jitter: measured 1.1


def test_one_triplane_per_sample_and_per_sample_cameras(sphere, rendered, monkeypatch):
    ws, cameras, frames, _ = rendered
    calls = {"triplanes": [], "render": 0}
    triplanes, render = sphere.triplanes, sphere.render

    def counting_triplanes(w, noise_mode="random", generator=None):
        calls["triplanes"].append((w.shape[0], noise_mode))
        return triplanes(w, noise_mode=noise_mode, generator=generator)

    def counting_render(planes, camera, *args, **kwargs):
        calls["render"] += 1
        return render(planes, camera, *args, **kwargs)

    monkeypatch.setattr(sphere, "triplanes", counting_triplanes)
    monkeypatch.setattr(sphere, "render", counting_render)
    per_sample = torch.stack([cameras, cameras.flip(0)])  # [B, F, 8]: sample 1 runs the orbit backwards
    frames2, _ = render_views(sphere, ws, per_sample, resolution=RES, batch=1,
                              generator=torch.Generator().manual_seed(0))
    assert calls["triplanes"] == [(1, "const"), (1, "const")]  # each sample's tri-plane computed once
    assert calls["render"] == 2 * NUM_FRAMES  # one camera per render call
    assert frames2.shape == frames.shape
    assert (frames2[1].float() - frames[1].flip(0).float()).abs().mean() < 4.0  # up to the renderer's jitter


def test_depth_to_color_luminance_falls_monotonically_with_depth():
    near, far = 0.75, 2.25
    depth = torch.linspace(near, far, 25).view(25, 1, 1, 1)  # [25, 1, 1, 1]
    colors = depth_to_color(depth, near, far)
    assert colors.shape == (25, 3, 1, 1) and colors.dtype == torch.uint8
    rgb = colors.float().view(25, 3)
    luma = rgb @ torch.tensor([0.299, 0.587, 0.114])  # Rec. 601 luma
    assert torch.all(luma[1:] < luma[:-1])  # near = bright, far = dark
    assert float(luma[0] - luma[-1]) > 150
    outside = depth_to_color(torch.tensor([near - 1, far + 1]).view(2, 1, 1, 1), near, far)  # clamped
    assert torch.equal(outside[0], colors[0]) and torch.equal(outside[1], colors[-1])
    batched = depth_to_color(torch.full((2, 3, 1, 4, 5), 1.0), near, far)  # any leading dims
    assert batched.shape == (2, 3, 3, 4, 5)


def test_tile_layout():
    frames = torch.stack([torch.full((2, 3, 4, 5), 10 * (n + 1), dtype=torch.uint8) for n in range(5)])  # [5, 2, ...]
    grid = tile(frames, padding=1)
    assert grid.shape == (2, 3, 2 * (4 + 1) + 1, 3 * (5 + 1) + 1)  # nrow = ceil(sqrt(5)) = 3 tiles per row, 2 rows
    for n in range(5):
        row, col = divmod(n, 3)
        y, x = 1 + row * 5, 1 + col * 6
        assert torch.all(grid[:, :, y:y + 4, x:x + 5] == 10 * (n + 1))
    assert torch.all(grid[:, :, 6:10, 13:18] == 0)  # the empty sixth cell is padding
    assert tile(frames, nrow=5, padding=0).shape == (2, 3, 4, 25)


def test_video_modes(rendered):
    _, _, frames, depth = rendered
    colored = depth_to_color(depth, RAY_START, RAY_END)
    assert torch.equal(compose_views(frames, colored, "rgb"), frames)
    assert torch.equal(compose_views(frames, colored, "depth"), colored)
    both = compose_views(frames, colored, "both")
    assert both.shape == (2, NUM_FRAMES, 3, RES, 2 * RES)
    assert torch.equal(both, side_by_side(frames, colored))
    assert torch.equal(both[..., :RES], frames) and torch.equal(both[..., RES:], colored)
    with pytest.raises(BadOptionError, match="--video-kind"):
        compose_views(frames, colored, "normals")


def _distinct_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """uint8 [F, H, W, 3]: smooth gradients shifted per frame (no two consecutive frames alike)."""
    y, x = np.mgrid[0:height, 0:width]
    frames = [np.stack([(x * 7 + 30 * f) % 256, (y * 11 + 50 * f) % 256, np.full_like(x, 40 * f % 256)], -1)
              for f in range(num_frames)]
    return np.stack(frames).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_write_video_frame_count_and_size(tmp_path, suffix):
    frames = _distinct_frames(5, 21, 33)  # odd sizes: the mp4 is padded to 22 x 34
    path = write_video(tmp_path / f"video{suffix}", torch.from_numpy(frames), fps=30)
    assert path == tmp_path / f"video{suffix}"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the temporary file was renamed
    back = iio.imread(path, index=None)
    expected_size = (22, 34) if suffix == ".mp4" else (21, 33)
    assert back.shape[:3] == (5, *expected_size) and back.shape[3] in (3, 4)
    error = np.abs(back[:, :21, :33, :3].astype(float) - frames.astype(float)).mean()
    assert error < 12, error  # lossy h264 / 256-colour GIF palettes


def test_write_video_of_a_rendered_grid(tmp_path, rendered):
    _, _, frames, depth = rendered
    video = tile(compose_views(frames, depth_to_color(depth, RAY_START, RAY_END), "both"))  # [F, 3, H', W']
    path = write_video(tmp_path / "grid.mp4", video.permute(0, 2, 3, 1))
    back = iio.imread(path, index=None)
    assert back.shape == (NUM_FRAMES, *video.shape[2:], 3)
    assert np.abs(back.astype(float) - video.permute(0, 2, 3, 1).numpy()).mean() < 12


def test_write_video_rejects_unknown_formats(tmp_path):
    with pytest.raises(BadFileError, match="expected .mp4 or .gif"):
        write_video(tmp_path / "video.avi", _distinct_frames(2, 8, 8))
    assert not list(tmp_path.iterdir())


def test_write_grid_png_layout(tmp_path):
    num, views, height, width = 2, 3, 4, 6
    rgb = torch.stack([torch.stack([torch.full((3, height, width), 20 * (n * views + v + 1)) for v in range(views)])
                       for n in range(num)]).to(torch.uint8)  # [N, V, 3, H, W]
    depth_color = 255 - rgb
    path = write_grid_png(tmp_path / "grid.png", rgb, depth_color, padding=2)
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]
    grid = iio.imread(path)  # [H', W', 3]
    assert grid.shape == (2 * num * (height + 2) + 2, views * (width + 2) + 2, 3)
    for n in range(num):
        for v in range(views):
            x = 2 + v * (width + 2)
            y_rgb, y_depth = 2 + 2 * n * (height + 2), 2 + (2 * n + 1) * (height + 2)
            assert np.all(grid[y_rgb:y_rgb + height, x:x + width] == 20 * (n * views + v + 1))  # sample n's views
            assert np.all(grid[y_depth:y_depth + height, x:x + width] == 255 - 20 * (n * views + v + 1))  # its depth
    rgb_only = iio.imread(write_grid_png(tmp_path / "rgb.png", rgb, padding=0))
    assert rgb_only.shape == (num * height, views * width, 3)
