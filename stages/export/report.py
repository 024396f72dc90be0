"""One self-contained ``report.html`` of a run: samples, depth, videos, 3D meshes, training curves, metric cards, config.

Everything is inlined, so the file opens from disk with no network: images and videos as base64 ``data:`` URIs
(mp4/webm in ``<video controls loop muted autoplay>``, GIF as ``<img>``), meshes (``.glb``) in Google's
``<model-viewer>`` element whose ES module (``assets/model-viewer.min.js``, npm ``@google/model-viewer``, bundling
three.js) is pasted into a ``<script type="module">``; training curves are inline SVG drawn here (no plotting
library). Every ``src=``/``href=`` of the page is a ``data:`` URI or an in-page anchor.

A few lines of page script record what happened, for a person and for the browser test alike: each
``<model-viewer>`` gets ``data-loaded="1"`` on its ``load`` event (``data-error`` on ``error``) and its page box
in ``data-rect="x,y,w,h"`` (CSS px from the top-left of the document), each image and
video ``data-ok="1"``/``"0"`` once decoded or failed, and uncaught errors, failed resources and ``console.error``
calls are collected in ``window.__errors`` and mirrored into ``<html data-errors="[...]">``.
"""
from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Iterable, Sequence

from stages.common.errors import BadFileError
from stages.common.stats import read_jsonl

logger = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
MODEL_VIEWER_JS = ASSETS_DIR / "model-viewer.min.js"
MODEL_VIEWER_VERSION = "4.4.0"
MODEL_VIEWER_SHA256 = "18b2e711035aa4705ee281530a55dc2338ff05eed3d70ae16d54105282a75ed5"
LARGE_REPORT_BYTES = 100 * 1024 * 1024

# (section title, y label, stats.jsonl keys): a panel is drawn when at least one of its keys has a finite value.
STATS_PANELS: list[tuple[str, str, list[str]]] = [
    ("Generator loss", "loss", ["Loss/G/adv"]),
    ("Discriminator loss", "loss", ["Loss/D/real", "Loss/D/fake", "Loss/D/kd"]),
    ("R1 regularisation", "loss", ["Loss/D/r1"]),
    ("Camera posterior spread", "std", ["Camera/yaw/std", "Camera/pitch/std"]),
    ("Speed", "sec/kimg", ["Timing/sec_per_kimg"]),
]
# Keys of a metrics.jsonl line that are bookkeeping, not metrics.
METRICS_NON_METRIC_KEYS = {"kimg", "tick", "seconds", "timestamp", "snapshot", "source", "card"}
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

_IMAGE_MIME = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF87a": "image/gif",
               b"GIF89a": "image/gif", b"RIFF": "image/webp"}

Media = Sequence[tuple[str, "str | os.PathLike"]]


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


# --------------------------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------------------------


def _read_bytes(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BadFileError(path, f"cannot read: {exc.strerror or exc}") from exc


def _sniff_image(data: bytes, path: str | os.PathLike) -> str:
    for magic, mime in _IMAGE_MIME.items():
        if data.startswith(magic) and (mime != "image/webp" or data[8:12] == b"WEBP"):
            return mime
    raise BadFileError(path, "not a PNG, JPEG, GIF or WebP image")


def _sniff_video(data: bytes, path: str | os.PathLike) -> str:
    if data[4:8] == b"ftyp":
        return "video/mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    raise BadFileError(path, "not an MP4, WebM or GIF video")


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _finite(value: object) -> float | None:
    """``value`` as a finite float, or None (strings like ``"nan"`` written by the stats writer count as absent)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        x = float(value)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _read_records(path: str | os.PathLike) -> list[dict]:
    if not Path(path).is_file():
        raise BadFileError(path, "no such file")
    try:
        return [r for r in read_jsonl(path) if isinstance(r, dict)]
    except (OSError, UnicodeDecodeError) as exc:
        raise BadFileError(path, f"cannot read: {exc}") from exc


def _series(records: Iterable[dict], key: str) -> list[tuple[float, float]]:
    """Finite ``(kimg, records[key])`` points sorted by kimg."""
    points = []
    for r in records:
        x, y = _finite(r.get("kimg")), _finite(r.get(key))
        if x is not None and y is not None:
            points.append((x, y))
    return sorted(points, key=lambda p: p[0])


def _load_card(path: str | os.PathLike) -> dict:
    try:
        card = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadFileError(path, f"cannot read: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadFileError(path, f"not a JSON metric card: {exc}") from exc
    if not isinstance(card, dict) or not isinstance(card.get("metrics"), list):
        raise BadFileError(path, "not a metric card (no 'metrics' list)")
    return card


# --------------------------------------------------------------------------------------------------------------------
# SVG line plots
# --------------------------------------------------------------------------------------------------------------------


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


def svg_line_plot(series: dict[str, list[tuple[float, float]]], *, title: str, xlabel: str, ylabel: str,
                  width: int = 480, height: int = 280) -> str:
    """An inline ``<svg>`` with one ``<polyline>`` per non-empty series, axes, ticks, labels and a legend."""
    series = {name: pts for name, pts in series.items() if pts}
    left, right, top, bottom = 64, 14, 28, 46
    # Legend rows below the x label: wrap at the plot width (character width ~6.5 px at 11 px font).
    legend, x_cursor, row = [], 0.0, 0
    for name in series:
        w = 26 + 6.5 * len(name) + 14
        if x_cursor and x_cursor + w > width - left:
            x_cursor, row = 0.0, row + 1
        legend.append((name, x_cursor, row))
        x_cursor += w
    legend_h = 18 * (row + 1) if series else 0
    total_h = height + legend_h
    pw, ph = width - left - right, height - top - bottom

    xs = [p[0] for pts in series.values() for p in pts] or [0.0, 1.0]
    ys = [p[1] for pts in series.values() for p in pts] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 == y0:
        pad = abs(y0) * 0.1 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    else:
        pad = (y1 - y0) * 0.05
        y0, y1 = y0 - pad, y1 + pad

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    out = [f'<svg class="plot" viewBox="0 0 {width} {total_h}" width="{width}" height="{total_h}" role="img" '
           f'aria-label="{_esc(title)}">', f"<title>{_esc(title)}</title>",
           f'<text class="ptitle" x="{left + pw / 2:.1f}" y="17" text-anchor="middle">{_esc(title)}</text>',
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
               f"{_esc(xlabel)}</text>")
    out.append(f'<text class="alabel" transform="translate(14 {top + ph / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{_esc(ylabel)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{coords}">'
                   f"<title>{_esc(name)}</title></polyline>")
        if len(pts) <= 40:  # markers keep short curves (and single points) visible
            out.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.4" fill="{color}"/>' for x, y in pts)
    for i, (name, lx, lrow) in enumerate(legend):
        color = PALETTE[i % len(PALETTE)]
        X, Y = left + lx, height + 4 + 18 * lrow
        out.append(f'<line x1="{X:.1f}" y1="{Y:.1f}" x2="{X + 20:.1f}" y2="{Y:.1f}" stroke="{color}" '
                   f'stroke-width="2.5"/>')
        out.append(f'<text class="legend" x="{X + 26:.1f}" y="{Y + 4:.1f}">{_esc(name)}</text>')
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------------------------------


def _figure(inner: str, caption: str, cls: str = "") -> str:
    return (f'<figure class="{cls}">{inner}<figcaption>{_esc(caption)}</figcaption></figure>' if cls else
            f"<figure>{inner}<figcaption>{_esc(caption)}</figcaption></figure>")


def _image_figures(items: Media) -> tuple[str, int]:
    parts, size = [], 0
    for caption, path in items:
        data = _read_bytes(path)
        uri = _data_uri(_sniff_image(data, path), data)
        size += len(uri)
        parts.append(_figure(f'<img src="{uri}" alt="{_esc(caption)}" loading="eager">', caption))
    return f'<div class="grid">{"".join(parts)}</div>', size


def _video_figures(items: Media) -> tuple[str, int]:
    parts, size = [], 0
    for caption, path in items:
        data = _read_bytes(path)
        mime = _sniff_video(data, path)
        uri = _data_uri(mime, data)
        size += len(uri)
        if mime == "image/gif":
            inner = f'<img src="{uri}" alt="{_esc(caption)}" loading="eager">'
        else:
            inner = (f'<video controls loop muted autoplay playsinline preload="auto" src="{uri}" '
                     f'title="{_esc(caption)}"></video>')
        parts.append(_figure(inner, caption))
    return f'<div class="grid">{"".join(parts)}</div>', size


def _mesh_figures(items: Media) -> tuple[str, int]:
    parts, size = [], 0
    for caption, path in items:
        data = _read_bytes(path)
        if not data.startswith(b"glTF"):
            raise BadFileError(path, "not a binary glTF (.glb) file")
        uri = _data_uri("model/gltf-binary", data)
        size += len(uri)
        parts.append(_figure(f'<model-viewer src="{uri}" alt="{_esc(caption)}" camera-controls auto-rotate '
                             f'interaction-prompt="none" shadow-intensity="0.6" exposure="1.0">'
                             f'</model-viewer>', caption, cls="mesh"))
    return f'<div class="grid">{"".join(parts)}</div>', size


def _curves_section(stats_jsonl: str | os.PathLike | None, metrics_jsonl: str | os.PathLike | None) -> str:
    plots = []
    if stats_jsonl is not None:
        records = _read_records(stats_jsonl)
        for title, ylabel, keys in STATS_PANELS:
            series = {k: _series(records, k) for k in keys}
            if any(series.values()):
                plots.append(svg_line_plot(series, title=title, xlabel="kimg", ylabel=ylabel))
        if not plots:
            plots.append(f'<p class="note">{_esc(stats_jsonl)}: no known training scalars.</p>')
    if metrics_jsonl is not None:
        records = _read_records(metrics_jsonl)
        names: list[str] = []
        for r in records:
            names.extend(k for k in r if k not in METRICS_NON_METRIC_KEYS and k not in names)
        n_metric_plots = 0
        for name in names:
            pts = _series(records, name)
            if pts:
                plots.append(svg_line_plot({name: pts}, title=name, xlabel="kimg", ylabel=name))
                n_metric_plots += 1
        if not n_metric_plots:
            plots.append(f'<p class="note">{_esc(metrics_jsonl)}: no metric values with a kimg.</p>')
    return f'<div class="plots">{"".join(plots)}</div>'


def _cell(value: object, digits: int = 5) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return _esc(f"{value:.{digits}g}")
    return _esc(value)


def _card_table(card: dict, path: str | os.PathLike) -> str:
    rows = []
    for m in card["metrics"]:
        if not isinstance(m, dict):
            continue
        note = m.get("unavailable") or ""
        rows.append(f"<tr><td>{_esc(m.get('name', '?'))}</td><td class=num>{_cell(m.get('value'))}</td>"
                    f"<td class=num>{_cell(m.get('std'))}</td><td class=num>{_cell(m.get('num_fakes'))}</td>"
                    f"<td class=num>{_cell(m.get('num_reals'))}</td><td>{_esc(note)}</td></tr>")
    ckpt = card.get("checkpoint") or {}
    ref = card.get("reference") or {}
    det = card.get("detector") or {}
    facts = [("card", Path(path).name)]
    if ckpt:
        facts.append(("checkpoint", f"{ckpt.get('path', '?')} (kimg {ckpt.get('kimg', '?')})"))
    elif card.get("fakes"):
        fakes = card["fakes"]
        facts.append(("fakes", fakes.get("path") or fakes.get("kind") or json.dumps(fakes, default=str)[:200]
                      if isinstance(fakes, dict) else fakes))
    if ref:
        facts.append(("reference", f"{ref.get('path', '?')} ({ref.get('num_items', ref.get('count', '?'))} items)"))
    if det:
        facts.append(("detector", det.get("resize", det.get("name", ""))))
    for key in ("device", "created", "code_version", "command"):
        if card.get(key):
            facts.append((key, card[key]))
    dl = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in facts)
    return (f'<div class="card"><table><thead><tr><th>metric</th><th>value</th><th>std</th><th>fakes</th>'
            f'<th>reals</th><th>notes</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f"<dl>{dl}</dl></div>")


def _viewer_script() -> str:
    try:
        js = MODEL_VIEWER_JS.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadFileError(MODEL_VIEWER_JS, f"vendored 3D viewer missing ({exc.strerror}); reinstall 3dgp") from exc
    js = re.sub(r"\n//# sourceMappingURL=\S*\s*$", "\n", js)
    # Inline script text must not close the element; the vendored file has no such sequence (checked by a test).
    assert re.search(r"</script|<script", js, re.I) is None, "vendored model-viewer contains a <script> tag"
    return f'<script type="module">\n{js}\n</script>'


CSS = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dee7;--bg:#f6f7fa;--accent:#2a5bd7}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
background:var(--bg)}
header{background:#fff;border-bottom:1px solid var(--line);padding:18px 28px 10px}
header h1{margin:0 0 4px;font-size:24px}
header .meta{color:var(--muted);font-size:13px}
nav{margin-top:8px}
nav a{color:var(--accent);text-decoration:none;margin-right:16px;font-size:14px}
main{padding:8px 28px 40px;max-width:1400px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 18px 16px;margin:18px 0}
section h2{margin:0 0 10px;font-size:19px}
.grid{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{margin:0;max-width:100%}
figure img,figure video{display:block;max-width:100%;min-width:256px;height:auto;
border:1px solid var(--line);border-radius:4px;image-rendering:pixelated;background:#000}
figure.mesh{width:min(520px,100%)}
figcaption{color:var(--muted);font-size:13px;margin-top:4px}
model-viewer{display:block;width:100%;height:360px;border:1px solid var(--line);border-radius:4px;
background:radial-gradient(#fff,#e3e6ec)}
.plots{display:flex;flex-wrap:wrap;gap:12px}
svg.plot{background:#fff;border:1px solid var(--line);border-radius:4px;font-family:inherit}
svg.plot .frame{fill:none;stroke:#8a93a3}
svg.plot .grid{stroke:#eceff4}
svg.plot .tick{font-size:10px;fill:#5b6475}
svg.plot .alabel{font-size:12px;fill:#1d2330}
svg.plot .ptitle{font-size:13px;font-weight:600;fill:#1d2330}
svg.plot .legend{font-size:11px;fill:#1d2330}
.card{margin-bottom:16px}
table{border-collapse:collapse;font-size:14px;margin-bottom:6px}
th,td{border-bottom:1px solid var(--line);padding:4px 12px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#eef1f6}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;font-size:12px;color:var(--muted);margin:4px 0}
dt{font-weight:600}
dd{margin:0;word-break:break-all}
details summary{cursor:pointer;color:var(--accent)}
pre{background:#f3f4f7;border:1px solid var(--line);border-radius:4px;padding:10px;overflow:auto;font-size:12.5px;
max-height:600px}
.note{color:var(--muted)}
footer{color:var(--muted);font-size:12px;padding:0 28px 24px}
"""

# Runs first (classic script in <head>): collects errors before anything else can fail.
HEAD_SCRIPT = """
window.__errors=[];
(function(){
  function sync(){document.documentElement.setAttribute('data-errors',JSON.stringify(window.__errors));}
  function add(msg){window.__errors.push(String(msg));sync();}
  window.addEventListener('error',function(e){
    var t=e.target;
    if(t&&t!==window&&t.tagName){add('resource failed: <'+t.tagName.toLowerCase()+'> '+(t.title||t.alt||''));}
    else{add('uncaught: '+(e.message||e.error));}
  },true);
  window.addEventListener('unhandledrejection',function(e){add('unhandled rejection: '+(e.reason&&e.reason.message||e.reason));});
  var ce=console.error.bind(console);
  console.error=function(){add('console.error: '+Array.prototype.map.call(arguments,String).join(' '));ce.apply(null,arguments);};
  sync();
})();
"""

# Runs at the end of <body>, before the (deferred) viewer module upgrades the <model-viewer> elements.
BODY_SCRIPT = """
(function(){
  function rects(){document.querySelectorAll('model-viewer').forEach(function(mv){
    var r=mv.getBoundingClientRect();
    mv.setAttribute('data-rect',[r.left+scrollX,r.top+scrollY,r.width,r.height].map(Math.round).join(','));
  });}
  if(window.ResizeObserver){new ResizeObserver(rects).observe(document.body);}
  document.querySelectorAll('model-viewer').forEach(function(mv){
    mv.addEventListener('load',function(){mv.setAttribute('data-loaded','1');rects();});
    mv.addEventListener('error',function(e){
      var d=e.detail||{};mv.setAttribute('data-error',String(d.type||'error'));
      window.__errors.push('model-viewer error: '+(d.type||'')+' '+(d.sourceError||''));
      document.documentElement.setAttribute('data-errors',JSON.stringify(window.__errors));
    });
  });
  document.querySelectorAll('video').forEach(function(v){
    if(v.readyState>=2){v.setAttribute('data-ok','1');}
    v.addEventListener('loadeddata',function(){v.setAttribute('data-ok','1');});
    v.addEventListener('error',function(){v.setAttribute('data-ok','0');});
  });
  document.querySelectorAll('img').forEach(function(im){
    function mark(){im.setAttribute('data-ok',im.naturalWidth>0?'1':'0');}
    if(im.complete){mark();}else{im.addEventListener('load',mark);im.addEventListener('error',mark);}
  });
})();
"""


def write_report(path: str | os.PathLike, *, title: str, images: Media = (), videos: Media = (), meshes: Media = (),
                 stats_jsonl: str | os.PathLike | None = None, metrics_jsonl: str | os.PathLike | None = None,
                 cards: Sequence[str | os.PathLike] = (), config: dict | None = None, depths: Media = ()) -> Path:
    """Write one self-contained HTML report to ``path`` (atomically) and return it.

    ``images``/``depths``/``videos``/``meshes`` are ``(caption, file)`` pairs (PNG/JPEG/GIF/WebP; depth maps as
    images; MP4/WebM/GIF; binary glTF). ``stats_jsonl``/``metrics_jsonl`` give training curves vs kimg, ``cards`` are
    metric card JSON files (``stages.eval.card``), ``config`` the run's ``config.json`` dict. Sections without input
    are left out. Raises :class:`BadFileError` for a missing or unrecognised input file.
    """
    path = Path(path)
    sections: list[tuple[str, str, str]] = []  # (anchor, heading, body)
    media_bytes = 0
    if images:
        body, n = _image_figures(images)
        sections.append(("samples", "Samples", body))
        media_bytes += n
    if depths:
        body, n = _image_figures(depths)
        sections.append(("depth", "Depth", body))
        media_bytes += n
    if videos:
        body, n = _video_figures(videos)
        sections.append(("videos", "Videos", body))
        media_bytes += n
    if meshes:
        body, n = _mesh_figures(meshes)
        hint = '<p class="note">Drag to orbit, scroll to zoom.</p>'
        sections.append(("meshes", "3D meshes", hint + body))
        media_bytes += n
    if stats_jsonl is not None or metrics_jsonl is not None:
        sections.append(("curves", "Training curves", _curves_section(stats_jsonl, metrics_jsonl)))
    if cards:
        sections.append(("metrics", "Metrics", "".join(_card_table(_load_card(p), p) for p in cards)))
    if config is not None:
        cfg = json.dumps(config, indent=2, default=str)
        sections.append(("config", "Config", f"<details><summary>config.json ({len(cfg.splitlines())} lines)"
                                              f"</summary><pre>{_esc(cfg)}</pre></details>"))

    from stages.common.sysinfo import package_version

    created = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    nav = "".join(f'<a href="#{a}">{_esc(h)}</a>' for a, h, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{_esc(h)}</h2>{b}</section>' for a, h, b in sections)
    viewer_note = (f" &middot; 3D view: @google/model-viewer {MODEL_VIEWER_VERSION} (Apache-2.0, bundles three.js, "
                   f"MIT), inlined" if meshes else "")
    doc = "".join([
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f"<title>{_esc(title)}</title>\n<style>{CSS}</style>\n<script>{HEAD_SCRIPT}</script>\n</head>\n<body>\n",
        f'<header><h1>{_esc(title)}</h1><div class="meta">generated {_esc(created)} by 3dgp '
        f"{_esc(package_version('threedgp') or '')}; self-contained, works offline</div><nav>{nav}</nav></header>\n",
        f"<main>{body or '<p class=note>Nothing to show.</p>'}</main>\n",
        f"<footer>3dgp report{viewer_note}</footer>\n",
        f"<script>{BODY_SCRIPT}</script>\n",
        _viewer_script() if meshes else "",
        "\n</body>\n</html>\n",
    ])
    data = doc.encode("utf-8")
    if len(data) > LARGE_REPORT_BYTES:
        logger.warning("%s: the report is %.0f MB (media %.0f MB); browsers may be slow to open it", path,
                       len(data) / 2**20, media_bytes / 2**20)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
