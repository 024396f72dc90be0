"""``3dgp info PATH``: describe a dataset (its meta record), ``--json`` for scripts, ``--preview`` for a contact
sheet; ``--model PRESET`` prints a model preset's parameter table (3DGP ref §7.1, §14).

Extension point: ``_INSPECTORS`` maps "does this path look like X" to "summarise X". A checkpoint inspector
(train stage) is added there; the table renderer shows any summary's scalar fields.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from threedgp_cli.app import app
from threedgp_cli.console import console


def _dataset_inspector() -> tuple[Callable[[Path], bool], Callable[[Path], dict]]:
    from stages.data.summary import dataset_summary, is_dataset_dir

    return is_dataset_dir, dataset_summary


def _checkpoint_inspector() -> tuple[Callable[[Path], bool], Callable[[Path], dict]]:
    from stages.eval.snapshots import describe_checkpoint, is_checkpoint_file

    return is_checkpoint_file, describe_checkpoint


# (name, factory returning (matches(path), summarise(path))). Factories keep stage imports lazy.
_INSPECTORS: list[tuple[str, Callable[[], tuple[Callable[[Path], bool], Callable[[Path], dict]]]]] = [
    ("dataset", _dataset_inspector),
    ("checkpoint (snapshot-*.pt / training-state-*.pt)", _checkpoint_inspector),
]


def summarise_path(path: Path) -> dict[str, Any]:
    """Summarise whatever ``path`` is (a dataset for now) or raise a one-line BadFileError."""
    from stages.common.errors import BadFileError

    if not path.exists():
        partial = path.with_name(path.name + ".partial")
        hint = f" (an unfinished prep is in {partial}; re-run the same `3dgp prep` command)" if partial.exists() else ""
        raise BadFileError(path, f"no such file or directory{hint}")
    for _, factory in _INSPECTORS:
        matches, summarise = factory()
        if matches(path):
            return summarise(path)
    kinds = ", ".join(name for name, _ in _INSPECTORS)
    raise BadFileError(path, f"not something 3dgp info understands (expected: {kinds})")


def _dataset_rows(summary: dict) -> list[tuple[str, str]]:
    meta = summary["meta"]
    depth, embedder = meta["depth"], meta["embedder"]
    names = meta["class_names"]
    labels = "none" if not names else f"{len(names)} classes: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}"
    return [
        ("path", summary["path"]),
        ("items", str(meta["num_items"])),
        ("resolution", f"{meta['resolution']} x {meta['resolution']}"),
        ("depth", "none" if depth is None else f"{depth['name']} ({depth['output_kind']}); {depth['version']}"),
        ("depth weights sha256", (depth or {}).get("weights_sha256") or "-"),
        ("ground-truth depth", "yes" if meta["has_depth_gt"] else "no"),
        ("labels", labels),
        ("embedding", "none" if embedder is None else f"{embedder['name']}, dim {embedder['dim']}"),
        ("embedder sha256", (embedder or {}).get("weights_sha256") or "-"),
        ("source", json.dumps(meta["source"])),
        ("skipped inputs", str(meta["num_skipped"])),
        ("prep command", meta["prep_command"]),
        ("created", f"{meta['created']} by 3dgp {meta['code_version']}"),
        ("format version", str(meta["format_version"])),
        ("size on disk", f"{summary['size_bytes'] / 2**20:.1f} MiB"),
    ]


def _checkpoint_rows(summary: dict) -> list[tuple[str, str]]:
    rows = [
        ("path", summary["path"]),
        ("sha256", summary["sha256"]),
        ("kimg", f"{summary['kimg']:.3f}"),
        ("preset", str(summary["preset"])),
        ("dataset", str(summary["dataset"])),
        ("resolution", f"{summary['resolution']} x {summary['resolution']}"),
        ("classes", str(summary["c_dim"] or "unconditional")),
        ("depth channel", "yes" if summary["depth_channel"] else "no"),
    ]
    for net, counts in summary["params"].items():
        parts = ", ".join(f"{k} {v:,}" for k, v in counts.items() if k != "total")
        rows.append((f"{net} parameters", f"{counts['total']:,}" + (f" ({parts})" if parts else "")))
    if summary.get("best"):
        best = summary["best"]
        rows.append(("best", f"{best.get('metric')} = {best.get('value'):.4g} at kimg {best.get('kimg')}"))
    for record in summary.get("metrics", []):
        values = ", ".join(f"{k} {v:.4g}" for k, v in record.items()
                           if isinstance(v, (int, float)) and k not in ("kimg", "tick", "seconds"))
        rows.append((f"metrics ({record.get('source', 'train')})", values))
    if summary.get("card"):
        rows.append(("metric card", summary["card"]))
    rows += [("ops used in training", str(summary.get("ops") or "-")), ("format version", str(summary["format_version"])),
             ("size on disk", f"{summary['size_bytes'] / 2**20:.1f} MiB")]
    return rows


def _print_table(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


@app.command("info")
def info(
    path: Annotated[Optional[Path], typer.Argument(
        help="A dataset folder written by `3dgp prep`, or a snapshot-*.pt / training-state-*.pt.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON (for scripts).")] = False,
    preview: Annotated[Optional[Path], typer.Option("--preview", help="Write a contact sheet PNG of the dataset.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Print the parameter table of a model preset.")] = None,
) -> None:
    """Describe a dataset (meta record, items, depth, labels, embedding), a checkpoint (kimg, preset, dataset,
    parameters, metrics recorded, ops used) or a model preset."""
    from stages.common.errors import BadOptionError

    if path is None and model is None:
        raise BadOptionError("PATH", "give a dataset folder or a checkpoint, or --model PRESET")
    out: dict[str, Any] = {}
    if path is not None:
        out = summarise_path(path)
        if preview is not None:
            from stages.data.preview import save_dataset_preview

            out["preview"] = str(save_dataset_preview(path, preview))
    if model is not None:
        from stages.nn.param_counts import param_table

        out["model"] = {"preset": model, "params": param_table(model)}
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    if path is not None:
        rows = _dataset_rows(out) if out["kind"] == "dataset" else _checkpoint_rows(out)
        _print_table(f"3dgp {out['kind']}", rows)
        if "preview" in out:
            console.print(f"Preview: {out['preview']}")
    if model is not None:
        _print_table(f"model preset {model}: parameters", [(k, f"{v:,}") for k, v in out["model"]["params"]])
