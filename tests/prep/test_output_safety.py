"""Issue 13 §1: prep deletes only what it can prove it wrote, and never resumes onto a source that changed."""
from __future__ import annotations

import json
import os
import time

import lmdb
import pytest

from prep_testutils import read_items, write_image
from stages.data.format import PROGRESS_KEY

TOY = ("--num", 3, "--resolution", 8, "--embedder", "none", "--workers", 0)
FOLDER = ("--resolution", 8, "--embedder", "none", "--workers", 0, "--batch-size", 2)


def _snapshot(root) -> dict:
    """Every path under ``root`` (links not followed) with its content or link target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    out[rel] = ("file", f.read())
            else:
                out[rel] = ("dir",)
    return out


def _one_line(code, err, *needles):
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def _foreign_lmdb(path):
    env = lmdb.open(str(path), map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"mine", b"precious")
    env.close()


@pytest.mark.parametrize("kind", ["user_folder", "user_file", "foreign_lmdb", "link_to_folder", "dangling_link"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_partial_that_is_not_ours_is_refused(tmp_path, run_cli, kind, overwrite):
    out, partial, elsewhere = tmp_path / "toy", tmp_path / "toy.partial", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    if kind == "user_folder":
        partial.mkdir()
        (partial / "thesis.tex").write_text("precious")
    elif kind == "user_file":
        partial.write_text("precious")
    elif kind == "foreign_lmdb":
        _foreign_lmdb(partial)
    elif kind == "link_to_folder":
        partial.symlink_to(elsewhere)
    else:
        partial.symlink_to(tmp_path / "nowhere")
    before = _snapshot(tmp_path)
    code, _, err = run_cli("prep", "toy", out, *TOY, *(("--overwrite",) if overwrite else ()))
    _one_line(code, err, str(partial))
    assert ("symbolic link" in err) if "link" in kind else ("not made by 3dgp prep" in err)
    assert _snapshot(tmp_path) == before  # nothing deleted, nothing created
    assert not out.exists()


@pytest.mark.parametrize("kind", ["foreign_lmdb", "link"])
def test_output_that_is_not_ours_is_refused_even_with_overwrite(tmp_path, run_cli, kind):
    out = tmp_path / "toy"
    if kind == "foreign_lmdb":
        _foreign_lmdb(out)
    else:
        (tmp_path / "real").mkdir()
        out.symlink_to(tmp_path / "real")
    before = _snapshot(tmp_path)
    code, _, err = run_cli("prep", "toy", out, *TOY, "--overwrite")
    _one_line(code, err, str(out))
    assert _snapshot(tmp_path) == before


def test_our_partial_and_dataset_are_replaced_under_overwrite(tmp_path, run_cli):
    out = tmp_path / "toy"
    assert run_cli("prep", "toy", out, *TOY)[0] == 0
    assert (out / ".3dgp-dataset").is_file()  # the marker travels with the dataset
    # an unfinished prep of ours with other arguments: refused without --overwrite, discarded with it
    from stages.prep.config import PrepConfig
    from stages.prep.resume import open_partial

    open_partial(PrepConfig.make("toy", out, num=9, resolution=8, embedder="none"), None).close()
    code, _, err = run_cli("prep", "toy", out, *TOY[:-2], "--seed", 5, "--workers", 0)
    _one_line(code, err, "--seed 0 -> 5", "--overwrite")
    code, _, err = run_cli("prep", "toy", out, *TOY[:-2], "--seed", 5, "--workers", 0, "--overwrite")
    assert code == 0, err
    assert not (tmp_path / "toy.partial").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["toy"]


def _interrupt_after(monkeypatch, batches: int):
    """Make the next prep stop like Ctrl-C once ``batches`` batches are committed."""
    import stages.prep.pipeline as pipeline

    real, calls = pipeline._batch_records, []

    def flaky(*args, **kwargs):
        if len(calls) == batches:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_batch_records", flaky)
    return lambda: monkeypatch.setattr(pipeline, "_batch_records", real)


def _progress(partial) -> dict:
    env = lmdb.open(str(partial), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return json.loads(txn.get(PROGRESS_KEY))
    finally:
        env.close()


@pytest.mark.parametrize("change", ["added", "removed", "modified"])
def test_resume_after_the_source_changed(tmp_path, run_cli, monkeypatch, change):
    src, out = tmp_path / "src", tmp_path / "out"
    for i in range(6):
        write_image(src / f"img_{i}.png", seed=i)
    restore = _interrupt_after(monkeypatch, 1)
    code, _, err = run_cli("prep", "folder", src, out, *FOLDER)
    assert code == 130, err
    restore()
    partial = tmp_path / "out.partial"
    assert _progress(partial)["num_items"] == 2
    if change == "added":
        write_image(src / "img_0a.png", seed=99)  # sorts among the finished ones
    elif change == "removed":
        (src / "img_1.png").unlink()
    else:
        write_image(src / "img_0.png", seed=42)
        os.utime(src / "img_0.png", ns=(time.time_ns(), time.time_ns() + 10**9))
    partial_before = _snapshot(partial)
    code, _, err = run_cli("prep", "folder", src, out, *FOLDER)
    _one_line(code, err, str(src), "changed since the unfinished prep", "--overwrite")
    assert _snapshot(partial) == partial_before and not out.exists()
    # starting over gives exactly what a fresh run on the current source gives
    code, _, err = run_cli("prep", "folder", src, out, *FOLDER, "--overwrite")
    assert code == 0, err
    assert run_cli("prep", "folder", src, tmp_path / "fresh", *FOLDER)[0] == 0
    assert read_items(out) == read_items(tmp_path / "fresh")
    # a finished dataset whose source changed is not "already complete"
    write_image(src / "img_9.png", seed=9)
    code, _, err = run_cli("prep", "folder", src, out, *FOLDER)
    _one_line(code, err, str(out), "earlier state", "--overwrite")


def test_resume_on_an_unchanged_source_matches_a_fresh_run(tmp_path, run_cli, monkeypatch):
    src, out = tmp_path / "src", tmp_path / "out"
    for i in range(6):
        write_image(src / f"img_{i}.png", seed=i)
    restore = _interrupt_after(monkeypatch, 2)
    assert run_cli("prep", "folder", src, out, *FOLDER)[0] == 130
    restore()
    code, stdout, err = run_cli("prep", "folder", src, out, *FOLDER)
    assert code == 0 and "4 resumed" in stdout, err
    assert run_cli("prep", "folder", src, tmp_path / "fresh", *FOLDER)[0] == 0
    assert read_items(out) == read_items(tmp_path / "fresh")


# --- issue 13 §2: one prep per output ------------------------------------------------------------------------------

def test_a_second_prep_of_the_same_output_is_refused_and_a_dead_holder_does_not_block(run_cli, tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "ds"
    code = ("import sys, time\nfrom stages.common.lockfile import FileLock\n"
            "FileLock.acquire(sys.argv[1], 'busy {holder}', unlink_on_release=True)\n"
            "print('locked', flush=True)\ntime.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "ds.lock")], stdout=subprocess.PIPE,
                              text=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        assert holder.stdout.readline().strip() == "locked"
        code_, _, err = run_cli("prep", "toy", out, *TOY)
        _one_line(code_, err, str(out), f"another `3dgp prep` (pid {holder.pid} on ", "is writing this dataset")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.lock"]  # no OUT, no OUT.partial
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # the kernel drops the flock with the process
        holder.wait()
    code_, _, err = run_cli("prep", "toy", out, *TOY)
    assert code_ == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # the lock file is removed on release
