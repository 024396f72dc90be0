"""``stages.export.report``: one self-contained HTML report (unit tests + a headless-Chromium check, marked slow)."""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from stages.common.errors import BadFileError
from stages.export import report as report_mod
from stages.export import svg_plot
from stages.export.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
TITLE = "Run <00000-dogs> & \"friends\""


# --------------------------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------------------------


def _gradient(size: int = 64) -> np.ndarray:
    x = np.linspace(0, 1, size)
    return (np.stack([np.outer(x, x), np.outer(1 - x, x), np.outer(x, 1 - x)], -1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    import imageio
    import trimesh
    from PIL import Image

    d = tmp_path_factory.mktemp("report_inputs")
    img = _gradient(64)
    Image.fromarray(img).save(d / "fakes.png")
    Image.fromarray(img[..., 1]).save(d / "depth.png")
    Image.fromarray(img).save(d / "fakes.jpg", quality=90)
    frames = [np.roll(img, 6 * i, axis=1) for i in range(8)]  # 64x64: even sizes for libx264
    imageio.mimwrite(d / "orbit.mp4", frames, fps=10, codec="libx264")
    imageio.mimwrite(d / "orbit.gif", frames, duration=0.1)
    mesh = trimesh.creation.icosphere(subdivisions=2)
    rgb = (mesh.vertices - mesh.vertices.min(0)) / np.ptp(mesh.vertices, axis=0)
    mesh.visual.vertex_colors = (np.c_[rgb, np.ones(len(rgb))] * 255).astype(np.uint8)
    (d / "sphere.glb").write_bytes(mesh.export(file_type="glb"))

    with open(d / "stats.jsonl", "w", encoding="utf-8") as f:
        for i in range(12):
            rec = {"kimg": 4.0 * i, "tick": i, "timestamp": 1e9 + i, "Loss/G/adv": 1 + math.exp(-i / 4),
                   "Loss/D/real": 0.5 + 0.1 * math.sin(i), "Loss/D/fake": 0.6 - 0.01 * i, "Loss/D/r1": 0.02 * i,
                   "Camera/yaw/std": 0.3 + 0.01 * i, "Timing/sec_per_kimg": 12.0 + (i % 3)}
            if i == 5:
                rec["Loss/G/adv"] = "nan"  # the stats writer stores non-finite values as strings
                rec["event"] = "rollback"
            f.write(json.dumps(rec) + "\n")
        f.write('{"kimg": 48.0, "Loss/G/a')  # a torn last line
    with open(d / "metrics.jsonl", "w", encoding="utf-8") as f:
        for i in range(4):
            f.write(json.dumps({"kimg": 16.0 * i, "tick": 4 * i, "fid2k_full": 300 / (i + 1), "seconds": 3.5}) + "\n")
        f.write(json.dumps({"kimg": 48.0, "source": "eval", "snapshot": "snapshot-000048.pt", "nfs": 12.5,
                            "card": "card.json", "seconds": 9}) + "\n")
    card = {
        "format": "3dgp-metric-card", "version": 1, "created": "2025-01-01T00:00:00Z",
        "metrics": [
            {"name": "fid2k_full", "kind": "fid", "value": 123.456789, "std": None, "num_fakes": 2000,
             "num_reals": 5000, "unavailable": None, "seconds": 1.0, "details": {}},
            {"name": "is5k", "kind": "is", "value": None, "std": None, "num_fakes": 0, "num_reals": 0,
             "unavailable": "IS unavailable: <no weights>", "seconds": 0.0, "details": {}},
        ],
        "checkpoint": {"path": "runs/00000/snapshot-000048.pt", "kimg": 48},
        "reference": {"path": "data/dogs", "num_items": 5000}, "detector": {"resize": "clean"},
        "device": "cpu", "command": "3dgp eval runs/00000 --metrics fid2k_full,is5k",
    }
    (d / "card.json").write_text(json.dumps(card), encoding="utf-8")
    config = {"G": {"z_dim": 512, "name": "<generator & co>"}, "kimg": 48}
    return {"dir": d, "config": config, "card": card}


def _write(inputs: dict, out: Path, **overrides) -> Path:
    d = inputs["dir"]
    kwargs = dict(
        title=TITLE,
        images=[("fakes <png>", d / "fakes.png"), ("fakes jpg", d / "fakes.jpg")],
        depths=[("depth", d / "depth.png")],
        videos=[("orbit mp4", d / "orbit.mp4"), ("orbit gif", d / "orbit.gif")],
        meshes=[("sphere", d / "sphere.glb")],
        stats_jsonl=d / "stats.jsonl", metrics_jsonl=d / "metrics.jsonl", cards=[d / "card.json"],
        config=inputs["config"],
    )
    kwargs.update(overrides)
    return write_report(out, **kwargs)


class _Collector(HTMLParser):
    """Every start tag with its attributes (script and style content is not parsed as markup)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def _parse(text: str) -> _Collector:
    p = _Collector()
    p.feed(text)
    p.close()
    return p


def _decode(uri: str) -> tuple[str, bytes]:
    m = re.fullmatch(r"data:([\w.+/-]+);base64,([A-Za-z0-9+/=]*)", uri)
    assert m, uri[:80]
    return m.group(1), base64.b64decode(m.group(2), validate=True)


@pytest.fixture(scope="module")
def report(inputs, tmp_path_factory) -> tuple[Path, str, _Collector]:
    path = _write(inputs, tmp_path_factory.mktemp("report") / "report.html")
    text = path.read_text(encoding="utf-8")
    return path, text, _parse(text)


# --------------------------------------------------------------------------------------------------------------------
# Unit tests
# --------------------------------------------------------------------------------------------------------------------


def test_every_reference_is_inline(report):
    _, text, parsed = report
    refs = [(tag, name, value) for tag, attrs in parsed.tags for name, value in attrs.items()
            if name in ("src", "href", "srcset", "poster", "data", "action", "xlink:href")]
    assert refs, "no src/href found at all"
    for tag, name, value in refs:
        assert value.startswith(("data:", "#")), f"<{tag} {name}={value[:80]!r}> is not inline"
    assert not [t for t, _ in parsed.tags if t in ("link", "iframe", "object", "embed", "base")]
    # Every script is inline; CSS loads nothing.
    assert all("src" not in attrs for tag, attrs in parsed.tags if tag == "script")
    for css in re.findall(r"<style>(.*?)</style>", text, re.S):
        assert "url(" not in css and "@import" not in css
    # In-page anchors point at sections that exist.
    ids = {attrs.get("id") for _, attrs in parsed.tags}
    anchors = [v[1:] for t, n, v in refs if v.startswith("#")]
    assert anchors and set(anchors) <= ids


def test_data_uris_round_trip(report, inputs):
    _, _, parsed = report
    d = inputs["dir"]
    imgs = [a for t, a in parsed.tags if t == "img"]
    assert [a["alt"] for a in imgs] == ["fakes <png>", "fakes jpg", "depth", "orbit gif"]
    expect = [("image/png", "fakes.png"), ("image/jpeg", "fakes.jpg"), ("image/png", "depth.png"),
              ("image/gif", "orbit.gif")]
    for attrs, (mime, name) in zip(imgs, expect):
        assert _decode(attrs["src"]) == (mime, (d / name).read_bytes())

    (video,) = [a for t, a in parsed.tags if t == "video"]
    assert {"controls", "loop", "muted", "autoplay"} <= set(video)
    assert _decode(video["src"]) == ("video/mp4", (d / "orbit.mp4").read_bytes())

    (viewer,) = [a for t, a in parsed.tags if t == "model-viewer"]
    assert {"camera-controls", "auto-rotate"} <= set(viewer)
    assert _decode(viewer["src"]) == ("model/gltf-binary", (d / "sphere.glb").read_bytes())


def test_sections_and_viewer_inlined(report):
    _, text, parsed = report
    sections = [a["id"] for t, a in parsed.tags if t == "section"]
    assert sections == ["samples", "depth", "videos", "meshes", "curves", "metrics", "config"]
    modules = [s for s in parsed.scripts if "customElements.define(\"model-viewer\"" in s]
    assert len(modules) == 1, "model-viewer must be inlined exactly once"
    assert [a.get("type") for t, a in parsed.tags if t == "script"].count("module") == 1
    assert "sourceMappingURL" not in text


def test_svg_plots(report):
    _, text, _ = report
    svgs = re.findall(r'<svg class="plot".*?</svg>', text, re.S)
    titles = [re.search(r"<title>(.*?)</title>", s).group(1) for s in svgs]
    assert titles == ["Generator loss", "Discriminator loss", "R1 regularisation", "Camera posterior spread", "Speed",
                      "fid2k_full", "nfs"]
    polylines = [s.count("<polyline") for s in svgs]
    assert polylines == [1, 2, 1, 1, 1, 1, 1]  # Loss/D/kd and Camera/pitch/std are absent from the stats
    assert text.count("<polyline") == sum(polylines)
    for s in svgs:
        assert ">kimg</text>" in s  # x label
        assert 'rotate(-90)' in s  # y label
    # The "nan" at tick 5 is skipped: Loss/G/adv has 11 of 12 points; every coordinate is finite and in the box.
    g = re.search(r'<polyline[^>]*points="([^"]*)"', svgs[0]).group(1).split()
    assert len(g) == 11
    for xy in g:
        x, y = map(float, xy.split(","))
        assert 0 <= x <= 480 and 0 <= y <= 280
    # The fid curve falls, so its y coordinate (top = 0) rises.
    fid = [float(p.split(",")[1]) for p in re.search(r'points="([^"]*)"', svgs[5]).group(1).split()]
    assert fid == sorted(fid) and len(fid) == 4


def test_cards_config_and_escaping(report, inputs):
    _, text, parsed = report
    rows = re.findall(r"<tr>(.*?)</tr>", text, re.S)
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r) for r in rows]
    assert cells[0] == ["metric", "value", "std", "fakes", "reals", "notes"]
    assert cells[1] == ["fid2k_full", "123.46", "&ndash;", "2000", "5000", ""]
    assert cells[2][0] == "is5k" and cells[2][5] == "IS unavailable: &lt;no weights&gt;"
    assert "runs/00000/snapshot-000048.pt (kimg 48)" in text
    # Config: a collapsed <details> with the escaped, pretty-printed JSON.
    pre = re.search(r"<details><summary>config.json.*?<pre>(.*?)</pre></details>", text, re.S).group(1)
    assert "&lt;generator &amp; co&gt;" in pre and '\n  &quot;G&quot;: {' in pre
    # Title and captions are escaped everywhere.
    assert "<00000-dogs>" not in text
    assert text.count("Run &lt;00000-dogs&gt; &amp; &quot;friends&quot;") == 2  # <title> and <h1>
    assert ">fakes &lt;png&gt;</figcaption>" in text


def test_without_meshes_no_viewer_and_sections_skipped(inputs, tmp_path):
    d = inputs["dir"]
    path = write_report(tmp_path / "r.html", title="t", images=[("a", d / "fakes.png")])
    text = path.read_text(encoding="utf-8")
    assert "<model-viewer" not in text and "customElements" not in text and len(text) < 50_000
    assert re.findall(r'<section id="(\w+)"', text) == ["samples"]
    empty = write_report(tmp_path / "empty.html", title="t", images=[], videos=[], meshes=[], stats_jsonl=None,
                         metrics_jsonl=None, cards=[], config=None)
    assert "Nothing to show" in empty.read_text(encoding="utf-8")


def test_atomic_overwrite(inputs, tmp_path):
    d = inputs["dir"]
    out = tmp_path / "sub" / "report.html"
    out.parent.mkdir()
    out.write_text("old")
    assert write_report(out, title="new", images=[("a", d / "fakes.png")]) == out
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]
    # A failure (missing input) happens before anything is written and leaves the old report alone.
    with pytest.raises(BadFileError, match="missing.png"):
        write_report(out, title="x", images=[("a", d / "missing.png")])
    assert "<h1>new</h1>" in out.read_text(encoding="utf-8")
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]


@pytest.mark.parametrize("kind, name, payload, match", [
    ("images", "x.png", b"not an image", "not a PNG, JPEG, GIF or WebP image"),
    ("videos", "x.mp4", b"\x00" * 16, "not an MP4, WebM or GIF video"),
    ("meshes", "x.glb", b"solid ascii stl", "not a binary glTF"),
])
def test_bad_inputs(tmp_path, kind, name, payload, match):
    (tmp_path / name).write_bytes(payload)
    with pytest.raises(BadFileError, match=match):
        write_report(tmp_path / "r.html", title="t", **{kind: [("x", tmp_path / name)]})
    assert not (tmp_path / "r.html").exists()


def test_bad_jsonl_and_card(tmp_path):
    with pytest.raises(BadFileError, match="no such file"):
        write_report(tmp_path / "r.html", title="t", stats_jsonl=tmp_path / "stats.jsonl")
    (tmp_path / "card.json").write_text("{not json")
    with pytest.raises(BadFileError, match="not a JSON metric card"):
        write_report(tmp_path / "r.html", title="t", cards=[tmp_path / "card.json"])
    (tmp_path / "card.json").write_text('{"metrics": 3}')
    with pytest.raises(BadFileError, match="not a metric card"):
        write_report(tmp_path / "r.html", title="t", cards=[tmp_path / "card.json"])
    # Files without usable values give a note, not an error.
    (tmp_path / "stats.jsonl").write_text('{"kimg": 1, "other": 2}\n')
    (tmp_path / "metrics.jsonl").write_text('{"kimg": null, "fid": 3}\n')
    text = write_report(tmp_path / "r.html", title="t", stats_jsonl=tmp_path / "stats.jsonl",
                        metrics_jsonl=tmp_path / "metrics.jsonl").read_text(encoding="utf-8")
    assert "no known training scalars" in text and "no metric values with a kimg" in text and "<svg" not in text


def test_large_report_warns(inputs, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(report_mod, "LARGE_REPORT_BYTES", 1_000)
    monkeypatch.setattr(logging.getLogger("stages"), "propagate", True)  # a CLI test may have routed it to rich
    with caplog.at_level(logging.WARNING, logger="stages.export.report"):
        write_report(tmp_path / "r.html", title="t", images=[("a", inputs["dir"] / "fakes.png")])
    assert any("browsers may be slow" in r.getMessage() for r in caplog.records)


def test_svg_line_plot_edge_cases():
    one = svg_plot.svg_line_plot({"a": [(3.0, 2.0)]}, title="t", xlabel="kimg", ylabel="y")
    assert one.count("<polyline") == 1 and one.count("<circle") == 1  # a single point is still visible
    assert "nan" not in one and "inf" not in one
    flat = svg_plot.svg_line_plot({"a": [(0.0, 0.0), (1.0, 0.0)], "b": []}, title="t", xlabel="x", ylabel="y")
    assert flat.count("<polyline") == 1 and "nan" not in flat
    ticks = svg_plot._nice_ticks(0.0, 1.0)
    assert len(ticks) == 6 and ticks[0] == 0.0 and ticks[-1] == pytest.approx(1.0)
    assert svg_plot._nice_ticks(-0.3, 0.3) == pytest.approx([-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3])


def test_vendored_viewer_matches_readme():
    js = report_mod.MODEL_VIEWER_JS.read_bytes()
    assert hashlib.sha256(js).hexdigest() == report_mod.MODEL_VIEWER_SHA256
    assert len(js) < 1_500_000
    readme = (report_mod.ASSETS_DIR / "README.md").read_text(encoding="utf-8")
    assert report_mod.MODEL_VIEWER_SHA256 in readme and f"**{report_mod.MODEL_VIEWER_VERSION}**" in readme
    assert "Apache License" in (report_mod.ASSETS_DIR / "LICENSE.model-viewer").read_text(encoding="utf-8")
    # Inlining is safe only while the module contains no script tags.
    assert not re.search(rb"</?script", js, re.I)


# --------------------------------------------------------------------------------------------------------------------
# Headless Chromium: the page as a person sees it
# --------------------------------------------------------------------------------------------------------------------

# Console lines Chromium logs that are performance notes of the software GL driver, not page errors.
_BENIGN_CONSOLE = re.compile(r"GL Driver Message .*Performance|GPU stall due to ReadPixels")
_BAD_CONSOLE = re.compile(r"Uncaught|Error|Failed|net::ERR_|Not allowed|Refused|WebGL", re.I)


@pytest.mark.slow
def test_report_in_headless_chromium(report, tmp_path):
    if not CHROMIUM.exists():
        if os.environ.get("THREEDGP_REQUIRE_CHROMIUM") == "1":  # .ci/run installs it: a missing browser is a failure
            pytest.fail("Chromium not installed although THREEDGP_REQUIRE_CHROMIUM=1 (.ci/run installs it)")
        pytest.skip("Chromium not installed: apt-get install chromium")
    from PIL import Image

    path, _, _ = report
    shot = tmp_path / "report.png"
    cmd = [str(CHROMIUM), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           # WebGL through SwiftShader (software): --use-gl=swiftshader gives no context in this Chromium.
           "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
           # Any attempt to reach the network fails loudly (and shows up as a console error below).
           "--host-resolver-rules=MAP * ~NOTFOUND",
           f"--user-data-dir={tmp_path / 'profile'}", "--no-first-run", "--hide-scrollbars",
           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", "--window-size=1200,2400",
           f"--screenshot={shot}", "--dump-dom", path.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dom = proc.stdout
    dump = tmp_path / "dom.html"
    dump.write_text(dom, encoding="utf-8")

    # 1. No console errors: Chromium's stderr log of the page's console, and what the page itself collected
    #    (uncaught errors, failed resources, unhandled rejections, console.error) in <html data-errors>.
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln and not _BENIGN_CONSOLE.search(ln)]
    assert not [ln for ln in console if _BAD_CONSOLE.search(ln)], "\n".join(console)
    parsed = _parse(dom)
    html_attrs = next(a for t, a in parsed.tags if t == "html")
    assert json.loads(html_attrs["data-errors"]) == []

    # 2. Media decoded, the 3D view loaded its mesh.
    imgs = [a for t, a in parsed.tags if t == "img"]
    assert len(imgs) == 4 and all(a.get("data-ok") == "1" for a in imgs), [a.get("data-ok") for a in imgs]
    (video,) = [a for t, a in parsed.tags if t == "video"]
    assert video.get("data-ok") == "1", "the mp4 did not decode"
    (viewer,) = [a for t, a in parsed.tags if t == "model-viewer"]
    assert "data-error" not in viewer, viewer.get("data-error")
    assert viewer.get("data-loaded") == "1", "model-viewer fired no load event"

    # 3. The screenshot is a page, not a blank canvas, and the 3D view shows the (colourful) sphere.
    im = Image.open(shot).convert("RGB")
    assert im.size == (1200, 2400)
    arr = np.asarray(im)
    assert arr.std() > 20 and len(np.unique(arr.reshape(-1, 3), axis=0)) > 500
    x, y, w, h = map(int, viewer["data-rect"].split(","))
    assert w > 200 and h > 200 and y + h <= 2400, viewer["data-rect"]
    view = arr[y + 4:y + h - 4, x + 4:x + w - 4].astype(int)
    saturated = (view.max(-1) - view.min(-1)) > 60  # the background is a grey gradient; the sphere is vivid
    assert saturated.mean() > 0.05, f"3D view looks empty ({saturated.mean():.3f} of pixels coloured)"
