"""``3dgp export``: options -> ``ExportRequest`` -> ``stages.export.run`` -> the list of written files (issue 9)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from stages.common.devices import DEVICE_HELP
from threedgp_cli.commands.paths import nonempty_path
from threedgp_cli.console import console

_WHAT = "Samples"
_VIDEO = "Videos"
_GRID = "Grids"
_MESH = "Meshes"
_RENDER = "Rendering (ref §8.1 defaults)"


def export(
    ckpt: Annotated[Path, typer.Argument(help="A snapshot-*.pt, or a run directory (its best snapshot).",
                                         show_default=False, parser=nonempty_path)],
    outdir: Annotated[Path, typer.Option(
        "--outdir", help="Where to write everything: a new or empty folder, or an earlier export (replaced as a whole "
        "at the end; until then it stays as it was).", parser=nonempty_path)] = Path("export"),
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds: ranges and lists, e.g. 0-15 or 1,4,9.",
                                       rich_help_panel=_WHAT)] = "0-7",
    classes: Annotated[Optional[str], typer.Option(
        "--classes", help="Conditional models: class names or ids (every class x seed).", rich_help_panel=_WHAT)] = None,
    truncation: Annotated[float, typer.Option("--truncation", help="Truncation psi (per-class mean w when "
                                              "conditional).", rich_help_panel=_WHAT)] = 0.7,
    noise_mode: Annotated[str, typer.Option("--noise-mode", help="Synthesis noise: const, random or none.",
                                            rich_help_panel=_WHAT)] = "const",
    video: Annotated[bool, typer.Option("--video", help="Turntable videos (one per sample and one grid video).",
                                        rich_help_panel=_VIDEO)] = False,
    trajectory: Annotated[str, typer.Option(
        "--trajectory", help="front_circle, wiggle, line, points (ref §8.3) or orbit (a yaw sweep inside the learned "
                             "camera range).", rich_help_panel=_VIDEO)] = "front_circle",
    frames: Annotated[Optional[int], typer.Option("--frames", help="Frames (default: the trajectory's).",
                                                  rich_help_panel=_VIDEO)] = None,
    fps: Annotated[int, typer.Option("--fps", help="Frames per second.", rich_help_panel=_VIDEO)] = 30,
    video_format: Annotated[str, typer.Option("--format", help="mp4 (H.264) or gif.", rich_help_panel=_VIDEO)] = "mp4",
    video_kind: Annotated[str, typer.Option("--video-kind", help="rgb, depth or both (side by side).",
                                            rich_help_panel=_VIDEO)] = "both",
    grid: Annotated[bool, typer.Option("--grid", help="PNG grid: samples x views with colour-mapped depth.",
                                       rich_help_panel=_GRID)] = False,
    grid_views: Annotated[int, typer.Option("--grid-views", help="Views per sample in the grid.",
                                            rich_help_panel=_GRID)] = 3,
    mesh: Annotated[Optional[str], typer.Option("--mesh", help="Coloured mesh per sample: obj, ply or glb.",
                                                rich_help_panel=_MESH)] = None,
    mesh_res: Annotated[int, typer.Option("--mesh-res", help="Density grid resolution per axis.",
                                          rich_help_panel=_MESH)] = 128,
    level: Annotated[Optional[float], typer.Option("--level", help="Marching-cubes density level (default: "
                                                   "automatic, see --help of the mesh module).",
                                                   rich_help_panel=_MESH)] = None,
    volume: Annotated[Optional[str], typer.Option("--volume", help="Also save the density volume: npy or mrc.",
                                                  rich_help_panel=_MESH)] = None,
    report: Annotated[bool, typer.Option("--report", help="A self-contained report.html (samples, videos, 3D view, "
                                         "training curves, metric cards, config).")] = False,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP,
                                        rich_help_panel=_RENDER)] = "auto",
    resolution: Annotated[Optional[int], typer.Option("--resolution", help="Render size (default: the model's).",
                                                      rich_help_panel=_RENDER)] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Samples per ray, coarse and fine each (default: "
                                                 "2x the model's).", rich_help_panel=_RENDER)] = None,
    ray_end: Annotated[Optional[float], typer.Option("--ray-end", help="Far plane (default: the model's + 1.0).",
                                                     rich_help_panel=_RENDER)] = None,
    batch: Annotated[int, typer.Option("--batch", help="Samples rendered at once.", rich_help_panel=_RENDER)] = 4,
) -> None:
    """Export turntable videos, image/depth grids, coloured meshes and an HTML report of a snapshot."""
    from stages.export import run
    from stages.export.pipeline import ExportRequest

    request = ExportRequest(ckpt=str(ckpt), outdir=str(outdir), seeds=seeds, classes=classes, truncation=truncation,
                            noise_mode=noise_mode, device=device, resolution=resolution, steps=steps, ray_end=ray_end,
                            batch=batch, video=video, trajectory=trajectory, frames=frames, fps=fps,
                            video_format=video_format, video_kind=video_kind, grid=grid, grid_views=grid_views,
                            mesh=mesh, mesh_res=mesh_res, level=level, volume=volume, report=report)
    _print_files(run(request))


def _print_files(result) -> None:
    """The files of a ``stages.export.pipeline.ExportResult``, by kind (the first 8 of each)."""
    for kind, paths in result.files.items():
        console.print(f"[bold]{kind}[/bold] ({len(paths)}):")
        for path in paths[:8]:
            console.print(f"  {path}")
        if len(paths) > 8:
            console.print(f"  ... and {len(paths) - 8} more in {result.outdir}")
