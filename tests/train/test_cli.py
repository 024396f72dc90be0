"""`3dgp train` command line: dry-run, overrides, resume conflicts and one-line errors (issue 5)."""
from __future__ import annotations

import json

import pytest

from threedgp_cli.app import main


def run_main(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_dry_run_prints_resolved_config(toy_dataset, tmp_path, capsys):
    code, out, err = run_main(["train", "--data", toy_dataset, "--preset", "tiny", "--outdir", str(tmp_path),
                               "--batch", "16", "--gamma", "0.5", "--kd-weight", "0", "--no-camera-adaptor",
                               "--set", "loss.blur_fade_kimg=3", "--set", "run.metrics=fid1k", "--dry-run"], capsys)
    assert code == 0, err
    cfg = json.loads(out)
    assert cfg["run"]["batch"] == 16 and cfg["loss"]["gamma"] == 0.5 and cfg["loss"]["blur_fade_kimg"] == 3.0
    assert cfg["loss"]["kd_weight"] == 0 and cfg["model"]["discriminator"]["kd_dim"] == 0
    assert cfg["model"]["camera"]["adaptor_enabled"] is False and cfg["run"]["metrics"] == ["fid1k"]
    assert cfg["model"]["img_resolution"] == 32 and cfg["data"]["path"] == toy_dataset
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("argv, message", [
    (["--preset", "tiny", "--set", "run.batch=abc"], "--set run.batch: expected int, got 'abc'"),
    (["--preset", "tiny", "--set", "run.nope=1"], "--set run.nope: unknown config key 'run.nope'"),
    (["--preset", "huge"], "--preset: unknown preset 'huge'"),
    ([], "--preset: required for a new run"),
    (["--preset", "tiny", "--metrics", "fidd"], "--metrics: unknown metric 'fidd'"),
    (["--preset", "tiny", "--metrics", "is50k"], "--metrics: is50k: the Inception score needs --is-weights"),
])
def test_bad_options_are_one_line_errors(argv, message, toy_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("THREEDGP_DEBUG", raising=False)
    code, _, err = run_main(["train", "--data", toy_dataset, "--outdir", str(tmp_path), "--dry-run"] + argv, capsys)
    assert code == 1
    assert err.strip().startswith(f"Error: {message}"), err
    assert "Traceback" not in err


def test_depthless_dataset_needs_no_depth(toy_dataset_nodepth, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("THREEDGP_DEBUG", raising=False)
    code, _, err = run_main(["train", "--data", toy_dataset_nodepth, "--preset", "tiny", "--dry-run"], capsys)
    assert code == 1 and "has no depth maps" in err and "--no-depth" in err
    code, out, err = run_main(["train", "--data", toy_dataset_nodepth, "--preset", "tiny", "--no-depth",
                               "--dry-run"], capsys)
    assert code == 0 and json.loads(out)["model"]["img_channels"] == 3


def test_resume_without_runs_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("THREEDGP_DEBUG", raising=False)
    code, _, err = run_main(["train", "--resume", "--outdir", str(tmp_path)], capsys)
    assert code == 1 and "--resume: no run directory" in err


def test_train_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom threedgp_cli.app import main\ntry:\n    main(['train', '--help'])\n"
            "except SystemExit as e:\n    assert e.code == 0\nassert 'torch' not in sys.modules\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "--resume" in res.stdout and "--no-depth" in res.stdout and "--force-override" in res.stdout
