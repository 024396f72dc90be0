"""scripts/reproduce/*.sh end to end in smoke mode (issue 10): tiny generated inputs, CPU, seconds of training.

Each script runs prep -> train -> eval -> export on an input of its kind (an image folder with depth files, the
official-style zip, a raw ImageNet layout) and must leave a metric card with finite values, a snapshot and an HTML
report; a second run must redo nothing (idempotent) and keep one run directory.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "reproduce"
CLI = str(Path(sys.executable).with_name("3dgp"))


def _images(folder: Path, names: list[str], seed: int = 0) -> list[Path]:
    """Random 40x40 images with a 16-bit <name>_depth.png beside each (as the official releases)."""
    rng = np.random.default_rng(seed)
    paths = []
    for name in names:
        path = folder / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
        Image.fromarray(rng.integers(0, 65535, (40, 40)).astype(np.uint16)).save(path.with_name(f"{name}_depth.png"))
        paths.append(path)
    return paths


def _run(script: str, data: Path, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, REPRO_SMOKE="1", THREEDGP=CLI, THREEDGP_NO_PROGRESS="1", HF_HUB_OFFLINE="1")
    return subprocess.run(["bash", str(SCRIPTS / f"{script}.sh"), str(data), str(out)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=900)


def _check_outputs(out: Path) -> None:
    values = {}
    for card in ("metrics.json", "geometry.json"):
        if (out / card).is_file():
            values.update({m["name"]: m["value"] for m in json.loads((out / card).read_text())["metrics"]})
    assert set(values) == {"fid16", "kid16", "nfs8", "mvc4", "depth8", "camera"}, values
    assert all(v is not None and math.isfinite(v) for v in values.values()), values
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 1 and list(runs[0].glob("snapshot-*.pt"))
    assert (out / "export" / "report.html").stat().st_size > 10_000
    assert list((out / "export" / "meshes").glob("*.obj")) and (out / "export" / "grid.png").is_file()


def test_scripts_are_valid_bash():
    for script in sorted(SCRIPTS.glob("*.sh")):
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script


def test_usage_error_names_the_arguments(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPTS / "dogs.sh")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode != 0 and "usage:" in proc.stderr and "DATA OUT [GPUS] [NODES]" in proc.stderr


def test_the_folder_scripts_differ_only_in_their_names():
    """elephants.sh is dogs.sh with another NAME and PRESET, so the end-to-end test runs only dogs.sh."""
    def code(name):  # without comments
        lines = (SCRIPTS / f"{name}.sh").read_text().splitlines()
        return [line.replace(name, "X") for line in lines if not line.lstrip().startswith("#")]
    assert code("elephants") == code("dogs")


@pytest.mark.slow
@pytest.mark.parametrize("script", ["dogs"])
def test_folder_scripts_end_to_end_and_idempotent(script, tmp_path):
    data = tmp_path / "images"
    _images(data, [f"img{i:02d}" for i in range(16)])
    out = tmp_path / "out"
    proc = _run(script, data, out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _check_outputs(out)
    if script == "dogs":  # rerun: every step is complete, nothing is redone
        before = {p: p.stat().st_mtime_ns for p in (out / "metrics.json", out / "export" / "report.html")}
        proc = _run(script, data, out)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert {p: p.stat().st_mtime_ns for p in before} == before
        assert "already complete" in proc.stderr and len(list((out / "runs").iterdir())) == 1


@pytest.mark.slow
def test_horses_from_the_official_style_zip(tmp_path):
    folder = tmp_path / "lsun_horses"
    files = _images(folder, [f"horse{i:02d}" for i in range(16)], seed=1)
    data = tmp_path / "lsun_horses_32_with_depth.zip"
    with zipfile.ZipFile(data, "w") as zf:
        for path in files:
            zf.write(path, f"lsun_horses/{path.name}")
            depth = path.with_name(path.stem + "_depth.png")
            zf.write(depth, f"lsun_horses/{depth.name}")
    out = tmp_path / "out"
    proc = _run("horses", data, out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _check_outputs(out)


@pytest.mark.slow
def test_imagenet_from_the_raw_layout_with_a_full_reference(tmp_path):
    root = tmp_path / "train"
    for k, synset in enumerate(["n01440764", "n01443537"]):
        _images(root / synset, [f"{synset}_{i}" for i in range(8)], seed=k)
    out = tmp_path / "out"
    proc = _run("imagenet", root, out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _check_outputs(out)
    card = json.loads((out / "metrics.json").read_text())
    assert Path(card["reference"]["path"]).name == "reference"  # FID against the full, unfiltered set
    assert [m["name"] for m in card["metrics"]] == ["fid16", "kid16"]
    geometry = json.loads((out / "geometry.json").read_text())
    assert Path(geometry["reference"]["path"]).name == "data"  # depth realism against the training depth
