"""A checkpoint's model is checked before anything is built from it (stages.nn.checkpoints; issue 19 §6): forged
model configs, mismatched or NaN weights, bad kimg or config are one CheckpointError line, in every command."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stages.common import checkpoint as ckpt
from stages.common.errors import CheckpointError
from stages.nn.checkpoints import load_checkpoint


def _tiny_snapshot(tmp_path):
    from stages.nn.build import build_generator
    from stages.nn.config import MODEL_PRESETS, to_dict

    torch.manual_seed(0)
    cfg = MODEL_PRESETS["tiny"]
    return ckpt.save_snapshot(ckpt.snapshot_path(tmp_path, 1000), G_ema=build_generator(cfg),
                              model_config=to_dict(cfg), config={"preset": "tiny"}, cur_nimg=1000)


def test_a_good_snapshot_loads_and_the_format_checks_come_first(tmp_path):
    path = _tiny_snapshot(tmp_path)
    assert load_checkpoint(path, kind="snapshot")["kimg"] == 1.0
    with pytest.raises(CheckpointError, match="expected a training-state"):
        load_checkpoint(path, kind="training-state")


# --- issue 19 §6: a checkpoint is untrusted data ---------------------------------------------------------------------

def _forge(obj: dict, how: str) -> None:
    model = obj["model_config"]
    if how == "tri_plane_res":
        model["generator"]["tri_plane_res"] = 65536  # was a ZeroDivisionError
    elif how == "cmax":
        model["generator"]["cmax"] = 10**9  # was a 36 TB allocation attempt
    elif how == "cmax_in_caps":
        model["generator"]["cmax"] = 4096  # a valid config, but not the stored tensors: found on the meta device
    elif how == "num_coarse_steps":
        model["render"]["num_coarse_steps"] = 10**7  # was an 81 GB render
    elif how == "float_steps":
        model["render"]["num_coarse_steps"] = 1e7
    elif how == "model_not_a_dict":
        obj["model_config"] = [1, 2]
    elif how == "nan_weights":
        key = next(k for k, v in obj["G_ema"].items() if v.is_floating_point() and v.numel() > 1)
        obj["G_ema"][key][0] = float("nan")
    elif how == "inf_weights":
        key = next(k for k, v in obj["G_ema"].items() if v.is_floating_point())
        obj["G_ema"][key].view(-1)[0] = float("inf")
    elif how == "string_kimg":
        obj["kimg"] = "12"
    elif how == "nan_kimg":
        obj["kimg"] = float("nan")
    elif how == "tensor_in_config":
        obj["config"] = {"data": torch.zeros(2)}
    else:
        raise AssertionError(how)


FORGED = {
    "tri_plane_res": "generator.tri_plane_res: must be a power of two in [4, 2048], got 65536",
    "cmax": "generator.cmax: must be in [1, 4096], got 1000000000",
    "cmax_in_caps": "G_ema does not match the configured model",
    "num_coarse_steps": "render.num_coarse_steps: must be in [3, 512], got 10000000",
    "float_steps": "render.num_coarse_steps",
    "model_not_a_dict": "stored model config is not valid",
    "nan_weights": "G_ema holds NaN or infinite weights",
    "inf_weights": "G_ema holds NaN or infinite weights",
    "string_kimg": "kimg must be a number >= 0, got '12'",
    "nan_kimg": "kimg must be a number >= 0, got nan",
    "tensor_in_config": "its config is not plain JSON data",
}


@pytest.mark.parametrize("how", sorted(FORGED))
def test_forged_snapshot_is_one_checkpoint_error(tmp_path, how):
    path = _tiny_snapshot(tmp_path)
    obj = torch.load(path, weights_only=True)
    _forge(obj, how)
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match=None) as info:
        load_checkpoint(path)
    assert FORGED[how] in str(info.value) and str(path) in str(info.value)


def _forged_copy(eval_run, tmp_path, how) -> Path:
    snap = sorted(eval_run.glob("snapshot-*.pt"))[-1]
    obj = torch.load(snap, weights_only=True)
    _forge(obj, how)
    forged = tmp_path / "run" / snap.name
    forged.parent.mkdir()
    torch.save(obj, forged)
    return forged


@pytest.mark.parametrize("how", ["tri_plane_res", "cmax", "num_coarse_steps", "nan_weights", "string_kimg"])
@pytest.mark.parametrize("command", ["export", "eval", "info"])
def test_forged_snapshot_is_one_line_in_every_command(eval_run, run_cli, tmp_path, how, command):
    forged = _forged_copy(eval_run, tmp_path, how)
    args = {"export": ("--outdir", tmp_path / "out", "--grid", "--seeds", "0"),
            "eval": ("--metrics", "camera", "--out", tmp_path / "out" / "card.json"), "info": ()}[command]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run_cli(command, forged, *args)
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert FORGED[how] in err and str(forged) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written (no out folder)
