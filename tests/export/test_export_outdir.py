"""Issue 19 §5: an export folder is complete or visibly not. Exports are built in ``OUT.partial-<pid>`` and swapped
in at the end; only an export of ours (its ``export.json`` lists exactly its files) is ever replaced; a refused
start leaves nothing; ``export.json`` and the report say which snapshot every file came from."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FAST = ("--grid", "--steps", "4")


def _snapshot(root: Path) -> dict:
    """Every path under ``root`` with its bytes (folders as None)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = None
        for name in filenames:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = Path(path).read_bytes()
    return out


def _one_line(code, err, *needles):
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def _snap(eval_run) -> Path:
    return sorted(eval_run.glob("snapshot-*.pt"))[-1]


def _check_manifest(out: Path, snap: Path) -> dict:
    """export.json names the snapshot and lists exactly the folder's other files, with their sha256."""
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["format"] == "3dgp-export"
    assert manifest["snapshot"]["path"] == str(snap.resolve())
    assert manifest["snapshot"]["sha256"] == hashlib.sha256(snap.read_bytes()).hexdigest()
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"export.json"}
    assert set(listed) == on_disk
    for rel, sha in listed.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == sha, rel
    return manifest


def test_a_second_export_replaces_the_first_as_a_whole(eval_run, run_cli, tmp_path):
    snap, out = _snap(eval_run), tmp_path / "export"
    code, _, err = run_cli("export", snap, "--outdir", out, "--seeds", "0-1", "--report", *FAST)
    assert code == 0, err
    _check_manifest(out, snap)
    html = (out / "report.html").read_text()
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["snapshot"]["sha256"] in html  # the report says which snapshot the files came from
    assert all(f["sha256"] in html for f in manifest["files"] if f["path"] != "report.html")
    code, stdout, err = run_cli("export", snap, "--outdir", out, "--seeds", "5", *FAST)
    assert code == 0, err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "export.json", "grid.png", "samples", "samples/seed0005.png"]  # nothing left of the first export
    _check_manifest(out, snap)
    assert str(out / "grid.png") in stdout.replace("\n", "")  # final paths, not the staging folder's
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["export"]


@pytest.mark.parametrize("kind", ["user_folder", "export_plus_user_file", "file", "link"])
def test_an_outdir_that_is_not_our_export_is_left_alone(eval_run, run_cli, tmp_path, kind):
    snap, out = _snap(eval_run), tmp_path / "export"
    if kind == "user_folder":
        out.mkdir()
        (out / "thesis.tex").write_text("precious")
    elif kind == "export_plus_user_file":
        assert run_cli("export", snap, "--outdir", out, "--seeds", "0", *FAST)[0] == 0
        (out / "samples" / "notes.txt").write_text("precious")
    elif kind == "file":
        out.write_text("precious")
    else:
        (tmp_path / "real").mkdir()
        out.symlink_to(tmp_path / "real")
    before = _snapshot(tmp_path)
    code, _, err = run_cli("export", snap, "--outdir", out, "--seeds", "1", *FAST)
    _one_line(code, err, "--outdir: ", str(out), "left alone")
    assert _snapshot(tmp_path) == before  # byte-identical, and no staging folder left


@pytest.mark.parametrize("args, needle", [
    (("--seeds", "4294967296"), "--seeds: seed 4294967296 is beyond 4,294,967,295"),
    (("--seeds", "4294967295-4294967296"), "--seeds: seed 4294967296 is beyond"),
    (("--seeds", ""), "--seeds: bad seed range ''"),
    (("--classes", "0"), "--classes: this model is unconditional"),
])
@pytest.mark.parametrize("existing", [False, True])
def test_a_refused_start_leaves_nothing(eval_run, run_cli, tmp_path, args, needle, existing):
    snap, out = _snap(eval_run), tmp_path / "export"
    if existing:
        assert run_cli("export", snap, "--outdir", out, "--seeds", "0", *FAST)[0] == 0
    before = _snapshot(tmp_path)
    code, _, err = run_cli("export", snap, "--outdir", out, *FAST, *args)
    _one_line(code, err, needle)
    assert _snapshot(tmp_path) == before


def test_an_error_mid_export_deletes_its_staging_folder(eval_run, run_cli, tmp_path, monkeypatch):
    import stages.export.pipeline as pipeline

    snap, out = _snap(eval_run), tmp_path / "export"
    assert run_cli("export", snap, "--outdir", out, "--seeds", "0", *FAST)[0] == 0
    before = _snapshot(tmp_path)

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_write_videos", broken)
    code, _, err = run_cli("export", snap, "--outdir", out, "--seeds", "1", "--video", *FAST)
    assert code == 130, err
    assert _snapshot(tmp_path) == before


def _staging(tmp_path) -> list[Path]:
    return sorted(p for p in tmp_path.iterdir() if p.name.startswith("export.partial-"))


def test_kill_9_mid_export_leaves_the_old_export_intact(eval_run, run_cli, tmp_path):
    snap, out = _snap(eval_run), tmp_path / "export"
    assert run_cli("export", snap, "--outdir", out, "--seeds", "7", "--report", *FAST)[0] == 0
    before = _snapshot(out)
    env = dict(os.environ, THREEDGP_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    env.pop("THREEDGP_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "threedgp_cli", "export", str(snap), "--outdir", str(out),
                             "--seeds", "0-3", "--video", "--frames", "24", "--mesh", "glb", "--mesh-res", "32",
                             *FAST], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        staging = tmp_path / f"export.partial-{proc.pid}"
        while time.monotonic() < deadline and proc.poll() is None:
            if list(staging.glob("samples/*.png")):  # some new files are written, the export is not done
                proc.kill()
                break
            time.sleep(0.01)
        proc.wait(timeout=30)
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"export ended before it could be killed ({proc.returncode}): {err}"
    assert _snapshot(out) == before  # the old export exactly as it was: no new file beside its report
    assert _staging(tmp_path) == [staging] and (staging / ".3dgp-export-staging").is_file()  # visibly unfinished
    # the next export clears the dead one's leftovers and completes
    code, _, err = run_cli("export", snap, "--outdir", out, "--seeds", "0-1", *FAST)
    assert code == 0, err
    assert _staging(tmp_path) == []
    manifest = _check_manifest(out, snap)
    assert sorted(f["path"] for f in manifest["files"]) == ["grid.png", "samples/seed0000.png", "samples/seed0001.png"]
