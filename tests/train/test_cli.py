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


def test_one_flag_table_for_the_command_line_and_the_messages():
    """Issue 20 §3: every option of ``3dgp train`` is a request field or a row of ``stages.train.flags.FLAGS``
    (and each row is an option); the command passes them by their spelling, and the messages name fields by it."""
    from unittest import mock

    import click
    import typer.main

    from stages.train import TrainResult
    from stages.train.flags import FLAGS, option_for
    from threedgp_cli.app import app

    command = typer.main.get_command(app).get_command(click.Context(typer.main.get_command(app)), "train")
    options = {next(o for o in p.opts if o.startswith("--")) for p in command.params
               if p.param_type_name == "option" and p.name != "help"}  # (Typer vendors its own click)
    request_options = {"--outdir", "--preset", "--resume", "--force-override", "--set", "--dry-run"}
    assert options - request_options == {flag.option for flag in FLAGS}
    assert option_for("run.batch") == "--batch" and option_for("model.img_channels") == "--no-depth"
    assert option_for("model.depth_adaptor.enabled") == "--no-depth-adaptor"
    assert option_for("loss.r1_interval") == "--set loss.r1_interval"

    with mock.patch("stages.train.run", return_value=TrainResult()) as run:
        with pytest.raises(SystemExit) as info:
            main(["train", "--preset", "tiny", "--batch", "16", "--no-depth", "--metrics", "none", "--data", "ds",
                  "--set", "loss.gamma=2"])
    assert info.value.code == 0
    request = run.call_args.args[0]
    assert [(o.flag, o.key, o.value) for o in request.overrides] == [
        ("--batch", "run.batch", 16), ("--data", "data.path", "ds"), ("--metrics", "run.metrics", ""),
        ("--no-depth", "model.img_channels", 3), ("--no-depth", "model.depth_adaptor.enabled", False),
        ("--set loss.gamma", "loss.gamma", "2")]
    assert request.preset == "tiny" and request.outdir == "runs" and not request.resume
