"""`3dgp prep` and `3dgp info` as commands: options reach the config, --dry-run, --json, --preview, no torch on --help."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image


def test_prep_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from threedgp_cli.app import main\n"
        "for argv in (['prep', '--help'], ['prep', 'imagenet', '--help'], ['info', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "--keep-ratio" in res.stdout and "--depth-model" in res.stdout


def test_options_reach_the_config(monkeypatch, run_cli, tmp_path):
    import stages.prep

    seen = {}

    def fake_run(cfg):
        seen["cfg"] = cfg
        raise SystemExit(0)

    monkeypatch.setattr(stages.prep, "run", fake_run)
    code, _, _ = run_cli("prep", "imagenet", tmp_path / "root", tmp_path / "out", "--classes", "n01440764, n01443537",
                         "--keep-ratio", 0.5, "--max-per-class", 10, "-r", 64, "--workers", 3, "--depth-model",
                         "leres", "--depth-weights", "res50.pth", "--embedder", "resnet50", "--overwrite")
    assert code == 0
    cfg = seen["cfg"]
    assert cfg.source == "imagenet" and cfg.src == tmp_path / "root" and cfg.out == tmp_path / "out"
    assert cfg.options.classes == ("n01440764", "n01443537") and cfg.options.keep_ratio == 0.5
    assert cfg.options.max_per_class == 10
    assert cfg.resolution == 64 and cfg.workers == 3 and cfg.depth_model == "leres"
    assert cfg.depth_weights == Path("res50.pth") and cfg.embedder == "resnet50" and cfg.overwrite


def test_dry_run_prints_the_config(run_cli, tmp_path):
    code, stdout, err = run_cli("prep", "lsun", tmp_path / "horses", tmp_path / "out", "--max-images", 40000,
                                "--dry-run")
    assert code == 0, err
    printed = json.loads(stdout)
    assert printed["prep_args"]["max_images"] == 40000 and printed["prep_args"]["resolution"] == 256
    assert printed["command"].startswith("3dgp prep lsun ") and "--max-images 40000" in printed["command"]
    assert not (tmp_path / "out").exists()


@pytest.fixture
def toy_dataset(tmp_path, run_cli):
    out = tmp_path / "toy"
    code, _, err = run_cli("prep", "toy", out, "--num", 5, "--resolution", 16, "--embedder", "none", "--workers", 0)
    assert code == 0, err
    return out


def test_info_json(toy_dataset, run_cli):
    code, stdout, err = run_cli("info", toy_dataset, "--json")
    assert code == 0, err
    info = json.loads(stdout)
    assert info["kind"] == "dataset" and info["num_items"] == 5 and info["resolution"] == 16
    assert info["has_depth"] and info["has_labels"] and info["num_classes"] >= 4 and info["embedding_dim"] == 0
    assert info["meta"]["prep_command"].startswith("3dgp prep toy ")
    assert info["meta"]["depth"]["name"] == "toy"


def test_info_table_and_preview(toy_dataset, run_cli, tmp_path):
    sheet = tmp_path / "sheet.png"
    code, stdout, err = run_cli("info", toy_dataset, "--preview", sheet)
    assert code == 0, err
    assert "items" in stdout and "5" in stdout and "toy" in stdout
    with Image.open(sheet) as im:
        assert im.size[0] >= 5 * 16 and im.size[1] >= 3 * 16


def test_info_errors_are_one_line(tmp_path, run_cli):
    code, _, err = run_cli("info", tmp_path / "nothing")
    assert code == 1 and "no such file or directory" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "folder").mkdir()
    code, _, err = run_cli("info", tmp_path / "folder")
    assert code == 1 and "not something 3dgp info understands" in err
    code, _, err = run_cli("info")
    assert code == 1 and "--model" in err


def test_info_model_preset(run_cli):
    code, stdout, err = run_cli("info", "--model", "tiny", "--json")
    assert code == 0, err
    params = dict(json.loads(stdout)["model"]["params"])
    assert params["G total"] > 0 and any(k.startswith("D total") for k in params)
    code, _, err = run_cli("info", "--model", "no_such_preset")
    assert code == 1 and "--model" in err
