"""scripts/reproduce/ablations.sh in smoke mode, and the comparison table (stages.eval.compare)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stages.eval.compare import compare, kimg_to_reach

REPO = Path(__file__).resolve().parents[2]


def test_kimg_to_reach_a_target():
    curve = [{"kimg": 0.0, "fid1k": 300.0}, {"kimg": 4.0, "fid1k": 120.0}, {"kimg": 8.0, "fid1k": 90.0}]
    assert kimg_to_reach(curve, 120.0) == 4.0 and kimg_to_reach(curve, 100.0) == 8.0
    assert kimg_to_reach(curve, 50.0) is None and kimg_to_reach([], 1.0) is None


def _variant(root: Path, name: str, values: dict, curve: list[dict]) -> None:
    (root / name / "runs" / "00000-x").mkdir(parents=True)
    (root / name / "metrics.json").write_text(json.dumps(
        {"metrics": [{"name": k, "value": v, "unavailable": None} for k, v in values.items()]}))
    (root / name / "runs" / "00000-x" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve))


def test_comparison_table_uses_the_baseline_final_fid_as_target(tmp_path):
    _variant(tmp_path, "no_kd", {"fid50k_full": 40.0, "nfs256": 9.0},
             [{"kimg": 0, "fid2k_full": 300.0}, {"kimg": 400, "fid2k_full": 80.0}, {"kimg": 800, "fid2k_full": 60.0}])
    _variant(tmp_path, "baseline", {"fid50k_full": 30.0, "nfs256": 10.0},
             [{"kimg": 0, "fid2k_full": 300.0}, {"kimg": 400, "fid2k_full": 70.0}])
    table = compare(tmp_path).splitlines()
    assert table[0] == "| variant | fid50k_full | nfs256 | kimg to FID <= 70 |"
    assert table[2] == "| baseline | 30 | 10 | 400 |" and table[3] == "| no_kd | 40 | 9 | 800 |"
    assert (tmp_path / "comparison.md").read_text().splitlines() == table


EXPECTED = {"depth_adaptor_none": ("loss", "depth_adaptor_p", 0.0), "depth_adaptor_p0.5": ("loss", "depth_adaptor_p", 0.5),
            "depth_adaptor_p1": ("loss", "depth_adaptor_p", 1.0), "no_kd": ("loss", "kd_weight", 0.0),
            "no_camera_adaptor": ("model", "camera", False), "baseline": ("loss", "depth_adaptor_p", None)}


def _script(data: Path, out: Path, **env_extra) -> subprocess.CompletedProcess:
    env = dict(os.environ, REPRO_SMOKE="1", THREEDGP=str(Path(sys.executable).parent / "3dgp"),
               THREEDGP_NO_PROGRESS="1", HF_HUB_OFFLINE="1", **env_extra)
    return subprocess.run(["bash", "scripts/reproduce/ablations.sh", str(data), str(out)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=1200)


@pytest.fixture()
def smoke_data(tmp_path, run_cli):
    data = tmp_path / "toy"
    code, _, err = run_cli("prep", "toy", data, "--num", 16, "--resolution", 32, "--scenes", "simple",
                           "--workers", 0)
    assert code == 0, err
    return data


def test_every_variant_resolves_to_its_ablation(smoke_data, tmp_path):
    """DRY_RUN=1: the six variants' resolved configs differ from the baseline exactly by their ablation."""
    proc = _script(smoke_data, tmp_path / "abl", DRY_RUN="1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    configs = {v: json.loads((tmp_path / "abl" / v / "config.dry-run.json").read_text()) for v in EXPECTED}
    for variant, (section, key, value) in EXPECTED.items():
        cfg = configs[variant]
        got = cfg[section][key]["adaptor_enabled"] if key == "camera" else cfg[section][key]
        assert got == value, (variant, got)
    assert not list((tmp_path / "abl").glob("*/runs/*"))  # nothing trained
    bad = _script(smoke_data, tmp_path / "abl2", DRY_RUN="1", VARIANTS="baseline no_depth")
    assert bad.returncode == 2 and "unknown variant no_depth" in bad.stderr


@pytest.mark.slow
def test_ablations_script_smoke(smoke_data, tmp_path):
    """Two variants end to end (train with a FID curve -> eval -> 3dgp compare); the other four differ only by
    their flags, checked above."""
    proc = _script(smoke_data, tmp_path / "abl", VARIANTS="baseline no_kd")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = (tmp_path / "abl" / "comparison.md").read_text().splitlines()
    assert [r.split(" | ")[0].strip("| ") for r in rows[2:]] == ["baseline", "no_kd"]
    assert "kimg to FID" in rows[0] and "nfs8" in rows[0]
    for variant in ("baseline", "no_kd"):
        cfg = json.loads(next((tmp_path / "abl" / variant / "runs").glob("*/config.json")).read_text())
        section, key, value = EXPECTED[variant]
        assert cfg[section][key] == value, variant
