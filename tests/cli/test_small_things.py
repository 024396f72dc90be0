"""Issue 19 §7: small things users notice -- one list of presets, one line for a bad weights file, and messages that
name only options the command has."""
from __future__ import annotations

import json
import logging

import pytest
import torch


def test_info_model_and_train_preset_take_the_same_presets(run_cli):
    from stages.train.config import TRAIN_PRESETS

    code, _, info_err = run_cli("info", "--model", "nope")
    assert code == 1
    code, _, train_err = run_cli("train", "--preset", "nope", "--data", "x")
    assert code == 1
    listed = [e.split("choose one of ", 1)[1].strip() for e in (info_err, train_err)]
    assert listed[0] == listed[1] == ", ".join(TRAIN_PRESETS)
    for name in TRAIN_PRESETS:  # every train preset has a parameter table
        code, stdout, err = run_cli("info", "--model", name, "--json")
        assert code == 0, err
        assert dict(json.loads(stdout)["model"]["params"])["G total"] > 0


@pytest.mark.parametrize("option, model", [("--depth-weights", ("--depth-model", "leres")),
                                           ("--embedder-weights", ("--embedder", "resnet18"))])
def test_a_torchscript_file_as_weights_is_one_line_without_a_torch_warning(run_cli, tmp_path, option, model):
    path = tmp_path / "scripted.pth"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    args = ("--embedder", "none") if option == "--depth-weights" else ()
    code, _, err = run_cli("prep", "toy", tmp_path / "out", "--num", 2, "--workers", 0, *args, *model, option, path)
    assert code == 1
    assert err.strip().splitlines() == [f"Error: {path}: {option}: not a readable weights file (a TorchScript "
                                        "archive, not a state dict of tensors)"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_eval_skipping_an_image_names_no_prep_option(monkeypatch, caplog):
    import stages.data.decode as decode
    from stages.data.image_files import ImageFile
    from stages.eval import image_sets

    reasons = ["image too large (9000x9000 = 81,000,000 pixels; the limit is 1: raise it with --max-pixels if the "
               "image is real)",
               "too large (600.0 MiB uncompressed; the limit is 512 MiB per file: raise it with --max-file-mb if the "
               "file is real)"]
    for reason in reasons:
        def refuse(*args, reason=reason, **kwargs):
            raise decode.Unreadable(reason)

        monkeypatch.setattr(decode, "load_rgb", refuse)
        image = ImageFile(rel="a.png", path="/x/a.png", member="", depth=None)
        with caplog.at_level(logging.WARNING, logger="stages.eval.image_sets"):
            assert image_sets._load(image, 8) is None
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["skipping a.png: image too large (9000x9000 = 81,000,000 pixels; the limit is 1)",
                        "skipping a.png: too large (600.0 MiB uncompressed; the limit is 512 MiB per file)"]
