"""`3dgp export` as a user runs it: every output from one command, and bad input as one line (issue 9)."""
from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest


def test_export_writes_videos_grid_meshes_and_report(eval_run, run_cli, tmp_path):
    import trimesh

    snap = sorted(eval_run.glob("snapshot-*.pt"))[-1]
    out = tmp_path / "export"
    code, stdout, err = run_cli("export", snap, "--outdir", out, "--seeds", "0-1,5", "--video", "--frames", "6",
                                "--trajectory", "orbit", "--grid", "--mesh", "glb", "--mesh-res", "32", "--report",
                                "--steps", "8")
    assert code == 0, err
    names = ["seed0000", "seed0001", "seed0005"]
    for name in names:
        video = iio.imread(out / "videos" / f"{name}-orbit-both.mp4", index=None)
        assert video.shape == (6, 128, 256, 3)  # 6 frames of rgb | depth side by side, 32 px upscaled x4
        assert trimesh.load(out / "meshes" / f"{name}.glb", force="mesh").vertices.shape[0] > 0
        assert (out / "samples" / f"{name}.png").is_file()
    grid = iio.imread(out / "grid-orbit-both.mp4", index=None)
    assert grid.shape[0] == 6 and grid.shape[2] > 256  # three tiles
    sheet = iio.imread(out / "grid.png")
    assert sheet.shape[0] > 6 * 128 and sheet.std() > 0  # 3 samples x (views row + depth row)
    html = (out / "report.html").read_text()
    assert html.count("data:model/gltf-binary;base64,") == 3 and "data:video/mp4;base64," in html
    assert str(out / "report.html") in stdout.replace("\n", "")
    # The same seeds give the same latents: a second export renders identical frames.
    code, _, err = run_cli("export", snap, "--outdir", tmp_path / "again", "--seeds", "5", "--grid", "--steps", "8")
    assert code == 0, err
    np.testing.assert_array_equal(iio.imread(tmp_path / "again" / "samples" / "seed0005.png"),
                                  iio.imread(out / "samples" / "seed0005.png"))


@pytest.mark.parametrize("args, message", [
    (("--video", "--trajectory", "spiral"), "--trajectory: unknown trajectory 'spiral'"),
    (("--grid", "--seeds", "5-2"), "--seeds: bad seed range '5-2'"),
    (("--grid", "--seeds", "a-b"), "--seeds: bad seed range 'a-b'"),
    (("--grid", "--classes", "dog"), "--classes: this model is unconditional"),
    (("--mesh", "stl"), "--mesh: expected one of obj, ply, glb"),
    ((), "nothing to export"),
])
def test_bad_export_options_are_one_line(eval_run, run_cli, tmp_path, args, message):
    snap = sorted(eval_run.glob("snapshot-*.pt"))[-1]
    code, out, err = run_cli("export", snap, "--outdir", tmp_path / "x", *args)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err


def test_unwritable_outdir(eval_run, run_cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    code, out, err = run_cli("export", eval_run, "--outdir", blocker / "sub", "--grid")
    assert code == 1 and "--outdir" in err and "cannot write there" in err and len(err.strip().splitlines()) == 1
