"""One comparison table for several runs (``scripts/reproduce/ablations.sh``): final metrics and kimg to a target FID.

``3dgp compare OUT [--target-fid F]`` reads, for every variant folder ``OUT/<variant>/``, its metric card
``metrics.json`` (``3dgp eval``; read with ``stages.metrics.card.load_card``) and the ``metrics.jsonl`` of its run
directory (the curve training wrote), and prints a markdown table: one row per variant, one column per metric of
the cards, plus the first kimg at which the training curve's FID reached the target (default: the baseline's final
training FID, so the column reads "how long each variant takes to get as good as the baseline"). The table is also
written to ``OUT/comparison.md``.
"""
from __future__ import annotations

import math
from pathlib import Path

from stages.common.errors import BadFileError, BadOptionError
from stages.common.stats import read_jsonl
from stages.metrics.card import load_card

BASELINE = "baseline"


def load_variant(folder: Path) -> tuple[dict[str, float], list[dict]]:
    """(metric name -> value of the card, training metric records) of one variant folder."""
    values = load_card(folder / "metrics.json").values()
    curve: list[dict] = []
    for run in sorted((folder / "runs").glob("*/metrics.jsonl")):
        curve = [r for r in read_jsonl(run) if r.get("source") != "eval"]
    return values, curve


def kimg_to_reach(curve: list[dict], target: float) -> float | None:
    """First kimg at which a training FID (the first ``fid*`` key of each record) is <= ``target``."""
    for record in curve:
        fid = next((v for k, v in record.items() if k.startswith("fid") and isinstance(v, (int, float))), None)
        if fid is not None and fid <= target:
            return float(record["kimg"])
    return None


def _final_fid(curve: list[dict]) -> float | None:
    fids = [v for r in curve for k, v in r.items() if k.startswith("fid") and isinstance(v, (int, float))]
    return fids[-1] if fids else None


def compare(out: str | Path, target_fid: float | None = None) -> str:
    """The markdown comparison of every ``out/<variant>/`` with a ``metrics.json`` (module docstring)."""
    out = Path(out)
    if not out.is_dir():
        raise BadFileError(out, "not a folder" if out.exists() else "no such folder")
    if target_fid is not None and not (math.isfinite(target_fid) and target_fid > 0):
        raise BadOptionError("--target-fid", f"must be a finite FID > 0, got {target_fid:g}")
    variants = {p.parent.name: load_variant(p.parent) for p in sorted(out.glob("*/metrics.json"))}
    if not variants:
        raise BadFileError(out, "no <variant>/metrics.json here (a folder of scripts/reproduce/ablations.sh)")
    if target_fid is None and BASELINE in variants:
        target_fid = _final_fid(variants[BASELINE][1])
    names = sorted({n for values, _ in variants.values() for n in values})
    head = ["variant", *names] + ([f"kimg to FID <= {target_fid:.4g}"] if target_fid is not None else [])
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    order = sorted(variants, key=lambda v: (v != BASELINE, v))
    for variant in order:
        values, curve = variants[variant]
        cells = [variant] + [("-" if values.get(n) is None or not math.isfinite(values[n]) else f"{values[n]:.4g}")
                             for n in names]
        if target_fid is not None:
            reached = kimg_to_reach(curve, target_fid)
            cells.append("not reached" if reached is None else f"{reached:g}")
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    (out / "comparison.md").write_text(table)
    return table
