"""Issue 13 §3-§5: untrusted inputs cannot claim unbounded resources, labels are checked strictly, and special
files are skipped and reported. Each refusal is one line with exit code 1 and leaves nothing behind."""
from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib

import pytest

from prep_testutils import write_image
from stages.data.dataset import LmdbDataset

FAST = ("--embedder", "none", "--workers", "0", "--resolution", "8")


def _one_line(code, err, *needles):
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def _nothing_left(tmp_path, out):
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def _report(out) -> dict:
    return {s["source"]: s["reason"] for s in json.loads((out / "prep_report.json").read_text())["skipped"]}


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height (8-bit gray) but carries no pixel data: only its header is ever read."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_zip_member_over_the_size_cap_is_skipped_and_reported(tmp_path, run_cli):
    src, out = tmp_path / "photos.zip", tmp_path / "out"
    good = tmp_path / "good.png"
    write_image(good)
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(good, "good.png")
        archive.writestr("bomb.png", b"\0" * (3 << 20))  # 3 MiB that deflate to a few KiB
    assert src.stat().st_size < 50_000
    code, _, err = run_cli("prep", "zip", src, out, *FAST, "--max-file-mb", 1)
    assert code == 0 and len(err.strip().splitlines()) == 1 and "skipped 1" in err, err
    assert "3.0 MiB uncompressed; the limit is 1 MiB" in _report(out)["bomb.png"]
    assert "--max-file-mb" in _report(out)["bomb.png"]
    # only over-cap members: nothing to build, one line
    with zipfile.ZipFile(tmp_path / "bombs.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.png", b"\0" * (3 << 20))
    code, _, err = run_cli("prep", "zip", tmp_path / "bombs.zip", tmp_path / "out2", *FAST, "--max-file-mb", 1)
    _one_line(code, err, "none of the 1 inputs could be read (too large")
    assert not (tmp_path / "out2").exists()


def test_pixel_count_over_the_bomb_limit_is_skipped_and_named(tmp_path, run_cli):
    src, out = tmp_path / "src", tmp_path / "out"
    write_image(src / "small.png", size=(40, 30))
    (src / "huge.png").write_bytes(_png_header_only(20000, 20000))  # 400 Mpx: over PIL's default limit
    code, _, err = run_cli("prep", "folder", src, out, *FAST)
    assert code == 0 and len(err.strip().splitlines()) == 1, err
    reason = _report(out)["huge.png"]
    assert "20000x20000 = 400,000,000 pixels" in reason and "89,478,485" in reason and "--max-pixels" in reason
    # the option lowers (or raises) the cap: now the small one is over it too
    code, _, err = run_cli("prep", "folder", src, tmp_path / "out2", *FAST, "--max-pixels", 1000)
    _one_line(code, err, "none of the 2 inputs could be read (image too large")


def _labelled_folder(tmp_path, labels) -> object:
    src = tmp_path / "src"
    for name in ("a.png", "b.png", "c.png"):
        write_image(src / name)
    (src / "dataset.json").write_text(json.dumps({"labels": labels}))
    return src


def test_a_huge_label_does_not_make_millions_of_classes(tmp_path, run_cli):
    src = _labelled_folder(tmp_path, [["a.png", 0], ["b.png", 1], ["c.png", 3_000_000]])
    out = tmp_path / "out"
    before = sorted(os.listdir(src))
    code, _, err = run_cli("prep", "folder", src, out, *FAST)
    _one_line(code, err, "dataset.json", "3,000,001 classes for 3 labelled files (limit 1,000)",
              "a model takes at most 100,000 classes")  # no --max-classes can allow it (issue 19 §6)
    _nothing_left(tmp_path, out)
    assert sorted(os.listdir(src)) == before
    # the override for the rare real case (sparse class indices)
    src = _labelled_folder(tmp_path / "b", [["a.png", 0], ["b.png", 1], ["c.png", 1500]])
    code, _, err = run_cli("prep", "folder", src, out, *FAST, "--max-classes", 1501)
    assert code == 0, err
    assert LmdbDataset(out).num_classes == 1501


@pytest.mark.parametrize(
    "labels, needle",
    [
        ([["a.png", 1.5]], "entry 0: the label of 'a.png' must be a non-negative integer, got 1.5"),
        ([["a.png", "3"]], 'got "3"'),
        ([["a.png", True]], "got true"),
        ([["a.png", -1]], "got -1"),
        ([["a.png", None]], "got null"),
        ([["a.png", 0], ["b.png", 1], ["a.png", 1]], "entry 2: 'a.png' is listed twice (entries 0 and 2)"),
        ([["a.png"]], "entry 0: expected [relpath, int]"),
        ([[7, 0]], "entry 0: the path must be a non-empty string"),
        ({"a.png": 0}, '"labels" must be a list'),
    ],
)
def test_bad_labels_are_errors_not_coerced(tmp_path, run_cli, labels, needle):
    src, out = _labelled_folder(tmp_path, labels), tmp_path / "out"
    code, _, err = run_cli("prep", "folder", src, out, *FAST)
    _one_line(code, err, "dataset.json", needle)
    _nothing_left(tmp_path, out)


def test_num_beyond_disk_or_format_is_refused_before_any_work(tmp_path, run_cli, monkeypatch):
    out = tmp_path / "toy"
    code, _, err = run_cli("prep", "toy", out, "--num", 100_000_000_000, "--embedder", "none")
    _one_line(code, err, "--num: must be between 1 and 999,999,999")
    code, _, err = run_cli("prep", "toy", out, "--num", 999_999_999, "-r", 4096, "--embedder", "none")
    _one_line(code, err, "--num: 999,999,999 items at 4096x4096 need at least", "--no-resource-check")
    code, _, err = run_cli("prep", "toy", out, "--num", 4, "-r", 4096, "--batch-size", 4096, "--embedder", "none")
    _one_line(code, err, "--batch-size: 4096 images of 4096x4096 per batch need about", "--no-resource-check")
    _nothing_left(tmp_path, out)
    # the override, for when the estimate is wrong: here a disk that claims to be nearly full
    import shutil

    import stages.prep.limits as limits

    real = shutil.disk_usage
    monkeypatch.setattr(limits.shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    small = ("--num", 4, "-r", 8, "--embedder", "none", "--workers", 0)
    code, _, err = run_cli("prep", "toy", out, *small)
    _one_line(code, err, "--num: 4 items at 8x8 need at least", "has 1,000 bytes free")
    _nothing_left(tmp_path, out)
    code, _, err = run_cli("prep", "toy", out, *small, "--no-resource-check")
    assert code == 0, err


def test_links_loops_and_fifos_are_skipped_and_reported(tmp_path, run_cli):
    src, out = tmp_path / "src", tmp_path / "out"
    write_image(src / "a.png")
    write_image(src / "sub" / "b.png")
    (src / "gone.png").symlink_to(tmp_path / "deleted.png")
    (src / "self.png").symlink_to(src / "self.png")
    (src / "sub" / "up").symlink_to(src)
    os.mkfifo(src / "pipe.png")
    code, stdout, err = run_cli("prep", "folder", src, out, *FAST)
    assert code == 0 and "Wrote 2 items" in stdout, err
    assert len(err.strip().splitlines()) == 1 and "skipped 4" in err
    reasons = _report(out)
    assert set(reasons) == {"gone.png", "self.png", "sub/up", "pipe.png"}
    assert reasons["gone.png"].startswith("dangling symbolic link")
    assert reasons["self.png"] == "symbolic link loop"
    assert reasons["sub/up"].startswith("symbolic link loop")
    assert reasons["pipe.png"].startswith("a FIFO")
    assert json.loads((out / "prep_report.json").read_text())["num_skipped"] == 4
    assert LmdbDataset(out).meta["num_skipped"] == 4
