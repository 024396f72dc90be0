"""``3dgp export``: samples, videos, grids, meshes and the report of one snapshot (3DGP ref §8; issue 9).

Inference settings follow ref §8.1 unless overridden: 64 + 64 samples per ray (``--steps``), the far plane moved
out by 1.0 (``--ray-end``, default ``ray_end + 1``), truncation 0.7 (per-class mean w for conditional models,
§8.2), synthesis noise ``const``. z per seed is ``np.random.RandomState(seed).randn(1, z_dim)`` as the official
inference script, so seeds name the same latents as there; the class of a seed is ``--classes`` (every class x seed
pair) or ``RandomState(seed).choice(c_dim)``. Trajectories turn around the mean posterior camera (§2.5, §8.3).
"""
from __future__ import annotations

import logging
import re
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from stages.common.devices import check_device_spec
from stages.common.errors import BadOptionError, ConfigValueError
from stages.common.validate import CheckedRequest, Range, one_of

logger = logging.getLogger(__name__)

MAX_SEEDS = 4096  # samples per export: seeds, or class x seed pairs with --classes
MAX_SEED = 2**32 - 1  # np.random.RandomState's range (the official latents, module docstring)
FAR_PLANE_OFFSET = 1.0  # ref §8.1
STEP_MULTIPLIER = 2  # ref §8.1: 64 + 64 samples for a 32 + 32 model
VIDEO_KINDS = ("rgb", "depth", "both")
MESH_FORMATS = ("obj", "ply", "glb")
def _choice(name: str, value: str | None, choices: tuple[str, ...], expected: str) -> None:
    if value is not None and value not in choices:
        raise ConfigValueError(name, f"expected {expected}, got {value!r}")


@dataclass(frozen=True)
class ExportRequest(CheckedRequest):
    """Everything the ``3dgp export`` command line says (None = default), checked on construction like the configs
    (``stages.common.validate.Checked``: types, ranges, choices, the seeds and the device's syntax; one line naming
    the option). What needs the snapshot or the file system is checked by :func:`run` before anything is written."""

    ckpt: str  # a snapshot or a run directory (its best snapshot)
    outdir: str
    seeds: str = "0-7"
    classes: str | None = None
    truncation: float = 0.7
    noise_mode: str = "const"
    device: str | None = None
    resolution: int | None = None  # render size (default: the model's)
    steps: int | None = None  # samples per ray, coarse = fine (default: 2x the model's, §8.1)
    ray_end: float | None = None  # far plane (default: model's + 1.0, §8.1)
    batch: int = 4
    video: bool = False
    trajectory: str = "front_circle"
    frames: int | None = None
    fps: int = 30
    video_format: str = "mp4"
    video_kind: str = "both"
    grid: bool = False
    grid_views: int = 3
    mesh: str | None = None
    mesh_res: int = 128
    level: float | None = None
    volume: str | None = None  # "npy" | "mrc"
    report: bool = False

    _RANGES = {"truncation": Range(0, 2), "fps": Range(1, 120), "batch": Range(1, 1024), "grid_views": Range(1, 16),
               "mesh_res": Range(16, 1024), "frames": Range(1, 10_000), "resolution": Range(8, 2048),
               "steps": Range(3, 1024)}  # steps: importance sampling needs 3 coarse samples
    _ARGUMENTS = {"ckpt": "CKPT", "video_format": "--format"}  # fields the command line spells otherwise

    def _check_values(self) -> None:
        from stages.export.trajectories import TRAJECTORIES

        for name in ("ckpt", "outdir"):
            if not getattr(self, name).strip():
                raise ConfigValueError(name, "must not be empty")
        parse_seeds(self.seeds)
        if self.trajectory not in TRAJECTORIES:
            raise ConfigValueError("trajectory", f"unknown trajectory {self.trajectory!r} (expected "
                                                 f"{', '.join(TRAJECTORIES)})")
        one_of("video_kind", self.video_kind, VIDEO_KINDS)
        _choice("video_format", self.video_format, ("mp4", "gif"), "mp4 or gif")
        if self.mesh is not None:
            one_of("mesh", self.mesh, MESH_FORMATS)
        _choice("volume", self.volume, ("npy", "mrc"), "npy or mrc")
        _choice("noise_mode", self.noise_mode, ("const", "random", "none"), "const, random or none")
        if self.level is not None and not self.level > 0:
            raise ConfigValueError("level", f"must be a finite density > 0, got {self.level:g}")
        if self.ray_end is not None and not self.ray_end > 0:
            raise ConfigValueError("ray_end", f"must be a finite distance > 0, got {self.ray_end:g}")
        if self.device is not None:
            check_device_spec(self.device, "--device")

    def _check_combinations(self) -> None:
        if self.volume is not None and self.mesh is None:
            raise ConfigValueError("volume", "the density volume is written with a mesh: add --mesh obj|ply|glb")
        if not (self.video or self.grid or self.mesh or self.report):
            raise ConfigValueError("video", "nothing to export: add --video, --grid, --mesh FORMAT and/or --report")


@dataclass
class ExportResult:
    outdir: str
    files: dict[str, list[str]] = field(default_factory=dict)  # kind -> paths

    def add(self, kind: str, path) -> None:
        self.files.setdefault(kind, []).append(str(path))


def parse_seeds(text: str) -> list[int]:
    """``"0-15"``, ``"1,4,9"``, ``"0-3,10"`` -> sorted unique seeds (BadOptionError names --seeds)."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise BadOptionError("--seeds", f"bad seed range {part!r} (expected e.g. 0-15 or 1,4,9)")
        lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
        if hi > MAX_SEED:
            raise BadOptionError("--seeds", f"seed {hi} is beyond {MAX_SEED:,} (seeds are 32-bit)")
        if hi < lo:
            raise BadOptionError("--seeds", f"bad seed range {part!r}: the end is before the start")
        if hi - lo + 1 + len(seeds) > MAX_SEEDS:
            raise BadOptionError("--seeds", f"more than {MAX_SEEDS} seeds")
        seeds.extend(range(lo, hi + 1))
    return sorted(set(seeds))


def parse_classes(text: str | None, c_dim: int, class_names: list[str]) -> list[int] | None:
    """``--classes`` (names or ids, comma separated) -> class ids; None when not given."""
    if text is None:
        return None
    if c_dim == 0:
        raise BadOptionError("--classes", "this model is unconditional (it has no classes)")
    ids = []
    for part in text.split(","):
        part = part.strip()
        if part.isdigit():
            index = int(part)
        elif part in class_names:
            index = class_names.index(part)
        else:
            known = f" (known: {', '.join(class_names[:10])}{' ...' if len(class_names) > 10 else ''})" \
                if class_names else ""
            raise BadOptionError("--classes", f"unknown class {part!r}{known}")
        if not 0 <= index < c_dim:
            raise BadOptionError("--classes", f"class id {index} is outside 0..{c_dim - 1}")
        ids.append(index)
    return ids


def _check_ray_end(req: ExportRequest, G) -> None:
    """What the request alone cannot say: ``--ray-end`` lies beyond the loaded model's near plane."""
    if req.ray_end is not None and req.ray_end <= G.ray_start:
        raise BadOptionError("--ray-end", f"{req.ray_end:g} must be beyond the model's near plane {G.ray_start:g}")


@dataclass
class Samples:
    """The exported samples: seed, class and ws per sample."""

    seeds: list[int]
    classes: list[int | None]
    ws: torch.Tensor  # [N, num_ws, w_dim]

    def name(self, i: int) -> str:
        c = self.classes[i]
        return f"seed{self.seeds[i]:04d}" + ("" if c is None else f"-class{c:04d}")


def make_samples(G, seeds: list[int], class_ids: list[int] | None, truncation: float, device) -> Samples:
    """ws per (class, seed) with the official latents and truncation (module docstring, ref §8.2)."""
    from stages.nn.inputs import make_generator, one_hot

    pairs = [(c, s) for c in class_ids for s in seeds] if class_ids else \
        [((int(np.random.RandomState(s).choice(G.c_dim)) if G.c_dim else None), s) for s in seeds]
    z = torch.from_numpy(np.stack([np.random.RandomState(s).randn(G.z_dim) for _, s in pairs])).float().to(device)
    c = None
    if G.c_dim:
        c = one_hot(torch.tensor([cls for cls, _ in pairs], device=device), G.c_dim)
    with torch.no_grad():
        center = None
        if truncation != 1 and c is not None:
            center = G.mapping.class_mean_w(c, generator=make_generator(0))  # [N, w_dim]
        ws = G.mapping(z, c, truncation_psi=truncation, w_center=center)
    return Samples([s for _, s in pairs], [cls for cls, _ in pairs], ws)


def _render_kwargs(G, req: ExportRequest) -> dict:
    steps = req.steps or STEP_MULTIPLIER * G.num_coarse_steps
    return {"num_coarse_steps": steps, "num_fine_steps": steps,
            "ray_end": req.ray_end if req.ray_end is not None else G.ray_end + FAR_PLANE_OFFSET}


def _class_names(config: dict) -> list[str]:
    from stages.data.lmdb_store import read_meta

    path = (config.get("data") or {}).get("path")
    try:
        return list(read_meta(path)["class_names"]) if path else []
    except Exception:  # noqa: BLE001 - the dataset may be elsewhere now; ids still work
        return []


def _upscale(frames: torch.Tensor, res: int) -> torch.Tensor:
    """Nearest-neighbour upscale ``[..., H, W]`` of renders below 128 px so that small models can be seen."""
    factor = max(1, 128 // res)
    return frames.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1) if factor > 1 else frames


def _write_videos(G, samples: Samples, base, posterior, req: ExportRequest, outdir: Path, kw: dict,
                  result: ExportResult) -> None:
    from stages.export.media import compose_views, depth_to_color, render_views, tile, write_video
    from stages.export.trajectories import make_trajectory, posterior_yaw_range

    yaw_range = posterior_yaw_range(posterior) if req.trajectory == "orbit" else None
    cameras = make_trajectory(req.trajectory, base, req.frames, yaw_range=yaw_range)  # [F, 8]
    frames, depth = render_views(G, samples.ws, cameras, resolution=req.resolution, batch=req.batch, progress=True,
                                 seeds=samples.seeds, **kw)  # [N, F, 3, H, W], [N, F, 1, H, W]
    views = compose_views(frames, depth_to_color(depth, G.ray_start, kw["ray_end"]), req.video_kind)
    views = _upscale(views, frames.shape[-1])
    suffix = f"{req.trajectory}-{req.video_kind}.{req.video_format}"
    for i in range(len(samples.seeds)):
        result.add("videos", write_video(outdir / "videos" / f"{samples.name(i)}-{suffix}",
                                         views[i].permute(0, 2, 3, 1), fps=req.fps))
    if len(samples.seeds) > 1:
        grid = tile(views[:16]).permute(0, 2, 3, 1)  # ref §8.4: up to 16 videos per grid
        result.add("videos", write_video(outdir / f"grid-{suffix}", grid, fps=req.fps))


def _write_grid(G, samples: Samples, base, req: ExportRequest, outdir: Path, kw: dict, result: ExportResult):
    from stages.export.media import depth_to_color, render_views, write_grid_png
    from stages.export.trajectories import make_trajectory

    cameras = make_trajectory("points", base, req.grid_views)  # yaw offsets over +-0.5 around the mean camera
    frames, depth = render_views(G, samples.ws, cameras, resolution=req.resolution, batch=req.batch,
                                 seeds=samples.seeds, **kw)
    res = frames.shape[-1]
    path = write_grid_png(outdir / "grid.png", _upscale(frames, res),
                          _upscale(depth_to_color(depth, G.ray_start, kw["ray_end"]), res))
    result.add("grids", path)
    from PIL import Image

    for i in range(len(samples.seeds)):  # the frontal view of each sample, for the report
        sample_path = outdir / "samples" / f"{samples.name(i)}.png"
        sample_path.parent.mkdir(exist_ok=True)
        Image.fromarray(_upscale(frames[i, len(cameras) // 2], res).permute(1, 2, 0).numpy()).save(sample_path)
        result.add("samples", sample_path)


def _write_meshes(G, samples: Samples, posterior, req: ExportRequest, outdir: Path, result: ExportResult) -> list:
    from stages.common.progress import track
    from stages.export.mesh import export_mesh

    summaries = []
    for i in track(range(len(samples.seeds)), description="meshes", unit="mesh"):
        name = samples.name(i)
        volume = outdir / "meshes" / f"{name}-density.{req.volume}" if req.volume else None
        summary = export_mesh(G, samples.ws[i:i + 1], outdir / "meshes" / f"{name}.{req.mesh}", cameras=posterior,
                              resolution=req.mesh_res, level=req.level, volume_path=volume)
        logger.info("%s: %d vertices, %d faces, level %.3g (%s), watertight %s", name, summary["vertices"],
                    summary["faces"], summary["level"], summary["level_rule"], summary["watertight"])
        result.add("meshes", summary["path"])
        if summary["volume_path"]:
            result.add("volumes", summary["volume_path"])
        summaries.append(summary)
    return summaries


def _write_report(snap, req: ExportRequest, outdir: Path, result: ExportResult) -> None:
    from stages.export.outdir import file_records
    from stages.export.report import write_report

    run_dir = snap.run_dir
    files = result.files
    images = [(Path(p).stem, p) for p in files.get("samples", [])] + [("grid", p) for p in files.get("grids", [])]
    videos = [(Path(p).stem, p) for p in files.get("videos", []) if Path(p).name.startswith("grid-")] or \
        [(Path(p).stem, p) for p in files.get("videos", [])[:8]]
    meshes = [(Path(p).stem, p) for p in files.get("meshes", []) if p.endswith(".glb")][:8]
    cards = sorted(run_dir.glob("*.metrics.json"))
    path = write_report(outdir / "report.html", title=f"3dgp export: {snap.path.name} (kimg {snap.kimg:.3f})",
                        images=images, videos=videos, meshes=meshes,
                        stats_jsonl=run_dir / "stats.jsonl" if (run_dir / "stats.jsonl").is_file() else None,
                        metrics_jsonl=run_dir / "metrics.jsonl" if (run_dir / "metrics.jsonl").is_file() else None,
                        cards=cards, config=snap.config,
                        provenance={"snapshot": snap.describe(), "files": file_records(outdir)})
    result.add("report", path)


def run(req: ExportRequest) -> ExportResult:
    """Export what ``req`` asks for (module docstring) into a staging folder that replaces ``--outdir`` at the end
    (:mod:`stages.export.outdir`); returns the written files by kind, under their final names."""
    from stages.common.devices import resolve_device
    from stages.nn.snapshots import load_snapshot, resolve_snapshots
    from stages.export.outdir import check_outdir, discard_staging, open_staging, publish, write_manifest

    seeds = parse_seeds(req.seeds)
    device = resolve_device(req.device)
    final = check_outdir(req.outdir)  # missing, empty or an export of ours; creates nothing
    path = resolve_snapshots(req.ckpt, "best")[0]
    snap = load_snapshot(path, device)  # the one read of the checkpoint (issue 20 §6)
    _check_ray_end(req, snap.G)
    class_ids = parse_classes(req.classes, snap.G.c_dim, _class_names(snap.config))
    if len(class_ids or [None]) * len(seeds) > MAX_SEEDS:
        raise BadOptionError("--classes", f"{len(class_ids)} classes x {len(seeds)} seeds is more than {MAX_SEEDS} "
                                          "samples; export fewer at a time")
    staging = open_staging(final)  # only once every option is known to be good: a refused start leaves nothing
    try:
        result = _export(req, snap, seeds, class_ids, device, staging)
        write_manifest(staging, snap.describe(), dataclasses.asdict(req))
        publish(staging, final)
    except BaseException:
        discard_staging(staging)
        raise
    # the files by their final names, as the user wrote --outdir
    moved = ExportResult(outdir=str(final))
    for kind, paths in result.files.items():
        for p in paths:
            moved.add(kind, final / Path(p).relative_to(staging))
    return moved


def _export(req: ExportRequest, snap, seeds: list[int], class_ids, device, outdir: Path) -> ExportResult:
    """Render and write everything ``req`` asks for into ``outdir`` (the staging folder)."""
    from stages.metrics.sources import GeneratorSource
    from stages.nn.build import build_camera_prior
    from stages.nn.camera_adaptor import mean_posterior_camera

    G, path = snap.G, snap.path
    samples = make_samples(G, seeds, class_ids, req.truncation, device)
    prior = build_camera_prior(snap.model_config)
    posterior, _ = GeneratorSource(G, prior, None, device, seed=0).cameras(1024)  # [1024, 8]
    if G.camera_adaptor is not None:
        from stages.nn.inputs import make_generator

        with torch.no_grad():
            base = mean_posterior_camera(G.camera_adaptor, prior, G.z_dim, G.c_dim, generator=make_generator(0),
                                         device=device).cpu()  # [8], ref §2.5
    else:
        base = prior.mean_camera()
    kw = _render_kwargs(G, req)
    result = ExportResult(outdir=str(outdir))
    logger.info("exporting %d sample(s) of %s (kimg %.3f) on %s: %d+%d samples per ray, far plane %.2f", len(seeds),
                path.name, snap.kimg, device, kw["num_coarse_steps"], kw["num_fine_steps"], kw["ray_end"])
    if req.grid or req.report:
        _write_grid(G, samples, base, req, outdir, kw, result)
    if req.video:
        _write_videos(G, samples, base, posterior, req, outdir, kw, result)
    if req.mesh is not None:
        _write_meshes(G, samples, posterior.to(device), req, outdir, result)
    if req.report:
        _write_report(snap, req, outdir, result)
    return result
