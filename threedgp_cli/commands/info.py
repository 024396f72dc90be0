"""``3dgp info PATH``: describe a dataset or a checkpoint (``stages.eval.inspect``), ``--json`` for scripts,
``--preview`` for a contact sheet; ``--model PRESET`` prints a model preset's parameter table (3DGP ref §7.1, §14).
The stage returns a typed summary; this module only renders it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from threedgp_cli.commands.paths import nonempty_path
from threedgp_cli.console import console


def _dataset_rows(s) -> list[tuple[str, str]]:
    """Rows of a ``stages.data.summary.DatasetSummary``."""
    names = s.class_names
    labels = "none" if not names else f"{len(names)} classes: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}"
    depth = "none" if not s.has_depth else f"{s.depth_model} ({s.depth_output_kind}); {s.depth_version}"
    return [
        ("path", s.path),
        ("items", str(s.num_items)),
        ("resolution", f"{s.resolution} x {s.resolution}"),
        ("depth", depth),
        ("depth weights sha256", s.depth_weights_sha256 or "-"),
        ("ground-truth depth", "yes" if s.has_depth_gt else "no"),
        ("labels", labels),
        ("embedding", "none" if s.embedder_name is None else f"{s.embedder_name}, dim {s.embedding_dim}"),
        ("embedder sha256", s.embedder_weights_sha256 or "-"),
        ("source", json.dumps(s.source)),
        ("skipped inputs", str(s.num_skipped)),
        ("prep command", s.prep_command),
        ("created", f"{s.created} by 3dgp {s.code_version}"),
        ("format version", str(s.format_version)),
        ("size on disk", f"{s.size_bytes / 2**20:.1f} MiB"),
    ]


def _checkpoint_rows(s) -> list[tuple[str, str]]:
    """Rows of a ``stages.eval.inspect.CheckpointSummary``."""
    rows = [
        ("path", s.path),
        ("sha256", s.sha256),
        ("kimg", f"{s.kimg:.3f}"),
        ("preset", str(s.preset)),
        ("dataset", str(s.dataset)),
        ("resolution", f"{s.resolution} x {s.resolution}"),
        ("classes", str(s.c_dim or "unconditional")),
        ("depth channel", "yes" if s.depth_channel else "no"),
    ]
    for net, counts in s.params.items():
        parts = ", ".join(f"{k} {v:,}" for k, v in counts.items() if k != "total")
        rows.append((f"{net} parameters", f"{counts['total']:,}" + (f" ({parts})" if parts else "")))
    if s.best:
        rows.append(("best", f"{s.best.get('metric')} = {s.best.get('value'):.4g} at kimg {s.best.get('kimg')}"))
    for record in s.metrics:
        values = ", ".join(f"{k} {v:.4g}" for k, v in record.items()
                           if isinstance(v, (int, float)) and k not in ("kimg", "tick", "seconds"))
        rows.append((f"metrics ({record.get('source', 'train')})", values))
    if s.card:
        rows.append(("metric card", s.card))
    rows += [("ops used in training", str(s.ops or "-")), ("format version", str(s.format_version)),
             ("size on disk", f"{s.size_bytes / 2**20:.1f} MiB")]
    return rows


def _print_table(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


def _model_table(name: str) -> list[tuple[str, int]]:
    """The ref §14 parameter table of the model of ``3dgp train --preset NAME``: one list of presets for both
    commands (issue 19 §7); G and D are built on the meta device (no memory)."""
    import torch

    from stages.common.errors import BadOptionError
    from stages.nn.build import build
    from stages.nn.param_counts import discriminator_breakdown, generator_breakdown
    from stages.train.config import get_train_preset

    try:
        cfg = get_train_preset(name).model
    except BadOptionError as exc:
        raise BadOptionError("--model", exc.message) from None
    with torch.device("meta"):
        G, D = build(cfg)
    return generator_breakdown(G) + discriminator_breakdown(D)


def info(
    path: Annotated[Optional[Path], typer.Argument(
        help="A dataset folder written by `3dgp prep`, or a snapshot-*.pt / training-state-*.pt.",
        parser=nonempty_path)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON (for scripts).")] = False,
    preview: Annotated[Optional[Path], typer.Option("--preview", help="Write a contact sheet PNG of the dataset.",
                                                    parser=nonempty_path)] = None,
    model: Annotated[Optional[str], typer.Option(
        "--model", help="Print the parameter table of the model of a `3dgp train --preset` (tiny, demo, toy64, "
        "dogs, elephants, horses, imagenet).")] = None,
) -> None:
    """Describe a dataset (meta record, items, depth, labels, embedding), a checkpoint (kimg, preset, dataset,
    parameters, metrics recorded, ops used) or a model preset."""
    from stages.common.errors import BadOptionError, ThreeDGPError

    if path is None and model is None:
        raise ThreeDGPError("PATH: give a dataset folder or a checkpoint, or --model PRESET")
    if preview is not None and (preview.suffix.lower() != ".png" or preview.is_dir()):
        raise BadOptionError("--preview", f"must be a .png file path, got {preview}")
    if preview is not None and path is None:
        raise BadOptionError("--preview", "previews a dataset: give its folder as PATH")
    from stages.eval.inspect import summarise_path

    out: dict[str, Any] = {}
    summary = None
    if path is not None:
        summary = summarise_path(path)
        out = summary.to_json()
        if preview is not None:
            from stages.data.preview import save_dataset_preview

            out["preview"] = str(save_dataset_preview(path, preview))
    if model is not None:
        out["model"] = {"preset": model, "params": _model_table(model)}
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    if summary is not None:
        rows = _dataset_rows(summary) if summary.kind == "dataset" else _checkpoint_rows(summary)
        _print_table(f"3dgp {summary.kind}", rows)
        if "preview" in out:
            console.print(f"Preview: {out['preview']}")
    if model is not None:
        _print_table(f"model preset {model}: parameters", [(k, f"{v:,}") for k, v in out["model"]["params"]])
