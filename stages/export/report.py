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
from stages.export.report_page import BODY_SCRIPT, CSS, HEAD_SCRIPT
from stages.export.svg_plot import escape as _esc, svg_line_plot
from stages.metrics.card import MetricCard, load_card

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

_IMAGE_MIME = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF87a": "image/gif",
               b"GIF89a": "image/gif", b"RIFF": "image/webp"}

Media = Sequence[tuple[str, "str | os.PathLike"]]


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


def _card_table(card: MetricCard) -> str:
    rows = []
    for m in card.metrics:
        rows.append(f"<tr><td>{_esc(m.name)}</td><td class=num>{_cell(m.value)}</td>"
                    f"<td class=num>{_cell(m.std)}</td><td class=num>{_cell(m.num_fakes)}</td>"
                    f"<td class=num>{_cell(m.num_reals)}</td><td>{_esc(m.unavailable or '')}</td></tr>")
    ref, det = card.reference or {}, card.detector or {}
    facts = [("card", Path(card.path).name)]
    if card.checkpoint is not None:
        kimg = "?" if card.checkpoint.kimg is None else f"{card.checkpoint.kimg:.10g}"
        facts.append(("checkpoint", f"{card.checkpoint.path or '?'} (kimg {kimg})"))
    elif card.fakes:
        fakes = card.fakes
        facts.append(("fakes", fakes.get("path") or fakes.get("kind") or json.dumps(dict(fakes), default=str)[:200]))
    if ref:
        facts.append(("reference", f"{ref.get('path', '?')} ({ref.get('num_items', ref.get('count', '?'))} items)"))
    if det:
        facts.append(("detector", det.get("resize", det.get("name", ""))))
    for key in ("device", "created", "code_version", "command"):
        if getattr(card, key):
            facts.append((key, getattr(card, key)))
    dl = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in facts)
    return (f'<div class="card"><table><thead><tr><th>metric</th><th>value</th><th>std</th><th>fakes</th>'
            f'<th>reals</th><th>notes</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f"<dl>{dl}</dl></div>")


def _provenance_section(provenance: dict) -> str:
    """Which snapshot every file of the export came from, and each file's sha256 (issue 19 §5)."""
    snap = provenance.get("snapshot") or {}
    rows = "".join(f"<tr><td>{_esc(f['path'])}</td><td class=num>{_cell(f.get('bytes'))}</td>"
                   f"<td><code>{_esc(f.get('sha256', ''))}</code></td></tr>" for f in provenance.get("files", []))
    return (f'<p class="note">Every file below was rendered from the snapshot <code>{_esc(snap.get("path", "?"))}'
            f'</code> (kimg {_cell(snap.get("kimg"))}, sha256 <code>{_esc(snap.get("sha256", "?"))}</code>) by one '
            f"export; export.json beside this report lists them too.</p><table><thead><tr><th>file</th><th>bytes</th>"
            f"<th>sha256</th></tr></thead><tbody>{rows}</tbody></table>")


def _viewer_script() -> str:
    try:
        js = MODEL_VIEWER_JS.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadFileError(MODEL_VIEWER_JS, f"vendored 3D viewer missing ({exc.strerror}); reinstall 3dgp") from exc
    js = re.sub(r"\n//# sourceMappingURL=\S*\s*$", "\n", js)
    # Inline script text must not close the element; the vendored file has no such sequence (checked by a test).
    assert re.search(r"</script|<script", js, re.I) is None, "vendored model-viewer contains a <script> tag"
    return f'<script type="module">\n{js}\n</script>'


def _sections(images: Media, depths: Media, videos: Media, meshes: Media, stats_jsonl, metrics_jsonl,
              cards: Sequence, config: dict | None) -> tuple[list[tuple[str, str, str]], int]:
    """(anchor, heading, body HTML) of every section that has input, and the inlined media's byte count."""
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
        sections.append(("metrics", "Metrics", "".join(_card_table(load_card(p)) for p in cards)))
    if config is not None:
        cfg = json.dumps(config, indent=2, default=str)
        sections.append(("config", "Config", f"<details><summary>config.json ({len(cfg.splitlines())} lines)"
                                              f"</summary><pre>{_esc(cfg)}</pre></details>"))

    return sections, media_bytes


def _document(title: str, sections: list[tuple[str, str, str]], has_meshes: bool) -> str:
    """The whole page: head (CSS, error recorder), header with navigation, sections, footer, scripts."""
    from stages.common.sysinfo import package_version

    created = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    nav = "".join(f'<a href="#{a}">{_esc(h)}</a>' for a, h, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{_esc(h)}</h2>{b}</section>' for a, h, b in sections)
    viewer_note = (f" &middot; 3D view: @google/model-viewer {MODEL_VIEWER_VERSION} (Apache-2.0, bundles three.js, "
                   f"MIT), inlined" if has_meshes else "")
    doc = "".join([
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f"<title>{_esc(title)}</title>\n<style>{CSS}</style>\n<script>{HEAD_SCRIPT}</script>\n</head>\n<body>\n",
        f'<header><h1>{_esc(title)}</h1><div class="meta">generated {_esc(created)} by 3dgp '
        f"{_esc(package_version('threedgp') or '')}; self-contained, works offline</div><nav>{nav}</nav></header>\n",
        f"<main>{body or '<p class=note>Nothing to show.</p>'}</main>\n",
        f"<footer>3dgp report{viewer_note}</footer>\n",
        f"<script>{BODY_SCRIPT}</script>\n",
        _viewer_script() if has_meshes else "",
        "\n</body>\n</html>\n",
    ])
    return doc


def write_report(path: str | os.PathLike, *, title: str, images: Media = (), videos: Media = (), meshes: Media = (),
                 stats_jsonl: str | os.PathLike | None = None, metrics_jsonl: str | os.PathLike | None = None,
                 cards: Sequence[str | os.PathLike] = (), config: dict | None = None, depths: Media = (),
                 provenance: dict | None = None) -> Path:
    """Write one self-contained HTML report to ``path`` (atomically) and return it.

    ``images``/``depths``/``videos``/``meshes`` are ``(caption, file)`` pairs (PNG/JPEG/GIF/WebP; depth maps as
    images; MP4/WebM/GIF; binary glTF). ``stats_jsonl``/``metrics_jsonl`` give training curves vs kimg, ``cards`` are
    metric card JSON files (``stages.metrics.card``), ``config`` the run's ``config.json`` dict, ``provenance`` where
    the files came from (``{"snapshot": {path, sha256, kimg, ...}, "files": [{path, sha256, bytes}]}``; issue 19
    §5). Sections without input are left out. Raises :class:`BadFileError` for a missing or unrecognised input file.
    """
    path = Path(path)
    sections, media_bytes = _sections(images, depths, videos, meshes, stats_jsonl, metrics_jsonl, cards, config)
    if provenance is not None:
        sections.append(("files", "Files", _provenance_section(provenance)))
    data = _document(title, sections, bool(meshes)).encode("utf-8")
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
