"""``3dgp eval``: options -> ``stages.eval.EvalRequest`` -> ``stages.eval.run`` -> a table and the cards' paths."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from stages.common.devices import DEVICE_HELP
from threedgp_cli.console import console

_WHAT = "What to evaluate"
_HOW = "How"
_NETS = "Feature networks"

_METRICS_HELP = ("Comma list: fid2k_full, fid10k_full, fid50k_full, kid50k_full, is50k, nfs256 (the paper's); fid, kid, "
                 "is, nfs (N = --num-gen); mvc (multi-view consistency), depth (depth realism), camera (posterior "
                 "camera spread); or sized forms such as fid256, nfs32. Default: fid2k_full,nfs256 for a checkpoint, "
                 "fid,kid for --fakes.")


def eval_(
    ckpt: Annotated[Optional[str], typer.Argument(
        help="A snapshot-*.pt (or training-state-*.pt), or a run directory (see --snapshots).",
        show_default=False)] = None,
    fakes: Annotated[Optional[str], typer.Option(
        "--fakes", help="Score this image set instead of a checkpoint: a folder/zip of images or a prepped dataset.",
        rich_help_panel=_WHAT)] = None,
    data: Annotated[Optional[str], typer.Option(
        "--data", help="Reference set (default: the checkpoint's dataset); e.g. the full ImageNet as the paper.",
        rich_help_panel=_WHAT)] = None,
    metrics: Annotated[Optional[str], typer.Option("--metrics", help=_METRICS_HELP, rich_help_panel=_WHAT)] = None,
    snapshots: Annotated[str, typer.Option(
        "--snapshots", help="For a run directory: best (by training's first metric), latest, or all (a metric "
                            "curve appended to the run's metrics.jsonl).", rich_help_panel=_WHAT)] = "best",
    num_gen: Annotated[Optional[int], typer.Option(
        "--num-gen", help="Fakes for the plain metric names (fid, kid, is, nfs, mvc, depth, camera); default: "
                          "2048 (nfs, depth 256; mvc 64), or every image of --fakes.", rich_help_panel=_HOW)] = None,
    batch: Annotated[Optional[int], typer.Option(
        "--batch", hidden=True, help="Obsolete: metrics render in fixed units, so no batch size can change them.",
        rich_help_panel=_HOW)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of z, classes and cameras.", rich_help_panel=_HOW)] = 0,
    truncation: Annotated[float, typer.Option(
        "--truncation", help="Truncation psi (1 = none, as the paper's metrics).", rich_help_panel=_HOW)] = 1.0,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP, rich_help_panel=_HOW)] = "auto",
    gpus: Annotated[int, typer.Option(
        "--gpus", help="Processes on this node, each evaluating its share of every metric (one GPU each; on a CPU "
                       "they share the cores). Under torchrun every process is one already.",
        rich_help_panel=_HOW)] = 1,
    workers: Annotated[int, typer.Option("--workers", help="Image decoding workers.", rich_help_panel=_HOW)] = 2,
    resolution: Annotated[Optional[int], typer.Option(
        "--resolution", help="Read image folders at this size (default: the reference dataset's).",
        rich_help_panel=_HOW)] = None,
    resize: Annotated[str, typer.Option(
        "--resize", help="How images reach Inception's 299x299: stylegan (NVIDIA's detector, the paper's numbers) "
                         "or clean (clean-fid's).", rich_help_panel=_NETS)] = "stylegan",
    inception: Annotated[Optional[str], typer.Option(
        "--inception", help="Your own inception-2015-12-05 TorchScript (default: the packaged one).",
        rich_help_panel=_NETS)] = None,
    is_weights: Annotated[Optional[str], typer.Option(
        "--is-weights", help="Inception with its classifier, for IS (NVIDIA's inception-2015-12-05.pt or a "
                             "TorchScript returning logits).", rich_help_panel=_NETS)] = None,
    out: Annotated[Optional[str], typer.Option(
        "--out", help="Metric card path (a folder with several snapshots); default beside the checkpoint, with a "
                      "line in the run's metrics.jsonl. With --out nothing else is written.")] = None,
) -> None:
    """Score a checkpoint (or any image set) with FID/KID/IS, NFS and geometry scores, and write a metric card."""
    from stages.eval import EvalRequest, run

    if batch is not None:
        _obsolete_batch(batch)

    request = EvalRequest(ckpt=ckpt, fakes=fakes, data=data, metrics=metrics, snapshots=snapshots, num_gen=num_gen,
                          seed=seed, truncation=truncation, device=device, gpus=gpus, workers=workers,
                          resize=resize, inception=inception, is_weights=is_weights, resolution=resolution, out=out)
    result = run(request)
    for target in result.targets:
        console.print(_table(target))
        console.print(f"metric card: {target.card_path}")
    for path in sorted(set(result.metrics_jsonl)):
        console.print(f"appended to {path}")


def _obsolete_batch(batch: int) -> None:
    """``--batch`` of older command lines: accepted, changes nothing, and says so."""
    import logging

    from stages.common.errors import BadOptionError

    if batch < 1:
        raise BadOptionError("--batch", f"must be >= 1, got {batch}")
    logging.getLogger("stages.eval").warning(
        "--batch is obsolete and ignored: the generator renders fixed units of 4 samples and the detector batches "
        "of 32, so that no batch size can change the numbers")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.1f}"


def _notes(result) -> str:
    if result.unavailable:
        return result.unavailable
    d = result.details
    if result.kind == "depth":
        planes = d.get("planar_baselines_vs_ground_truth") or d.get("planar_baselines") or {}
        best = f"; best planar baseline {min(planes.values()):.4g}" if planes else ""
        if "vs_ground_truth" in d:
            return f"vs GT {d['vs_ground_truth']:.4g}{best} (vs GT)"
        return f"flat baseline {d['flat_baseline']:.4g}{best}"
    if result.kind == "mvc":
        return (f"co-visible {d['covisible_fraction']:.0%}; flat-depth error {d['flat_depth_error']:.4g} "
                f"(parallax ratio {d['parallax_ratio']:.3f})")
    if result.kind == "nfs" and "empty_ray_fraction" in d:
        return f"emptied by the density cut {d['empty_ray_fraction']:.0%}"
    if result.kind == "camera":
        return ", ".join(f"{k.split('/')[0]} {d[k]:.3g}±{d[k.replace('mean', 'std')]:.2g}" for k in d
                         if k.endswith("/mean") and k.split("/")[0] in ("yaw", "pitch", "fov_deg"))
    return ""


def _table(target):
    from rich.table import Table

    table = Table(title=target.label, title_justify="left")
    for name, justify in (("metric", "left"), ("value", "right"), ("std", "right"), ("fakes", "right"),
                          ("reals", "right"), ("time", "right"), ("notes", "left")):
        table.add_column(name, justify=justify)
    for r in target.results:
        table.add_row(r.name, _fmt(r.value), _fmt(r.std), str(r.num_fakes or "-"), str(r.num_reals or "-"),
                      f"{r.seconds:.0f}s", _notes(r))
    return table
