"""Inline SVG line plots for the report (no plotting library): axes, round ticks, labels, a legend."""
from __future__ import annotations

import html
import math

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def escape(text: object) -> str:
    """``str(text)`` escaped for HTML and SVG text and attribute values (quotes too)."""
    return html.escape(str(text), quote=True)


def _nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """About ``target`` round tick values covering [lo, hi]."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10)), key=lambda st: abs(math.log(st / raw)))
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(0.0 if abs(t) < step * 1e-9 else t)
        t += step
    return ticks


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _legend_layout(names, width: int, left: int) -> tuple[list[tuple[str, float, int]], int]:
    """Legend entries (name, x offset, row) wrapped at the plot width (~6.5 px per character at 11 px), and the
    legend's height."""
    legend, x_cursor, row = [], 0.0, 0
    for name in names:
        w = 26 + 6.5 * len(name) + 14
        if x_cursor and x_cursor + w > width - left:
            x_cursor, row = 0.0, row + 1
        legend.append((name, x_cursor, row))
        x_cursor += w
    return legend, (18 * (row + 1) if legend else 0)


def _data_range(series: dict[str, list[tuple[float, float]]]) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) covering every point: never empty, y padded by 5 % (or +-10 % of a constant)."""
    xs = [p[0] for pts in series.values() for p in pts] or [0.0, 1.0]
    ys = [p[1] for pts in series.values() for p in pts] or [0.0, 1.0]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    pad = (abs(y0) * 0.1 or 1.0) if y1 == y0 else (y1 - y0) * 0.05
    return x0, x1, y0 - pad, y1 + pad


def svg_line_plot(series: dict[str, list[tuple[float, float]]], *, title: str, xlabel: str, ylabel: str,
                  width: int = 480, height: int = 280) -> str:
    """An inline ``<svg>`` with one ``<polyline>`` per non-empty series, axes, ticks, labels and a legend."""
    series = {name: pts for name, pts in series.items() if pts}
    left, right, top, bottom = 64, 14, 28, 46
    legend, legend_h = _legend_layout(series, width, left)
    total_h = height + legend_h
    pw, ph = width - left - right, height - top - bottom
    x0, x1, y0, y1 = _data_range(series)

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    out = [f'<svg class="plot" viewBox="0 0 {width} {total_h}" width="{width}" height="{total_h}" role="img" '
           f'aria-label="{escape(title)}">', f"<title>{escape(title)}</title>",
           f'<text class="ptitle" x="{left + pw / 2:.1f}" y="17" text-anchor="middle">{escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>']
    for t in _nice_ticks(x0, x1):
        X = sx(t)
        out.append(f'<line class="grid" x1="{X:.1f}" y1="{top}" x2="{X:.1f}" y2="{top + ph}"/>')
        out.append(f'<text class="tick" x="{X:.1f}" y="{top + ph + 14}" text-anchor="middle">{_fmt(t)}</text>')
    for t in _nice_ticks(y0, y1):
        Y = sy(t)
        out.append(f'<line class="grid" x1="{left}" y1="{Y:.1f}" x2="{left + pw}" y2="{Y:.1f}"/>')
        out.append(f'<text class="tick" x="{left - 5}" y="{Y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    out.append(f'<text class="alabel" x="{left + pw / 2:.1f}" y="{top + ph + 32}" text-anchor="middle">'
               f"{escape(xlabel)}</text>")
    out.append(f'<text class="alabel" transform="translate(14 {top + ph / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{escape(ylabel)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{coords}">'
                   f"<title>{escape(name)}</title></polyline>")
        if len(pts) <= 40:  # markers keep short curves (and single points) visible
            out.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.4" fill="{color}"/>' for x, y in pts)
    for i, (name, lx, lrow) in enumerate(legend):
        color = PALETTE[i % len(PALETTE)]
        X, Y = left + lx, height + 4 + 18 * lrow
        out.append(f'<line x1="{X:.1f}" y1="{Y:.1f}" x2="{X + 20:.1f}" y2="{Y:.1f}" stroke="{color}" '
                   f'stroke-width="2.5"/>')
        out.append(f'<text class="legend" x="{X + 26:.1f}" y="{Y + 4:.1f}">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)
