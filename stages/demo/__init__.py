"""``make demo``'s verdict: does the trained model show 3D, measured against the same model at initialisation?

:func:`judge` compares two metric cards of ``3dgp eval`` (``nfs256``, ``mvc``, ``depth``, ``camera``) by the criteria
of the demo (issue 10): NFS at least 2x its init value; multi-view consistency and depth realism against the toy
ground truth each at least ``CLEARLY`` (20 %) better than at init; depth realism also better than the flat-depth
baseline; and the camera posterior still spread (at least half the prior's spread: not collapsed to one view).

Multi-view consistency is judged by the ``mvc`` card's ``parallax_ratio`` (photometric error of the warp with the
model's depth / with a billboard at its median depth; :mod:`stages.metrics.geometry`), not by the raw error: a volume
renderer is view-consistent by construction, and an untrained generator renders a smooth colour field whose raw warp
error is tiny (less texture = less to get wrong) but whose depth explains nothing (ratio ~1). Training adds texture,
which raises the raw error, and geometry, which lowers the ratio. Both numbers are printed.
``3dgp demo summary OUT --init init.json --final final.json`` (:func:`run`) prints the table and writes
``OUT/summary.md``; the cards are read with ``stages.metrics.card.load_card``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stages.common.errors import BadFileError
from stages.metrics.card import CardMetric, MetricCard, load_card

CLEARLY = 0.20  # "clearly better": at least 20 % lower than at init
FID_FACTOR = 0.5  # the final FID against the toy set at most half the initial one
NFS_FACTOR = 2.0
MIN_CAMERA_SPREAD = 0.5


@dataclass(frozen=True)
class Criterion:
    """One line of the verdict."""

    name: str
    init: float | None
    final: float | None
    target: str
    passed: bool


KINDS = ("fid", "nfs", "mvc", "depth", "camera")  # the kinds the verdict reads (3dgp eval --metrics fid1k,nfs256,...)


def _metric(card: MetricCard, kind: str) -> CardMetric:
    metric = card.first_of_kind(kind)
    if metric is None:
        raise BadFileError(card.path or "metric card", f"no available {kind!r} metric (the demo's verdict reads "
                                                       f"{', '.join(KINDS)})")
    return metric


def judge(init: MetricCard, final: MetricCard) -> list[Criterion]:
    """The demo's criteria for metric cards ``init`` and ``final`` (module docstring)."""
    fid0, fid1 = _metric(init, "fid").value, _metric(final, "fid").value
    nfs0, nfs1 = _metric(init, "nfs").value, _metric(final, "nfs").value
    m0, m1 = _metric(init, "mvc"), _metric(final, "mvc")
    mvc0, mvc1 = m0.details.get("parallax_ratio"), m1.details.get("parallax_ratio")
    depth = _depth_criterion(_metric(init, "depth").details, _metric(final, "depth").details)
    spread = _metric(final, "camera").value
    out = [
        Criterion("image quality: FID against the toy set (lower = more like the data)", fid0, fid1,
                  f"<= {FID_FACTOR:g} x init", fid1 <= FID_FACTOR * fid0),
        Criterion("non-flatness (NFS, higher = more 3D)", nfs0, nfs1, f">= {NFS_FACTOR:g} x init",
                  nfs1 >= NFS_FACTOR * nfs0),
        Criterion("multi-view consistency: parallax ratio (lower = depth explains the view change)", mvc0, mvc1,
                  f"<= {1 - CLEARLY:g} x init", mvc0 is not None and mvc1 is not None and mvc1 <= (1 - CLEARLY) * mvc0),
        Criterion("multi-view photometric error (information)", m0.value, m1.value, "-", True),
        depth,
        Criterion("camera spread (posterior / prior std)", None, spread, f">= {MIN_CAMERA_SPREAD:g}",
                  spread >= MIN_CAMERA_SPREAD),
    ]
    return out


def _depth_criterion(d0, d1) -> Criterion:
    """Depth realism against the ground truth: 20 % better than at init and better than the best planar baseline."""
    gt0, gt1 = d0.get("vs_ground_truth"), d1.get("vs_ground_truth")
    planes = d1.get("planar_baselines_vs_ground_truth") or {}
    if gt0 is None or gt1 is None or not planes:
        return Criterion("depth realism vs ground truth", gt0, gt1, "needs a toy dataset (ground truth)", False)
    name, best = min(planes.items(), key=lambda kv: kv[1])
    return Criterion("depth realism vs ground truth (lower = better)", gt0, gt1,
                     f"<= {1 - CLEARLY:g} x init and < best planar baseline ({name.replace('_', ' ')} {best:.3f})",
                     gt1 <= (1 - CLEARLY) * gt0 and gt1 < best)


def trained_kimg(card: MetricCard) -> float | None:
    """How far the evaluated snapshot was trained (kimg), from its card."""
    return None if card.checkpoint is None else card.checkpoint.kimg


def render_markdown(criteria: list[Criterion]) -> str:
    """The verdict as a markdown table plus one line."""
    def num(v):
        return "-" if v is None else f"{v:.4g}"

    lines = ["| criterion | init | final | target | |", "|---|---:|---:|---|---|"]
    lines += [f"| {c.name} | {num(c.init)} | {num(c.final)} | {c.target} | {'pass' if c.passed else 'FAIL'} |"
              for c in criteria]
    passed = sum(c.passed for c in criteria)
    lines += ["", f"{passed} of {len(criteria)} criteria met."]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SummaryRequest:
    """What ``3dgp demo summary`` is asked to judge."""

    out: str  # the demo's output folder: summary.md is written there
    init_card: str  # metric card of the snapshot at initialisation
    final_card: str  # metric card of the final snapshot


def run(request: SummaryRequest) -> list[Criterion]:
    """Judge the two cards, write ``out/summary.md`` and return the criteria."""
    out = Path(request.out)
    if not out.is_dir():
        raise BadFileError(out, f"{'not a' if out.exists() else 'no such'} folder (the demo's output folder)")
    final = load_card(request.final_card)
    criteria = judge(load_card(request.init_card), final)
    kimg = trained_kimg(final)
    trained = "" if kimg is None else \
        f"The final snapshot was trained for {kimg:g} kimg ({kimg * 1000:,.0f} images).\n\n"
    text = "# 3dgp demo: is it 3D?\n\n" + trained + render_markdown(criteria)
    (out / "summary.md").write_text(text)
    return criteria
