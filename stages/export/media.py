"""Rendering views of generated scenes and writing them as videos and image grids (3DGP ref §8.4).

Layouts (all uint8, channels first, except what ``write_video`` takes):

* ``render_views`` renders B samples from F cameras: frames ``[B, F, 3, H, W]`` uint8 and raw depth
  ``[B, F, 1, H, W]`` (world units). Each sample's tri-plane is computed ONCE (``G.triplanes(ws, 'const')``) and
  rendered from every camera with ``G.render``; pixels are clamped to [-1, 1] and quantised with ``to_uint8``.
* ``depth_to_color`` maps depth to a viridis colour map, near = bright yellow, far = dark purple: a perceptual map
  whose luminance grows monotonically towards the camera (9 anchors of matplotlib's viridis, linearly
  interpolated; no matplotlib dependency). Use the render's ray bounds as (near, far): ``G.ray_start`` and the
  ``ray_end`` the frames were rendered with (the inference override is 2.25, ref §8.1).
* ``compose_views(rgb, depth_color, mode)``: the video modes ``rgb``, ``depth`` and ``both`` (rgb | depth side by
  side, ``side_by_side``).
* ``tile`` puts N videos ``[N, F, 3, H, W]`` on a grid ``[F, 3, H', W']`` with ``nrow`` = tiles per row =
  ceil(sqrt(N)) by default (ref §8.4; torchvision ``make_grid``'s convention), ``padding`` pixels around each tile.
* ``write_video`` writes ``[F, H, W, 3]`` (channels LAST, what encoders take: ``tile(...).permute(0, 2, 3, 1)``)
  as ``.mp4`` (h264 with libx264, crf 10 as in ref §8.4, yuv420p; odd sizes are edge-padded to even) or ``.gif``
  (loops forever; GIF delays are in 1/100 s, so 30 fps plays at ~33 fps, and Pillow merges consecutive identical
  frames into one longer frame). Files are written to a temporary name and renamed (atomic).
* ``write_grid_png``: samples x views in one PNG; each sample is a row of its V views with, when given, the row
  of their colour-mapped depths just below it (2N rows x V columns).

Public API:
  render_views(G, ws [B, num_ws, w_dim], cameras [F, 8] | [B, F, 8], *, resolution=None, generator=None, batch=None,
               progress=False, **render_kwargs) -> (frames uint8 [B, F, 3, H, W], depth float32 [B, F, 1, H, W])
  depth_to_color(depth [..., 1, H, W], near, far) -> uint8 [..., 3, H, W]
  side_by_side(rgb [..., 3, H, W], depth_color [..., 3, H, W]) -> [..., 3, H, 2W]
  compose_views(rgb [N, F, 3, H, W], depth_color [N, F, 3, H, W] | None, mode) -> [N, F, 3, H, W']
  tile(frames [N, F, 3, H, W], nrow=None, padding=2, pad_value=0) -> [F, 3, H', W']
  write_video(path, frames uint8 [F, H, W, 3], fps=30, crf=10) -> Path
  write_grid_png(path, rgb uint8 [N, V, 3, H, W], depth_color uint8 [N, V, 3, H, W] | None = None, padding=2) -> Path
"""
from __future__ import annotations

import math
import os
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from stages.common.errors import BadFileError, BadOptionError
from stages.common.images import to_uint8
from stages.common.progress import progress_bar
from stages.common.seeding import derive_seed
from stages.nn.inputs import make_generator
from stages.nn.rays import CAMERA_DIM

VIDEO_MODES = ("rgb", "depth", "both")  # "both": rgb | depth side by side
VIDEO_SUFFIXES = (".mp4", ".gif")
DEFAULT_FPS = 30  # ref §8.4
DEFAULT_CRF = 10  # ref §8.4: h264 crf 10 (visually lossless)

# matplotlib's viridis at t = 0, 1/8, ..., 1 (exact table entries). Luma grows monotonically along it.
VIRIDIS_ANCHORS = (
    (0.267004, 0.004874, 0.329415),
    (0.282327, 0.094955, 0.417331),
    (0.229739, 0.322361, 0.545706),
    (0.172719, 0.448791, 0.557885),
    (0.127568, 0.566949, 0.550556),
    (0.157851, 0.683765, 0.501686),
    (0.369214, 0.788888, 0.382914),
    (0.678489, 0.863742, 0.189503),
    (0.993248, 0.906157, 0.143936),
)


@torch.no_grad()
def render_views(
    G,                            # stages.nn.generator.Generator, in eval mode.
    ws: torch.Tensor,             # [B, num_ws, w_dim] (truncation already applied, ref §8.2).
    cameras: torch.Tensor,        # [F, 8] shared by all samples, or [B, F, 8] per sample.
    *,
    resolution: int | None = None,  # H = W of the frames (None = G.img_resolution).
    generator: torch.Generator | None = None,  # RNG of the renderer (ray jitter, importance samples).
    batch: int | None = None,     # Samples whose tri-planes are held at once (None = all B; memory only).
    progress: bool = False,       # Show a progress bar over the B * F frames.
    seeds: list[int] | None = None,  # Per-sample seeds: each frame of sample i gets its own renderer RNG seeded
                                     # by (seeds[i], frame), so a sample's frames never depend on the others.
    **render_kwargs,              # G.render options: ray_end, num_coarse_steps, num_fine_steps, chunk_rays, ...
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render every sample from every camera (3DGP ref §8.4): frames uint8 ``[B, F, 3, H, W]`` and raw depth
    float32 ``[B, F, 1, H, W]`` (world units), both on the CPU. One tri-plane per sample (noise mode 'const');
    each ``G.render`` call renders one camera for a batch of samples."""
    num_samples = ws.shape[0]
    cameras = cameras.to(device=ws.device, dtype=torch.float32)
    if cameras.ndim == 2:
        cameras = cameras.unsqueeze(0).expand(num_samples, -1, -1)  # [B, F, 8]
    assert cameras.ndim == 3 and cameras.shape[0] == num_samples and cameras.shape[2] == CAMERA_DIM, \
        f"cameras must be [F, 8] or [{num_samples}, F, 8], got {tuple(cameras.shape)}"
    num_frames = cameras.shape[1]
    res = int(G.img_resolution if resolution is None else resolution)
    frames = torch.empty(num_samples, num_frames, 3, res, res, dtype=torch.uint8)
    depths = torch.empty(num_samples, num_frames, 1, res, res, dtype=torch.float32)
    step = num_samples if batch is None else max(int(batch), 1)
    bar = progress_bar(num_samples * num_frames, "render", unit="frame") if progress else None
    with bar or nullcontext(lambda n=1: None) as advance:
        for start in range(0, num_samples, step):
            stop = min(start + step, num_samples)
            planes = G.triplanes(ws[start:stop], noise_mode="const")  # [b, 3, C, R, R], once per sample
            for f in range(num_frames):
                if seeds is None:
                    img, depth = G.render(planes, cameras[start:stop, f], resolution=res, generator=generator,
                                          **render_kwargs)  # [b, 3, H, W], [b, 1, H, W]
                else:
                    parts = [G.render(planes[j - start:j - start + 1], cameras[j:j + 1, f], resolution=res,
                                      generator=make_generator(derive_seed(seeds[j], f)), **render_kwargs)
                             for j in range(start, stop)]
                    img, depth = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
                frames[start:stop, f] = to_uint8(img.clamp(-1, 1)).cpu()
                depths[start:stop, f] = depth.float().cpu()
                advance(stop - start)
    return frames, depths


def depth_to_color(depth: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """World-unit depth ``[..., 1, H, W]`` -> viridis uint8 ``[..., 3, H, W]``: near (and closer) = bright yellow,
    far (and beyond) = dark purple; luminance decreases monotonically with depth."""
    assert depth.ndim >= 3 and depth.shape[-3] == 1, f"depth must be [..., 1, H, W], got {tuple(depth.shape)}"
    assert far > near, (near, far)
    lut = torch.tensor(VIRIDIS_ANCHORS, dtype=torch.float32, device=depth.device)  # [K, 3]
    t = ((far - depth.float().squeeze(-3)) / (far - near)).clamp(0, 1)  # [..., H, W], 1 = near
    pos = t * (len(VIRIDIS_ANCHORS) - 1)
    idx = pos.floor().long().clamp(max=len(VIRIDIS_ANCHORS) - 2)
    w = (pos - idx).unsqueeze(-1)  # [..., H, W, 1]
    rgb = lut[idx] * (1 - w) + lut[idx + 1] * w  # [..., H, W, 3]
    return (rgb * 255).round().to(torch.uint8).movedim(-1, -3)  # [..., 3, H, W]


def side_by_side(rgb: torch.Tensor, depth_color: torch.Tensor) -> torch.Tensor:
    """``[..., 3, H, W]`` rgb and colour-mapped depth -> ``[..., 3, H, 2W]`` (rgb left, depth right)."""
    assert rgb.shape == depth_color.shape, (tuple(rgb.shape), tuple(depth_color.shape))
    return torch.cat([rgb, depth_color], dim=-1)


def compose_views(rgb: torch.Tensor, depth_color: torch.Tensor | None, mode: str) -> torch.Tensor:
    """The frames of a video mode: ``rgb``, ``depth`` or ``both`` (side by side), ``[N, F, 3, H, W']``."""
    if mode not in VIDEO_MODES:
        raise BadOptionError("--video-kind", f"unknown mode {mode!r} (expected {', '.join(VIDEO_MODES)})")
    if mode == "rgb":
        return rgb
    assert depth_color is not None, f"video mode {mode!r} needs the colour-mapped depth"
    return depth_color if mode == "depth" else side_by_side(rgb, depth_color)


def tile(frames: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: int = 0) -> torch.Tensor:
    """N videos ``[N, F, C, H, W]`` -> one grid video ``[F, C, H', W']`` (ref §8.4 ``video_grid``).

    ``nrow`` tiles per row (default ceil(sqrt(N))), ceil(N / nrow) rows, ``padding`` pixels of ``pad_value``
    around every tile (torchvision ``make_grid`` layout: H' = rows (H + p) + p, W' = nrow (W + p) + p).
    """
    assert frames.ndim == 5, f"frames must be [N, F, C, H, W], got {tuple(frames.shape)}"
    num, num_frames, channels, height, width = frames.shape
    nrow = max(1, min(num, math.ceil(math.sqrt(num)) if nrow is None else int(nrow)))
    nrows = math.ceil(num / nrow)
    out = frames.new_full((num_frames, channels, nrows * (height + padding) + padding,
                           nrow * (width + padding) + padding), pad_value)
    for n in range(num):
        row, col = divmod(n, nrow)
        y, x = padding + row * (height + padding), padding + col * (width + padding)
        out[:, :, y:y + height, x:x + width] = frames[n]
    return out  # [F, C, H', W']


def _as_uint8_numpy(frames) -> np.ndarray:
    array = frames.cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    assert array.dtype == np.uint8, f"frames must be uint8, got {array.dtype}"
    return np.ascontiguousarray(array)


def _tmp_path(path: Path) -> Path:
    """A temporary sibling of ``path`` with the same suffix (encoders pick the container from it)."""
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


def write_video(path: str | os.PathLike, frames, fps: float = DEFAULT_FPS, crf: int = DEFAULT_CRF) -> Path:
    """Write uint8 frames ``[F, H, W, 3]`` (tensor or array) as ``.mp4`` (h264, crf) or ``.gif`` (loops forever).

    mp4 frames with an odd H or W are edge-padded by one pixel (yuv420p needs even sizes). Atomic: written to a
    temporary sibling, then renamed. Returns ``path``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise BadFileError(path, f"unsupported video format {suffix or '(none)'!r} (expected .mp4 or .gif)")
    video = _as_uint8_numpy(frames)
    assert video.ndim == 4 and video.shape[-1] == 3 and len(video) >= 1, \
        f"frames must be [F, H, W, 3], got {video.shape}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        if suffix == ".mp4":
            _write_mp4(tmp, video, fps, crf)
        else:
            import imageio.v3 as iio

            iio.imwrite(tmp, video, extension=".gif", duration=1000.0 / fps, loop=0)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_mp4(path: Path, video: np.ndarray, fps: float, crf: int) -> None:
    """h264 (libx264, yuv420p, constant rate factor ``crf``) through imageio-ffmpeg."""
    import imageio.v2 as imageio

    _, height, width, _ = video.shape
    video = np.pad(video, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")  # even sizes
    writer = imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=None,
                                pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="error",
                                output_params=["-crf", str(int(crf))])
    try:
        for frame in video:
            writer.append_data(frame)
    finally:
        writer.close()


def write_grid_png(path: str | os.PathLike, rgb, depth_color=None, padding: int = 2) -> Path:
    """A PNG of N samples x V views (ref §8.4 ``image_grid``, as PNG).

    Row 2n holds sample n's V rgb views ``rgb[n]`` left to right; row 2n + 1 holds the colour-mapped depths of the
    same views ``depth_color[n]`` (without ``depth_color``: one row per sample). ``padding`` black pixels separate
    the cells. Atomic (temporary sibling, then rename). Returns ``path``.
    """
    from PIL import Image

    path = Path(path)
    rgb = torch.as_tensor(_as_uint8_numpy(rgb))
    assert rgb.ndim == 5 and rgb.shape[2] == 3, f"rgb must be [N, V, 3, H, W], got {tuple(rgb.shape)}"
    num_views = rgb.shape[1]
    rows = rgb
    if depth_color is not None:
        depth_color = torch.as_tensor(_as_uint8_numpy(depth_color))
        assert depth_color.shape == rgb.shape, (tuple(depth_color.shape), tuple(rgb.shape))
        rows = torch.stack([rgb, depth_color], dim=1).flatten(0, 1)  # [2N, V, 3, H, W]: rgb row, depth row, ...
    cells = rows.flatten(0, 1).unsqueeze(1)  # [R * V, 1, 3, H, W], row-major
    grid = tile(cells, nrow=num_views, padding=padding)[0]  # [3, H', W']
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
