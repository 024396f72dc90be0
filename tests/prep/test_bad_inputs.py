"""Unreadable inputs are skipped and reported; bad arguments are one-line errors with exit code 1 (issue 3)."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from prep_testutils import write_image
from stages.data.dataset import LmdbDataset

FAST = ("--embedder", "none", "--workers", "0", "--resolution", "8")


def _bad_files(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(buf, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[:300])
    (folder / "text.png").write_text("this is not a PNG")


def test_bad_files_are_skipped_and_reported(tmp_path, run_cli):
    src = tmp_path / "src"
    write_image(src / "good_a.png")
    write_image(src / "sub" / "good_b.jpg", fmt="JPEG")
    _bad_files(src)
    code, stdout, err = run_cli("prep", "folder", src, tmp_path / "out", *FAST)
    assert code == 0, err
    assert "Wrote 2 items" in stdout
    assert "Warning: skipped 3" in err and "prep_report.json" in err
    report = json.loads((tmp_path / "out" / "prep_report.json").read_text())
    assert report["num_items"] == 2 and report["num_skipped"] == 3 and report["num_inputs"] == 5
    reasons = {entry["source"]: entry["reason"] for entry in report["skipped"]}
    assert set(reasons) == {"empty.jpg", "truncated.jpg", "text.png"}
    assert "empty" in reasons["empty.jpg"]
    assert "cannot decode" in reasons["truncated.jpg"]
    assert "not an image" in reasons["text.png"]
    assert len(LmdbDataset(tmp_path / "out")) == 2


def test_depth_files_beside_only_some_images_is_one_line(tmp_path, run_cli):
    """Issue 13 §1: one _depth.png must not switch the source to precomputed depth and drop the other images."""
    src, out = tmp_path / "src", tmp_path / "out"
    for name in ("a", "b", "c"):
        write_image(src / f"{name}.png")
    Image.fromarray(np.full((30, 40), 5000, np.uint16)).save(src / "a_depth.png")
    before = sorted(p.name for p in src.iterdir())
    for extra in ((), ("--depth-model", "precomputed")):
        code, _, err = run_cli("prep", "folder", src, out, *FAST, *extra)
        assert code == 1, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "2 of 3 images lack a <name>_depth.png (first: b.png)" in err and "--depth-model none" in err
        assert "unreadable" not in err
        assert not out.exists() and not out.with_name("out.partial").exists()
    assert sorted(p.name for p in src.iterdir()) == before
    # the documented way on: ignore the depth files
    code, _, err = run_cli("prep", "folder", src, out, *FAST, "--depth-model", "none")
    assert code == 0, err
    report = json.loads((out / "prep_report.json").read_text())
    assert report["num_items"] == 3 and report["skipped"] == []
    assert LmdbDataset(out).meta["depth"] is None


def test_nothing_readable_is_exit_1_one_line(tmp_path, run_cli):
    src = tmp_path / "src"
    _bad_files(src)
    code, _, err = run_cli("prep", "folder", src, tmp_path / "out", *FAST)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "none of the 3 inputs could be read" in err
    assert not (tmp_path / "out").exists()


def _one_image_folder(tmp_path):
    src = tmp_path / "src"
    write_image(src / "a.png")
    return src


def _a_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


def _garbage_weights(tmp_path):
    import torch

    path = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3, 3, 1, 1)}, path)
    return path


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing_source", "no such file or directory"),
        ("unwritable_output", "cannot write the output"),
        ("resolution_100", "--resolution: must be a power of two"),
        ("unknown_estimator", "--depth-model: unknown estimator 'midas9000'"),
        ("precomputed_without_files", "--depth-model: 'precomputed' needs"),
        ("depth_weights_mismatch", "wrong.pth"),
        ("embedder_weights_mismatch", "wrong.pth"),
        ("unknown_embedder", "--embedder: unknown timm model"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, run_cli, case, expected):
    src, out = _one_image_folder(tmp_path), tmp_path / "out"
    args = {
        "missing_source": ("prep", "folder", tmp_path / "nope", out, *FAST),
        "unwritable_output": ("prep", "folder", src, _a_file(tmp_path) / "out", *FAST),
        "resolution_100": ("prep", "folder", src, out, "--resolution", 100),
        "unknown_estimator": ("prep", "folder", src, out, *FAST, "--depth-model", "midas9000"),
        "precomputed_without_files": ("prep", "folder", src, out, *FAST, "--depth-model", "precomputed"),
        "depth_weights_mismatch": ("prep", "folder", src, out, *FAST, "--depth-model", "leres",
                                   "--depth-weights", _garbage_weights(tmp_path)),
        "embedder_weights_mismatch": ("prep", "folder", src, out, "--workers", 0, "--embedder", "resnet18",
                                      "--embedder-weights", _garbage_weights(tmp_path)),
        "unknown_embedder": ("prep", "folder", src, out, "--workers", 0, "--embedder", "no_such_net"),
    }[case]
    code, _, err = run_cli(*args)
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert expected in lines[0]
    assert not out.exists()
